/**
 * Plain-TS references for the matmul kernels (float64 accumulation), row-major, batched over
 * `batch` independent products.
 *
 * @module
 */

import { geluTanhRef } from "./geglu_ref.ts";

/** Shape of a reference product: `batch` products of `[m, k]·[k, n]`. */
export interface MatmulRefShape {
  /** Independent products (default 1). */
  readonly batch?: number;
  /** Output rows. */
  readonly m: number;
  /** Output columns. */
  readonly n: number;
  /** Reduction length. */
  readonly k: number;
}

/** Options of {@linkcode matmulRef}: the sizes, the layout of `w` and the epilogue. */
export interface MatmulRefOptions extends MatmulRefShape {
  /** Layout of `w`: true (default) `[n, k]` (`y = x·wᵀ`), false `[k, n]` (`y = x·w`). */
  readonly transposeB?: boolean;
  /** Whether `w` has its own batch dim (default false: shared by every product). */
  readonly wBatched?: boolean;
  /** Scale of the product (default 1): the epilogue `y = acc + α·x·w`. */
  readonly alpha?: number;
  /** `[batch, m, n]` added to the scaled product (`accumulate`'s prior `out`, a residual). */
  readonly acc?: ArrayLike<number>;
  /** `[batch, m, n]` GeGLU gate (`matmul`'s `gate`): `y = gelu_tanh(gate)·(acc + α·x·w)`. */
  readonly gate?: ArrayLike<number>;
}

/**
 * Reference of `matmul(x, w)`: `y = x·wᵀ` (w `[n, k]`) or, with `transposeB: false`, `y = x·w`
 * (w `[k, n]`), accumulated in float64, with the epilogue `gelu_tanh(gate)·(acc + α·y)` where
 * given.
 *
 * @param x `[batch, m, k]`.
 * @param w `[batch, n, k]` or `[batch, k, n]`; `batch` 1 when shared.
 * @param options Sizes, layout of `w` and whether it is batched, epilogue.
 * @returns `[batch, m, n]`.
 * @example
 * ```ts
 * import { matmulRef } from "./matmul_ref.ts";
 * const y = matmulRef([1, 2], [3, 4, 5, 6], { m: 1, n: 2, k: 2 }); // [1·3+2·4, 1·5+2·6]
 * console.log(y); // Float64Array [11, 17]
 * console.log(matmulRef([1, 2], [3, 4, 5, 6], { m: 1, n: 2, k: 2, transposeB: false })); // [13, 16]
 * // GeGLU epilogue: gelu_tanh(gate)·(acc + α·x·wᵀ) = [gelu(30)·(1 + 2·11), gelu(-30)·(0 + 2·17)]
 * const gate = [30, -30], acc = [1, 0];
 * console.log(matmulRef([1, 2], [3, 4, 5, 6], { m: 1, n: 2, k: 2, gate, acc, alpha: 2 })); // [690, -0]
 * ```
 */
export function matmulRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  options: MatmulRefOptions,
): Float64Array {
  const { transposeB = true, wBatched = false } = options;
  const { batch = 1, m, n, k } = options;
  const y = new Float64Array(batch * m * n);
  for (let b = 0; b < batch; b++) {
    const xb = b * m * k, wb = wBatched ? b * n * k : 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let l = 0; l < k; l++) {
          s += x[xb + i * k + l] * w[wb + (transposeB ? j * k + l : l * n + j)];
        }
        y[(b * m + i) * n + j] = s;
      }
    }
  }
  const { alpha = 1, acc, gate } = options;
  for (let i = 0; i < y.length; i++) {
    const v = (acc?.[i] ?? 0) + alpha * y[i];
    y[i] = gate ? geluTanhRef(gate[i]) * v : v;
  }
  return y;
}

/**
 * Reference of `matmulTransA(a, b)`: `y = aᵀ·b` with a `[batch, k, m]`, b `[batch, k, n]`.
 *
 * @param a `[batch, k, m]`.
 * @param b `[batch, k, n]`.
 * @param shape Sizes.
 * @returns `[batch, m, n]`.
 * @example
 * ```ts
 * import { matmulTransARef } from "./matmul_ref.ts";
 * console.log(matmulTransARef([1, 2], [3, 4], { m: 1, n: 1, k: 2 })); // [11]
 * ```
 */
export function matmulTransARef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  shape: MatmulRefShape,
): Float64Array {
  const { batch = 1, m, n, k } = shape;
  const y = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    for (let l = 0; l < k; l++) {
      for (let i = 0; i < m; i++) {
        const av = a[(t * k + l) * m + i];
        for (let j = 0; j < n; j++) y[(t * m + i) * n + j] += av * b[(t * k + l) * n + j];
      }
    }
  }
  return y;
}
