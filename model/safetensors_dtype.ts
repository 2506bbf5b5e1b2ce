/**
 * Converting raw little-endian safetensors bytes to typed arrays and back: bf16 and f16 are
 * widened to float32 (exactly) on decode and rounded to nearest-even on encode.
 *
 * @module
 */

import { SAFETENSORS_DTYPE_BYTES, type SafetensorsDtype, SafetensorsError } from "./safetensors.ts";

/** A decoded tensor: float types as Float32Array (F64 as Float64Array), integers natively. */
export type DecodedTensor =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/**
 * Values accepted for one tensor by the writer: raw bytes (`Uint8Array`, any dtype), raw
 * 16-bit patterns (`Uint16Array` for BF16/F16), `BigInt64Array`/`BigUint64Array` for I64/U64,
 * or numbers (any numeric typed array or `number[]`), converted to the dtype.
 */
export type TensorData = Uint8Array | ArrayLike<number> | BigInt64Array | BigUint64Array;

/** Copies bytes into a fresh, aligned buffer so that typed views over it are legal. */
function aligned(bytes: Uint8Array): ArrayBuffer {
  const buf = new ArrayBuffer(bytes.length);
  new Uint8Array(buf).set(bytes);
  return buf;
}

function checkLength(dtype: SafetensorsDtype, bytes: Uint8Array): number {
  const size = SAFETENSORS_DTYPE_BYTES[dtype];
  if (bytes.length % size !== 0) {
    throw new SafetensorsError(
      "invalid_tensor",
      "<bytes>",
      null,
      `${bytes.length} bytes is not a whole number of ${dtype} elements (${size} bytes each)`,
    );
  }
  return bytes.length / size;
}

/**
 * Widens one IEEE half-precision bit pattern (exact).
 *
 * @param bits The 16-bit pattern.
 * @returns The value.
 */
export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

function roundHalfEven(q: number): number {
  const f = Math.floor(q);
  const d = q - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/**
 * Rounds a number to IEEE half precision (nearest, ties to even; overflow → ±Infinity).
 *
 * @param x The value (rounded once, from its float64 value).
 * @returns The 16-bit pattern.
 * @example
 * ```ts
 * import { f16BitsToNumber, numberToF16Bits } from "./safetensors_dtype.ts";
 * console.log(f16BitsToNumber(numberToF16Bits(0.1))); // 0.0999755859375
 * ```
 */
export function numberToF16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // 65520 is halfway to 2^16 and rounds up
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // subnormal; 1024 = min normal
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  let m = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

/** Where checked values come from: the file and tensor a non-finite value is reported in. */
export interface FiniteCheck {
  /** The file (as opened). */
  readonly file: string;
  /** The tensor's name. */
  readonly tensor: string;
  /** Index within the tensor of the first element checked (a tensor read in parts; 0). */
  readonly elementOffset?: number;
}

/** Options of {@linkcode decodeFloat32}. */
export interface DecodeFloat32Options {
  /** Refuse NaN and ±Infinity (checked in the decoding loop), reported as in this tensor. */
  readonly finite?: FiniteCheck;
}

/** The value of a 16-bit float pattern (for messages). */
function halfValue(dtype: SafetensorsDtype, bits: number): number {
  if (dtype === "F16") return f16BitsToNumber(bits);
  return new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
}

function nonFinite(check: FiniteCheck, index: number, value: number): SafetensorsError {
  return new SafetensorsError(
    "non_finite",
    check.file,
    check.tensor,
    `element ${(check.elementOffset ?? 0) + index} is ${value}; expected finite values ` +
      "(the file is damaged, or was saved from a run that diverged)",
  );
}

const BF16_EXP = 0x7f80;
const F16_EXP = 0x7c00;
const F32_EXP = 0x7f800000;

/** The first NaN or ±Infinity found by {@linkcode findNonFinite}. */
export interface NonFiniteValue {
  /** Its element index in the bytes given. */
  readonly index: number;
  /** NaN, Infinity or -Infinity. */
  readonly value: number;
}

/**
 * Finds the first NaN or ±Infinity among raw F32, F64, BF16 or F16 bytes by their exponent
 * bits (all ones), without decoding: one look at each 32-bit word, no copy. Other dtypes hold
 * no such values.
 *
 * @param dtype The stored dtype.
 * @param bytes Raw little-endian bytes (whole elements).
 * @returns The first one, or null when all values are finite.
 * @example
 * ```ts
 * import { findNonFinite } from "./safetensors_dtype.ts";
 * console.log(findNonFinite("BF16", new Uint8Array([0x80, 0x3f, 0x80, 0xff]))); // { index: 1, value: -Infinity }
 * ```
 */
export function findNonFinite(dtype: SafetensorsDtype, bytes: Uint8Array): NonFiniteValue | null {
  if (dtype !== "F32" && dtype !== "BF16" && dtype !== "F16" && dtype !== "F64") return null;
  const n = checkLength(dtype, bytes);
  // Whole 32-bit words when aligned (the usual case); unaligned bytes go element by element.
  const aligned4 = bytes.byteOffset % 4 === 0;
  const words = aligned4 ? Math.floor(bytes.length / 4) : 0;
  const u32 = new Uint32Array(bytes.buffer, aligned4 ? bytes.byteOffset : 0, words);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === "F32" || dtype === "F64") {
    const size = dtype === "F32" ? 4 : 8;
    const read = (i: number) =>
      size === 4 ? view.getFloat32(i * 4, true) : view.getFloat64(i * 8, true);
    if (size === 4) {
      for (let i = 0; i < words; i++) {
        if ((u32[i] & F32_EXP) === F32_EXP) return { index: i, value: read(i) };
      }
    }
    for (let i = size === 4 ? words : 0; i < n; i++) {
      const v = read(i);
      if (!Number.isFinite(v)) return { index: i, value: v };
    }
    return null;
  }
  const exp = dtype === "BF16" ? BF16_EXP : F16_EXP;
  const at = (i: number) => ({ index: i, value: halfValue(dtype, view.getUint16(i * 2, true)) });
  // Two 16-bit values per word, element 2i in the low half.
  for (let i = 0; i < words; i++) {
    const w = u32[i];
    if ((w & exp) === exp) return at(2 * i);
    if (((w >>> 16) & exp) === exp) return at(2 * i + 1);
  }
  for (let i = 2 * words; i < n; i++) {
    if ((view.getUint16(i * 2, true) & exp) === exp) return at(i);
  }
  return null;
}

/**
 * Refuses a NaN or ±Infinity among raw F32, F64, BF16 or F16 bytes ({@linkcode findNonFinite}),
 * for bytes that go to the GPU as stored.
 *
 * @param dtype The stored dtype.
 * @param bytes Raw little-endian bytes (whole elements).
 * @param check The file and tensor to name, and the first element's index in the tensor.
 * @throws {SafetensorsError} `non_finite` naming the file, tensor, element and value.
 * @example
 * ```ts
 * import { checkFinite } from "./safetensors_dtype.ts";
 * const where = { file: "w.safetensors", tensor: "w" };
 * checkFinite("BF16", new Uint8Array([0x80, 0x3f]), where); // 1.0: fine
 * try {
 *   checkFinite("BF16", new Uint8Array([0xc0, 0x7f]), where);
 * } catch (e) {
 *   console.log((e as Error).message); // w.safetensors: tensor "w": element 0 is NaN; …
 * }
 * ```
 */
export function checkFinite(dtype: SafetensorsDtype, bytes: Uint8Array, check: FiniteCheck): void {
  const bad = findNonFinite(dtype, bytes);
  if (bad !== null) throw nonFinite(check, bad.index, bad.value);
}

/**
 * Decodes F32, BF16 or F16 bytes to float32 values (bf16/f16 widen exactly).
 *
 * @param dtype `F32`, `BF16` or `F16`.
 * @param bytes Raw little-endian bytes.
 * @param options `finite`: refuse NaN and ±Infinity, naming this file and tensor.
 * @returns A new Float32Array.
 * @throws {SafetensorsError} `invalid_tensor` for another dtype or a partial element;
 *   `non_finite` with `finite` set.
 * @example
 * ```ts
 * import { decodeFloat32 } from "./safetensors_dtype.ts";
 * console.log(decodeFloat32("BF16", new Uint8Array([0x80, 0x3f]))); // Float32Array [1]
 * ```
 */
export function decodeFloat32(
  dtype: SafetensorsDtype,
  bytes: Uint8Array,
  options: DecodeFloat32Options = {},
): Float32Array {
  const n = checkLength(dtype, bytes);
  const check = options.finite;
  if (dtype === "F32") {
    const out = new Float32Array(aligned(bytes));
    if (check) checkFinite(dtype, new Uint8Array(out.buffer), check);
    return out;
  }
  if (dtype === "BF16") {
    const src = new Uint16Array(aligned(bytes));
    const out = new Float32Array(n);
    const outBits = new Uint32Array(out.buffer);
    if (check) {
      for (let i = 0; i < n; i++) {
        const b = src[i];
        if ((b & BF16_EXP) === BF16_EXP) throw nonFinite(check, i, halfValue(dtype, b));
        outBits[i] = b << 16;
      }
    } else {
      for (let i = 0; i < n; i++) outBits[i] = src[i] << 16;
    }
    return out;
  }
  if (dtype === "F16") {
    const src = new Uint16Array(aligned(bytes));
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const v = f16BitsToNumber(src[i]);
      if (check && !Number.isFinite(v)) throw nonFinite(check, i, v);
      out[i] = v;
    }
    return out;
  }
  throw new SafetensorsError(
    "invalid_tensor",
    "<bytes>",
    null,
    `decodeFloat32 takes F32, BF16 or F16, got ${dtype}`,
  );
}

/**
 * Decodes a tensor's bytes to the natural typed array of its dtype: F32/BF16/F16 →
 * Float32Array, F64 → Float64Array, I32 → Int32Array, I64 → BigInt64Array, U8/BOOL →
 * Uint8Array, and so on.
 *
 * @param dtype The tensor's dtype.
 * @param bytes Raw little-endian bytes.
 * @returns A new typed array.
 * @throws {SafetensorsError} `invalid_tensor` on a partial element.
 */
export function decodeTensor(dtype: SafetensorsDtype, bytes: Uint8Array): DecodedTensor {
  checkLength(dtype, bytes);
  switch (dtype) {
    case "F32":
    case "BF16":
    case "F16":
      return decodeFloat32(dtype, bytes);
    case "F64":
      return new Float64Array(aligned(bytes));
    case "I32":
      return new Int32Array(aligned(bytes));
    case "U32":
      return new Uint32Array(aligned(bytes));
    case "I16":
      return new Int16Array(aligned(bytes));
    case "U16":
      return new Uint16Array(aligned(bytes));
    case "I8":
      return new Int8Array(aligned(bytes));
    case "I64":
      return new BigInt64Array(aligned(bytes));
    case "U64":
      return new BigUint64Array(aligned(bytes));
    case "U8":
    case "BOOL":
      return new Uint8Array(aligned(bytes));
  }
}

const INT_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  BOOL: [0, 1],
  U8: [0, 255],
  I8: [-128, 127],
  I16: [-32768, 32767],
  U16: [0, 65535],
  I32: [-(2 ** 31), 2 ** 31 - 1],
  U32: [0, 2 ** 32 - 1],
  I64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  U64: [0, Number.MAX_SAFE_INTEGER],
};

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function encodeNumbers(dtype: SafetensorsDtype, values: ArrayLike<number>): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case "F32":
      return bytesOf(Float32Array.from(values));
    case "F64":
      return bytesOf(Float64Array.from(values));
    case "BF16": {
      // Rounds the float32 value to bf16, nearest-even (NaN stays a quiet NaN).
      const bits = new Uint32Array(Float32Array.from(values).buffer);
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const b = bits[i];
        const isNaN = (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0;
        out[i] = isNaN ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      return bytesOf(out);
    }
    case "F16": {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = numberToF16Bits(values[i]);
      return bytesOf(out);
    }
    default: {
      const [lo, hi] = INT_RANGES[dtype];
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (!Number.isInteger(v) || v < lo || v > hi) {
          throw new SafetensorsError(
            "invalid_tensor",
            "<values>",
            null,
            `element ${i} = ${v} is not a ${dtype} value (integer in [${lo}, ${hi}])`,
          );
        }
      }
      if (dtype === "I64") return bytesOf(BigInt64Array.from(Array.from(values), BigInt));
      if (dtype === "U64") return bytesOf(BigUint64Array.from(Array.from(values), BigInt));
      const Ctor = {
        BOOL: Uint8Array,
        U8: Uint8Array,
        I8: Int8Array,
        I16: Int16Array,
        U16: Uint16Array,
        I32: Int32Array,
        U32: Uint32Array,
      }[dtype as "U8"];
      return bytesOf(Ctor.from(values));
    }
  }
}

/**
 * The element count `data` holds for `dtype` (bytes count as raw storage).
 *
 * @param dtype Target dtype.
 * @param data Values or raw bytes.
 * @returns Element count, or -1 when raw bytes are not a whole number of elements.
 */
export function tensorDataLength(dtype: SafetensorsDtype, data: TensorData): number {
  if (data instanceof Uint8Array && dtype !== "U8" && dtype !== "BOOL") {
    const size = SAFETENSORS_DTYPE_BYTES[dtype];
    return data.length % size === 0 ? data.length / size : -1;
  }
  return data.length;
}

/**
 * Encodes values as raw little-endian bytes of `dtype` (see {@linkcode TensorData} for what
 * counts as raw). Floats are rounded to nearest-even (BF16 from the float32 value); integers
 * must be in range.
 *
 * @param dtype Target dtype.
 * @param data Values or raw bytes.
 * @returns The bytes (may share memory with `data` when it already is raw bytes).
 * @throws {SafetensorsError} `invalid_tensor` for out-of-range integers or a mismatched kind.
 */
export function encodeTensorData(dtype: SafetensorsDtype, data: TensorData): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    const ok = data instanceof BigInt64Array ? dtype === "I64" : dtype === "U64";
    if (!ok) {
      throw new SafetensorsError(
        "invalid_tensor",
        "<values>",
        null,
        `${data.constructor.name} can only be written as ${
          data instanceof BigInt64Array ? "I64" : "U64"
        }, not ${dtype}`,
      );
    }
    return bytesOf(data);
  }
  if (data instanceof Uint16Array && (dtype === "BF16" || dtype === "F16")) return bytesOf(data);
  if (data instanceof Float32Array && dtype === "F32") return bytesOf(data);
  if (data instanceof Float64Array && dtype === "F64") return bytesOf(data);
  if (data instanceof Int32Array && dtype === "I32") return bytesOf(data);
  return encodeNumbers(dtype, data);
}
