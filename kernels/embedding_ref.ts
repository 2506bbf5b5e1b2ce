/**
 * Float64 references of `embedding()` and `embeddingBackward()` (kernels/embedding.ts,
 * embedding_backward.ts).
 *
 * @module
 */

/** Sizes of {@linkcode embeddingRef}. */
export interface EmbeddingRefOptions {
  /** Row width D. */
  readonly dim: number;
  /** Multiplier. */
  readonly scale: number;
}

/**
 * `out[t, :] = table[ids[t], :] · scale`; ids outside `[0, V)` give zero rows.
 *
 * @param table Row-major `[V, D]` values (bf16-rounded for a bf16 table).
 * @param ids Token ids.
 * @param options Row width and scale.
 * @returns `[T, D]`.
 * @example
 * ```ts
 * import { embeddingRef } from "./embedding_ref.ts";
 * console.log(embeddingRef([0, 1, 2, 3], [1, 5], { dim: 2, scale: 2 })); // [4, 6, 0, 0]
 * ```
 */
export function embeddingRef(
  table: ArrayLike<number>,
  ids: ArrayLike<number>,
  options: EmbeddingRefOptions,
): Float64Array {
  const { dim: d, scale } = options;
  const vocab = table.length / d;
  const out = new Float64Array(ids.length * d);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) continue;
    for (let i = 0; i < d; i++) out[t * d + i] = table[id * d + i] * scale;
  }
  return out;
}

/** Sizes of {@linkcode embeddingBackwardRef}. */
export interface EmbeddingBackwardRefOptions {
  /** V, the table's rows. */
  readonly vocab: number;
  /** The forward's multiplier. */
  readonly scale: number;
}

/**
 * Backward of {@linkcode embeddingRef} in float64: `dTable[ids[t], :] += dOut[t, :] · scale`
 * (ids outside `[0, V)` contribute nothing).
 *
 * @param dOut Gradient of the output, row-major `[T, D]`.
 * @param ids Token ids `[T]`.
 * @param options Vocabulary size and the forward's scale.
 * @returns dTable `[V, D]` (rows of absent ids are zero).
 * @example
 * ```ts
 * import { embeddingBackwardRef } from "./embedding_ref.ts";
 * console.log(embeddingBackwardRef([1, 2, 3, 4], [1, 1], { vocab: 2, scale: 2 })); // [0, 0, 8, 12]
 * ```
 */
export function embeddingBackwardRef(
  dOut: ArrayLike<number>,
  ids: ArrayLike<number>,
  options: EmbeddingBackwardRefOptions,
): Float64Array {
  const { vocab, scale } = options;
  const d = dOut.length / ids.length;
  if (!Number.isInteger(d)) {
    throw new RangeError(`dOut length ${dOut.length} is not a multiple of ${ids.length} ids`);
  }
  const dTable = new Float64Array(vocab * d);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) continue;
    for (let i = 0; i < d; i++) dTable[id * d + i] += dOut[t * d + i] * scale;
  }
  return dTable;
}
