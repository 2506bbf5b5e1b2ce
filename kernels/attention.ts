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
 * Variants (`options.variant` forces one; otherwise `gpu.tuner` picks among
 * {@linkcode attentionCandidates} / {@linkcode attentionDecodeCandidates}, whose first entry is
 * the deterministic table's choice). All accumulate in f32.
 * - `reg` (prefill and decode; the table's choice on software adapters): one invocation per
 *   (token, KV head) handles the G = numHeads / numKvHeads query heads that share the KV head
 *   (each K/V load serves G heads); online (flash-style) softmax over blocks of 16 keys whose
 *   scores stay in registers, the output row as accumulator. No workgroup memory or barriers
 *   (slow on llvmpipe) and no large private arrays (llvmpipe compiles dynamically indexed private
 *   arrays into slow code that takes a minute to build). WGSL in `_attention_wgsl.ts`.
 * - `flash32`, `flash64` (prefill): flash attention. A workgroup owns 32 / 64 consecutive rows
 *   r = token·G + g of one (sequence, KV head), so each staged key serves all G heads; `lanes`
 *   invocations per row hold its q and output columns in registers. Tiles of keys are staged in
 *   workgroup memory (K, then V in the same buffer); the lanes' partial scores go through
 *   workgroup memory, where one lane per (row, key) sums them; online softmax in registers. Only the keys some row of the block sees (causal, window, ranges) are visited.
 *   Tiling (`flashTiling`): ≤ 32 columns per lane, 64–256 invocations, tiles of ≤ 8 keys in
 *   16 KiB. One pipeline per tiling: without ranges q's buffer stands in for them, and lse goes
 *   to scratch when not requested. WGSL in `_flash_attention_wgsl.ts`.
 * - `split64`, `split256` (decode, flash-decoding): the visible keys of each sequence are split
 *   into chunks of 64 / 256; a workgroup per (sequence, KV head, chunk) scores its keys for the
 *   G heads together (one key per lane, q in workgroup memory), then sums values with lanes over
 *   columns, writing (max, sum, unnormalised output) per head and chunk to scratch; a combine
 *   pass rescales and adds the chunks. Parallelism is B × KV heads × chunks. WGSL in
 *   `_flash_decode_wgsl.ts`.
 *
 * The backward pass is `attentionBackward` in `attention_backward.ts`.
 *
 * @module
 */

import { expectDtype, expectShape, grid1d, Uniforms } from "./_launch.ts";
import {
  attentionCandidates,
  attentionDecodeCandidates,
  type AttentionShape,
  checkHeads,
  checkRanges,
  checkScaleWindow,
  chooseVariant,
  flashTiling,
  shape4,
} from "./_attention_launch.ts";
import { pow2Bucket } from "./tuning.ts";
import {
  type AttentionConstants,
  attentionSource,
  type CacheWriteConstants,
  cacheWriteSource,
} from "./_attention_wgsl.ts";
import { type FlashAttentionConstants, flashAttentionSource } from "./_flash_attention_wgsl.ts";
import {
  type FlashDecodeCombineConstants,
  flashDecodeCombineSource,
  type FlashDecodeConstants,
  flashDecodeSource,
} from "./_flash_decode_wgsl.ts";
import { ShapeError } from "./errors.ts";
import type { BufferBinding } from "./gpu.ts";
import { shapeString, Tensor } from "./tensor.ts";
import type { TuningJob } from "./tuning.ts";

export {
  ATTENTION_DECODE_VARIANTS,
  ATTENTION_VARIANTS,
  attentionCandidates,
  attentionDecodeCandidates,
  type AttentionShape,
} from "./_attention_launch.ts";

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
  /**
   * Force a variant (an id of {@linkcode ATTENTION_VARIANTS} or
   * {@linkcode ATTENTION_DECODE_VARIANTS} valid for the shape); default: the tuner's choice.
   */
  readonly variant?: string;
}

/** Output of the attention launchers. */
export interface AttentionResult {
  /** Attention output, shaped like q. */
  readonly out: Tensor;
  /** Natural-log logsumexp per query row (`q.shape` without D), or null when not requested. */
  readonly lse: Tensor | null;
}

/** One checked attention call: which launcher, its dimensions, options and window. */
interface AttentionCall {
  readonly kernel: string;
  readonly decode: boolean;
  /** `seq` = S (prefill) or C, the cache slots (decode). */
  readonly dims: Required<AttentionShape>;
  readonly options: AttentionOptions;
}

/** A checked call with its outputs, ready to record. */
interface AttentionLaunch extends AttentionCall {
  readonly q: Tensor;
  readonly kv: KvPair;
  readonly out: Tensor;
  readonly lse: Tensor | null;
}

/** Checks the outputs, picks the variant and records the prefill or decode launch. */
function launch(q: Tensor, kv: KvPair, call: AttentionCall): AttentionResult {
  const { kernel, options } = call;
  const gpu = q.gpu;
  checkRanges(kernel, options.ranges, call.dims.batch);
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
  const variant = chooseVariant(gpu.tuner, {
    kernel,
    forced: options.variant,
    job: tuningJob(q, kv, call),
  });
  const lse = options.returnLse ? Tensor.empty(gpu, q.shape.slice(0, -1), "f32") : null;
  const l: AttentionLaunch = { ...call, q, kv, out, lse };
  if (variant === "reg") recordReg(l);
  else if (call.decode) recordSplit(l, Number(variant.slice("split".length)));
  else recordFlash(l, variant);
  return { out, lse };
}

/** The tuning question of a call: its candidates and scratch inputs of its shape. */
function tuningJob(q: Tensor, kv: KvPair, call: AttentionCall): TuningJob {
  const { batch, seq, heads, kvHeads, headDim, window } = call.dims;
  const gpu = q.gpu;
  const candidates = call.decode
    ? attentionDecodeCandidates(gpu, call.dims)
    : attentionCandidates(gpu, call.dims);
  const shapeClass = `d${headDim}:g${heads / kvHeads}:kvh${kvHeads}:b${pow2Bucket(batch)}:` +
    `${call.decode ? "c" : "s"}${pow2Bucket(seq)}:w${window}`;
  const prepare = () => {
    const [tq, tk, tv] = [q.shape, kv.k.shape, kv.v.shape].map((s) => Tensor.zeros(gpu, s));
    const full = Int32Array.from({ length: 2 * batch }, (_, i) => (i % 2 ? seq : 0));
    // decode: the new token is the last of a full cache; prefill: ranges only when the call had
    const ranges = call.decode || call.options.ranges
      ? Tensor.fromArray(gpu, full, [batch, 2])
      : undefined;
    const { scale, returnLse } = call.options;
    return {
      launch(id: string) {
        const options = { scale, window, ranges, returnLse, variant: id };
        const r = launch(tq, { k: tk, v: tv }, { ...call, options });
        r.out.dispose();
        r.lse?.dispose();
      },
      dispose() {
        for (const t of [tq, tk, tv, ranges]) t?.dispose();
      },
    };
  };
  return {
    family: call.decode ? "attention_decode" : "attention",
    shapeClass,
    candidates,
    prepare,
  };
}

/** The storage bindings of the reg pipelines: q, k, v, [ranges], out, [lse]. */
function bindings(l: AttentionLaunch): BufferBinding[] {
  const buffers = [l.q.binding(), l.kv.k.binding(), l.kv.v.binding()];
  if (l.options.ranges) buffers.push(l.options.ranges.binding());
  buffers.push(l.out.binding());
  if (l.lse) buffers.push(l.lse.binding());
  return buffers;
}

/** The launch's shapes, for error messages. */
const shapesOf = (l: AttentionLaunch) =>
  `q${shapeString(l.q.shape)} k${shapeString(l.kv.k.shape)} window=${l.dims.window}`;

/** Records variant "reg": one invocation per (token, KV head). */
function recordReg(l: AttentionLaunch): void {
  const { decode, options } = l;
  const gpu = l.q.gpu;
  const { batch, seq, heads, kvHeads, headDim, window } = l.dims;
  const rows = l.q.numel / headDim / (heads / kvHeads);
  // small workgroups: causal rows differ in length, and llvmpipe runs one workgroup per core
  const wg = decode ? 4 : 16;
  const constants: AttentionConstants = {
    d: headDim,
    w: headDim % 4 === 0 ? 4 : 1,
    decode,
    ranges: options.ranges !== undefined,
    lse: l.lse !== null,
    wg,
    g: heads / kvHeads,
  };
  gpu.dispatch({
    pipeline: gpu.pipelines.get(l.kernel, constants, attentionSource),
    shapes: shapesOf(l),
    uniforms: new Uniforms().u32(batch).u32(seq).u32(kvHeads).u32(window)
      .f32(options.scale).f32(-Infinity).build(),
    buffers: bindings(l),
    workgroups: grid1d(rows, wg, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
}

/**
 * Records a flash prefill variant: a workgroup per (sequence, KV head, block of query rows).
 * One pipeline serves every call: without ranges q's buffer stands in for them (`has_ranges`
 * = 0), and lse goes to scratch when not requested.
 */
function recordFlash(l: AttentionLaunch, variant: string): void {
  const gpu = l.q.gpu;
  const { batch, seq, heads, kvHeads, headDim, window } = l.dims;
  const t = flashTiling(variant, headDim, "forward");
  const g = heads / kvHeads;
  const blocks = Math.ceil((seq * g) / t.rows);
  const constants: FlashAttentionConstants = {
    d: headDim,
    w: headDim % 4 === 0 ? 4 : 1,
    rows: t.rows,
    lanes: t.lanes,
    tile: t.tile,
  };
  const lse = l.lse ?? Tensor.empty(gpu, l.q.shape.slice(0, -1), "f32");
  const ranges = l.options.ranges ?? l.q;
  gpu.dispatch({
    pipeline: gpu.pipelines.get("attentionFlash", constants, flashAttentionSource),
    shapes: shapesOf(l),
    uniforms: new Uniforms().u32(batch).u32(seq).u32(kvHeads).u32(window)
      .f32(l.options.scale).f32(-Infinity).u32(g).u32(blocks)
      .u32(l.options.ranges ? 1 : 0).u32(t.tile).build(),
    buffers: [
      l.q.binding(),
      l.kv.k.binding(),
      l.kv.v.binding(),
      ranges.binding(),
      l.out.binding(),
      lse.binding(),
    ],
    workgroups: grid1d(batch * kvHeads * blocks, 1, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  if (!l.lse) lse.dispose(); // stream-ordered, like every scratch tensor
}

/** Records a split decode variant: partials per (sequence, KV head, chunk), then the combine. */
function recordSplit(l: AttentionLaunch, chunk: number): void {
  const gpu = l.q.gpu;
  const { batch, seq, heads, kvHeads, headDim, window } = l.dims;
  const w = headDim % 4 === 0 ? 4 : 1;
  const chunks = Math.ceil((window > 0 ? Math.min(seq, window) : seq) / chunk);
  const partOut = Tensor.empty(gpu, [batch, heads, chunks, headDim], "f32");
  const partMl = Tensor.empty(gpu, [batch, heads, chunks, 2], "f32");
  const maxGrid = gpu.limits.maxComputeWorkgroupsPerDimension;
  const constants: FlashDecodeConstants = { d: headDim, w, g: heads / kvHeads, chunk };
  gpu.dispatch({
    pipeline: gpu.pipelines.get("attentionDecodeSplit", constants, flashDecodeSource),
    shapes: shapesOf(l),
    uniforms: new Uniforms().u32(batch).u32(seq).u32(kvHeads).u32(window)
      .f32(l.options.scale).u32(chunks).build(),
    buffers: [
      l.q.binding(),
      l.kv.k.binding(),
      l.kv.v.binding(),
      l.options.ranges!.binding(),
      partOut.binding(),
      partMl.binding(),
    ],
    workgroups: grid1d(batch * kvHeads * chunks, 1, maxGrid),
  });
  const combine: FlashDecodeCombineConstants = { d: headDim, w, lse: l.lse !== null };
  const buffers = [partOut.binding(), partMl.binding(), l.out.binding()];
  if (l.lse) buffers.push(l.lse.binding());
  gpu.dispatch({
    pipeline: gpu.pipelines.get("attentionDecodeCombine", combine, flashDecodeCombineSource),
    shapes: shapesOf(l),
    uniforms: new Uniforms().u32(batch * heads).u32(chunks).f32(-Infinity).build(),
    buffers,
    workgroups: grid1d((batch * heads * headDim) / w, 64, maxGrid),
  });
  partOut.dispose(); // stream-ordered: a later user of the pooled buffers runs after these reads
  partMl.dispose();
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
  const window = checkScaleWindow(kernel, options);
  for (const [name, t] of [["q", q], ["k", kv.k], ["v", kv.v]] as const) {
    expectDtype(kernel, name, t, ["f32"]);
    if (t.shape.length !== 3 && t.shape.length !== 4) {
      throw new ShapeError(kernel, `${name} must be [B, S, heads, D], got ${shapeString(t.shape)}`);
    }
  }
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
  const dims = { batch, seq, heads, kvHeads, headDim, window };
  return launch(q, kv, { kernel, decode: false, dims, options });
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
  const window = checkScaleWindow(kernel, options);
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
  const dims = { batch, seq: cacheLen, heads, kvHeads, headDim, window };
  return launch(q, cache, { kernel, decode: true, dims, options });
}

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
  const constants: CacheWriteConstants = { offsets: !!options.offsets, counts: !!options.counts };
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
