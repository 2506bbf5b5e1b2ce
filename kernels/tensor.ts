/**
 * GPU tensors: a buffer (or several, for tensors larger than one storage binding) with a shape
 * and a dtype, row-major.
 *
 * @module
 */

import { type DType, fromBf16, storageBytes, toBf16 } from "./dtype.ts";
import { GpuError, ShapeError } from "./errors.ts";
import type { BufferBinding, Gpu } from "./gpu.ts";

/** One slice of a tensor along dimension 0, held in its own buffer. */
export interface TensorPart {
  /** The buffer (its size is a pool size class; bind with {@linkcode TensorPart.bytes}). */
  readonly buffer: GPUBuffer;
  /** First row (index along dim 0) held by this part. */
  readonly rowStart: number;
  /** Rows held by this part. */
  readonly rows: number;
  /** Exact bytes of this part's data. */
  readonly bytes: number;
}

/** Host data accepted by {@linkcode Tensor.fromArray}. */
export type HostArray = Float32Array | Uint16Array | Uint32Array | Int32Array | number[];

/** Host data returned by {@linkcode Tensor.read}: bf16 and f16 are widened to float32. */
export type ReadArray = Float32Array | Uint32Array | Int32Array;

const TENSOR_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Formats a shape for messages: `[3,7]`.
 *
 * @param shape Dimensions.
 * @returns The shape in brackets.
 */
export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

/**
 * A row-major GPU tensor.
 *
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * const gpu = await Gpu.create();
 * const t = Tensor.fromArray(gpu, new Float32Array([1, 2, 3]), [3]);
 * console.log(await t.read()); // Float32Array [1, 2, 3]
 * t.dispose();
 * gpu.destroy();
 * ```
 */
export class Tensor {
  /** The runtime owning the buffers. */
  readonly gpu: Gpu;
  /** Dimensions, row-major. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Element count. */
  readonly numel: number;
  /** Buffers along dim 0; one unless the tensor exceeds a storage binding. */
  readonly parts: readonly TensorPart[];
  readonly #owner: boolean;
  #disposed = false;

  private constructor(
    gpu: Gpu,
    shape: readonly number[],
    dtype: DType,
    parts: TensorPart[],
    owner: boolean,
  ) {
    this.gpu = gpu;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.numel = product(shape);
    this.parts = Object.freeze(parts);
    this.#owner = owner;
  }

  /**
   * Allocates an uninitialised tensor (contents are whatever the pooled buffer held).
   * Tensors bigger than the storage binding limit are split along dim 0.
   *
   * @param gpu Runtime.
   * @param shape Dimensions.
   * @param dtype Element type (default f32).
   * @returns The tensor.
   */
  static empty(gpu: Gpu, shape: readonly number[], dtype: DType = "f32"): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) {
        throw new GpuError(`invalid tensor shape ${shapeString(shape)}`);
      }
    }
    const numel = product(shape);
    const total = storageBytes(dtype, numel);
    const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
    const parts: TensorPart[] = [];
    if (total <= limit || shape.length === 0) {
      parts.push({
        buffer: gpu.pool.acquire(Math.max(total, 4), TENSOR_USAGE, "tensor"),
        rowStart: 0,
        rows: shape[0] ?? 1,
        bytes: total,
      });
    } else {
      const rows = shape[0];
      const rowElems = numel / rows;
      const rowBytes = rowElems * (dtype === "bf16" || dtype === "f16" ? 2 : 4);
      let rowsPerPart = Math.floor(limit / rowBytes);
      if (rowElems % 2 === 1 && rowsPerPart % 2 === 1) rowsPerPart--;
      if (rowsPerPart < 1) {
        throw new GpuError(
          `one row of tensor ${shapeString(shape)} (${rowBytes} bytes) exceeds the storage ` +
            `binding limit of ${limit} bytes`,
        );
      }
      for (let r = 0; r < rows; r += rowsPerPart) {
        const n = Math.min(rowsPerPart, rows - r);
        const bytes = storageBytes(dtype, n * rowElems);
        parts.push({
          buffer: gpu.pool.acquire(bytes, TENSOR_USAGE, "tensor part"),
          rowStart: r,
          rows: n,
          bytes,
        });
      }
    }
    return new Tensor(gpu, shape, dtype, parts, true);
  }

  /**
   * Allocates a tensor filled with zeros.
   *
   * @param gpu Runtime.
   * @param shape Dimensions.
   * @param dtype Element type (default f32).
   * @returns The tensor.
   */
  static zeros(gpu: Gpu, shape: readonly number[], dtype: DType = "f32"): Tensor {
    const t = Tensor.empty(gpu, shape, dtype);
    t.zero();
    return t;
  }

  /**
   * Uploads host data. For `bf16`, a `Uint16Array` is taken as raw bf16 bits and any other array
   * is rounded to bf16 (nearest even); for `f32`, values are stored as float32.
   *
   * @param gpu Runtime.
   * @param data Values, row-major.
   * @param shape Dimensions (default: 1-D of the data's length).
   * @param dtype Element type (default f32, or i32 for an `Int32Array`, u32 for a `Uint32Array`).
   * @returns The tensor.
   */
  static fromArray(
    gpu: Gpu,
    data: HostArray,
    shape: readonly number[] = [data.length],
    dtype?: DType,
  ): Tensor {
    const type: DType = dtype ??
      (data instanceof Int32Array ? "i32" : data instanceof Uint32Array ? "u32" : "f32");
    const t = Tensor.empty(gpu, shape, type);
    t.write(data);
    return t;
  }

  /** Records a zero fill of the whole tensor (stream-ordered, no host data). */
  zero(): void {
    this.#check();
    for (const p of this.parts) this.gpu.clear(p.buffer, 0, Math.max(p.bytes, 4));
  }

  /**
   * Overwrites the whole tensor with host data (see {@linkcode Tensor.fromArray} for dtypes).
   *
   * @param data Values, row-major, exactly `numel` of them.
   */
  write(data: HostArray): void {
    this.#check();
    if (data.length !== this.numel) {
      throw new ShapeError(
        "Tensor.write",
        `expected ${this.numel} values for ${shapeString(this.shape)}, got ${data.length}`,
      );
    }
    let bytes: Uint8Array;
    switch (this.dtype) {
      case "f32":
        bytes = asBytes(data instanceof Float32Array ? data : Float32Array.from(data));
        break;
      case "i32":
        bytes = asBytes(data instanceof Int32Array ? data : Int32Array.from(data));
        break;
      case "u32":
        bytes = asBytes(data instanceof Uint32Array ? data : Uint32Array.from(data));
        break;
      case "bf16":
        bytes = asBytes(data instanceof Uint16Array ? data : toBf16(data));
        break;
      case "f16":
        if (!(data instanceof Uint16Array)) {
          throw new ShapeError("Tensor.write", "f16 tensors take raw Uint16Array bits");
        }
        bytes = asBytes(data);
        break;
    }
    const elemBytes = this.dtype === "bf16" || this.dtype === "f16" ? 2 : 4;
    const rowElems = this.shape.length === 0 ? 1 : this.numel / Math.max(this.shape[0], 1);
    for (const p of this.parts) {
      const start = p.rowStart * rowElems * elemBytes;
      const len = p.rows * rowElems * elemBytes;
      let chunk = bytes.subarray(start, start + len);
      if (chunk.byteLength % 4 !== 0 || chunk.byteOffset % 4 !== 0) {
        const padded = new Uint8Array(Math.ceil(chunk.byteLength / 4) * 4);
        padded.set(chunk);
        chunk = padded;
      }
      if (chunk.byteLength > 0) this.gpu.write(p.buffer, 0, chunk);
    }
  }

  /**
   * Reads the tensor back (one GPU wait). bf16 is widened to float32.
   *
   * @returns The values, row-major.
   */
  async read(): Promise<ReadArray> {
    const raw = await this.readRaw();
    switch (this.dtype) {
      case "f32":
        return new Float32Array(raw.buffer, 0, this.numel);
      case "i32":
        return new Int32Array(raw.buffer, 0, this.numel);
      case "u32":
        return new Uint32Array(raw.buffer, 0, this.numel);
      case "bf16":
        return fromBf16(new Uint16Array(raw.buffer, 0, this.numel));
      case "f16":
        return f16ToF32(new Uint16Array(raw.buffer, 0, this.numel));
    }
  }

  /**
   * Reads the raw storage bytes back (bf16 stays as bits).
   *
   * @returns The bytes of all parts, concatenated.
   */
  async readRaw(): Promise<Uint8Array> {
    this.#check();
    const chunks = await this.gpu.readMany(
      this.parts.map((p) => ({ buffer: p.buffer, offset: 0, size: Math.max(p.bytes, 4) })),
    );
    const elemBytes = this.dtype === "bf16" || this.dtype === "f16" ? 2 : 4;
    const out = new Uint8Array(Math.ceil((this.numel * elemBytes) / 4) * 4 + 4);
    const rowElems = this.shape.length === 0 ? 1 : this.numel / Math.max(this.shape[0], 1);
    this.parts.forEach((p, i) => {
      const len = p.rows * rowElems * elemBytes;
      out.set(new Uint8Array(chunks[i], 0, len), p.rowStart * rowElems * elemBytes);
    });
    return out;
  }

  /** The single buffer of an unsplit tensor. */
  get buffer(): GPUBuffer {
    this.#check();
    if (this.parts.length !== 1) {
      throw new GpuError(
        `tensor ${shapeString(this.shape)} is split into ${this.parts.length} buffers; ` +
          "this kernel needs it in one binding",
      );
    }
    return this.parts[0].buffer;
  }

  /**
   * The binding of an unsplit tensor, sized to its data (so `arrayLength` is exact).
   *
   * @returns Buffer, offset 0 and exact size.
   */
  binding(): BufferBinding {
    return { buffer: this.buffer, offset: 0, size: Math.max(this.parts[0].bytes, 4) };
  }

  /**
   * A view with another shape over the same buffers (same element count). Disposing the view
   * does nothing; the original owns the memory.
   *
   * @param shape New dimensions.
   * @returns The view.
   */
  reshape(shape: readonly number[]): Tensor {
    this.#check();
    if (product(shape) !== this.numel) {
      throw new ShapeError(
        "Tensor.reshape",
        `cannot view ${shapeString(this.shape)} as ${shapeString(shape)}`,
      );
    }
    if (this.parts.length !== 1) {
      throw new GpuError("reshape of a split tensor is not supported");
    }
    return new Tensor(this.gpu, shape, this.dtype, [{
      ...this.parts[0],
      rows: shape[0] ?? 1,
    }], false);
  }

  /** True once disposed. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Gives the buffers back to the pool. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (!this.#owner) return;
    for (const p of this.parts) this.gpu.pool.release(p.buffer);
  }

  #check(): void {
    if (this.#disposed) throw new GpuError(`tensor ${shapeString(this.shape)} used after dispose`);
  }
}

function asBytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    out[i] = exp === 0
      ? sign * 2 ** -14 * (frac / 1024)
      : exp === 31
      ? (frac ? NaN : sign * Infinity)
      : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

/**
 * Reads f32 tensors back to the host in one GPU wait (every part of every tensor in one
 * `readMany`), instead of one wait per tensor.
 *
 * @param tensors f32 tensors of one runtime.
 * @returns Their values, in order.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { readTensorsF32, Tensor } from "./tensor.ts";
 * const gpu = await Gpu.create();
 * const a = Tensor.fromArray(gpu, new Float32Array([1, 2]), [2]);
 * const b = Tensor.fromArray(gpu, new Float32Array([3]), [1]);
 * console.log(await readTensorsF32([a, b])); // [Float32Array [1, 2], Float32Array [3]]
 * gpu.destroy();
 * ```
 */
export async function readTensorsF32(tensors: readonly Tensor[]): Promise<Float32Array[]> {
  if (tensors.length === 0) return [];
  for (const t of tensors) {
    if (t.dtype !== "f32") {
      throw new ShapeError("readTensorsF32", `expected f32 tensors, got ${t.dtype}`);
    }
  }
  const ranges = tensors.flatMap((t) =>
    t.parts.map((p) => ({ buffer: p.buffer, offset: 0, size: Math.max(p.bytes, 4) }))
  );
  const chunks = await tensors[0].gpu.readMany(ranges);
  let at = 0;
  return tensors.map((t) => {
    const out = new Float32Array(t.numel);
    let offset = 0;
    for (const p of t.parts) {
      out.set(new Float32Array(chunks[at++], 0, p.bytes / 4), offset);
      offset += p.bytes / 4;
    }
    return out;
  });
}
