/**
 * RMSNorm in Gemma's form, `y = x / sqrt(mean(x²) + eps) · (1 + w)` over the last dimension,
 * optionally fused with the residual add of Gemma's sandwich norms (`h + norm(x)`), optionally
 * keeping the per-row `1 / rms` for the backward pass.
 *
 * The per-head q/k norm is the same kernel: x `[T, H, headDim]` with w `[headDim]` normalises
 * every `(t, h)` row of `headDim` values.
 *
 * Numerics follow transformers' float32 `Gemma3RMSNorm`: the sum of squares is accumulated in
 * f32 — never as one serial sum but as partial sums combined pairwise — then
 * `rstd = 1 / sqrt(sum / D + eps)`, `y = (x · rstd) · (1 + w)`, within ~1e-6 relative of a
 * float64 reference. Variants ({@linkcode RMS_NORM_VARIANTS}, the `variant` option; otherwise
 * `gpu.tuner` picks among {@linkcode rmsNormCandidates}):
 * - `row`: one invocation per row, eight interleaved partial sums combined pairwise; no
 *   barriers — the table's choice on fallback (software) adapters;
 * - `workgroup`: one workgroup per row (~8 values per invocation), a pairwise tree in workgroup
 *   memory — the table's choice on other adapters without subgroups;
 * - `sg`: one workgroup per row, the tree replaced by `subgroupAdd`, elected per-subgroup sums
 *   in workgroup memory and a second `subgroupAdd` (one barrier instead of log2(wg) + 1; no
 *   subgroup size assumed) — the table's choice on other adapters with `subgroups`.
 *
 * WGSL in `_rms_norm_wgsl.ts`; the backward pass is `rmsNormBackward` in `rms_norm_backward.ts`.
 *
 * @module
 */

import { expectDtype, grid1d, sameBuffer, Uniforms } from "./_launch.ts";
import { rowLaunch } from "./_rms_norm_launch.ts";
import { type RmsNormAlias, type RmsNormConstants, rmsNormSource } from "./_rms_norm_wgsl.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

export {
  RMS_NORM_VARIANTS,
  rmsNormCandidates,
  type RmsNormShape,
  type RmsNormVariant,
} from "./_rms_norm_launch.ts";

/** Options of {@linkcode rmsNorm}. */
export interface RmsNormOptions {
  /** Added inside the square root (Gemma: `rms_norm_eps` = 1e-6, the default). */
  readonly eps?: number;
  /**
   * Residual `[..., D]` f32 (same shape as x): the result becomes `residual + norm(x)`, Gemma's
   * post-attention / post-feedforward norm followed by the residual add. Must not share x's
   * buffer.
   */
  readonly residual?: Tensor;
  /**
   * Write the result here (f32, x's element count). May be `x` itself or the `residual` tensor
   * (in place, e.g. `h ← h + norm(attnOut)` with `out: h, residual: h`).
   */
  readonly out?: Tensor;
  /** Also write `1 / sqrt(mean(x²) + eps)` per row into this f32 tensor of `rows` elements. */
  readonly rstd?: Tensor;
  /**
   * Forces a variant (`RMS_NORM_VARIANTS`; it must be one of `rmsNormCandidates` for this
   * adapter); default: the tuner's choice. Every variant gives the same numerics class.
   */
  readonly variant?: string;
}

/**
 * Gemma RMSNorm over the last dimension: `y = x / sqrt(mean(x²) + eps) · (1 + w)`, plus
 * `residual` when given. Also the per-head q/k norm: pass x `[T, H, headDim]`, w `[headDim]`.
 *
 * @param x Input `[..., D]` f32 (rows = numel / D).
 * @param w Weight `[D]`, f32 or bf16 (Gemma stores `w`, the kernel applies `1 + w`).
 * @param options eps, fused residual, output tensor and the optional per-row `1/rms`.
 * @returns The output tensor (`options.out` when given, else a new f32 tensor shaped like x).
 * @throws {ShapeError} on mismatched shapes or dtypes, or a variant not valid here.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { rmsNorm } from "./rms_norm.ts";
 * const gpu = await Gpu.create();
 * const x = Tensor.fromArray(gpu, new Float32Array([3, 4]), [1, 2]);
 * const w = Tensor.fromArray(gpu, new Float32Array([0, 1]), [2]);
 * const y = rmsNorm(x, w, { eps: 0 }); // rms = sqrt(12.5): [0.8485, 2.2627]
 * console.log(await y.read());
 * gpu.destroy();
 * ```
 */
export function rmsNorm(x: Tensor, w: Tensor, options: RmsNormOptions = {}): Tensor {
  const kernel = "rmsNorm";
  expectDtype(kernel, "x", x, ["f32"]);
  expectDtype(kernel, "w", w, ["f32", "bf16"]);
  if (w.shape.length !== 1) {
    throw new ShapeError(kernel, `w must be 1-D [D], got ${shapeString(w.shape)}`);
  }
  const d = w.shape[0];
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== d || d === 0) {
    throw new ShapeError(
      kernel,
      `x must have last dimension ${d} (w ${shapeString(w.shape)}), got ${shapeString(x.shape)}`,
    );
  }
  const eps = options.eps ?? 1e-6;
  if (!Number.isFinite(eps) || eps < 0) {
    throw new ShapeError(kernel, `eps must be a finite number >= 0, got ${eps}`);
  }
  const rows = x.numel / d;
  const { residual, rstd } = options;
  if (residual) {
    expectDtype(kernel, "residual", residual, ["f32"]);
    if (residual.numel !== x.numel) {
      throw new ShapeError(
        kernel,
        `residual must match x ${shapeString(x.shape)}, got ${shapeString(residual.shape)}`,
      );
    }
    if (sameBuffer(residual, x)) throw new ShapeError(kernel, "residual must not alias x");
  }
  if (rstd) {
    expectDtype(kernel, "rstd", rstd, ["f32"]);
    if (rstd.numel !== rows) {
      throw new ShapeError(kernel, `rstd must hold ${rows} rows, got ${shapeString(rstd.shape)}`);
    }
  }
  const launch = rowLaunch(x.gpu, {
    kernel,
    variant: options.variant,
    rows,
    d,
    shapeClass: w.dtype,
    prepare: () => {
      const sx = Tensor.zeros(x.gpu, [rows, d]), sw = Tensor.zeros(x.gpu, [d], w.dtype);
      const sy = Tensor.empty(x.gpu, [rows, d]), sr = Tensor.empty(x.gpu, [rows]);
      return {
        launch: (id) => void rmsNorm(sx, sw, { variant: id, out: sy, rstd: sr }),
        dispose: () => [sx, sw, sy, sr].forEach((t) => t.dispose()),
      };
    },
  });
  if (options.out && (options.out.dtype !== "f32" || options.out.numel !== x.numel)) {
    throw new ShapeError(
      kernel,
      `out must be f32 with ${x.numel} elements, got ${options.out.dtype} ${
        shapeString(options.out.shape)
      }`,
    );
  }
  const out = options.out ?? Tensor.empty(x.gpu, x.shape, "f32");
  const alias: RmsNormAlias = sameBuffer(out, x)
    ? "x"
    : residual && sameBuffer(out, residual)
    ? "residual"
    : "none";
  const gpu = x.gpu;
  const constants: RmsNormConstants = {
    strategy: launch.strategy,
    wg: launch.wg,
    wBf16: w.dtype === "bf16",
    residual: residual !== undefined,
    alias,
    rstd: rstd !== undefined,
  };
  const buffers = [x.binding(), w.binding()];
  if (residual) buffers.push(residual.binding());
  if (alias === "none") buffers.push(out.binding());
  if (rstd) buffers.push(rstd.binding());
  gpu.dispatch({
    pipeline: gpu.pipelines.get(kernel, constants, rmsNormSource),
    shapes: `x${shapeString(x.shape)} w${shapeString(w.shape)}:${w.dtype}`,
    uniforms: new Uniforms().u32(rows).u32(d).f32(eps).build(),
    buffers,
    workgroups: grid1d(rows, launch.rowsPerGroup, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}
