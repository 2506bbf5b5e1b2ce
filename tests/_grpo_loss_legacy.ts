/**
 * A frozen copy of `grpoLoss` as it was before issue 17 (commit 9c606c4, validation and shape
 * checks left out), so a test can show the new loss reproduces the old one bit for bit under
 * the default options. Never edit it to follow the library.
 *
 * @module
 */

import type { GrpoLossInputs } from "../rl/grpo_loss.ts";
import { GrpoMathError } from "../rl/grpo_math.ts";

/** The pre-issue-17 options. */
export interface LegacyOptions {
  readonly beta: number;
  readonly epsilon: number;
  readonly epsilonHigh?: number;
  readonly aggregation: "sequence-mean-token-mean" | "token-mean";
}

/** The pre-issue-17 result. */
export interface LegacyResult {
  readonly loss: number;
  readonly shape: readonly [number, number];
  readonly perTokenLoss: Float64Array;
  readonly dLossDLogp: Float64Array;
  readonly perTokenKl: Float64Array;
  readonly ratio: Float64Array;
  readonly metrics: Readonly<Record<string, number>>;
}

function clipSlope(rho: number, lo: number, hi: number): number {
  if (rho > lo && rho < hi) return 1;
  // subtle: lax.max/lax.min split the gradient evenly at ties, so the edges get 1/2.
  if (rho === lo || rho === hi) return 0.5;
  return 0;
}

/**
 * The old loss (`aggregation` was required; no loss types, estimators or entropies).
 *
 * @param inputs Log-probs, mask and advantages (`entropies` ignored).
 * @param options β, ε, ε_high, aggregation.
 * @returns The old result.
 */
export function legacyGrpoLoss(inputs: GrpoLossInputs, options: LegacyOptions): LegacyResult {
  const lo = 1 - options.epsilon, hi = 1 + (options.epsilonHigh ?? options.epsilon);
  const { logps, refLogps, oldLogps, advantages, mask } = inputs;
  const shape = logps.shape;
  const [batch, length] = shape;
  if (batch < 1) throw new GrpoMathError("logps must have at least one row");
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
