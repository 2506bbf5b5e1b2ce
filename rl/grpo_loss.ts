/**
 * The GRPO-family loss on per-token log-probs, its analytic gradients `d loss / d logp` (and
 * `d loss / d entropy` for the entropy bonus) and the per-step loss metrics. Formulas of TRL
 * `GRPOTrainer._compute_loss` (TRL 1.10.0.dev0, commit f2cd577, 2026-07-24); the defaults are
 * Tunix `grpo_loss_fn` (commit 4ee3e5d, 2026-01-30), which TRL's `grpo` equals:
 *
 *     ρ      = exp(logp − oldLogp)                         (oldLogp held constant; "token")
 *     ρ_row  = exp(Σ mask·(logp − oldLogp) / Σ mask)       (GSPO, "sequence": one per row)
 *     kl     = k3: e^d − d − 1 | k2: d²/2 | k1: −d, d = ref − logp
 *     policy = −min(min(ρ, δ)·A, clip(ρ, 1 − ε, 1 + ε_high)·A)      grpo, bnpo, dr_grpo, dapo
 *            = −sg(min(ρ, ε_high))·A·logp     (sg: held constant)        cispo
 *            = −sigmoid(τ·(ρ − 1))·4/τ·A, τ by the sign of A          sapo
 *     loss_t = entropyMask·policy + β·kl
 *
 * aggregated per `lossType`: grpo / sapo (masked mean per row, then mean over rows), bnpo
 * (masked sum / masked count), dr_grpo (masked sum / (batch · maxCompletionLength)), dapo /
 * cispo (masked sum / numItemsInBatch); then `− entropyCoef · mean entropy` over the tokens the
 * entropy mask keeps. The model-side backward multiplies `dLossDLogp` into the log-softmax
 * gradient; nothing here touches the model. Per-token terms live in `grpo_loss_terms.ts`.
 *
 * @module
 */

import { assertGridShape, GrpoMathError, type TokenGrid } from "./grpo_math.ts";
import {
  type GrpoLossOptions,
  type ResolvedGrpoLossOptions,
  resolveGrpoLossOptions,
} from "./grpo_loss_options.ts";
import {
  cispoObjective,
  clippedObjective,
  entropyQuantile,
  klEstimate,
  sapoObjective,
  type TermSlope,
} from "./grpo_loss_terms.ts";

export type { GrpoLossOptions } from "./grpo_loss_options.ts";

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
  /** Per-token entropy of the policy distribution (temperature 1); required when
   * `topEntropyQuantile < 1` or `entropyCoef ≠ 0`, otherwise only logged. */
  readonly entropies?: TokenGrid;
}

/**
 * Per-step loss metrics. Fractions and ratio statistics are over the masked tokens for
 * `importanceSampling: "token"` and over the rows with a masked token for `"sequence"`.
 */
export interface GrpoLossMetrics {
  /** Masked tokens counted (mask ≠ 0). */
  readonly numTokens: number;
  /** Token-mean KL estimate over the masked tokens (Tunix's logged `kl`); 0 without a reference. */
  readonly klMean: number;
  /** The policy part of the loss, aggregated like the loss. */
  readonly policyLoss: number;
  /** The β·KL part of the loss, aggregated like the loss. */
  readonly klLoss: number;
  /** `− entropyCoef · mean entropy` (`loss = policyLoss + klLoss + entropyBonus`); 0 when off. */
  readonly entropyBonus: number;
  /** Clip region: the clipped branch is the minimum (no gradient), low + high (hard-clip types;
   * 0 for cispo and sapo). */
  readonly clipFraction: number;
  /** `min(ρ, δ) < 1 − ε` and `A < 0`. */
  readonly clipLowFraction: number;
  /** `min(ρ, δ) > 1 + ε_high` and `A > 0`. */
  readonly clipHighFraction: number;
  /** `ρ` outside `[1 − ε, 1 + ε_high]`, whatever the sign of A (every loss type). */
  readonly ratioOutsideFraction: number;
  /** cispo: `ρ > ε_high` and `A > 0` (the capped weight); 0 for the other types. */
  readonly cispoClipFraction: number;
  /** sapo: mean gate slope `4·σ·(1 − σ)` (1 on-policy, toward 0 far off-policy); 0 otherwise. */
  readonly sapoGateMean: number;
  /** Smallest ρ (0 when nothing is masked in). */
  readonly ratioMin: number;
  /** Mean ρ. */
  readonly ratioMean: number;
  /** Largest ρ. */
  readonly ratioMax: number;
  /** Masked mean entropy over all masked tokens (0 without entropies). */
  readonly entropyMean: number;
  /** Share of the masked tokens the entropy mask keeps (1 with `topEntropyQuantile` 1). */
  readonly entropyMaskedFraction: number;
}

/** Output of {@linkcode grpoLoss}; per-token arrays are `[batch * length]`, row-major. */
export interface GrpoLossResult {
  /** The aggregated loss. */
  readonly loss: number;
  /** `[batch, length]`. */
  readonly shape: readonly [number, number];
  /** Per-token loss (`entropyMask·policy + β·kl`) times the mask; the entropy bonus is not in it. */
  readonly perTokenLoss: Float64Array;
  /** `d loss / d logps` (old and reference log-probs held constant); 0 where masked out. */
  readonly dLossDLogp: Float64Array;
  /** `d loss / d entropies`, present when `entropyCoef ≠ 0` (the entropy mask held constant). */
  readonly dLossDEntropy?: Float64Array;
  /** The KL estimate times the mask (all 0 without a reference). */
  readonly perTokenKl: Float64Array;
  /** `ρ` on masked tokens (the row's for `"sequence"`), 0 elsewhere. */
  readonly ratio: Float64Array;
  /** See {@linkcode GrpoLossMetrics}. */
  readonly metrics: GrpoLossMetrics;
}

/** Running clip / ratio statistics over tokens (or rows for sequence-level ratios). */
class RatioStats {
  count = 0;
  low = 0;
  high = 0;
  outside = 0;
  cispo = 0;
  gate = 0;
  min = Infinity;
  max = -Infinity;
  sum = 0;
  readonly o: ResolvedGrpoLossOptions;
  constructor(o: ResolvedGrpoLossOptions) {
    this.o = o;
  }

  observe(rho: number, a: number): void {
    const { lo, hi, delta } = this.o.bounds;
    this.count++;
    this.sum += rho;
    this.min = Math.min(this.min, rho);
    this.max = Math.max(this.max, rho);
    if (rho < lo || rho > hi) this.outside++;
    if (this.o.lossType === "cispo") {
      if (rho > this.o.epsilonHigh && a > 0) this.cispo++;
    } else if (this.o.lossType === "sapo") {
      const tau = a > 0 ? this.o.sapoTemperaturePos : this.o.sapoTemperatureNeg;
      const g = 1 / (1 + Math.exp(-tau * (rho - 1)));
      this.gate += 4 * g * (1 - g);
    } else {
      // TRL counts on the δ-capped ratio.
      const capped = delta === null || delta === undefined ? rho : Math.min(rho, delta);
      if (capped < lo && a < 0) this.low++;
      if (capped > hi && a > 0) this.high++;
    }
  }

  frac(n: number): number {
    return this.count === 0 ? 0 : n / this.count;
  }
}

/**
 * GRPO-family loss, per-token values, analytic gradients and metrics.
 *
 * The gradient follows JAX's conventions, as Tunix's loss is differentiated by JAX: where
 * `min(ρ, δ)·A` and `clip(ρ)·A` are equal (always when `ρ` lies inside the clip range, e.g. ratio
 * exactly 1 for μ = 1) each branch receives half, which sums to the unclipped `−A·ρ`; where
 * the clipped branch is strictly smaller the policy gradient is 0. With `"sequence"` ratios the
 * row's ratio carries the gradient to every masked token of the row. The entropy mask is a
 * constant (a step function of the entropies).
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
 * // Dr. GRPO divides the masked sum by batch · maxCompletionLength = 1 · 4.
 * const d = grpoLoss(
 *   { logps: tokenGrid([[-1, -2]]), advantages: [0.5], mask: tokenGrid([[1, 0]]) },
 *   { beta: 0, epsilon: 0.2, lossType: "dr_grpo", maxCompletionLength: 4 },
 * );
 * if (d.loss !== -0.125) throw new Error(String(d.loss));
 * ```
 */
export function grpoLoss(inputs: GrpoLossInputs, options: GrpoLossOptions): GrpoLossResult {
  const o = resolveGrpoLossOptions(options);
  const { logps, refLogps, oldLogps, advantages, mask, entropies } = inputs;
  assertGridShape("logps", logps);
  const shape = logps.shape;
  const [batch, length] = shape;
  if (batch < 1) throw new GrpoMathError("logps must have at least one row");
  assertGridShape("mask", mask, shape);
  if (refLogps) assertGridShape("refLogps", refLogps, shape);
  if (oldLogps) assertGridShape("oldLogps", oldLogps, shape);
  if (entropies) assertGridShape("entropies", entropies, shape);
  if (advantages.length !== batch) {
    throw new GrpoMathError(
      `advantages must have ${batch} entries (one per row), got ${advantages.length}`,
    );
  }
  const beta = o.beta;
  if (beta !== 0 && !refLogps) throw new GrpoMathError(`refLogps is required when beta is ${beta}`);
  if ((o.topEntropyQuantile < 1 || o.entropyCoef !== 0) && !entropies) {
    throw new GrpoMathError(
      "entropies are required when topEntropyQuantile < 1 or entropyCoef ≠ 0",
    );
  }

  // Aggregation weight of each masked token: the loss is sum(weight * mask * perTokenLoss).
  let maskSum = 0;
  const rowSums = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < length; j++) rowSums[b] += mask.data[b * length + j];
    maskSum += rowSums[b];
  }
  const maxCompletionLength = o.maxCompletionLength ?? length;
  const numItems = o.numItemsInBatch ?? maskSum;
  const { lossType } = o;
  const sequence = o.importanceSampling === "sequence";
  const rowWeight = (b: number): number => {
    switch (lossType) {
      case "bnpo":
        return 1 / Math.max(1, maskSum);
      case "dr_grpo":
        return 1 / (batch * maxCompletionLength);
      case "dapo":
      case "cispo":
        return 1 / Math.max(1, numItems);
      default: // grpo, sapo
        return 1 / Math.max(1, rowSums[b]) / batch;
    }
  };

  // Entropy mask (TRL get_high_entropy_mask): kept = entropy >= the (1 − q) quantile.
  const threshold = o.topEntropyQuantile < 1 && entropies
    ? entropyQuantile(entropies, mask, 1 - o.topEntropyQuantile)
    : null;
  const kept = (k: number): boolean =>
    threshold === null ? o.topEntropyQuantile >= 1 : entropies!.data[k] >= threshold;

  // GSPO: one ratio per row, exp of the masked mean log-ratio.
  const rowRatio = new Float64Array(batch).fill(1);
  if (sequence) {
    for (let b = 0; b < batch; b++) {
      let s = 0;
      for (let j = 0; j < length; j++) {
        const k = b * length + j;
        if (mask.data[k] !== 0 && oldLogps) s += mask.data[k] * (logps.data[k] - oldLogps.data[k]);
      }
      rowRatio[b] = Math.exp(s / Math.max(1, rowSums[b]));
    }
  }

  const n = batch * length;
  const perTokenLoss = new Float64Array(n);
  const dLossDLogp = new Float64Array(n);
  const perTokenKl = new Float64Array(n);
  const ratio = new Float64Array(n);
  const stats = new RatioStats(o);
  let policyLoss = 0, klLoss = 0, klSum = 0, numTokens = 0;
  let entropySum = 0, keptTokens = 0, keptWeight = 0, keptEntropy = 0;
  for (let b = 0; b < batch; b++) {
    const a = advantages[b];
    const w = rowWeight(b);
    let rowSlope = 0; // Σ w·m·d policy / d ρ_row over the row ("sequence")
    if (sequence && rowSums[b] !== 0) stats.observe(rowRatio[b], a);
    for (let j = 0; j < length; j++) {
      const k = b * length + j;
      const m = mask.data[k];
      if (m === 0) continue;
      numTokens++;
      const lp = logps.data[k];
      const rho = sequence ? rowRatio[b] : oldLogps ? Math.exp(lp - oldLogps.data[k]) : 1;
      if (!sequence) stats.observe(rho, a);
      let term: TermSlope;
      if (lossType === "cispo") term = cispoObjective(rho, a, lp, o.epsilonHigh);
      else if (lossType === "sapo") {
        term = sapoObjective(rho, a, a > 0 ? o.sapoTemperaturePos : o.sapoTemperatureNeg);
      } else term = clippedObjective(rho, a, o.bounds);
      const policy = term.value;
      let kl = 0, dKl = 0;
      if (refLogps) {
        const t = klEstimate(lp, refLogps.data[k], o.klEstimator);
        kl = t.value;
        dKl = t.slope;
      }
      const e = kept(k);
      // Policy gradient on this token: CISPO's slope is already d/dlogp; the others chain
      // d/dρ · dρ/dlogp = slope · ρ here ("token") or through the row ratio below ("sequence").
      let dPolicy = 0;
      if (e && lossType === "cispo") dPolicy = term.slope;
      else if (e && !sequence) dPolicy = term.slope * rho;
      else if (e) rowSlope += w * m * term.slope;
      perTokenLoss[k] = m * (e ? policy + beta * kl : beta * kl);
      dLossDLogp[k] = w * m * (dPolicy + beta * dKl);
      perTokenKl[k] = m * kl;
      ratio[k] = rho;
      if (e) policyLoss += w * m * policy;
      klLoss += w * m * beta * kl;
      klSum += m * kl;
      if (e) keptTokens++;
      if (entropies) {
        entropySum += m * entropies.data[k];
        if (e) keptWeight += m;
        if (e) keptEntropy += m * entropies.data[k];
      }
    }
    if (rowSlope !== 0) {
      const scale = rowSlope * rowRatio[b] / Math.max(1, rowSums[b]);
      for (let j = 0; j < length; j++) {
        const k = b * length + j;
        if (mask.data[k] !== 0) dLossDLogp[k] += scale * mask.data[k];
      }
    }
  }

  // Entropy bonus (TRL: dapo/cispo divide by their global token count, the others average).
  let entropyBonus = 0;
  let dLossDEntropy: Float64Array | undefined;
  if (o.entropyCoef !== 0) {
    const denom = lossType === "dapo" || lossType === "cispo"
      ? Math.max(1, numItems)
      : Math.max(1, keptWeight);
    entropyBonus = -o.entropyCoef * keptEntropy / denom;
    dLossDEntropy = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const m = mask.data[k];
      if (m !== 0 && kept(k)) dLossDEntropy[k] = -o.entropyCoef * m / denom;
    }
  }

  const frac = (count: number): number => (numTokens === 0 ? 0 : count / numTokens);
  const loss = o.entropyCoef === 0 ? policyLoss + klLoss : policyLoss + klLoss + entropyBonus;
  return {
    loss,
    shape,
    perTokenLoss,
    dLossDLogp,
    ...(dLossDEntropy ? { dLossDEntropy } : {}),
    perTokenKl,
    ratio,
    metrics: {
      numTokens,
      klMean: klSum / Math.max(1, maskSum),
      policyLoss,
      klLoss,
      entropyBonus,
      clipFraction: stats.frac(stats.low + stats.high),
      clipLowFraction: stats.frac(stats.low),
      clipHighFraction: stats.frac(stats.high),
      ratioOutsideFraction: stats.frac(stats.outside),
      cispoClipFraction: stats.frac(stats.cispo),
      sapoGateMean: stats.frac(stats.gate),
      ratioMin: stats.count === 0 ? 0 : stats.min,
      ratioMean: stats.frac(stats.sum),
      ratioMax: stats.count === 0 ? 0 : stats.max,
      entropyMean: entropies ? entropySum / Math.max(1, maskSum) : 0,
      entropyMaskedFraction: frac(keptTokens),
    },
  };
}
