/**
 * Float64 reference of {@linkcode rmsNorm} (kernels/rms_norm.ts).
 *
 * @module
 */

/** Result of {@linkcode rmsNormRef}. */
export interface RmsNormRefResult {
  /** `residual + x / sqrt(mean(x²) + eps) · (1 + w)` (residual only when given), `[rows, D]`. */
  readonly y: Float64Array;
  /** `1 / sqrt(mean(x²) + eps)` per row, `[rows]`. */
  readonly rstd: Float64Array;
}

/**
 * Gemma RMSNorm in float64 over rows of `w.length` values.
 *
 * @param x Input, row-major `[rows, D]` (rows = x.length / D).
 * @param w Weight `[D]` (the kernel applies `1 + w`); pass bf16-rounded values for bf16 weights.
 * @param eps Added inside the square root.
 * @param residual Optional `[rows, D]` added to the result.
 * @returns The normalised rows and the per-row `1 / rms`.
 * @example
 * ```ts
 * import { rmsNormRef } from "./rms_norm_ref.ts";
 * const { y } = rmsNormRef([3, 4], [0, 1], 0); // [0.8485…, 2.2627…]
 * ```
 */
export function rmsNormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  eps: number,
  residual?: ArrayLike<number>,
): RmsNormRefResult {
  const d = w.length;
  const rows = x.length / d;
  if (!Number.isInteger(rows)) {
    throw new RangeError(`x length ${x.length} is not a multiple of ${d}`);
  }
  const y = new Float64Array(x.length);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[r * d + i] * x[r * d + i];
    const inv = 1 / Math.sqrt(ss / d + eps);
    rstd[r] = inv;
    for (let i = 0; i < d; i++) {
      const k = r * d + i;
      y[k] = x[k] * inv * (1 + w[i]) + (residual ? residual[k] : 0);
    }
  }
  return { y, rstd };
}
