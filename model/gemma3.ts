/**
 * Gemma 3 (text, 1B family) assembled from webtune's kernels: prefill forward, logits,
 * per-layer hidden states for debugging, and the KV-cache steps (`prefill`, `decodeStep`) that
 * `generate.ts` drives. A model's adapter is fixed; `withLora` gives views with another one.
 *
 * @module
 */

import { attention } from "../kernels/attention.ts";
import { embedding } from "../kernels/embedding.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { matmul } from "../kernels/matmul.ts";
import { rmsNorm } from "../kernels/rms_norm.ts";
import { RopeTableCache } from "../kernels/rope.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { ConfigError, type Gemma3Config } from "./config.ts";
import { disposeTokenBatch, makeTokenBatch, type TokenBatch } from "./batch.ts";
import type { Gemma3Weights } from "./gemma3_weights.ts";
import {
  type DecoderModel,
  generate,
  type GenerateOptions,
  generateWithLogprobs,
  type GenerationWithLogprobs,
} from "./generate.ts";
import type { KvCache, KvCacheStep } from "./kv_cache.ts";
import { decodeKvStep, prefillKvCache } from "./_kv_forward.ts";
import {
  type AttendFn,
  copyOf,
  forwardLayers,
  type LayerContext,
  type LayerStack,
} from "./layer.ts";
import type { LoraAdapter } from "./lora.ts";

/** Per-layer activations of one sequence, read back for debugging and fixture tests. */
export interface HiddenStates {
  /** `L + 1` arrays `[n, D]`: the scaled embedding, then the residual after each layer. */
  readonly hidden: Float32Array[];
  /** Final-norm output `[n, D]`. */
  readonly finalNorm: Float32Array;
  /** o_proj output per layer `[n, D]`. */
  readonly attnOut: Float32Array[];
  /** down_proj output per layer `[n, D]`. */
  readonly mlpOut: Float32Array[];
  /** Logits `[n, V]`. */
  readonly logits: Float32Array;
}

/**
 * A Gemma 3 model on the GPU: base weights plus an optional LoRA adapter that every pass
 * applies. Nothing switches its behaviour after construction; {@linkcode Gemma3.withLora}
 * makes views that share the weights with another adapter (or none, the reference model).
 */
export class Gemma3 implements DecoderModel, LayerStack {
  /** Runtime. */
  readonly gpu: Gpu;
  /** Hyperparameters. */
  readonly config: Gemma3Config;
  /** Base weights. */
  readonly weights: Gemma3Weights;
  /** LoRA adapter applied to every forward pass, or null (the base model). */
  readonly lora: LoraAdapter | null;
  #ropes: RopeTableCache; // shared by every view made with withLora

  /**
   * @param gpu Runtime.
   * @param config Hyperparameters.
   * @param weights GPU weights matching the config.
   * @param lora Optional LoRA adapter.
   */
  constructor(
    gpu: Gpu,
    config: Gemma3Config,
    weights: Gemma3Weights,
    lora: LoraAdapter | null = null,
  ) {
    if (config.ropeScalingFactor !== 1) {
      throw new ConfigError(
        "ropeScalingFactor",
        `linear RoPE scaling (factor ${config.ropeScalingFactor}, Gemma 3 4B+) is not supported; ` +
          "the 1B family uses none",
      );
    }
    this.gpu = gpu;
    this.config = config;
    this.weights = weights;
    this.lora = lora;
    this.#ropes = new RopeTableCache(gpu);
  }

  /**
   * A view of this model with another LoRA adapter (or none): a new `Gemma3` that shares the
   * runtime, config, base weights and RoPE tables, so it costs no GPU memory. Neither model
   * changes the other; GRPO's reference model is `model.withLora(null)`.
   *
   * @param adapter The adapter the view applies, or null for the base model.
   * @returns The view.
   * @example
   * ```ts
   * import { Gpu } from "../kernels/gpu.ts";
   * import { Gemma3 } from "./gemma3.ts";
   * import { initGemma3Weights } from "./gemma3_weights.ts";
   * import { LoraAdapter, loraConfig } from "./lora.ts";
   * import { gemma3Config } from "./config.ts";
   *
   * const gpu = await Gpu.create();
   * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2,
   *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
   * const base = new Gemma3(gpu, config, initGemma3Weights(gpu, config, { seed: 1 }));
   * const tuned = base.withLora(LoraAdapter.init(gpu, config, loraConfig({ rank: 2, alpha: 4 })));
   * const reference = tuned.withLora(null);
   * console.log(tuned.lora !== null, reference.lora === null, reference.weights === base.weights);
   * // true true true
   * gpu.destroy();
   * ```
   */
  withLora(adapter: LoraAdapter | null): Gemma3 {
    const view = new Gemma3(this.gpu, this.config, this.weights, adapter);
    view.#ropes = this.#ropes;
    return view;
  }

  /** sqrt(hidden) rounded to float32, the embedding scale of the float32 reference. */
  get embedScale(): number {
    return Math.fround(Math.sqrt(this.config.hiddenSize));
  }

  /**
   * The context of layer `l` for sequences of up to `maxPositions` positions.
   *
   * @param l Layer index.
   * @param maxPositions Largest position + 1 that will be roped.
   * @returns The context.
   */
  layerContext(l: number, maxPositions: number): LayerContext {
    const c = this.config;
    const sliding = c.layerTypes[l] === "sliding_attention";
    const size = 2 ** Math.max(8, Math.ceil(Math.log2(Math.max(1, maxPositions))));
    const lora = this.lora ? this.lora.layers[l] : null;
    return {
      config: c,
      weights: this.weights.layers[l],
      lora,
      loraScale: this.lora?.scale ?? 0,
      rope: this.#ropes.get({
        base: sliding ? c.ropeLocalBaseFreq : c.ropeTheta,
        headDim: c.headDim,
        maxPositions: size,
      }),
      window: sliding ? c.slidingWindow : 0,
    };
  }

  /** Attention scale: `queryPreAttnScalar^−0.5`. */
  get attentionScale(): number {
    return this.config.queryPreAttnScalar ** -0.5;
  }

  /**
   * Throws unless every id is a valid row of the embedding.
   *
   * @param ids Token ids.
   * @param what Name for the message.
   */
  checkIds(ids: ArrayLike<number>, what = "ids"): void {
    const v = this.config.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= v) {
        throw new RangeError(
          `${what}[${i}] = ${id} is not a token id of this model (0 ≤ id < ${v})`,
        );
      }
    }
  }

  /** The prefill attention step for a padded batch. */
  prefillAttend(batch: TokenBatch): AttendFn {
    const c = this.config;
    return (q, k, v, window, wantLse) => {
      const q4 = q.reshape([batch.batch, batch.seq, c.numHeads, c.headDim]);
      const k4 = k.reshape([batch.batch, batch.seq, c.numKvHeads, c.headDim]);
      const v4 = v.reshape([batch.batch, batch.seq, c.numKvHeads, c.headDim]);
      const r = attention(q4, { k: k4, v: v4 }, {
        scale: this.attentionScale,
        window,
        ranges: batch.ranges,
        returnLse: wantLse,
      });
      return r;
    };
  }

  /**
   * Runs the decoder stack on a padded batch and returns the final-norm output `[B·S, D]`.
   *
   * @param batch Token batch.
   * @param onLayer Called with the residual stream after the embedding (layer −1) and each
   *   layer, and with each layer's o_proj / down_proj outputs; tensors are only valid during
   *   the call (copy them).
   * @returns Final-norm hidden states `[B·S, D]` (caller disposes).
   */
  forwardHidden(
    batch: TokenBatch,
    onLayer?: (layer: number, name: "hidden" | "attnOut" | "mlpOut", t: Tensor) => void,
  ): Tensor {
    const c = this.config;
    const h = embedding(this.weights.embed, batch.ids, { scale: this.embedScale });
    onLayer?.(-1, "hidden", h);
    const attend = this.prefillAttend(batch);
    forwardLayers(this, h, {
      positions: batch.positions,
      maxPositions: batch.seq,
      attendFor: () => attend,
      trace: onLayer,
      afterLayer: onLayer && ((l, t) => onLayer(l, "hidden", t)),
    });
    const out = rmsNorm(h, this.weights.finalNorm, { eps: c.rmsNormEps });
    h.dispose();
    return out;
  }

  /**
   * Logits of every position of one sequence (positions 0..n−1).
   *
   * @param ids Token ids.
   * @returns Row-major `[ids.length, vocab]`.
   * @example
   * ```ts ignore
   * const logits = await gemma.logits([2, 651, 6037]);
   * ```
   */
  async logits(ids: readonly number[]): Promise<Float32Array> {
    return (await this.#run(ids, { trace: false })).logits;
  }

  /**
   * Logits plus every per-layer activation of one sequence (debugging, fixture tests).
   *
   * @param ids Token ids.
   * @returns Hidden states, attention and MLP outputs, final norm and logits.
   */
  async hiddenStates(ids: readonly number[]): Promise<HiddenStates> {
    return await this.#run(ids, { trace: true });
  }

  async #run(ids: readonly number[], options: { trace: boolean }): Promise<HiddenStates> {
    const { trace } = options;
    this.checkIds(ids);
    const batch = makeTokenBatch(this.gpu, [ids]);
    const traced: Record<string, Tensor[]> = { hidden: [], attnOut: [], mlpOut: [] };
    const final = this.forwardHidden(
      batch,
      trace ? (_l, name, t) => traced[name].push(copyOf(t)) : undefined,
    );
    disposeTokenBatch(batch);
    const logits = await this.projectLogits(final);
    const read = async (ts: Tensor[]) => {
      const out: Float32Array[] = [];
      for (const t of ts) {
        out.push((await t.read()) as Float32Array);
        t.dispose();
      }
      return out;
    };
    const result: HiddenStates = {
      hidden: await read(traced.hidden),
      attnOut: await read(traced.attnOut),
      mlpOut: await read(traced.mlpOut),
      finalNorm: trace ? (await final.read()) as Float32Array : new Float32Array(0),
      logits,
    };
    final.dispose();
    return result;
  }

  /**
   * KV-cache prefill: runs right-padded prompts through the model and writes each prompt's
   * `len_b` valid K/V rows into the cache (indices `[0, len_b)`, so RoPE positions are plain
   * indices and padding never enters a sliding layer's ring). `generate` and `DecodeSession`
   * drive this and {@linkcode Gemma3.decodeStep}; they check the ids first (`checkIds`).
   *
   * @param prompts Non-empty token ids per sequence: `cache.batch` of them, each at most
   *   `cache.maxLength` long.
   * @param cache A cache for these sequences, not written yet.
   * @returns f32 `[B, V]`: the logits after each prompt's last token (caller disposes).
   * @example
   * ```ts
   * import { Gpu } from "../kernels/gpu.ts";
   * import { sample } from "../kernels/sampling.ts";
   * import { Tensor } from "../kernels/tensor.ts";
   * import { gemma3Config } from "./config.ts";
   * import { Gemma3 } from "./gemma3.ts";
   * import { initGemma3Weights } from "./gemma3_weights.ts";
   * import { KvCache } from "./kv_cache.ts";
   *
   * const gpu = await Gpu.create();
   * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2,
   *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
   * const model = new Gemma3(gpu, config, initGemma3Weights(gpu, config, { seed: 1 }));
   * const cache = new KvCache(gpu, config, { batch: 2, maxLength: 4 });
   * const first = model.prefill([[2, 5, 7], [2]], cache); // [2, 64]
   * const ids = sample(first, { temperature: 0 }); // u32 [2]
   * // Feed the sampled tokens at indices 3 and 1 (each attends to [0, index + 1)).
   * const positions = Tensor.fromArray(gpu, new Int32Array([3, 1]));
   * const ranges = Tensor.fromArray(gpu, new Int32Array([0, 4, 0, 2]), [2, 2]);
   * const next = model.decodeStep(ids, cache, { positions, ranges }); // [2, 64]
   * console.log(next.shape); // [2, 64]
   * for (const t of [first, ids, positions, ranges, next]) t.dispose();
   * cache.dispose();
   * gpu.destroy();
   * ```
   */
  prefill(prompts: readonly (readonly number[])[], cache: KvCache): Tensor {
    return prefillKvCache(this, { prompts, cache });
  }

  /**
   * One KV-cache decode step after {@linkcode Gemma3.prefill} (see its example): feeds one
   * token per sequence at `step.positions`, writes its K/V into the cache there and attends
   * over `step.ranges`.
   *
   * @param ids u32 or i32 `[B]` token ids, e.g. straight from `sample` (no readback).
   * @param cache The cache `prefill` filled (and earlier steps extended).
   * @param step i32 positions `[B]` and attended ranges `[B, 2]` of the fed tokens.
   * @returns f32 `[B, V]`: the logits after the fed tokens (caller disposes).
   */
  decodeStep(ids: Tensor, cache: KvCache, step: KvCacheStep): Tensor {
    return decodeKvStep(this, { ids, cache, step });
  }

  /**
   * Generates with a KV cache (see `generate.ts`): batched prompts of different lengths, greedy
   * or sampled on the GPU, per-sequence EOS stop (the EOS id is kept), streaming callback.
   *
   * @param prompts Token ids per prompt (non-empty; lengths may differ).
   * @param options `maxNewTokens`, `temperature` (0 = greedy), `topK`, `topP`, `seed`,
   *   `eosIds` (default `config.eosTokenIds`, `[]` = never stop), `onToken`.
   * @returns The generated ids per prompt.
   * @example
   * ```ts ignore
   * const [ids] = await gemma.generate([[2, 651, 6037]], { maxNewTokens: 16, temperature: 0 });
   * ```
   */
  generate(
    prompts: readonly (readonly number[])[],
    options: GenerateOptions,
  ): Promise<number[][]> {
    return generate(this, prompts, options);
  }

  /**
   * {@linkcode Gemma3.generate} that also returns each sampled token's log-prob under the
   * temperature-1 softmax of the logits it was sampled from (see `generateWithLogprobs` in
   * `generate.ts`): the rollout log-probs GRPO can compare with the training forward's.
   *
   * @param prompts Token ids per prompt (non-empty; lengths may differ).
   * @param options As {@linkcode Gemma3.generate}.
   * @returns The generated ids and their log-probs per prompt.
   * @example
   * ```ts ignore
   * const { ids, logprobs } = await gemma.generateWithLogprobs([[2, 651]], { maxNewTokens: 8 });
   * ```
   */
  generateWithLogprobs(
    prompts: readonly (readonly number[])[],
    options: GenerateOptions,
  ): Promise<GenerationWithLogprobs> {
    return generateWithLogprobs(this, prompts, options);
  }

  /**
   * Projects hidden states `[n, D]` on the tied embedding, in column blocks that fit one
   * storage binding, and reads the logits back.
   *
   * @param h Final-norm hidden states `[n, D]`.
   * @returns Row-major `[n, vocab]`.
   */
  async projectLogits(h: Tensor): Promise<Float32Array> {
    const n = h.shape[0], vocab = this.config.vocabSize;
    const maxCols = Math.floor(this.gpu.limits.maxStorageBufferBindingSize / (4 * Math.max(1, n)));
    const blocks: { start: number; cols: number; t: Tensor }[] = [];
    for (let start = 0; start < vocab; start += maxCols) {
      const end = Math.min(vocab, start + maxCols);
      // [n, end − start]
      blocks.push({
        start,
        cols: end - start,
        t: matmul(h, this.weights.embed, { wRows: [start, end] }),
      });
    }
    // One GPU wait for all blocks.
    const data = await this.gpu.readMany(blocks.map((b) => b.t.binding()));
    const out = new Float32Array(n * vocab);
    blocks.forEach((b, i) => {
      const block = new Float32Array(data[i], 0, n * b.cols);
      for (let r = 0; r < n; r++) {
        out.set(block.subarray(r * b.cols, (r + 1) * b.cols), r * vocab + b.start);
      }
      b.t.dispose();
    });
    return out;
  }
}
