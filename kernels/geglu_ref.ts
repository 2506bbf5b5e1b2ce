/**
 * Float64 references of {@linkcode geglu} and {@linkcode gegluFused} (kernels/geglu.ts).
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
 * GeGLU of a fused `[rows, 2I]` gate|up array in float64.
 *
 * @param gateUp Rows of `I` gate values followed by `I` up values.
 * @param inter `I`.
 * @returns `[rows, I]`.
 */
export function gegluFusedRef(gateUp: ArrayLike<number>, inter: number): Float64Array {
  const rows = gateUp.length / (2 * inter);
  const out = new Float64Array(rows * inter);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < inter; j++) {
      out[r * inter + j] = geluTanhRef(gateUp[r * 2 * inter + j]) *
        gateUp[r * 2 * inter + inter + j];
    }
  }
  return out;
}
