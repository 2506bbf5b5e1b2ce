/**
 * Float64 references of the elementwise kernels (kernels/elementwise.ts).
 *
 * @module
 */

/**
 * Reference for {@linkcode add}.
 *
 * @param a First operand.
 * @param b Second operand.
 * @param alpha Weight of a.
 * @param beta Weight of b.
 * @returns `alpha·a + beta·b`.
 * @example
 * ```ts
 * import { addRef } from "./elementwise_ref.ts";
 * console.log(addRef([1, 2], [3, 4], 1, -1)); // [-2, -2]
 * ```
 */
export function addRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  alpha = 1,
  beta = 1,
): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = alpha * a[i] + beta * b[i];
  return out;
}

/**
 * Reference for {@linkcode scale}.
 *
 * @param x Values.
 * @param factor Multiplier.
 * @returns `factor · x`.
 */
export function scaleRef(x: ArrayLike<number>, factor: number): Float64Array {
  return Float64Array.from(x, (v) => factor * v);
}
