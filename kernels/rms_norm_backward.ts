/**
 * Backward of RMSNorm ({@linkcode rmsNorm}). For `y = x·r·(1 + w)`, `r = 1/sqrt(mean(x²) + eps)`,
 * with `gw = dy ∘ (1 + w)`:
 *
 *   dx = r·gw − x·r³·(Σ_i gw_i·x_i) / D        (per row)
 *   dw = Σ_rows dy ∘ x · r                      (over rows; two-stage, fixed order)
 *
 * The residual form `h + norm(x)` needs nothing more: dh passes through and this computes norm's
 * dx from the same gradient. The dx kernel's row sum `Σ gw·x` comes in the forward's variants
 * (`row`, `workgroup`, `sg`: see `rms_norm.ts`); dw is a column sum over rows, one fixed-order
 * kernel for all. WGSL in `_rms_norm_backward_wgsl.ts`.
 *
 * @module
 */

import { expectDtype, grid1d, sameBuffer, Uniforms } from "./_launch.ts";
import { rowLaunch } from "./_rms_norm_launch.ts";
import {
  DW_WG,
  rmsNormDwSource,
  type RmsNormDxConstants,
  rmsNormDxSource,
} from "./_rms_norm_backward_wgsl.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

/** What the forward ran on and saved: the inputs of {@linkcode rmsNorm} and its `rstd`. */
export interface RmsNormBackwardInputs {
  /** The forward input `[..., D]` f32. */
  readonly x: Tensor;
  /** The weight `[D]`, f32 or bf16. */
  readonly w: Tensor;
  /** The forward's per-row `1/rms` (its `rstd` option), `rows` f32 values. */
  readonly rstd: Tensor;
}

/** Options of {@linkcode rmsNormBackward}. */
export interface RmsNormBackwardOptions {
  /**
   * `[D]` f32 weight gradient: `dw += Σ_rows dy ∘ x · rstd` (always accumulated; zero it for a
   * fresh gradient). Leave it out when the weights are frozen (LoRA training).
   */
  readonly dw?: Tensor;
  /** Write dx here (f32, x's element count); may be `dy` itself (in place). */
  readonly out?: Tensor;
  /** Add dx into `out` (`out += dx`, e.g. into the residual stream's gradient). Needs `out`. */
  readonly accumulateDx?: boolean;
  /**
   * Forces the dx kernel's variant (as {@linkcode rmsNorm}'s: `row`, `workgroup`, `sg`, one of
   * `rmsNormCandidates`); default: the tuner's choice. The dw reduction is the same for all.
   */
  readonly variant?: string;
}

/**
 * Backward of {@linkcode rmsNorm}: `dx = rstd·gw − x·rstd³·(Σ_i gw_i·x_i)/D` per row and
 * `dw += Σ_rows dy ∘ x · rstd`, the latter as a deterministic two-stage reduction (fixed-order
 * block sums, then a fixed-order sum of the blocks), so results are bit-identical run to run.
 * Also the per-head q/k norm: x and dy `[T, H, headDim]`, w and dw `[headDim]`, rstd `[T·H]`.
 *
 * @param dy Gradient of the output, x's shape, f32.
 * @param inputs The forward's x and w and the `rstd` it wrote.
 * @param options Weight gradient to accumulate into, dx target, dx accumulation, variant.
 * @returns dx (`options.out` when given, else a new f32 tensor shaped like x).
 * @throws {ShapeError} on mismatched shapes, dtypes or aliasing, or a variant not valid here.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { rmsNorm } from "./rms_norm.ts";
 * import { rmsNormBackward } from "./rms_norm_backward.ts";
 * const gpu = await Gpu.create();
 * const x = Tensor.fromArray(gpu, new Float32Array([3, 4]), [1, 2]);
 * const w = Tensor.fromArray(gpu, new Float32Array([0, 1]), [2]);
 * const rstd = Tensor.empty(gpu, [1]);
 * rmsNorm(x, w, { eps: 0, rstd });
 * const dy = Tensor.fromArray(gpu, new Float32Array([1, 0]), [1, 2]);
 * const dw = Tensor.zeros(gpu, [2]);
 * const dx = rmsNormBackward(dy, { x, w, rstd }, { dw });
 * console.log(await dx.read(), await dw.read()); // [0.1810, -0.1358] [0.8485, 0]
 * gpu.destroy();
 * ```
 */
export function rmsNormBackward(
  dy: Tensor,
  inputs: RmsNormBackwardInputs,
  options: RmsNormBackwardOptions = {},
): Tensor {
  const kernel = "rmsNormBackward";
  const { x, w, rstd } = inputs;
  expectDtype(kernel, "x", x, ["f32"]);
  expectDtype(kernel, "w", w, ["f32", "bf16"]);
  expectDtype(kernel, "rstd", rstd, ["f32"]);
  expectDtype(kernel, "dy", dy, ["f32"]);
  const d = w.shape.length === 1 ? w.shape[0] : 0;
  if (d === 0 || x.shape.at(-1) !== d) {
    throw new ShapeError(
      kernel,
      `w must be [D] and x [..., D], got w ${shapeString(w.shape)} x ${shapeString(x.shape)}`,
    );
  }
  const rows = x.numel / d;
  if (dy.numel !== x.numel) {
    throw new ShapeError(
      kernel,
      `dy must match x ${shapeString(x.shape)}, got ${shapeString(dy.shape)}`,
    );
  }
  if (rstd.numel !== rows) {
    throw new ShapeError(kernel, `rstd must hold ${rows} rows, got ${shapeString(rstd.shape)}`);
  }
  const { dw, out } = options;
  if (dw) {
    if (dw.dtype !== "f32" || dw.numel !== d) {
      throw new ShapeError(
        kernel,
        `dw must be f32 [${d}], got ${dw.dtype} ${shapeString(dw.shape)}`,
      );
    }
    if ([x, dy, rstd].some((t) => sameBuffer(t, dw)) || (out && sameBuffer(out, dw))) {
      throw new ShapeError(kernel, "dw must not alias x, dy, rstd or out");
    }
  }
  if (out) {
    if (out.dtype !== "f32" || out.numel !== x.numel) {
      throw new ShapeError(
        kernel,
        `out must be f32 with ${x.numel} elements, got ${out.dtype} ${shapeString(out.shape)}`,
      );
    }
    if (sameBuffer(out, x) || sameBuffer(out, rstd)) {
      throw new ShapeError(kernel, "out must not alias x or rstd (dy is allowed)");
    }
  } else if (options.accumulateDx) {
    throw new ShapeError(kernel, "accumulateDx needs an out tensor to add into");
  }
  const gpu = x.gpu;
  const launch = rowLaunch(gpu, {
    kernel,
    variant: options.variant,
    rows,
    d,
    shapeClass: w.dtype,
    prepare: () => {
      const sx = Tensor.zeros(gpu, [rows, d]), sw = Tensor.zeros(gpu, [d], w.dtype);
      const sr = Tensor.zeros(gpu, [rows]), sdy = Tensor.zeros(gpu, [rows, d]);
      const sdx = Tensor.empty(gpu, [rows, d]);
      return {
        launch: (id) =>
          void rmsNormBackward(sdy, { x: sx, w: sw, rstd: sr }, { variant: id, out: sdx }),
        dispose: () => [sx, sw, sr, sdy, sdx].forEach((t) => t.dispose()),
      };
    },
  });
  const maxGrid = gpu.limits.maxComputeWorkgroupsPerDimension;
  const shapes = `x${shapeString(x.shape)} w${shapeString(w.shape)}:${w.dtype}`;
  // dw first: it reads dy, which dx may overwrite.
  if (dw) rmsNormDw(dy, { x, rstd, dw }, { rows, d, shapes });
  const dx = out ?? Tensor.empty(gpu, x.shape, "f32");
  const inPlace = sameBuffer(dx, dy);
  const constants: RmsNormDxConstants = {
    strategy: launch.strategy,
    wg: launch.wg,
    wBf16: w.dtype === "bf16",
    inPlace,
    accumulate: options.accumulateDx ?? false,
  };
  const buffers = [x.binding(), w.binding(), rstd.binding(), dy.binding()];
  if (!inPlace) buffers.push(dx.binding());
  gpu.dispatch({
    pipeline: gpu.pipelines.get("rmsNormBackwardDx", constants, rmsNormDxSource),
    shapes,
    uniforms: new Uniforms().u32(rows).u32(d).build(),
    buffers,
    workgroups: grid1d(rows, launch.rowsPerGroup, maxGrid),
  });
  return dx;
}

/** Rows summed per invocation in the first dw stage: at least 16, at most 64 blocks. */
function dwBlock(rows: number): number {
  return Math.max(16, Math.ceil(rows / 64));
}

/** `dw += Σ_rows dy ∘ x · rstd`: fixed-order block sums, then (if several) their fixed-order sum. */
function rmsNormDw(
  dy: Tensor,
  tensors: { readonly x: Tensor; readonly rstd: Tensor; readonly dw: Tensor },
  dims: { readonly rows: number; readonly d: number; readonly shapes: string },
): void {
  const { x, rstd, dw } = tensors;
  const { rows, d, shapes } = dims;
  const gpu = x.gpu;
  const maxGrid = gpu.limits.maxComputeWorkgroupsPerDimension;
  const block = dwBlock(rows);
  const blocks = Math.ceil(rows / block);
  const final = blocks === 1;
  const partials = final ? dw : Tensor.empty(gpu, [blocks, d], "f32");
  gpu.dispatch({
    pipeline: gpu.pipelines.get("rmsNormBackwardDw", { stage: "rows", final }, rmsNormDwSource),
    shapes,
    uniforms: new Uniforms().u32(rows).u32(d).u32(block).u32(blocks).build(),
    buffers: [x.binding(), rstd.binding(), dy.binding(), partials.binding()],
    workgroups: grid1d(blocks * d, DW_WG, maxGrid),
  });
  if (final) return;
  gpu.dispatch({
    pipeline: gpu.pipelines.get(
      "rmsNormBackwardDw",
      { stage: "blocks", final: true },
      rmsNormDwSource,
    ),
    shapes: `${shapes} partials[${blocks},${d}]`,
    uniforms: new Uniforms().u32(blocks).u32(d).u32(blocks).u32(1).build(),
    buffers: [partials.binding(), dw.binding()],
    workgroups: grid1d(d, DW_WG, maxGrid),
  });
  partials.dispose(); // stream-ordered: later users of the pooled buffer run after these reads
}
