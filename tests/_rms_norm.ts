/**
 * Shared setup of the RMSNorm tests: tolerance, eps and the odd `[rows, D]` sweep.
 *
 * @module
 */

/** Largest error against the float64 reference. */
export const TOL = 1e-5;
/** Gemma's `rms_norm_eps`. */
export const EPS = 1e-6;

/** `[rows, D]` of the odd-shape sweep: single rows and columns, primes, Gemma's 1152. */
export const ODD_SHAPES: readonly (readonly [rows: number, d: number])[] = [
  [1, 1],
  [3, 3],
  [7, 7],
  [1, 33],
  [33, 257],
  [7, 1000],
  [257, 33],
  [3, 1152],
  [257, 7],
  [257, 64],
];
