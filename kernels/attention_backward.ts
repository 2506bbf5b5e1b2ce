/**
 * Backward of prefill attention ({@linkcode attention}), flash-attention style: the softmax
 * probabilities are recomputed from the forward's logsumexp, never stored.
 *
 * For query row i (head h, KV head g = h / (H / KvH)) and key j it sees:
 * `P = exp(scale·q_i·k_j − lse_i)`, `D_i = dOut_i·out_i`, `dS = P·(dOut_i·v_j − D_i)`,
 * `dq_i = scale·Σ_j dS·k_j`, `dk_j = scale·Σ_{i,h} dS·q_i`, `dv_j = Σ_{i,h} P·dOut_i`.
 *
 * WGSL has no float atomics, so every output element is owned by one invocation (deterministic,
 * bit-reproducible) and the work is split in two launches:
 * 1. per (query token, KV head): D for its G query heads (saved for launch 2) and dq, looping
 *    over the visible keys `[max(start, i − W + 1), i]`;
 * 2. per (4 consecutive key tokens, KV head): dk and dv, looping over the rows (query i, head
 *    of the group) that see key j — queries `[j, min(end, j + W))` — recomputing P and dS; each
 *    q/dOut load serves the 4 keys.
 * Both work on blocks of keys (rows) whose dot products stay in small private arrays; the
 * output rows double as accumulators (llvmpipe compiles big private arrays into slow code,
 * slowly); no workgroup memory or barriers.
 *
 * @module
 */

import { expectDtype, expectShape, grid1d, Uniforms, WGSL_LINEAR } from "./_launch.ts";
import type { KvPair } from "./attention.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

// Block sizes: bigger blocks reuse more loads but llvmpipe's compile time grows fast with them
// (64-entry score arrays took 13 s to build); these keep every pipeline under ~1 s to build.
const KEY_BLOCK = 16; // launch 1: keys per block is KEY_BLOCK / G (at least 4)
const KEYS_PER_INVOCATION = 4; // launch 2
const ROWS_PER_BLOCK = 8; // launch 2: (query, head) rows per block

/** Options of {@linkcode attentionBackward} (those the forward ran with). */
export interface AttentionBackwardOptions {
  /** Score scale. */
  readonly scale: number;
  /** Sliding window W (query i sees keys with i − j < W); 0 or absent = global. */
  readonly window?: number;
  /** i32 `[B, 2]`: valid token indices `[start, end)` per sequence (default `[0, S)`). */
  readonly ranges?: Tensor;
}

/** Gradients returned by {@linkcode attentionBackward} (new f32 tensors; caller disposes). */
export interface AttentionBackwardResult {
  /** Shaped like q. */
  readonly dq: Tensor;
  /** Shaped like k. */
  readonly dk: Tensor;
  /** Shaped like v. */
  readonly dv: Tensor;
}

interface BackwardConstants extends Record<string, number | boolean> {
  d: number;
  w: number;
  g: number;
  ranges: boolean;
  keys: boolean; // false: launch 1 (D, dq); true: launch 2 (dk, dv)
  blk: number; // launch 1: keys per block; launch 2: (query, head) rows per block
  kb: number; // launch 2: keys per invocation
  wg: number;
}

const backwardSource = (c: BackwardConstants) => {
  const T = c.w === 4 ? "vec4<f32>" : "f32";
  let binding = 1;
  const decl = (name: string, access: string, type: string, shape: string) =>
    `@group(0) @binding(${binding++}) var<storage, ${access}> ${name}: array<${type}>; // ${shape}`;
  const decls = [
    decl("q", "read", T, "[B, S, H, D]"),
    decl("k", "read", T, "[B, S, KvH, D]"),
    decl("v", "read", T, "[B, S, KvH, D]"),
    c.keys ? "" : decl("out", "read", T, "[B, S, H, D]  forward output"),
    decl("lse", "read", "f32", "[B, S, H]"),
    decl("dout", "read", T, "[B, S, H, D]"),
    c.ranges ? decl("ranges", "read", "i32", "[B, 2]") : "",
    decl("dsum", c.keys ? "read" : "read_write", "f32", "[B, S, H]  D = dOut·out"),
    c.keys
      ? decl("dk", "read_write", T, "[B, S, KvH, D]")
      : decl("dq", "read_write", T, "[B, S, H, D]"),
    c.keys ? decl("dv", "read_write", T, "[B, S, KvH, D]") : "",
  ].join("\n");
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
    for (var c = 0u; c < DW; c++) {
      var kc: array<${T}, KB>;
      var vc: array<${T}, KB>;
      for (var t = 0; t < KB; t++) { kc[t] = k[kr[t] + c]; vc[t] = v[kr[t] + c]; }
      for (var r = 0; r < BLK; r++) {
        let qv = q[qr[r] * DW + c];
        let ov = dout[qr[r] * DW + c];
        for (var t = 0; t < KB; t++) {
          s[t * BLK + r] += dotw(qv, kc[t]);
          dp[t * BLK + r] += dotw(ov, vc[t]);
        }
      }
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
    for (var c = 0u; c < DW; c++) {
      var ak: array<${T}, KB>;
      var av: array<${T}, KB>;
      for (var t = 0; t < KB; t++) { ak[t] = dk[kr[t] + c]; av[t] = dv[kr[t] + c]; }
      for (var r = 0; r < BLK; r++) {
        let qv = q[qr[r] * DW + c];
        let ov = dout[qr[r] * DW + c];
        for (var t = 0; t < KB; t++) {
          ak[t] += dp[t * BLK + r] * qv;
          av[t] += s[t * BLK + r] * ov;
        }
      }
      // subtle: clamped duplicates of key S − 1 must not store (they would undo its update)
      for (var t = 0; t < KB; t++) {
        if (j0 + t < i32(p.seq)) { dk[kr[t] + c] = ak[t]; dv[kr[t] + c] = av[t]; }
      }
    }
  }`;

const shape4 = (t: Tensor) => (t.shape.length === 3 ? [1, ...t.shape] : [...t.shape]);

/**
 * Attention backward: gradients of q, k and v from the forward's output and logsumexp
 * (`attention(q, kv, { returnLse: true })`) and the output gradient. Two launches, no readback;
 * deterministic (no atomics, fixed summation order).
 *
 * @param q f32 `[B, S, numHeads, D]` (or `[S, numHeads, D]`), as given to the forward.
 * @param kv f32 k and v `[B, S, numKvHeads, D]` (or `[S, numKvHeads, D]`).
 * @param out f32 forward output, shaped like q.
 * @param lse f32 forward logsumexp `[B, S, numHeads]` (q's shape without D).
 * @param dOut f32 gradient of the loss with respect to out, shaped like q.
 * @param options The forward's scale, window and ranges.
 * @returns dq shaped like q, dk and dv shaped like k (new tensors; rows outside the ranges are 0).
 * @throws {ShapeError} on wrong shapes, dtypes or options.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { attention, attentionBackward } from "./attention.ts";
 * const gpu = await Gpu.create();
 * const q = Tensor.fromArray(gpu, new Float32Array(3 * 2 * 4).fill(0.1), [3, 2, 4]);
 * const k = Tensor.fromArray(gpu, new Float32Array(3 * 1 * 4).fill(0.2), [3, 1, 4]);
 * const v = Tensor.fromArray(gpu, new Float32Array(3 * 1 * 4).fill(0.3), [3, 1, 4]);
 * const { out, lse } = attention(q, { k, v }, { scale: 0.5, returnLse: true });
 * const dOut = Tensor.fromArray(gpu, new Float32Array(3 * 2 * 4).fill(1), [3, 2, 4]);
 * const { dq, dk, dv } = attentionBackward(q, { k, v }, out, lse!, dOut, { scale: 0.5 });
 * console.log((await dv.read())[0]); // ≈ 3.667 = 2 heads · (1 + 1/2 + 1/3): key 0's share
 * for (const t of [q, k, v, out, lse!, dOut, dq, dk, dv]) t.dispose();
 * gpu.destroy();
 * ```
 */
export function attentionBackward(
  q: Tensor,
  kv: KvPair,
  out: Tensor,
  lse: Tensor,
  dOut: Tensor,
  options: AttentionBackwardOptions,
): AttentionBackwardResult {
  const kernel = "attentionBackward";
  if (!Number.isFinite(options.scale)) {
    throw new ShapeError(kernel, `options.scale must be a finite number, got ${options.scale}`);
  }
  const window = options.window ?? 0;
  if (!(Number.isInteger(window) && window >= 0)) {
    throw new ShapeError(kernel, `options.window must be an integer ≥ 0, got ${window}`);
  }
  const named = [["q", q], ["k", kv.k], ["v", kv.v], ["out", out], ["dOut", dOut]] as const;
  for (const [name, t] of named) {
    expectDtype(kernel, name, t, ["f32"]);
    if (t.shape.length !== 3 && t.shape.length !== 4) {
      throw new ShapeError(kernel, `${name} must be [B, S, heads, D], got ${shapeString(t.shape)}`);
    }
    if (t.shape.length !== q.shape.length) {
      throw new ShapeError(kernel, `${name} must have q's rank, got ${shapeString(t.shape)}`);
    }
  }
  const [batch, seq, heads, headDim] = shape4(q);
  const kvHeads = shape4(kv.k)[2];
  if (kvHeads === 0 || heads % kvHeads !== 0) {
    throw new ShapeError(
      kernel,
      `numHeads (${heads}) must be a positive multiple of numKvHeads (${kvHeads})`,
    );
  }
  const rank = q.shape.length;
  for (const [name, t] of [["k", kv.k], ["v", kv.v]] as const) {
    expectShape(kernel, name, t, [batch, seq, kvHeads, headDim].slice(4 - rank));
  }
  expectShape(kernel, "out", out, q.shape);
  expectShape(kernel, "dOut", dOut, q.shape);
  expectDtype(kernel, "lse", lse, ["f32"]);
  expectShape(kernel, "lse", lse, q.shape.slice(0, -1));
  if (options.ranges) {
    expectDtype(kernel, "ranges", options.ranges, ["i32"]);
    expectShape(kernel, "ranges", options.ranges, [batch, 2]);
  }

  const gpu = q.gpu;
  const dq = Tensor.empty(gpu, q.shape, "f32");
  const dk = Tensor.empty(gpu, kv.k.shape, "f32");
  const dv = Tensor.empty(gpu, kv.v.shape, "f32");
  const dsum = Tensor.empty(gpu, lse.shape, "f32"); // D = dOut·out per row
  const g = heads / kvHeads;
  const keyGroups = Math.ceil(seq / KEYS_PER_INVOCATION);
  const wg = 16; // small workgroups: causal rows differ in length; llvmpipe runs one per core
  const uniforms = new Uniforms().u32(batch).u32(seq).u32(kvHeads).u32(window)
    .f32(options.scale).u32(keyGroups).build();
  const ranges = options.ranges ? [options.ranges.binding()] : [];
  const shapes = `q${shapeString(q.shape)} k${shapeString(kv.k.shape)} window=${window}`;
  for (const keys of [false, true]) {
    const constants: BackwardConstants = {
      d: headDim,
      w: headDim % 4 === 0 ? 4 : 1,
      g,
      ranges: options.ranges !== undefined,
      keys,
      blk: keys ? ROWS_PER_BLOCK : Math.max(4, Math.floor(KEY_BLOCK / g)),
      kb: KEYS_PER_INVOCATION,
      wg,
    };
    const rows = batch * (keys ? keyGroups : seq) * kvHeads;
    const buffers = [q.binding(), kv.k.binding(), kv.v.binding()];
    if (!keys) buffers.push(out.binding());
    buffers.push(lse.binding(), dOut.binding(), ...ranges, dsum.binding());
    buffers.push(...(keys ? [dk.binding(), dv.binding()] : [dq.binding()]));
    gpu.dispatch({
      pipeline: gpu.pipelines.get(kernel, constants, backwardSource),
      shapes: `${keys ? "dk/dv" : "dq"} ${shapes}`,
      uniforms,
      buffers,
      workgroups: grid1d(rows, wg, gpu.limits.maxComputeWorkgroupsPerDimension),
    });
  }
  dsum.dispose(); // stream-ordered: a later user of the pooled buffer runs after these reads
  return { dq, dk, dv };
}
