/**
 * Causal grouped-query attention with an optional sliding window (softmax in f32), in a prefill
 * form (all queries of `[B, S]` sequences) and a decode form (one new query per sequence against
 * a KV cache, ring buffers included), plus the cache write.
 *
 * Semantics (Gemma 3 / transformers eager): scores `(q·k)·scale`, query head h uses KV head
 * `h / (numHeads / numKvHeads)`; query index i sees key index j iff `start ≤ j ≤ i` and, with a
 * window W, `i − j < W`.
 *
 * Sequences: `ranges` (i32 `[B, 2]`) gives each sequence's valid token indices `[start, end)`:
 * left padding → start > 0, right padding → end < S. Rows outside `[start, end)` produce 0 and
 * lse −∞. RoPE positions of such a layout are `index − start` (see `rope`). Without `ranges`
 * every sequence is `[0, S)`.
 *
 * KV cache: `[B, C, numKvHeads, D]`; token index p of a sequence lives in slot `p % C`, so a
 * cache with C ≥ the longest sequence is a plain cache and a sliding layer can keep a ring of
 * C ≥ window slots. Decode sees at most the last C indices: for a global layer make C ≥ the
 * longest sequence.
 *
 * Kernel: one invocation per (token, KV head) handles the G = numHeads / numKvHeads query heads
 * that share the KV head (each K/V load serves G heads); online (flash-style) softmax over
 * blocks of 16 keys whose scores stay in registers, the output row as accumulator. No workgroup
 * memory or barriers (slow on llvmpipe) and no large private arrays (llvmpipe compiles
 * dynamically indexed private arrays into slow code that takes a minute to build).
 *
 * @module
 */

import { expectDtype, expectShape, grid1d, Uniforms, WGSL_LINEAR } from "./_launch.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";
export { attentionBackward } from "./attention_backward.ts";
export type { AttentionBackwardOptions, AttentionBackwardResult } from "./attention_backward.ts";

const BLOCK = 16;

/** Keys and values (same shape). */
export interface KvPair {
  /** Keys. */
  readonly k: Tensor;
  /** Values. */
  readonly v: Tensor;
}

/** Options shared by {@linkcode attention} and {@linkcode attentionDecode}. */
export interface AttentionOptions {
  /** Score scale (Gemma 3: `queryPreAttnScalar^−0.5`, not `headDim^−0.5`). */
  readonly scale: number;
  /** Sliding window W (query i sees keys with i − j < W); 0 or absent = global. */
  readonly window?: number;
  /** i32 `[B, 2]`: valid token indices `[start, end)` per sequence (required for decode). */
  readonly ranges?: Tensor;
  /** Also return the per-row logsumexp of the scaled scores (for the backward pass). */
  readonly returnLse?: boolean;
  /** Write the output here (f32, shaped like q). */
  readonly out?: Tensor;
}

/** Output of the attention launchers. */
export interface AttentionResult {
  /** Attention output, shaped like q. */
  readonly out: Tensor;
  /** Natural-log logsumexp per query row (`q.shape` without D), or null when not requested. */
  readonly lse: Tensor | null;
}

interface AttentionConstants extends Record<string, number | boolean> {
  d: number;
  w: number;
  decode: boolean;
  ranges: boolean;
  lse: boolean;
  wg: number;
  g: number;
}

const attentionSource = (c: AttentionConstants) => {
  const T = c.w === 4 ? "vec4<f32>" : "f32";
  const dw = c.d / c.w;
  const qShape = c.decode ? "[B, H, D]" : "[B, S, H, D]";
  const kShape = c.decode ? "[B, C, KvH, D] (slot = index % C)" : "[B, S, KvH, D]";
  let binding = 4;
  const rangesDecl = c.ranges
    ? `@group(0) @binding(${binding++}) var<storage, read> ranges: array<i32>; // [B, 2]`
    : "";
  const outDecl =
    `@group(0) @binding(${binding++}) var<storage, read_write> out: array<${T}>; // ${qShape}`;
  const lseDecl = c.lse
    ? `@group(0) @binding(${binding++}) var<storage, read_write> lse: array<f32>; // ${
      c.decode ? "[B, H]" : "[B, S, H]"
    }`
    : "";
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

function checkCommon(kernel: string, options: AttentionOptions): number {
  if (!Number.isFinite(options.scale)) {
    throw new ShapeError(kernel, `options.scale must be a finite number, got ${options.scale}`);
  }
  const window = options.window ?? 0;
  if (!(Number.isInteger(window) && window >= 0)) {
    throw new ShapeError(kernel, `options.window must be an integer ≥ 0, got ${window}`);
  }
  return window;
}

function launch(
  kernel: string,
  decode: boolean,
  q: Tensor,
  kv: KvPair,
  dims: { batch: number; seq: number; heads: number; kvHeads: number; headDim: number },
  options: AttentionOptions,
  window: number,
): AttentionResult {
  const gpu = q.gpu;
  const { batch, seq, heads, kvHeads, headDim } = dims;
  if (options.ranges) {
    expectDtype(kernel, "ranges", options.ranges, ["i32"]);
    expectShape(kernel, "ranges", options.ranges, [batch, 2]);
  }
  if (options.out && [q, kv.k, kv.v].includes(options.out)) {
    throw new ShapeError(kernel, "out must not alias q, k or v");
  }
  const out = options.out ?? Tensor.empty(gpu, q.shape, "f32");
  if (out.dtype !== "f32" || shapeString(out.shape) !== shapeString(q.shape)) {
    throw new ShapeError(
      kernel,
      `out must be f32 ${shapeString(q.shape)}, got ${out.dtype} ${shapeString(out.shape)}`,
    );
  }
  const rows = q.numel / headDim / (heads / kvHeads);
  const lse = options.returnLse ? Tensor.empty(gpu, q.shape.slice(0, -1), "f32") : null;
  // small workgroups: causal rows differ in length, and llvmpipe runs one workgroup per core
  const wg = decode ? 4 : 16;
  const constants: AttentionConstants = {
    d: headDim,
    w: headDim % 4 === 0 ? 4 : 1,
    decode,
    ranges: options.ranges !== undefined,
    lse: lse !== null,
    wg,
    g: heads / kvHeads,
  };
  const buffers = [q.binding(), kv.k.binding(), kv.v.binding()];
  if (options.ranges) buffers.push(options.ranges.binding());
  buffers.push(out.binding());
  if (lse) buffers.push(lse.binding());
  gpu.dispatch({
    pipeline: gpu.pipelines.get(kernel, constants, attentionSource),
    shapes: `q${shapeString(q.shape)} k${shapeString(kv.k.shape)} window=${window}`,
    uniforms: new Uniforms().u32(batch).u32(seq).u32(kvHeads).u32(window)
      .f32(options.scale).f32(-Infinity).build(),
    buffers,
    workgroups: grid1d(rows, wg, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return { out, lse };
}

function checkHeads(kernel: string, heads: number, kvHeads: number): void {
  if (kvHeads === 0 || heads % kvHeads !== 0) {
    throw new ShapeError(
      kernel,
      `numHeads (${heads}) must be a positive multiple of numKvHeads (${kvHeads})`,
    );
  }
}

/**
 * Prefill attention: every query row of `[B, S]` sequences attends causally to the keys of its
 * own sequence.
 *
 * @param q f32 `[B, S, numHeads, D]` (or `[S, numHeads, D]` for one sequence).
 * @param kv f32 k and v, `[B, S, numKvHeads, D]` (or `[S, numKvHeads, D]`).
 * @param options Scale, window, optional ranges `[B, 2]`, lse, output.
 * @returns Output shaped like q, and lse `[B, S, numHeads]` when requested.
 * @throws {ShapeError} on wrong shapes, dtypes or options.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { attention } from "./attention.ts";
 * const gpu = await Gpu.create();
 * const q = Tensor.fromArray(gpu, new Float32Array(2 * 4 * 8).fill(0.1), [2, 4, 8]);
 * const k = Tensor.fromArray(gpu, new Float32Array(2 * 1 * 8).fill(0.2), [2, 1, 8]);
 * const v = Tensor.fromArray(gpu, new Float32Array(2 * 1 * 8).fill(0.3), [2, 1, 8]);
 * const { out } = attention(q, { k, v }, { scale: 24 ** -0.5, window: 8 });
 * console.log((await out.read())[0]); // 0.3
 * for (const t of [q, k, v, out]) t.dispose();
 * gpu.destroy();
 * ```
 */
export function attention(q: Tensor, kv: KvPair, options: AttentionOptions): AttentionResult {
  const kernel = "attention";
  const window = checkCommon(kernel, options);
  for (const [name, t] of [["q", q], ["k", kv.k], ["v", kv.v]] as const) {
    expectDtype(kernel, name, t, ["f32"]);
    if (t.shape.length !== 3 && t.shape.length !== 4) {
      throw new ShapeError(kernel, `${name} must be [B, S, heads, D], got ${shapeString(t.shape)}`);
    }
  }
  const shape4 = (t: Tensor) => (t.shape.length === 3 ? [1, ...t.shape] : [...t.shape]);
  const [batch, seq, heads, headDim] = shape4(q);
  const kvHeads = shape4(kv.k)[2];
  checkHeads(kernel, heads, kvHeads);
  for (const [name, t] of [["k", kv.k], ["v", kv.v]] as const) {
    if (t.shape.length !== q.shape.length) {
      throw new ShapeError(kernel, `${name} must have q's rank, got ${shapeString(t.shape)}`);
    }
    const want = [batch, seq, kvHeads, headDim].slice(4 - t.shape.length);
    expectShape(kernel, name, t, want);
  }
  return launch(kernel, false, q, kv, { batch, seq, heads, kvHeads, headDim }, options, window);
}

/**
 * Decode attention: one new query per sequence against its KV cache. The new token's K/V must
 * already be in the cache ({@linkcode writeKvCache}); its index is `ranges[b][1] − 1` and it sees
 * indices `[max(start, i−W+1, i−C+1), i]` read from slots `index % C`.
 *
 * @param q f32 `[B, numHeads, D]`: the new token of each sequence.
 * @param cache f32 k and v caches `[B, C, numKvHeads, D]`.
 * @param options Scale, window, ranges `[B, 2]` (required), lse, output.
 * @returns Output `[B, numHeads, D]`, and lse `[B, numHeads]` when requested.
 * @throws {ShapeError} on wrong shapes, dtypes or options.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { attentionDecode, writeKvCache } from "./attention.ts";
 * const gpu = await Gpu.create();
 * const cache = { k: Tensor.zeros(gpu, [1, 8, 1, 4]), v: Tensor.zeros(gpu, [1, 8, 1, 4]) };
 * const kNew = Tensor.fromArray(gpu, new Float32Array([1, 0, 0, 0]), [1, 1, 1, 4]);
 * const vNew = Tensor.fromArray(gpu, new Float32Array([5, 6, 7, 8]), [1, 1, 1, 4]);
 * const offsets = Tensor.fromArray(gpu, new Int32Array([0]));
 * writeKvCache(cache, { k: kNew, v: vNew }, { offsets });
 * const ranges = Tensor.fromArray(gpu, new Int32Array([0, 1]), [1, 2]);
 * const q = Tensor.fromArray(gpu, new Float32Array(4).fill(1), [1, 1, 4]);
 * const { out } = attentionDecode(q, cache, { scale: 0.5, ranges });
 * console.log(await out.read()); // [5, 6, 7, 8]
 * gpu.destroy();
 * ```
 */
export function attentionDecode(
  q: Tensor,
  cache: KvPair,
  options: AttentionOptions,
): AttentionResult {
  const kernel = "attentionDecode";
  const window = checkCommon(kernel, options);
  expectDtype(kernel, "q", q, ["f32"]);
  expectShape(kernel, "q", q, [-1, -1, -1]);
  const [batch, heads, headDim] = q.shape;
  for (const [name, t] of [["k cache", cache.k], ["v cache", cache.v]] as const) {
    expectDtype(kernel, name, t, ["f32"]);
    expectShape(kernel, name, t, [batch, -1, -1, headDim]);
  }
  const [, cacheLen, kvHeads] = cache.k.shape;
  expectShape(kernel, "v cache", cache.v, cache.k.shape);
  checkHeads(kernel, heads, kvHeads);
  if (!options.ranges) throw new ShapeError(kernel, "options.ranges ([B, 2] i32) is required");
  if (cacheLen === 0) throw new ShapeError(kernel, "the cache must have at least one slot");
  const dims = { batch, seq: cacheLen, heads, kvHeads, headDim };
  return launch(kernel, true, q, cache, dims, options, window);
}

const cacheWriteSource = (c: { offsets: boolean; counts: boolean }) => /* wgsl */ `
struct Params { batch: u32, tokens: u32, cache_len: u32, row: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>; // [B, T, KvH, D]
${c.offsets ? "@group(0) @binding(2) var<storage, read> offsets: array<i32>; // [B]" : ""}
${
  c.counts
    ? `@group(0) @binding(${c.offsets ? 3 : 2}) var<storage, read> counts: array<i32>; // [B]`
    : ""
}
@group(0) @binding(${2 + Number(c.offsets) + Number(c.counts)})
var<storage, read_write> cache: array<f32>; // [B, C, KvH, D]
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

/** Options of {@linkcode writeKvCache}. */
export interface KvCacheWriteOptions {
  /** i32 `[B]`: index of each sequence's first new token (default 0 for all). */
  readonly offsets?: Tensor;
  /** i32 `[B]`: number of valid new tokens per sequence (default T; right padding is skipped). */
  readonly counts?: Tensor;
}

/**
 * Writes new keys and values into KV caches: token t < counts[b] of sequence b has index
 * `offsets[b] + t` and goes to slot `index % C` (a ring when C is smaller than the sequence).
 * When more than C tokens are valid only the last C are kept, as a ring would after writing them
 * one by one. Tokens at or after `counts[b]` (right padding) are not written, so they cannot push
 * valid tokens out of a ring.
 *
 * @param cache f32 k and v caches `[B, C, numKvHeads, D]`, updated in place.
 * @param values f32 new k and v `[B, T, numKvHeads, D]` (T = 1 when decoding).
 * @param options Per-sequence index of the first new token and count of valid new tokens.
 * @throws {ShapeError} on wrong shapes or dtypes.
 * @example
 * ```ts
 * // decode step: offsets[b] = index of the new token = ranges[b][1] − 1
 * // writeKvCache(cache, { k: kNew, v: vNew }, { offsets });
 * ```
 */
export function writeKvCache(
  cache: KvPair,
  values: KvPair,
  options: KvCacheWriteOptions = {},
): void {
  const kernel = "writeKvCache";
  for (const [name, t] of [["k", values.k], ["v", values.v]] as const) {
    expectDtype(kernel, `${name} values`, t, ["f32"]);
    expectDtype(kernel, `${name} cache`, name === "k" ? cache.k : cache.v, ["f32"]);
  }
  expectShape(kernel, "k cache", cache.k, [-1, -1, -1, -1]);
  const [batch, cacheLen, kvHeads, headDim] = cache.k.shape;
  expectShape(kernel, "v cache", cache.v, cache.k.shape);
  expectShape(kernel, "k values", values.k, [batch, -1, kvHeads, headDim]);
  expectShape(kernel, "v values", values.v, values.k.shape);
  if (options.offsets) {
    expectDtype(kernel, "offsets", options.offsets, ["i32"]);
    expectShape(kernel, "offsets", options.offsets, [batch]);
  }
  if (options.counts) {
    expectDtype(kernel, "counts", options.counts, ["i32"]);
    expectShape(kernel, "counts", options.counts, [batch]);
  }
  if (cacheLen === 0) throw new ShapeError(kernel, "the cache must have at least one slot");
  const gpu = cache.k.gpu;
  const tokens = values.k.shape[1];
  const row = kvHeads * headDim;
  const constants = { offsets: !!options.offsets, counts: !!options.counts };
  const pipeline = gpu.pipelines.get(kernel, constants, cacheWriteSource);
  for (const name of ["k", "v"] as const) {
    const buffers = [values[name].binding()];
    if (options.offsets) buffers.push(options.offsets.binding());
    if (options.counts) buffers.push(options.counts.binding());
    buffers.push(cache[name].binding());
    gpu.dispatch({
      pipeline,
      shapes: `${name}${shapeString(values[name].shape)} cache${shapeString(cache[name].shape)}`,
      uniforms: new Uniforms().u32(batch).u32(tokens).u32(cacheLen).u32(row).build(),
      buffers,
      workgroups: grid1d(batch * tokens * row, 64, gpu.limits.maxComputeWorkgroupsPerDimension),
    });
  }
}
