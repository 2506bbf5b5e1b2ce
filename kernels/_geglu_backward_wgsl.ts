/**
 * WGSL template of GeGLU's backward (`geglu_backward.ts` holds the launcher):
 * `dGate = dy·up·gelu'(gate)`, `dUp = dy·gelu(gate)`, one invocation per element (or vec4).
 *
 * @module
 */

import { WGSL_LINEAR } from "./_launch.ts";
import { GEGLU_WG as WG, WGSL_GELU_TANH } from "./_geglu_wgsl.ts";

/**
 * WGSL: the derivative of `gelu_tanh` ({@linkcode WGSL_GELU_TANH}) as function `name` on `ty`
 * (`f32` or `vec4<f32>`): `s + 2·x·s²·e·√(2/π)·(1 + 3·0.044715·x²)` with `e = exp(−2u)`,
 * `s = 1/(1 + e)`, which is `0.5·(1 + tanh u) + 0.5·x·(1 − tanh²u)·du/dx` without forming
 * `1 − tanh²u` by cancellation. Outside ±10 it is exactly 0 or 1 (the tail is below f32
 * resolution), so never NaN.
 */
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

/** Constants of {@linkcode gegluBackwardSource}. */
export interface GegluBackwardConstants extends Record<string, number | string | boolean> {
  /** Four values per invocation as vec4 (when I % 4 == 0). */
  vec4: boolean;
  /** Gradients written over the inputs (gate ← dGate, up ← dUp): no dgate/dup bindings. */
  inPlace: boolean;
}

/**
 * WGSL of `gegluBackward`.
 *
 * @param c Scalar or vec4 elements, in place or into separate outputs.
 * @returns The WGSL source.
 */
export const gegluBackwardSource = (c: GegluBackwardConstants): string => {
  const ty = c.vec4 ? "vec4<f32>" : "f32";
  const sfx = c.vec4 ? "4" : "";
  const unit = c.vec4 ? " (as vec4)" : "";
  const inAccess = c.inPlace ? "read_write" : "read";
  const [dGateAt, dUpAt] = c.inPlace ? ["gate[i]", "up[i]"] : ["dgate[i]", "dup[i]"];
  return /* wgsl */ `
struct Params { n: u32, inter: u32 } // in units of ${ty}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, ${inAccess}> gate: array<${ty}>; // [T, I]${unit}
@group(0) @binding(2) var<storage, ${inAccess}> up: array<${ty}>; // [T, I]${unit}
@group(0) @binding(3) var<storage, read> dy: array<${ty}>; // [T, I]${unit}
${
    c.inPlace
      ? ""
      : `@group(0) @binding(4) var<storage, read_write> dgate: array<${ty}>; // [T, I]${unit}
@group(0) @binding(5) var<storage, read_write> dup: array<${ty}>; // [T, I]${unit}`
  }
${WGSL_LINEAR}
${WGSL_GELU_TANH}
${geluGradFn(`gelu_tanh_grad${sfx}`, ty)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_index(gid, nwg, ${WG}u);
  if (i >= p.n) { return; }
  let x = gate[i];
  let u = up[i];
  let d = dy[i];
  ${dGateAt} = d * u * gelu_tanh_grad${sfx}(x);
  ${dUpAt} = d * gelu_tanh${sfx}(x);
}`;
};
