/**
 * WGSL template of RoPE (`rope.ts` holds the launcher, the host cos/sin table and the design).
 *
 * @module
 */

import { WGSL_LINEAR } from "./_launch.ts";

/** Invocations per workgroup of the RoPE kernel. */
export const ROPE_WG = 64;
const WG = ROPE_WG;

/**
 * WGSL of `rope`: one invocation per (token, head, pair j < D/2) rotates `(x[j], x[j + D/2])`
 * by the tabulated angle of the token's position (times `sin_sign`: −1 for the inverse).
 *
 * @param c `inPlace`: the result is written into `x` (no `out` binding).
 * @returns The WGSL source.
 */
export const ropeSource = (c: { inPlace: boolean }): string => /* wgsl */ `
struct Params {
  rows: u32, heads: u32, half: u32, max_pos: u32, sin_sign: f32,
  nan: f32,  // NaN from the host: WGSL constant expressions must be finite
}
@group(0) @binding(0) var<uniform> p: Params;
${
  c.inPlace
    ? "@group(0) @binding(1) var<storage, read_write> x: array<f32>; // [T, H, D], rotated in place"
    : "@group(0) @binding(1) var<storage, read> x: array<f32>;       // [T, H, D]"
}
@group(0) @binding(2) var<storage, read> positions: array<i32>; // [T]
@group(0) @binding(3) var<storage, read> table: array<f32>;     // [maxPos, D]: cos | sin
${c.inPlace ? "" : "@group(0) @binding(4) var<storage, read_write> out: array<f32>; // [T, H, D]"}
${WGSL_LINEAR}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = linear_index(gid, nwg, ${WG}u);
  if (idx >= p.rows * p.half) { return; }
  let j = idx % p.half;
  let row = idx / p.half;               // token * H + head
  let d = 2u * p.half;
  let pos = positions[row / p.heads];
  let at = row * d + j;
  let x1 = x[at];
  let x2 = x[at + p.half];
  var c = p.nan;  // marks a position outside the table
  var s = c;
  if (pos >= 0 && u32(pos) < p.max_pos) {
    c = table[u32(pos) * d + j];
    s = p.sin_sign * table[u32(pos) * d + p.half + j];
  }
  ${c.inPlace ? "x" : "out"}[at] = x1 * c - x2 * s;
  ${c.inPlace ? "x" : "out"}[at + p.half] = x2 * c + x1 * s;
}`;
