/**
 * Which parameters a training run updates — the LoRA matrices (the recipe's choice) or every
 * weight (full fine-tuning, used to train the demo model from scratch) — with gradient
 * accumulators of the same names and shapes.
 *
 * @module
 */

import { Tensor } from "../kernels/tensor.ts";
import type { GradientSet } from "./backward.ts";
import type { Gemma3 } from "./gemma3.ts";
import { hfLayerWeightPath, LAYER_WEIGHTS, type LayerWeightName } from "./gemma3_weights.ts";
import type { LoraTarget } from "./gemma3_weights.ts";
import type { LoraPair } from "./lora.ts";

/** Trainable parameters with their gradient accumulators. */
export interface Trainable {
  /** `lora` or `full`. */
  readonly mode: "lora" | "full";
  /** Parameters by name (PEFT names for LoRA, HF names for full). */
  readonly params: ReadonlyMap<string, Tensor>;
  /** Gradients by the same names. */
  readonly grads: ReadonlyMap<string, Tensor>;
  /** The same gradients, shaped for the backward pass. */
  readonly gradientSet: GradientSet;
  /** Records zero fills of every gradient. */
  zeroGrads(): void;
  /** Frees the gradient accumulators. */
  dispose(): void;
}

/**
 * Collects the trainable parameters of a model and allocates zeroed gradients.
 *
 * @param model The model (LoRA mode needs `model.lora`; full mode needs f32 weights).
 * @param mode What to train.
 * @returns Parameters and gradients.
 */
export function trainableParameters(model: Gemma3, mode: "lora" | "full"): Trainable {
  const gpu = model.gpu;
  const params = new Map<string, Tensor>();
  const grads = new Map<string, Tensor>();
  const zerosLike = (t: Tensor) => Tensor.zeros(gpu, t.shape, "f32");
  let gradientSet: GradientSet;
  if (mode === "lora") {
    const lora = model.lora;
    if (!lora) {
      throw new Error(
        "LoRA training needs an adapter: attach one with model.withLora(adapter) first",
      );
    }
    for (const [name, t] of lora.parameters()) {
      params.set(name, t);
      grads.set(name, zerosLike(t));
    }
    const layers = lora.layers.map((layer, l) => {
      const out: Partial<Record<LoraTarget, LoraPair>> = {};
      for (const [target, pair] of Object.entries(layer) as [LoraTarget, LoraPair][]) {
        const prefix = `base_model.model.model.layers.${l}.${hfLayerWeightPath(target)}`;
        out[target] = {
          a: grads.get(`${prefix}.lora_A.weight`) ?? zerosLike(pair.a),
          b: grads.get(`${prefix}.lora_B.weight`) ?? zerosLike(pair.b),
        };
      }
      return out;
    });
    gradientSet = { lora: layers, layers: null, embed: null, finalNorm: null };
  } else {
    const w = model.weights;
    const add = (name: string, t: Tensor) => {
      if (t.dtype !== "f32") {
        throw new Error(
          `full fine-tuning needs f32 weights; ${name} is ${t.dtype} (train LoRA on bf16 checkpoints)`,
        );
      }
      params.set(name, t);
      const g = zerosLike(t);
      grads.set(name, g);
      return g;
    };
    const embed = add("model.embed_tokens.weight", w.embed);
    const layers = w.layers.map((layer, l) => {
      const out = {} as Record<LayerWeightName, Tensor>;
      for (const name of LAYER_WEIGHTS) {
        out[name] = add(`model.layers.${l}.${hfLayerWeightPath(name)}.weight`, layer[name]);
      }
      return out;
    });
    const finalNorm = add("model.norm.weight", w.finalNorm);
    gradientSet = { lora: null, layers, embed, finalNorm };
  }
  return {
    mode,
    params,
    grads,
    gradientSet,
    zeroGrads() {
      for (const g of grads.values()) g.zero();
    },
    dispose() {
      for (const g of grads.values()) g.dispose();
    },
  };
}
