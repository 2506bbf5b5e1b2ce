/**
 * Shared setup of the log-prob tests: the tolerance and one seeded problem — hidden states, an
 * embedding (f32 or bf16) and targets — on the host and the GPU.
 *
 * @module
 */

import { roundToBf16 } from "../kernels/dtype.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { randomArray, rng } from "./_helpers.ts";

/** Largest error against the float64 reference. */
export const TOL = 1e-5;

/** `[tokens, dim, vocab]` of a problem. */
export type LogprobsShape = readonly [tokens: number, dim: number, vocab: number];

/**
 * The odd-shape sweep of the forward and the backward: single tokens, dims and rows, odd and
 * vec4-aligned D, vocabularies across one and several 4096-row chunks.
 */
export const ODD_SHAPES: readonly LogprobsShape[] = [
  [1, 1, 1],
  [3, 7, 33],
  [7, 33, 257],
  [5, 8, 1000],
  [33, 16, 257],
  [2, 6, 1000],
  [9, 64, 4097],
  [1, 7, 33],
  [3, 33, 257],
  [7, 64, 1000],
  [33, 7, 5000],
  [33, 64, 257],
  [3, 64, 5000],
  [7, 33, 1000],
  [33, 7, 33],
];

/** How {@linkcode logprobsProblem} fills a problem. */
export interface ProblemOptions {
  /** The embedding's dtype on the GPU. */
  readonly dtype: "f32" | "bf16";
  /** Half-width of the hidden states' range (default 1). */
  readonly scale?: number;
  /** Target ids (default seeded uniform ids in `[0, V)`). */
  readonly targets?: Int32Array;
}

/** One seeded problem on the host and the GPU. */
export interface LogprobsProblem {
  /** T, D, V for the references. */
  readonly dims: { readonly tokens: number; readonly dim: number; readonly vocab: number };
  /** `[T, D]` hidden states. */
  readonly h: Float32Array;
  /** `[V, D]` embedding as the kernel sees it (bf16-rounded for bf16). */
  readonly e: Float32Array;
  /** `[T]` targets. */
  readonly targets: Int32Array;
  readonly th: Tensor;
  readonly te: Tensor;
  readonly tt: Tensor;
}

/**
 * @param gpu The runtime.
 * @param shape T, D, V.
 * @param options Embedding dtype, hidden-state scale, targets.
 * @returns h (seed 7T + D), E (seed V + D) and targets (seed 3V + T), with their tensors.
 */
export function logprobsProblem(
  gpu: Gpu,
  shape: LogprobsShape,
  options: ProblemOptions,
): LogprobsProblem {
  const [tokens, dim, vocab] = shape;
  const h = randomArray(tokens * dim, tokens * 7 + dim, options.scale ?? 1);
  const e32 = randomArray(vocab * dim, vocab + dim, 1);
  const r = rng(vocab * 3 + tokens);
  const targets = options.targets ??
    Int32Array.from({ length: tokens }, () => Math.floor(r() * vocab));
  return {
    dims: { tokens, dim, vocab },
    h,
    e: options.dtype === "bf16" ? roundToBf16(e32) : e32,
    targets,
    th: Tensor.fromArray(gpu, h, [tokens, dim]),
    te: Tensor.fromArray(gpu, e32, [vocab, dim], options.dtype),
    tt: Tensor.fromArray(gpu, targets, [tokens]),
  };
}
