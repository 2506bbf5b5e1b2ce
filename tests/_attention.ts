/**
 * Shared setup of the attention tests: the case shape, the score scale, the reference options
 * of a case, its seeded f32 inputs on the GPU, and the odd-shape sweep.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { AttentionRefOptions } from "../kernels/attention_ref.ts";
import { randomArray } from "./_helpers.ts";

/** The fixture's queryPreAttnScalar^−0.5 (head_dim 32). */
export const SCALE = 24 ** -0.5;

/** One attention problem: `[batch, seq, heads, headDim]` queries over `kvHeads` KV heads. */
export interface AttentionCase {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  window: number;
  /** `[batch, 2]` flattened `[start, end)` of each sequence, if not all full. */
  ranges?: number[];
}

/** @returns The reference options of `c` (scale {@link SCALE}). */
export function refOptions(c: AttentionCase): AttentionRefOptions {
  return {
    batch: c.batch,
    seq: c.seq,
    numHeads: c.heads,
    numKvHeads: c.kvHeads,
    headDim: c.headDim,
    scale: SCALE,
    window: c.window,
    ranges: c.ranges,
  };
}

/** Host and GPU inputs of a case. */
export interface AttentionInputs {
  /** `[batch, seq, heads, headDim]` in [-2, 2). */
  q: Float32Array;
  /** `[batch, seq, kvHeads, headDim]` in [-2, 2). */
  k: Float32Array;
  /** `[batch, seq, kvHeads, headDim]` in [-1, 1). */
  v: Float32Array;
  tq: Tensor;
  tk: Tensor;
  tv: Tensor;
  /** `[batch, 2]` i32, when the case has ranges. */
  tr: Tensor | undefined;
}

/** @returns Seeded q (seed), k (seed + 1), v (seed + 2) of `c`, and their tensors. */
export function attentionInputs(gpu: Gpu, c: AttentionCase, seed: number): AttentionInputs {
  const { batch, seq, heads, kvHeads, headDim } = c;
  const q = randomArray(batch * seq * heads * headDim, seed, 2);
  const k = randomArray(batch * seq * kvHeads * headDim, seed + 1, 2);
  const v = randomArray(batch * seq * kvHeads * headDim, seed + 2);
  return {
    q,
    k,
    v,
    tq: Tensor.fromArray(gpu, q, [batch, seq, heads, headDim]),
    tk: Tensor.fromArray(gpu, k, [batch, seq, kvHeads, headDim]),
    tv: Tensor.fromArray(gpu, v, [batch, seq, kvHeads, headDim]),
    tr: c.ranges ? Tensor.fromArray(gpu, new Int32Array(c.ranges), [batch, 2]) : undefined,
  };
}

/** Sequence length, head counts and head width of one sweep entry. */
export type AttentionShape = Pick<AttentionCase, "seq" | "heads" | "kvHeads" | "headDim">;

/** @returns Every (seq, heads/kvHeads, headDim) of the odd-shape sweep, seq outermost. */
export function* oddAttentionShapes(): Generator<AttentionShape> {
  for (const seq of [1, 3, 7, 33]) {
    for (const [heads, kvHeads] of [[1, 1], [4, 1], [4, 2], [3, 3]]) {
      for (const headDim of [3, 6, 10, 32]) yield { seq, heads, kvHeads, headDim };
    }
  }
}
