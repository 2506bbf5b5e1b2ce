/**
 * Backward of the embedding gather ({@linkcode embedding}):
 * `dTable[id, :] += Σ_{t: ids[t] = id} dOut[t, :] · scale`, deterministic without atomics (a
 * host-built CSR plan gives every row a single writer that sums its tokens in a fixed order).
 * WGSL in `_embedding_backward_wgsl.ts`.
 *
 * @module
 */

import { expectDtype, grid1d, partBinding, Uniforms } from "./_launch.ts";
import { MAX_PARTS, partsPerDispatch } from "./_embedding_wgsl.ts";
import { embeddingScatterSource, zeroSource } from "./_embedding_backward_wgsl.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

/**
 * Host-built scatter plan of {@linkcode embeddingBackward}: the distinct valid ids in increasing
 * order and, for each, the token positions holding it in increasing order (CSR).
 */
export interface EmbeddingCsr {
  /** Distinct ids in `[0, V)`, ascending, `[U]`. */
  readonly rows: Uint32Array;
  /** Token positions of `rows[u]` are `tokens[offsets[u] .. offsets[u + 1])`, `[U + 1]`. */
  readonly offsets: Uint32Array;
  /** Token positions grouped by id, each group ascending, `[valid tokens]`. */
  readonly tokens: Uint32Array;
}

/**
 * Groups token positions by id (ids outside `[0, vocab)` or not integers are dropped: their
 * forward rows are zero, so they get no gradient).
 *
 * @param ids Token ids `[T]`.
 * @param vocab V, the table's row count.
 * @returns The CSR plan (fixed order: ids ascending, tokens ascending within an id).
 * @example
 * ```ts
 * import { embeddingCsr } from "./embedding_backward.ts";
 * const { rows, offsets, tokens } = embeddingCsr([5, 2, 5, 9], 8);
 * // rows [2, 5], offsets [0, 1, 3], tokens [1, 0, 2]
 * ```
 */
export function embeddingCsr(ids: ArrayLike<number>, vocab: number): EmbeddingCsr {
  const valid: number[] = [];
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (Number.isInteger(id) && id >= 0 && id < vocab) valid.push(t);
  }
  valid.sort((a, b) => ids[a] - ids[b] || a - b);
  const rows: number[] = [];
  const offsets: number[] = [];
  valid.forEach((t, j) => {
    if (j === 0 || ids[t] !== ids[valid[j - 1]]) {
      rows.push(ids[t]);
      offsets.push(j);
    }
  });
  offsets.push(valid.length);
  return {
    rows: Uint32Array.from(rows),
    offsets: Uint32Array.from(offsets),
    tokens: Uint32Array.from(valid),
  };
}

/** Options of {@linkcode embeddingBackward}. */
export interface EmbeddingBackwardOptions {
  /** The table's gradient `[V, D]` f32, possibly split into parts along V. */
  readonly dTable: Tensor;
  /** The forward's scale (default 1): the gradient of a row is `scale · Σ dOut`. */
  readonly scale?: number;
  /**
   * `true` (default): add into dTable (micro-batches; the tied LM head's gradient goes into the
   * same tensor). `false`: zero the whole of dTable first.
   */
  readonly accumulate?: boolean;
}

/**
 * Backward of {@linkcode embedding}: scatter-adds `dOut[t, :] · scale` into row `ids[t]` of
 * dTable. Deterministic without float atomics: the host groups token positions by id
 * ({@linkcode embeddingCsr}, uploaded as one small u32 tensor) and one workgroup per
 * distinct id (an invocation per column) sums that id's tokens in increasing order and adds the sum to the row,
 * the only write to it. Ids outside `[0, V)` get nothing (their forward rows are zero). Tables
 * split into more parts than one dispatch binds take one dispatch per group of parts.
 *
 * @param dOut `[T, D]` (or `[..., D]`) f32, gradient of the forward's output.
 * @param ids The forward's token ids on the host, `T` of them in dOut's row order.
 * @param options dTable (required), scale and accumulation.
 * @returns dTable.
 * @throws {ShapeError} on mismatched shapes or dtypes.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { embeddingBackward } from "./embedding_backward.ts";
 * const gpu = await Gpu.create();
 * const dTable = Tensor.zeros(gpu, [3, 2]);
 * const dOut = Tensor.fromArray(gpu, new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
 * embeddingBackward(dOut, [2, 0, 2], { dTable, scale: 2 });
 * console.log(await dTable.read()); // [6, 8, 0, 0, 12, 16]
 * gpu.destroy();
 * ```
 */
export function embeddingBackward(
  dOut: Tensor,
  ids: ArrayLike<number>,
  options: EmbeddingBackwardOptions,
): Tensor {
  const kernel = "embeddingBackward";
  const { dTable } = options;
  expectDtype(kernel, "dOut", dOut, ["f32"]);
  expectDtype(kernel, "dTable", dTable, ["f32"]);
  if (dTable.shape.length !== 2 || dTable.shape[1] === 0) {
    throw new ShapeError(
      kernel,
      `dTable must be [V, D] with D > 0, got ${shapeString(dTable.shape)}`,
    );
  }
  const [vocab, d] = dTable.shape;
  if (dOut.shape.at(-1) !== d || dOut.numel !== ids.length * d) {
    throw new ShapeError(
      kernel,
      `dOut must be [${ids.length}, ${d}] for ${ids.length} ids and dTable ${
        shapeString(dTable.shape)
      }, got ${shapeString(dOut.shape)}`,
    );
  }
  const scale = options.scale ?? 1;
  if (!Number.isFinite(scale)) throw new ShapeError(kernel, `scale must be finite, got ${scale}`);
  const gpu = dTable.gpu;
  const maxGrid = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (options.accumulate === false) {
    for (const part of dTable.parts) {
      const n = part.bytes / 4;
      gpu.dispatch({
        pipeline: gpu.pipelines.get("embeddingBackwardZero", {}, zeroSource),
        shapes: `dTable${shapeString(dTable.shape)} part rows ${part.rowStart}+${part.rows}`,
        uniforms: new Uniforms().u32(n).build(),
        buffers: [partBinding(part)],
        workgroups: grid1d(n, 256, maxGrid),
      });
    }
  }
  const plan = embeddingCsr(ids, vocab);
  const uniques = plan.rows.length;
  if (uniques === 0) return dTable;
  const packed = new Uint32Array(2 * uniques + 1 + plan.tokens.length);
  packed.set(plan.rows);
  packed.set(plan.offsets, uniques);
  packed.set(plan.tokens, 2 * uniques + 1);
  const csr = Tensor.fromArray(gpu, packed);
  const perDispatch = partsPerDispatch(gpu);
  let first = 0;
  for (let g = 0; g < dTable.parts.length && first < uniques; g += perDispatch) {
    const group = dTable.parts.slice(g, g + perDispatch);
    const last = group[group.length - 1];
    let end = first; // rows ascending: this group's ids are the next contiguous run
    while (end < uniques && plan.rows[end] < last.rowStart + last.rows) end++;
    if (end === first) continue;
    const uniforms = new Uniforms().u32(d).u32(0).u32(first).u32(end - first)
      .u32(uniques).f32(scale).u32(0).u32(0);
    for (let k = 0; k < MAX_PARTS; k++) uniforms.u32(group[k]?.rowStart ?? 0xffffffff);
    gpu.dispatch({
      pipeline: gpu.pipelines.get(kernel, { parts: group.length }, embeddingScatterSource),
      shapes: `dTable${shapeString(dTable.shape)} parts ${g}..${g + group.length - 1} dOut${
        shapeString(dOut.shape)
      }`,
      uniforms: uniforms.build(),
      buffers: [
        csr.binding(),
        dOut.binding(),
        ...group.map(partBinding),
      ],
      workgroups: grid1d(end - first, 1, maxGrid),
    });
    first = end;
  }
  csr.dispose(); // stream-ordered: a later user of the pooled buffer runs after these reads
  return dTable;
}
