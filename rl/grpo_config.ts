/**
 * GRPO hyperparameters as one frozen, validated object. Defaults are the seed recipe's
 * (Google Tunix `examples/grpo_gemma.ipynb`, Gemma 3 1B-IT on GSM8K), except `numGenerations`
 * which follows the recipe value of 4. The GRPO family's variants (TRL's `loss_type`,
 * `importance_sampling_level`, δ, entropy masking and bonus, advantage scale and baseline,
 * DAPO's overlong penalty, truncation masking and dynamic sampling) are fields too; their
 * defaults give today's GRPO.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";

/** Thrown when a GRPO configuration field is invalid; `field` (= `path`) names it. */
export class GrpoConfigError extends FieldError {
  override readonly name: string = "GrpoConfigError";
}

/** How per-token losses become one number (Tunix `loss_agg_mode`); the older name of the first
 * two {@linkcode GrpoLossType}s: `"sequence-mean-token-mean"` = `"grpo"`, `"token-mean"` = `"bnpo"`. */
export type LossAggregation = "sequence-mean-token-mean" | "token-mean";

/** The aggregation modes {@linkcode LossAggregation} allows. */
export const LOSS_AGGREGATIONS: readonly LossAggregation[] = Object.freeze([
  "sequence-mean-token-mean",
  "token-mean",
]);

/**
 * The GRPO-family loss (TRL `loss_type`): `"grpo"` (per-sequence masked mean, then mean over
 * sequences), `"bnpo"` (masked sum / masked count), `"dr_grpo"` (masked sum / (batch ·
 * `maxNewTokens`)), `"dapo"` and `"cispo"` (masked sum / masked count of the whole optimizer
 * batch), `"sapo"` (soft gate instead of the clip, aggregated like grpo).
 */
export type GrpoLossType = "grpo" | "bnpo" | "dr_grpo" | "dapo" | "cispo" | "sapo";

/** The loss types {@linkcode GrpoLossType} allows. */
export const GRPO_LOSS_TYPES: readonly GrpoLossType[] = Object.freeze([
  "grpo",
  "bnpo",
  "dr_grpo",
  "dapo",
  "cispo",
  "sapo",
]);

/** One importance ratio per token, or one per sequence (GSPO). */
export type ImportanceSamplingLevel = "token" | "sequence";

/** Schulman's KL estimators with `d = ref − logp`: k1 `−d`, k2 `d²/2`, k3 `e^d − d − 1`. */
export type KlEstimator = "k1" | "k2" | "k3";

/** What divides the centred rewards: the group's std, the batch's std, or nothing (Dr. GRPO). */
export type AdvantageScale = "group" | "batch" | "none";

/** What is subtracted from a reward: its group's mean, or the mean of the other G − 1. */
export type AdvantageBaseline = "mean" | "leave-one-out";

/**
 * DAPO's soft overlong punishment as an extra reward: 0 up to `maxLength − cacheLength`
 * completion tokens, then linear down to −1 at `maxLength`, −1 beyond.
 */
export interface OverlongPenaltyConfig {
  /** Add the penalty to the reward functions' sum. */
  readonly enabled: boolean;
  /** Length (tokens, EOS included) where the penalty reaches −1 (integer ≥ 1). */
  readonly maxLength: number;
  /** Length of the linear ramp before `maxLength` (integer in [0, maxLength]; 0: a step from 0
   * to −1 after `maxLength`). */
  readonly cacheLength: number;
}

/** Validated GRPO hyperparameters (frozen). */
export interface GrpoConfig {
  /** Completions sampled per prompt, G (≥ 2: the advantage needs a group std). */
  readonly numGenerations: number;
  /** Optimisation passes per rollout batch, μ (≥ 1; μ > 1 needs stored old log-probs). */
  readonly numIterations: number;
  /** KL penalty coefficient β (≥ 0; 0 skips the reference model). */
  readonly beta: number;
  /** Lower clip ε: the ratio is clipped to [1 − ε, 1 + εHigh] (0 < ε < 1). */
  readonly epsilon: number;
  /** Upper clip ε_high (> 0; defaults to `epsilon`); for `cispo` the cap of the ratio itself. */
  readonly epsilonHigh: number;
  /** Sampling temperature for rollouts (> 0). */
  readonly temperature: number;
  /** Top-k for rollouts (integer ≥ 0; 0 disables it). */
  readonly topK: number;
  /** Top-p for rollouts, in (0, 1]. */
  readonly topP: number;
  /** Longest prompt in tokens (integer ≥ 1). */
  readonly maxPromptLength: number;
  /** Most new tokens per completion (integer ≥ 1). */
  readonly maxNewTokens: number;
  /** Loss aggregation mode: kept for configs written before `lossType`; equal to `lossType`
   * for grpo / bnpo, ignored by the other loss types. */
  readonly aggregation: LossAggregation;
  /** Added to the std in the advantage denominator (≥ 0). */
  readonly advantageEpsilon: number;
  /** The loss (default from `aggregation`: `"grpo"`). */
  readonly lossType: GrpoLossType;
  /** Per-token ratios, or one per sequence (GSPO). */
  readonly importanceSampling: ImportanceSamplingLevel;
  /** KL estimator of the β term (`"k3"`, Tunix's and TRL's). */
  readonly klEstimator: KlEstimator;
  /** Two-sided clip (INTELLECT-2): the unclipped ratio capped at δ (> 1), or null for none. */
  readonly delta: number | null;
  /** Only tokens whose entropy is in the top q of the batch's carry the policy loss (in (0, 1];
   * 1 is off). */
  readonly topEntropyQuantile: number;
  /** Entropy bonus: the loss minus coef × the masked mean entropy (≥ 0; 0 is off). */
  readonly entropyCoef: number;
  /** Advantage denominator. */
  readonly advantageScale: AdvantageScale;
  /** Advantage baseline. */
  readonly advantageBaseline: AdvantageBaseline;
  /** SAPO gate temperature for positive advantages (> 0). */
  readonly sapoTemperaturePos: number;
  /** SAPO gate temperature for negative advantages (> 0). */
  readonly sapoTemperatureNeg: number;
  /** Completions that end without EOS carry no loss (their rewards still count in the groups). */
  readonly maskTruncatedCompletions: boolean;
  /** DAPO's overlong reward shaping. */
  readonly overlongPenalty: OverlongPenaltyConfig;
  /** DAPO's dynamic sampling: groups whose rewards are all equal are dropped and more prompts
   * are drawn until the batch is full. */
  readonly dynamicSampling: boolean;
  /** Extra sampling rounds per step of dynamic sampling (integer ≥ 0). */
  readonly maxResampleRounds: number;
  /**
   * Rollout workers may sample a step's prompts up to this many policy versions ahead of the
   * step (integer ≥ 0; 0: every completion comes from the current policy, and a run with
   * workers equals the run without). Stale completions are corrected by the importance ratio
   * against their rollout log-probs. Needs `dynamicSampling` off (later steps' prompts must be
   * known in advance).
   */
  readonly maxStaleness: number;
}

/**
 * What {@linkcode createGrpoConfig} accepts: any field of {@linkcode GrpoConfig}, where
 * `epsilonHigh` and `lossType` may be null (then they follow `epsilon` and `aggregation`) and
 * `overlongPenalty` may be partial, with `maxLength` / `cacheLength` null for their defaults.
 */
export type GrpoConfigInput =
  & Partial<Omit<GrpoConfig, "epsilonHigh" | "lossType" | "overlongPenalty">>
  & {
    readonly epsilonHigh?: number | null;
    readonly lossType?: GrpoLossType | null;
    readonly overlongPenalty?: {
      readonly enabled?: boolean;
      readonly maxLength?: number | null;
      readonly cacheLength?: number | null;
    };
  };

/** The seed recipe's values (the GRPO-family fields at today's GRPO). */
export const GRPO_RECIPE_DEFAULTS: Readonly<
  Omit<GrpoConfig, "epsilonHigh" | "lossType" | "overlongPenalty">
> = Object.freeze({
  numGenerations: 4,
  numIterations: 1,
  beta: 0.08,
  epsilon: 0.2,
  temperature: 0.9,
  topK: 50,
  topP: 1.0,
  maxPromptLength: 256,
  maxNewTokens: 768,
  aggregation: "sequence-mean-token-mean",
  advantageEpsilon: 1e-4,
  importanceSampling: "token",
  klEstimator: "k3",
  delta: null,
  topEntropyQuantile: 1,
  entropyCoef: 0,
  advantageScale: "group",
  advantageBaseline: "mean",
  sapoTemperaturePos: 1.0,
  sapoTemperatureNeg: 1.05,
  maskTruncatedCompletions: false,
  dynamicSampling: false,
  maxResampleRounds: 3,
  maxStaleness: 0,
});

/** The loss type an aggregation mode stands for. */
const LOSS_TYPE_OF: Readonly<Record<LossAggregation, GrpoLossType>> = Object.freeze({
  "sequence-mean-token-mean": "grpo",
  "token-mean": "bnpo",
});

/**
 * DAPO's ramp length for a `maxLength` when `overlongPenalty.cacheLength` is null: a fifth
 * (DAPO: 4096 of 20480 tokens), at least 1.
 *
 * @param maxLength The penalty's `maxLength`.
 * @returns The default `cacheLength`.
 * @example
 * ```ts
 * import { defaultOverlongCacheLength } from "./grpo_config.ts";
 * if (defaultOverlongCacheLength(20480) !== 4096) throw new Error();
 * ```
 */
export function defaultOverlongCacheLength(maxLength: number): number {
  return Math.max(1, Math.round(maxLength / 5));
}

const KNOWN_FIELDS: readonly string[] = [
  ...Object.keys(GRPO_RECIPE_DEFAULTS),
  "epsilonHigh",
  "lossType",
  "overlongPenalty",
];
const OVERLONG_FIELDS: readonly string[] = ["enabled", "maxLength", "cacheLength"];

function requireNumber(field: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw GrpoConfigError.mustBe(field, "a finite number", value, String);
  }
  return value;
}

function requireInteger(field: string, value: unknown, min: number): number {
  const v = requireNumber(field, value);
  if (!Number.isInteger(v)) throw GrpoConfigError.mustBe(field, "an integer", v, String);
  if (v < min) throw GrpoConfigError.mustBe(field, `>= ${min}`, v, String);
  return v;
}

function requireRange(
  field: string,
  value: unknown,
  check: (v: number) => boolean,
  expected: string,
): number {
  const v = requireNumber(field, value);
  if (!check(v)) throw GrpoConfigError.mustBe(field, expected, v, String);
  return v;
}

function requireOneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    const expected = `one of ${allowed.join(", ")}`;
    throw GrpoConfigError.mustBe(field, expected, value, String);
  }
  return value as T;
}

function requireBoolean(field: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw GrpoConfigError.mustBe(field, "true or false", value);
  return value;
}

function checkKnown(keys: readonly string[], known: readonly string[], prefix: string): void {
  for (const key of keys) {
    if (!known.includes(key)) {
      const field = prefix + key;
      throw new GrpoConfigError(
        field,
        `${field} is not a GRPO config field (known: ${known.join(", ")})`,
      );
    }
  }
}

/** The overlong penalty with its defaults (`maxLength`: `maxNewTokens`). */
function overlongPenalty(
  input: GrpoConfigInput["overlongPenalty"],
  maxNewTokens: number,
): OverlongPenaltyConfig {
  const o = input ?? {};
  if (o === null || typeof o !== "object" || Array.isArray(o)) {
    throw GrpoConfigError.mustBe("overlongPenalty", "an object", o);
  }
  checkKnown(Object.keys(o), OVERLONG_FIELDS, "overlongPenalty.");
  const maxLength = o.maxLength == null
    ? maxNewTokens
    : requireInteger("overlongPenalty.maxLength", o.maxLength, 1);
  const cacheLength = o.cacheLength == null
    ? defaultOverlongCacheLength(maxLength)
    : requireInteger("overlongPenalty.cacheLength", o.cacheLength, 0);
  if (cacheLength > maxLength) {
    throw GrpoConfigError.mustBe(
      "overlongPenalty.cacheLength",
      `<= overlongPenalty.maxLength (${maxLength})`,
      cacheLength,
      String,
    );
  }
  const enabled = requireBoolean("overlongPenalty.enabled", o.enabled ?? false);
  if (enabled && maxLength - cacheLength >= maxNewTokens) {
    throw GrpoConfigError.mustBe(
      "overlongPenalty.maxLength",
      `< maxNewTokens + overlongPenalty.cacheLength (${maxNewTokens + cacheLength}), or the ` +
        `penalty never applies`,
      maxLength,
      String,
    );
  }
  return Object.freeze({ enabled, maxLength, cacheLength });
}

/**
 * Builds a validated, frozen {@linkcode GrpoConfig} from the recipe defaults and overrides.
 *
 * The GRPO family's fields default to today's GRPO: `lossType` follows `aggregation`
 * (`"sequence-mean-token-mean"` → `"grpo"`, `"token-mean"` → `"bnpo"`; a given `lossType`
 * wins, and `aggregation` is then set to match for grpo / bnpo), token-level ratios, the k3
 * KL, no δ, no entropy masking or bonus, group-std advantages around the group mean, SAPO
 * temperatures 1.0 / 1.05, no truncation masking, no overlong penalty (`maxLength`:
 * `maxNewTokens`, `cacheLength`: a fifth of it), no dynamic sampling (3 extra rounds when on).
 *
 * @param overrides Fields to change; unknown field names are rejected.
 * @returns The frozen config.
 * @throws {GrpoConfigError} Naming the invalid field, e.g. `"numGenerations must be >= 2, got 1"`,
 *   or `epsilonHigh` for `lossType: "cispo"` without an explicit `epsilonHigh` ≥ 1.
 * @example
 * ```ts
 * import { createGrpoConfig } from "./grpo_config.ts";
 * const cfg = createGrpoConfig({ numGenerations: 8, epsilonHigh: 0.28 });
 * if (cfg.beta !== 0.08 || cfg.epsilon !== 0.2) throw new Error("unexpected defaults");
 * if (createGrpoConfig({ aggregation: "token-mean" }).lossType !== "bnpo") throw new Error();
 * const dapo = createGrpoConfig({ lossType: "dapo", epsilonHigh: 0.28, dynamicSampling: true });
 * if (dapo.maxResampleRounds !== 3 || dapo.overlongPenalty.enabled) throw new Error();
 * ```
 */
export function createGrpoConfig(overrides: GrpoConfigInput = {}): GrpoConfig {
  checkKnown(Object.keys(overrides), KNOWN_FIELDS, "");
  // subtle: a key given as undefined keeps its default (config sections pass absent fields so)
  const given = Object.fromEntries(
    Object.entries(overrides).filter(([, v]) => v !== undefined),
  ) as GrpoConfigInput;
  const merged = { ...GRPO_RECIPE_DEFAULTS, ...given };
  const epsilon = requireRange("epsilon", merged.epsilon, (v) => v > 0 && v < 1, "in (0, 1)");
  const mode = requireOneOf("aggregation", merged.aggregation, LOSS_AGGREGATIONS);
  const lossType = given.lossType == null
    ? LOSS_TYPE_OF[mode]
    : requireOneOf("lossType", given.lossType, GRPO_LOSS_TYPES);
  const aggregation = lossType === "grpo"
    ? "sequence-mean-token-mean"
    : lossType === "bnpo"
    ? "token-mean"
    : mode;
  const epsilonHigh = requireRange(
    "epsilonHigh",
    merged.epsilonHigh ?? epsilon,
    (v) => v > 0,
    "> 0",
  );
  if (lossType === "cispo" && !(given.epsilonHigh != null && epsilonHigh >= 1)) {
    throw new GrpoConfigError(
      "epsilonHigh",
      `epsilonHigh must be set to the cap of the importance ratio (>= 1, e.g. 5, as in ` +
        `MiniMax-M1 and TRL) when lossType is "cispo", got ${given.epsilonHigh ?? "none"}`,
      { expected: ">= 1 with lossType cispo", got: given.epsilonHigh ?? null },
    );
  }
  const maxNewTokens = requireInteger("maxNewTokens", merged.maxNewTokens, 1);
  const delta = merged.delta === null
    ? null
    : requireRange("delta", merged.delta, (v) => v > 1, "> 1 or null");
  return Object.freeze({
    numGenerations: requireInteger("numGenerations", merged.numGenerations, 2),
    numIterations: requireInteger("numIterations", merged.numIterations, 1),
    beta: requireRange("beta", merged.beta, (v) => v >= 0, ">= 0"),
    epsilon,
    epsilonHigh,
    temperature: requireRange("temperature", merged.temperature, (v) => v > 0, "> 0"),
    topK: requireInteger("topK", merged.topK, 0),
    topP: requireRange("topP", merged.topP, (v) => v > 0 && v <= 1, "in (0, 1]"),
    maxPromptLength: requireInteger("maxPromptLength", merged.maxPromptLength, 1),
    maxNewTokens,
    aggregation,
    advantageEpsilon: requireRange(
      "advantageEpsilon",
      merged.advantageEpsilon,
      (v) => v >= 0,
      ">= 0",
    ),
    lossType,
    importanceSampling: requireOneOf(
      "importanceSampling",
      merged.importanceSampling,
      ["token", "sequence"] as const,
    ),
    klEstimator: requireOneOf("klEstimator", merged.klEstimator, ["k1", "k2", "k3"] as const),
    delta,
    topEntropyQuantile: requireRange(
      "topEntropyQuantile",
      merged.topEntropyQuantile,
      (v) => v > 0 && v <= 1,
      "in (0, 1] (1 is off)",
    ),
    entropyCoef: requireRange("entropyCoef", merged.entropyCoef, (v) => v >= 0, ">= 0"),
    advantageScale: requireOneOf(
      "advantageScale",
      merged.advantageScale,
      ["group", "batch", "none"] as const,
    ),
    advantageBaseline: requireOneOf(
      "advantageBaseline",
      merged.advantageBaseline,
      ["mean", "leave-one-out"] as const,
    ),
    sapoTemperaturePos: requireRange(
      "sapoTemperaturePos",
      merged.sapoTemperaturePos,
      (v) => v > 0,
      "> 0",
    ),
    sapoTemperatureNeg: requireRange(
      "sapoTemperatureNeg",
      merged.sapoTemperatureNeg,
      (v) => v > 0,
      "> 0",
    ),
    maskTruncatedCompletions: requireBoolean(
      "maskTruncatedCompletions",
      merged.maskTruncatedCompletions,
    ),
    overlongPenalty: overlongPenalty(given.overlongPenalty, maxNewTokens),
    dynamicSampling: requireBoolean("dynamicSampling", merged.dynamicSampling),
    maxResampleRounds: requireInteger("maxResampleRounds", merged.maxResampleRounds, 0),
    maxStaleness: staleness(merged.maxStaleness, merged.dynamicSampling),
  });
}

function staleness(value: unknown, dynamicSampling: unknown): number {
  const k = requireInteger("maxStaleness", value, 0);
  if (k > 0 && dynamicSampling === true) {
    throw GrpoConfigError.mustBe(
      "maxStaleness",
      "0 with dynamicSampling (later steps' prompts depend on this step's draws)",
      k,
      String,
    );
  }
  return k;
}
