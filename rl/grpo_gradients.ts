/**
 * The training half of a GRPO step on the GPU: per-token log-probs (and entropies) of the policy
 * and the reference for prompt + completion rows, the host loss `grpoLoss` (`grpo_loss.ts`), and
 * its `d loss / d logp` (and `d loss / d entropy`) through the model's backward pass.
 *
 * {@linkcode grpoBatchGradients} splits a batch into micro-batches of rows and gives the loss and
 * gradient of one `grpoLoss` over the whole batch, for every loss type: the normalisers that span
 * the batch are known before any forward (rows, masked tokens, `maxNewTokens`), so each
 * micro-batch's loss is weighted by its share of them (grpo / sapo / dr_grpo: its rows, bnpo:
 * its masked tokens, dapo / cispo: `numItemsInBatch` = the batch's masked tokens, weight 1).
 * The entropy quantile (`topEntropyQuantile < 1`) and the entropy bonus are statistics of the
 * whole batch's entropies, which only a forward pass gives: then every micro-batch is first run
 * forward only, `grpoLoss` runs once over the whole batch on the host, and each micro-batch
 * back-propagates its rows of that loss's gradients (all but the first, whose pass is kept, run
 * forward again for it).
 *
 * @module
 */

import type { Gemma3 } from "../model/gemma3.ts";
import type { Trainable } from "../model/trainable.ts";
import { grpoLoss, type GrpoLossResult } from "./grpo_loss.ts";
import { resolveGrpoLossOptions } from "./grpo_loss_options.ts";
import type { TokenGrid } from "./grpo_math.ts";
import {
  backwardRows,
  batchSlice,
  disposeForward,
  type Forward,
  forwardRows,
  type GrpoBatch,
  type GrpoLossConfig,
  lossNeedsEntropy,
  lossOptions,
  maskCounts,
  policyPass,
  stackRows,
} from "./_grpo_passes.ts";

export type { GrpoBatch, GrpoLossConfig } from "./_grpo_passes.ts";

/** Result of {@linkcode grpoGradients}. */
export interface GrpoGradients {
  /** Loss, per-token loss, d loss / d logp, KL and metrics. */
  readonly result: GrpoLossResult;
  /** Policy log-probs `[B, width]`. */
  readonly logps: TokenGrid;
  /** Reference log-probs `[B, width]` (the policy's when β = 0 or no adapter). */
  readonly refLogps: TokenGrid;
  /** Policy entropies `[B, width]` (temperature 1), when computed. */
  readonly entropies?: TokenGrid;
}

/** Options of {@linkcode grpoGradients}. */
export interface GrpoGradientsOptions {
  /** Gradient accumulators. */
  readonly trainable: Trainable;
  /** β, ε, ε_high, the aggregation and the GRPO family's options. */
  readonly config: GrpoLossConfig;
  /** Padding id. */
  readonly padId: number;
  /** Frozen reference model (full fine-tuning); null or absent: `model.withLora(null)` (or,
   * without an adapter, the policy itself, which makes the KL term 0). */
  readonly reference?: Gemma3 | null;
  /** Multiplies the gradient (a micro-batch's share of the step's loss; default 1). */
  readonly scale?: number;
  /** `dr_grpo`'s constant length (the trainer passes `maxNewTokens`; default the mask width). */
  readonly maxCompletionLength?: number;
  /** `dapo` / `cispo` normaliser: masked tokens of the whole optimizer batch (default: these
   * rows' masked tokens). */
  readonly numItemsInBatch?: number;
  /** Compute the policy's per-token entropies (for the metrics) even when the loss does not
   * need them (it does for `topEntropyQuantile < 1` or `entropyCoef ≠ 0`). */
  readonly entropy?: boolean;
}

/**
 * Per-token log-probs of policy and reference, the GRPO loss, and its gradient accumulated into
 * `trainable` (`+=`, so zero them first for a fresh step).
 *
 * @param model Policy model (`model.withLora(null)` is the reference when training LoRA).
 * @param input Rows, mask, advantages and optional old log-probs.
 * @param options Trainable parameters, config, pad id, reference, gradient scale, whole-batch
 *   normalisers, entropies.
 * @returns Loss result and the log-probs (and entropies, when computed).
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { gemma3Config } from "../model/config.ts";
 * import { Gemma3 } from "../model/gemma3.ts";
 * import { initGemma3Weights } from "../model/gemma3_weights.ts";
 * import { trainableParameters } from "../model/trainable.ts";
 * import { createGrpoConfig } from "./grpo_config.ts";
 * import { grpoGradients } from "./grpo_gradients.ts";
 * import { tokenGrid } from "./grpo_math.ts";
 *
 * const gpu = await Gpu.create();
 * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2,
 *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
 * const model = new Gemma3(gpu, config, initGemma3Weights(gpu, config, { seed: 1 }));
 * const trainable = trainableParameters(model, "full");
 * const r = await grpoGradients(model, {
 *   prompts: [[2, 5], [2, 5]],
 *   completions: [[7, 1], [8, 8, 1]],
 *   mask: tokenGrid([[1, 1, 0], [1, 1, 1]]),
 *   advantages: [0.7, -0.7],
 * }, { trainable, config: createGrpoConfig(), padId: 0 });
 * console.log(r.result.loss, r.logps.shape); // ≈ 0 (μ = 1, no reference: KL 0), [2, 3]
 * trainable.dispose();
 * gpu.destroy();
 * ```
 */
export async function grpoGradients(
  model: Gemma3,
  input: GrpoBatch,
  options: GrpoGradientsOptions,
): Promise<GrpoGradients> {
  const scale = options.scale ?? 1;
  const forward = await forwardRows(model, input, options);
  const { logps, refLogps, entropies } = forward;
  const result = grpoLoss(
    {
      logps,
      refLogps: refLogps ?? logps,
      oldLogps: input.oldLogps,
      advantages: input.advantages,
      mask: input.mask,
      ...(entropies ? { entropies } : {}),
    },
    lossOptions(options.config, options),
  );
  backwardRows(model, forward, { dLogp: result.dLossDLogp, dEntropy: result.dLossDEntropy }, {
    trainable: options.trainable,
    scale,
  });
  return { result, logps, refLogps: refLogps ?? logps, ...(entropies ? { entropies } : {}) };
}

/** Options of {@linkcode grpoBatchGradients}. */
export interface GrpoBatchGradientsOptions
  extends Omit<GrpoGradientsOptions, "scale" | "numItemsInBatch"> {
  /** Rows per forward/backward pass (default: all rows in one pass). */
  readonly microBatchRows?: number;
}

/** Result of {@linkcode grpoBatchGradients}: one `grpoLoss` over the whole batch. */
export interface GrpoBatchGradients {
  /** The loss of the whole batch. */
  readonly loss: number;
  /** `grpoLoss`'s metrics of the whole batch (combined over the micro-batches). */
  readonly metrics: Readonly<Record<string, number>>;
  /** Policy log-probs `[B, width]`. */
  readonly logps: TokenGrid<Float64Array>;
  /** Reference log-probs `[B, width]` (the policy's when β = 0 or no adapter). */
  readonly refLogps: TokenGrid<Float64Array>;
  /** Policy entropies `[B, width]`, when computed. */
  readonly entropies?: TokenGrid<Float64Array>;
  /** True when the entropy quantile or bonus made it run all micro-batches but the first
   * forward twice. */
  readonly wholeBatchLoss: boolean;
}

/** How a `grpoLoss` metric of micro-batches combines into the whole batch's. */
type Combine = "sum" | "loss" | "min" | "max" | "tokens" | "ratios";
const COMBINE: Readonly<Record<string, Combine>> = {
  numTokens: "sum",
  policyLoss: "loss",
  klLoss: "loss",
  entropyBonus: "loss",
  ratioMin: "min",
  ratioMax: "max",
  klMean: "tokens",
  entropyMean: "tokens",
  entropyMaskedFraction: "tokens",
};

/**
 * The loss and gradient of one `grpoLoss` over a whole batch, run in micro-batches of rows (see
 * the module doc), accumulated into `trainable` (`+=`, so zero them first for a fresh step).
 *
 * @param model Policy model.
 * @param input All rows of the optimizer step.
 * @param options Trainable parameters, config, pad id, reference, `maxCompletionLength`,
 *   entropies, rows per pass.
 * @returns The whole batch's loss and metrics, log-probs and entropies.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { gemma3Config } from "../model/config.ts";
 * import { Gemma3 } from "../model/gemma3.ts";
 * import { initGemma3Weights } from "../model/gemma3_weights.ts";
 * import { trainableParameters } from "../model/trainable.ts";
 * import { createGrpoConfig } from "./grpo_config.ts";
 * import { grpoBatchGradients } from "./grpo_gradients.ts";
 * import { tokenGrid } from "./grpo_math.ts";
 *
 * const gpu = await Gpu.create();
 * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2,
 *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
 * const model = new Gemma3(gpu, config, initGemma3Weights(gpu, config, { seed: 1 }));
 * const trainable = trainableParameters(model, "full");
 * // DAPO over 4 rows in passes of 3 + 1: each pass divides by the 8 masked tokens of all 4.
 * const r = await grpoBatchGradients(model, {
 *   prompts: [[2, 5], [2, 5], [2, 9], [2, 9]],
 *   completions: [[7, 1], [8, 8, 1], [7], [3, 1]],
 *   mask: tokenGrid([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]]),
 *   advantages: [0.7, -0.7, 0.7, -0.7],
 * }, {
 *   trainable,
 *   config: createGrpoConfig({ lossType: "dapo", epsilonHigh: 0.28 }),
 *   padId: 0,
 *   microBatchRows: 3,
 *   entropy: true,
 * });
 * console.log(r.loss, r.metrics.numTokens, r.metrics.entropyMean); // 0.175, 8, ≈ ln 64
 * trainable.dispose();
 * gpu.destroy();
 * ```
 */
export async function grpoBatchGradients(
  model: Gemma3,
  input: GrpoBatch,
  options: GrpoBatchGradientsOptions,
): Promise<GrpoBatchGradients> {
  const config = options.config;
  const [rows, width] = input.mask.shape;
  const perPass = Math.max(1, Math.min(rows, options.microBatchRows ?? rows));
  const total = maskCounts(input.mask);
  const ranges: [number, number][] = [];
  for (let r0 = 0; r0 < rows; r0 += perPass) ranges.push([r0, Math.min(rows, r0 + perPass)]);
  const numItemsInBatch = total.tokens;
  const { lossType } = resolveGrpoLossOptions(lossOptions(config, {}));

  if (ranges.length > 1 && lossNeedsEntropy(config)) {
    // Forward only, to know the whole batch's entropies; then one host loss, then backward. The
    // first micro-batch runs last and its pass is kept for its backward, so only the others run
    // again (without the reference or a read-back); the backward order stays 0, 1, ….
    const parts: Forward[] = new Array(ranges.length);
    for (const i of [...ranges.keys()].slice(1).concat(0)) {
      const f = await forwardRows(model, batchSlice(input, ...ranges[i]), options);
      if (i !== 0) disposeForward(f);
      parts[i] = f;
    }
    const logps = stackRows(parts.map((p) => p.logps), width);
    const refLogps = parts[0].refLogps ? stackRows(parts.map((p) => p.refLogps!), width) : logps;
    const entropies = stackRows(parts.map((p) => p.entropies!), width);
    const result = grpoLoss(
      {
        logps,
        refLogps,
        oldLogps: input.oldLogps,
        advantages: input.advantages,
        mask: input.mask,
        entropies,
      },
      lossOptions(config, { ...options, numItemsInBatch }),
    );
    ranges.forEach(([r0, r1], i) => {
      const f = i === 0 ? parts[0] : policyPass(model, batchSlice(input, r0, r1), options);
      const rowsOf = (x: Float64Array) => x.subarray(r0 * width, r1 * width);
      backwardRows(model, f, {
        dLogp: rowsOf(result.dLossDLogp),
        dEntropy: result.dLossDEntropy && rowsOf(result.dLossDEntropy),
      }, { trainable: options.trainable, scale: 1 });
    });
    return {
      loss: result.loss,
      metrics: { ...result.metrics },
      logps,
      refLogps,
      entropies,
      wholeBatchLoss: true,
    };
  }

  let loss = 0;
  const sums: Record<string, number> = {};
  const logpParts: TokenGrid[] = [], refParts: TokenGrid[] = [], entropyParts: TokenGrid[] = [];
  for (const [r0, r1] of ranges) {
    const sub = batchSlice(input, r0, r1);
    const counts = maskCounts(sub.mask);
    // Each micro-batch's share of the whole batch's normaliser (see the module doc).
    const weight = lossType === "bnpo"
      ? counts.tokens / Math.max(1, total.tokens)
      : lossType === "dapo" || lossType === "cispo"
      ? 1
      : (r1 - r0) / rows;
    const r = await grpoGradients(model, sub, {
      ...options,
      scale: weight,
      numItemsInBatch,
    });
    logpParts.push(r.logps);
    refParts.push(r.refLogps);
    if (r.entropies) entropyParts.push(r.entropies);
    loss += weight * r.result.loss;
    const tokenShare = counts.tokens / Math.max(1, total.tokens);
    const ratioShare = config.importanceSampling === "sequence"
      ? counts.rows / Math.max(1, total.rows)
      : tokenShare;
    for (const [key, value] of Object.entries(r.result.metrics)) {
      if (typeof value !== "number") continue;
      const how = COMBINE[key] ?? "ratios";
      const live = (config.importanceSampling === "sequence" ? counts.rows : counts.tokens) > 0;
      if (how === "min" || how === "max") {
        if (!live) continue;
        const prev = sums[key] ?? (how === "min" ? Infinity : -Infinity);
        sums[key] = how === "min" ? Math.min(prev, value) : Math.max(prev, value);
        continue;
      }
      const w = how === "sum"
        ? 1
        : how === "loss"
        ? weight
        : how === "tokens"
        ? tokenShare
        : ratioShare;
      sums[key] = (sums[key] ?? 0) + w * value;
    }
  }
  for (const key of ["ratioMin", "ratioMax"]) if (!Number.isFinite(sums[key])) sums[key] = 0;
  return {
    loss,
    metrics: sums,
    logps: stackRows(logpParts, width),
    refLogps: stackRows(refParts, width),
    ...(entropyParts.length === ranges.length ? { entropies: stackRows(entropyParts, width) } : {}),
    wholeBatchLoss: false,
  };
}
