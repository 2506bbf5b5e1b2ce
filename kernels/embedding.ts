/**
 * Embedding gather with a scale: `out[t, :] = E[ids[t], :] · scale` (Gemma scales by
 * `sqrt(hidden_size)` rounded to the activation dtype, `Math.fround(Math.sqrt(D))` in float32).
 *
 * The table may be split into parts along the vocabulary (the 262144×1152 bf16 Gemma table is
 * 604 MB, above a 128 MiB storage binding): one dispatch per part, each writing the rows whose
 * id falls in its range. Ids outside `[0, V)` read nothing and produce zero rows (written by the
 * first part's dispatch, so every output element is written exactly once).
 *
 * @module
 */

import { expectDtype, Uniforms, wgslBf16Reader } from "./_launch.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

const WG = 64;
/** Columns per invocation (strided by the workgroup width, so lanes read neighbours). */
const COLS = 4;

interface EmbeddingConstants extends Record<string, number | string | boolean> {
  /** Table stored as bf16. */
  bf16: boolean;
}

const embeddingSource = (c: EmbeddingConstants) => /* wgsl */ `
struct Params { tokens: u32, d: u32, row_start: u32, rows: u32, vocab: u32, scale: f32,
                zero_invalid: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;         // [T] (i32 ids as bits)
@group(0) @binding(2) var<storage, read> table: array<${
  c.bf16 ? "u32" : "f32"
}>; // [rows, D] one part${c.bf16 ? ", bf16 two per word" : ""}
@group(0) @binding(3) var<storage, read_write> out: array<f32>;   // [T, D]
${c.bf16 ? wgslBf16Reader("table") : ""}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = wid.y + wid.z * nwg.y;
  if (t >= p.tokens) { return; }
  // subtle: a negative i32 id reads as a u32 ≥ 2^31, i.e. ≥ vocab, so it is zeroed too.
  let id = ids[t];
  let inPart = id >= p.row_start && id - p.row_start < p.rows;
  let invalid = p.zero_invalid == 1u && id >= p.vocab;
  if (!inPart && !invalid) { return; }
  let src = select(0u, (id - p.row_start) * p.d, inPart);
  let dst = t * p.d;
  for (var k = 0u; k < ${COLS}u; k++) {
    let col = (wid.x * ${COLS}u + k) * ${WG}u + lid;
    if (col < p.d) {
      out[dst + col] = select(0.0, ${
  c.bf16 ? "bf16_at_table(src + col)" : "table[src + col]"
} * p.scale, inPart);
    }
  }
}`;

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
  const maxY = gpu.limits.maxComputeWorkgroupsPerDimension;
  const gy = Math.min(tokens, maxY);
  const workgroups: [number, number, number] = [
    Math.ceil(d / (WG * COLS)),
    gy,
    Math.ceil(tokens / gy),
  ];
  const pipeline = gpu.pipelines.get(kernel, { bf16: table.dtype === "bf16" }, embeddingSource);
  table.parts.forEach((part, i) => {
    gpu.dispatch({
      pipeline,
      shapes: `table${shapeString(table.shape)}:${table.dtype} part ${i} ids${
        shapeString(ids.shape)
      }`,
      uniforms: new Uniforms().u32(tokens).u32(d).u32(part.rowStart).u32(part.rows).u32(vocab)
        .f32(scale).u32(i === 0 ? 1 : 0).build(),
      buffers: [
        ids.binding(),
        { buffer: part.buffer, offset: 0, size: Math.max(part.bytes, 4) },
        out.binding(),
      ],
      workgroups,
    });
  });
  return out;
}
