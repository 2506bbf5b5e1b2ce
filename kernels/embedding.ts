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
 * @module
 */

import { expectDtype, grid1d, Uniforms, WGSL_LINEAR, wgslBf16Reader } from "./_launch.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

const WG = 64;
/** Row starts of the bound parts live in a uniform `array<vec4<u32>, 4>`. */
const MAX_PARTS = 16;

interface EmbeddingConstants extends Record<string, number | string | boolean> {
  /** Table stored as bf16. */
  bf16: boolean;
  /** Table parts bound by this pipeline. */
  parts: number;
}

const embeddingSource = (c: EmbeddingConstants) => {
  const parts = Array.from({ length: c.parts }, (_, k) => k);
  const elem = c.bf16 ? "u32" : "f32";
  const read = (k: number) => (c.bf16 ? `bf16_at_table${k}(src + col)` : `table${k}[src + col]`);
  return /* wgsl */ `
struct Params {
  tokens: u32, d: u32, vocab: u32, scale: f32,
  zero_invalid: u32,  // 1 in the dispatch that writes the rows of ids outside [0, vocab)
  lo: u32, hi: u32,   // rows [lo, hi) of the table are bound here
  pad: u32,
  starts: array<vec4<u32>, ${MAX_PARTS / 4}>, // first row of bound part k
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;       // [T] (i32 ids as their bits)
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [T, D]
${
    parts.map((k) =>
      `@group(0) @binding(${
        3 + k
      }) var<storage, read> table${k}: array<${elem}>; // [rows_${k}, D]${
        c.bf16 ? " bf16 two per word" + wgslBf16Reader(`table${k}`) : ""
      }`
    ).join("\n")
  }

fn part_start(k: u32) -> u32 { return p.starts[k / 4u][k % 4u]; }

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = wid.x + wid.y * nwg.x; // one workgroup per token
  if (t >= p.tokens) { return; }
  // subtle: a negative i32 id reads as a u32 >= 2^31, i.e. >= vocab, so it is zeroed too.
  let id = ids[t];
  let dst = t * p.d;
  if (id >= p.vocab) {
    if (p.zero_invalid == 1u) {
      for (var col = lid; col < p.d; col += ${WG}u) { out[dst + col] = 0.0; }
    }
    return;
  }
  if (id < p.lo || id >= p.hi) { return; }
  var k = 0u;
  ${parts.slice(1).map((j) => `if (id >= part_start(${j}u)) { k = ${j}u; }`).join("\n  ")}
  let src = (id - part_start(k)) * p.d;
  ${
    parts.map((j) =>
      `if (k == ${j}u) {
    for (var col = lid; col < p.d; col += ${WG}u) { out[dst + col] = ${read(j)} * p.scale; }
  }`
    ).join("\n  ")
  }
}`;
};

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
  const perDispatch = Math.min(MAX_PARTS, gpu.limits.maxStorageBuffersPerShaderStage - 2);
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
        ...group.map((part) => ({ buffer: part.buffer, offset: 0, size: Math.max(part.bytes, 4) })),
      ],
      workgroups,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Backward: dTable[id, :] += Σ_{t: ids[t] = id} dOut[t, :] · scale, deterministic without atomics.
// ---------------------------------------------------------------------------------------------

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
 * import { embeddingCsr } from "./embedding.ts";
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

const SCATTER_WG = 64;

const embeddingScatterSource = (c: { parts: number }) => {
  const parts = Array.from({ length: c.parts }, (_, k) => k);
  return /* wgsl */ `
struct Params {
  d: u32, pad0: u32,
  first: u32, count: u32, // unique ids [first, first + count) are handled by this dispatch
  uniques: u32,           // U, to find offsets and tokens in csr
  scale: f32, pad1: u32, pad2: u32,
  starts: array<vec4<u32>, ${MAX_PARTS / 4}>, // first row of bound part k
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> csr: array<u32>; // [U rows | U+1 offsets | tokens]
@group(0) @binding(2) var<storage, read> dout: array<f32>; // [T, D]
${
    parts.map((k) =>
      `@group(0) @binding(${
        3 + k
      }) var<storage, read_write> table${k}: array<f32>; // [rows_${k}, D] dTable part`
    ).join("\n")
  }

fn part_start(k: u32) -> u32 { return p.starts[k / 4u][k % 4u]; }

fn token_sum(col: u32, begin: u32, end: u32) -> f32 {
  let base = 2u * p.uniques + 1u;
  var acc = 0.0;
  for (var j = begin; j < end; j++) { acc += dout[csr[base + j] * p.d + col] * p.scale; }
  return acc;
}

@compute @workgroup_size(${SCATTER_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x; // one workgroup per distinct id
  if (w >= p.count) { return; }
  let u = p.first + w;
  let id = csr[u];
  let begin = csr[p.uniques + u];
  let end = csr[p.uniques + u + 1u];
  var k = 0u;
  ${parts.slice(1).map((j) => `if (id >= part_start(${j}u)) { k = ${j}u; }`).join("\n  ")}
  let row = (id - part_start(k)) * p.d;
  // subtle: the only writer of these elements, summing the id's tokens in increasing order.
  ${
    parts.map((j) =>
      `if (k == ${j}u) {
    for (var col = lid; col < p.d; col += ${SCATTER_WG}u) { table${j}[row + col] += token_sum(col, begin, end); }
  }`
    ).join("\n  ")
  }
}`;
};

const zeroSource = () => /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>; // [n]
${WGSL_LINEAR}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_index(gid, nwg, 256u);
  if (i < p.n) { dst[i] = 0.0; }
}`;

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
 * import { embeddingBackward } from "./embedding.ts";
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
        buffers: [{ buffer: part.buffer, offset: 0, size: Math.max(part.bytes, 4) }],
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
  const perDispatch = Math.min(MAX_PARTS, gpu.limits.maxStorageBuffersPerShaderStage - 2);
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
        ...group.map((part) => ({ buffer: part.buffer, offset: 0, size: Math.max(part.bytes, 4) })),
      ],
      workgroups: grid1d(end - first, 1, maxGrid),
    });
    first = end;
  }
  csr.dispose(); // stream-ordered: a later user of the pooled buffer runs after these reads
  return dTable;
}
