/**
 * Plain-TS reference of RoPE (split-half layout), written independently of the kernel's host
 * table: float32 `inv_freq` and angle exactly as transformers computes them, float64 cos/sin and
 * float64 arithmetic otherwise.
 *
 * @module
 */

/** Options of {@linkcode ropeRef}. */
export interface RopeRefOptions {
  /** Heads per token. */
  readonly numHeads: number;
  /** Head dimension (even). */
  readonly headDim: number;
  /** RoPE base θ. */
  readonly base: number;
  /** Rotate by −angle. Default false. */
  readonly inverse?: boolean;
}

/**
 * Reference RoPE: `out1 = x1·cos − x2·sin`, `out2 = x2·cos + x1·sin` with `x1 = x[:half]`,
 * `x2 = x[half:]` of every head, `angle = f32(position · f32(1 / f32(base^f32(2j/headDim))))`.
 *
 * @param x `[T, numHeads, headDim]` row-major.
 * @param positions One position per token, `[T]`.
 * @param options Heads, head dimension, base, direction.
 * @returns The rotated values (float64).
 * @example
 * ```ts
 * import { ropeRef } from "./rope_ref.ts";
 * const out = ropeRef([1, 0, 0, 0], [1], { numHeads: 1, headDim: 4, base: 1e4 });
 * console.log(out[0] === Math.cos(1), out[2] === Math.sin(1)); // true true
 * ```
 */
export function ropeRef(
  x: ArrayLike<number>,
  positions: ArrayLike<number>,
  options: RopeRefOptions,
): Float64Array {
  const { numHeads, headDim, base } = options;
  const half = headDim / 2;
  const sign = options.inverse ? -1 : 1;
  const out = new Float64Array(x.length);
  for (let t = 0; t < positions.length; t++) {
    for (let j = 0; j < half; j++) {
      const invFreq = Math.fround(
        1 / Math.fround(base ** Math.fround((2 * j) / headDim)),
      );
      const angle = Math.fround(positions[t] * invFreq);
      const c = Math.cos(angle);
      const s = sign * Math.sin(angle);
      for (let h = 0; h < numHeads; h++) {
        const at = (t * numHeads + h) * headDim + j;
        const x1 = x[at];
        const x2 = x[at + half];
        out[at] = x1 * c - x2 * s;
        out[at + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}
