/**
 * Small helpers shared by kernel launchers: uniform packing, grid sizing, WGSL snippets.
 *
 * @module
 */

import { ShapeError } from "./errors.ts";
import { shapeString, type Tensor } from "./tensor.ts";
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
