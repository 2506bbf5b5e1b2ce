/**
 * Checks shared by the attention launchers (prefill, decode, backward): the scale and window
 * options, the head grouping, the ranges tensor, and the rank-4 view of `[B, S, heads, D]`
 * tensors given as `[S, heads, D]`.
 *
 * @module
 */

import { expectDtype, expectShape } from "./_launch.ts";
import { ShapeError } from "./errors.ts";
import type { Tensor } from "./tensor.ts";

/**
 * @param t A `[B, S, heads, D]` or `[S, heads, D]` tensor.
 * @returns Its dimensions as `[B, S, heads, D]` (B = 1 for rank 3).
 */
export function shape4(t: Tensor): number[] {
  return t.shape.length === 3 ? [1, ...t.shape] : [...t.shape];
}

/**
 * Checks the score scale and the sliding window of an attention call.
 *
 * @param kernel Kernel name for the message.
 * @param options The call's `scale` and `window`.
 * @returns The window (0 = global).
 * @throws {ShapeError} on a non-finite scale or a window that is not an integer ≥ 0.
 */
export function checkScaleWindow(
  kernel: string,
  options: { readonly scale: number; readonly window?: number },
): number {
  if (!Number.isFinite(options.scale)) {
    throw new ShapeError(kernel, `options.scale must be a finite number, got ${options.scale}`);
  }
  const window = options.window ?? 0;
  if (!(Number.isInteger(window) && window >= 0)) {
    throw new ShapeError(kernel, `options.window must be an integer ≥ 0, got ${window}`);
  }
  return window;
}

/**
 * Checks that the query heads split evenly over the KV heads.
 *
 * @param kernel Kernel name for the message.
 * @param heads Query heads H.
 * @param kvHeads KV heads.
 * @throws {ShapeError} unless H is a positive multiple of kvHeads.
 */
export function checkHeads(kernel: string, heads: number, kvHeads: number): void {
  if (kvHeads === 0 || heads % kvHeads !== 0) {
    throw new ShapeError(
      kernel,
      `numHeads (${heads}) must be a positive multiple of numKvHeads (${kvHeads})`,
    );
  }
}

/**
 * Checks an optional ranges tensor: i32 `[B, 2]`.
 *
 * @param kernel Kernel name for the message.
 * @param ranges The tensor, if any.
 * @param batch B.
 * @throws {ShapeError} on another dtype or shape.
 */
export function checkRanges(kernel: string, ranges: Tensor | undefined, batch: number): void {
  if (!ranges) return;
  expectDtype(kernel, "ranges", ranges, ["i32"]);
  expectShape(kernel, "ranges", ranges, [batch, 2]);
}
