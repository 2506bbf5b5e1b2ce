/**
 * The GRPO loss on per-token log-probs, its analytic gradient `d loss / d logp` and the per-step
 * loss metrics. Formula of Tunix `grpo_loss_fn` (commit 4ee3e5d, 2026-01-30):
 *
 *     rho  = exp(logp − oldLogp)                       (oldLogp held constant)
 *     kl   = exp(ref − logp) − (ref − logp) − 1         ("low_var_kl", Schulman's k3)
 *     loss_t = −min(rho·A, clip(rho, 1 − ε, 1 + ε_high)·A) + β·kl
 *
 * aggregated with `sequence-mean-token-mean` (masked mean per row, then mean over all rows) or
 * `token-mean` (masked sum / masked count). The model-side backward multiplies `dLossDLogp` into
 * the log-softmax gradient; nothing here touches the model.
 *
 * @module
 */

import type { LossAggregation } from "./grpo_config.ts";
import { assertGridShape, GrpoMathError, type TokenGrid } from "./grpo_math.ts";

/** Per-token inputs of {@linkcode grpoLoss}; all grids are `[batch, length]`. */
export interface GrpoLossInputs {
  /** Policy log-probs of the completion tokens (temperature 1). */
  readonly logps: TokenGrid;
  /** Reference-model log-probs; required when `beta` is not 0. */
  readonly refLogps?: TokenGrid;
  /** Old-policy log-probs (μ > 1, off-policy); omitted: the detached current policy, ratio 1. */
  readonly oldLogps?: TokenGrid;
  /** `[batch]` advantage per completion. */
  readonly advantages: ArrayLike<number>;
  /** Loss mask (see `completionMask`); tokens with mask 0 are ignored entirely. */
  readonly mask: TokenGrid;
}

/** Hyperparameters of {@linkcode grpoLoss} (a `GrpoConfig` fits). */
export interface GrpoLossOptions {
  /** KL coefficient β ≥ 0. */
  readonly beta: number;
  /** Lower clip ε in (0, 1). */
  readonly epsilon: number;
  /** Upper clip (default `epsilon`). */
  readonly epsilonHigh?: number;
  /** Aggregation mode. */
  readonly aggregation: LossAggregation;
}

/** Per-step loss metrics. Fractions are over the masked tokens. */
export interface GrpoLossMetrics {
  /** Masked tokens counted (mask ≠ 0). */
  readonly numTokens: number;
  /** Token-mean KL over the masked tokens (Tunix's logged `kl`); 0 without a reference. */
  readonly klMean: number;
  /** The policy part of the loss, aggregated like the loss. */
  readonly policyLoss: number;
  /** The β·KL part of the loss, aggregated like the loss (`loss = policyLoss + klLoss`). */
  readonly klLoss: number;
  /** Tokens where the clipped branch is the minimum (no gradient): low + high. */
  readonly clipFraction: number;
  /** Tokens with `rho < 1 − ε` and `A < 0`. */
  readonly clipLowFraction: number;
  /** Tokens with `rho > 1 + ε_high` and `A > 0`. */
  readonly clipHighFraction: number;
  /** Tokens with `rho` outside `[1 − ε, 1 + ε_high]`, whatever the sign of A. */
  readonly ratioOutsideFraction: number;
}

/** Output of {@linkcode grpoLoss}; per-token arrays are `[batch * length]`, row-major. */
export interface GrpoLossResult {
  /** The aggregated loss. */
  readonly loss: number;
  /** `[batch, length]`. */
  readonly shape: readonly [number, number];
  /** Per-token loss times the mask. */
  readonly perTokenLoss: Float64Array;
  /** `d loss / d logps` (old and reference log-probs held constant); 0 where masked out. */
  readonly dLossDLogp: Float64Array;
  /** `exp(ref − logp) − (ref − logp) − 1` times the mask (all 0 without a reference). */
  readonly perTokenKl: Float64Array;
  /** `rho` on masked tokens, 0 elsewhere. */
  readonly ratio: Float64Array;
  /** See {@linkcode GrpoLossMetrics}. */
  readonly metrics: GrpoLossMetrics;
}

/** Derivative of `clip(rho, lo, hi)` as JAX defines it (`jnp.clip` = max then min). */
function clipSlope(rho: number, lo: number, hi: number): number {
  if (rho > lo && rho < hi) return 1;
  // subtle: lax.max/lax.min split the gradient evenly at ties, so the edges get 1/2.
  if (rho === lo || rho === hi) return 0.5;
  return 0;
}

function validateOptions(options: GrpoLossOptions): { lo: number; hi: number } {
  const { beta, epsilon } = options;
  const epsilonHigh = options.epsilonHigh ?? epsilon;
  if (!(Number.isFinite(beta) && beta >= 0)) {
    throw new GrpoMathError(`beta must be a finite number >= 0, got ${beta}`);
  }
  if (!(epsilon > 0 && epsilon < 1)) {
    throw new GrpoMathError(`epsilon must be in (0, 1), got ${epsilon}`);
  }
  if (!(Number.isFinite(epsilonHigh) && epsilonHigh > 0)) {
    throw new GrpoMathError(`epsilonHigh must be a finite number > 0, got ${epsilonHigh}`);
  }
  if (options.aggregation !== "sequence-mean-token-mean" && options.aggregation !== "token-mean") {
    throw new GrpoMathError(
      `aggregation must be sequence-mean-token-mean or token-mean, got ${options.aggregation}`,
    );
  }
  return { lo: 1 - epsilon, hi: 1 + epsilonHigh };
}

/**
 * GRPO loss, per-token values, analytic `d loss / d logp` and metrics.
 *
 * The gradient follows JAX's conventions, as Tunix's loss is differentiated by JAX: where
 * `rho·A` and `clip(rho)·A` are equal (always when `rho` lies inside the clip range, e.g. ratio
 * exactly 1 for μ = 1) each branch receives half, which sums to the unclipped `−A·rho`; where
 * the clipped branch is strictly smaller the policy gradient is 0.
 *
 * @param inputs See {@linkcode GrpoLossInputs}.
 * @param options See {@linkcode GrpoLossOptions}.
 * @returns See {@linkcode GrpoLossResult}.
 * @example
 * ```ts
 * import { grpoLoss } from "./grpo_loss.ts";
 * import { tokenGrid } from "./grpo_math.ts";
 * const r = grpoLoss(
 *   { logps: tokenGrid([[-1, -2]]), advantages: [0.5], mask: tokenGrid([[1, 0]]) },
 *   { beta: 0, epsilon: 0.2, aggregation: "token-mean" },
 * );
 * // ratio 1: loss −A, gradient −A on the one masked token.
 * if (r.loss !== -0.5 || r.dLossDLogp[0] !== -0.5 || r.dLossDLogp[1] !== 0) throw new Error();
 * ```
 */
export function grpoLoss(inputs: GrpoLossInputs, options: GrpoLossOptions): GrpoLossResult {
  const { lo, hi } = validateOptions(options);
  const { logps, refLogps, oldLogps, advantages, mask } = inputs;
  assertGridShape("logps", logps);
  const shape = logps.shape;
  const [batch, length] = shape;
  if (batch < 1) throw new GrpoMathError("logps must have at least one row");
  assertGridShape("mask", mask, shape);
  if (refLogps) assertGridShape("refLogps", refLogps, shape);
  if (oldLogps) assertGridShape("oldLogps", oldLogps, shape);
  if (advantages.length !== batch) {
    throw new GrpoMathError(
      `advantages must have ${batch} entries (one per row), got ${advantages.length}`,
    );
  }
  const beta = options.beta;
  if (beta !== 0 && !refLogps) throw new GrpoMathError(`refLogps is required when beta is ${beta}`);

  // Aggregation weight of each masked token: the loss is sum(weight * mask * perTokenLoss).
  let maskSum = 0;
  const rowSums = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < length; j++) rowSums[b] += mask.data[b * length + j];
    maskSum += rowSums[b];
  }
  const rowWeight = (b: number): number =>
    options.aggregation === "token-mean"
      ? 1 / Math.max(1, maskSum)
      : 1 / Math.max(1, rowSums[b]) / batch;

  const n = batch * length;
  const perTokenLoss = new Float64Array(n);
  const dLossDLogp = new Float64Array(n);
  const perTokenKl = new Float64Array(n);
  const ratio = new Float64Array(n);
  let policyLoss = 0, klLoss = 0, klSum = 0;
  let numTokens = 0, clipLow = 0, clipHigh = 0, outside = 0;
  for (let b = 0; b < batch; b++) {
    const a = advantages[b];
    const w = rowWeight(b);
    for (let j = 0; j < length; j++) {
      const k = b * length + j;
      const m = mask.data[k];
      if (m === 0) continue;
      numTokens++;
      const lp = logps.data[k];
      const rho = oldLogps ? Math.exp(lp - oldLogps.data[k]) : 1;
      const clipped = Math.min(Math.max(rho, lo), hi);
      const unclippedTerm = rho * a;
      const clippedTerm = clipped * a;
      const slope = clipSlope(rho, lo, hi);
      const dMinDRho = unclippedTerm < clippedTerm
        ? a
        : unclippedTerm > clippedTerm
        ? slope * a
        : 0.5 * a + 0.5 * slope * a;
      const policy = -Math.min(unclippedTerm, clippedTerm);
      let kl = 0, dKl = 0;
      if (refLogps) {
        const diff = refLogps.data[k] - lp;
        kl = Math.exp(diff) - diff - 1;
        dKl = 1 - Math.exp(diff);
      }
      perTokenLoss[k] = m * (policy + beta * kl);
      dLossDLogp[k] = w * m * (-dMinDRho * rho + beta * dKl);
      perTokenKl[k] = m * kl;
      ratio[k] = rho;
      policyLoss += w * m * policy;
      klLoss += w * m * beta * kl;
      klSum += m * kl;
      if (rho < lo && a < 0) clipLow++;
      if (rho > hi && a > 0) clipHigh++;
      if (rho < lo || rho > hi) outside++;
    }
  }
  const frac = (count: number): number => (numTokens === 0 ? 0 : count / numTokens);
  return {
    loss: policyLoss + klLoss,
    shape,
    perTokenLoss,
    dLossDLogp,
    perTokenKl,
    ratio,
    metrics: {
      numTokens,
      klMean: klSum / Math.max(1, maskSum),
      policyLoss,
      klLoss,
      clipFraction: frac(clipLow + clipHigh),
      clipLowFraction: frac(clipLow),
      clipHighFraction: frac(clipHigh),
      ratioOutsideFraction: frac(outside),
    },
  };
}
