/**
 * LoRA adapters: per layer and target projection, `A [r, in]` and `B [out, r]`, applied as
 * `y = x·Wᵀ + (alpha/r)·(x·Aᵀ)·Bᵀ` without forming a dense ΔW. Names follow PEFT so adapters
 * load in Hugging Face peft and vLLM.
 *
 * @module
 */

import { SeededRandom } from "../base/random.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { Gemma3Config } from "./config.ts";
import { ConfigError } from "./config.ts";
import {
  hfLayerWeightPath,
  layerWeightShape,
  LORA_TARGETS,
  type LoraTarget,
} from "./gemma3_weights.ts";

/** LoRA hyperparameters. */
export interface LoraConfig {
  /** Rank r. */
  readonly rank: number;
  /** Alpha; the update is scaled by alpha / r. */
  readonly alpha: number;
  /** Adapted projections. */
  readonly targets: readonly LoraTarget[];
}

/**
 * Validates and freezes a LoRA config (defaults: all seven projections).
 *
 * @param input Rank, alpha and optional targets.
 * @returns The frozen config.
 * @throws {ConfigError} naming the bad field.
 */
export function loraConfig(
  input: { rank: number; alpha: number; targets?: readonly string[] },
): LoraConfig {
  if (!Number.isInteger(input.rank) || input.rank < 1) {
    throw new ConfigError("rank", `rank must be an integer >= 1, got ${input.rank}`);
  }
  if (!(Number.isFinite(input.alpha) && input.alpha > 0)) {
    throw new ConfigError("alpha", `alpha must be a number > 0, got ${input.alpha}`);
  }
  const targets = [...(input.targets ?? LORA_TARGETS)];
  for (const t of targets) {
    if (!(LORA_TARGETS as readonly string[]).includes(t)) {
      throw new ConfigError(
        "targets",
        `targets must be among ${LORA_TARGETS.join(", ")}, got ${JSON.stringify(t)}`,
      );
    }
  }
  if (targets.length === 0) throw new ConfigError("targets", "targets must not be empty");
  return Object.freeze({
    rank: input.rank,
    alpha: input.alpha,
    targets: Object.freeze(targets as LoraTarget[]),
  });
}

/** One adapted projection. */
export interface LoraPair {
  /** `[r, in]` f32. */
  readonly a: Tensor;
  /** `[out, r]` f32. */
  readonly b: Tensor;
}

/**
 * PEFT tensor name of a LoRA matrix.
 *
 * @param layer Layer index.
 * @param target Projection.
 * @param which `A` or `B`.
 * @returns e.g. `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`.
 */
export function peftName(layer: number, target: LoraTarget, which: "A" | "B"): string {
  return `base_model.model.model.layers.${layer}.${hfLayerWeightPath(target)}.lora_${which}.weight`;
}

/** A LoRA adapter on the GPU. */
export class LoraAdapter {
  /** Hyperparameters. */
  readonly config: LoraConfig;
  /** alpha / r. */
  readonly scale: number;
  /** Per layer, the adapted projections. */
  readonly layers: readonly Readonly<Partial<Record<LoraTarget, LoraPair>>>[];

  /**
   * @param config Hyperparameters.
   * @param layers Per-layer tensors.
   */
  constructor(config: LoraConfig, layers: Partial<Record<LoraTarget, LoraPair>>[]) {
    this.config = config;
    this.scale = config.alpha / config.rank;
    this.layers = Object.freeze(layers.map((l) => Object.freeze(l)));
  }

  /**
   * A fresh adapter: A he-uniform (PEFT's `kaiming_uniform_(a=√5)`, bound 1/√in), B zeros, so the
   * adapted model starts equal to the base model.
   *
   * @param gpu Runtime.
   * @param model Model config.
   * @param config LoRA config.
   * @param seed Seed of the uniform draws.
   * @returns The adapter.
   */
  static init(gpu: Gpu, model: Gemma3Config, config: LoraConfig, seed = 0): LoraAdapter {
    const random = SeededRandom.fromState(seed); // mulberry32(seed)
    const layers: Partial<Record<LoraTarget, LoraPair>>[] = [];
    for (let l = 0; l < model.numLayers; l++) {
      const layer: Partial<Record<LoraTarget, LoraPair>> = {};
      for (const target of config.targets) {
        const [out, inDim] = layerWeightShape(model, target);
        const bound = 1 / Math.sqrt(inDim);
        const a = new Float32Array(config.rank * inDim);
        for (let i = 0; i < a.length; i++) a[i] = (random.next() * 2 - 1) * bound;
        layer[target] = {
          a: Tensor.fromArray(gpu, a, [config.rank, inDim]),
          b: Tensor.zeros(gpu, [out, config.rank]),
        };
      }
      layers.push(layer);
    }
    return new LoraAdapter(config, layers);
  }

  /**
   * Every LoRA matrix by its PEFT name, in layer → target → A, B order.
   *
   * @returns Name → tensor.
   */
  parameters(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.layers.forEach((layer, l) => {
      for (const target of this.config.targets) {
        const pair = layer[target];
        if (!pair) continue;
        out.set(peftName(l, target, "A"), pair.a);
        out.set(peftName(l, target, "B"), pair.b);
      }
    });
    return out;
  }

  /** Gives the tensors back to the pool. */
  dispose(): void {
    for (const t of this.parameters().values()) t.dispose();
  }
}
