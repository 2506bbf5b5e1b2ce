/**
 * The passes behind `grpo_gradients.ts`: prompt + completion rows laid out for the model, the
 * reference and policy forwards (log-probs, entropies) read back as completion grids, and the
 * backward of a grid of `d loss / d logp` (and `/ d entropy`). Private to `rl/`.
 *
 * @module
 */

import { Tensor } from "../kernels/tensor.ts";
import { disposeTokenBatch, makeTokenBatch, type TokenBatch } from "../model/batch.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import { trainForward, type TrainPass } from "../model/train_pass.ts";
import type { Trainable } from "../model/trainable.ts";
import type { GrpoConfig } from "./grpo_config.ts";
import type { GrpoLossOptions } from "./grpo_loss.ts";
import type { TokenGrid } from "./grpo_math.ts";

/** Inputs of `grpoGradients`: one row per completion. */
export interface GrpoBatch {
  /** Prompt ids per row. */
  readonly prompts: readonly (readonly number[])[];
  /** Completion ids per row (tokens past the mask are allowed; they never count). */
  readonly completions: readonly (readonly number[])[];
  /** Completion mask `[B, width]`. */
  readonly mask: TokenGrid;
  /** Advantage per row. */
  readonly advantages: ArrayLike<number>;
  /** Old-policy log-probs `[B, width]` (absent: the detached current policy, μ = 1). */
  readonly oldLogps?: TokenGrid;
}

/** The loss fields of a {@linkcode GrpoConfig}: β, ε, ε_high and the aggregation, plus the
 * GRPO family's options (each defaulting to today's GRPO). */
export type GrpoLossConfig =
  & Pick<GrpoConfig, "beta" | "epsilon" | "epsilonHigh" | "aggregation">
  & Partial<
    Pick<
      GrpoConfig,
      | "lossType"
      | "importanceSampling"
      | "klEstimator"
      | "delta"
      | "topEntropyQuantile"
      | "entropyCoef"
      | "sapoTemperaturePos"
      | "sapoTemperatureNeg"
    >
  >;

/** What a forward of some rows needs (a `GrpoGradientsOptions` fits). */
export interface ForwardOptions {
  /** Gradient accumulators (their mode picks the LoRA-off reference). */
  readonly trainable: Trainable;
  /** β, ε, ε_high, the aggregation and the GRPO family's options. */
  readonly config: GrpoLossConfig;
  /** Padding id. */
  readonly padId: number;
  /** Frozen reference model; null or absent: `model.withLora(null)` for LoRA. */
  readonly reference?: Gemma3 | null;
  /** Compute the entropies even when the loss does not need them. */
  readonly entropy?: boolean;
}

/** Where completion token j of row b is predicted: the row `b·S + promptLen + j − 1`. */
interface RowLayout {
  readonly batch: TokenBatch;
  readonly targets: Tensor;
  readonly promptLengths: readonly number[];
  readonly width: number;
}

/** Prompt + completion rows, right-padded, with next-token targets. */
function rowLayout(
  model: Gemma3,
  prompts: readonly (readonly number[])[],
  completions: readonly (readonly number[])[],
  width: number,
  padId: number,
): RowLayout {
  const rows = prompts.map((p, b) => [...p, ...completions[b]]);
  const seq = Math.max(...rows.map((r) => r.length));
  const batch = makeTokenBatch(model.gpu, rows, { seq, padId });
  const targets = new Int32Array(rows.length * seq);
  rows.forEach((r, b) => {
    for (let t = 0; t + 1 < r.length; t++) targets[b * seq + t] = r[t + 1];
  });
  return {
    batch,
    targets: Tensor.fromArray(model.gpu, targets, [targets.length], "i32"),
    promptLengths: prompts.map((p) => p.length),
    width,
  };
}

/** Per-row values `[B·S]` as a completion grid `[B, width]` (0 beyond each row). */
function gatherRows(all: Float32Array, layout: RowLayout): TokenGrid<Float64Array> {
  const { batch, promptLengths, width } = layout;
  const out = new Float64Array(batch.batch * width);
  for (let b = 0; b < batch.batch; b++) {
    const n = batch.hostRanges[b][1] - promptLengths[b];
    for (let j = 0; j < n; j++) {
      out[b * width + j] = all[b * batch.seq + promptLengths[b] + j - 1];
    }
  }
  return { data: out, shape: [batch.batch, width] };
}

/** A completion grid's values (`d loss / d logp` or `/ d entropy`) → per-row `[B·S]` f32. */
function scatterRows(
  model: Gemma3,
  grid: ArrayLike<number>,
  layout: RowLayout,
  scale: number,
): Tensor {
  const { batch, promptLengths, width } = layout;
  const g = new Float32Array(batch.batch * batch.seq);
  for (let b = 0; b < batch.batch; b++) {
    const n = batch.hostRanges[b][1] - promptLengths[b];
    for (let j = 0; j < n; j++) {
      const v = grid[b * width + j];
      g[b * batch.seq + promptLengths[b] + j - 1] = scale === 1 ? v : v * scale;
    }
  }
  return Tensor.fromArray(model.gpu, g, [g.length]);
}

/** Whether the loss itself needs the entropies. */
export function lossNeedsEntropy(config: GrpoLossConfig): boolean {
  return (config.topEntropyQuantile ?? 1) < 1 || (config.entropyCoef ?? 0) !== 0;
}

/** The `grpoLoss` options of a config. */
export function lossOptions(
  config: GrpoLossConfig,
  extra: { readonly maxCompletionLength?: number; readonly numItemsInBatch?: number },
): GrpoLossOptions {
  return {
    beta: config.beta,
    epsilon: config.epsilon,
    epsilonHigh: config.epsilonHigh,
    aggregation: config.aggregation,
    lossType: config.lossType,
    importanceSampling: config.importanceSampling,
    klEstimator: config.klEstimator,
    delta: config.delta,
    topEntropyQuantile: config.topEntropyQuantile,
    entropyCoef: config.entropyCoef,
    sapoTemperaturePos: config.sapoTemperaturePos,
    sapoTemperatureNeg: config.sapoTemperatureNeg,
    maxCompletionLength: extra.maxCompletionLength,
    numItemsInBatch: extra.numItemsInBatch,
  };
}

/** A policy forward of some rows, kept for the backward. */
export interface PolicyPass {
  readonly layout: RowLayout;
  readonly pass: TrainPass;
}

/** One micro-batch's forward: the policy pass, log-probs, reference log-probs, entropies. */
export interface Forward extends PolicyPass {
  readonly logps: TokenGrid;
  readonly refLogps: TokenGrid | null;
  readonly entropies?: TokenGrid;
}

/** The rows laid out for the model, completions cut at their last masked token. */
function completionLayout(
  model: Gemma3,
  input: Pick<GrpoBatch, "prompts" | "completions" | "mask">,
  padId: number,
): RowLayout {
  const width = input.mask.shape[1];
  const lengths = input.completions.map((c, b) => {
    let n = 0;
    for (let j = 0; j < width; j++) if (input.mask.data[b * width + j]) n = j + 1;
    return Math.min(n, c.length);
  });
  const completions = input.completions.map((c, b) => c.slice(0, lengths[b]));
  return rowLayout(model, input.prompts, completions, width, padId);
}

/** The policy forward of laid-out rows (with entropies when asked or the loss needs them). */
function runPolicy(
  model: Gemma3,
  layout: RowLayout,
  options: Pick<ForwardOptions, "config" | "entropy">,
): TrainPass {
  const entropy = options.entropy === true || lossNeedsEntropy(options.config);
  return trainForward(model, layout.batch, layout.targets, { entropy });
}

/** The policy forward of some rows without the reference or any read-back: the backward's
 * recompute when their log-probs are known already. */
export function policyPass(
  model: Gemma3,
  input: Pick<GrpoBatch, "prompts" | "completions" | "mask">,
  options: Pick<ForwardOptions, "config" | "padId" | "entropy">,
): PolicyPass {
  const layout = completionLayout(model, input, options.padId);
  return { layout, pass: runPolicy(model, layout, options) };
}

/** Runs the reference (when β > 0 and there is one) and the policy forward of some rows. */
export async function forwardRows(
  model: Gemma3,
  input: Pick<GrpoBatch, "prompts" | "completions" | "mask">,
  options: ForwardOptions,
): Promise<Forward> {
  const { trainable, config } = options;
  const reference = options.reference ?? null;
  const layout = completionLayout(model, input, options.padId);
  let refLogps: TokenGrid | null = null;
  const refModel = config.beta > 0 && reference
    ? reference
    : config.beta > 0 && model.lora && trainable.mode === "lora"
    ? model.withLora(null)
    : null;
  if (refModel) {
    const refPass = trainForward(refModel, layout.batch, layout.targets);
    refLogps = gatherRows((await refPass.read()).logprobs, layout);
    refPass.dispose();
  }
  const pass = runPolicy(model, layout, options);
  const rows = await pass.read();
  const logps = gatherRows(rows.logprobs, layout);
  const entropies = rows.entropy ? gatherRows(rows.entropy, layout) : undefined;
  return { layout, pass, logps, refLogps, entropies };
}

/** Frees a forward without a backward (its log-probs were all it was run for). */
export function disposeForward(forward: PolicyPass): void {
  forward.pass.dispose();
  forward.layout.targets.dispose();
  disposeTokenBatch(forward.layout.batch);
}

/** Back-propagates a micro-batch's `d loss / d logp` (and `/ d entropy`), then frees it. */
export function backwardRows(
  model: Gemma3,
  forward: PolicyPass,
  gradients: { readonly dLogp: ArrayLike<number>; readonly dEntropy?: ArrayLike<number> },
  options: { readonly trainable: Trainable; readonly scale: number },
): void {
  const { layout, pass } = forward;
  const grad = scatterRows(model, gradients.dLogp, layout, options.scale);
  const gradEntropy = gradients.dEntropy &&
    scatterRows(model, gradients.dEntropy, layout, options.scale);
  if (gradEntropy) pass.backward(grad, options.trainable.gradientSet, { gradEntropy });
  else pass.backward(grad, options.trainable.gradientSet);
  grad.dispose();
  gradEntropy?.dispose();
  disposeForward(forward);
}

/** Rows `[r0, r1)` of a grid. */
function rowSlice(g: TokenGrid, r0: number, r1: number): TokenGrid {
  const width = g.shape[1];
  return {
    data: Array.prototype.slice.call(g.data, r0 * width, r1 * width),
    shape: [r1 - r0, width],
  };
}

/** Rows `[r0, r1)` of a batch. */
export function batchSlice(input: GrpoBatch, r0: number, r1: number): GrpoBatch {
  return {
    prompts: input.prompts.slice(r0, r1),
    completions: input.completions.slice(r0, r1),
    mask: rowSlice(input.mask, r0, r1),
    advantages: Array.prototype.slice.call(input.advantages, r0, r1),
    oldLogps: input.oldLogps && rowSlice(input.oldLogps, r0, r1),
  };
}

/** Grids of the micro-batches stacked back into one `[B, width]` grid. */
export function stackRows(parts: readonly TokenGrid[], width: number): TokenGrid<Float64Array> {
  const rows = parts.reduce((n, p) => n + p.shape[0], 0);
  const data = new Float64Array(rows * width);
  let offset = 0;
  for (const p of parts) {
    data.set(p.data as ArrayLike<number>, offset);
    offset += p.data.length;
  }
  return { data, shape: [rows, width] };
}

/** Masked tokens of a mask grid, and rows holding at least one. */
export function maskCounts(mask: TokenGrid): { tokens: number; rows: number } {
  const [rows, width] = mask.shape;
  let tokens = 0, live = 0;
  for (let b = 0; b < rows; b++) {
    let n = 0;
    for (let j = 0; j < width; j++) n += mask.data[b * width + j];
    tokens += n;
    if (n > 0) live++;
  }
  return { tokens, rows: live };
}
