/**
 * GRPO hyperparameters as one frozen, validated object. Defaults are the seed recipe's
 * (Google Tunix `examples/grpo_gemma.ipynb`, Gemma 3 1B-IT on GSM8K), except `numGenerations`
 * which follows the recipe value of 4.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";

/** Thrown when a GRPO configuration field is invalid; `field` (= `path`) names it. */
export class GrpoConfigError extends FieldError {
  override readonly name: string = "GrpoConfigError";
}

/** How per-token losses become one number (Tunix `loss_agg_mode`). */
export type LossAggregation = "sequence-mean-token-mean" | "token-mean";

/** The aggregation modes {@linkcode LossAggregation} allows. */
export const LOSS_AGGREGATIONS: readonly LossAggregation[] = Object.freeze([
  "sequence-mean-token-mean",
  "token-mean",
]);

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
  /** Upper clip ε_high (> 0; defaults to `epsilon`). */
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
  /** Loss aggregation mode. */
  readonly aggregation: LossAggregation;
  /** Added to the group std in the advantage denominator (≥ 0). */
  readonly advantageEpsilon: number;
}

/** The seed recipe's values. */
export const GRPO_RECIPE_DEFAULTS: Readonly<Omit<GrpoConfig, "epsilonHigh">> = Object.freeze({
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
});

const KNOWN_FIELDS: readonly string[] = [...Object.keys(GRPO_RECIPE_DEFAULTS), "epsilonHigh"];

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

/**
 * Builds a validated, frozen {@linkcode GrpoConfig} from the recipe defaults and overrides.
 *
 * @param overrides Fields to change; unknown field names are rejected.
 * @returns The frozen config.
 * @throws {GrpoConfigError} Naming the invalid field, e.g. `"numGenerations must be >= 2, got 1"`.
 * @example
 * ```ts
 * import { createGrpoConfig } from "./grpo_config.ts";
 * const cfg = createGrpoConfig({ numGenerations: 8, epsilonHigh: 0.28 });
 * if (cfg.beta !== 0.08 || cfg.epsilon !== 0.2) throw new Error("unexpected defaults");
 * ```
 */
export function createGrpoConfig(overrides: Partial<GrpoConfig> = {}): GrpoConfig {
  for (const key of Object.keys(overrides)) {
    if (!KNOWN_FIELDS.includes(key)) {
      throw new GrpoConfigError(
        key,
        `${key} is not a GRPO config field (known: ${KNOWN_FIELDS.join(", ")})`,
      );
    }
  }
  const merged = { ...GRPO_RECIPE_DEFAULTS, ...overrides };
  const epsilon = requireRange("epsilon", merged.epsilon, (v) => v > 0 && v < 1, "in (0, 1)");
  const aggregation = merged.aggregation;
  if (!LOSS_AGGREGATIONS.includes(aggregation)) {
    const expected = `one of ${LOSS_AGGREGATIONS.join(", ")}`;
    throw GrpoConfigError.mustBe("aggregation", expected, aggregation, String);
  }
  return Object.freeze({
    numGenerations: requireInteger("numGenerations", merged.numGenerations, 2),
    numIterations: requireInteger("numIterations", merged.numIterations, 1),
    beta: requireRange("beta", merged.beta, (v) => v >= 0, ">= 0"),
    epsilon,
    epsilonHigh: requireRange("epsilonHigh", merged.epsilonHigh ?? epsilon, (v) => v > 0, "> 0"),
    temperature: requireRange("temperature", merged.temperature, (v) => v > 0, "> 0"),
    topK: requireInteger("topK", merged.topK, 0),
    topP: requireRange("topP", merged.topP, (v) => v > 0 && v <= 1, "in (0, 1]"),
    maxPromptLength: requireInteger("maxPromptLength", merged.maxPromptLength, 1),
    maxNewTokens: requireInteger("maxNewTokens", merged.maxNewTokens, 1),
    aggregation,
    advantageEpsilon: requireRange(
      "advantageEpsilon",
      merged.advantageEpsilon,
      (v) => v >= 0,
      ">= 0",
    ),
  });
}
