/**
 * WGSL template of RoPE (`rope.ts` holds the launcher, the host cos/sin table and the design),
 * and the table lookup and rotation that the fused per-head norm + RoPE (`rmsNorm`'s `rope`
 * option) shares with it.
 *
 * @module
 */

import { WGSL_LINEAR } from "./_launch.ts";

/** Invocations per workgroup of the RoPE kernel. */
export const ROPE_WG = 64;
const WG = ROPE_WG;

/**
 * WGSL functions of the split-half rotation, for a kernel that binds the cos/sin table as
 * `table` (`[maxPos, 2·half]` f32: cos | sin, see `RopeTable`):
 * - `rope_cos_sin(pos, j, half, max_pos, nan)`: `(cos, sin)` of pair `j` at position `pos`, or
 *   `(nan, nan)` for a position outside the table;
 * - `rope_rotate(x1, x2, cs)`: `(x1·cos − x2·sin, x2·cos + x1·sin)`.
 */
export const WGSL_ROPE_ROTATION = /* wgsl */ `
fn rope_cos_sin(pos: i32, j: u32, half: u32, max_pos: u32, nan: f32) -> vec2<f32> {
  if (pos >= 0 && u32(pos) < max_pos) {
    let at = u32(pos) * 2u * half + j;
    return vec2<f32>(table[at], table[at + half]);
  }
  return vec2<f32>(nan); // marks a position outside the table
}
fn rope_rotate(x1: f32, x2: f32, cs: vec2<f32>) -> vec2<f32> {
  return vec2<f32>(x1 * cs.x - x2 * cs.y, x2 * cs.x + x1 * cs.y);
}`;

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
${WGSL_ROPE_ROTATION}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = linear_index(gid, nwg, ${WG}u);
  if (idx >= p.rows * p.half) { return; }
  let j = idx % p.half;
  let row = idx / p.half;               // token * H + head
  let at = row * 2u * p.half + j;
  let cs = rope_cos_sin(positions[row / p.heads], j, p.half, p.max_pos, p.nan);
  let y = rope_rotate(x[at], x[at + p.half], vec2<f32>(cs.x, p.sin_sign * cs.y));
  ${c.inPlace ? "x" : "out"}[at] = y.x;
  ${c.inPlace ? "x" : "out"}[at + p.half] = y.y;
}`;
