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

// ---------------------------------------------------------------------------------------------
// Backward: dGate = dy·up·gelu'(gate), dUp = dy·gelu(gate).
// ---------------------------------------------------------------------------------------------

const geluGradFn = (name: string, ty: string) => `
fn ${name}(x: ${ty}) -> ${ty} {
  let xc = clamp(x, ${ty}(-10.0), ${ty}(10.0));
  let x2 = xc * xc;
  let e = exp(-1.5957691216057308 * xc * (1.0 + 0.044715 * x2)); // exp(-2u)
  let s = 1.0 / (1.0 + e);                                       // 0.5·(1 + tanh u)
  // 1 − tanh²u = 4·s·(1 − s) = 4·s²·e; du/dx = √(2/π)·(1 + 3·0.044715·x²)
  let g = s + 1.5957691216057308 * xc * s * s * e * (1.0 + 0.134145 * x2);
  return select(select(g, ${ty}(1.0), x > ${ty}(10.0)), ${ty}(0.0), x < ${ty}(-10.0));
}`;

/**
 * WGSL: derivative of {@linkcode WGSL_GELU_TANH}, `gelu_tanh_grad` (and `gelu_tanh_grad4` on
 * vec4): `s + 2·x·s²·e·√(2/π)·(1 + 3·0.044715·x²)` with `e = exp(−2u)`, `s = 1/(1 + e)`, which is
 * `0.5·(1 + tanh u) + 0.5·x·(1 − tanh²u)·du/dx` without forming `1 − tanh²u` by cancellation.
 * Outside ±10 it is exactly 0 or 1 (the tail is below f32 resolution), so never NaN.
 */
export const WGSL_GELU_TANH_GRAD: string = geluGradFn("gelu_tanh_grad", "f32") +
  geluGradFn("gelu_tanh_grad4", "vec4<f32>");

interface GegluBackwardConstants extends Record<string, number | string | boolean> {
  /** Gate and up interleaved per row in one `[T, 2I]` tensor (gate first). */
  fused: boolean;
  /** Four values per invocation as vec4 (when I % 4 == 0). */
  vec4: boolean;
  /** Gradients written over the inputs (gate ← dGate, up ← dUp, or gateUp ← dGateUp). */
  inPlace: boolean;
}

const gegluBackwardSource = (c: GegluBackwardConstants) => {
  const ty = c.vec4 ? "vec4<f32>" : "f32";
  const sfx = c.vec4 ? "4" : "";
  const unit = c.vec4 ? " (as vec4)" : "";
  const inAccess = c.inPlace ? "read_write" : "read";
  const decl = c.fused
    ? [
      `var<storage, ${inAccess}> gu: array<${ty}>; // [T, 2I]: gate | up${unit}`,
      `var<storage, read> dy: array<${ty}>; // [T, I]${unit}`,
      ...(c.inPlace ? [] : [`var<storage, read_write> dgu: array<${ty}>; // [T, 2I]${unit}`]),
    ]
    : [
      `var<storage, ${inAccess}> gate: array<${ty}>; // [T, I]${unit}`,
      `var<storage, ${inAccess}> up: array<${ty}>; // [T, I]${unit}`,
      `var<storage, read> dy: array<${ty}>; // [T, I]${unit}`,
      ...(c.inPlace ? [] : [
        `var<storage, read_write> dgate: array<${ty}>; // [T, I]${unit}`,
        `var<storage, read_write> dup: array<${ty}>; // [T, I]${unit}`,
      ]),
    ];
  const [gateAt, upAt, dGateAt, dUpAt] = c.fused
    ? [
      "gu[g]",
      "gu[g + p.inter]",
      c.inPlace ? "gu[g]" : "dgu[g]",
      `${c.inPlace ? "gu" : "dgu"}[g + p.inter]`,
    ]
    : ["gate[i]", "up[i]", c.inPlace ? "gate[i]" : "dgate[i]", c.inPlace ? "up[i]" : "dup[i]"];
  return /* wgsl */ `
struct Params { n: u32, inter: u32 } // in units of ${ty}
@group(0) @binding(0) var<uniform> p: Params;
${decl.map((d, k) => `@group(0) @binding(${k + 1}) ${d}`).join("\n")}
${WGSL_LINEAR}
${WGSL_GELU_TANH}
${geluGradFn(`gelu_tanh_grad${sfx}`, ty)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_index(gid, nwg, ${WG}u);
  if (i >= p.n) { return; }
  ${c.fused ? "let g = i + (i / p.inter) * p.inter; // row t starts at 2·I·t" : ""}
  let x = ${gateAt};
  let u = ${upAt};
  let d = dy[i];
  ${dGateAt} = d * u * gelu_tanh_grad${sfx}(x);
  ${dUpAt} = d * gelu_tanh${sfx}(x);
}`;
};

/** Gradients of {@linkcode geglu}'s inputs. */
export interface GegluGrads {
  /** `dy · up · gelu'(gate)`, `[..., I]` f32. */
  readonly dGate: Tensor;
  /** `dy · gelu(gate)`, `[..., I]` f32. */
  readonly dUp: Tensor;
}

/** Options of {@linkcode gegluBackward}. */
export interface GegluBackwardOptions {
  /** Write dGate here (f32 `[..., I]`); pass `gate` itself together with `dUp: up` for in place. */
  readonly dGate?: Tensor;
  /** Write dUp here (f32 `[..., I]`); pass `up` itself together with `dGate: gate` for in place. */
  readonly dUp?: Tensor;
}

/**
 * Backward of {@linkcode geglu}: `dGate = dy·up·gelu'(gate)`, `dUp = dy·gelu(gate)` with the
 * tanh-form derivative of {@linkcode WGSL_GELU_TANH_GRAD} (finite for every finite gate).
 *
 * @param gate `[..., I]` f32, the forward's gate input.
 * @param up Same shape f32, the forward's up input.
 * @param dy Same shape f32, gradient of the output.
 * @param options Optional outputs; `{ dGate: gate, dUp: up }` overwrites the inputs.
 * @returns dGate and dUp.
 * @throws {ShapeError} on mismatched shapes, dtypes or unsupported aliasing.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { gegluBackward } from "./geglu.ts";
 * const gpu = await Gpu.create();
 * const gate = Tensor.fromArray(gpu, new Float32Array([-1, 0, 1]));
 * const up = Tensor.fromArray(gpu, new Float32Array([2, 2, 2]));
 * const dy = Tensor.fromArray(gpu, new Float32Array([1, 1, 1]));
 * const { dGate, dUp } = gegluBackward(gate, up, dy);
 * console.log(await dGate.read(), await dUp.read()); // [-0.1659, 1, 2.1659] [-0.1588, 0, 0.8412]
 * gpu.destroy();
 * ```
 */
export function gegluBackward(
  gate: Tensor,
  up: Tensor,
  dy: Tensor,
  options: GegluBackwardOptions = {},
): GegluGrads {
  const kernel = "gegluBackward";
  for (const [name, t] of [["gate", gate], ["up", up], ["dy", dy]] as const) {
    expectDtype(kernel, name, t, ["f32"]);
    const same = t.shape.length === gate.shape.length &&
      t.shape.every((d, i) => gate.shape[i] === d);
    if (!same) {
      throw new ShapeError(
        kernel,
        `${name} ${shapeString(t.shape)} must have gate's shape ${shapeString(gate.shape)}`,
      );
    }
  }
  const inPlace = options.dGate !== undefined && options.dUp !== undefined &&
    sameBuffer(options.dGate, gate) && sameBuffer(options.dUp, up);
  const inputs = [gate, up, dy];
  if (inPlace && sameBuffer(gate, up)) {
    throw new ShapeError(kernel, "in place needs gate and up in distinct buffers");
  }
  if (!inPlace) {
    for (const o of [options.dGate, options.dUp]) {
      if (o && inputs.some((t) => sameBuffer(t, o))) {
        throw new ShapeError(
          kernel,
          "dGate/dUp may alias inputs only as { dGate: gate, dUp: up } (both in place)",
        );
      }
    }
  }
  const dGate = outputFor(kernel, gate, gate.shape, options.dGate);
  const dUp = outputFor(kernel, gate, gate.shape, options.dUp);
  if (!inPlace && sameBuffer(dGate, dUp)) {
    throw new ShapeError(kernel, "dGate and dUp must be distinct tensors");
  }
  const gpu = gate.gpu;
  const inter = gate.shape.at(-1) ?? 1;
  const vec4 = inter % 4 === 0;
  const n = vec4 ? gate.numel / 4 : gate.numel;
  const buffers = [gate.binding(), up.binding(), dy.binding()];
  if (!inPlace) buffers.push(dGate.binding(), dUp.binding());
  gpu.dispatch({
    pipeline: gpu.pipelines.get(
      kernel,
      { fused: false, vec4, inPlace },
      gegluBackwardSource,
    ),
    shapes: `gate${shapeString(gate.shape)}`,
    uniforms: new Uniforms().u32(n).u32(vec4 ? inter / 4 : inter).build(),
    buffers,
    workgroups: grid1d(n, WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return { dGate, dUp };
}

/** Options of {@linkcode gegluFusedBackward}. */
export interface GegluFusedBackwardOptions {
  /** Write the `[..., 2I]` gradient here; may be `gateUp` itself (in place). */
  readonly out?: Tensor;
}

/**
 * Backward of {@linkcode gegluFused}: the gradient of the fused `[..., 2I]` gate|up tensor,
 * `dGate` in the first `I` columns of each row and `dUp` in the last `I` (the layout the fused
 * `[gate_proj; up_proj]` matmul's backward takes).
 *
 * @param gateUp `[..., 2I]` f32, the forward's input.
 * @param dy `[..., I]` f32, gradient of the output.
 * @param options Optional output (may be `gateUp`: overwrites it).
 * @returns `[..., 2I]` f32.
 * @throws {ShapeError} on mismatched shapes or dtypes.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { gegluFusedBackward } from "./geglu.ts";
 * const gpu = await Gpu.create();
 * const gu = Tensor.fromArray(gpu, new Float32Array([1, 2]), [1, 2]); // gate 1, up 2
 * const dy = Tensor.fromArray(gpu, new Float32Array([1]), [1, 1]);
 * console.log(await gegluFusedBackward(gu, dy).read()); // [2.1659, 0.8412]
 * gpu.destroy();
 * ```
 */
export function gegluFusedBackward(
  gateUp: Tensor,
  dy: Tensor,
  options: GegluFusedBackwardOptions = {},
): Tensor {
  const kernel = "gegluFusedBackward";
  expectDtype(kernel, "gateUp", gateUp, ["f32"]);
  expectDtype(kernel, "dy", dy, ["f32"]);
  const last = gateUp.shape.at(-1) ?? 0;
  const inter = last / 2;
  const lead = gateUp.shape.slice(0, -1);
  const ok = last > 0 && last % 2 === 0 && dy.shape.length === gateUp.shape.length &&
    dy.shape.every((d, i) => d === (i < lead.length ? lead[i] : inter));
  if (!ok) {
    throw new ShapeError(
      kernel,
      `gateUp must be [..., 2I] and dy [..., I], got gateUp ${shapeString(gateUp.shape)} dy ${
        shapeString(dy.shape)
      }`,
    );
  }
  const out = outputFor(kernel, gateUp, gateUp.shape, options.out);
  const inPlace = sameBuffer(out, gateUp);
  if (sameBuffer(out, dy)) throw new ShapeError(kernel, "out must not alias dy");
  const gpu = gateUp.gpu;
  const vec4 = inter % 4 === 0;
  const n = dy.numel / (vec4 ? 4 : 1);
  gpu.dispatch({
    pipeline: gpu.pipelines.get(
      "gegluBackward",
      { fused: true, vec4, inPlace },
      gegluBackwardSource,
    ),
    shapes: `gateUp${shapeString(gateUp.shape)}`,
    uniforms: new Uniforms().u32(n).u32(vec4 ? inter / 4 : inter).build(),
    buffers: inPlace ? [gateUp.binding(), dy.binding()] : [
      gateUp.binding(),
      dy.binding(),
      out.binding(),
    ],
    workgroups: grid1d(n, WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}

function sameBuffer(a: Tensor, b: Tensor): boolean {
  return a.parts.length === 1 && b.parts.length === 1 && a.parts[0].buffer === b.parts[0].buffer;
}
