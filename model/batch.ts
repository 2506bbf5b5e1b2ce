/**
 * The token layout the model runs on: B sequences padded to S tokens, with each sequence's valid
 * index range `[start, end)` (left padding → start > 0, right padding → end < S) and RoPE
 * positions `index − start`.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";

/** A padded batch on the GPU. Token t of sequence b is row `b·S + t`. */
export interface TokenBatch {
  /** Sequences. */
  readonly batch: number;
  /** Padded length. */
  readonly seq: number;
  /** i32 `[B·S]` token ids (pad positions hold `padId`). */
  readonly ids: Tensor;
  /** i32 `[B·S]` RoPE positions (`index − start`, 0 on padding). */
  readonly positions: Tensor;
  /** i32 `[B, 2]` valid index range per sequence. */
  readonly ranges: Tensor;
  /** Host copy of the ranges. */
  readonly hostRanges: readonly (readonly [number, number])[];
  /** Host copy of the ids. */
  readonly hostIds: Int32Array;
}

/** Options of {@linkcode makeTokenBatch}. */
export interface TokenBatchOptions {
  /** Pad on the left (prompts for generation) or the right (default). */
  readonly padLeft?: boolean;
  /** Padded length (default: the longest sequence). */
  readonly seq?: number;
  /** Id written into padding (default 0). */
  readonly padId?: number;
}

/**
 * Uploads sequences as a padded batch.
 *
 * @param gpu Runtime.
 * @param sequences Token ids per sequence.
 * @param options Padding side, length and id.
 * @returns The batch (dispose with {@linkcode disposeTokenBatch}).
 */
export function makeTokenBatch(
  gpu: Gpu,
  sequences: readonly (readonly number[])[],
  options: TokenBatchOptions = {},
): TokenBatch {
  const batch = sequences.length;
  const seq = options.seq ?? Math.max(1, ...sequences.map((s) => s.length));
  const ids = new Int32Array(batch * seq).fill(options.padId ?? 0);
  const positions = new Int32Array(batch * seq);
  const ranges = new Int32Array(batch * 2);
  const hostRanges: [number, number][] = [];
  sequences.forEach((s, b) => {
    if (s.length > seq) throw new RangeError(`sequence ${b} has ${s.length} tokens > ${seq}`);
    const start = options.padLeft ? seq - s.length : 0;
    for (let t = 0; t < s.length; t++) {
      ids[b * seq + start + t] = s[t];
      positions[b * seq + start + t] = t;
    }
    ranges[2 * b] = start;
    ranges[2 * b + 1] = start + s.length;
    hostRanges.push([start, start + s.length]);
  });
  return {
    batch,
    seq,
    ids: Tensor.fromArray(gpu, ids, [batch * seq], "i32"),
    positions: Tensor.fromArray(gpu, positions, [batch * seq], "i32"),
    ranges: Tensor.fromArray(gpu, ranges, [batch, 2], "i32"),
    hostRanges,
    hostIds: ids,
  };
}

/**
 * Gives a batch's tensors back to the pool.
 *
 * @param b The batch.
 */
export function disposeTokenBatch(b: TokenBatch): void {
  b.ids.dispose();
  b.positions.dispose();
  b.ranges.dispose();
}
