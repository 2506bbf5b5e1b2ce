/**
 * Shared test helpers: one GPU per test file, seeded random data, tolerance checks.
 *
 * @module
 */

import { SeededRandom } from "../base/random.ts";
import { compareValues } from "./_browser_kernel_checks.ts";
import { Gpu } from "../kernels/gpu.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { type Gemma3Config, gemma3Config } from "../model/config.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import type { RefWeights } from "../model/gemma3_ref.ts";
import {
  type Gemma3Weights,
  LAYER_WEIGHTS,
  type LayerWeightName,
} from "../model/gemma3_weights.ts";
import type { Trainable } from "../model/trainable.ts";

let shared: Promise<Gpu> | null = null;

/** @returns The test process's GPU (created once). */
export function testGpu(): Promise<Gpu> {
  shared ??= Gpu.create();
  return shared;
}

/** The tiny Gemma 3 fixture folder (`WEBTUNE_FIXTURE` overrides it). */
export const FIXTURE: string = Deno.env.get("WEBTUNE_FIXTURE") ??
  new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url).pathname;

let fixture: Promise<Gemma3> | null = null;

/** @returns The fixture model on the test GPU (loaded once per test file). */
export function fixtureModel(): Promise<Gemma3> {
  fixture ??= testGpu().then((gpu) => loadGemma3(FIXTURE, { gpu }));
  return fixture;
}

/** The fixture's `grpo.json`: a GRPO batch with its rewards and reference losses. */
export interface GrpoFixture {
  hyperparameters: {
    num_generations: number;
    beta: number;
    epsilon: number;
    epsilon_high: number;
    eos_id: number;
    pad_id: number;
  };
  prompts: number[][];
  prompt_index_per_row: number[];
  completion_ids: number[][];
  completion_mask: number[][];
  rewards: number[];
  loss_variants: Record<string, { loss: number }>;
}

/** Counts `gpu.readMany` calls (every tensor read goes through it) while `fn` runs. */
export async function countReadbacks<T>(
  gpu: Gpu,
  fn: () => Promise<T>,
): Promise<[T, number]> {
  const original = gpu.readMany;
  let count = 0;
  gpu.readMany = (ranges) => {
    count++;
    return original.call(gpu, ranges);
  };
  try {
    return [await fn(), count];
  } finally {
    gpu.readMany = original;
  }
}

/** Float64 copies of a model's weights (as the GPU holds them) for the reference forward. */
export async function refWeights(weights: Gemma3Weights): Promise<RefWeights> {
  const read64 = async (t: Tensor) => Float64Array.from((await t.read()) as Float32Array);
  const layers: Record<LayerWeightName, Float64Array>[] = [];
  for (const layer of weights.layers) {
    const out = {} as Record<LayerWeightName, Float64Array>;
    for (const name of LAYER_WEIGHTS) out[name] = await read64(layer[name]);
    layers.push(out);
  }
  return {
    embed: await read64(weights.embed),
    layers,
    finalNorm: await read64(weights.finalNorm),
  };
}

/**
 * Calls `check(name, reference weight, gradient)` for every weight of a full-parameter
 * `trainable`, in order: the embedding, each layer's weights, the final norm.
 */
export async function forEachWeightGradient(
  ref: RefWeights,
  trainable: Trainable,
  check: (name: string, weight: Float64Array, grad: Tensor) => Promise<void>,
): Promise<void> {
  await check("embed", ref.embed, trainable.grads.get("model.embed_tokens.weight")!);
  for (let l = 0; l < ref.layers.length; l++) {
    for (const name of LAYER_WEIGHTS) {
      await check(
        `layers.${l}.${name}`,
        ref.layers[l][name],
        trainable.gradientSet.layers![l][name],
      );
    }
  }
  await check("final_norm", ref.finalNorm, trainable.grads.get("model.norm.weight")!);
}

/** @returns What `fn` throws (`undefined` if it returns). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Deterministic PRNG (mulberry32) for test data. */
export function rng(seed: number): () => number {
  const random = SeededRandom.fromState(seed);
  return () => random.next();
}

export { randomArray } from "./_browser_kernel_checks.ts";

/**
 * Asserts `max |got − want| ≤ tol · max(1, max |want|)` (`compareValues`, shared with the
 * browser checks) and returns the max absolute error.
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what = "values",
): number {
  const r = compareValues(what, got, want, tol);
  if (!r.ok) {
    throw new Error(
      `${what}: max |err| / max(1, max |want|) = ${r.maxError} > ${tol} (${r.detail ?? ""})`,
    );
  }
  return r.absoluteError ?? 0;
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
