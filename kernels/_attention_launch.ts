/**
 * Checks shared by the attention launchers (prefill, decode, backward): the scale and window
 * options, the head grouping, the ranges tensor, and the rank-4 view of `[B, S, heads, D]`
 * tensors given as `[S, heads, D]`; and their variants: the id lists and candidate tables
 * (re-exported by `attention.ts` and `attention_backward.ts`), the flash tilings, the
 * split-decode memory, and the choice between a forced id and the tuner's.
 *
 * @module
 */

import { expectDtype, expectShape } from "./_launch.ts";
import { ShapeError } from "./errors.ts";
import type { Gpu, GpuLimits } from "./gpu.ts";
import type { Tensor } from "./tensor.ts";
import type { Tuner, TuningJob } from "./tuning.ts";

/**
 * @param t A `[B, S, heads, D]` or `[S, heads, D]` tensor.
 * @returns Its dimensions as `[B, S, heads, D]` (B = 1 for rank 3).
 */
export function shape4(t: Tensor): number[] {
  return t.shape.length === 3 ? [1, ...t.shape] : [...t.shape];
}

/**
 * Checks the score scale and the sliding window of an attention call.
 *
 * @param kernel Kernel name for the message.
 * @param options The call's `scale` and `window`.
 * @returns The window (0 = global).
 * @throws {ShapeError} on a non-finite scale or a window that is not an integer ≥ 0.
 */
export function checkScaleWindow(
  kernel: string,
  options: { readonly scale: number; readonly window?: number },
): number {
  if (!Number.isFinite(options.scale)) {
    throw new ShapeError(kernel, `options.scale must be a finite number, got ${options.scale}`);
  }
  const window = options.window ?? 0;
  if (!(Number.isInteger(window) && window >= 0)) {
    throw new ShapeError(kernel, `options.window must be an integer ≥ 0, got ${window}`);
  }
  return window;
}

/**
 * Checks that the query heads split evenly over the KV heads.
 *
 * @param kernel Kernel name for the message.
 * @param heads Query heads H.
 * @param kvHeads KV heads.
 * @throws {ShapeError} unless H is a positive multiple of kvHeads.
 */
export function checkHeads(kernel: string, heads: number, kvHeads: number): void {
  if (kvHeads === 0 || heads % kvHeads !== 0) {
    throw new ShapeError(
      kernel,
      `numHeads (${heads}) must be a positive multiple of numKvHeads (${kvHeads})`,
    );
  }
}

/**
 * Checks an optional ranges tensor: i32 `[B, 2]`.
 *
 * @param kernel Kernel name for the message.
 * @param ranges The tensor, if any.
 * @param batch B.
 * @throws {ShapeError} on another dtype or shape.
 */
export function checkRanges(kernel: string, ranges: Tensor | undefined, batch: number): void {
  if (!ranges) return;
  expectDtype(kernel, "ranges", ranges, ["i32"]);
  expectShape(kernel, "ranges", ranges, [batch, 2]);
}

/**
 * Workgroup memory of every flash/split tiling: 16 KiB, WebGPU's guaranteed minimum. (Deno's GL
 * backend zero-initialises workgroup memory with one constructor that llvmpipe builds in time
 * quadratic in its size — seconds to minutes at the first dispatch of a big tile — which is why
 * tiles stop at 8 keys and the tests run these tilings at small head widths on GL.)
 */
const WORKGROUP_BYTES = 16384;
/** Invocations per workgroup every flash tiling stays within: WebGPU's guaranteed 256. */
const WORKGROUP_INVOCATIONS = 256;

/** The limits a variant must fit. */
export type VariantLimits = Pick<
  GpuLimits,
  | "maxComputeWorkgroupStorageSize"
  | "maxComputeInvocationsPerWorkgroup"
  | "maxStorageBuffersPerShaderStage"
>;

/** The flash kernels: prefill forward, backward dq (and D), backward dk/dv. */
export type FlashKernel = "forward" | "dq" | "dkdv";

/** Tiling of a flash kernel. */
export interface FlashTiling {
  /** The kernel it tiles. */
  readonly kernel: FlashKernel;
  /** Rows per workgroup: query rows (token, head), or keys in the dk/dv kernel. */
  readonly rows: number;
  /** Invocations per row. */
  readonly lanes: number;
  /** Keys (dk/dv: query rows) per tile staged in workgroup memory; 0 when none fits. */
  readonly tile: number;
  /** Invocations per workgroup (rows · lanes). */
  readonly workgroupSize: number;
  /** Workgroup memory in bytes. */
  readonly workgroupBytes: number;
}

/** f32 values of a workgroup array of n values (packed four to a vec4 element). */
const packed = (n: number) => 4 * Math.ceil(n / 4);

/**
 * The tiling of a flash variant id (`flash<rows>`) for a head width: `lanes` = the power of two
 * that leaves ≤ 32 columns per invocation, within [64 / rows, 256 / rows] (64–256 invocations);
 * `tile` = the most keys (≤ 8) whose workgroup arrays fit 16 KiB: forward K/V tile + partial
 * scores; dq: K/V tile + partials + dS; dk/dv: q and dOut tiles + lse/D + partials + P and dS.
 *
 * @param id A flash variant id, e.g. `flash32`.
 * @param headDim D.
 * @param kernel Which flash kernel.
 * @returns The tiling (tile 0 when no tile fits).
 */
export function flashTiling(id: string, headDim: number, kernel: FlashKernel): FlashTiling {
  const rows = Number(id.slice("flash".length));
  let lanes = 1;
  while (lanes * 32 < headDim) lanes *= 2;
  lanes = Math.min(Math.max(lanes, Math.ceil(64 / rows)), Math.floor(WORKGROUP_INVOCATIONS / rows));
  const wg = rows * lanes;
  const tileRows = (n: number) => (headDim % 4 === 0 ? n * headDim : packed(n * headDim));
  const floats = (t: number) =>
    kernel === "forward"
      ? tileRows(t) + packed(t * wg)
      : kernel === "dq"
      ? tileRows(t) + packed(t * wg) + packed(rows * t)
      : 2 * tileRows(t) + packed(2 * t) + packed(t * wg) + packed(2 * rows * t);
  let tile = 8;
  while (tile > 0 && 4 * floats(tile) > WORKGROUP_BYTES) tile--;
  return Object.freeze({
    kernel,
    rows,
    lanes,
    tile,
    workgroupSize: wg,
    workgroupBytes: 4 * floats(tile),
  });
}

/**
 * Whether a flash tiling runs on a device: it fits the limits (the backward kernels bind 9
 * storage buffers, the forward 6), holds ≥ 1 key per tile and ≤ 32 vectors per invocation
 * (registers).
 *
 * @param t The tiling.
 * @param headDim D.
 * @param limits The device's limits.
 * @returns True when valid.
 */
export function flashFits(t: FlashTiling, headDim: number, limits: VariantLimits): boolean {
  const vectors = Math.ceil(headDim / (headDim % 4 === 0 ? 4 : 1) / t.lanes);
  const buffers = t.kernel === "forward" ? 6 : 9;
  return t.tile > 0 && vectors <= 32 && buffers <= limits.maxStorageBuffersPerShaderStage &&
    t.workgroupSize <= limits.maxComputeInvocationsPerWorkgroup &&
    t.workgroupBytes <= limits.maxComputeWorkgroupStorageSize;
}

/**
 * Whether a split-decode variant fits: the group's queries and its scores of a chunk in 16 KiB
 * of workgroup memory (and the device's limit).
 *
 * @param chunk Keys per chunk.
 * @param groups Query heads per KV head.
 * @param headDim D.
 * @param limits The device's limits.
 * @returns True when valid.
 */
export function splitFits(
  chunk: number,
  groups: number,
  headDim: number,
  limits: VariantLimits,
): boolean {
  const q = headDim % 4 === 0 ? groups * headDim : packed(groups * headDim);
  const bytes = 4 * (q + packed(groups * chunk));
  return bytes <= Math.min(WORKGROUP_BYTES, limits.maxComputeWorkgroupStorageSize);
}

/**
 * Orders candidates for the tuner: valid ids, the table's choice first.
 *
 * @param valid The ids valid for the shape on this adapter, in catalogue order.
 * @param first The table's choice (used when valid).
 * @returns The candidates.
 */
export function withFirst(valid: readonly string[], first: string): readonly string[] {
  const head = valid.includes(first) ? first : valid[0];
  return Object.freeze([head, ...valid.filter((id) => id !== head)]);
}

/** How a launcher picks its variant: forced by the caller, or the tuner's choice. */
export interface VariantChoice {
  /** Kernel name (messages). */
  readonly kernel: string;
  /** The caller's `variant` option, if any. */
  readonly forced: string | undefined;
  /** The tuning job (its candidates: valid ids, the table's choice first). */
  readonly job: TuningJob;
}

/**
 * The variant a launch runs: the forced id when it is a candidate, else the tuner's choice.
 *
 * @param tuner The device's tuner.
 * @param choice Kernel, forced id and tuning job.
 * @returns A candidate id.
 * @throws {ShapeError} when the forced id is unknown or not valid here, naming the valid ids.
 */
export function chooseVariant(tuner: Tuner, choice: VariantChoice): string {
  const { kernel, forced, job } = choice;
  if (forced === undefined) return tuner.choose(job);
  if (!job.candidates.includes(forced)) {
    throw new ShapeError(
      kernel,
      `options.variant "${forced}" is not valid for this shape on this adapter; ` +
        `valid: ${job.candidates.join(", ")}`,
    );
  }
  return forced;
}

/** Every variant id of `attention` (prefill), in catalogue order. */
export const ATTENTION_VARIANTS: readonly string[] = Object.freeze(["reg", "flash32", "flash64"]);

/** Every variant id of `attentionDecode`, in catalogue order. */
export const ATTENTION_DECODE_VARIANTS: readonly string[] = Object.freeze([
  "reg",
  "split64",
  "split256",
]);

/** Dimensions of an attention launch (variant candidates and tuning classes). */
export interface AttentionShape {
  /** Sequences B. */
  readonly batch: number;
  /** Prefill: tokens per sequence S. Decode: cache slots C. */
  readonly seq: number;
  /** Query heads H. */
  readonly heads: number;
  /** KV heads (divides H). */
  readonly kvHeads: number;
  /** Head dimension D. */
  readonly headDim: number;
  /** Sliding window (0 or absent = global). */
  readonly window?: number;
}

/**
 * The prefill variants valid for a shape on this adapter, the deterministic table's choice
 * first: `reg` on software adapters; elsewhere `flash32` for D > 128 (256 invocations of ≤ 32
 * columns each), else `flash64`.
 *
 * @param gpu The device (adapter kind and limits).
 * @param shape The launch's dimensions.
 * @returns Variant ids of {@linkcode ATTENTION_VARIANTS}.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { attentionCandidates } from "./attention.ts";
 * const gpu = await Gpu.create();
 * const shape = { batch: 1, seq: 128, heads: 4, kvHeads: 1, headDim: 256, window: 512 };
 * console.log(attentionCandidates(gpu, shape)); // [ "reg", "flash32", "flash64" ] on llvmpipe
 * gpu.destroy();
 * ```
 */
export function attentionCandidates(
  gpu: Pick<Gpu, "adapter" | "limits">,
  shape: AttentionShape,
): readonly string[] {
  const d = shape.headDim;
  const valid = ATTENTION_VARIANTS.filter((id) =>
    id === "reg" || flashFits(flashTiling(id, d, "forward"), d, gpu.limits)
  );
  const table = gpu.adapter.isFallbackAdapter ? "reg" : d > 128 ? "flash32" : "flash64";
  return withFirst(valid, table);
}

/**
 * The decode variants valid for a shape on this adapter, the deterministic table's choice
 * first: `reg` on software adapters and for short caches; `split64` where a sequence sees ≥ 256
 * keys (min(C, window)).
 *
 * @param gpu The device (adapter kind and limits).
 * @param shape The launch's dimensions (`seq` = C, the cache slots).
 * @returns Variant ids of {@linkcode ATTENTION_DECODE_VARIANTS}.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { attentionDecodeCandidates } from "./attention.ts";
 * const gpu = await Gpu.create();
 * const shape = { batch: 4, seq: 1024, heads: 4, kvHeads: 1, headDim: 256 };
 * console.log(attentionDecodeCandidates(gpu, shape)); // [ "reg", "split64", "split256" ] on llvmpipe
 * gpu.destroy();
 * ```
 */
export function attentionDecodeCandidates(
  gpu: Pick<Gpu, "adapter" | "limits">,
  shape: AttentionShape,
): readonly string[] {
  const groups = shape.heads / shape.kvHeads;
  const valid = ATTENTION_DECODE_VARIANTS.filter((id) =>
    id === "reg" ||
    splitFits(Number(id.slice("split".length)), groups, shape.headDim, gpu.limits)
  );
  const window = shape.window ?? 0;
  const keys = window > 0 ? Math.min(shape.seq, window) : shape.seq;
  return withFirst(valid, !gpu.adapter.isFallbackAdapter && keys >= 256 ? "split64" : "reg");
}

/** Every variant id of `attentionBackward`, in catalogue order. */
export const ATTENTION_BACKWARD_VARIANTS: readonly string[] = Object.freeze([
  "reg",
  "flash16",
  "flash32",
]);

/**
 * The backward variants valid for a shape on this adapter, the deterministic table's choice
 * first: `reg` on software adapters, else `flash32` (`flash16` where it does not fit).
 *
 * @param gpu The device (adapter kind and limits).
 * @param shape The forward's dimensions.
 * @returns Variant ids of {@linkcode ATTENTION_BACKWARD_VARIANTS}.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { attentionBackwardCandidates } from "./attention_backward.ts";
 * const gpu = await Gpu.create();
 * const shape = { batch: 1, seq: 256, heads: 4, kvHeads: 1, headDim: 256 };
 * console.log(attentionBackwardCandidates(gpu, shape)); // [ "reg", "flash16", "flash32" ] on llvmpipe
 * gpu.destroy();
 * ```
 */
export function attentionBackwardCandidates(
  gpu: Pick<Gpu, "adapter" | "limits">,
  shape: AttentionShape,
): readonly string[] {
  const d = shape.headDim;
  const valid = ATTENTION_BACKWARD_VARIANTS.filter((id) =>
    id === "reg" ||
    (["dq", "dkdv"] as const).every((k) => flashFits(flashTiling(id, d, k), d, gpu.limits))
  );
  return withFirst(valid, gpu.adapter.isFallbackAdapter ? "reg" : "flash32");
}
