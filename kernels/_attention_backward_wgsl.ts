/**
 * WGSL templates of the attention backward (`attention_backward.ts` holds the launcher and the
 * formulas): launch 1 (D and dq per query row) and launch 2 (dk and dv per group of keys).
 *
 * @module
 */

import { WGSL_LINEAR } from "./_launch.ts";

/** Constants of {@linkcode attentionBackwardSource}. */
export interface AttentionBackwardConstants extends Record<string, number | boolean> {
  /** Head dimension D. */
  d: number;
  /** Values per load: 4 (vec4, when D % 4 = 0) or 1. */
  w: number;
  /** Query heads per KV head. */
  g: number;
  /** A `[B, 2]` ranges tensor is bound. */
  ranges: boolean;
  keys: boolean; // false: launch 1 (D, dq); true: launch 2 (dk, dv)
  blk: number; // launch 1: keys per block; launch 2: (query, head) rows per block
  kb: number; // launch 2: keys per invocation
  /** Invocations per workgroup. */
  wg: number;
}

/** The forward's inputs, bound at 1–3 in both launches. */
const qkvLayout = (T: string): string[] => [
  `@group(0) @binding(1) var<storage, read> q: array<${T}>; // [B, S, H, D]`,
  `@group(0) @binding(2) var<storage, read> k: array<${T}>; // [B, S, KvH, D]`,
  `@group(0) @binding(3) var<storage, read> v: array<${T}>; // [B, S, KvH, D]`,
];

/**
 * Launch 1's storage bindings: q, k, v, the forward's output and lse, dOut, the optional ranges
 * (7), then dsum (D per row, written for launch 2) and dq. The flash dq kernel binds the same.
 *
 * @param T The element type (`f32` or `vec4<f32>`).
 * @param ranges Whether the ranges tensor is bound.
 * @returns The binding declarations.
 */
export const queriesLayout = (T: string, ranges: boolean): string[] => [
  ...qkvLayout(T),
  `@group(0) @binding(4) var<storage, read> out: array<${T}>; // [B, S, H, D]  forward output`,
  "@group(0) @binding(5) var<storage, read> lse: array<f32>; // [B, S, H]",
  `@group(0) @binding(6) var<storage, read> dout: array<${T}>; // [B, S, H, D]`,
  ...(ranges
    ? [
      "@group(0) @binding(7) var<storage, read> ranges: array<i32>; // [B, 2]",
      "@group(0) @binding(8) var<storage, read_write> dsum: array<f32>; // [B, S, H]  D = dOut·out",
      `@group(0) @binding(9) var<storage, read_write> dq: array<${T}>; // [B, S, H, D]`,
    ]
    : [
      "@group(0) @binding(7) var<storage, read_write> dsum: array<f32>; // [B, S, H]  D = dOut·out",
      `@group(0) @binding(8) var<storage, read_write> dq: array<${T}>; // [B, S, H, D]`,
    ]),
];

/**
 * Launch 2's storage bindings: q, k, v, the forward's lse (no output), dOut, the optional
 * ranges (6), then dsum (from launch 1), dk and dv. The flash dk/dv kernel binds the same.
 *
 * @param T The element type (`f32` or `vec4<f32>`).
 * @param ranges Whether the ranges tensor is bound.
 * @returns The binding declarations.
 */
export const keysLayout = (T: string, ranges: boolean): string[] => [
  ...qkvLayout(T),
  "@group(0) @binding(4) var<storage, read> lse: array<f32>; // [B, S, H]",
  `@group(0) @binding(5) var<storage, read> dout: array<${T}>; // [B, S, H, D]`,
  ...(ranges
    ? [
      "@group(0) @binding(6) var<storage, read> ranges: array<i32>; // [B, 2]",
      "@group(0) @binding(7) var<storage, read> dsum: array<f32>; // [B, S, H]  D = dOut·out",
      `@group(0) @binding(8) var<storage, read_write> dk: array<${T}>; // [B, S, KvH, D]`,
      `@group(0) @binding(9) var<storage, read_write> dv: array<${T}>; // [B, S, KvH, D]`,
    ]
    : [
      "@group(0) @binding(6) var<storage, read> dsum: array<f32>; // [B, S, H]  D = dOut·out",
      `@group(0) @binding(7) var<storage, read_write> dk: array<${T}>; // [B, S, KvH, D]`,
      `@group(0) @binding(8) var<storage, read_write> dv: array<${T}>; // [B, S, KvH, D]`,
    ]),
];

/**
 * WGSL of one backward launch: launch 1 (`keys: false`, D and dq per query row) or launch 2
 * (`keys: true`, dk and dv per group of keys).
 *
 * @param c Head width, vector width, G, ranges, which launch, block sizes, workgroup.
 * @returns The WGSL source.
 */
export const attentionBackwardSource = (c: AttentionBackwardConstants): string => {
  const T = c.w === 4 ? "vec4<f32>" : "f32";
  const decls = (c.keys ? keysLayout(T, c.ranges) : queriesLayout(T, c.ranges)).join("\n");
  return /* wgsl */ `
struct Params { batch: u32, seq: u32, kv_heads: u32, window: u32, scale: f32, key_groups: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${decls}
const DW: u32 = ${c.d / c.w}u;
const G: u32 = ${c.g}u;   // query heads per KV head
const BLK: i32 = ${c.blk};
const KB: i32 = ${c.kb};
${WGSL_LINEAR}
fn dotw(a: ${T}, b: ${T}) -> f32 { return ${c.w === 4 ? "dot(a, b)" : "a * b"}; }
// lse −∞ (a row that sees no key) → +huge, so P = exp(s − lse) = 0
fn safe_lse(x: f32) -> f32 { return select(3.0e38, x, x > -3.0e38); }
@compute @workgroup_size(${c.wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = linear_index(gid, nwg, ${c.wg}u);
  let kvh = idx % p.kv_heads;
  let b = idx / p.kv_heads / ${c.keys ? "p.key_groups" : "p.seq"};
  if (b >= p.batch) { return; }
  var start = 0;
  var end = i32(p.seq);
  ${c.ranges ? "start = max(ranges[2u * b], 0);" : ""}
  ${c.ranges ? "end = min(ranges[2u * b + 1u], end);" : ""}
${c.keys ? keysBody(T) : queriesBody(T)}
}`;
};

/** Launch 1, per (query token i, KV head): D and dq of the G heads. */
const queriesBody = (T: string) => /* wgsl */ `
  let tok = i32((idx / p.kv_heads) % p.seq);
  let base = idx * G * DW;  // q/out/dout/dq row of head kvh·G
  for (var c = 0u; c < G * DW; c++) { dq[base + c] = ${T}(0.0); }
  if (tok < start || tok >= end) {
    for (var g = 0u; g < G; g++) { dsum[idx * G + g] = 0.0; }
    return;
  }
  var dd: array<f32, G>;
  var ls: array<f32, G>;
  for (var g = 0u; g < G; g++) {
    var acc = 0.0;
    for (var c = 0u; c < DW; c++) { acc += dotw(dout[base + g * DW + c], out[base + g * DW + c]); }
    dd[g] = acc;
    dsum[idx * G + g] = acc;
    ls[g] = safe_lse(lse[idx * G + g]);
  }
  var lo = start;
  if (p.window > 0u) { lo = max(lo, tok + 1 - i32(p.window)); }
  var s: array<f32, G * u32(BLK)>;   // [G, BLK] scores, then P
  var dp: array<f32, G * u32(BLK)>;  // [G, BLK] dOut·v, then scale·dS
  for (var j0 = lo; j0 <= tok; j0 += BLK) {
    let n = min(BLK, tok + 1 - j0);
    // a full block of keys; the tail repeats key i and is masked, so loops have fixed bounds
    var kb: array<u32, BLK>;
    for (var t = 0; t < BLK; t++) {
      kb[t] = ((b * p.seq + u32(min(j0 + t, tok))) * p.kv_heads + kvh) * DW;
    }
    // subtle: zero explicitly; a var inside a loop body is not re-zeroed on every iteration here
    for (var t = 0u; t < G * u32(BLK); t++) { s[t] = 0.0; dp[t] = 0.0; }
    for (var c = 0u; c < DW; c++) {
      var qc: array<${T}, G>;
      var oc: array<${T}, G>;
      for (var g = 0u; g < G; g++) { qc[g] = q[base + g * DW + c]; oc[g] = dout[base + g * DW + c]; }
      for (var t = 0; t < BLK; t++) {
        let kc = k[kb[t] + c];
        let vc = v[kb[t] + c];
        for (var g = 0u; g < G; g++) {
          s[g * u32(BLK) + u32(t)] += dotw(qc[g], kc);
          dp[g * u32(BLK) + u32(t)] += dotw(oc[g], vc);
        }
      }
    }
    for (var g = 0u; g < G; g++) {
      for (var t = 0; t < BLK; t++) {
        let x = g * u32(BLK) + u32(t);
        let pr = select(0.0, exp(s[x] * p.scale - ls[g]), t < n);
        dp[x] = pr * (dp[x] - dd[g]) * p.scale;
      }
    }
    for (var c = 0u; c < DW; c++) {
      var a: array<${T}, G>;
      for (var g = 0u; g < G; g++) { a[g] = dq[base + g * DW + c]; }
      for (var t = 0; t < BLK; t++) {
        let kc = k[kb[t] + c];
        for (var g = 0u; g < G; g++) { a[g] += dp[g * u32(BLK) + u32(t)] * kc; }
      }
      for (var g = 0u; g < G; g++) { dq[base + g * DW + c] = a[g]; }
    }
  }`;

/** One pass of launch 2 over the head's columns c (see {@linkcode keyColumns}). */
interface KeyColumnPass {
  /** Names of the two `[KB]` per-key registers of column c. */
  readonly pair: readonly [string, string];
  /** Statements filling both registers for key t. */
  readonly load: string;
  /** Statements for key t and row r, with the row's `qv = q` and `ov = dOut` of column c. */
  readonly update: string;
  /** Statements after the rows (e.g. the stores), if any. */
  readonly store?: string;
}

/**
 * WGSL: launch 2's loop over columns c < DW: per column, two registers per key of the group,
 * then every row of the block with its q and dOut values of column c.
 */
const keyColumns = (T: string, pass: KeyColumnPass) => {
  const [a, b] = pass.pair;
  return `for (var c = 0u; c < DW; c++) {
      var ${a}: array<${T}, KB>;
      var ${b}: array<${T}, KB>;
      for (var t = 0; t < KB; t++) { ${pass.load} }
      for (var r = 0; r < BLK; r++) {
        let qv = q[qr[r] * DW + c];
        let ov = dout[qr[r] * DW + c];
        for (var t = 0; t < KB; t++) {
          ${pass.update}
        }
      }${pass.store ?? ""}
    }`;
};

/**
 * Launch 2, per (group of KB keys, KV head): dk and dv over the rows (query i, head g) that see
 * the keys; each q/dOut load serves KB keys, each k/v load BLK rows.
 */
const keysBody = (T: string) => /* wgsl */ `
  let j0 = i32((idx / p.kv_heads) % p.key_groups) * KB;
  var kr: array<u32, KB>;  // k/v/dk/dv row of each key (clamped to S − 1: not stored)
  for (var t = 0; t < KB; t++) {
    kr[t] = ((b * p.seq + u32(min(j0 + t, i32(p.seq) - 1))) * p.kv_heads + kvh) * DW;
    if (j0 + t < i32(p.seq)) {
      for (var c = 0u; c < DW; c++) { dk[kr[t] + c] = ${T}(0.0); dv[kr[t] + c] = ${T}(0.0); }
    }
  }
  let jf = max(j0, start);           // first and last valid key of the group
  let jl = min(j0 + KB, end) - 1;
  if (jf > jl) { return; }
  var hi = end;  // rows of queries [jf, hi) see some key of the group
  if (p.window > 0u) { hi = min(hi, jl + i32(p.window)); }
  let heads = p.kv_heads * G;
  let rows = (hi - jf) * i32(G);
  var s: array<f32, KB * BLK>;   // [KB, BLK] scores, then P
  var dp: array<f32, KB * BLK>;  // [KB, BLK] dOut·v, then scale·dS
  for (var r0 = 0; r0 < rows; r0 += BLK) {
    // a full block of rows; the tail repeats the last row and is masked
    var qr: array<u32, BLK>;  // lse/dsum index (b, i, h) of each row
    var qi: array<i32, BLK>;  // its query index, or −1 when masked
    for (var r = 0; r < BLK; r++) {
      let rr = min(r0 + r, rows - 1);
      let i = jf + rr / i32(G);
      qr[r] = (b * p.seq + u32(i)) * heads + kvh * G + u32(rr) % G;
      qi[r] = select(-1, i, r0 + r < rows);
    }
    for (var x = 0; x < KB * BLK; x++) { s[x] = 0.0; dp[x] = 0.0; }
    ${
  keyColumns(T, {
    pair: ["kc", "vc"],
    load: "kc[t] = k[kr[t] + c]; vc[t] = v[kr[t] + c];",
    update: `s[t * BLK + r] += dotw(qv, kc[t]);
          dp[t * BLK + r] += dotw(ov, vc[t]);`,
  })
}
    for (var r = 0; r < BLK; r++) {
      let l = safe_lse(lse[qr[r]]);
      let dd = dsum[qr[r]];
      for (var t = 0; t < KB; t++) {
        let j = j0 + t;
        var seen = j >= jf && j <= jl && qi[r] >= j;
        if (p.window > 0u) { seen = seen && qi[r] - j < i32(p.window); }
        let x = t * BLK + r;
        let pr = select(0.0, exp(s[x] * p.scale - l), seen);
        s[x] = pr;
        dp[x] = pr * (dp[x] - dd) * p.scale;
      }
    }
    ${
  keyColumns(T, {
    pair: ["ak", "av"],
    load: "ak[t] = dk[kr[t] + c]; av[t] = dv[kr[t] + c];",
    update: `ak[t] += dp[t * BLK + r] * qv;
          av[t] += s[t * BLK + r] * ov;`,
    store: `
      // subtle: clamped duplicates of key S − 1 must not store (they would undo its update)
      for (var t = 0; t < KB; t++) {
        if (j0 + t < i32(p.seq)) { dk[kr[t] + c] = ak[t]; dv[kr[t] + c] = av[t]; }
      }`,
  })
}
  }`;
