/**
 * GeGLU, the gate of Gemma's MLP: `out = gelu_tanh(gate) · up` with
 * `gelu_tanh(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (`gelu_pytorch_tanh`).
 *
 * subtle: WGSL `tanh` overflows to NaN for large |x| on some implementations, so the kernel uses
 * the identity `0.5·(1 + tanh(u)) = 1 / (1 + exp(−2u))` on x clamped to ±10, where the gate is
 * already 0 or 1 to f32 precision: finite everywhere and exact in the limits.
 *
 * @module
 */

import { expectDtype, grid1d, Uniforms, WGSL_LINEAR } from "./_launch.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

const WG = 256;

interface GegluConstants extends Record<string, number | string | boolean> {
  /** Gate and up interleaved per row in one `[T, 2I]` tensor (gate first). */
  fused: boolean;
  /** Four values per invocation as vec4 (when I % 4 == 0): ~1.7× faster on llvmpipe. */
  vec4: boolean;
}

/** WGSL: tanh-approximated GELU (`gelu_tanh`, and `gelu_tanh4` on vec4), finite everywhere. */
export const WGSL_GELU_TANH = /* wgsl */ `
// Beyond |x| = 10 the gate is 0 or 1 to f32 precision (exp(-87)); clamping keeps x³ and exp
// finite. Inside, 0.5·(1 + tanh(u)) = 1 / (1 + exp(-2u)).
fn gelu_tanh(x: f32) -> f32 {
  let xc = clamp(x, -10.0, 10.0);
  let u = 0.7978845608028654 * (xc + 0.044715 * xc * xc * xc); // √(2/π)·(x + 0.044715x³)
  return select(x / (1.0 + exp(-2.0 * u)), 0.0, x < -10.0);
}
fn gelu_tanh4(x: vec4<f32>) -> vec4<f32> {
  let xc = clamp(x, vec4<f32>(-10.0), vec4<f32>(10.0));
  let u = 0.7978845608028654 * (xc + 0.044715 * xc * xc * xc);
  return select(x / (1.0 + exp(-2.0 * u)), vec4<f32>(0.0), x < vec4<f32>(-10.0));
}`;

const gegluSource = (c: GegluConstants) => {
  const ty = c.vec4 ? "vec4<f32>" : "f32";
  const gelu = c.vec4 ? "gelu_tanh4" : "gelu_tanh";
  const unit = c.vec4 ? " (as vec4)" : "";
  return /* wgsl */ `
struct Params { n: u32, inter: u32 } // in units of ${ty}
@group(0) @binding(0) var<uniform> p: Params;
${
    c.fused
      ? `@group(0) @binding(1) var<storage, read> gu: array<${ty}>;        // [T, 2I]: gate | up${unit}`
      : `@group(0) @binding(1) var<storage, read> gate: array<${ty}>;      // [T, I]${unit}
@group(0) @binding(2) var<storage, read> up: array<${ty}>;        // [T, I]${unit}`
  }
@group(0) @binding(${c.fused ? 2 : 3}) var<storage, read_write> out: array<${ty}>; // [T, I]${unit}
${WGSL_LINEAR}
${WGSL_GELU_TANH}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_index(gid, nwg, ${WG}u);
  if (i >= p.n) { return; }
  ${
    c.fused
      ? `let g = i + (i / p.inter) * p.inter; // row t starts at 2·I·t
  out[i] = ${gelu}(gu[g]) * gu[g + p.inter];`
      : `out[i] = ${gelu}(gate[i]) * up[i];`
  }
}`;
};

/** Options of {@linkcode geglu} and {@linkcode gegluFused}. */
export interface GegluOptions {
  /** Write the result here (f32 `[T, I]`, distinct from the inputs). */
  readonly out?: Tensor;
}

function outputFor(kernel: string, like: Tensor, shape: readonly number[], out?: Tensor): Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  const o = out ?? Tensor.empty(like.gpu, shape, "f32");
  if (o.dtype !== "f32" || o.numel !== numel) {
    throw new ShapeError(
      kernel,
      `out must be f32 ${shapeString(shape)}, got ${o.dtype} ${shapeString(o.shape)}`,
    );
  }
  return o;
}

/**
 * `gelu_tanh(gate) · up` elementwise (Gemma's MLP between gate/up_proj and down_proj).
 *
 * @param gate `[..., I]` f32, the gate_proj output.
 * @param up Same shape f32, the up_proj output.
 * @param options Optional output tensor.
 * @returns `[..., I]` f32.
 * @throws {ShapeError} on mismatched shapes or dtypes.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { geglu } from "./geglu.ts";
 * const gpu = await Gpu.create();
 * const gate = Tensor.fromArray(gpu, new Float32Array([-1, 0, 1]));
 * const up = Tensor.fromArray(gpu, new Float32Array([2, 2, 2]));
 * console.log(await geglu(gate, up).read()); // [-0.3176, 0, 1.6824]
 * gpu.destroy();
 * ```
 */
export function geglu(gate: Tensor, up: Tensor, options: GegluOptions = {}): Tensor {
  const kernel = "geglu";
  expectDtype(kernel, "gate", gate, ["f32"]);
  expectDtype(kernel, "up", up, ["f32"]);
  const same = gate.shape.length === up.shape.length &&
    gate.shape.every((d, i) => up.shape[i] === d);
  if (!same) {
    throw new ShapeError(
      kernel,
      `gate ${shapeString(gate.shape)} and up ${shapeString(up.shape)} must have the same shape`,
    );
  }
  const out = outputFor(kernel, gate, gate.shape, options.out);
  const gpu = gate.gpu;
  const inter = gate.shape.at(-1) ?? 1;
  const vec4 = inter % 4 === 0;
  const n = vec4 ? gate.numel / 4 : gate.numel;
  gpu.dispatch({
    pipeline: gpu.pipelines.get("geglu", { fused: false, vec4 }, gegluSource),
    shapes: `gate${shapeString(gate.shape)}`,
    uniforms: new Uniforms().u32(n).u32(vec4 ? inter / 4 : inter).build(),
    buffers: [gate.binding(), up.binding(), out.binding()],
    workgroups: grid1d(n, WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}

/**
 * GeGLU on a fused gate/up projection: each row of `gateUp` `[..., 2I]` holds the gate in its
 * first `I` columns and up in the last `I` (one matmul against `[gate_proj; up_proj]`).
 *
 * @param gateUp `[..., 2I]` f32.
 * @param options Optional output tensor.
 * @returns `[..., I]` f32.
 * @throws {ShapeError} on an odd last dimension or a wrong dtype.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { gegluFused } from "./geglu.ts";
 * const gpu = await Gpu.create();
 * const gu = Tensor.fromArray(gpu, new Float32Array([1, 2]), [1, 2]); // gate 1, up 2
 * console.log(await gegluFused(gu).read()); // [1.6824]
 * gpu.destroy();
 * ```
 */
export function gegluFused(gateUp: Tensor, options: GegluOptions = {}): Tensor {
  const kernel = "gegluFused";
  expectDtype(kernel, "gateUp", gateUp, ["f32"]);
  const last = gateUp.shape.at(-1) ?? 0;
  if (last === 0 || last % 2 !== 0) {
    throw new ShapeError(
      kernel,
      `gateUp must have an even, non-zero last dimension [..., 2I], got ${
        shapeString(gateUp.shape)
      }`,
    );
  }
  const inter = last / 2;
  const shape = [...gateUp.shape.slice(0, -1), inter];
  const out = outputFor(kernel, gateUp, shape, options.out);
  const gpu = gateUp.gpu;
  const vec4 = inter % 4 === 0;
  const n = gateUp.numel / (vec4 ? 8 : 2);
  gpu.dispatch({
    pipeline: gpu.pipelines.get("geglu", { fused: true, vec4 }, gegluSource),
    shapes: `gateUp${shapeString(gateUp.shape)}`,
    uniforms: new Uniforms().u32(n).u32(vec4 ? inter / 4 : inter).build(),
    buffers: [gateUp.binding(), out.binding()],
    workgroups: grid1d(n, WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}
