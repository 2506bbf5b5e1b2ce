/**
 * Shared test helpers: one GPU per test file, seeded random data, tolerance checks.
 *
 * @module
 */

import { SeededRandom } from "../base/random.ts";
import { Gpu } from "../kernels/gpu.ts";
import { type Gemma3Config, gemma3Config } from "../model/config.ts";

let shared: Promise<Gpu> | null = null;

/** @returns The test process's GPU (created once). */
export function testGpu(): Promise<Gpu> {
  shared ??= Gpu.create();
  return shared;
}

/** Deterministic PRNG (mulberry32) for test data. */
export function rng(seed: number): () => number {
  const random = SeededRandom.fromState(seed);
  return () => random.next();
}

/** @returns `n` uniform values in [-scale, scale). */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

/**
 * Asserts `max |got − want| ≤ tol · max(1, max |want|)` and returns the max error.
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what = "values",
): number {
  if (got.length !== want.length) {
    throw new Error(`${what}: length ${got.length} != ${want.length}`);
  }
  let maxErr = 0;
  let maxRef = 0;
  let worst = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= maxErr)) {
      maxErr = Number.isNaN(e) ? Infinity : e;
      worst = i;
    }
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  const bound = tol * Math.max(1, maxRef);
  if (!(maxErr <= bound)) {
    throw new Error(
      `${what}: max |err| ${maxErr} > ${bound} at ${worst} (got ${got[worst]}, want ${
        want[worst]
      })`,
    );
  }
  return maxErr;
}

/**
 * A tiny from-scratch Gemma 3 (vocab 37, D 16): one sliding (window 3) and one global layer, GQA
 * (4 query / 2 KV heads of 8), query_pre_attn_scalar 6 ≠ head_dim, bos 2, eos 1, pad 0.
 */
export const TINY_CONFIG: Gemma3Config = gemma3Config({
  vocabSize: 37,
  hiddenSize: 16,
  intermediateSize: 24,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  slidingWindow: 3,
  layerTypes: ["sliding_attention", "full_attention"],
  queryPreAttnScalar: 6,
  bosTokenId: 2,
  eosTokenIds: [1],
  padTokenId: 0,
});
