/**
 * Token log-probabilities over a huge (tied) vocabulary without ever forming `[T, V]` logits,
 * and the full-vocabulary projection for a few rows (the last position of each sequence when
 * generating).
 *
 * `tokenLogprobs` runs two kernels:
 * 1. `logprobs_partial`: each workgroup takes `TT` tokens × one vocabulary chunk (4096 rows)
 *    of E, computes the dot products `x = (h·Eᵀ) / temperature` in f32 with register
 *    blocking (`TT` tokens × `TV` rows per invocation), keeps an online `(max, Σ exp(x − max))`
 *    per token and writes one pair per (token, chunk); the one invocation that meets a token's
 *    target row writes its logit.
 * 2. `logprobs_combine`: per token, merges the chunk pairs into `lse = logsumexp(x)` and writes
 *    `logp = x[target] − lse`.
 *
 * Memory: `[T, chunks]` pairs (chunks = V / 4096), never `[T, V]`. E may be split into parts along
 * V (a 262144×1152 bf16 embedding is 604 MB, above one storage binding): one partial launch per
 * part. The per-token `lse` is returned so the backward pass can rebuild `softmax − onehot`
 * chunk by chunk: `tokenLogprobsBackward` (kernels/logprobs_backward.ts, re-exported here).
 * The WGSL templates live in kernels/_logprobs_wgsl.ts.
 *
 * @module
 */

import { expectDtype, grid1d, Uniforms } from "./_launch.ts";
import {
  COMBINE_WG,
  combineSource,
  dotConstants,
  hBinding,
  logitsSource,
  LOOP_BUDGET,
  partBinding,
  partialSource,
  tokenGrid,
} from "./_logprobs_wgsl.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

export { tokenLogprobsBackward, type TokenLogprobsBackwardOptions } from "./logprobs_backward.ts";

/** Steps of `WG·TV` rows per chunk (fewer for very wide D, see `LOOP_BUDGET`). */
const MAX_STEPS = 16;

/** Options of {@linkcode tokenLogprobs}. */
export interface TokenLogprobsOptions {
  /** Logits are divided by this before the softmax (default 1). Must be > 0. */
  readonly temperature?: number;
}

/** Outputs of {@linkcode tokenLogprobs}; the caller disposes both. */
export interface TokenLogprobs {
  /** `log softmax(h·Eᵀ / temperature)[target]` per token, f32 `[T]`. */
  readonly logprobs: Tensor;
  /** `logsumexp(h·Eᵀ / temperature)` per token, f32 `[T]` (for the backward pass). */
  readonly lse: Tensor;
}

/**
 * Log-probability of each target token under the tied-embedding head,
 * `log softmax(h·Eᵀ / temperature)[target]`, computed chunk by chunk over the vocabulary
 * (memory O(T · V/4096), never `[T, V]`). A target outside `[0, V)` yields NaN.
 *
 * @param h Hidden states `[T, D]` f32 (after the final norm).
 * @param embedding Tied embedding `[V, D]`, bf16 or f32; may be split into parts along V.
 * @param targets Target ids `[T]`, u32 or i32.
 * @param options Temperature.
 * @returns Per-token log-probs and logsumexp, f32 `[T]` each.
 * @throws {ShapeError} on mismatched shapes or dtypes.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { tokenLogprobs } from "./logprobs.ts";
 * const gpu = await Gpu.create();
 * const h = Tensor.fromArray(gpu, new Float32Array([1, 0]), [1, 2]);
 * const e = Tensor.fromArray(gpu, new Float32Array([1, 0, 0, 1, 0, 0]), [3, 2], "bf16");
 * const ids = Tensor.fromArray(gpu, new Uint32Array([0]));
 * const { logprobs, lse } = tokenLogprobs(h, e, ids);
 * console.log(await logprobs.read()); // log(e / (e + 2)) ≈ -0.551
 * for (const t of [h, e, ids, logprobs, lse]) t.dispose();
 * gpu.destroy();
 * ```
 */
export function tokenLogprobs(
  h: Tensor,
  embedding: Tensor,
  targets: Tensor,
  options: TokenLogprobsOptions = {},
): TokenLogprobs {
  const kernel = "tokenLogprobs";
  const base = dotConstants(kernel, h, embedding);
  expectDtype(kernel, "targets", targets, ["u32", "i32"]);
  const tokens = h.shape[0];
  const vocab = embedding.shape[0];
  if (targets.numel !== tokens || targets.shape.length !== 1) {
    throw new ShapeError(
      kernel,
      `targets must have shape [${tokens}], got ${shapeString(targets.shape)}`,
    );
  }
  const temperature = options.temperature ?? 1;
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new ShapeError(kernel, `temperature must be a finite number > 0, got ${temperature}`);
  }
  const gpu = h.gpu;
  const logprobs = Tensor.empty(gpu, [tokens], "f32");
  const lse = Tensor.empty(gpu, [tokens], "f32");
  if (tokens === 0) return { logprobs, lse };
  const c = base;
  const dp = h.shape[1] / c.pack;
  const steps = Math.max(1, Math.min(MAX_STEPS, Math.floor(LOOP_BUDGET / (dp + c.tt + 2))));
  const chunkRows = steps * c.wg * c.tv;
  const partChunks = embedding.parts.map((p) => Math.ceil(p.rows / chunkRows));
  const chunks = partChunks.reduce((a, b) => a + b, 0);
  const partial = Tensor.empty(gpu, [tokens, chunks, 2], "f32");
  const tlogit = Tensor.empty(gpu, [tokens], "f32");
  const pipeline = gpu.pipelines.get("logprobs_partial", c, partialSource);
  const shapes = `h${shapeString(h.shape)} E${shapeString(embedding.shape)} ${embedding.dtype}`;
  const blocks = tokenGrid(kernel, gpu, tokens, c.tt);
  let chunkOffset = 0;
  embedding.parts.forEach((part, i) => {
    gpu.dispatch({
      pipeline,
      shapes,
      uniforms: new Uniforms().u32(tokens).u32(part.rows).u32(part.rowStart).u32(chunkOffset)
        .u32(chunks).f32(1 / temperature).u32(dp).u32(steps).build(),
      buffers: [
        hBinding(h, c.pack),
        partBinding(part, c.pack, c.bf16),
        targets.binding(),
        partial.binding(),
        tlogit.binding(),
      ],
      workgroups: [partChunks[i], blocks],
    });
    chunkOffset += partChunks[i];
  });
  gpu.dispatch({
    pipeline: gpu.pipelines.get("logprobs_combine", {}, combineSource),
    shapes,
    uniforms: new Uniforms().u32(tokens).u32(chunks).u32(vocab).build(),
    buffers: [
      partial.binding(),
      tlogit.binding(),
      targets.binding(),
      logprobs.binding(),
      lse.binding(),
    ],
    workgroups: grid1d(tokens, COMBINE_WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  partial.dispose();
  tlogit.dispose();
  return { logprobs, lse };
}

/** Options of {@linkcode vocabLogits}. */
export interface VocabLogitsOptions {
  /** Write into this f32 tensor of `T·V` elements (one binding) instead of a new one. */
  readonly out?: Tensor;
}

/**
 * Full-vocabulary logits `h·Eᵀ` for a few rows (e.g. the last position of each sequence when
 * sampling). Output `[T, V]` f32 must fit one storage binding.
 *
 * @param h Hidden states `[T, D]` f32.
 * @param embedding Tied embedding `[V, D]`, bf16 or f32; may be split into parts along V.
 * @param options Optional output tensor.
 * @returns Logits `[T, V]` f32.
 * @throws {ShapeError} on mismatched shapes or dtypes.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { vocabLogits } from "./logprobs.ts";
 * const gpu = await Gpu.create();
 * const h = Tensor.fromArray(gpu, new Float32Array([1, 2]), [1, 2]);
 * const e = Tensor.fromArray(gpu, new Float32Array([1, 0, 0, 1, 1, 1]), [3, 2]);
 * const logits = vocabLogits(h, e);
 * console.log(await logits.read()); // [1, 2, 3]
 * for (const t of [h, e, logits]) t.dispose();
 * gpu.destroy();
 * ```
 */
export function vocabLogits(
  h: Tensor,
  embedding: Tensor,
  options: VocabLogitsOptions = {},
): Tensor {
  const kernel = "vocabLogits";
  const base = dotConstants(kernel, h, embedding);
  const tokens = h.shape[0];
  const vocab = embedding.shape[0];
  const gpu = h.gpu;
  const out = options.out ?? Tensor.empty(gpu, [tokens, vocab], "f32");
  if (out.dtype !== "f32" || out.numel !== tokens * vocab || out.parts.length !== 1) {
    throw new ShapeError(
      kernel,
      `out must be f32 with ${tokens}×${vocab} elements in one binding, got ${out.dtype} ` +
        shapeString(out.shape),
    );
  }
  if (tokens === 0) return out;
  const c = base;
  const dp = h.shape[1] / c.pack;
  const pipeline = gpu.pipelines.get("vocab_logits", c, logitsSource);
  const blocks = tokenGrid(kernel, gpu, tokens, c.tt);
  for (const part of embedding.parts) {
    gpu.dispatch({
      pipeline,
      shapes: `h${shapeString(h.shape)} E${shapeString(embedding.shape)} ${embedding.dtype}`,
      uniforms: new Uniforms().u32(tokens).u32(part.rows).u32(part.rowStart).u32(vocab).u32(dp)
        .build(),
      buffers: [hBinding(h, c.pack), partBinding(part, c.pack, c.bf16), out.binding()],
      workgroups: [Math.ceil(part.rows / (c.wg * c.tv)), blocks],
    });
  }
  return out;
}
