/**
 * Learning-rate schedules with optax semantics: a schedule maps the number of optimizer updates
 * already applied (`count`, starting at 0) to a value. Pure TypeScript; the optimizer evaluates
 * the schedule on the host and hands the value to its kernel as a uniform.
 *
 * Matches optax's `constant_schedule`, `linear_schedule` (`polynomial_schedule` with power 1) and
 * `warmup_cosine_decay_schedule` (a linear warmup joined to a `cosine_decay_schedule` whose
 * `decay_steps` is the total length minus the warmup), evaluated in float64.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";

/** Maps the count of applied updates (integer ≥ 0) to a value, e.g. a learning rate. */
export type Schedule = (count: number) => number;

/** Thrown when a schedule parameter is invalid; `field` (= `path`) names it. */
export class ScheduleError extends FieldError {
  override readonly name: string = "ScheduleError";
}

function finite(field: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw ScheduleError.mustBe(field, "a finite number", v, String);
  }
  return v;
}

function checkCount(count: number): void {
  if (!Number.isFinite(count) || count < 0) {
    throw ScheduleError.mustBe("count", "a finite number ≥ 0", count, String);
  }
}

/**
 * A schedule that always returns `value` (optax `constant_schedule`).
 *
 * @param value The value.
 * @returns The schedule.
 * @example
 * ```ts
 * import { constantSchedule } from "./schedule.ts";
 * constantSchedule(3e-6)(100); // 3e-6
 * ```
 */
export function constantSchedule(value: number): Schedule {
  const v = finite("value", value);
  return (count: number) => {
    checkCount(count);
    return v;
  };
}

/** Options of {@linkcode linearSchedule}. */
export interface LinearScheduleOptions {
  /** Value at and before `transitionBegin`. */
  readonly initValue: number;
  /** Value from `transitionBegin + transitionSteps` on. */
  readonly endValue: number;
  /** Length of the ramp; ≤ 0 makes the schedule constant at `initValue` (as in optax). */
  readonly transitionSteps: number;
  /** Updates held at `initValue` before the ramp starts (default 0; optax clamps < 0 to 0). */
  readonly transitionBegin?: number;
}

/**
 * Linear ramp from `initValue` to `endValue` (optax `linear_schedule`):
 * `c = clip(count − begin, 0, T)`, value `(init − end)·(1 − c/T) + end`.
 *
 * @param options Endpoints and timing.
 * @returns The schedule.
 * @example
 * ```ts
 * import { linearSchedule } from "./schedule.ts";
 * const s = linearSchedule({ initValue: 1, endValue: 0.01, transitionSteps: 100 });
 * s(50); // 0.505
 * ```
 */
export function linearSchedule(options: LinearScheduleOptions): Schedule {
  const init = finite("initValue", options.initValue);
  const end = finite("endValue", options.endValue);
  const steps = finite("transitionSteps", options.transitionSteps);
  const begin = Math.max(0, finite("transitionBegin", options.transitionBegin ?? 0));
  if (steps <= 0) return constantSchedule(init);
  return (count: number) => {
    checkCount(count);
    const c = Math.min(Math.max(count - begin, 0), steps);
    return (init - end) * (1 - c / steps) + end;
  };
}

/** Options of {@linkcode warmupCosineDecaySchedule}. */
export interface WarmupCosineDecayOptions {
  /** Value at count 0, where the warmup starts. */
  readonly initValue: number;
  /** Value reached at the end of the warmup. */
  readonly peakValue: number;
  /**
   * Linear warmup length in updates, ≥ 0. May be fractional, as in the recipe
   * (`WARMUP_STEPS = 0.1 * MAX_STEPS` = 373.8): the warmup covers counts `< warmupSteps`.
   */
  readonly warmupSteps: number;
  /**
   * Total schedule length INCLUDING the warmup (optax's convention): the cosine runs over
   * `decaySteps − warmupSteps` updates, which must be ≥ 1.
   */
  readonly decaySteps: number;
  /** Value at and after `decaySteps` (default 0). */
  readonly endValue?: number;
  /** The cosine factor `0.5·(1 + cos(π·t/T))` is raised to this power (default 1). */
  readonly exponent?: number;
}

/**
 * Linear warmup then cosine decay (optax `warmup_cosine_decay_schedule`). For
 * `count < warmupSteps`: `init + (peak − init)·count/warmupSteps`; afterwards, with
 * `t = min(count − warmupSteps, T)`, `T = decaySteps − warmupSteps` and `α = end/peak`
 * (0 when peak is 0): `peak·((1 − α)·(0.5·(1 + cos(π·t/T)))^exponent + α)`.
 *
 * @param options Values and lengths.
 * @returns The schedule.
 * @throws {ScheduleError} when a field is invalid or `decaySteps ≤ warmupSteps`.
 * @example
 * ```ts
 * import { warmupCosineDecaySchedule } from "./schedule.ts";
 * const lr = warmupCosineDecaySchedule({
 *   initValue: 0, peakValue: 3e-6, warmupSteps: 374, decaySteps: 3738, endValue: 0,
 * });
 * lr(0); // 0
 * lr(374); // 3e-6
 * lr(2056); // 1.5e-6, halfway through the cosine
 * ```
 */
export function warmupCosineDecaySchedule(options: WarmupCosineDecayOptions): Schedule {
  const init = finite("initValue", options.initValue);
  const peak = finite("peakValue", options.peakValue);
  const warmup = finite("warmupSteps", options.warmupSteps);
  const total = finite("decaySteps", options.decaySteps);
  if (warmup < 0) {
    throw new ScheduleError("warmupSteps", `warmupSteps must be ≥ 0, got ${warmup}`);
  }
  const end = finite("endValue", options.endValue ?? 0);
  const exponent = finite("exponent", options.exponent ?? 1);
  // subtle: optax's decay_steps counts the warmup too; its cosine part rejects a length ≤ 0.
  const cosineSteps = total - warmup;
  if (cosineSteps <= 0) {
    throw new ScheduleError(
      "decaySteps",
      `decaySteps (the total length, warmup included) must exceed warmupSteps, got ` +
        `decaySteps ${total} and warmupSteps ${warmup}`,
    );
  }
  const alpha = peak === 0 ? 0 : end / peak;
  const ramp = linearSchedule({ initValue: init, endValue: peak, transitionSteps: warmup });
  return (count: number) => {
    checkCount(count);
    if (count < warmup) return ramp(count);
    const t = Math.min(count - warmup, cosineSteps);
    const cosine = 0.5 * (1 + Math.cos(Math.PI * t / cosineSteps));
    return peak * ((1 - alpha) * cosine ** exponent + alpha);
  };
}
