/**
 * Float64 references of `geglu()` and `gegluBackward()` (kernels/geglu.ts, geglu_backward.ts).
 *
 * @module
 */

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * `gelu_pytorch_tanh(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` in float64.
 *
 * @param x Input.
 * @returns The activation.
 * @example
 * ```ts
 * import { geluTanhRef } from "./geglu_ref.ts";
 * console.log(geluTanhRef(1)); // 0.8411919906082768
 * ```
 */
export function geluTanhRef(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

/**
 * `gelu_tanh(gate) · up` elementwise in float64.
 *
 * @param gate Gate values.
 * @param up Up values (same length).
 * @returns The products.
 * @example
 * ```ts
 * import { gegluRef } from "./geglu_ref.ts";
 * console.log(gegluRef([1], [2])); // [1.6823839812165536]
 * ```
 */
export function gegluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  if (gate.length !== up.length) {
    throw new RangeError(`gate length ${gate.length} != up length ${up.length}`);
  }
  const out = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) out[i] = geluTanhRef(gate[i]) * up[i];
  return out;
}

/**
 * Derivative of {@linkcode geluTanhRef} in float64:
 * `0.5·(1 + tanh u) + 0.5·x·(1 − tanh²u)·√(2/π)·(1 + 3·0.044715·x²)`, `u = √(2/π)·(x + 0.044715·x³)`.
 *
 * @param x Input.
 * @returns `d gelu_tanh / dx`.
 * @example
 * ```ts
 * import { geluTanhGradRef } from "./geglu_ref.ts";
 * console.log(geluTanhGradRef(1)); // 1.0829640838457826
 * ```
 */
export function geluTanhGradRef(x: number): number {
  // Beyond |x| = 30 the tail is below float64 resolution; avoids 0·∞ for huge |x|.
  if (Math.abs(x) > 30) return x > 0 ? 1 : 0;
  const t = Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
}

/** Result of {@linkcode gegluBackwardRef}. */
export interface GegluBackwardRefResult {
  /** `dy · up · gelu'(gate)`. */
  readonly dGate: Float64Array;
  /** `dy · gelu(gate)`. */
  readonly dUp: Float64Array;
}

/**
 * Backward of {@linkcode gegluRef} in float64.
 *
 * @param dy Gradient of the output.
 * @param inputs The forward's gate and up values (dy's length).
 * @returns dGate and dUp.
 * @example
 * ```ts
 * import { gegluBackwardRef } from "./geglu_ref.ts";
 * const { dGate, dUp } = gegluBackwardRef([1], { gate: [1], up: [2] }); // [2.1659…], [0.8411…]
 * ```
 */
export function gegluBackwardRef(
  dy: ArrayLike<number>,
  inputs: { readonly gate: ArrayLike<number>; readonly up: ArrayLike<number> },
): GegluBackwardRefResult {
  const { gate, up } = inputs;
  if (gate.length !== up.length || gate.length !== dy.length) {
    throw new RangeError(`gate ${gate.length}, up ${up.length}, dy ${dy.length} differ in length`);
  }
  const dGate = new Float64Array(gate.length);
  const dUp = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    dGate[i] = dy[i] * up[i] * geluTanhGradRef(gate[i]);
    dUp[i] = dy[i] * geluTanhRef(gate[i]);
  }
  return { dGate, dUp };
}
