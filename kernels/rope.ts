/**
 * Rotary position embedding (RoPE) in the split-half ("rotate_half") layout of transformers'
 * Gemma 3: element d of a head is paired with element d + headDim/2.
 *
 * With `half = headDim / 2`, `inv_freq[j] = base^(−2j/headDim)` and `angle = position·inv_freq[j]`
 * (both rounded to float32, as transformers computes them), for `x1 = x[:half]`, `x2 = x[half:]`:
 * `out1 = x1·cos − x2·sin`, `out2 = x2·cos + x1·sin`.
 *
 * The cos/sin values are tabulated on the host (float64 cos/sin of the float32 angle, stored as
 * float32) in a {@linkcode RopeTable}: WGSL `cos`/`sin` lose accuracy on angles of ~1000 rad.
 * One table per (base, headDim, maxPositions); {@linkcode RopeTableCache} keeps them per model.
 *
 * Positions are an explicit i32 tensor, one per token, so any layout works: concatenated
 * sequences, `[B, S]` batches with per-sequence offsets (decoding with a cache), left padding
 * (`position = index − start`).
 *
 * The WGSL template lives in `_rope_wgsl.ts`; the backward pass (rotation by −angle) is
 * `ropeBackward` in `rope_backward.ts`.
 *
 * @module
 */

import { expectDtype, grid1d, Uniforms } from "./_launch.ts";
import { ROPE_WG as WG, ropeSource } from "./_rope_wgsl.ts";
import { ShapeError } from "./errors.ts";
import type { Gpu } from "./gpu.ts";
import { shapeString, Tensor } from "./tensor.ts";

/** What a {@linkcode RopeTable} tabulates. */
export interface RopeTableConfig {
  /** RoPE base θ (Gemma 3: 10,000 on sliding layers, 1,000,000 on global ones). */
  readonly base: number;
  /** Head dimension (even). */
  readonly headDim: number;
  /** Positions 0..maxPositions−1 are tabulated. */
  readonly maxPositions: number;
}

/**
 * Checks a table configuration and freezes it.
 *
 * @param config The fields.
 * @returns The frozen, validated configuration.
 * @throws {ShapeError} naming the bad field.
 */
export function ropeTableConfig(config: RopeTableConfig): Readonly<RopeTableConfig> {
  const { base, headDim, maxPositions } = config;
  if (!(Number.isFinite(base) && base > 0)) {
    throw new ShapeError("ropeTable", `base must be a positive number, got ${base}`);
  }
  if (!(Number.isInteger(headDim) && headDim >= 2 && headDim % 2 === 0)) {
    throw new ShapeError("ropeTable", `headDim must be an even integer ≥ 2, got ${headDim}`);
  }
  if (!(Number.isInteger(maxPositions) && maxPositions >= 1 && maxPositions <= 2 ** 24)) {
    throw new ShapeError("ropeTable", `maxPositions must be in [1, 2^24], got ${maxPositions}`);
  }
  return Object.freeze({ base, headDim, maxPositions });
}

/**
 * Host cos/sin table with transformers' float32 semantics: `inv_freq` and the angle are float32,
 * cos/sin are taken in float64 of that float32 angle and stored as float32.
 *
 * @param config Base, head dimension and number of positions.
 * @returns `[maxPositions, headDim]` row-major: row p holds cos(angle_p,j) for j < half, then
 *   sin(angle_p,j).
 * @example
 * ```ts
 * import { ropeCosSinTable } from "./rope.ts";
 * const t = ropeCosSinTable({ base: 10000, headDim: 4, maxPositions: 2 });
 * // position 1, j = 0: angle 1 → cos(1) at [4], sin(1) at [6]
 * console.log(t[4], t[6]);
 * ```
 */
export function ropeCosSinTable(config: RopeTableConfig): Float32Array {
  const { base, headDim, maxPositions } = ropeTableConfig(config);
  const half = headDim / 2;
  const invFreq = new Float64Array(half);
  for (let j = 0; j < half; j++) {
    // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all float32
    const exponent = Math.fround((2 * j) / headDim);
    invFreq[j] = Math.fround(1 / Math.fround(Math.pow(Math.fround(base), exponent)));
  }
  const table = new Float32Array(maxPositions * headDim);
  for (let p = 0; p < maxPositions; p++) {
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(p * invFreq[j]);
      table[p * headDim + j] = Math.cos(angle);
      table[p * headDim + half + j] = Math.sin(angle);
    }
  }
  return table;
}

/**
 * A cos/sin table on the GPU for one (base, headDim, maxPositions).
 *
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { RopeTable } from "./rope.ts";
 * const gpu = await Gpu.create();
 * const table = RopeTable.create(gpu, { base: 1e6, headDim: 256, maxPositions: 1024 });
 * table.dispose();
 * gpu.destroy();
 * ```
 */
export class RopeTable {
  /** What is tabulated. */
  readonly config: Readonly<RopeTableConfig>;
  /** `[maxPositions, headDim]` f32: cos for j < half, then sin. */
  readonly tensor: Tensor;

  private constructor(config: Readonly<RopeTableConfig>, tensor: Tensor) {
    this.config = config;
    this.tensor = tensor;
  }

  /**
   * Computes the table on the host and uploads it.
   *
   * @param gpu Runtime.
   * @param config Base, head dimension and number of positions.
   * @returns The table (the caller disposes it).
   */
  static create(gpu: Gpu, config: RopeTableConfig): RopeTable {
    const frozen = ropeTableConfig(config);
    const data = ropeCosSinTable(frozen);
    return new RopeTable(
      frozen,
      Tensor.fromArray(gpu, data, [frozen.maxPositions, frozen.headDim], "f32"),
    );
  }

  /** Frees the GPU table. */
  dispose(): void {
    this.tensor.dispose();
  }
}

/**
 * Keeps one {@linkcode RopeTable} per (base, headDim, maxPositions) for a model (no globals:
 * the model owns the cache and disposes it).
 *
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { RopeTableCache } from "./rope.ts";
 * const gpu = await Gpu.create();
 * const tables = new RopeTableCache(gpu);
 * const local = tables.get({ base: 1e4, headDim: 256, maxPositions: 1024 });
 * console.log(local === tables.get({ base: 1e4, headDim: 256, maxPositions: 1024 })); // true
 * tables.dispose();
 * gpu.destroy();
 * ```
 */
export class RopeTableCache {
  readonly #gpu: Gpu;
  readonly #tables = new Map<string, RopeTable>();

  /** @param gpu Runtime the tables live on. */
  constructor(gpu: Gpu) {
    this.#gpu = gpu;
  }

  /**
   * @param config Base, head dimension and number of positions.
   * @returns The cached table, created on first use.
   */
  get(config: RopeTableConfig): RopeTable {
    const key = `${config.base}/${config.headDim}/${config.maxPositions}`;
    let table = this.#tables.get(key);
    if (!table) {
      table = RopeTable.create(this.#gpu, config);
      this.#tables.set(key, table);
    }
    return table;
  }

  /** Frees every table. */
  dispose(): void {
    for (const t of this.#tables.values()) t.dispose();
    this.#tables.clear();
  }
}

/** Options of {@linkcode rope}. */
export interface RopeOptions {
  /** The cos/sin table; its base is the RoPE base of this call. */
  readonly table: RopeTable;
  /** Rotate by −angle (the backward pass of RoPE, see `ropeBackward`). Default false. */
  readonly inverse?: boolean;
  /** Write here (f32, same shape as x); pass `x` itself to rotate in place. */
  readonly out?: Tensor;
}

/** The tokens, heads and head dimension of a RoPE launch (see {@linkcode ropeShape}). */
export interface RopeShape {
  /** Tokens: one position each. */
  readonly tokens: number;
  /** Heads per token. */
  readonly heads: number;
  /** The table's head dimension, x's last. */
  readonly headDim: number;
}

/** What {@linkcode ropeShape} checks. */
export interface RopeShapeRequest {
  /** f32 `[..., numHeads, headDim]`. */
  readonly x: Tensor;
  /** i32, one per token. */
  readonly positions: Tensor;
  /** The cos/sin table (its headDim must be x's last dimension). */
  readonly table: RopeTable;
  /** Prefix of the field names in messages (e.g. `"rope."` for `rmsNorm`'s option); default none. */
  readonly field?: string;
}

/**
 * Checks the inputs of a RoPE launch (`rope`, and `rmsNorm`'s fused `rope` option): x f32
 * `[..., numHeads, headDim]` with the table's headDim, positions i32 with one per token.
 *
 * @param kernel Kernel name for the errors.
 * @param request x, positions, table and the field prefix of the messages.
 * @returns Tokens, heads and head dimension.
 * @throws {ShapeError} naming the field that does not fit.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { RopeTable, ropeShape } from "./rope.ts";
 * const gpu = await Gpu.create();
 * const table = RopeTable.create(gpu, { base: 1e4, headDim: 4, maxPositions: 8 });
 * const x = Tensor.zeros(gpu, [3, 2, 4]), positions = Tensor.zeros(gpu, [3], "i32");
 * console.log(ropeShape("rope", { x, positions, table })); // { tokens: 3, heads: 2, headDim: 4 }
 * gpu.destroy();
 * ```
 */
export function ropeShape(kernel: string, request: RopeShapeRequest): RopeShape {
  const { x, positions, table, field = "" } = request;
  const headDim = table.config.headDim;
  expectDtype(kernel, "x", x, ["f32"]);
  expectDtype(kernel, `${field}positions`, positions, ["i32"]);
  if (x.shape.length < 2 || x.shape.at(-1) !== headDim) {
    throw new ShapeError(
      kernel,
      `x must be [..., numHeads, ${headDim}] (the ${field}table's headDim), got ${
        shapeString(x.shape)
      }`,
    );
  }
  const heads = x.shape.at(-2)!;
  const tokens = heads === 0 ? 0 : x.numel / (heads * headDim);
  if (positions.numel !== tokens) {
    throw new ShapeError(
      kernel,
      `${field}positions must hold one i32 per token (${tokens}), got ${
        shapeString(positions.shape)
      }`,
    );
  }
  return { tokens, heads, headDim };
}

/**
 * Applies RoPE to every head of every token.
 *
 * @param x f32 `[..., numHeads, headDim]` (e.g. `[T, H, D]` or `[B, S, H, D]`); the leading
 *   dimensions are the tokens.
 * @param positions i32 with one position per token (`[T]` or `[B, S]`). Positions outside
 *   `[0, table.maxPositions)` give NaN in that token's output.
 * @param options The table, direction and optional output.
 * @returns The rotated tensor (`options.out` when given, else a new tensor).
 * @throws {ShapeError} on wrong shapes or dtypes.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { rope, RopeTable } from "./rope.ts";
 * const gpu = await Gpu.create();
 * const table = RopeTable.create(gpu, { base: 1e4, headDim: 4, maxPositions: 8 });
 * const q = Tensor.fromArray(gpu, new Float32Array([1, 0, 0, 0, 1, 0, 0, 0]), [2, 1, 4]);
 * const pos = Tensor.fromArray(gpu, new Int32Array([0, 1]));
 * const out = rope(q, pos, { table });
 * console.log(await out.read()); // [1, 0, 0, 0, cos 1, 0, sin 1, 0]
 * for (const t of [q, pos, out, table]) t.dispose();
 * gpu.destroy();
 * ```
 */
export function rope(x: Tensor, positions: Tensor, options: RopeOptions): Tensor {
  const kernel = "rope";
  const { table } = options;
  const { tokens, heads, headDim } = ropeShape(kernel, { x, positions, table });
  const inPlace = options.out === x;
  const out = options.out ?? Tensor.empty(x.gpu, x.shape, "f32");
  if (out.dtype !== "f32" || shapeString(out.shape) !== shapeString(x.shape)) {
    throw new ShapeError(
      kernel,
      `out must be f32 ${shapeString(x.shape)}, got ${out.dtype} ${shapeString(out.shape)}`,
    );
  }
  const gpu = x.gpu;
  const rows = tokens * heads;
  const half = headDim / 2;
  gpu.dispatch({
    pipeline: gpu.pipelines.get(kernel, { inPlace }, ropeSource),
    shapes: `x${shapeString(x.shape)} base=${table.config.base}`,
    uniforms: new Uniforms().u32(rows).u32(heads).u32(half).u32(table.config.maxPositions)
      .f32(options.inverse ? -1 : 1).f32(NaN).build(),
    buffers: inPlace
      ? [x.binding(), positions.binding(), table.tensor.binding()]
      : [x.binding(), positions.binding(), table.tensor.binding(), out.binding()],
    workgroups: grid1d(rows * half, WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}
