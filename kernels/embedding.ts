/**
 * Embedding gather with a scale: `out[t, :] = E[ids[t], :] · scale` (Gemma scales by
 * `sqrt(hidden_size)` rounded to the activation dtype, `Math.fround(Math.sqrt(D))` in float32).
 *
 * The table may be split into parts along the vocabulary (the 262144×1152 bf16 Gemma table is
 * 604 MB, above a 128 MiB storage binding). One dispatch binds up to
 * `maxStorageBuffersPerShaderStage − 2` parts (14 on llvmpipe; Gemma's table has 5) and each
 * workgroup copies one token's row from the part holding it; tables with more parts take more
 * dispatches, each writing the tokens whose id falls in its row range. Ids outside `[0, V)` read
 * nothing and produce zero rows (written by the first dispatch, so every output element is
 * written exactly once).
 *
 * WGSL in `_embedding_wgsl.ts`; the backward scatter-add is `embeddingBackward` in
 * `embedding_backward.ts`.
 *
 * @module
 */

import { expectDtype, grid1d, partBinding, Uniforms } from "./_launch.ts";
import { embeddingSource, MAX_PARTS, partsPerDispatch } from "./_embedding_wgsl.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

/** Options of {@linkcode embedding}. */
export interface EmbeddingOptions {
  /**
   * Multiplier applied in f32 after the gather (default 1). Gemma: `Math.fround(Math.sqrt(D))`
   * for a float32 model (the bf16-rounded value to mimic a bfloat16 run).
   */
  readonly scale?: number;
  /** Write the rows here (f32 `[T, D]`). */
  readonly out?: Tensor;
}

/**
 * Gathers rows of an embedding table and scales them: `out[t, :] = table[ids[t], :] · scale`.
 * Ids outside `[0, V)` give zero rows (never an out-of-bounds read); validate ids on the host
 * when that should be an error.
 *
 * @param table `[V, D]` f32 or bf16, possibly split into parts along V.
 * @param ids `[T]` (or any shape, flattened) u32 or i32 token ids.
 * @param options Scale and an optional output tensor.
 * @returns `[...ids.shape, D]` f32.
 * @throws {ShapeError} on a non-2-D table or a wrong dtype.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { embedding } from "./embedding.ts";
 * const gpu = await Gpu.create();
 * const table = Tensor.fromArray(gpu, new Float32Array([0, 1, 2, 3, 4, 5]), [3, 2], "bf16");
 * const ids = Tensor.fromArray(gpu, new Int32Array([2, 0]));
 * const h = embedding(table, ids, { scale: Math.fround(Math.sqrt(2)) });
 * console.log(await h.read()); // [5.657, 7.071, 0, 1.414]
 * gpu.destroy();
 * ```
 */
export function embedding(table: Tensor, ids: Tensor, options: EmbeddingOptions = {}): Tensor {
  const kernel = "embedding";
  expectDtype(kernel, "table", table, ["f32", "bf16"]);
  expectDtype(kernel, "ids", ids, ["u32", "i32"]);
  if (table.shape.length !== 2 || table.shape[1] === 0) {
    throw new ShapeError(
      kernel,
      `table must be [V, D] with D > 0, got ${shapeString(table.shape)}`,
    );
  }
  const scale = options.scale ?? 1;
  if (!Number.isFinite(scale)) throw new ShapeError(kernel, `scale must be finite, got ${scale}`);
  const [vocab, d] = table.shape;
  const tokens = ids.numel;
  const shape = [...ids.shape, d];
  const out = options.out ?? Tensor.empty(table.gpu, shape, "f32");
  if (out.dtype !== "f32" || out.numel !== tokens * d) {
    throw new ShapeError(
      kernel,
      `out must be f32 ${shapeString(shape)}, got ${out.dtype} ${shapeString(out.shape)}`,
    );
  }
  if (tokens === 0) return out;
  const gpu = table.gpu;
  const perDispatch = partsPerDispatch(gpu);
  const workgroups = grid1d(tokens, 1, gpu.limits.maxComputeWorkgroupsPerDimension);
  for (let first = 0; first < table.parts.length; first += perDispatch) {
    const group = table.parts.slice(first, first + perDispatch);
    const last = group[group.length - 1];
    const uniforms = new Uniforms().u32(tokens).u32(d).u32(vocab).f32(scale)
      .u32(first === 0 ? 1 : 0).u32(group[0].rowStart).u32(last.rowStart + last.rows).u32(0);
    for (let k = 0; k < MAX_PARTS; k++) uniforms.u32(group[k]?.rowStart ?? 0xffffffff);
    gpu.dispatch({
      pipeline: gpu.pipelines.get(
        kernel,
        { bf16: table.dtype === "bf16", parts: group.length },
        embeddingSource,
      ),
      shapes: `table${shapeString(table.shape)}:${table.dtype} parts ${first}..${
        first + group.length - 1
      } ids${shapeString(ids.shape)}`,
      uniforms: uniforms.build(),
      buffers: [
        ids.binding(),
        out.binding(),
        ...group.map(partBinding),
      ],
      workgroups,
    });
  }
  return out;
}
