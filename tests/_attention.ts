/**
 * Shared setup of the attention tests: the case shape, the score scale, the reference options
 * of a case, its seeded f32 inputs on the GPU, the odd-shape sweep and the padded batch.
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
  /** The case's reference options ({@linkcode refOptions}). */
  ref: AttentionRefOptions;
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
    ref: refOptions(c),
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

/** A case of the sweep with the seed of its inputs. */
export interface SeededCase {
  readonly c: AttentionCase;
  readonly seed: number;
}

/**
 * The odd-shape sweep as cases: every shape of {@linkcode oddAttentionShapes} in 2 sequences
 * with the window cycling through 0, 1, 3 and 8, then a 33-token GQA sequence under each window.
 *
 * @returns The cases with their seeds.
 */
export function* oddCases(): Generator<SeededCase> {
  let seed = 10;
  for (const shape of oddAttentionShapes()) {
    const window = [0, 1, 3, 8][seed % 4];
    yield { c: { batch: 2, ...shape, window }, seed: seed += 3 };
  }
  for (const window of [0, 1, 3, 8]) {
    yield { c: { batch: 1, seq: 33, heads: 4, kvHeads: 2, headDim: 6, window }, seed: 99 };
  }
}

/**
 * Four sequences of 13 tokens padded every way — sequence 0 left-padded by 3, 1 right-padded to
 * 5, 2 full, 3 empty — with 4 heads on 1 KV head of width 10.
 *
 * @param window Sliding window (0 = global).
 * @returns The case.
 */
export function paddedCase(window: number): AttentionCase {
  const ranges = [3, 13, 0, 5, 0, 13, 4, 4];
  return { batch: 4, seq: 13, heads: 4, kvHeads: 1, headDim: 10, window, ranges };
}
