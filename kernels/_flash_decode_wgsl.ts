/**
 * WGSL of flash-decoding (`attention.ts` holds the launcher and the design of its variants):
 * decode attention split over chunks of the visible keys — a partial softmax per (sequence, KV
 * head, chunk) for the G query heads of the group — and a combine pass per output element.
 *
 * @module
 */

import { packedArray, packedAt, tileArray } from "./_flash_attention_wgsl.ts";
import { WGSL_LINEAR } from "./_launch.ts";

/** Invocations per workgroup of the partial kernel. */
export const SPLIT_WORKGROUP = 64;

/** Constants of {@linkcode flashDecodeSource}. */
export interface FlashDecodeConstants extends Record<string, number> {
  /** Head dimension D. */
  d: number;
  /** Values per load: 4 (vec4, when D % 4 = 0) or 1. */
  w: number;
  /** Query heads per KV head. */
  g: number;
  /** Keys per chunk (one workgroup each). */
  chunk: number;
}

/**
 * WGSL of the partial kernel: workgroup (b, KV head, chunk) takes the chunk's keys of the
 * visible range `[lo, i]` (i = the new token); each invocation scores keys for all G heads (q
 * staged in workgroup memory), then owns columns `lane + t·64` of the G weighted value sums.
 * Writes the unnormalised sums and (max, sum of exp) per head; an empty chunk writes max −1e30,
 * sum 0.
 *
 * @param c Head width, vector width, G and chunk length.
 * @returns The WGSL source.
 */
export const flashDecodeSource = (c: FlashDecodeConstants): string => {
  const T = c.w === 4 ? "vec4<f32>" : "f32";
  const dw = c.d / c.w;
  const dc = Math.ceil(dw / SPLIT_WORKGROUP);
  const guard = (body: string) => (dw % SPLIT_WORKGROUP === 0 ? body : `if (col < DW) { ${body} }`);
  const qs = tileArray(c, "qs", c.g, "[G, DW] the group's queries");
  const sc = (f: string) => packedAt("sc", f);
  return /* wgsl */ `
struct Params { batch: u32, seq: u32, kv_heads: u32, window: u32, scale: f32, chunks: u32 }
@group(0) @binding(0) var<uniform> p: Params;  // seq = C, the cache slots
@group(0) @binding(1) var<storage, read> q: array<${T}>; // [B, H, D]
@group(0) @binding(2) var<storage, read> k: array<${T}>; // [B, C, KvH, D] (slot = index % C)
@group(0) @binding(3) var<storage, read> v: array<${T}>; // [B, C, KvH, D]
@group(0) @binding(4) var<storage, read> ranges: array<i32>; // [B, 2]
@group(0) @binding(5) var<storage, read_write> part_out: array<${T}>; // [B, H, chunks, D]
@group(0) @binding(6) var<storage, read_write> part_ml: array<f32>; // [B, H, chunks, 2] max, sum
const DW: u32 = ${dw}u;
const G: u32 = ${c.g}u;
const CH: u32 = ${c.chunk}u;
const WG: u32 = ${SPLIT_WORKGROUP}u;
const DC: u32 = ${dc}u;  // value columns per invocation: lane + t·WG
${qs.decl}
${packedArray("sc", c.g * c.chunk, "[G, CH] scores, then exp(score − max)")}
fn dotw(a: ${T}, b: ${T}) -> f32 { return ${c.w === 4 ? "dot(a, b)" : "a * b"}; }
fn key_base(b: u32, j: i32, kvh: u32) -> u32 {
  return ((b * p.seq + u32(j) % p.seq) * p.kv_heads + kvh) * DW;
}
@compute @workgroup_size(${SPLIT_WORKGROUP})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lane: u32,
) {
  let blk = wid.x + wid.y * nwg.x;  // (b, kvh, chunk), workgroup-uniform
  let b = blk / (p.kv_heads * p.chunks);
  if (b >= p.batch) { return; }
  let kvh = (blk / p.chunks) % p.kv_heads;
  let chunk = blk % p.chunks;
  let start = max(ranges[2u * b], 0);
  let qi = ranges[2u * b + 1u] - 1;  // the new token is the last valid index
  var lo = max(start, qi + 1 - i32(p.seq));  // the ring keeps the last C indices
  if (p.window > 0u) { lo = max(lo, qi + 1 - i32(p.window)); }
  let j0 = lo + i32(chunk * CH);
  let n = clamp(qi + 1 - j0, 0, i32(CH));  // keys of this chunk (0: empty chunk or sequence)
  let qbase = (b * p.kv_heads + kvh) * G * DW;  // q row of head kvh·G
  for (var x = lane; x < G * DW; x += WG) { ${qs.at("x")} = q[qbase + x]; }
  workgroupBarrier();
  for (var u = lane; u < u32(n); u += WG) {
    let kb = key_base(b, j0 + i32(u), kvh);
    var s: array<f32, G>;
    for (var g = 0u; g < G; g++) { s[g] = 0.0; }
    for (var c = 0u; c < DW; c++) {
      let kc = k[kb + c];
      for (var g = 0u; g < G; g++) { s[g] += dotw(${qs.at("g * DW + c")}, kc); }
    }
    for (var g = 0u; g < G; g++) { ${sc("g * CH + u")} = s[g] * p.scale; }
  }
  workgroupBarrier();
  var m: array<f32, G>;
  for (var g = 0u; g < G; g++) {
    var mx = -1e30;
    for (var u = 0; u < n; u++) { mx = max(mx, ${sc("g * CH + u32(u)")}); }
    m[g] = mx;
  }
  workgroupBarrier();  // every max is taken before the scores become probabilities
  for (var u = lane; u < u32(n); u += WG) {
    for (var g = 0u; g < G; g++) { ${sc("g * CH + u")} = exp(${sc("g * CH + u")} - m[g]); }
  }
  workgroupBarrier();
  var acc: array<${T}, G * DC>;  // [G, DC]
  var l: array<f32, G>;
  for (var x = 0u; x < G * DC; x++) { acc[x] = ${T}(0.0); }
  for (var g = 0u; g < G; g++) { l[g] = 0.0; }
  for (var u = 0; u < n; u++) {
    let vb = key_base(b, j0 + u, kvh);
    for (var g = 0u; g < G; g++) { l[g] += ${sc("g * CH + u32(u)")}; }
    for (var t = 0u; t < DC; t++) {
      let col = lane + t * WG;
      ${
    guard(`let vc = v[vb + col];
      for (var g = 0u; g < G; g++) { acc[g * DC + t] += ${sc("g * CH + u32(u)")} * vc; }`)
  }
    }
  }
  for (var g = 0u; g < G; g++) {
    let pr = ((b * p.kv_heads + kvh) * G + g) * p.chunks + chunk;  // (b, h, chunk)
    for (var t = 0u; t < DC; t++) {
      let col = lane + t * WG;
      ${guard("part_out[pr * DW + col] = acc[g * DC + t];")}
    }
    if (lane == 0u) {
      part_ml[2u * pr] = m[g];
      part_ml[2u * pr + 1u] = l[g];
    }
  }
}`;
};

/** Constants of {@linkcode flashDecodeCombineSource}. */
export interface FlashDecodeCombineConstants extends Record<string, number | boolean> {
  /** Head dimension D. */
  d: number;
  /** Values per load: 4 (vec4, when D % 4 = 0) or 1. */
  w: number;
  /** The per-row logsumexp is written. */
  lse: boolean;
}

/**
 * WGSL of the combine pass: one invocation per output vector of (b, h) rescales the chunks'
 * partial sums by exp(max_c − max) and divides by the combined sum; a row whose chunks are all
 * empty gets 0 and lse −∞.
 *
 * @param c Head width, vector width and lse output.
 * @returns The WGSL source.
 */
export const flashDecodeCombineSource = (c: FlashDecodeCombineConstants): string => {
  const T = c.w === 4 ? "vec4<f32>" : "f32";
  return /* wgsl */ `
struct Params {
  rows: u32,     // B·H
  chunks: u32,
  neg_inf: f32,  // −∞ from the host: WGSL constant expressions must be finite
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part_out: array<${T}>; // [B, H, chunks, D]
@group(0) @binding(2) var<storage, read> part_ml: array<f32>; // [B, H, chunks, 2] max, sum
@group(0) @binding(3) var<storage, read_write> out: array<${T}>; // [B, H, D]
${c.lse ? "@group(0) @binding(4) var<storage, read_write> lse: array<f32>; // [B, H]" : ""}
const DW: u32 = ${c.d / c.w}u;
${WGSL_LINEAR}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = linear_index(gid, nwg, 64u);
  if (idx >= p.rows * DW) { return; }
  let row = idx / DW;
  let first = row * p.chunks;
  var mx = -1e30;
  for (var ch = 0u; ch < p.chunks; ch++) { mx = max(mx, part_ml[2u * (first + ch)]); }
  var l = 0.0;
  var a = ${T}(0.0);
  for (var ch = 0u; ch < p.chunks; ch++) {
    let wt = exp(part_ml[2u * (first + ch)] - mx);
    l += part_ml[2u * (first + ch) + 1u] * wt;
    a += part_out[(first + ch) * DW + idx % DW] * wt;
  }
  out[idx] = a * select(0.0, 1.0 / l, l > 0.0);
  ${c.lse ? "if (idx % DW == 0u) { lse[row] = select(p.neg_inf, mx + log(l), l > 0.0); }" : ""}
}`;
};
