/**
 * Small helpers shared by kernel launchers: uniform packing, grid sizing, WGSL snippets.
 *
 * @module
 */

import { ShapeError } from "./errors.ts";
import { shapeString, Tensor, type TensorPart } from "./tensor.ts";
import type { BufferBinding } from "./gpu.ts";
import type { DType } from "./dtype.ts";

/**
 * Packs kernel parameters into a uniform block in declaration order: every field is 4 bytes
 * (`u32`, `i32` or `f32`), matching a WGSL struct of scalar members.
 */
export class Uniforms {
  readonly #view = new DataView(new ArrayBuffer(256));
  #at = 0;

  /** @param v Unsigned value. @returns this. */
  u32(v: number): this {
    this.#view.setUint32(this.#at, v >>> 0, true);
    this.#at += 4;
    return this;
  }

  /** @param v Signed value. @returns this. */
  i32(v: number): this {
    this.#view.setInt32(this.#at, v | 0, true);
    this.#at += 4;
    return this;
  }

  /** @param v Float value (rounded to float32). @returns this. */
  f32(v: number): this {
    this.#view.setFloat32(this.#at, v, true);
    this.#at += 4;
    return this;
  }

  /** @returns The packed bytes (256, the slot size). */
  build(): ArrayBuffer {
    return this.#view.buffer as ArrayBuffer;
  }
}

/**
 * Splits a 1-D launch of `n` invocations into a 2-D grid that respects the per-dimension limit.
 * Kernels recover the linear index as `gid.x + gid.y * nwg.x * WG` (see {@linkcode WGSL_LINEAR}).
 *
 * @param n Invocations needed.
 * @param workgroupSize Invocations per workgroup.
 * @param maxPerDim The device's `maxComputeWorkgroupsPerDimension`.
 * @returns Workgroup counts [x, y].
 */
export function grid1d(n: number, workgroupSize: number, maxPerDim = 65535): [number, number] {
  const groups = Math.ceil(n / workgroupSize);
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}

/** WGSL: `fn linear_index(gid, nwg, wg) -> u32` for launches sized by {@linkcode grid1d}. */
export const WGSL_LINEAR = `
fn linear_index(gid: vec3<u32>, nwg: vec3<u32>, wg: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg;
}`;

/**
 * WGSL: read element `i` of a bf16 tensor stored two per u32 word (low half first).
 * Expects the array to be passed by pointer-free name substitution: `bf16_at_<name>(i)`.
 *
 * @param name The storage variable (`array<u32>`).
 * @returns The WGSL function source.
 */
export function wgslBf16Reader(name: string): string {
  return `
fn bf16_at_${name}(i: u32) -> f32 {
  let w = ${name}[i >> 1u];
  return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u));
}`;
}

/**
 * Throws a `ShapeError` unless the tensor has the given shape (`-1` = any size).
 *
 * @param kernel Kernel name for the message.
 * @param name Argument name.
 * @param t The tensor.
 * @param shape Expected dimensions.
 */
export function expectShape(
  kernel: string,
  name: string,
  t: Tensor,
  shape: readonly number[],
): void {
  const ok = t.shape.length === shape.length && shape.every((d, i) => d < 0 || t.shape[i] === d);
  if (!ok) {
    throw new ShapeError(
      kernel,
      `${name} must have shape ${shapeString(shape.map((d) => (d < 0 ? "*" : d) as number))}, ` +
        `got ${shapeString(t.shape)}`,
    );
  }
}

/**
 * Throws a `ShapeError` unless the tensor has one of the dtypes.
 *
 * @param kernel Kernel name for the message.
 * @param name Argument name.
 * @param t The tensor.
 * @param dtypes Accepted dtypes.
 */
export function expectDtype(
  kernel: string,
  name: string,
  t: Tensor,
  dtypes: readonly DType[],
): void {
  if (!dtypes.includes(t.dtype)) {
    throw new ShapeError(kernel, `${name} must be ${dtypes.join(" or ")}, got ${t.dtype}`);
  }
}

/**
 * Whether two single-part tensors share their GPU buffer (one buffer cannot be bound twice
 * with write access, so launchers switch to an in-place variant).
 *
 * @param a A tensor.
 * @param b Another tensor.
 * @returns True when both are unsplit and use the same buffer.
 */
export function sameBuffer(a: Tensor, b: Tensor): boolean {
  return a.parts.length === 1 && b.parts.length === 1 && a.parts[0].buffer === b.parts[0].buffer;
}

/**
 * The output of a launch: `out` when given (checked to be f32 with the shape's element count),
 * else a new f32 tensor of `shape` on `like`'s device.
 *
 * @param kernel Kernel name for the message.
 * @param like A tensor of the launch (its device allocates the output).
 * @param shape The output's shape.
 * @param out The caller's output tensor, if any.
 * @returns The output tensor.
 * @throws {ShapeError} when `out` is not f32 or holds another element count.
 */
export function f32Output(
  kernel: string,
  like: Tensor,
  shape: readonly number[],
  out?: Tensor,
): Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  const o = out ?? Tensor.empty(like.gpu, shape, "f32");
  if (o.dtype !== "f32" || o.numel !== numel) {
    throw new ShapeError(
      kernel,
      `out must be f32 ${shapeString(shape)}, got ${o.dtype} ${shapeString(o.shape)}`,
    );
  }
  return o;
}

/**
 * The binding of one part of a split tensor, exactly its bytes (at least 4).
 *
 * @param part A part of a tensor.
 * @returns Its whole buffer range.
 */
export function partBinding(part: TensorPart): BufferBinding {
  return { buffer: part.buffer, offset: 0, size: Math.max(part.bytes, 4) };
}
