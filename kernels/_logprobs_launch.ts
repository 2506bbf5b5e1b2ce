/**
 * Launch helpers shared by the log-prob launchers (`logprobs.ts`, `logprobs_backward.ts`): the
 * loop budget, the tile, the checks of h, E, the per-token tensors and the temperature, and the
 * padded bindings the vector loaders need.
 *
 * @module
 */

import { expectDtype } from "./_launch.ts";
import { pickVariant, withSubgroupVariant } from "./_reduce_variant.ts";
import { pow2Bucket } from "./tuning.ts";
import type { DotConstants } from "./_logprobs_wgsl.ts";
import { ShapeError } from "./errors.ts";
import type { BufferBinding, Gpu } from "./gpu.ts";
import type { TuningBench } from "./tuning.ts";
import { shapeString, type Tensor, type TensorPart } from "./tensor.ts";

/**
 * Loop iterations one invocation may spend: llvmpipe silently ends an invocation's loops after
 * 65535 iterations in total, so a workgroup walks at most this many (D/pack)-long dot loops.
 */
export const LOOP_BUDGET = 60000;

/**
 * Register blocking: `tt` tokens × `tv` vocabulary rows per invocation, `wg` invocations. The
 * tokens of a workgroup are shared, so h loads are uniform (one scalar load on SIMD-across-lanes
 * adapters). On llvmpipe (measured at T=256, D=1152, bf16) 16×16 tiles in 16-wide workgroups
 * ran ~36 GFLOP/s against ~9 for 4×4×64; they take seconds longer to compile, so few-token
 * calls get a 4-token tile.
 *
 * @param gpu The runtime (its adapter selects the tile).
 * @param tokens T.
 * @returns The tile.
 */
export function tileFor(gpu: Gpu, tokens: number): { tt: number; tv: number; wg: number } {
  if (!gpu.adapter.isFallbackAdapter) return { tt: 4, tv: 4, wg: 64 };
  return tokens >= 16 ? { tt: 16, tv: 16, wg: 16 } : { tt: 4, tv: 16, wg: 16 };
}

/**
 * Checks h `[T, D]` f32 and E `[V, D]` f32|bf16 and picks the dot-product constants.
 *
 * @param kernel Kernel name for errors.
 * @param h Hidden states.
 * @param embedding Embedding.
 * @returns The constants.
 * @throws {ShapeError} on mismatched shapes or dtypes.
 */
export function dotConstants(kernel: string, h: Tensor, embedding: Tensor): DotConstants {
  expectDtype(kernel, "h", h, ["f32"]);
  expectDtype(kernel, "embedding", embedding, ["f32", "bf16"]);
  if (h.shape.length !== 2 || embedding.shape.length !== 2 || h.shape[1] !== embedding.shape[1]) {
    throw new ShapeError(
      kernel,
      `expected h [T, D] and embedding [V, D], got h ${shapeString(h.shape)} and embedding ` +
        shapeString(embedding.shape),
    );
  }
  if (h.parts.length !== 1) throw new ShapeError(kernel, "h must fit in one storage binding");
  const d = h.shape[1];
  if (d === 0 || embedding.shape[0] === 0) {
    throw new ShapeError(
      kernel,
      `D and V must be positive, got embedding ${shapeString(embedding.shape)}`,
    );
  }
  // subtle: no 2-wide variant, to keep the number of (slow to compile) pipelines down.
  const pack = d % 4 === 0 ? 4 : 1;
  if (d / pack + 32 > LOOP_BUDGET) {
    throw new ShapeError(kernel, `D must be ≤ ${(LOOP_BUDGET - 32) * pack}, got ${d}`);
  }
  return { pack, bf16: embedding.dtype === "bf16", ...tileFor(h.gpu, h.shape[0]) };
}

/**
 * @param part One part of E.
 * @param c Elements per load and E's dtype.
 * @returns The binding of the part, padded to the element stride of the loader.
 */
export function paddedPartBinding(
  part: TensorPart,
  c: Pick<DotConstants, "pack" | "bf16">,
): BufferBinding {
  const { pack, bf16 } = c;
  const stride = bf16 ? Math.max(4, pack * 2) : pack * 4;
  const size = Math.ceil(Math.max(part.bytes, 4) / stride) * stride;
  return { buffer: part.buffer, offset: 0, size: Math.min(size, part.buffer.size) };
}

/**
 * @param h Hidden states `[T, D]` f32 (one part).
 * @param pack Elements per load.
 * @returns The binding of h, padded to the element stride of the loader.
 */
export function hBinding(h: Tensor, pack: number): BufferBinding {
  const stride = pack * 4;
  return {
    buffer: h.buffer,
    offset: 0,
    size: Math.ceil(Math.max(h.parts[0].bytes, 4) / stride) * stride,
  };
}

/**
 * @param kernel Kernel name for errors.
 * @param gpu The runtime.
 * @param tokens T.
 * @param tt Tokens per workgroup.
 * @returns Workgroups along the tokens.
 * @throws {ShapeError} when they exceed one grid dimension.
 */
export function tokenGrid(kernel: string, gpu: Gpu, tokens: number, tt: number): number {
  const blocks = Math.ceil(tokens / tt);
  if (blocks > gpu.limits.maxComputeWorkgroupsPerDimension) {
    throw new ShapeError(kernel, `too many tokens (${tokens}) for one launch`);
  }
  return blocks;
}

/**
 * Checks that a per-token tensor is 1-D with T elements.
 *
 * @param kernel Kernel name for the message.
 * @param name Argument name.
 * @param t The tensor.
 * @param tokens T.
 * @throws {ShapeError} on another shape.
 */
export function expectTokens(kernel: string, name: string, t: Tensor, tokens: number): void {
  if (t.shape.length !== 1 || t.numel !== tokens) {
    throw new ShapeError(
      kernel,
      `${name} must have shape [${tokens}], got ${shapeString(t.shape)}`,
    );
  }
}

/**
 * @param kernel Kernel name for the message.
 * @param options The call's temperature (default 1).
 * @returns The temperature.
 * @throws {ShapeError} unless it is a finite number > 0.
 */
export function checkTemperature(
  kernel: string,
  options: { readonly temperature?: number },
): number {
  const temperature = options.temperature ?? 1;
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new ShapeError(kernel, `temperature must be a finite number > 0, got ${temperature}`);
  }
  return temperature;
}

/** The checked head problem of a log-prob launch (see {@linkcode checkHead}). */
export interface CheckedHead {
  /** Dot-product constants for h and E. */
  readonly c: DotConstants;
  /** T. */
  readonly tokens: number;
  /** D. */
  readonly dim: number;
  /** V. */
  readonly vocab: number;
  /** The logit divisor. */
  readonly temperature: number;
}

/**
 * Checks what every log-prob launch scores — h `[T, D]` f32, E `[V, D]` f32|bf16, targets `[T]`
 * u32|i32 — and the temperature.
 *
 * @param kernel Kernel name for the messages.
 * @param head h, the embedding and the targets.
 * @param options The call's temperature (default 1).
 * @returns The dot-product constants, the sizes and the temperature.
 * @throws {ShapeError} on mismatched shapes or dtypes or a temperature that is not > 0.
 */
export function checkHead(
  kernel: string,
  head: { readonly h: Tensor; readonly embedding: Tensor; readonly targets: Tensor },
  options: { readonly temperature?: number },
): CheckedHead {
  const { h, embedding, targets } = head;
  const c = dotConstants(kernel, h, embedding);
  const [tokens, dim] = h.shape;
  expectDtype(kernel, "targets", targets, ["u32", "i32"]);
  expectTokens(kernel, "targets", targets, tokens);
  return {
    c,
    tokens,
    dim,
    vocab: embedding.shape[0],
    temperature: checkTemperature(kernel, options),
  };
}

/**
 * Every variant of the log-prob forward and backward: `reg` = the register-blocked kernels
 * with workgroup-memory trees; `sg` = the forward's chunk merge of (max, Σ exp, Σ exp·x) and the
 * backward's `dh` reduction over the vocabulary on subgroup operations (adapters with
 * `subgroups`).
 */
export const LOGPROBS_VARIANTS: readonly ["reg", "sg"] = Object.freeze(["reg", "sg"] as const);

/** A log-prob variant id (see {@linkcode LOGPROBS_VARIANTS}). */
export type LogprobsVariant = typeof LOGPROBS_VARIANTS[number];

/** The sizes of a log-prob launch. */
export interface LogprobsShape {
  /** T. */
  readonly tokens: number;
  /** D. */
  readonly dim: number;
  /** V. */
  readonly vocab: number;
}

/**
 * The log-prob variants (forward and backward) valid on this adapter, the deterministic
 * table's choice first: `reg` on fallback (software) adapters and where subgroups are missing,
 * else `sg`.
 *
 * @param gpu The runtime (adapter kind and features).
 * @param _shape The sizes (every variant takes every shape).
 * @returns Variant ids.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { tokenLogprobsCandidates } from "./logprobs.ts";
 * const gpu = await Gpu.create();
 * console.log(tokenLogprobsCandidates(gpu, { tokens: 3, dim: 64, vocab: 1000 })); // ["reg"] on llvmpipe
 * gpu.destroy();
 * ```
 */
export function tokenLogprobsCandidates(
  gpu: Gpu,
  _shape: LogprobsShape,
): readonly LogprobsVariant[] {
  return withSubgroupVariant(gpu, ["reg"]) as readonly LogprobsVariant[];
}

/** Vocabulary rows of the tuner's scratch embedding at most (timing per row is what counts). */
export const SCRATCH_VOCAB = 16384;

/**
 * Checks a forced variant or asks the tuner for one.
 *
 * @param gpu The runtime.
 * @param request Kernel (family), forced variant, sizes, what else splits the shape class and
 *   the tuner's bench.
 * @returns The variant.
 * @throws {ShapeError} on a variant that is unknown or not valid on this adapter.
 */
export function logprobsVariant(
  gpu: Gpu,
  request: {
    readonly kernel: string;
    readonly variant?: string;
    readonly shape: LogprobsShape;
    readonly shapeClass: string;
    readonly prepare: () => TuningBench;
  },
): LogprobsVariant {
  const { tokens, dim, vocab } = request.shape;
  return pickVariant(gpu, request.kernel, request.variant, {
    family: request.kernel,
    shapeClass: `t${pow2Bucket(tokens)}:d${dim}:v${pow2Bucket(vocab)}:${request.shapeClass}`,
    candidates: tokenLogprobsCandidates(gpu, request.shape),
    prepare: request.prepare,
  }) as LogprobsVariant;
}
