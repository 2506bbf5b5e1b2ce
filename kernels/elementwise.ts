/**
 * Elementwise kernels: `add` (residual connections, gradient accumulation) and `scale`.
 * WGSL in `_elementwise_wgsl.ts`, float64 references in `elementwise_ref.ts`.
 *
 * @module
 */

import { expectDtype, grid1d, Uniforms } from "./_launch.ts";
import { addSource, ELEMENTWISE_WG as WG, scaleSource } from "./_elementwise_wgsl.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

/** Options of {@linkcode add}. */
export interface AddOptions {
  /** Weight of `a` (default 1). */
  readonly alpha?: number;
  /** Weight of `b` (default 1). */
  readonly beta?: number;
  /** Write into this tensor; may be `a` itself (in place), never `b`. */
  readonly out?: Tensor;
}

/**
 * `out = alpha·a + beta·b` over same-shaped f32 tensors.
 *
 * @param a First operand.
 * @param b Second operand (same shape).
 * @param options Weights and an optional output tensor.
 * @returns The output tensor.
 * @throws {ShapeError} on mismatched sizes, a wrong dtype or `out` aliasing `b`.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { add } from "./elementwise.ts";
 * const gpu = await Gpu.create();
 * const a = Tensor.fromArray(gpu, new Float32Array([1, 2]));
 * const b = Tensor.fromArray(gpu, new Float32Array([3, 4]));
 * console.log(await add(a, b, { beta: -1 }).read()); // [-2, -2]
 * gpu.destroy();
 * ```
 */
export function add(a: Tensor, b: Tensor, options: AddOptions = {}): Tensor {
  const kernel = "add";
  expectDtype(kernel, "a", a, ["f32"]);
  expectDtype(kernel, "b", b, ["f32"]);
  if (a.numel !== b.numel) {
    throw new ShapeError(kernel, `a ${shapeString(a.shape)} and b ${shapeString(b.shape)} differ`);
  }
  const out = options.out ?? Tensor.empty(a.gpu, a.shape, "f32");
  if (out.numel !== a.numel || out.dtype !== "f32") {
    throw new ShapeError(kernel, `out must be f32 ${shapeString(a.shape)}`);
  }
  if (out.buffer === b.buffer) {
    throw new ShapeError(kernel, "out must not alias b (swap a and b to add in place)");
  }
  const gpu = a.gpu;
  const inPlace = out.buffer === a.buffer;
  gpu.dispatch({
    pipeline: gpu.pipelines.get(kernel, { inPlace }, addSource),
    shapes: `a${shapeString(a.shape)}`,
    uniforms: new Uniforms().u32(a.numel).f32(options.alpha ?? 1).f32(options.beta ?? 1).build(),
    buffers: inPlace ? [a.binding(), b.binding()] : [a.binding(), b.binding(), out.binding()],
    workgroups: grid1d(a.numel, WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}

/** Options of {@linkcode scale}. */
export interface ScaleOptions {
  /** Write into this f32 tensor (may be `x` itself: scales in place). */
  readonly out?: Tensor;
}

/**
 * `out = factor · x` over an f32 tensor (factor rounded to f32), e.g. gradient scaling.
 *
 * @param x Input (f32, unsplit).
 * @param factor Multiplier.
 * @param options Optional output tensor; pass `{ out: x }` to scale in place.
 * @returns The output tensor.
 * @throws {ShapeError} on a wrong dtype or output size.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { scale } from "./elementwise.ts";
 * const gpu = await Gpu.create();
 * const x = Tensor.fromArray(gpu, new Float32Array([1, -2]));
 * scale(x, 0.5, { out: x });
 * console.log(await x.read()); // [0.5, -1]
 * gpu.destroy();
 * ```
 */
export function scale(x: Tensor, factor: number, options: ScaleOptions = {}): Tensor {
  const kernel = "scale";
  expectDtype(kernel, "x", x, ["f32"]);
  if (!Number.isFinite(factor)) {
    throw new ShapeError(kernel, `factor must be finite, got ${factor}`);
  }
  const out = options.out ?? Tensor.empty(x.gpu, x.shape, "f32");
  if (out.numel !== x.numel || out.dtype !== "f32") {
    throw new ShapeError(kernel, `out must be f32 ${shapeString(x.shape)}`);
  }
  const inPlace = out.buffer === x.buffer;
  const gpu = x.gpu;
  gpu.dispatch({
    pipeline: gpu.pipelines.get(kernel, { inPlace }, scaleSource),
    shapes: `x${shapeString(x.shape)}`,
    uniforms: new Uniforms().u32(x.numel).f32(factor).build(),
    buffers: inPlace ? [x.binding()] : [x.binding(), out.binding()],
    workgroups: grid1d(x.numel, WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}
