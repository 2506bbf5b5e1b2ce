/**
 * Supervised fine-tuning: completion-only next-token loss (mean over the masked target tokens of
 * the whole optimizer batch, the HF `labels = -100` convention), micro-batches with gradient
 * accumulation, AdamW, and NaN/Inf protection.
 *
 * The loss is computed on the GPU as `Σ_t g_t · logp_t` with `g = −mask / count` — the same
 * vector that seeds the backward pass — so a step needs one readback (loss + optimizer stats).
 *
 * @module
 */

import { matmul } from "../kernels/matmul.ts";
import { Tensor } from "../kernels/tensor.ts";
import { disposeTokenBatch, makeTokenBatch } from "../model/batch.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import { trainForward } from "../model/train_pass.ts";
import type { Trainable } from "../model/trainable.ts";
import type { AdamW } from "./optimizer.ts";

/** One micro-batch: right-padded rows with next-token targets and a loss mask. */
export interface SftMicroBatch {
  /** Rows. */
  readonly batchSize: number;
  /** Columns. */
  readonly seqLen: number;
  /** `[B·S]` token ids. */
  readonly inputIds: Int32Array;
  /** `[B·S]` next-token targets. */
  readonly targetIds: Int32Array;
  /** `[B·S]` 1 where the target counts. */
  readonly lossMask: Float32Array;
  /** `[B]` real length of each row. */
  readonly lengths: Int32Array;
}

/** What one optimizer step reports. */
export interface SftStepResult {
  /** Mean loss over the counted targets (NaN when non-finite). */
  readonly loss: number;
  /** Global gradient norm before clipping. */
  readonly gradNorm: number;
  /** Learning rate used. */
  readonly learningRate: number;
  /** False when the step was skipped (non-finite loss or gradients). */
  readonly applied: boolean;
  /** Skipped steps in a row, this one included. */
  readonly consecutiveSkips: number;
  /** Counted target tokens. */
  readonly targetTokens: number;
  /** All real tokens processed. */
  readonly tokens: number;
}

/** Thrown after too many non-finite steps in a row. */
export class NonFiniteLossError extends Error {
  /**
   * @param skips Steps skipped in a row.
   * @param step The optimizer step where training stopped.
   */
  constructor(readonly skips: number, readonly step: number) {
    super(
      `training stopped: the loss or gradients were NaN/Inf for ${skips} steps in a row ` +
        `(last at step ${step}); lower the learning rate or check the data`,
    );
    this.name = "NonFiniteLossError";
  }
}

/** Steps in a row with a non-finite loss after which SFT stops. */
export const MAX_CONSECUTIVE_SKIPS = 3;

/** Options of {@linkcode SftTrainer}. */
export interface SftTrainerOptions {
  /** Stop after this many skipped steps in a row (default 3). */
  readonly maxConsecutiveSkips?: number;
}

/** Runs SFT optimizer steps on a model. */
export class SftTrainer {
  readonly #model: Gemma3;
  readonly #trainable: Trainable;
  readonly #optimizer: AdamW;
  readonly #maxSkips: number;

  /**
   * @param model The model (LoRA on for LoRA training).
   * @param trainable Parameters and gradient accumulators.
   * @param optimizer AdamW over `trainable.params`.
   * @param options Skip policy.
   */
  constructor(
    model: Gemma3,
    trainable: Trainable,
    optimizer: AdamW,
    options: SftTrainerOptions = {},
  ) {
    this.#model = model;
    this.#trainable = trainable;
    this.#optimizer = optimizer;
    this.#maxSkips = options.maxConsecutiveSkips ?? MAX_CONSECUTIVE_SKIPS;
  }

  /**
   * One optimizer step over several micro-batches (gradient accumulation): the loss is the mean
   * over every counted target of all of them.
   *
   * @param microBatches The micro-batches of this step.
   * @returns Loss, gradient norm, learning rate and token counts.
   * @throws {NonFiniteLossError} after too many skipped steps in a row.
   */
  async step(microBatches: readonly SftMicroBatch[]): Promise<SftStepResult> {
    const gpu = this.#model.gpu;
    let count = 0, tokens = 0;
    for (const mb of microBatches) {
      for (const m of mb.lossMask) count += m;
      for (const n of mb.lengths) tokens += n;
    }
    const loss = Tensor.zeros(gpu, [1, 1]);
    this.#trainable.zeroGrads();
    for (const mb of microBatches) {
      this.#accumulate(mb, Math.max(count, 1), loss);
    }
    this.#optimizer.step(this.#trainable.grads, { guard: loss });
    const [lossBytes, stats] = await gpu.readMany([loss.binding(), this.#optimizer.statsBinding]);
    loss.dispose();
    const result = this.#optimizer.commit(stats);
    const value = new Float32Array(lossBytes)[0];
    if (result.consecutiveSkips >= this.#maxSkips) {
      throw new NonFiniteLossError(result.consecutiveSkips, this.#optimizer.stepCount);
    }
    return {
      loss: Number.isFinite(value) ? value : NaN,
      gradNorm: result.gradNorm,
      learningRate: result.learningRate,
      applied: result.applied,
      consecutiveSkips: result.consecutiveSkips,
      targetTokens: count,
      tokens,
    };
  }

  #accumulate(mb: SftMicroBatch, count: number, loss: Tensor): void {
    const gpu = this.#model.gpu;
    const rows: number[][] = [];
    for (let b = 0; b < mb.batchSize; b++) {
      rows.push(Array.from(mb.inputIds.subarray(b * mb.seqLen, b * mb.seqLen + mb.lengths[b])));
      this.#model.checkIds(rows[b], `inputIds row ${b}`);
    }
    const batch = makeTokenBatch(gpu, rows, { seq: mb.seqLen });
    const g = new Float32Array(mb.lossMask.length);
    const targets = new Int32Array(mb.targetIds.length);
    for (let i = 0; i < g.length; i++) {
      g[i] = mb.lossMask[i] ? -mb.lossMask[i] / count : 0;
      // subtle: rows that do not count still need an in-vocabulary target id
      targets[i] = mb.lossMask[i] ? mb.targetIds[i] : 0;
    }
    this.#model.checkIds(targets, "targetIds");
    const gTensor = Tensor.fromArray(gpu, g, [1, g.length]);
    const targetTensor = Tensor.fromArray(gpu, targets, [targets.length], "i32");
    const pass = trainForward(this.#model, batch, targetTensor);
    // loss += g · logp  (a [1, T]·[1, T]ᵀ product)
    matmul(gTensor, pass.logprobs.reshape([1, g.length]), { out: loss, accumulate: true });
    pass.backward(gTensor.reshape([g.length]), this.#trainable.gradientSet);
    pass.dispose();
    for (const t of [gTensor, targetTensor]) t.dispose();
    disposeTokenBatch(batch);
  }
}
