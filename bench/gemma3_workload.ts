/**
 * Gemma 3 workloads for benches and the device check: FLOP and byte accounting of the forward
 * pass, random bf16 weights of any config that are fast to build, and a measured prefill +
 * decode.
 *
 * FLOPs count the algorithm once: `2·params` per token for the projections, `4·D` per visible
 * (query, key, head) for attention (q·k and p·v), `2·V·D` per token whose logits are computed;
 * norms, RoPE and activations are not counted. Decode streams every weight once per step: its
 * bytes ({@linkcode decodeWeightBytes}) over the step's seconds is the weight traffic a
 * memory-bound decode is measured by.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import { sample } from "../kernels/sampling.ts";
import { toBf16 } from "../kernels/dtype.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { Gemma3Config } from "../model/config.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import {
  type Gemma3Weights,
  LAYER_WEIGHTS,
  type LayerWeightName,
  layerWeightShape,
  NORM_WEIGHTS,
} from "../model/gemma3_weights.ts";
import { DecodeSession, READBACK_EVERY } from "../model/generate.ts";
import { SeededRandom } from "../base/random.ts";

/**
 * Parameters of the decoder layers' projections (q, k, v, o, gate, up, down; norms excluded).
 *
 * @param c Model config.
 * @returns The count.
 * @example
 * ```ts
 * import { layerMatmulParams } from "./gemma3_workload.ts";
 * import { gemma3_1b } from "../model/config.ts";
 * console.log(layerMatmulParams(gemma3_1b())); // 697761792
 * ```
 */
export function layerMatmulParams(c: Gemma3Config): number {
  const q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  return c.numLayers * (c.hiddenSize * (q + 2 * kv) + q * c.hiddenSize +
    3 * c.hiddenSize * c.intermediateSize);
}

/**
 * Keys the query at each index of `[from, to)` sees, summed over the layers (sliding layers see
 * at most the window).
 *
 * @param c Model config.
 * @param from First query index.
 * @param to One past the last.
 * @returns The sum.
 * @example
 * ```ts
 * import { visibleKeys } from "./gemma3_workload.ts";
 * import { gemma3_1b } from "../model/config.ts";
 * console.log(visibleKeys(gemma3_1b(), 0, 2)); // 26 layers × (1 + 2) = 78
 * ```
 */
export function visibleKeys(c: Gemma3Config, from: number, to: number): number {
  let total = 0;
  for (const type of c.layerTypes) {
    for (let i = from; i < to; i++) {
      total += type === "sliding_attention" ? Math.min(i + 1, c.slidingWindow) : i + 1;
    }
  }
  return total;
}

/**
 * FLOPs of running tokens `[from, to)` of one sequence through the decoder, plus the logits of
 * `headTokens` of them.
 *
 * @param c Model config.
 * @param from First token index.
 * @param to One past the last.
 * @param headTokens Tokens whose logits are computed (prefill and decode: 1; log-probs: each).
 * @returns FLOPs.
 * @example
 * ```ts
 * import { forwardFlops } from "./gemma3_workload.ts";
 * import { gemma3_1b } from "../model/config.ts";
 * console.log((forwardFlops(gemma3_1b(), 0, 128, 1) / 1e9).toFixed(1)); // 180.1
 * ```
 */
export function forwardFlops(
  c: Gemma3Config,
  from: number,
  to: number,
  headTokens: number,
): number {
  const attention = 4 * c.headDim * c.numHeads * visibleKeys(c, from, to);
  return 2 * layerMatmulParams(c) * (to - from) + attention +
    2 * c.vocabSize * c.hiddenSize * headTokens;
}

/**
 * Bytes of weights one decode step streams: bf16 projections and tied embedding (the LM head)
 * and the f32 norms.
 *
 * @param c Model config.
 * @returns Bytes.
 * @example
 * ```ts
 * import { decodeWeightBytes } from "./gemma3_workload.ts";
 * import { gemma3_1b } from "../model/config.ts";
 * console.log((decodeWeightBytes(gemma3_1b()) / 1e9).toFixed(2)); // 2.00
 * ```
 */
export function decodeWeightBytes(c: Gemma3Config): number {
  let norms = c.hiddenSize; // final norm
  for (const w of LAYER_WEIGHTS) {
    if (NORM_WEIGHTS.has(w)) norms += c.numLayers * layerWeightShape(c, w)[0];
  }
  return 2 * (layerMatmulParams(c) + c.vocabSize * c.hiddenSize) + 4 * norms;
}

/** Distinct bf16 values the random weights cycle through (a prime: no alignment with rows). */
const PERIOD = 65521;

/** `n` bf16 values of normal(0, std) draws, cycling through {@linkcode PERIOD} of them. */
function cyclicBf16(n: number, std: number, random: SeededRandom): Uint16Array {
  const table = new Float32Array(Math.min(n, PERIOD));
  for (let i = 0; i < table.length; i++) {
    const u = (random.nextUint32() + 0.5) / 4294967296, v = random.next();
    table[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  const out = new Uint16Array(n);
  out.set(toBf16(table));
  for (let filled = table.length; filled < n; filled *= 2) {
    out.copyWithin(filled, 0, Math.min(filled, n - filled));
  }
  return out;
}

/**
 * Random bf16 weights of the config's real shapes (normal(0, std) projections and embedding,
 * zero norms), built in seconds even for Gemma 3 1B: each tensor cycles through 65521 seeded
 * draws. For timing (every kernel's work is the same as with trained weights), not training.
 *
 * @param gpu The device.
 * @param config Model config.
 * @param options Seed (default 0) and std (default 0.02).
 * @returns The weights (free with `disposeGemma3Weights`).
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { gemma3Config } from "../model/config.ts";
 * import { disposeGemma3Weights } from "../model/gemma3_weights.ts";
 * import { randomBf16Weights } from "./gemma3_workload.ts";
 * const gpu = await Gpu.create();
 * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64,
 *   numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
 * const weights = randomBf16Weights(gpu, config, { seed: 1 });
 * console.log(weights.embed.dtype, weights.layers.length); // bf16 2
 * disposeGemma3Weights(weights);
 * gpu.destroy();
 * ```
 */
export function randomBf16Weights(
  gpu: Gpu,
  config: Gemma3Config,
  options: { readonly seed?: number; readonly std?: number } = {},
): Gemma3Weights {
  const random = new SeededRandom(options.seed ?? 0);
  const std = options.std ?? 0.02;
  const tensor = (shape: readonly number[]) =>
    Tensor.fromArray(gpu, cyclicBf16(shape[0] * (shape[1] ?? 1), std, random), shape, "bf16");
  const embed = tensor([config.vocabSize, config.hiddenSize]);
  const layers = Array.from({ length: config.numLayers }, () => {
    const layer = {} as Record<LayerWeightName, Tensor>;
    for (const w of LAYER_WEIGHTS) {
      const shape = layerWeightShape(config, w);
      layer[w] = NORM_WEIGHTS.has(w) ? Tensor.zeros(gpu, shape, "f32") : tensor(shape);
    }
    return Object.freeze(layer);
  });
  const finalNorm = Tensor.zeros(gpu, [config.hiddenSize], "f32");
  return Object.freeze({ embed, layers: Object.freeze(layers), finalNorm });
}

/**
 * A prompt of pseudo-random ids: `<bos>` (2) then ids in `[3, vocabSize)`.
 *
 * @param length Tokens, `<bos>` included (≥ 1).
 * @param vocabSize The model's vocabulary.
 * @param seed Seed.
 * @returns The ids.
 * @example
 * ```ts
 * import { randomPrompt } from "./gemma3_workload.ts";
 * console.log(randomPrompt(4, 100, 1).length); // 4
 * ```
 */
export function randomPrompt(length: number, vocabSize: number, seed: number): number[] {
  const random = new SeededRandom(seed);
  return Array.from(
    { length },
    (_, i) => i === 0 ? 2 : 3 + (random.nextUint32() % (vocabSize - 3)),
  );
}

/** What {@linkcode measurePrefillDecode} measured. */
export interface PrefillDecodeMeasure {
  /** Sequences. */
  readonly batch: number;
  /** Prompt tokens over all sequences. */
  readonly prefillTokens: number;
  /** Seconds from the first prefill launch to its logits' sample read back. */
  readonly prefillSeconds: number;
  /** Decode steps (each feeds one token per sequence). */
  readonly decodeSteps: number;
  /** Seconds of the decode steps, ids read back every `readbackEvery` steps and at the end. */
  readonly decodeSeconds: number;
}

/** Options of {@linkcode measurePrefillDecode}. */
export interface PrefillDecodeOptions {
  /**
   * Decode steps between id readbacks: 8 as `generate()` does (default), or `Infinity` for one
   * wait after the last step (the kernels' own rate, without the per-wait cost of the runtime).
   */
  readonly readbackEvery?: number;
}

/**
 * Prefills `prompts` into a fresh KV cache, then runs greedy decode steps, sampling on the GPU
 * and reading ids back every 8 steps as `generate()` does (or as `options` say); the two phases
 * are timed apart.
 *
 * @param model The model.
 * @param prompts Token ids per sequence.
 * @param steps Decode steps.
 * @param options Readback cadence.
 * @returns Seconds of each phase.
 * @example
 * ```ts ignore
 * const m = await measurePrefillDecode(model, [randomPrompt(128, 262144, 1)], 16);
 * ```
 */
export async function measurePrefillDecode(
  model: Gemma3,
  prompts: readonly (readonly number[])[],
  steps: number,
  options: PrefillDecodeOptions = {},
): Promise<PrefillDecodeMeasure> {
  const gpu = model.gpu;
  const every = options.readbackEvery ?? READBACK_EVERY;
  const longest = Math.max(...prompts.map((p) => p.length));
  const session = new DecodeSession(model, prompts, { maxLength: longest + steps });
  const current = Tensor.empty(gpu, [prompts.length], "u32");
  try {
    await gpu.sync();
    const t0 = performance.now();
    let logits = session.prefill();
    sample(logits, { temperature: 0, out: current });
    logits.dispose();
    await current.read(); // one wait: the prefill is done
    const t1 = performance.now();
    for (let s = 0; s < steps; s++) {
      logits = session.step(current);
      sample(logits, { temperature: 0, out: current });
      logits.dispose();
      if ((s + 1) % every === 0 || s === steps - 1) await current.read();
    }
    const t2 = performance.now();
    return {
      batch: prompts.length,
      prefillTokens: prompts.reduce((n, p) => n + p.length, 0),
      prefillSeconds: (t1 - t0) / 1000,
      decodeSteps: steps,
      decodeSeconds: (t2 - t1) / 1000,
    };
  } finally {
    session.dispose();
    current.dispose();
  }
}

/**
 * Seconds of one prefill of `prompts` (logits of each last token, sampled greedily), from
 * `reps` prefills into fresh caches recorded back to back and one wait, so a runtime's fixed
 * cost per wait (≥ 10 ms in Deno) is shared by all of them.
 *
 * @param model The model.
 * @param prompts Token ids per sequence.
 * @param reps Prefills (≥ 1).
 * @returns Seconds per prefill.
 * @example
 * ```ts ignore
 * const seconds = await measurePrefill(model, prompts, 4);
 * ```
 */
export async function measurePrefill(
  model: Gemma3,
  prompts: readonly (readonly number[])[],
  reps: number,
): Promise<number> {
  const gpu = model.gpu;
  const longest = Math.max(...prompts.map((p) => p.length));
  const ids = Tensor.empty(gpu, [prompts.length], "u32");
  await gpu.sync();
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) {
    const session = new DecodeSession(model, prompts, { maxLength: longest });
    const logits = session.prefill();
    sample(logits, { temperature: 0, out: ids });
    logits.dispose();
    session.dispose(); // stream-ordered: the cache is reused after this prefill's reads
  }
  await ids.read();
  const seconds = (performance.now() - t0) / 1000 / reps;
  ids.dispose();
  return seconds;
}

/**
 * FLOPs of a prefill: each prompt from token 0, logits for its last token.
 *
 * @param c Model config.
 * @param lengths Prompt lengths.
 * @returns FLOPs.
 * @example
 * ```ts
 * import { prefillFlops } from "./gemma3_workload.ts";
 * import { gemma3_1b } from "../model/config.ts";
 * console.log(prefillFlops(gemma3_1b(), [128, 128]) / 1e9 > 360); // true
 * ```
 */
export function prefillFlops(c: Gemma3Config, lengths: readonly number[]): number {
  return lengths.reduce((n, s) => n + forwardFlops(c, 0, s, 1), 0);
}
