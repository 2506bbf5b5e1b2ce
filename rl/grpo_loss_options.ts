/**
 * The options of `grpoLoss` (`grpo_loss.ts`): which member of the GRPO family (TRL `loss_type`,
 * `importance_sampling_level`, `delta`, `top_entropy_quantile`, `entropy_coef`, SAPO
 * temperatures; Tunix's KL estimators), validated once per call with defaults that reproduce
 * the seed recipe's loss.
 *
 * @module
 */

import {
  GRPO_LOSS_TYPES,
  type GrpoLossType,
  type ImportanceSamplingLevel,
  type KlEstimator,
  type LossAggregation,
} from "./grpo_config.ts";
import { GrpoMathError } from "./grpo_math.ts";
import type { ClipBounds } from "./grpo_loss_terms.ts";

/** Hyperparameters of `grpoLoss` (a `GrpoConfig` fits). */
export interface GrpoLossOptions {
  /** KL coefficient β ≥ 0. */
  readonly beta: number;
  /** Lower clip ε in (0, 1). */
  readonly epsilon: number;
  /** Upper clip (default `epsilon`); for `cispo` the cap ε_max of the ratio itself (TRL
   * recommends 5). */
  readonly epsilonHigh?: number;
  /** The older name of the first two loss types: `"sequence-mean-token-mean"` = `"grpo"`,
   * `"token-mean"` = `"bnpo"`. `lossType` wins when both are given. */
  readonly aggregation?: LossAggregation;
  /** Loss type (default from `aggregation`, else `"grpo"`); see the module doc. */
  readonly lossType?: GrpoLossType;
  /** One ratio per token (default) or one per row (GSPO). */
  readonly importanceSampling?: ImportanceSamplingLevel;
  /** KL estimator (default `"k3"`, Tunix's `low_var_kl`). */
  readonly klEstimator?: KlEstimator;
  /** Two-sided clip δ > 1 (INTELLECT-2, TRL `delta`): the unclipped ratio is capped at δ;
   * applies to grpo, bnpo, dr_grpo and dapo. null or absent: off. */
  readonly delta?: number | null;
  /** q in [0, 1]: only tokens whose entropy is ≥ the (1 − q) quantile of the masked tokens'
   * entropies carry the policy loss (the KL applies to all). 1 (default): off. */
  readonly topEntropyQuantile?: number;
  /** Entropy bonus coefficient: the loss gets `− entropyCoef · mean entropy` (default 0: off). */
  readonly entropyCoef?: number;
  /** `dr_grpo`'s constant length (default: the grids' length). */
  readonly maxCompletionLength?: number;
  /** `dapo` / `cispo` normaliser: masked tokens of the whole optimizer batch across
   * accumulation (default: the masked count of this call). */
  readonly numItemsInBatch?: number;
  /** SAPO temperature τ for A > 0 (default 1.0). */
  readonly sapoTemperaturePos?: number;
  /** SAPO temperature τ for A ≤ 0 (default 1.05). */
  readonly sapoTemperatureNeg?: number;
}

/** {@linkcode GrpoLossOptions} validated, with every default filled in. */
export interface ResolvedGrpoLossOptions {
  /** β. */
  readonly beta: number;
  /** The loss type (`lossType`, else from `aggregation`, else `"grpo"`). */
  readonly lossType: GrpoLossType;
  /** Importance ratio per token or per row. */
  readonly importanceSampling: ImportanceSamplingLevel;
  /** KL estimator. */
  readonly klEstimator: KlEstimator;
  /** `1 − ε`, `1 + ε_high` and δ (null: off). */
  readonly bounds: ClipBounds;
  /** ε_high (cispo's ratio cap). */
  readonly epsilonHigh: number;
  /** q (1: no entropy mask). */
  readonly topEntropyQuantile: number;
  /** Entropy bonus coefficient (0: off). */
  readonly entropyCoef: number;
  /** dr_grpo's constant, or null: the grids' length. */
  readonly maxCompletionLength: number | null;
  /** dapo / cispo normaliser, or null: the call's masked count. */
  readonly numItemsInBatch: number | null;
  /** SAPO τ for A > 0. */
  readonly sapoTemperaturePos: number;
  /** SAPO τ for A ≤ 0. */
  readonly sapoTemperatureNeg: number;
}

const LEVELS: readonly ImportanceSamplingLevel[] = ["token", "sequence"];
const ESTIMATORS: readonly KlEstimator[] = ["k1", "k2", "k3"];

function finiteAbove(name: string, value: number, min: number): void {
  if (!(Number.isFinite(value) && value > min)) {
    throw new GrpoMathError(`${name} must be a finite number > ${min}, got ${value}`);
  }
}

/**
 * Validates {@linkcode GrpoLossOptions} and fills in the defaults (`grpoLoss` calls it first).
 *
 * @param options The options.
 * @returns The resolved options.
 * @throws {GrpoMathError} Naming the first invalid option.
 * @example
 * ```ts
 * import { resolveGrpoLossOptions } from "./grpo_loss_options.ts";
 * const o = resolveGrpoLossOptions({ beta: 0, epsilon: 0.2, aggregation: "token-mean" });
 * if (o.lossType !== "bnpo" || o.klEstimator !== "k3" || o.bounds.hi !== 1.2) throw new Error();
 * ```
 */
export function resolveGrpoLossOptions(options: GrpoLossOptions): ResolvedGrpoLossOptions {
  const { beta, epsilon } = options;
  const epsilonHigh = options.epsilonHigh ?? epsilon;
  if (!(Number.isFinite(beta) && beta >= 0)) {
    throw new GrpoMathError(`beta must be a finite number >= 0, got ${beta}`);
  }
  if (!(epsilon > 0 && epsilon < 1)) {
    throw new GrpoMathError(`epsilon must be in (0, 1), got ${epsilon}`);
  }
  finiteAbove("epsilonHigh", epsilonHigh, 0);
  const { aggregation } = options;
  if (
    aggregation !== undefined && aggregation !== "sequence-mean-token-mean" &&
    aggregation !== "token-mean"
  ) {
    throw new GrpoMathError(
      `aggregation must be sequence-mean-token-mean or token-mean, got ${aggregation}`,
    );
  }
  const lossType = options.lossType ?? (aggregation === "token-mean" ? "bnpo" : "grpo");
  if (!GRPO_LOSS_TYPES.includes(lossType)) {
    throw new GrpoMathError(
      `lossType must be one of ${GRPO_LOSS_TYPES.join(", ")}, got ${lossType}`,
    );
  }
  const level = options.importanceSampling ?? "token";
  if (!LEVELS.includes(level)) {
    throw new GrpoMathError(`importanceSampling must be token or sequence, got ${level}`);
  }
  const klEstimator = options.klEstimator ?? "k3";
  if (!ESTIMATORS.includes(klEstimator)) {
    throw new GrpoMathError(`klEstimator must be k1, k2 or k3, got ${klEstimator}`);
  }
  const delta = options.delta ?? null;
  if (delta !== null) finiteAbove("delta", delta, 1);
  const topEntropyQuantile = options.topEntropyQuantile ?? 1;
  if (!(topEntropyQuantile >= 0 && topEntropyQuantile <= 1)) {
    throw new GrpoMathError(`topEntropyQuantile must be in [0, 1], got ${topEntropyQuantile}`);
  }
  const entropyCoef = options.entropyCoef ?? 0;
  if (!Number.isFinite(entropyCoef)) {
    throw new GrpoMathError(`entropyCoef must be finite, got ${entropyCoef}`);
  }
  const m = options.maxCompletionLength;
  if (m !== undefined && !(Number.isInteger(m) && m >= 1)) {
    throw new GrpoMathError(`maxCompletionLength must be an integer >= 1, got ${m}`);
  }
  const n = options.numItemsInBatch;
  if (n !== undefined && !(Number.isFinite(n) && n >= 0)) {
    throw new GrpoMathError(`numItemsInBatch must be a finite number >= 0, got ${n}`);
  }
  const tauPos = options.sapoTemperaturePos ?? 1.0, tauNeg = options.sapoTemperatureNeg ?? 1.05;
  finiteAbove("sapoTemperaturePos", tauPos, 0);
  finiteAbove("sapoTemperatureNeg", tauNeg, 0);
  return {
    beta,
    lossType,
    importanceSampling: level,
    klEstimator,
    bounds: { lo: 1 - epsilon, hi: 1 + epsilonHigh, delta },
    epsilonHigh,
    topEntropyQuantile,
    entropyCoef,
    maxCompletionLength: m ?? null,
    numItemsInBatch: n ?? null,
    sapoTemperaturePos: tauPos,
    sapoTemperatureNeg: tauNeg,
  };
}
