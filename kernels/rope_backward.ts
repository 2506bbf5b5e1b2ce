/**
 * Backward of RoPE ({@linkcode rope}): a rotation by `+angle` is orthogonal, so the gradient of
 * its input is the output gradient rotated by `−angle` — the same kernel with the sine negated.
 *
 * @module
 */

import { rope, type RopeTable } from "./rope.ts";
import type { Tensor } from "./tensor.ts";

/** Options of {@linkcode ropeBackward}. */
export interface RopeBackwardOptions {
  /** The cos/sin table the forward used. */
  readonly table: RopeTable;
  /** Write dx here (f32, same shape as dy); pass `dy` itself to rotate in place. */
  readonly out?: Tensor;
}

/**
 * Gradient of {@linkcode rope}'s input: `dx1 = dy1·cos + dy2·sin`, `dx2 = dy2·cos − dy1·sin`
 * (the rotation by −angle) for every head of every token.
 *
 * @param dy f32 `[..., numHeads, headDim]`, the gradient of rope's output.
 * @param positions i32 with one position per token, as given to the forward.
 * @param options The forward's table and an optional output (may be `dy`: in place).
 * @returns dx (`options.out` when given, else a new tensor).
 * @throws {ShapeError} on wrong shapes or dtypes (named as kernel `rope`).
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { rope, RopeTable } from "./rope.ts";
 * import { ropeBackward } from "./rope_backward.ts";
 * const gpu = await Gpu.create();
 * const table = RopeTable.create(gpu, { base: 1e4, headDim: 4, maxPositions: 8 });
 * const x = Tensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [1, 1, 4]);
 * const pos = Tensor.fromArray(gpu, new Int32Array([5]));
 * const back = ropeBackward(rope(x, pos, { table }), pos, { table });
 * console.log(await back.read()); // ≈ [1, 2, 3, 4]
 * gpu.destroy();
 * ```
 */
export function ropeBackward(dy: Tensor, positions: Tensor, options: RopeBackwardOptions): Tensor {
  return rope(dy, positions, { ...options, inverse: true });
}
