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

/**
 * Decodes F32, BF16 or F16 bytes to float32 values (bf16/f16 widen exactly).
 *
 * @param dtype `F32`, `BF16` or `F16`.
 * @param bytes Raw little-endian bytes.
 * @returns A new Float32Array.
 * @throws {SafetensorsError} `invalid_tensor` for another dtype or a partial element.
 * @example
 * ```ts
 * import { decodeFloat32 } from "./safetensors_dtype.ts";
 * console.log(decodeFloat32("BF16", new Uint8Array([0x80, 0x3f]))); // Float32Array [1]
 * ```
 */
export function decodeFloat32(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
  const n = checkLength(dtype, bytes);
  if (dtype === "F32") return new Float32Array(aligned(bytes));
  if (dtype === "BF16") {
    const src = new Uint16Array(aligned(bytes));
    const out = new Float32Array(n);
    const outBits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) outBits[i] = src[i] << 16;
    return out;
  }
  if (dtype === "F16") {
    const src = new Uint16Array(aligned(bytes));
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = f16BitsToNumber(src[i]);
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
