/**
 * Elementwise kernels: `add` (residual connections, gradient accumulation) and `scale`.
 * Their float64 references are in elementwise_ref.ts.
 *
 * @module
 */

import { expectDtype, grid1d, Uniforms, WGSL_LINEAR } from "./_launch.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

const WG = 256;

const addSource = (c: { inPlace: boolean }) => /* wgsl */ `
struct Params { n: u32, alpha: f32, beta: f32 }
@group(0) @binding(0) var<uniform> p: Params;
${
  c.inPlace
    ? `@group(0) @binding(1) var<storage, read_write> a: array<f32>; // [n], also the output
@group(0) @binding(2) var<storage, read> b: array<f32>;        // [n]`
    : `@group(0) @binding(1) var<storage, read> a: array<f32>;        // [n]
@group(0) @binding(2) var<storage, read> b: array<f32>;        // [n]
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [n]`
}
${WGSL_LINEAR}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_index(gid, nwg, ${WG}u);
  if (i >= p.n) { return; }
  ${c.inPlace ? "a" : "out"}[i] = p.alpha * a[i] + p.beta * b[i];
}`;

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

const scaleSource = (c: { inPlace: boolean }) => /* wgsl */ `
struct Params { n: u32, factor: f32 }
@group(0) @binding(0) var<uniform> p: Params;
${
  c.inPlace
    ? "@group(0) @binding(1) var<storage, read_write> x: array<f32>; // [n], scaled in place"
    : `@group(0) @binding(1) var<storage, read> x: array<f32>;         // [n]
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [n]`
}
${WGSL_LINEAR}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_index(gid, nwg, ${WG}u);
  if (i >= p.n) { return; }
  ${c.inPlace ? "x" : "out"}[i] = p.factor * x[i];
}`;

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
