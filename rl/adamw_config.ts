/**
 * AdamW hyperparameters as one frozen, validated object, with optax's defaults
 * (`optax.adamw`: b1 0.9, b2 0.999, eps 1e-8, weight_decay 1e-4, mask = every parameter).
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { constantSchedule, type Schedule } from "./schedule.ts";

/** Thrown on invalid optimizer configuration or misuse; `field` (= `path`) names the culprit. */
export class OptimizerError extends FieldError {
  override readonly name: string = "OptimizerError";
}

/** Validated AdamW hyperparameters (frozen). */
export interface AdamWConfig {
  /** Learning rate as a function of the applied-update count (a number becomes constant). */
  readonly learningRate: Schedule;
  /** First-moment decay in [0, 1) (optax default 0.9). */
  readonly b1: number;
  /** Second-moment decay in [0, 1) (optax default 0.999). */
  readonly b2: number;
  /** Added to `√v̂`, ≥ 0 (optax default 1e-8). */
  readonly eps: number;
  /** Decoupled weight decay, ≥ 0 (optax `adamw` default 1e-4). */
  readonly weightDecay: number;
  /** Global-norm clip threshold (> 0), or null for no clipping. */
  readonly maxGradNorm: number | null;
  /** Which parameters get weight decay (optax `mask`); null = all. */
  readonly weightDecayMask: ((name: string) => boolean) | null;
}

/** Input of {@linkcode adamwConfig}: every field but the learning rate has optax's default. */
export interface AdamWOptions {
  /** A fixed learning rate or a schedule. */
  readonly learningRate: number | Schedule;
  /** Default 0.9. */
  readonly b1?: number;
  /** Default 0.999. */
  readonly b2?: number;
  /** Default 1e-8. */
  readonly eps?: number;
  /** Default 1e-4 (optax `adamw`). */
  readonly weightDecay?: number;
  /** Default null (no clipping). */
  readonly maxGradNorm?: number | null;
  /** Default null (decay every parameter). */
  readonly weightDecayMask?: ((name: string) => boolean) | null;
}

const KNOWN = ["learningRate", "b1", "b2", "eps", "weightDecay", "maxGradNorm", "weightDecayMask"];

/**
 * Validates AdamW options into a frozen config.
 *
 * @param options Hyperparameters.
 * @returns The frozen config.
 * @throws {OptimizerError} naming the first invalid or unknown field.
 * @example
 * ```ts
 * import { adamwConfig } from "./adamw_config.ts";
 * const c = adamwConfig({ learningRate: 3e-6, weightDecay: 0.1, maxGradNorm: 0.1 });
 * c.b2; // 0.999
 * ```
 */
export function adamwConfig(options: AdamWOptions): AdamWConfig {
  for (const key of Object.keys(options)) {
    if (!KNOWN.includes(key)) {
      throw new OptimizerError(key, `unknown AdamW option ${key}; known: ${KNOWN.join(", ")}`);
    }
  }
  const num = (field: string, v: unknown, ok: (x: number) => boolean, want: string) => {
    if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) {
      throw OptimizerError.mustBe(field, want, v, String);
    }
    return v;
  };
  const lr = options.learningRate;
  let learningRate: Schedule;
  if (typeof lr === "function") {
    learningRate = lr;
  } else {
    learningRate = constantSchedule(num("learningRate", lr, (x) => x >= 0, "finite and ≥ 0"));
  }
  const maxGradNorm = options.maxGradNorm ?? null;
  const mask = options.weightDecayMask ?? null;
  if (mask !== null && typeof mask !== "function") {
    throw new OptimizerError("weightDecayMask", "weightDecayMask must be a function or null");
  }
  return Object.freeze({
    learningRate,
    b1: num("b1", options.b1 ?? 0.9, (x) => x >= 0 && x < 1, "in [0, 1)"),
    b2: num("b2", options.b2 ?? 0.999, (x) => x >= 0 && x < 1, "in [0, 1)"),
    eps: num("eps", options.eps ?? 1e-8, (x) => x >= 0, "finite and ≥ 0"),
    weightDecay: num("weightDecay", options.weightDecay ?? 1e-4, (x) => x >= 0, "≥ 0"),
    maxGradNorm: maxGradNorm === null
      ? null
      : num("maxGradNorm", maxGradNorm, (x) => x > 0, "null or finite and > 0"),
    weightDecayMask: mask,
  });
}
