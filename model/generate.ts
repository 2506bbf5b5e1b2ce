/**
 * KV-cache generation for Gemma 3: a {@linkcode DecodeSession} (prefill a right-padded batch of
 * prompts into the cache, then one token per sequence per step) and {@linkcode generate}
 * (batched prompts of different lengths, GPU sampling, per-sequence EOS stop, streaming).
 *
 * Layout: prompt b holds indices `[0, len_b)` (right padding, so RoPE positions are plain
 * indices); the prefill writes only its `len_b` valid K/V rows into the cache (padding never
 * enters a ring). Each decode step feeds the token at index `len_b + s` with position
 * `len_b + s` and the range `[0, len_b + s + 1)`.
 *
 * Readbacks: sampled ids stay on the GPU (the next step embeds them directly) and collect in a
 * `[8, B]` u32 buffer read back once per 8 steps, or at the end: `ceil(maxNewTokens / 8)`
 * readbacks per call at most. A sequence that hits EOS keeps decoding until the next readback;
 * those extra tokens are discarded.
 *
 * @module
 */

import { attentionDecode, writeKvCache } from "../kernels/attention.ts";
import { embedding } from "../kernels/embedding.ts";
import { matmul } from "../kernels/matmul.ts";
import { rmsNorm } from "../kernels/rms_norm.ts";
import { sample } from "../kernels/sampling.ts";
import { samplingParams } from "../kernels/sampling_ref.ts";
import { Tensor } from "../kernels/tensor.ts";
import { disposeTokenBatch, makeTokenBatch } from "./batch.ts";
import type { Gemma3 } from "./gemma3.ts";
import { KvCache } from "./kv_cache.ts";
import { type AttendFn, decoderLayerForward } from "./layer.ts";

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
  /** RNG seed (u32, default 0). Step s of row b draws `samplingUniform(seed, s, b)`. */
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

/** Thrown for invalid generation inputs; names the field. */
export class GenerateOptionsError extends Error {
  /** The offending field. */
  readonly field: string;
  /**
   * @param field The offending field.
   * @param message What was expected.
   */
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = "GenerateOptionsError";
    this.field = field;
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
 * ```ts ignore
 * const session = new DecodeSession(gemma, [[2, 651], [2, 9, 10]], { maxLength: 16 });
 * const logits = session.prefill();              // [2, V]: after each prompt's last token
 * const ids = sample(logits, { temperature: 0 }); // u32 [2]
 * const next = session.step(ids);                 // [2, V]: after the fed tokens
 * session.dispose();
 * ```
 */
export class DecodeSession {
  /** The model. */
  readonly model: Gemma3;
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
    model: Gemma3,
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
    const { gpu, config: c } = this.model;
    const batch = makeTokenBatch(gpu, this.#prompts);
    const counts = Tensor.fromArray(gpu, Int32Array.from(this.lengths));
    const h = embedding(this.model.weights.embed, batch.ids, { scale: this.model.embedScale });
    const attend = this.model.prefillAttend(batch);
    const kvShape = [batch.batch, batch.seq, c.numKvHeads, c.headDim];
    this.#layers(h, batch.positions, (l) => (q, k, v, window, wantLse) => {
      // subtle: counts = len_b, so right padding never pushes valid tokens out of a ring.
      writeKvCache(this.cache.layers[l], { k: k.reshape(kvShape), v: v.reshape(kvShape) }, {
        counts,
      });
      return attend(q, k, v, window, wantLse);
    });
    const lastRows = Tensor.fromArray(
      gpu,
      Int32Array.from(this.lengths, (n, b) => b * batch.seq + n - 1),
    );
    const last = embedding(h, lastRows); // gathers row b·S + len_b − 1: [B, D]
    for (const t of [h, counts, lastRows]) t.dispose();
    disposeTokenBatch(batch);
    return this.#head(last);
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
    const { config: c } = this.model;
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
    this.#positions.write(Int32Array.from(this.lengths));
    this.#ranges.write(Int32Array.from(this.lengths.flatMap((n) => [0, n + 1])));
    const h = embedding(this.model.weights.embed, ids, { scale: this.model.embedScale });
    const kvShape = [b, 1, c.numKvHeads, c.headDim];
    this.#layers(h, this.#positions, (l) => (q, k, v, window, wantLse) => {
      const cache = this.cache.layers[l];
      writeKvCache(cache, { k: k.reshape(kvShape), v: v.reshape(kvShape) }, {
        offsets: this.#positions,
      });
      return attentionDecode(q, cache, {
        scale: this.model.attentionScale,
        window,
        ranges: this.#ranges,
        returnLse: wantLse,
      });
    });
    for (let i = 0; i < b; i++) this.lengths[i]++;
    return this.#head(h);
  }

  /** Gives the cache and the step tensors back to the pool. */
  dispose(): void {
    this.cache.dispose();
    this.#positions.dispose();
    this.#ranges.dispose();
  }

  #layers(h: Tensor, positions: Tensor, attendFor: (layer: number) => AttendFn): void {
    for (let l = 0; l < this.model.config.numLayers; l++) {
      const ctx = this.model.layerContext(l, this.cache.maxLength);
      decoderLayerForward(ctx, h, positions, attendFor(l));
    }
  }

  /** Final norm and tied head of `[B, D]` hidden rows (consumed) → logits `[B, V]`. */
  #head(h: Tensor): Tensor {
    const { gpu, config: c, weights } = this.model;
    const bytes = 4 * h.shape[0] * c.vocabSize;
    if (bytes > gpu.limits.maxStorageBufferBindingSize) {
      h.dispose();
      throw new GenerateOptionsError(
        "prompts",
        `${h.shape[0]} sequences × ${c.vocabSize} logits exceed one storage binding; ` +
          "generate in smaller batches",
      );
    }
    const x = rmsNorm(h, weights.finalNorm, { eps: c.rmsNormEps });
    h.dispose();
    const logits = matmul(x, weights.embed); // [B, V]
    x.dispose();
    return logits;
  }
}

function checkPrompts(model: Gemma3, prompts: readonly (readonly number[])[]): void {
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
  model: Gemma3,
  prompts: readonly (readonly number[])[],
  options: GenerateOptions,
): Promise<number[][]> {
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
  if (maxNewTokens === 0) return out;
  const gpu = model.gpu;
  const batch = prompts.length;
  const eos = new Set(eosIds);
  const done: boolean[] = prompts.map(() => false);
  // The last sampled token is never fed back, so the cache needs maxNewTokens − 1 more slots.
  const maxLength = Math.max(...prompts.map((p) => p.length)) + maxNewTokens - 1;
  const session = new DecodeSession(model, prompts, { maxLength });
  const current = Tensor.empty(gpu, [batch], "u32"); // ids being fed: [B]
  const history = Tensor.empty(gpu, [READBACK_EVERY, batch], "u32"); // unread ids: [8, B]
  try {
    let logits = session.prefill();
    let pending = 0;
    for (let s = 0; s < maxNewTokens; s++) {
      sample(logits, { ...params, step: s, out: current });
      logits.dispose();
      gpu.copy(current.buffer, 0, history.buffer, 4 * pending * batch, 4 * batch);
      pending++;
      const last = s === maxNewTokens - 1;
      if (pending === READBACK_EVERY || last) {
        const [raw] = await gpu.readMany([
          { buffer: history.buffer, offset: 0, size: 4 * pending * batch },
        ]);
        const ids = new Uint32Array(raw);
        for (let r = 0; r < pending; r++) {
          for (let b = 0; b < batch; b++) {
            if (done[b]) continue;
            const id = ids[r * batch + b];
            out[b].push(id);
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
  }
  return out;
}
