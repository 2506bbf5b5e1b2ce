/**
 * KV-cache generation over a model's public step API ({@linkcode DecoderModel}, which `Gemma3`
 * implements): a {@linkcode DecodeSession} (prefill a right-padded batch of prompts into the
 * cache, then one token per sequence per step) and {@linkcode generate} (batched prompts of
 * different lengths, GPU sampling, per-sequence EOS stop, streaming);
 * {@linkcode generateWithLogprobs} also returns each sampled token's temperature-1 log-prob
 * (computed by the sampling kernel from the logits it sampled, read back with the ids).
 *
 * Layout: prompt b holds indices `[0, len_b)` (right padding, so RoPE positions are plain
 * indices); the prefill writes only its `len_b` valid K/V rows into the cache (padding never
 * enters a ring). Each decode step feeds the token at index `len_b + s` with position
 * `len_b + s` and the range `[0, len_b + s + 1)`.
 *
 * Readbacks: sampled ids stay on the GPU (the next step embeds them directly) and collect in a
 * `[8, B]` u32 buffer read back once per 8 steps, or at the end: `ceil(maxNewTokens / 8)`
 * readbacks per call at most (log-probs, when asked for, collect in an `[8, B]` f32 buffer read
 * in the same GPU wait). A sequence that hits EOS keeps decoding until the next readback;
 * those extra tokens are discarded.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { sample, samplingParams } from "../kernels/sampling.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { Gemma3Config } from "./config.ts";
import { KvCache, type KvCacheStep } from "./kv_cache.ts";

/** Sampled ids are read back once per this many steps. */
export const READBACK_EVERY = 8;

/** Options of {@linkcode generate} / `Gemma3.generate`. */
export interface GenerateOptions {
  /** Tokens to generate per prompt at most (≥ 0). */
  readonly maxNewTokens: number;
  /** 0 = greedy (argmax, ties → lowest id); default 1. */
  readonly temperature?: number;
  /** Keep the k most likely tokens (0 = off, default). */
  readonly topK?: number;
  /** Nucleus mass (1 = off, default). */
  readonly topP?: number;
  /** RNG seed (u32, default 0). Step s of row b draws `samplingUniform({ seed, step: s, row: b })`. */
  readonly seed?: number;
  /**
   * A sequence stops after generating any of these ids; the EOS id is included in its output
   * (as Hugging Face `generate` returns it, and as Tunix's completion mask counts it).
   * Default: `config.eosTokenIds`; `[]` disables stopping.
   */
  readonly eosIds?: readonly number[];
  /**
   * Streaming: called for every kept token after each readback, in generation order (step by
   * step; within a step, sequences in index order).
   */
  readonly onToken?: (sequence: number, tokenId: number) => void;
}

/**
 * The public step API that KV-cache generation drives; `Gemma3` implements it (see
 * `Gemma3.prefill` and `Gemma3.decodeStep` for the contract of each step).
 *
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { gemma3Config } from "./config.ts";
 * import { Gemma3 } from "./gemma3.ts";
 * import { initGemma3Weights } from "./gemma3_weights.ts";
 * import { type DecoderModel, generate } from "./generate.ts";
 *
 * const gpu = await Gpu.create();
 * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2,
 *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
 * const model: DecoderModel = new Gemma3(gpu, config, initGemma3Weights(gpu, config, { seed: 1 }));
 * const [ids] = await generate(model, [[2, 5]], { maxNewTokens: 3, temperature: 0, eosIds: [] });
 * console.log(ids.length); // 3
 * gpu.destroy();
 * ```
 */
export interface DecoderModel {
  /** Runtime. */
  readonly gpu: Gpu;
  /** Hyperparameters (vocabulary size, EOS ids, layers and heads for the cache). */
  readonly config: Gemma3Config;
  /**
   * Throws unless every id is a valid token id of the model.
   *
   * @param ids Token ids.
   * @param what Name for the message.
   */
  checkIds(ids: ArrayLike<number>, what?: string): void;
  /**
   * Runs the prompts into an empty cache.
   *
   * @param prompts Valid, non-empty token ids per sequence (`cache.batch` of them).
   * @param cache The cache to fill.
   * @returns f32 `[B, V]`: logits after each prompt's last token.
   */
  prefill(prompts: readonly (readonly number[])[], cache: KvCache): Tensor;
  /**
   * Feeds one token per sequence.
   *
   * @param ids u32 or i32 `[B]`.
   * @param cache The cache.
   * @param step Positions `[B]` and attended ranges `[B, 2]` of the fed tokens.
   * @returns f32 `[B, V]`: logits after the fed tokens.
   */
  decodeStep(ids: Tensor, cache: KvCache, step: KvCacheStep): Tensor;
}

/** Thrown for invalid generation inputs; names the field. */
export class GenerateOptionsError extends FieldError {
  override readonly name: string = "GenerateOptionsError";
  /**
   * @param field The offending field (`path`).
   * @param message What was expected.
   */
  constructor(field: string, message: string) {
    super(field, `${field}: ${message}`);
  }
}

/** Thrown when a {@linkcode DecodeSession} is used out of order. */
export class DecodeSessionError extends Error {
  /** @param message What was called out of order. */
  constructor(message: string) {
    super(message);
    this.name = "DecodeSessionError";
  }
}

/**
 * Prefill and single-token decode steps over a KV cache, for a fixed batch of prompts. Each
 * call returns the next-token logits `[B, V]` of every sequence (caller disposes).
 *
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { sample } from "../kernels/sampling.ts";
 * import { gemma3Config } from "./config.ts";
 * import { Gemma3 } from "./gemma3.ts";
 * import { initGemma3Weights } from "./gemma3_weights.ts";
 * import { DecodeSession } from "./generate.ts";
 *
 * const gpu = await Gpu.create();
 * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2,
 *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
 * const gemma = new Gemma3(gpu, config, initGemma3Weights(gpu, config, { seed: 1 }));
 * const session = new DecodeSession(gemma, [[2, 6], [2, 9, 10]], { maxLength: 16 });
 * const logits = session.prefill(); // [2, V]: after each prompt's last token
 * const ids = sample(logits, { temperature: 0 }); // u32 [2]
 * const next = session.step(ids); // [2, V]: after the fed tokens
 * console.log(session.lengths); // [3, 4]
 * for (const t of [logits, ids, next]) t.dispose();
 * session.dispose();
 * gpu.destroy();
 * ```
 */
export class DecodeSession {
  /** The model. */
  readonly model: DecoderModel;
  /** The cache (`maxLength` = longest prompt + tokens that will be fed back). */
  readonly cache: KvCache;
  /** Tokens in each sequence so far (prompt + fed tokens). */
  readonly lengths: number[];
  readonly #prompts: readonly (readonly number[])[];
  readonly #positions: Tensor; // i32 [B]: index of the token being fed (also the cache offset)
  readonly #ranges: Tensor; // i32 [B, 2]: [0, index + 1)
  #prefilled = false;

  /**
   * @param model The model.
   * @param prompts Non-empty token ids per sequence.
   * @param options `maxLength`: the longest sequence the cache must hold (≥ longest prompt).
   * @throws {GenerateOptionsError} on empty prompts, invalid ids or a too-small maxLength.
   */
  constructor(
    model: DecoderModel,
    prompts: readonly (readonly number[])[],
    options: { readonly maxLength: number },
  ) {
    checkPrompts(model, prompts);
    const longest = Math.max(...prompts.map((p) => p.length));
    if (!Number.isInteger(options.maxLength) || options.maxLength < longest) {
      throw new GenerateOptionsError(
        "maxLength",
        `must be an integer ≥ the longest prompt (${longest}), got ${options.maxLength}`,
      );
    }
    this.model = model;
    this.#prompts = prompts;
    this.lengths = prompts.map((p) => p.length);
    this.cache = new KvCache(model.gpu, model.config, {
      batch: prompts.length,
      maxLength: options.maxLength,
    });
    this.#positions = Tensor.empty(model.gpu, [prompts.length], "i32");
    this.#ranges = Tensor.empty(model.gpu, [prompts.length, 2], "i32");
  }

  /**
   * Runs the prompts (right-padded) through the model, filling the cache.
   *
   * @returns f32 `[B, V]`: logits after each prompt's last token.
   */
  prefill(): Tensor {
    if (this.#prefilled) {
      throw new DecodeSessionError("DecodeSession.prefill() may only be called once");
    }
    this.#prefilled = true;
    this.#checkLogitsFit();
    return this.model.prefill(this.#prompts, this.cache);
  }

  /**
   * Feeds one token per sequence (appended at index `lengths[b]`) and advances the lengths.
   *
   * @param ids u32 or i32 `[B]` token ids, e.g. straight from `sample` (no readback).
   * @returns f32 `[B, V]`: logits after the fed tokens.
   */
  step(ids: Tensor): Tensor {
    if (!this.#prefilled) {
      throw new DecodeSessionError("DecodeSession.step() needs prefill() first");
    }
    const b = this.lengths.length;
    if (ids.numel !== b) {
      throw new GenerateOptionsError("ids", `expected ${b} token ids, got ${ids.numel}`);
    }
    const full = this.lengths.findIndex((n) => n >= this.cache.maxLength);
    if (full >= 0) {
      throw new GenerateOptionsError(
        "maxLength",
        `sequence ${full} already holds ${this.cache.maxLength} tokens, the cache's maxLength`,
      );
    }
    this.#checkLogitsFit();
    this.#positions.write(Int32Array.from(this.lengths));
    this.#ranges.write(Int32Array.from(this.lengths.flatMap((n) => [0, n + 1])));
    const logits = this.model.decodeStep(ids, this.cache, {
      positions: this.#positions,
      ranges: this.#ranges,
    });
    for (let i = 0; i < b; i++) this.lengths[i]++;
    return logits;
  }

  /** Gives the cache and the step tensors back to the pool. */
  dispose(): void {
    this.cache.dispose();
    this.#positions.dispose();
    this.#ranges.dispose();
  }

  /** The `[B, V]` logits of a step must fit one storage binding. */
  #checkLogitsFit(): void {
    const { gpu, config: c } = this.model;
    const b = this.lengths.length;
    if (4 * b * c.vocabSize > gpu.limits.maxStorageBufferBindingSize) {
      throw new GenerateOptionsError(
        "prompts",
        `${b} sequences × ${c.vocabSize} logits exceed one storage binding; ` +
          "generate in smaller batches",
      );
    }
  }
}

function checkPrompts(model: DecoderModel, prompts: readonly (readonly number[])[]): void {
  if (!Array.isArray(prompts) || prompts.length === 0) {
    throw new GenerateOptionsError("prompts", "expected at least one prompt");
  }
  prompts.forEach((p, b) => {
    if (!Array.isArray(p) || p.length === 0) {
      throw new GenerateOptionsError(`prompts[${b}]`, "must be a non-empty array of token ids");
    }
    model.checkIds(p, `prompts[${b}]`);
  });
}

/** What {@linkcode generateWithLogprobs} returns. */
export interface GenerationWithLogprobs {
  /** The generated ids per prompt (as {@linkcode generate} returns them). */
  readonly ids: number[][];
  /**
   * Per generated id, its log-probability under the temperature-1 softmax of the logits it was
   * sampled from (whatever `temperature`, `topK` and `topP` sampled it): the same quantity the
   * training forward (`trainForward`) gives for that token. `[prompts][ids[b].length]`.
   */
  readonly logprobs: number[][];
}

/**
 * Generates up to `maxNewTokens` tokens after each prompt with a KV cache, sampling on the GPU.
 *
 * @param model The model.
 * @param prompts Token ids per prompt (non-empty; lengths may differ).
 * @param options Length, sampling, EOS ids and streaming callback.
 * @returns The generated ids per prompt (each ends with its EOS id if it stopped on one).
 * @throws {GenerateOptionsError} on invalid prompts or options.
 * @throws {SamplingOptionsError} on invalid sampling parameters.
 * @example
 * ```ts ignore
 * const gemma = await loadGemma3("models/gemma-3-1b-it");
 * const [ids] = await generate(gemma, [[2, 105, 2364]], { maxNewTokens: 32, temperature: 0 });
 * ```
 */
export async function generate(
  model: DecoderModel,
  prompts: readonly (readonly number[])[],
  options: GenerateOptions,
): Promise<number[][]> {
  return (await run(model, prompts, options, { logprobs: false })).ids;
}

/**
 * {@linkcode generate} that also returns each sampled token's log-probability (temperature 1,
 * the logits it was sampled from), computed on the GPU by the sampling kernel and read back
 * with the ids: the same readbacks as `generate` (one per 8 tokens), and the same ids.
 *
 * @param model The model.
 * @param prompts Token ids per prompt (non-empty; lengths may differ).
 * @param options Length, sampling, EOS ids and streaming callback (as `generate`).
 * @returns The generated ids per prompt and their log-probs.
 * @throws {GenerateOptionsError} on invalid prompts or options.
 * @throws {SamplingOptionsError} on invalid sampling parameters.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { gemma3Config } from "./config.ts";
 * import { Gemma3 } from "./gemma3.ts";
 * import { initGemma3Weights } from "./gemma3_weights.ts";
 * import { generateWithLogprobs } from "./generate.ts";
 *
 * const gpu = await Gpu.create();
 * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2,
 *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
 * const model = new Gemma3(gpu, config, initGemma3Weights(gpu, config, { seed: 1 }));
 * const { ids, logprobs } = await generateWithLogprobs(model, [[2, 5]], {
 *   maxNewTokens: 3,
 *   temperature: 0.9,
 *   topK: 8,
 *   seed: 3,
 *   eosIds: [],
 * });
 * console.log(ids[0].length, logprobs[0].length); // 3 3
 * gpu.destroy();
 * ```
 */
export async function generateWithLogprobs(
  model: DecoderModel,
  prompts: readonly (readonly number[])[],
  options: GenerateOptions,
): Promise<GenerationWithLogprobs> {
  const { ids, logprobs } = await run(model, prompts, options, { logprobs: true });
  return { ids, logprobs: logprobs ?? ids.map(() => []) };
}

/** The generation loop of {@linkcode generate} and {@linkcode generateWithLogprobs}. */
async function run(
  model: DecoderModel,
  prompts: readonly (readonly number[])[],
  options: GenerateOptions,
  want: { readonly logprobs: boolean },
): Promise<{ ids: number[][]; logprobs: number[][] | null }> {
  const maxNewTokens = options?.maxNewTokens;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new GenerateOptionsError("maxNewTokens", `must be an integer ≥ 0, got ${maxNewTokens}`);
  }
  const params = samplingParams({
    temperature: options.temperature,
    topK: options.topK,
    topP: options.topP,
    seed: options.seed,
  });
  const eosIds = options.eosIds ?? model.config.eosTokenIds;
  if (!Array.isArray(eosIds) || !eosIds.every((id) => Number.isInteger(id))) {
    throw new GenerateOptionsError("eosIds", `must be a list of token ids, got ${eosIds}`);
  }
  checkPrompts(model, prompts);
  const out: number[][] = prompts.map(() => []);
  const outLogp: number[][] | null = want.logprobs ? prompts.map(() => []) : null;
  if (maxNewTokens === 0) return { ids: out, logprobs: outLogp };
  const gpu = model.gpu;
  const batch = prompts.length;
  const eos = new Set(eosIds);
  const done: boolean[] = prompts.map(() => false);
  // The last sampled token is never fed back, so the cache needs maxNewTokens − 1 more slots.
  const maxLength = Math.max(...prompts.map((p) => p.length)) + maxNewTokens - 1;
  const session = new DecodeSession(model, prompts, { maxLength });
  const current = Tensor.empty(gpu, [batch], "u32"); // ids being fed: [B]
  const history = Tensor.empty(gpu, [READBACK_EVERY, batch], "u32"); // unread ids: [8, B]
  // With log-probs: the unread [8, B], written by the same sample call, read back with the ids.
  const logpHistory = outLogp ? Tensor.empty(gpu, [READBACK_EVERY, batch], "f32") : null;
  try {
    let logits = session.prefill();
    let pending = 0;
    for (let s = 0; s < maxNewTokens; s++) {
      const row = pending * batch;
      sample(logits, {
        ...params,
        step: s,
        out: history,
        outOffset: row,
        ...(logpHistory ? { logprobsOut: logpHistory } : {}),
      });
      logits.dispose();
      gpu.copy(history.buffer, 4 * row, current.buffer, 0, 4 * batch);
      pending++;
      const last = s === maxNewTokens - 1;
      if (pending === READBACK_EVERY || last) {
        const size = 4 * pending * batch;
        const [raw, rawLogp] = await gpu.readMany([
          { buffer: history.buffer, offset: 0, size },
          ...(logpHistory ? [{ buffer: logpHistory.buffer, offset: 0, size }] : []),
        ]);
        const ids = new Uint32Array(raw);
        const logps = rawLogp ? new Float32Array(rawLogp) : null;
        for (let r = 0; r < pending; r++) {
          for (let b = 0; b < batch; b++) {
            if (done[b]) continue;
            const id = ids[r * batch + b];
            out[b].push(id);
            if (outLogp && logps) outLogp[b].push(logps[r * batch + b]);
            options.onToken?.(b, id);
            if (eos.has(id)) done[b] = true;
          }
        }
        pending = 0;
        if (done.every(Boolean)) break;
      }
      if (!last) logits = session.step(current);
    }
  } finally {
    session.dispose();
    current.dispose();
    history.dispose();
    logpHistory?.dispose();
  }
  return { ids: out, logprobs: outLogp };
}
