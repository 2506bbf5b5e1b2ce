/**
 * Token log-probabilities over a huge (tied) vocabulary without ever forming `[T, V]` logits.
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
 * With `entropy: true` both kernels also carry `w = Σ exp(x − max)·(x − max)` through the same
 * online pass (rescaled with the running max like the sum) and the combine writes the entropy
 * `H = lse − Σ p·x = log S − W/S` of the same distribution (one more `[T, chunks]` f32 scratch).
 *
 * Variants ({@linkcode LOGPROBS_VARIANTS}, the `variant` option, else the tuner's choice among
 * {@linkcode tokenLogprobsCandidates}): `reg` merges the workgroup's pairs (triples) by a
 * pairwise tree in workgroup memory — the table's choice on fallback adapters and without
 * subgroups; `sg` merges them with `subgroupMax` / `subgroupAdd` (rescaled to the subgroup's
 * max), elected per-subgroup results in workgroup memory and one more subgroup merge (one
 * barrier instead of log2(WG) + 1; no subgroup size assumed) — the table's choice on other
 * adapters with `subgroups`. Both use the same tile and the same f32 online updates.
 *
 * Memory: `[T, chunks]` pairs (chunks = V / 4096), never `[T, V]`. E may be split into parts along
 * V (a 262144×1152 bf16 embedding is 604 MB, above one storage binding): one partial launch per
 * part. The per-token `lse` is returned so the backward pass can rebuild `softmax − onehot`
 * chunk by chunk: `tokenLogprobsBackward` in `logprobs_backward.ts`. The WGSL templates live in
 * `_logprobs_wgsl.ts`.
 *
 * @module
 */

import { grid1d, Uniforms } from "./_launch.ts";
import {
  checkHead,
  hBinding,
  logprobsVariant,
  LOOP_BUDGET,
  paddedPartBinding,
  SCRATCH_VOCAB,
  tokenGrid,
} from "./_logprobs_launch.ts";
import { COMBINE_WG, combineSource, partialSource } from "./_logprobs_wgsl.ts";
import { shapeString, Tensor } from "./tensor.ts";

export {
  LOGPROBS_VARIANTS,
  type LogprobsShape,
  type LogprobsVariant,
  tokenLogprobsCandidates,
} from "./_logprobs_launch.ts";

/** Steps of `WG·TV` rows per chunk (fewer for very wide D, see `LOOP_BUDGET`). */
const MAX_STEPS = 16;

/** What {@linkcode tokenLogprobs} scores: hidden states against the tied head, per target. */
export interface TokenLogprobsInputs {
  /** Hidden states `[T, D]` f32 (after the final norm). */
  readonly h: Tensor;
  /** Tied embedding `[V, D]`, bf16 or f32; may be split into parts along V. */
  readonly embedding: Tensor;
  /** Target ids `[T]`, u32 or i32. */
  readonly targets: Tensor;
}

/** Options of {@linkcode tokenLogprobs}. */
export interface TokenLogprobsOptions {
  /** Logits are divided by this before the softmax (default 1). Must be > 0. */
  readonly temperature?: number;
  /**
   * Also return the entropy of each row's distribution, `−Σ_v p_v log p_v` with
   * `p = softmax(h·Eᵀ / temperature)` (default false: the kernels and results of the plain call).
   */
  readonly entropy?: boolean;
  /**
   * Forces a variant (`LOGPROBS_VARIANTS`; one of `tokenLogprobsCandidates` for this adapter);
   * default: the tuner's choice.
   */
  readonly variant?: string;
}

/** Outputs of {@linkcode tokenLogprobs}; the caller disposes both. */
export interface TokenLogprobs {
  /** `log softmax(h·Eᵀ / temperature)[target]` per token, f32 `[T]`. */
  readonly logprobs: Tensor;
  /** `logsumexp(h·Eᵀ / temperature)` per token, f32 `[T]` (for the backward pass). */
  readonly lse: Tensor;
  /** Entropy per token, f32 `[T]`; only with `options.entropy` (then also for the backward). */
  readonly entropy?: Tensor;
}

/**
 * Log-probability of each target token under the tied-embedding head,
 * `log softmax(h·Eᵀ / temperature)[target]`, computed chunk by chunk over the vocabulary
 * (memory O(T · V/4096), never `[T, V]`). A target outside `[0, V)` yields NaN.
 *
 * @param inputs Hidden states h `[T, D]`, the tied embedding `[V, D]` and the targets `[T]`.
 * @param options Temperature; `entropy` to also return each row's entropy.
 * @returns Per-token log-probs and logsumexp (and entropy), f32 `[T]` each.
 * @throws {ShapeError} on mismatched shapes or dtypes, or a variant not valid here.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { tokenLogprobs } from "./logprobs.ts";
 * const gpu = await Gpu.create();
 * const h = Tensor.fromArray(gpu, new Float32Array([1, 0]), [1, 2]);
 * const e = Tensor.fromArray(gpu, new Float32Array([1, 0, 0, 1, 0, 0]), [3, 2], "bf16");
 * const ids = Tensor.fromArray(gpu, new Uint32Array([0]));
 * const { logprobs, lse } = tokenLogprobs({ h, embedding: e, targets: ids });
 * console.log(await logprobs.read()); // log(e / (e + 2)) ≈ -0.551
 * const withH = tokenLogprobs({ h, embedding: e, targets: ids }, { entropy: true });
 * console.log(await withH.entropy!.read()); // ≈ 0.975 (p = [0.576, 0.212, 0.212])
 * for (const t of [h, e, ids, logprobs, lse, withH.logprobs, withH.lse, withH.entropy!]) {
 *   t.dispose();
 * }
 * gpu.destroy();
 * ```
 */
export function tokenLogprobs(
  inputs: TokenLogprobsInputs,
  options: TokenLogprobsOptions = {},
): TokenLogprobs {
  const kernel = "tokenLogprobs";
  const { h, embedding, targets } = inputs;
  const { c, tokens, vocab, temperature } = checkHead(kernel, inputs, options);
  const gpu = h.gpu;
  const withEntropy = options.entropy === true;
  const variant = logprobsVariant(gpu, {
    kernel,
    variant: options.variant,
    shape: { tokens, dim: h.shape[1], vocab },
    shapeClass: `${embedding.dtype}:${withEntropy ? "entropy" : "plain"}`,
    prepare: () => {
      const rows = Math.min(vocab, SCRATCH_VOCAB);
      const sh = Tensor.zeros(gpu, h.shape),
        se = Tensor.zeros(gpu, [rows, h.shape[1]], embedding.dtype);
      const st = Tensor.zeros(gpu, [tokens], "u32");
      return {
        launch: (id) => {
          const r = tokenLogprobs({ h: sh, embedding: se, targets: st }, {
            ...options,
            variant: id,
          });
          for (const t of [r.logprobs, r.lse, r.entropy]) t?.dispose();
        },
        dispose: () => [sh, se, st].forEach((t) => t.dispose()),
      };
    },
  });
  const logprobs = Tensor.empty(gpu, [tokens], "f32");
  const lse = Tensor.empty(gpu, [tokens], "f32");
  const entropy = withEntropy ? Tensor.empty(gpu, [tokens], "f32") : undefined;
  const result = entropy ? { logprobs, lse, entropy } : { logprobs, lse };
  if (tokens === 0) return result;
  const dp = h.shape[1] / c.pack;
  const steps = Math.max(1, Math.min(MAX_STEPS, Math.floor(LOOP_BUDGET / (dp + c.tt + 2))));
  const chunkRows = steps * c.wg * c.tv;
  const partChunks = embedding.parts.map((p) => Math.ceil(p.rows / chunkRows));
  const chunks = partChunks.reduce((a, b) => a + b, 0);
  const partial = Tensor.empty(gpu, [tokens, chunks, 2], "f32");
  const tlogit = Tensor.empty(gpu, [tokens], "f32");
  // [T, chunks] Σ exp(x − max)·(x − max), only for the entropy.
  const partialW = entropy ? Tensor.empty(gpu, [tokens, chunks], "f32") : null;
  // subtle: `reg` without entropy keeps the key (and source) of the plain kernel.
  const pipeline = gpu.pipelines.get(
    "logprobs_partial",
    { ...c, ...(partialW ? { entropy: true } : {}), ...(variant === "sg" ? { sg: true } : {}) },
    partialSource,
  );
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
        paddedPartBinding(part, c),
        targets.binding(),
        partial.binding(),
        tlogit.binding(),
        ...(partialW ? [partialW.binding()] : []),
      ],
      workgroups: [partChunks[i], blocks],
    });
    chunkOffset += partChunks[i];
  });
  gpu.dispatch({
    pipeline: gpu.pipelines.get(
      "logprobs_combine",
      partialW ? { entropy: true } : {},
      combineSource,
    ),
    shapes,
    uniforms: new Uniforms().u32(tokens).u32(chunks).u32(vocab).build(),
    buffers: [
      partial.binding(),
      tlogit.binding(),
      targets.binding(),
      logprobs.binding(),
      lse.binding(),
      ...(partialW && entropy ? [partialW.binding(), entropy.binding()] : []),
    ],
    workgroups: grid1d(tokens, COMBINE_WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  partial.dispose();
  tlogit.dispose();
  partialW?.dispose();
  return result;
}
