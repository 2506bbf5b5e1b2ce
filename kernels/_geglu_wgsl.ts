/**
 * WGSL templates of GeGLU's forward (`geglu.ts` holds the launcher): the tanh-form GELU and
 * `out = gelu_tanh(gate) · up`, one invocation per element (or per vec4 when I % 4 == 0).
 *
 * @module
 */

import { WGSL_LINEAR } from "./_launch.ts";

/** Invocations per workgroup of the GeGLU kernels (forward and backward). */
export const GEGLU_WG = 256;
const WG = GEGLU_WG;

/** Constants of {@linkcode gegluSource}. */
export interface GegluConstants extends Record<string, number | string | boolean> {
  /** Four values per invocation as vec4 (when I % 4 == 0): ~1.7× faster on llvmpipe. */
  vec4: boolean;
}

/** WGSL: tanh-approximated GELU (`gelu_tanh`, and `gelu_tanh4` on vec4), finite everywhere. */
export const WGSL_GELU_TANH: string = /* wgsl */ `
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

/**
 * WGSL of `geglu`: `out[i] = gelu_tanh(gate[i]) · up[i]`.
 *
 * @param c Scalar or vec4 elements.
 * @returns The WGSL source.
 */
export const gegluSource = (c: GegluConstants): string => {
  const ty = c.vec4 ? "vec4<f32>" : "f32";
  const gelu = c.vec4 ? "gelu_tanh4" : "gelu_tanh";
  const unit = c.vec4 ? " (as vec4)" : "";
  return /* wgsl */ `
struct Params { n: u32, inter: u32 } // in units of ${ty}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<${ty}>;      // [T, I]${unit}
@group(0) @binding(2) var<storage, read> up: array<${ty}>;        // [T, I]${unit}
@group(0) @binding(3) var<storage, read_write> out: array<${ty}>; // [T, I]${unit}
${WGSL_LINEAR}
${WGSL_GELU_TANH}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_index(gid, nwg, ${WG}u);
  if (i >= p.n) { return; }
  out[i] = ${gelu}(gate[i]) * up[i];
}`;
};
