/**
 * Backward of `tokenLogprobs` (kernels/logprobs.ts): gradients of `loss = Σ_t grad_t · logp_t`
 * with `logp_t = z_t[target_t] − lse_t` and `z = h·Eᵀ / τ`:
 *
 *   dz_tv = grad_t · (1[v = target_t] − exp(z_tv − lse_t)) / τ
 *   dh_t  = Σ_v dz_tv · E_v        dE_v = Σ_t dz_tv · h_t
 *
 * never forming `[T, V]`. The vocabulary is walked in chunks of up to `ldz` rows (a `[T, ldz]`
 * f32 scratch of ≤ 64 MiB, chunks never straddle a part of E or of dE); per chunk three kernels
 * run in stream order:
 * 1. `logprobs_dz`: recompute the chunk's logits (the forward's dot-product block) and write
 *    `dz` into the scratch;
 * 2. `logprobs_dh`: `dh += dz·E_chunk`;
 * 3. `logprobs_de` (only with `dEmbedding`): `dE_chunk += dzᵀ·h`.
 * With `gradEntropy` (`d loss / d H_t` for the forward's entropies `H_t`) the same pass also adds
 * the entropy term `dz_tv −= gradEntropy_t · p_tv · (log p_tv + H_t) / τ` (p recomputed from the
 * saved lse, H the forward's), and a tiny `logprobs_live` kernel marks the tokens with any
 * gradient for the skips below.
 * Variants (the `variant` option, else the tuner's choice among `tokenLogprobsCandidates`):
 * `reg` runs the register-blocked products above — the table's choice on fallback adapters and
 * without subgroups; `sg` runs `logprobs_dh` split-K: a workgroup per 4 × 4 tile of dh whose 64
 * lanes split the chunk's rows and sum with subgroup reductions (dh has only T·D outputs, too
 * few to fill a GPU for short batches, while each sums a whole chunk) — the table's choice on
 * other adapters with `subgroups`. `logprobs_dz` and `logprobs_de` (V·D outputs) are the same.
 * Every sum has a fixed order (no atomics), so results are bit-reproducible. Work is
 * `6·T·V·D` flops with dE, `4·T·V·D` without. Tokens with a zero grad cost (almost) nothing:
 * their dz are written as zeros without dot products, `logprobs_dh` skips tiles of such tokens
 * and `logprobs_de` skips them in its token loop.
 *
 * @module
 */

import { expectDtype, grid1d, partBinding, Uniforms } from "./_launch.ts";
import {
  checkHead,
  expectTokens,
  hBinding,
  logprobsVariant,
  LOOP_BUDGET,
  paddedPartBinding,
  SCRATCH_VOCAB,
  tokenGrid,
} from "./_logprobs_launch.ts";
import {
  type AccConstants,
  accSource,
  dzSource,
  LIVE_WG,
  liveSource,
  SG_ACC_TILE,
} from "./_logprobs_backward_wgsl.ts";
import { ShapeError } from "./errors.ts";
import type { Gpu } from "./gpu.ts";
import type { TuningBench } from "./tuning.ts";
import { shapeString, Tensor, type TensorPart } from "./tensor.ts";

/** Upper bound of the `[T, chunk]` dz scratch. */
const SCRATCH_BYTES = 64 << 20;

/**
 * Rows per chunk at most: `logprobs_dh` walks a chunk in steps of 4 rows (plus one step per
 * 128), well under llvmpipe's 65535 loop iterations per invocation.
 */
const MAX_CHUNK = 65536;

/** Tokens at most: `logprobs_de` walks the tokens in steps of 4 (same loop cap). */
const MAX_TOKENS = 4 * (LOOP_BUDGET - 2000);

/** What the forward ran on and returned: its inputs and `tokenLogprobs(...).lse`. */
export interface TokenLogprobsBackwardInputs {
  /** Hidden states `[T, D]` f32 (the forward's input). */
  readonly h: Tensor;
  /** Tied embedding `[V, D]`, bf16 or f32; may be split into parts along V. */
  readonly embedding: Tensor;
  /** Target ids `[T]`, u32 or i32. */
  readonly targets: Tensor;
  /** The forward's logsumexp `[T]` f32. */
  readonly lse: Tensor;
  /**
   * The forward's entropies `[T]` f32 (`tokenLogprobs(..., { entropy: true }).entropy`);
   * needed with `options.gradEntropy`.
   */
  readonly entropy?: Tensor;
}

/** Options of {@linkcode tokenLogprobsBackward}. */
export interface TokenLogprobsBackwardOptions {
  /**
   * Gradient of the embedding, f32 `[V, D]` (may be split into parts): `dEmbedding += dE`.
   * Left out (e.g. LoRA training), no dE work is done at all.
   */
  readonly dEmbedding?: Tensor;
  /** The forward's temperature (default 1). Must be > 0. */
  readonly temperature?: number;
  /**
   * `d loss / d H_t`, f32 `[T]`, for a loss that also depends on the forward's entropies
   * (`inputs.entropy` must be given). Left out: the plain kernels, bit for bit.
   */
  readonly gradEntropy?: Tensor;
  /**
   * Forces a variant (`LOGPROBS_VARIANTS`; one of `tokenLogprobsCandidates` for this adapter);
   * default: the tuner's choice.
   */
  readonly variant?: string;
}

/**
 * Tiling of `logprobs_dh` / `logprobs_de`. On llvmpipe (a workgroup is a loop over 8-lane SIMD
 * chunks) tall row tiles in 8-lane workgroups with up to 32 columns per lane, the column tile
 * shrunk to D; elsewhere a conventional 4-row, 64-lane tile.
 */
function accTiling(gpu: Gpu, rows: number, dim: number): Pick<AccConstants, "tm" | "tn4" | "wg"> {
  if (!gpu.adapter.isFallbackAdapter) return { tm: 4, tn4: 1, wg: 64 };
  const wg = 8;
  let tn4 = 1;
  while (tn4 < 8 && tn4 * 4 * wg < dim) tn4 *= 2;
  return { tm: rows >= 16 ? 16 : 4, tn4, wg };
}

/** A vocabulary chunk `[lo, hi)` inside one part of E (and of dE). */
interface Chunk {
  lo: number;
  hi: number;
  e: TensorPart;
  d?: TensorPart;
}

/** Splits `[0, V)` into chunks of ≤ `size` rows that never straddle a part of E or dE. */
function chunks(vocab: number, size: number, e: Tensor, d?: Tensor): Chunk[] {
  const out: Chunk[] = [];
  let ei = 0, di = 0;
  for (let lo = 0; lo < vocab;) {
    while (e.parts[ei].rowStart + e.parts[ei].rows <= lo) ei++;
    let hi = Math.min(vocab, lo + size, e.parts[ei].rowStart + e.parts[ei].rows);
    if (d) {
      while (d.parts[di].rowStart + d.parts[di].rows <= lo) di++;
      hi = Math.min(hi, d.parts[di].rowStart + d.parts[di].rows);
    }
    out.push({ lo, hi, e: e.parts[ei], d: d?.parts[di] });
    lo = hi;
  }
  return out;
}

/**
 * Backward of {@linkcode tokenLogprobs}: `dh` (new tensor) and optionally `dEmbedding += dE`
 * for `loss = Σ_t grad_t · logp_t (+ gradEntropy_t · H_t)`, chunk by chunk over the vocabulary
 * (memory ≤ 64 MiB of scratch, never `[T, V]`). Deterministic. A target outside `[0, V)`
 * contributes only the softmax term (its forward log-prob is NaN).
 *
 * @param grad `d loss / d logp_t`, f32 `[T]` (zeros are cheap).
 * @param inputs The forward's h, embedding and targets, and the logsumexp (and entropies) it
 *   returned.
 * @param options `dEmbedding` to accumulate into, temperature, `gradEntropy`.
 * @returns dh, f32 `[T, D]` (the caller disposes it).
 * @throws {ShapeError} on mismatched shapes or dtypes, or a variant not valid here.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { tokenLogprobs } from "./logprobs.ts";
 * import { tokenLogprobsBackward } from "./logprobs_backward.ts";
 * const gpu = await Gpu.create();
 * const h = Tensor.fromArray(gpu, new Float32Array([1, 0]), [1, 2]);
 * const e = Tensor.fromArray(gpu, new Float32Array([1, 0, 0, 1]), [2, 2], "bf16");
 * const ids = Tensor.fromArray(gpu, new Uint32Array([0]));
 * const { logprobs, lse } = tokenLogprobs({ h, embedding: e, targets: ids });
 * const grad = Tensor.fromArray(gpu, new Float32Array([1]));
 * const dE = Tensor.zeros(gpu, [2, 2]);
 * const dh = tokenLogprobsBackward(grad, { h, embedding: e, targets: ids, lse }, { dEmbedding: dE });
 * console.log(await dh.read()); // [0.269, -0.269]
 * console.log(await dE.read()); // [0.269, 0, -0.269, 0]
 * // An entropy term: loss = Σ grad·logp + Σ gradEntropy·H.
 * const fwd = tokenLogprobs({ h, embedding: e, targets: ids }, { entropy: true });
 * const gradEntropy = Tensor.fromArray(gpu, new Float32Array([1]));
 * const dh2 = tokenLogprobsBackward(grad, { h, embedding: e, targets: ids, ...fwd }, {
 *   gradEntropy,
 * });
 * console.log(await dh2.read()); // [0.269 − 0.197, −0.269 + 0.197] = [0.072, -0.072]
 * for (const t of [h, e, ids, logprobs, lse, grad, dE, dh, gradEntropy, dh2]) t.dispose();
 * for (const t of [fwd.logprobs, fwd.lse, fwd.entropy!]) t.dispose();
 * gpu.destroy();
 * ```
 */
export function tokenLogprobsBackward(
  grad: Tensor,
  inputs: TokenLogprobsBackwardInputs,
  options: TokenLogprobsBackwardOptions = {},
): Tensor {
  const kernel = "tokenLogprobsBackward";
  const { h, embedding, targets, lse } = inputs;
  const { c, tokens, dim, vocab, temperature } = checkHead(kernel, inputs, options);
  expectDtype(kernel, "lse", lse, ["f32"]);
  expectDtype(kernel, "grad", grad, ["f32"]);
  expectTokens(kernel, "lse", lse, tokens);
  expectTokens(kernel, "grad", grad, tokens);
  const gradEntropy = options.gradEntropy;
  const entropy = inputs.entropy;
  if (gradEntropy) {
    if (!entropy) {
      throw new ShapeError(kernel, "gradEntropy needs the forward's entropies (inputs.entropy)");
    }
    expectDtype(kernel, "gradEntropy", gradEntropy, ["f32"]);
    expectDtype(kernel, "entropy", entropy, ["f32"]);
    expectTokens(kernel, "gradEntropy", gradEntropy, tokens);
    expectTokens(kernel, "entropy", entropy, tokens);
  }
  const dE = options.dEmbedding;
  if (dE) {
    expectDtype(kernel, "dEmbedding", dE, ["f32"]);
    if (dE.shape.length !== 2 || dE.shape[0] !== vocab || dE.shape[1] !== dim) {
      throw new ShapeError(
        kernel,
        `dEmbedding must have shape [${vocab},${dim}], got ${shapeString(dE.shape)}`,
      );
    }
  }
  if (tokens > MAX_TOKENS) {
    throw new ShapeError(kernel, `T must be ≤ ${MAX_TOKENS}, got ${tokens}`);
  }
  const gpu = h.gpu;
  const variant = logprobsVariant(gpu, {
    kernel,
    variant: options.variant,
    shape: { tokens, dim, vocab },
    shapeClass: `${embedding.dtype}:${dE ? "dE" : "noDE"}:${gradEntropy ? "entropy" : "plain"}`,
    prepare: () => backwardBench(grad, inputs, options),
  });
  const dh = Tensor.zeros(gpu, [tokens, dim], "f32");
  if (tokens === 0) return dh;

  // Scratch row stride: a multiple of the dz tile (or of 4) when it can be, ≥ 1 row always
  // (h fits one binding, so T·4 bytes do too).
  const limit = Math.min(
    gpu.limits.maxStorageBufferBindingSize,
    gpu.limits.maxBufferSize,
    SCRATCH_BYTES,
  );
  let ldz = Math.max(
    1,
    Math.min(MAX_CHUNK, Math.floor(limit / (4 * tokens)), Math.ceil(vocab / 4) * 4),
  );
  const tile = c.wg * c.tv;
  ldz -= ldz >= tile ? ldz % tile : ldz >= 4 ? ldz % 4 : 0;
  const dz = Tensor.empty(gpu, [tokens, ldz], "f32");

  const vec = dim % 4 === 0;
  const dp = dim / c.pack;
  const shapes = `h${shapeString(h.shape)} E${shapeString(embedding.shape)} ${embedding.dtype}` +
    (dE ? " +dE" : "");
  const blocks = tokenGrid(kernel, gpu, tokens, c.tt);
  // subtle: without gradEntropy the key (and source) stay those of the plain kernel.
  const dzPipeline = gpu.pipelines.get(
    "logprobs_dz",
    gradEntropy ? { ...c, entropy: true } : c,
    dzSource,
  );
  // [T] 1 where a token has any gradient: what dh/de skip by (grad itself without entropy).
  let live = grad;
  if (gradEntropy) {
    live = Tensor.empty(gpu, [tokens], "f32");
    gpu.dispatch({
      pipeline: gpu.pipelines.get("logprobs_live", {}, liveSource),
      shapes,
      uniforms: new Uniforms().u32(tokens).build(),
      buffers: [grad.binding(), gradEntropy.binding(), live.binding()],
      workgroups: grid1d(tokens, LIVE_WG, gpu.limits.maxComputeWorkgroupsPerDimension),
    });
  }
  const dhC: AccConstants = {
    form: "dh",
    bf16: c.bf16,
    vec,
    a4: ldz % 4 === 0,
    ...(variant === "sg" ? { ...SG_ACC_TILE, sg: true } : accTiling(gpu, tokens, dim)),
  };
  const dhPipeline = gpu.pipelines.get("logprobs_dh", dhC, accSource);
  const deTiling = accTiling(gpu, ldz, dim);
  const deC: AccConstants = {
    form: "de",
    bf16: false,
    vec,
    a4: deTiling.tm % 4 === 0 && ldz % deTiling.tm === 0,
    ...deTiling,
  };
  const dePipeline = dE ? gpu.pipelines.get("logprobs_de", deC, accSource) : null;
  // The sg tile is one workgroup wide; the register tiles spread their lanes along D.
  const columnGroups = (t: AccConstants) => Math.ceil(dim / ((t.sg ? 1 : t.wg) * 4 * t.tn4));

  for (const { lo, hi, e, d } of chunks(vocab, ldz, embedding, dE)) {
    const rows = hi - lo;
    const eBinding = paddedPartBinding(e, c);
    gpu.dispatch({
      pipeline: dzPipeline,
      shapes,
      uniforms: new Uniforms().u32(tokens).u32(rows).u32(lo - e.rowStart).u32(lo).u32(ldz)
        .u32(dp).f32(1 / temperature).build(),
      buffers: [
        hBinding(h, c.pack),
        eBinding,
        targets.binding(),
        lse.binding(),
        grad.binding(),
        dz.binding(),
        ...(gradEntropy && entropy ? [gradEntropy.binding(), entropy.binding()] : []),
      ],
      workgroups: [Math.ceil(rows / tile), blocks],
    });
    gpu.dispatch({
      pipeline: dhPipeline,
      shapes,
      uniforms: new Uniforms().u32(tokens).u32(dim).u32(rows).u32(ldz)
        .u32((lo - e.rowStart) * dim).u32(0).build(),
      buffers: [dz.binding(), eBinding, live.binding(), dh.binding()],
      workgroups: [columnGroups(dhC), Math.ceil(tokens / dhC.tm)],
    });
    if (dePipeline && d) {
      gpu.dispatch({
        pipeline: dePipeline,
        shapes,
        uniforms: new Uniforms().u32(rows).u32(dim).u32(tokens).u32(ldz).u32(0)
          .u32((lo - d.rowStart) * dim).build(),
        buffers: [dz.binding(), hBinding(h, c.pack), live.binding(), partBinding(d)],
        workgroups: [columnGroups(deC), Math.ceil(rows / deC.tm)],
      });
    }
  }
  dz.dispose();
  if (live !== grad) live.dispose();
  return dh;
}

/** Scratch inputs of a backward's shape class (E capped at `SCRATCH_VOCAB` rows) for the tuner. */
function backwardBench(
  grad: Tensor,
  inputs: TokenLogprobsBackwardInputs,
  options: TokenLogprobsBackwardOptions,
): TuningBench {
  const gpu = grad.gpu;
  const [tokens, dim] = inputs.h.shape;
  const rows = Math.min(inputs.embedding.shape[0], SCRATCH_VOCAB);
  const ones = () => Tensor.fromArray(gpu, new Float32Array(tokens).fill(1));
  const scratch = {
    h: Tensor.zeros(gpu, [tokens, dim]),
    embedding: Tensor.zeros(gpu, [rows, dim], inputs.embedding.dtype),
    targets: Tensor.zeros(gpu, [tokens], "u32"),
    lse: Tensor.zeros(gpu, [tokens]),
    entropy: options.gradEntropy ? Tensor.zeros(gpu, [tokens]) : undefined,
  };
  const g = ones(); // non-zero: zero grads skip the work
  const gradEntropy = options.gradEntropy ? ones() : undefined;
  const dEmbedding = options.dEmbedding ? Tensor.zeros(gpu, [rows, dim]) : undefined;
  const all = [...Object.values(scratch), g, gradEntropy, dEmbedding];
  return {
    launch: (id) =>
      tokenLogprobsBackward(g, scratch, { ...options, dEmbedding, gradEntropy, variant: id })
        .dispose(),
    dispose: () => all.forEach((t) => t?.dispose()),
  };
}
