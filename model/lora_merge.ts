/**
 * Merging a LoRA update into a base weight on the host, in float64: `W' = W + s·B·A`, then one
 * rounding to the stored dtype (float32, or bfloat16 straight from the float64 value).
 *
 * @module
 */

/**
 * `W + scale · B·A` in float64.
 *
 * @param w Base weight `[out, in]`, row-major.
 * @param a LoRA A `[r, in]`.
 * @param b LoRA B `[out, r]`.
 * @param dims `{ out, in, rank, scale }`.
 * @returns The merged weight `[out, in]` in float64.
 * @example
 * ```ts
 * import { mergeLoraWeight } from "./lora_merge.ts";
 * const w = mergeLoraWeight(new Float32Array([1, 0, 0, 1]), new Float32Array([1, 2]),
 *   new Float32Array([3, 4]), { out: 2, in: 2, rank: 1, scale: 0.5 });
 * console.log(w); // Float64Array [2.5, 3, 2, 5]
 * ```
 */
export function mergeLoraWeight(
  w: Float32Array,
  a: Float32Array,
  b: Float32Array,
  dims: {
    readonly out: number;
    readonly in: number;
    readonly rank: number;
    readonly scale: number;
  },
): Float64Array {
  const { out, rank, scale } = dims, n = dims.in;
  if (w.length !== out * n || a.length !== rank * n || b.length !== out * rank) {
    throw new RangeError(
      `mergeLoraWeight: W [${out}, ${n}], A [${rank}, ${n}], B [${out}, ${rank}] need ` +
        `${out * n}, ${rank * n}, ${out * rank} values, got ${w.length}, ${a.length}, ${b.length}`,
    );
  }
  const merged = new Float64Array(out * n);
  const delta = new Float64Array(n);
  for (let o = 0; o < out; o++) {
    delta.fill(0);
    for (let r = 0; r < rank; r++) {
      const coef = b[o * rank + r];
      if (coef === 0) continue;
      const row = r * n;
      for (let i = 0; i < n; i++) delta[i] += coef * a[row + i];
    }
    const base = o * n;
    for (let i = 0; i < n; i++) merged[base + i] = w[base + i] + scale * delta[i];
  }
  return merged;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Rounds a float64 value to bfloat16 (nearest, ties to even) with a single rounding: the value
 * is first narrowed to float32 with round-to-odd, which keeps enough bits for the second
 * rounding to be exact.
 *
 * @param x The value.
 * @returns The bf16 bit pattern.
 * @example
 * ```ts
 * import { f64ToBf16Bits } from "./lora_merge.ts";
 * // 1 + 2^-8 + 2^-30 is just above the midpoint between two bf16 values: rounds up.
 * console.log(f64ToBf16Bits(1 + 2 ** -8 + 2 ** -30).toString(16)); // "3f81"
 * ```
 */
export function f64ToBf16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  f32[0] = x;
  let bits = u32[0];
  const narrowed = f32[0];
  if (narrowed !== x && Number.isFinite(narrowed)) {
    // Truncate toward zero, then mark inexact in the last bit (round to odd).
    if (Math.abs(narrowed) > Math.abs(x)) bits -= 1;
    bits |= 1;
  }
  if ((bits & 0x7f800000) === 0x7f800000) return (bits >>> 16) & 0xffff; // ±Inf
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Rounds float64 values to bfloat16 bit patterns.
 *
 * @param values The values.
 * @returns Their bf16 bits.
 */
export function toBf16Bits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f64ToBf16Bits(values[i]);
  return out;
}
