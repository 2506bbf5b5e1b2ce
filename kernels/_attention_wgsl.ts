/**
 * WGSL templates of the attention family's forward (`attention.ts` holds the launchers and the
 * design): prefill/decode attention and the KV cache write.
 *
 * @module
 */

import { WGSL_LINEAR } from "./_launch.ts";

/** Keys per block of the online softmax (scores of a block stay in registers). */
export const BLOCK = 16;

/** Constants of {@linkcode attentionSource}. */
export interface AttentionConstants extends Record<string, number | boolean> {
  /** Head dimension D. */
  d: number;
  /** Values per load: 4 (vec4, when D % 4 = 0) or 1. */
  w: number;
  /** Decode (one query per sequence against a ring cache) rather than prefill. */
  decode: boolean;
  /** A `[B, 2]` ranges tensor is bound. */
  ranges: boolean;
  /** The per-row logsumexp is written. */
  lse: boolean;
  /** Invocations per workgroup. */
  wg: number;
  /** Query heads per KV head. */
  g: number;
}

/**
 * WGSL of prefill and decode attention: one invocation per (token, KV head) runs an online
 * softmax over blocks of {@linkcode BLOCK} keys for the G query heads sharing that KV head.
 *
 * @param c Head width, vector width, decode or prefill, ranges, lse output, workgroup, G.
 * @returns The WGSL source.
 */
export const attentionSource = (c: AttentionConstants): string => {
  const T = c.w === 4 ? "vec4<f32>" : "f32";
  const dw = c.d / c.w;
  const qShape = c.decode ? "[B, H, D]" : "[B, S, H, D]";
  const kShape = c.decode ? "[B, C, KvH, D] (slot = index % C)" : "[B, S, KvH, D]";
  const lseShape = c.decode ? "[B, H]" : "[B, S, H]";
  // The optional ranges binding (4) shifts out and lse by one.
  const rangesDecl = c.ranges
    ? "@group(0) @binding(4) var<storage, read> ranges: array<i32>; // [B, 2]"
    : "";
  const outDecl = c.ranges
    ? `@group(0) @binding(5) var<storage, read_write> out: array<${T}>; // ${qShape}`
    : `@group(0) @binding(4) var<storage, read_write> out: array<${T}>; // ${qShape}`;
  const lseDecl = !c.lse
    ? ""
    : c.ranges
    ? `@group(0) @binding(6) var<storage, read_write> lse: array<f32>; // ${lseShape}`
    : `@group(0) @binding(5) var<storage, read_write> lse: array<f32>; // ${lseShape}`;
  return /* wgsl */ `
struct Params {
  batch: u32, seq: u32, kv_heads: u32, window: u32, scale: f32,
  neg_inf: f32,  // −∞ from the host: WGSL constant expressions must be finite
}
@group(0) @binding(0) var<uniform> p: Params;  // seq = S (prefill) or C (decode)
@group(0) @binding(1) var<storage, read> q: array<${T}>; // ${qShape}
@group(0) @binding(2) var<storage, read> k: array<${T}>; // ${kShape}
@group(0) @binding(3) var<storage, read> v: array<${T}>; // ${kShape}
${rangesDecl}
${outDecl}
${lseDecl}
const DW: u32 = ${dw}u;
const G: u32 = ${c.g}u;   // query heads per KV head, all handled by one invocation
const BLK: i32 = ${BLOCK};
${WGSL_LINEAR}
fn dotw(a: ${T}, b: ${T}) -> f32 { return ${c.w === 4 ? "dot(a, b)" : "a * b"}; }
fn key_base(b: u32, j: i32, kvh: u32) -> u32 {
  let slot = ${c.decode ? "u32(j) % p.seq" : "u32(j)"};
  return ((b * p.seq + slot) * p.kv_heads + kvh) * DW;
}
@compute @workgroup_size(${c.wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = linear_index(gid, nwg, ${c.wg}u);  // one (token, KV head); heads h = kvh·G + g
  let kvh = row % p.kv_heads;
  let b = row / p.kv_heads${c.decode ? "" : " / p.seq"};
  if (b >= p.batch) { return; }
  var start = 0;
  var end = ${c.decode ? "1" : "i32(p.seq)"};
  ${c.ranges ? "start = max(ranges[2u * b], 0);" : ""}
  ${c.ranges ? `end = ${c.decode ? "ranges[2u * b + 1u]" : "min(ranges[2u * b + 1u], end)"};` : ""}
  ${
    c.decode
      ? "let qi = end - 1;  // the new token is the last valid index"
      : "let qi = i32((row / p.kv_heads) % p.seq);"
  }
  let base = row * G * DW;
  // the output row doubles as the accumulator: big private arrays compile to slow code
  for (var c = 0u; c < G * DW; c++) { out[base + c] = ${T}(0.0); }
  if (qi < start || qi >= end) {  // no visible key: output 0${c.lse ? ", lse −∞" : ""}
    ${c.lse ? "for (var g = 0u; g < G; g++) { lse[row * G + g] = p.neg_inf; }" : ""}
    return;
  }
  var lo = start;
  if (p.window > 0u) { lo = max(lo, qi + 1 - i32(p.window)); }
  ${c.decode ? "lo = max(lo, qi + 1 - i32(p.seq));  // the ring keeps the last C indices" : ""}
  var m: array<f32, G>;
  var l: array<f32, G>;
  var corr: array<f32, G>;
  for (var g = 0u; g < G; g++) { m[g] = -1e30; }  // finite: exp(m − max) = 0 on the first block
  for (var j0 = lo; j0 <= qi; j0 += BLK) {
    let n = min(BLK, qi + 1 - j0);
    // a full block of keys; the tail repeats key qi and is masked, so loops have fixed bounds
    var kb: array<u32, BLK>;
    for (var t = 0; t < BLK; t++) { kb[t] = key_base(b, min(j0 + t, qi), kvh); }
    // subtle: zero explicitly; a var inside a loop body is not re-zeroed on every iteration here
    var s: array<f32, G * u32(BLK)>;  // [G, BLK]
    for (var t = 0u; t < G * u32(BLK); t++) { s[t] = 0.0; }
    for (var c = 0u; c < DW; c++) {
      var qc: array<${T}, G>;
      for (var g = 0u; g < G; g++) { qc[g] = q[base + g * DW + c]; }
      for (var t = 0; t < BLK; t++) {
        let kc = k[kb[t] + c];
        for (var g = 0u; g < G; g++) { s[g * u32(BLK) + u32(t)] += dotw(qc[g], kc); }
      }
    }
    for (var g = 0u; g < G; g++) {
      var bm = m[g];
      for (var t = 0; t < BLK; t++) {
        let x = select(-1e30, s[g * u32(BLK) + u32(t)] * p.scale, t < n);
        s[g * u32(BLK) + u32(t)] = x;
        bm = max(bm, x);
      }
      corr[g] = exp(m[g] - bm);
      var lg = l[g] * corr[g];
      for (var t = 0; t < BLK; t++) {
        let e = exp(s[g * u32(BLK) + u32(t)] - bm);
        s[g * u32(BLK) + u32(t)] = e;
        lg += e;
      }
      l[g] = lg;
      m[g] = bm;
    }
    for (var c = 0u; c < DW; c++) {
      var a: array<${T}, G>;
      for (var g = 0u; g < G; g++) { a[g] = out[base + g * DW + c] * corr[g]; }
      for (var t = 0; t < BLK; t++) {
        let vc = v[kb[t] + c];
        for (var g = 0u; g < G; g++) { a[g] += s[g * u32(BLK) + u32(t)] * vc; }
      }
      for (var g = 0u; g < G; g++) { out[base + g * DW + c] = a[g]; }
    }
  }
  for (var g = 0u; g < G; g++) {
    for (var c = 0u; c < DW; c++) { out[base + g * DW + c] /= l[g]; }
    ${c.lse ? "lse[row * G + g] = m[g] + log(l[g]);" : ""}
  }
}`;
};

/** Constants of {@linkcode cacheWriteSource}. */
export interface CacheWriteConstants extends Record<string, boolean> {
  /** Per-sequence index of the first new token is bound. */
  offsets: boolean;
  /** Per-sequence count of valid new tokens is bound. */
  counts: boolean;
}

/**
 * WGSL of the KV cache write: each valid new value goes to slot `index % C`.
 *
 * @param c Which optional per-sequence tensors are bound.
 * @returns The WGSL source.
 */
export const cacheWriteSource = (c: CacheWriteConstants): string => /* wgsl */ `
struct Params { batch: u32, tokens: u32, cache_len: u32, row: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>; // [B, T, KvH, D]
${c.offsets ? "@group(0) @binding(2) var<storage, read> offsets: array<i32>; // [B]" : ""}
${
  !c.counts
    ? ""
    : c.offsets
    ? "@group(0) @binding(3) var<storage, read> counts: array<i32>; // [B]"
    : "@group(0) @binding(2) var<storage, read> counts: array<i32>; // [B]"
}
${
  [
    "@group(0) @binding(2)\nvar<storage, read_write> cache: array<f32>; // [B, C, KvH, D]",
    "@group(0) @binding(3)\nvar<storage, read_write> cache: array<f32>; // [B, C, KvH, D]",
    "@group(0) @binding(4)\nvar<storage, read_write> cache: array<f32>; // [B, C, KvH, D]",
  ][Number(c.offsets) + Number(c.counts)] // cache follows the optional offsets and counts
}
${WGSL_LINEAR}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = linear_index(gid, nwg, 64u);
  if (idx >= p.batch * p.tokens * p.row) { return; }
  let e = idx % p.row;
  let t = i32((idx / p.row) % p.tokens);
  let b = idx / (p.row * p.tokens);
  let count = ${c.counts ? "min(counts[b], i32(p.tokens))" : "i32(p.tokens)"};
  // subtle: only the last C valid tokens are written, so no two invocations share a slot
  if (t >= count || t + i32(p.cache_len) < count) { return; }
  let index = ${c.offsets ? "offsets[b] + t" : "t"};
  if (index < 0) { return; }
  cache[(b * p.cache_len + u32(index) % p.cache_len) * p.row + e] = values[idx];
}`;
