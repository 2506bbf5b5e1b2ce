/**
 * Element types of GPU tensors and bf16 conversion helpers.
 *
 * bf16 tensors are stored as the Gemma checkpoints store them: two 16-bit values packed per
 * u32 word, element 2i in the low half and 2i+1 in the high half (little-endian order).
 *
 * @module
 */

/** Element type of a {@linkcode Tensor}. */
export type DType = "f32" | "bf16" | "f16" | "u32" | "i32";

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = Object.freeze({
  f32: 4,
  bf16: 2,
  f16: 2,
  u32: 4,
  i32: 4,
});

/**
 * Byte size of a tensor's storage: rounded up to a whole u32 word because WGSL reads 16-bit
 * types two per word.
 *
 * @param dtype Element type.
 * @param numel Element count.
 * @returns Storage bytes (a multiple of 4).
 */
export function storageBytes(dtype: DType, numel: number): number {
  return Math.ceil((numel * DTYPE_BYTES[dtype]) / 4) * 4;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * Rounds a float32 value to bfloat16 (round to nearest, ties to even), returning its 16 bits.
 * NaN stays a quiet NaN.
 *
 * @param x A number (taken as float32 first).
 * @returns The bf16 bit pattern.
 * @example
 * ```ts
 * import { bf16BitsToF32, f32ToBf16Bits } from "./dtype.ts";
 * if (bf16BitsToF32(f32ToBf16Bits(1.00390625)) !== 1) throw new Error("ties to even");
 * ```
 */
export function f32ToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) {
    return ((bits >>> 16) | 0x0040) & 0xffff;
  }
  const rounding = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + rounding) >>> 16) & 0xffff;
}

/**
 * Widens bf16 bits to a float32 value (exact).
 *
 * @param bits The 16-bit pattern.
 * @returns The value.
 */
export function bf16BitsToF32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0];
}

/**
 * Rounds every value to bf16 and packs the bits (the storage layout of bf16 tensors).
 *
 * @param values Float values.
 * @returns A `Uint16Array` of bf16 bits, one per value.
 */
export function toBf16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToBf16Bits(values[i]);
  return out;
}

/**
 * Widens bf16 bits to float32.
 *
 * @param bits bf16 bit patterns.
 * @returns The values.
 */
export function fromBf16(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

/**
 * Rounds float values to the nearest bf16 value and returns them as float32 (for references
 * that must see the same inputs as a bf16 kernel).
 *
 * @param values Float values.
 * @returns The bf16-rounded values.
 */
export function roundToBf16(values: ArrayLike<number>): Float32Array {
  return fromBf16(toBf16(values));
}
