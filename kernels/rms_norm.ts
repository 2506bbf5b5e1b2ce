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
 * Two fused epilogues (every variant has both; each gives exactly what the unfused sequence of
 * the same variant gives, rstd included — the same f32 operations in the same order):
 * - `rope`: the per-head q/k norm followed by RoPE (`rope.ts`), one launch instead of two: each
 *   pair `(j, j + hd/2)` of a normalised head is rotated in registers (the rotation is RoPE's own
 *   WGSL, `_rope_wgsl.ts`) before it is stored;
 * - `next`: Gemma's sandwich chain — `h ← h + norm(o)` then the next pre-norm `norm(h)` — in one
 *   launch: the row's result is stored and, as it is formed, summed for the second norm in the
 *   order that norm's own launch would sum it; the second pass takes the result from registers
 *   (`workgroup`, `sg`: up to 8 values per invocation, i.e. D ≤ 8·wg = 2048; wider rows read
 *   back the invocation's own stores) or from the invocation's own stores (`row`, whose one
 *   invocation per row holds no row in registers; on the CPU adapters it serves they are in
 *   cache).
 *
 * WGSL in `_rms_norm_wgsl.ts`; the backward pass is `rmsNormBackward` in `rms_norm_backward.ts`.
 *
 * @module
 */

import { expectDtype, grid1d, sameBuffer, Uniforms } from "./_launch.ts";
import { rowLaunch } from "./_rms_norm_launch.ts";
import {
  type RmsNormAlias,
  type RmsNormConstants,
  type RmsNormFuse,
  rmsNormSource,
} from "./_rms_norm_wgsl.ts";
import { ShapeError } from "./errors.ts";
import { ropeShape, type RopeTable } from "./rope.ts";
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
  /**
   * Fuse RoPE after the norm (the per-head q/k norm): x `[T, H, headDim]` (or `[..., H,
   * headDim]`, one position per token), the output is `rope(norm(x))` — what `rmsNorm` then
   * `rope(…, { table, out })` give. Not with `residual` or `next`.
   */
  readonly rope?: RmsNormRope;
  /**
   * Fuse the following pre-norm (same eps): with the row's result `r` (`residual + norm(x)`,
   * or `norm(x)`), also writes `next.out = norm(r)·(1 + next.w)` — what a second `rmsNorm(r,
   * next.w, { rstd: next.rstd })` gives. Not with `rope`.
   */
  readonly next?: RmsNormNext;
}

/** {@linkcode RmsNormOptions.rope}: the RoPE fused after a per-head norm. */
export interface RmsNormRope {
  /** The cos/sin table; its headDim must be D. */
  readonly table: RopeTable;
  /** i32, one position per token (`[T]`). */
  readonly positions: Tensor;
}

/** {@linkcode RmsNormOptions.next}: the norm fused after this one. */
export interface RmsNormNext {
  /** Its weight `[D]`, the dtype of `w`. */
  readonly w: Tensor;
  /** Its output, f32 with x's element count; shares no buffer with another tensor of the call. */
  readonly out: Tensor;
  /** Its per-row `1 / rms` (f32, `rows`); given exactly when `rstd` is. */
  readonly rstd?: Tensor;
}

/**
 * Gemma RMSNorm over the last dimension: `y = x / sqrt(mean(x²) + eps) · (1 + w)`, plus
 * `residual` when given. Also the per-head q/k norm: pass x `[T, H, headDim]`, w `[headDim]`.
 *
 * @param x Input `[..., D]` f32 (rows = numel / D).
 * @param w Weight `[D]`, f32 or bf16 (Gemma stores `w`, the kernel applies `1 + w`).
 * @param options eps, fused residual, output tensor, the optional per-row `1/rms`, and the
 *   fused epilogues `rope` (per-head norm + RoPE) and `next` (the following pre-norm).
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
 * // Gemma's sandwich: h ← h + norm(y), then the next pre-norm x2 = norm(h), in one launch.
 * const h = Tensor.fromArray(gpu, new Float32Array([1, 1]), [1, 2]);
 * const x2 = Tensor.empty(gpu, [1, 2]);
 * rmsNorm(y, w, { eps: 0, residual: h, out: h, next: { w, out: x2 } });
 * console.log(await h.read(), await x2.read());
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
  const fused = checkFusion(x, w, options);
  const launch = rowLaunch(x.gpu, {
    kernel,
    variant: options.variant,
    rows,
    d,
    shapeClass: `${w.dtype}:${fused.fuse}`,
    prepare: () => {
      const gpu = x.gpu;
      const sx = Tensor.zeros(gpu, x.shape), sw = Tensor.zeros(gpu, [d], w.dtype);
      const sy = Tensor.empty(gpu, x.shape), sr = Tensor.empty(gpu, [rows]);
      const scratch = [sx, sw, sy, sr];
      const more = (t: Tensor) => (scratch.push(t), t);
      const rope = options.rope &&
        { table: options.rope.table, positions: more(Tensor.zeros(gpu, [fused.tokens], "i32")) };
      const next = options.next && {
        w: more(Tensor.zeros(gpu, [d], w.dtype)),
        out: more(Tensor.empty(gpu, [rows, d])),
        rstd: more(Tensor.empty(gpu, [rows])),
      };
      return {
        launch: (id) => void rmsNorm(sx, sw, { variant: id, out: sy, rstd: sr, rope, next }),
        dispose: () => scratch.forEach((t) => t.dispose()),
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
  const { next, rope } = options;
  const constants: RmsNormConstants = {
    strategy: launch.strategy,
    wg: launch.wg,
    wBf16: w.dtype === "bf16",
    residual: residual !== undefined,
    alias,
    rstd: rstd !== undefined,
    fuse: fused.fuse,
  };
  const buffers = [x.binding(), w.binding()];
  if (residual) buffers.push(residual.binding());
  if (alias === "none") buffers.push(out.binding());
  if (rstd) buffers.push(rstd.binding());
  if (rope) buffers.push(rope.positions.binding(), rope.table.tensor.binding());
  if (next) buffers.push(next.w.binding(), next.out.binding());
  if (next?.rstd) buffers.push(next.rstd.binding());
  const uniforms = new Uniforms().u32(rows).u32(d).f32(eps);
  if (rope) uniforms.u32(fused.heads).u32(rope.table.config.maxPositions).f32(NaN);
  gpu.dispatch({
    pipeline: gpu.pipelines.get(kernel, constants, rmsNormSource),
    shapes: `x${shapeString(x.shape)} w${shapeString(w.shape)}:${w.dtype}${
      fused.fuse === "none" ? "" : ` +${fused.fuse}`
    }`,
    uniforms: uniforms.build(),
    buffers,
    workgroups: grid1d(rows, launch.rowsPerGroup, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}

/** What {@linkcode checkFusion} resolves: the epilogue, and tokens and heads for `rope`. */
interface Fusion {
  readonly fuse: RmsNormFuse;
  readonly tokens: number;
  readonly heads: number;
}

/**
 * Checks `rmsNorm`'s `rope` and `next` options against x, w and the other options.
 *
 * @param x The input (its last dimension is D, checked already).
 * @param w The weight `[D]`.
 * @param options The call's options.
 * @returns The fused epilogue and, for `rope`, tokens and heads.
 * @throws {ShapeError} naming the field that does not fit.
 */
function checkFusion(x: Tensor, w: Tensor, options: RmsNormOptions): Fusion {
  const kernel = "rmsNorm";
  const { rope, next, residual, rstd } = options;
  const rows = x.numel / w.shape[0];
  if (rope && next) throw new ShapeError(kernel, "rope and next cannot both be fused");
  if (rope) {
    if (residual) throw new ShapeError(kernel, "rope cannot be fused with a residual");
    const { tokens, heads } = ropeShape(kernel, { x, ...rope, field: "rope." });
    return { fuse: "rope", tokens, heads };
  }
  if (!next) return { fuse: "none", tokens: 0, heads: 0 };
  if (next.w.dtype !== w.dtype || shapeString(next.w.shape) !== shapeString(w.shape)) {
    throw new ShapeError(
      kernel,
      `next.w must be ${w.dtype} ${shapeString(w.shape)} like w, got ${next.w.dtype} ${
        shapeString(next.w.shape)
      }`,
    );
  }
  if (next.out.dtype !== "f32" || next.out.numel !== x.numel) {
    throw new ShapeError(
      kernel,
      `next.out must be f32 with ${x.numel} elements, got ${next.out.dtype} ${
        shapeString(next.out.shape)
      }`,
    );
  }
  if ((next.rstd === undefined) !== (rstd === undefined)) {
    throw new ShapeError(kernel, "next.rstd must be given exactly when rstd is");
  }
  if (next.rstd) {
    expectDtype(kernel, "next.rstd", next.rstd, ["f32"]);
    if (next.rstd.numel !== rows) {
      throw new ShapeError(
        kernel,
        `next.rstd must hold ${rows} rows, got ${shapeString(next.rstd.shape)}`,
      );
    }
    if ([x, residual, rstd, next.out].some((t) => t && sameBuffer(t, next.rstd!))) {
      throw new ShapeError(kernel, "next.rstd must not share a buffer with another tensor");
    }
  }
  if ([x, w, residual, options.out, rstd, next.w].some((t) => t && sameBuffer(t, next.out))) {
    throw new ShapeError(
      kernel,
      "next.out must not share a buffer with x, w, residual, out, rstd or next.w",
    );
  }
  return { fuse: "next", tokens: 0, heads: 0 };
}
