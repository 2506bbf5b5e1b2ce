/**
 * One GRPO step of the `gemma3-1b-gsm8k` preset, measured: the preset's GRPO config (4
 * completions of one 256-token prompt, up to 768 new tokens, β = 0.08 so the reference forward
 * runs, micro-batches of 2 rows), LoRA r32 on all 7 projections and its AdamW, on random bf16
 * weights (`gemma3_workload.ts`) of any model config (`gemma3_1b()` for the real size). The
 * prompt is random ids; rewards are a hash of each completion, so the advantages are not all
 * zero and the loss has a gradient. With random weights an EOS is rare: completions usually run
 * to `maxNewTokens`, the most expensive case.
 *
 * Reported per step: rollout tokens/s (generated tokens over the rollout's seconds: prefill,
 * sampling, decode), training tokens/s (prompt + completion tokens over the seconds of the
 * policy and reference log-probs, loss, backward and AdamW), step seconds, peak GPU bytes (the
 * pool trimmed and peaks reset before the step) and the training pass's FLOP rate: policy
 * forward + backward (dX only: the base weights are frozen) and reference forward, counted once
 * each (`forwardFlops`); recomputation and LoRA's low-rank products are not counted.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import type { Gemma3Config } from "../model/config.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { disposeGemma3Weights } from "../model/gemma3_weights.ts";
import { LoraAdapter, loraConfig } from "../model/lora.ts";
import { type Trainable, trainableParameters } from "../model/trainable.ts";
import type { GrpoConfig } from "../rl/grpo_config.ts";
import { GrpoTrainer } from "../rl/grpo.ts";
import { AdamW } from "../rl/optimizer.ts";
import { presetConfig } from "../rl/presets.ts";
import { phaseAdamW } from "../rl/train_config.ts";
import { forwardFlops, randomBf16Weights, randomPrompt } from "./gemma3_workload.ts";

/** The lengths of one GRPO step. */
export interface GrpoStepSizes {
  /** Completions of the one prompt (the preset's `numGenerations`: 4). */
  readonly completions: number;
  /** Prompt tokens. */
  readonly promptLength: number;
  /** Most new tokens per completion. */
  readonly maxNewTokens: number;
}

/** The preset's step: 4 completions, a 256-token prompt, up to 768 new tokens. */
export const GRPO_STEP_FULL: GrpoStepSizes = Object.freeze({
  completions: 4,
  promptLength: 256,
  maxNewTokens: 768,
});

/** A short step for software adapters (about a minute on llvmpipe): same rows, 8 + 8 tokens. */
export const GRPO_STEP_SHORT: GrpoStepSizes = Object.freeze({
  completions: 4,
  promptLength: 8,
  maxNewTokens: 8,
});

/** What one measured step did. */
export interface GrpoStepMeasure {
  /** The lengths asked for. */
  readonly sizes: GrpoStepSizes;
  /** Tokens the rollout generated (all completions). */
  readonly generatedTokens: number;
  /** Prompt + completion tokens the training pass ran. */
  readonly trainedTokens: number;
  /** Seconds of the rollout. */
  readonly rolloutSeconds: number;
  /** Seconds of the training pass (log-probs, loss, backward, AdamW). */
  readonly trainSeconds: number;
  /** Seconds of the whole step. */
  readonly stepSeconds: number;
  /** `generatedTokens / rolloutSeconds`. */
  readonly rolloutTokensPerSecond: number;
  /** `trainedTokens / trainSeconds`. */
  readonly trainingTokensPerSecond: number;
  /** Model FLOPs of the training pass (see the module doc). */
  readonly trainingFlops: number;
  /** `trainingFlops / trainSeconds / 1e9`. */
  readonly trainingGflops: number;
  /** Bytes the device held before the step (weights, LoRA, moments, …). */
  readonly persistentBytes: number;
  /** Peak bytes the device held during the step (`peakAllocatedBytes`). */
  readonly peakAllocatedBytes: number;
  /** Peak bytes live tensors held during the step. */
  readonly peakInUseBytes: number;
  /** The step's loss (finite when the pass ran). */
  readonly loss: number;
}

/** A 32-bit FNV-1a hash of a string, as a reward in [0, 1). */
function hashReward(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0) / 4294967296;
}

/**
 * The preset's model around random weights, and a GRPO trainer per step size. Build once
 * ({@linkcode GrpoStepBench.create}), measure steps of any sizes, dispose.
 *
 * @example
 * ```ts ignore
 * const bench = GrpoStepBench.create(gpu, gemma3_1b());
 * const m = await bench.step(GRPO_STEP_SHORT);
 * console.log(m.stepSeconds, m.peakAllocatedBytes);
 * bench.dispose();
 * ```
 */
export class GrpoStepBench {
  /** The policy (LoRA on). */
  readonly model: Gemma3;
  /** Seconds building the random weights took. */
  readonly initSeconds: number;
  readonly #trainable: Trainable;
  readonly #optimizer: AdamW;
  #steps = 0;

  private constructor(model: Gemma3, initSeconds: number) {
    this.model = model;
    this.initSeconds = initSeconds;
    const preset = presetConfig("gemma3-1b-gsm8k");
    this.#trainable = trainableParameters(model, "lora");
    this.#optimizer = new AdamW(
      model.gpu,
      this.#trainable.params,
      phaseAdamW(preset.grpo.optimizer, preset.grpo.numBatches),
    );
  }

  /**
   * Random bf16 weights of `config` and the preset's LoRA adapter.
   *
   * @param gpu The device.
   * @param config Model config (`gemma3_1b()` for the real size).
   * @returns The bench.
   */
  static create(gpu: Gpu, config: Gemma3Config): GrpoStepBench {
    const preset = presetConfig("gemma3-1b-gsm8k");
    const t0 = performance.now();
    const weights = randomBf16Weights(gpu, config, { seed: 1 });
    const lora = preset.lora!;
    const adapter = LoraAdapter.init(gpu, config, loraConfig(lora), 0);
    const model = new Gemma3(gpu, config, weights, adapter);
    return new GrpoStepBench(model, (performance.now() - t0) / 1000);
  }

  /**
   * The preset's GRPO config at these sizes.
   *
   * @param sizes Completions and lengths.
   * @returns The config.
   */
  static config(sizes: GrpoStepSizes): GrpoConfig {
    const g = presetConfig("gemma3-1b-gsm8k").grpo;
    return Object.freeze({
      ...g,
      numGenerations: sizes.completions,
      maxPromptLength: sizes.promptLength,
      maxNewTokens: sizes.maxNewTokens,
    });
  }

  /**
   * Runs and measures one step (from a trimmed pool with reset peaks).
   *
   * @param sizes Completions and lengths.
   * @returns The measurements.
   */
  async step(sizes: GrpoStepSizes): Promise<GrpoStepMeasure> {
    const gpu = this.model.gpu, c = this.model.config;
    const config = GrpoStepBench.config(sizes);
    const preset = presetConfig("gemma3-1b-gsm8k").grpo;
    const trainer = new GrpoTrainer(this.model, {
      trainable: this.#trainable,
      optimizer: this.#optimizer,
      config,
      decoder: { decode: (ids) => ids.join(" ") },
      eosIds: [...c.eosTokenIds],
      padId: c.padTokenId ?? 0,
      rewards: { functions: { hash: (texts) => texts.map(hashReward) } },
      seed: 7,
      microBatchRows: preset.microBatchSize,
    });
    const prompt = {
      ids: randomPrompt(sizes.promptLength, c.vocabSize, 100 + this.#steps),
      answer: "",
    };
    await gpu.sync();
    gpu.pool.trim();
    gpu.tracker.resetPeaks();
    const persistentBytes = gpu.memory().allocatedBytes;
    const t0 = performance.now();
    const r = await trainer.step([prompt], this.#steps++);
    const stepSeconds = (performance.now() - t0) / 1000;
    const mem = gpu.memory();
    const rows = sizes.completions;
    const generatedTokens = Math.round(r.metrics.completion_length_mean * rows);
    const completion = Math.round(generatedTokens / rows);
    const perRow = forwardFlops(c, 0, sizes.promptLength + completion, completion);
    const trainingFlops = rows * perRow * (config.beta > 0 ? 3 : 2);
    const rolloutSeconds = r.metrics.rollout_seconds, trainSeconds = r.metrics.train_seconds;
    return {
      sizes,
      generatedTokens,
      trainedTokens: rows * sizes.promptLength + generatedTokens,
      rolloutSeconds,
      trainSeconds,
      stepSeconds,
      rolloutTokensPerSecond: generatedTokens / rolloutSeconds,
      trainingTokensPerSecond: (rows * sizes.promptLength + generatedTokens) / trainSeconds,
      trainingFlops,
      trainingGflops: trainingFlops / trainSeconds / 1e9,
      persistentBytes,
      peakAllocatedBytes: mem.peakAllocatedBytes,
      peakInUseBytes: mem.peakInUseBytes,
      loss: r.loss,
    };
  }

  /** Frees the model, adapter, gradients and optimizer state. */
  dispose(): void {
    this.#optimizer.dispose();
    this.#trainable.dispose();
    this.model.lora?.dispose();
    disposeGemma3Weights(this.model.weights);
  }
}
