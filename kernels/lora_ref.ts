/**
 * Plain-TS reference for the fused LoRA linear `loraLinear` (float64 accumulation).
 *
 * @module
 */

import { geluTanhRef } from "./geglu_ref.ts";

/** Sizes of {@linkcode loraLinearRef}. */
export interface LoraRefShape {
  /** Rows of `x` (tokens). */
  readonly m: number;
  /** Input features. */
  readonly inDim: number;
  /** Output features. */
  readonly outDim: number;
  /** LoRA rank. */
  readonly rank: number;
}

/** Sizes, scale and gate of {@linkcode loraLinearRef}. */
export interface LoraRefOptions extends LoraRefShape {
  /** `s = alpha / r`. */
  readonly scale: number;
  /** `[m, out]` GeGLU gate (`loraLinear`'s `gate`): `y = gelu_tanh(gate)·(x·Wᵀ + s·xa·Bᵀ)`. */
  readonly gate?: ArrayLike<number>;
}

/**
 * `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` (times `gelu_tanh(gate)` with a gate) and `xa = x·Aᵀ`, row-major,
 * in float64.
 *
 * @param x `[m, in]`.
 * @param weights The base weight `w` `[out, in]` and the adapter `a` `[r, in]`, `b` `[out, r]`.
 * @param options Sizes, the scale `s` and the optional gate.
 * @returns `y` `[m, out]` and `xa` `[m, r]`.
 * @example
 * ```ts
 * import { loraLinearRef } from "./lora_ref.ts";
 * const { y } = loraLinearRef([1, 2], { w: [1, 0, 0, 1], a: [1, 1], b: [1, 2] }, {
 *   m: 1, inDim: 2, outDim: 2, rank: 1, scale: 0.5,
 * });
 * console.log(y); // Float64Array [2.5, 5]
 * const gated = loraLinearRef([1, 2], { w: [1, 0, 0, 1], a: [1, 1], b: [1, 2] }, {
 *   m: 1, inDim: 2, outDim: 2, rank: 1, scale: 0.5, gate: [30, -30],
 * });
 * console.log(gated.y); // Float64Array [75, -0]
 * ```
 */
export function loraLinearRef(
  x: ArrayLike<number>,
  weights: {
    readonly w: ArrayLike<number>;
    readonly a: ArrayLike<number>;
    readonly b: ArrayLike<number>;
  },
  options: LoraRefOptions,
): { y: Float64Array; xa: Float64Array } {
  const { m, inDim, outDim, rank, scale, gate } = options;
  const { w, a, b } = weights;
  const xa = new Float64Array(m * rank);
  const y = new Float64Array(m * outDim);
  for (let t = 0; t < m; t++) {
    for (let j = 0; j < rank; j++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[t * inDim + i] * a[j * inDim + i];
      xa[t * rank + j] = s;
    }
    for (let o = 0; o < outDim; o++) {
      let base = 0, low = 0;
      for (let i = 0; i < inDim; i++) base += x[t * inDim + i] * w[o * inDim + i];
      for (let j = 0; j < rank; j++) low += xa[t * rank + j] * b[o * rank + j];
      const v = base + scale * low;
      y[t * outDim + o] = gate ? geluTanhRef(gate[t * outDim + o]) * v : v;
    }
  }
  return { y, xa };
}
