/**
 * Float64 references of `rmsNorm()` and `rmsNormBackward()` (kernels/rms_norm.ts,
 * rms_norm_backward.ts).
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

/** Options of {@linkcode rmsNormRef}. */
export interface RmsNormRefOptions {
  /** Added inside the square root. */
  readonly eps: number;
  /** Optional `[rows, D]` added to the result. */
  readonly residual?: ArrayLike<number>;
}

/**
 * Gemma RMSNorm in float64 over rows of `w.length` values.
 *
 * @param x Input, row-major `[rows, D]` (rows = x.length / D).
 * @param w Weight `[D]` (the kernel applies `1 + w`); pass bf16-rounded values for bf16 weights.
 * @param options eps and the optional residual.
 * @returns The normalised rows and the per-row `1 / rms`.
 * @example
 * ```ts
 * import { rmsNormRef } from "./rms_norm_ref.ts";
 * const { y } = rmsNormRef([3, 4], [0, 1], { eps: 0 }); // [0.8485…, 2.2627…]
 * ```
 */
export function rmsNormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  options: RmsNormRefOptions,
): RmsNormRefResult {
  const { eps, residual } = options;
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

/** Result of {@linkcode rmsNormBackwardRef}. */
export interface RmsNormBackwardRefResult {
  /** Gradient of x, `[rows, D]`. */
  readonly dx: Float64Array;
  /** Gradient of w, `[D]` (summed over rows). */
  readonly dw: Float64Array;
}

/**
 * Backward of {@linkcode rmsNormRef} in float64 (the residual, if any, passes dy through
 * unchanged). With `gw = dy ∘ (1 + w)`: `dx = rstd·gw − x·rstd³·(Σ_i gw_i·x_i)/D` per row and
 * `dw = Σ_rows dy ∘ x · rstd`.
 *
 * @param dy Gradient of the output, `[rows, D]`.
 * @param inputs The forward input x (row-major `[rows, D]`), the weight w `[D]` (bf16-rounded
 *   values for bf16 weights) and the forward's per-row `rstd = 1 / sqrt(mean(x²) + eps)`.
 * @returns dx and dw.
 * @example
 * ```ts
 * import { rmsNormBackwardRef, rmsNormRef } from "./rms_norm_ref.ts";
 * const x = [3, 4], w = [0, 1];
 * const { rstd } = rmsNormRef(x, w, { eps: 0 });
 * const { dx, dw } = rmsNormBackwardRef([1, 0], { x, w, rstd });
 * // dx [0.1810…, -0.1358…], dw [0.8485…, 0]
 * ```
 */
export function rmsNormBackwardRef(
  dy: ArrayLike<number>,
  inputs: {
    readonly x: ArrayLike<number>;
    readonly w: ArrayLike<number>;
    readonly rstd: ArrayLike<number>;
  },
): RmsNormBackwardRefResult {
  const { x, w, rstd } = inputs;
  const d = w.length;
  const rows = x.length / d;
  if (!Number.isInteger(rows) || dy.length !== x.length || rstd.length !== rows) {
    throw new RangeError(
      `expected x and dy of rows·${d} values and rstd of rows values, got ${x.length}, ` +
        `${dy.length}, ${rstd.length}`,
    );
  }
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const inv = rstd[r];
    let dot = 0;
    for (let i = 0; i < d; i++) dot += dy[r * d + i] * (1 + w[i]) * x[r * d + i];
    const c = inv * inv * inv * dot / d;
    for (let i = 0; i < d; i++) {
      const k = r * d + i;
      dx[k] = inv * dy[k] * (1 + w[i]) - x[k] * c;
      dw[i] += dy[k] * x[k] * inv;
    }
  }
  return { dx, dw };
}
