/**
 * Float64 references of the elementwise kernels (kernels/elementwise.ts).
 *
 * @module
 */

/** Weights of {@linkcode addRef} (as `add()`'s options). */
export interface AddRefOptions {
  /** Weight of `a` (default 1). */
  readonly alpha?: number;
  /** Weight of `b` (default 1). */
  readonly beta?: number;
}

/**
 * Reference for `add()`.
 *
 * @param a First operand.
 * @param b Second operand.
 * @param options Weights of a and b.
 * @returns `alpha·a + beta·b`.
 * @example
 * ```ts
 * import { addRef } from "./elementwise_ref.ts";
 * console.log(addRef([1, 2], [3, 4], { beta: -1 })); // [-2, -2]
 * ```
 */
export function addRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  options: AddRefOptions = {},
): Float64Array {
  const { alpha = 1, beta = 1 } = options;
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = alpha * a[i] + beta * b[i];
  return out;
}

/**
 * Reference for `scale()`.
 *
 * @param x Values.
 * @param factor Multiplier.
 * @returns `factor · x`.
 * @example
 * ```ts
 * import { scaleRef } from "./elementwise_ref.ts";
 * console.log(scaleRef([1, -2], 0.5)); // [0.5, -1]
 * ```
 */
export function scaleRef(x: ArrayLike<number>, factor: number): Float64Array {
  return Float64Array.from(x, (v) => factor * v);
}
