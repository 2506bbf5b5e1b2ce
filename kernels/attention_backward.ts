/**
 * Backward of prefill attention ({@linkcode attention}), flash-attention style: the softmax
 * probabilities are recomputed from the forward's logsumexp, never stored.
 *
 * For query row i (head h, KV head g = h / (H / KvH)) and key j it sees:
 * `P = exp(scale·q_i·k_j − lse_i)`, `D_i = dOut_i·out_i`, `dS = P·(dOut_i·v_j − D_i)`,
 * `dq_i = scale·Σ_j dS·k_j`, `dk_j = scale·Σ_{i,h} dS·q_i`, `dv_j = Σ_{i,h} P·dOut_i`.
 *
 * WGSL has no float atomics, so every output element is owned by one invocation (deterministic,
 * bit-reproducible) and every variant runs two launches: one writes D (saved for the second)
 * and dq, the other dk and dv. Variants (`options.variant` forces one; otherwise `gpu.tuner`
 * picks among {@linkcode attentionBackwardCandidates}, the table's choice first):
 * - `reg` (the table's choice on software adapters):
 *   1. per (query token, KV head): D for its G query heads and dq, looping over the visible
 *      keys `[max(start, i − W + 1), i]`;
 *   2. per (4 consecutive key tokens, KV head): dk and dv, looping over the rows (query i, head
 *      of the group) that see key j — queries `[j, min(end, j + W))` — recomputing P and dS;
 *      each q/dOut load serves the 4 keys.
 *   Both work on blocks of keys (rows) whose dot products stay in small private arrays; the
 *   output rows double as accumulators (llvmpipe compiles big private arrays into slow code,
 *   slowly); no workgroup memory or barriers. WGSL in `_attention_backward_wgsl.ts`.
 * - `flash16`, `flash32` (flash-attention 2 style, `flashTiling` as in the forward):
 *   1. dq kernel, a workgroup per (sequence, KV head, 16 / 32 query rows r = token·G + g) with
 *      the rows' q, dOut and dq columns in registers: D from a lane reduction, then per tile of
 *      keys staged in workgroup memory: V (dP = dOut·v), then K (P from the scores and lse,
 *      dS = P·(dP − D)), dq += scale·dS·k;
 *   2. dk/dv kernel, a workgroup per (sequence, KV head, 16 / 32 keys) with the keys' k, v, dk
 *      and dv columns in registers, over tiles of the query rows that see them (q, dOut, lse and
 *      D staged): dv += P·dOut, dk += scale·dS·q.
 *   Fully masked tiles are skipped; without ranges q's buffer stands in for them. WGSL in
 *   `_flash_attention_backward_wgsl.ts`.
 *
 * @module
 */

import { expectDtype, expectShape, grid1d, Uniforms } from "./_launch.ts";
import {
  attentionBackwardCandidates,
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
  type AttentionBackwardConstants,
  attentionBackwardSource,
} from "./_attention_backward_wgsl.ts";
import {
  type FlashAttentionBackwardConstants,
  flashAttentionBackwardSource,
} from "./_flash_attention_backward_wgsl.ts";
import { ShapeError } from "./errors.ts";
import type { BufferBinding } from "./gpu.ts";
import { shapeString, Tensor } from "./tensor.ts";
import type { TuningJob } from "./tuning.ts";

// Block sizes: bigger blocks reuse more loads but llvmpipe's compile time grows fast with them
// (64-entry score arrays took 13 s to build); these keep every pipeline under ~1 s to build.
const KEY_BLOCK = 16; // launch 1: keys per block is KEY_BLOCK / G (at least 4)
const KEYS_PER_INVOCATION = 4; // launch 2
const ROWS_PER_BLOCK = 8; // launch 2: (query, head) rows per block

export { ATTENTION_BACKWARD_VARIANTS, attentionBackwardCandidates } from "./_attention_launch.ts";

/** Options of {@linkcode attentionBackward} (those the forward ran with). */
export interface AttentionBackwardOptions {
  /** Score scale. */
  readonly scale: number;
  /** Sliding window W (query i sees keys with i − j < W); 0 or absent = global. */
  readonly window?: number;
  /** i32 `[B, 2]`: valid token indices `[start, end)` per sequence (default `[0, S)`). */
  readonly ranges?: Tensor;
  /**
   * Force a variant (an id of {@linkcode ATTENTION_BACKWARD_VARIANTS} valid for the shape);
   * default: the tuner's choice.
   */
  readonly variant?: string;
}

/** What the forward ran on and returned (`attention(q, { k, v }, { returnLse: true })`). */
export interface AttentionBackwardInputs {
  /** f32 `[B, S, numHeads, D]` (or `[S, numHeads, D]`), as given to the forward. */
  readonly q: Tensor;
  /** f32 keys `[B, S, numKvHeads, D]` (or `[S, numKvHeads, D]`). */
  readonly k: Tensor;
  /** f32 values, shaped like k. */
  readonly v: Tensor;
  /** f32 forward output, shaped like q. */
  readonly out: Tensor;
  /** f32 forward logsumexp `[B, S, numHeads]` (q's shape without D). */
  readonly lse: Tensor;
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

/**
 * Attention backward: gradients of q, k and v from the forward's output and logsumexp
 * (`attention(q, kv, { returnLse: true })`) and the output gradient. Two launches, no readback;
 * deterministic (no atomics, fixed summation order).
 *
 * @param dOut f32 gradient of the loss with respect to out, shaped like q.
 * @param inputs The forward's q, k, v, its output and its logsumexp.
 * @param options The forward's scale, window and ranges.
 * @returns dq shaped like q, dk and dv shaped like k (new tensors; rows outside the ranges are 0).
 * @throws {ShapeError} on wrong shapes, dtypes or options.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { attention } from "./attention.ts";
 * import { attentionBackward } from "./attention_backward.ts";
 * const gpu = await Gpu.create();
 * const q = Tensor.fromArray(gpu, new Float32Array(3 * 2 * 4).fill(0.1), [3, 2, 4]);
 * const k = Tensor.fromArray(gpu, new Float32Array(3 * 1 * 4).fill(0.2), [3, 1, 4]);
 * const v = Tensor.fromArray(gpu, new Float32Array(3 * 1 * 4).fill(0.3), [3, 1, 4]);
 * const { out, lse } = attention(q, { k, v }, { scale: 0.5, returnLse: true });
 * const dOut = Tensor.fromArray(gpu, new Float32Array(3 * 2 * 4).fill(1), [3, 2, 4]);
 * const { dq, dk, dv } = attentionBackward(dOut, { q, k, v, out, lse: lse! }, { scale: 0.5 });
 * console.log((await dv.read())[0]); // ≈ 3.667 = 2 heads · (1 + 1/2 + 1/3): key 0's share
 * for (const t of [q, k, v, out, lse!, dOut, dq, dk, dv]) t.dispose();
 * gpu.destroy();
 * ```
 */
export function attentionBackward(
  dOut: Tensor,
  inputs: AttentionBackwardInputs,
  options: AttentionBackwardOptions,
): AttentionBackwardResult {
  const kernel = "attentionBackward";
  const { q, k, v, out, lse } = inputs;
  const window = checkScaleWindow(kernel, options);
  const named = [["q", q], ["k", k], ["v", v], ["out", out], ["dOut", dOut]] as const;
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
  const kvHeads = shape4(k)[2];
  checkHeads(kernel, heads, kvHeads);
  const rank = q.shape.length;
  for (const [name, t] of [["k", k], ["v", v]] as const) {
    expectShape(kernel, name, t, [batch, seq, kvHeads, headDim].slice(4 - rank));
  }
  expectShape(kernel, "out", out, q.shape);
  expectShape(kernel, "dOut", dOut, q.shape);
  expectDtype(kernel, "lse", lse, ["f32"]);
  expectShape(kernel, "lse", lse, q.shape.slice(0, -1));
  checkRanges(kernel, options.ranges, batch);

  const gpu = q.gpu;
  const dims = { batch, seq, heads, kvHeads, headDim, window };
  const variant = chooseVariant(gpu.tuner, {
    kernel,
    forced: options.variant,
    job: tuningJob(dOut, inputs, options, dims),
  });
  const dq = Tensor.empty(gpu, q.shape, "f32");
  const dk = Tensor.empty(gpu, k.shape, "f32");
  const dv = Tensor.empty(gpu, v.shape, "f32");
  const dsum = Tensor.empty(gpu, lse.shape, "f32"); // D = dOut·out per row
  const l: BackwardLaunch = { dOut, inputs, options, dims, dq, dk, dv, dsum };
  if (variant === "reg") recordReg(l);
  else recordFlash(l, variant);
  dsum.dispose(); // stream-ordered: a later user of the pooled buffer runs after these reads
  return { dq, dk, dv };
}

/** One checked backward call with its outputs, ready to record. */
interface BackwardLaunch {
  readonly dOut: Tensor;
  readonly inputs: AttentionBackwardInputs;
  readonly options: AttentionBackwardOptions;
  readonly dims: Required<AttentionShape>;
  readonly dq: Tensor;
  readonly dk: Tensor;
  readonly dv: Tensor;
  /** D = dOut·out per row, written by the first launch for the second. */
  readonly dsum: Tensor;
}

/** Storage bindings of a launch (the same for reg and flash): see `_attention_backward_wgsl.ts`. */
function bindings(l: BackwardLaunch, keys: boolean): BufferBinding[] {
  const { q, k, v, out, lse } = l.inputs;
  const buffers = [q.binding(), k.binding(), v.binding()];
  if (!keys) buffers.push(out.binding());
  buffers.push(lse.binding(), l.dOut.binding());
  if (l.options.ranges) buffers.push(l.options.ranges.binding());
  buffers.push(l.dsum.binding());
  buffers.push(...(keys ? [l.dk.binding(), l.dv.binding()] : [l.dq.binding()]));
  return buffers;
}

/** The launch's shapes, for error messages. */
const shapesOf = (l: BackwardLaunch, keys: boolean) =>
  `${keys ? "dk/dv" : "dq"} q${shapeString(l.inputs.q.shape)} ` +
  `k${shapeString(l.inputs.k.shape)} window=${l.dims.window}`;

/** Records variant "reg": launch 1 per (query token, KV head), launch 2 per 4 keys. */
function recordReg(l: BackwardLaunch): void {
  const gpu = l.dOut.gpu;
  const { batch, seq, heads, kvHeads, headDim, window } = l.dims;
  const g = heads / kvHeads;
  const keyGroups = Math.ceil(seq / KEYS_PER_INVOCATION);
  const wg = 16; // small workgroups: causal rows differ in length; llvmpipe runs one per core
  const uniforms = new Uniforms().u32(batch).u32(seq).u32(kvHeads).u32(window)
    .f32(l.options.scale).u32(keyGroups).build();
  for (const keys of [false, true]) {
    const constants: AttentionBackwardConstants = {
      d: headDim,
      w: headDim % 4 === 0 ? 4 : 1,
      g,
      ranges: l.options.ranges !== undefined,
      keys,
      blk: keys ? ROWS_PER_BLOCK : Math.max(4, Math.floor(KEY_BLOCK / g)),
      kb: KEYS_PER_INVOCATION,
      wg,
    };
    const rows = batch * (keys ? keyGroups : seq) * kvHeads;
    gpu.dispatch({
      pipeline: gpu.pipelines.get("attentionBackward", constants, attentionBackwardSource),
      shapes: shapesOf(l, keys),
      uniforms,
      buffers: bindings(l, keys),
      workgroups: grid1d(rows, wg, gpu.limits.maxComputeWorkgroupsPerDimension),
    });
  }
}

/**
 * Records a flash variant: the dq kernel per (sequence, KV head, block of query rows), then the
 * dk/dv kernel per (sequence, KV head, block of keys). Without ranges q's buffer stands in for
 * them (`has_ranges` = 0), so one pipeline per kernel serves every call.
 */
function recordFlash(l: BackwardLaunch, variant: string): void {
  const gpu = l.dOut.gpu;
  const { batch, seq, heads, kvHeads, headDim, window } = l.dims;
  const g = heads / kvHeads;
  const options = { ...l.options, ranges: l.options.ranges ?? l.inputs.q };
  for (const keys of [false, true]) {
    const t = flashTiling(variant, headDim, keys ? "dkdv" : "dq");
    const blocks = Math.ceil((keys ? seq : seq * g) / t.rows);
    const constants: FlashAttentionBackwardConstants = {
      d: headDim,
      w: headDim % 4 === 0 ? 4 : 1,
      rows: t.rows,
      lanes: t.lanes,
      tile: t.tile,
      keys,
    };
    gpu.dispatch({
      pipeline: gpu.pipelines.get(
        "attentionBackwardFlash",
        constants,
        flashAttentionBackwardSource,
      ),
      shapes: shapesOf(l, keys),
      uniforms: new Uniforms().u32(batch).u32(seq).u32(kvHeads).u32(window)
        .f32(l.options.scale).u32(g).u32(blocks).u32(l.options.ranges ? 1 : 0).u32(t.tile)
        .build(),
      buffers: bindings({ ...l, options }, keys),
      workgroups: grid1d(batch * kvHeads * blocks, 1, gpu.limits.maxComputeWorkgroupsPerDimension),
    });
  }
}

/** The tuning question of a call: its candidates and scratch inputs of its shape. */
function tuningJob(
  dOut: Tensor,
  inputs: AttentionBackwardInputs,
  options: AttentionBackwardOptions,
  dims: Required<AttentionShape>,
): TuningJob {
  const gpu = dOut.gpu;
  const { batch, seq, heads, kvHeads, headDim, window } = dims;
  const shapeClass = `d${headDim}:g${heads / kvHeads}:kvh${kvHeads}:b${pow2Bucket(batch)}:` +
    `s${pow2Bucket(seq)}:w${window}`;
  const prepare = () => {
    const z = (t: Tensor) => Tensor.zeros(gpu, t.shape);
    const { q, k, v, out, lse } = inputs;
    const scratch = { q: z(q), k: z(k), v: z(v), out: z(out), lse: z(lse) };
    const dy = z(dOut);
    const full = Int32Array.from({ length: 2 * batch }, (_, i) => (i % 2 ? seq : 0));
    const ranges = options.ranges ? Tensor.fromArray(gpu, full, [batch, 2]) : undefined;
    return {
      launch(id: string) {
        const o = { scale: options.scale, window, ranges, variant: id };
        const r = attentionBackward(dy, scratch, o);
        for (const t of [r.dq, r.dk, r.dv]) t.dispose();
      },
      dispose() {
        for (const t of [...Object.values(scratch), dy, ranges]) t?.dispose();
      },
    };
  };
  return {
    family: "attention_backward",
    shapeClass,
    candidates: attentionBackwardCandidates(gpu, dims),
    prepare,
  };
}
