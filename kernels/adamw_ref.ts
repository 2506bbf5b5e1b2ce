/**
 * Float64 reference of the AdamW kernels (kernels/adamw.ts), written from optax's formulas:
 * `clip_by_global_norm` then `scale_by_adam` (eps outside the root, `eps_root` = 0, bias
 * correction with t = count + 1), `add_decayed_weights`, `scale_by_learning_rate`.
 *
 * @module
 */

import type { AdamWUpdateParams } from "./adamw.ts";

/**
 * Global L2 norm over several arrays, accumulated in float64.
 *
 * @param grads The gradient arrays.
 * @returns `sqrt(Σ g²)`.
 * @example
 * ```ts
 * import { gradGlobalNormRef } from "./adamw_ref.ts";
 * gradGlobalNormRef([[3], [4]]); // 5
 * ```
 */
export function gradGlobalNormRef(grads: readonly ArrayLike<number>[]): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}

/** Hyperparameters of {@linkcode adamwUpdateRef}: those of `adamwUpdate`. */
export type AdamWRefParams = AdamWUpdateParams;

/** What {@linkcode adamwUpdateRef} reads besides the parameter. */
export interface AdamWRefInputs {
  /** Gradient values. */
  readonly grad: ArrayLike<number>;
  /** First moment. */
  readonly m: ArrayLike<number>;
  /** Second moment. */
  readonly v: ArrayLike<number>;
  /** Global gradient norm over all tensors of this update. */
  readonly gradNorm: number;
}

/** Result of {@linkcode adamwUpdateRef}. */
export interface AdamWRefResult {
  /** Updated parameter. */
  readonly param: Float64Array;
  /** Updated first moment. */
  readonly m: Float64Array;
  /** Updated second moment. */
  readonly v: Float64Array;
  /** False when the update was skipped (non-finite global norm): the inputs are returned. */
  readonly applied: boolean;
}

/**
 * One AdamW update of one tensor in float64. When `gradNorm` is not finite the update is skipped
 * and copies of the inputs are returned, as the kernel does.
 *
 * @param param Parameter values.
 * @param inputs Gradient values, first and second moments, and the global gradient norm over
 *   all tensors of this update.
 * @param hyper Hyperparameters.
 * @returns The new parameter and moments.
 * @example
 * ```ts
 * import { adamwUpdateRef } from "./adamw_ref.ts";
 * const r = adamwUpdateRef([1], { grad: [0.5], m: [0], v: [0], gradNorm: 0.5 }, {
 *   learningRate: 0.1, b1: 0.9, b2: 0.999, eps: 0, weightDecay: 0, step: 1, maxGradNorm: null,
 * });
 * r.param[0]; // 0.9
 * ```
 */
export function adamwUpdateRef(
  param: ArrayLike<number>,
  inputs: AdamWRefInputs,
  hyper: AdamWRefParams,
): AdamWRefResult {
  const { grad, gradNorm } = inputs;
  const p = Float64Array.from(param);
  const m = Float64Array.from(inputs.m);
  const v = Float64Array.from(inputs.v);
  if (!Number.isFinite(gradNorm)) return { param: p, m, v, applied: false };
  const { learningRate, b1, b2, eps, weightDecay, step, maxGradNorm } = hyper;
  const clip = maxGradNorm !== null && !(gradNorm < maxGradNorm);
  const bc1 = 1 - b1 ** step;
  const bc2 = 1 - b2 ** step;
  for (let i = 0; i < p.length; i++) {
    const g = clip ? (grad[i] / gradNorm) * (maxGradNorm as number) : grad[i];
    m[i] = b1 * m[i] + (1 - b1) * g;
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    const u = (m[i] / bc1) / (Math.sqrt(v[i] / bc2) + eps) + weightDecay * p[i];
    p[i] -= learningRate * u;
  }
  return { param: p, m, v, applied: true };
}
