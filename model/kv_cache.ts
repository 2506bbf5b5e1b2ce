/**
 * The KV cache of a batch of sequences: per layer, keys and values `[B, C, KvH, hd]` (f32) where
 * token index p of a sequence lives in slot `p % C`. Global layers keep every position
 * (`C` = the longest sequence); sliding layers keep only the last `slidingWindow` positions (a
 * ring, `C = min(slidingWindow, longest)`), which is all their attention ever reads.
 *
 * The buffers come from the runtime's pool, so the allocation tracker (`gpu.memory()`) counts
 * them. Slots are not cleared: attention only reads indices that were written.
 *
 * @module
 */

import type { KvPair } from "../kernels/attention.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { Gemma3Config } from "./config.ts";

/**
 * Where one decode step writes and reads in a {@linkcode KvCache}: one new token per sequence.
 * `Gemma3.decodeStep` takes it; `DecodeSession` keeps one and rewrites it every step.
 */
export interface KvCacheStep {
  /** i32 `[B]`: index of the token being fed (its RoPE position and its cache offset). */
  readonly positions: Tensor;
  /** i32 `[B, 2]`: the index range `[0, position + 1)` each sequence attends to. */
  readonly ranges: Tensor;
}

/** Thrown when a cache cannot be built for the requested batch and length. */
export class KvCacheError extends Error {
  /** @param message What is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "KvCacheError";
  }
}

/**
 * Slots a layer's cache needs for sequences of up to `maxLength` tokens.
 *
 * @param config Model config.
 * @param layer Layer index.
 * @param maxLength Longest sequence (prompt + fed-back tokens).
 * @returns `maxLength` on global layers, `min(slidingWindow, maxLength)` on sliding layers.
 * @example
 * ```ts
 * import { gemma3_1b } from "./config.ts";
 * import { kvCacheSlots } from "./kv_cache.ts";
 * kvCacheSlots(gemma3_1b(), 0, 2048); // 512 (sliding layer)
 * kvCacheSlots(gemma3_1b(), 5, 2048); // 2048 (global layer)
 * ```
 */
export function kvCacheSlots(config: Gemma3Config, layer: number, maxLength: number): number {
  return config.layerTypes[layer] === "sliding_attention"
    ? Math.min(config.slidingWindow, maxLength)
    : maxLength;
}

/**
 * Per-layer K/V caches for `batch` sequences of up to `maxLength` tokens.
 *
 * @example
 * ```ts ignore
 * const cache = new KvCache(gpu, config, { batch: 2, maxLength: 64 });
 * writeKvCache(cache.layers[0], { k, v }, { offsets });
 * cache.dispose();
 * ```
 */
export class KvCache {
  /** Sequences. */
  readonly batch: number;
  /** Longest sequence the cache holds. */
  readonly maxLength: number;
  /** One k/v pair `[B, C_l, KvH, hd]` per layer. */
  readonly layers: readonly KvPair[];
  #disposed = false;

  /**
   * @param gpu Runtime.
   * @param config Model config (layer kinds, window, heads).
   * @param size Batch size and longest sequence.
   * @throws {KvCacheError} when a layer's cache would not fit one storage binding.
   */
  constructor(gpu: Gpu, config: Gemma3Config, size: { batch: number; maxLength: number }) {
    const { batch, maxLength } = size;
    if (!Number.isInteger(batch) || batch < 1) {
      throw new KvCacheError(`batch must be an integer ≥ 1, got ${batch}`);
    }
    if (!Number.isInteger(maxLength) || maxLength < 1) {
      throw new KvCacheError(`maxLength must be an integer ≥ 1, got ${maxLength}`);
    }
    const limit = gpu.limits.maxStorageBufferBindingSize;
    const layers: KvPair[] = [];
    for (let l = 0; l < config.numLayers; l++) {
      const slots = kvCacheSlots(config, l, maxLength);
      const shape = [batch, slots, config.numKvHeads, config.headDim];
      const bytes = 4 * shape.reduce((a, b) => a * b, 1);
      if (bytes > limit) {
        for (const p of layers) [p.k, p.v].forEach((t) => t.dispose());
        throw new KvCacheError(
          `layer ${l}'s cache [${shape}] needs ${bytes} bytes, above the ${limit}-byte storage ` +
            "binding limit: use a smaller batch or a shorter maximum length",
        );
      }
      layers.push(Object.freeze({ k: Tensor.empty(gpu, shape), v: Tensor.empty(gpu, shape) }));
    }
    this.batch = batch;
    this.maxLength = maxLength;
    this.layers = Object.freeze(layers);
  }

  /** GPU bytes held by the caches (k and v of every layer). */
  get bytes(): number {
    return this.layers.reduce((s, p) => s + 8 * p.k.numel, 0);
  }

  /** Gives the buffers back to the pool (idempotent). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const p of this.layers) {
      p.k.dispose();
      p.v.dispose();
    }
  }
}
