/**
 * Shared setup of the RoPE tests: a `[B, S, H, D]` batch whose sequences sit at different
 * position offsets, as when decoding with a cache.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import { RopeTable } from "../kernels/rope.ts";
import { Tensor } from "../kernels/tensor.ts";
import { randomArray } from "./_helpers.ts";

/** Host and GPU data of {@linkcode offsetBatch}. */
export interface OffsetBatch {
  /** Heads per token. */
  readonly heads: number;
  /** Head dimension. */
  readonly headDim: number;
  /** `[2, 5, 3, 10]` values. */
  readonly x: Float32Array;
  /** Sequence 0 at positions 0.., sequence 1 at 300.. (`[2, 5]`). */
  readonly pos: Int32Array;
  /** Base 1e4, 512 positions. */
  readonly table: RopeTable;
  readonly tx: Tensor;
  readonly tp: Tensor;
}

/**
 * @param gpu The runtime.
 * @returns Two sequences of 5 tokens, 3 heads of 10, at position offsets 0 and 300.
 */
export function offsetBatch(gpu: Gpu): OffsetBatch {
  const [b, s, h, d] = [2, 5, 3, 10];
  const x = randomArray(b * s * h * d, 77);
  const pos = Int32Array.from({ length: b * s }, (_, i) => (i < s ? i : 300 + i - s));
  const table = RopeTable.create(gpu, { base: 1e4, headDim: d, maxPositions: 512 });
  const tp = Tensor.fromArray(gpu, pos, [b, s]);
  const tx = Tensor.fromArray(gpu, x, [b, s, h, d]);
  return { heads: h, headDim: d, x, pos, table, tx, tp };
}
