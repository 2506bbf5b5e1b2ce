/**
 * GPU memory a training step needs, from the model config and the batch shape, so that a run
 * that does not fit can say what would. The accounting follows the allocations of
 * `model/train_pass.ts` (weights, trainable state, per-layer checkpoints, one layer's saved
 * activations, the chunked log-prob statistics) and `model/kv_cache.ts` (GRPO rollouts).
 *
 * @module
 */

import type { Gemma3Config } from "../model/config.ts";

/** What a step trains and on how many tokens. */
export interface StepShape {
  /** `lora` or `full`. */
  readonly mode: "lora" | "full";
  /** LoRA rank (LoRA mode). */
  readonly loraRank?: number;
  /** Bytes per base-weight element (2 for bf16 checkpoints, 4 for f32). */
  readonly weightBytes: number;
  /** Sequences per micro-batch. */
  readonly rows: number;
  /** Padded tokens per sequence. */
  readonly seqLen: number;
  /** For GRPO: tokens generated per sequence (adds the KV cache and decode logits). */
  readonly newTokens?: number;
}

/** Byte estimate, split by what holds it. */
export interface MemoryEstimate {
  /** Base weights. */
  readonly weights: number;
  /** Trainable parameters' gradients and AdamW moments (and f32 LoRA matrices). */
  readonly trainable: number;
  /** Activations of one micro-batch. */
  readonly activations: number;
  /** KV cache and logits of a rollout. */
  readonly generation: number;
  /** Sum. */
  readonly total: number;
}

/**
 * Parameter counts of the model.
 *
 * @param c Model config.
 * @returns Total base parameters and LoRA parameters per unit rank (all seven targets).
 */
export function parameterCounts(c: Gemma3Config): { base: number; loraPerRank: number } {
  const d = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  const f = c.intermediateSize;
  const perLayer = d * q * 2 + d * kv * 2 + 3 * d * f + 4 * d + 2 * c.headDim;
  const loraPerLayer = (d + q) * 2 + (d + kv) * 2 + (d + f) * 3;
  return {
    base: c.vocabSize * d + c.numLayers * perLayer + d,
    loraPerRank: c.numLayers * loraPerLayer,
  };
}

/**
 * Estimates the peak GPU bytes of one training step.
 *
 * @param c Model config.
 * @param s What is trained and the batch shape.
 * @returns The estimate by component.
 */
export function estimateStepMemory(c: Gemma3Config, s: StepShape): MemoryEstimate {
  const { base, loraPerRank } = parameterCounts(c);
  const weights = base * s.weightBytes;
  const trainableParams = s.mode === "lora" ? loraPerRank * (s.loraRank ?? 0) : base;
  // LoRA: the f32 matrices + grad + m + v; full: grad + m + v beside the (f32) weights.
  const trainable = trainableParams * 4 * (s.mode === "lora" ? 4 : 3);
  const d = c.hiddenSize, f = c.intermediateSize, hd = c.headDim;
  const qDim = c.numHeads * hd, kvDim = c.numKvHeads * hd;
  const tokens = s.rows * (s.seqLen + (s.newTokens ?? 0));
  const checkpoints = c.numLayers * tokens * d * 4;
  // one recomputed layer: x, q/k/v (raw and roped), attention out, o, residual copies, x2,
  // gate, up, act, down, the norms' statistics, plus the backward's temporaries of one layer.
  const layer = tokens * 4 * (6 * d + 3 * qDim + 4 * kvDim + 4 * f + c.numHeads + 8);
  const backward = tokens * 4 * (3 * d + 2 * f + 2 * qDim + 2 * kvDim);
  const logprobs = tokens * 4 * (2 * Math.ceil(c.vocabSize / 4096) + 3 * d + 4);
  const activations = checkpoints + layer + backward + logprobs;
  let generation = 0;
  if (s.newTokens) {
    const length = s.seqLen + s.newTokens;
    let slots = 0;
    for (const t of c.layerTypes) {
      slots += t === "sliding_attention" ? Math.min(c.slidingWindow, length) : length;
    }
    generation = s.rows * slots * kvDim * 2 * 4 + s.rows * c.vocabSize * 4 +
      s.rows * s.seqLen * 4 * (2 * d + qDim + 2 * kvDim + 2 * f);
  }
  return {
    weights,
    trainable,
    activations,
    generation,
    total: weights + trainable + Math.max(activations, generation),
  };
}

/**
 * The largest number of sequences per micro-batch whose estimate fits a byte budget.
 *
 * @param c Model config.
 * @param s Step shape (its `rows` is ignored).
 * @param budget Bytes available.
 * @returns Rows that fit (0 when not even one does).
 */
export function maxRowsThatFit(c: Gemma3Config, s: StepShape, budget: number): number {
  let rows = 0;
  while (rows < 4096 && estimateStepMemory(c, { ...s, rows: rows + 1 }).total <= budget) rows++;
  return rows;
}

/** A training step did not fit in GPU memory; the message says what would. */
export class TrainMemoryError extends Error {
  /**
   * @param message What was needed, what failed and which settings fit.
   */
  constructor(message: string) {
    super(message);
    this.name = "TrainMemoryError";
  }
}

/**
 * Explains an out-of-memory failure of a training phase: the estimate for the chosen lengths and
 * the micro-batch sizes and lengths that fit in the memory the device gave before failing.
 *
 * @param c Model config.
 * @param s The step shape that failed.
 * @param failedAtBytes Bytes held plus the failed request (a bound on the device's memory).
 * @param phase Config section to adjust (`sft` or `grpo`).
 * @returns The error to throw.
 */
export function trainMemoryError(
  c: Gemma3Config,
  s: StepShape,
  failedAtBytes: number,
  phase: "sft" | "grpo",
): TrainMemoryError {
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  const need = estimateStepMemory(c, s);
  const rows = maxRowsThatFit(c, s, failedAtBytes);
  let length = s.seqLen;
  while (length > 16 && estimateStepMemory(c, { ...s, seqLen: length }).total > failedAtBytes) {
    length = Math.floor(length * 0.75);
  }
  const lengthKey = phase === "sft" ? "sft.maxLength" : "grpo.maxPromptLength";
  const advice = rows >= 1
    ? `--set ${phase}.microBatchSize=${rows} fits`
    : `even one sequence does not fit; --set ${lengthKey}=${length} may`;
  return new TrainMemoryError(
    `too little GPU memory for the chosen lengths: ${phase} with ${s.rows} sequences of ` +
      `${s.seqLen}${s.newTokens ? ` + ${s.newTokens}` : ""} tokens needs about ` +
      `${gib(need.total)} (weights ${gib(need.weights)}, optimizer ${gib(need.trainable)}, ` +
      `activations ${gib(Math.max(need.activations, need.generation))}), but the device ran ` +
      `out at ${gib(failedAtBytes)}; ${advice}`,
  );
}
