/**
 * Elementwise kernels: `add` (residual connections, gradient accumulation) and `scale`.
 *
 * @module
 */

import { expectDtype, grid1d, Uniforms, WGSL_LINEAR } from "./_launch.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

const WG = 256;

const addSource = () => /* wgsl */ `
struct Params { n: u32, alpha: f32, beta: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;        // [n]
@group(0) @binding(2) var<storage, read> b: array<f32>;        // [n]
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [n]
${WGSL_LINEAR}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_index(gid, nwg, ${WG}u);
  if (i >= p.n) { return; }
  out[i] = p.alpha * a[i] + p.beta * b[i];
}`;

/** Options of {@linkcode add}. */
export interface AddOptions {
  /** Weight of `a` (default 1). */
  readonly alpha?: number;
  /** Weight of `b` (default 1). */
  readonly beta?: number;
  /** Write into this tensor (may be `a` or `b`? no: must be distinct from inputs). */
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
  const gpu = a.gpu;
  gpu.dispatch({
    pipeline: gpu.pipelines.get(kernel, {}, addSource),
    shapes: `a${shapeString(a.shape)}`,
    uniforms: new Uniforms().u32(a.numel).f32(options.alpha ?? 1).f32(options.beta ?? 1).build(),
    buffers: [a.binding(), b.binding(), out.binding()],
    workgroups: grid1d(a.numel, WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}

/**
 * Reference for {@linkcode add}.
 *
 * @param a First operand.
 * @param b Second operand.
 * @param alpha Weight of a.
 * @param beta Weight of b.
 * @returns `alpha·a + beta·b`.
 */
export function addRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  alpha = 1,
  beta = 1,
): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = alpha * a[i] + beta * b[i];
  return out;
}
