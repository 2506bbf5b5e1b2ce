/**
 * Float64 reference of {@linkcode embedding} (kernels/embedding.ts).
 *
 * @module
 */

/**
 * `out[t, :] = table[ids[t], :] · scale`; ids outside `[0, V)` give zero rows.
 *
 * @param table Row-major `[V, D]` values (bf16-rounded for a bf16 table).
 * @param d Row width D.
 * @param ids Token ids.
 * @param scale Multiplier.
 * @returns `[T, D]`.
 * @example
 * ```ts
 * import { embeddingRef } from "./embedding_ref.ts";
 * console.log(embeddingRef([0, 1, 2, 3], 2, [1, 5], 2)); // [4, 6, 0, 0]
 * ```
 */
export function embeddingRef(
  table: ArrayLike<number>,
  d: number,
  ids: ArrayLike<number>,
  scale: number,
): Float64Array {
  const vocab = table.length / d;
  const out = new Float64Array(ids.length * d);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) continue;
    for (let i = 0; i < d; i++) out[t * d + i] = table[id * d + i] * scale;
  }
  return out;
}

/**
 * Backward of {@linkcode embeddingRef} in float64: `dTable[ids[t], :] += dOut[t, :] · scale`
 * (ids outside `[0, V)` contribute nothing).
 *
 * @param ids Token ids `[T]`.
 * @param dOut Gradient of the output, row-major `[T, D]`.
 * @param vocab V.
 * @param scale The forward's multiplier.
 * @returns dTable `[V, D]` (rows of absent ids are zero).
 * @example
 * ```ts
 * import { embeddingBackwardRef } from "./embedding_ref.ts";
 * console.log(embeddingBackwardRef([1, 1], [1, 2, 3, 4], 2, 2)); // [0, 0, 8, 12]
 * ```
 */
export function embeddingBackwardRef(
  ids: ArrayLike<number>,
  dOut: ArrayLike<number>,
  vocab: number,
  scale: number,
): Float64Array {
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
