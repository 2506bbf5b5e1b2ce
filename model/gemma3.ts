/**
 * Gemma 3 (text, 1B family) assembled from webtune's kernels: prefill forward, logits,
 * per-layer hidden states for debugging, and (see `generate.ts`) KV-cache generation.
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
import { generate, type GenerateOptions } from "./generate.ts";
import { type AttendFn, copyOf, decoderLayerForward, type LayerContext } from "./layer.ts";
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

/** A Gemma 3 model on the GPU. */
export class Gemma3 {
  /** Runtime. */
  readonly gpu: Gpu;
  /** Hyperparameters. */
  readonly config: Gemma3Config;
  /** Base weights. */
  readonly weights: Gemma3Weights;
  /** LoRA adapter, if any. */
  lora: LoraAdapter | null;
  /** When false the adapter is ignored (GRPO's reference model is the same weights, LoRA off). */
  loraEnabled = true;
  readonly #ropes: RopeTableCache;

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
    const lora = this.loraEnabled && this.lora ? this.lora.layers[l] : null;
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
    for (let l = 0; l < c.numLayers; l++) {
      const ctx = this.layerContext(l, batch.seq);
      decoderLayerForward(
        ctx,
        h,
        batch.positions,
        attend,
        false,
        onLayer && ((n, t) => onLayer(l, n, t)),
      );
      onLayer?.(l, "hidden", h);
    }
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
    return (await this.#run(ids, false)).logits;
  }

  /**
   * Logits plus every per-layer activation of one sequence (debugging, fixture tests).
   *
   * @param ids Token ids.
   * @returns Hidden states, attention and MLP outputs, final norm and logits.
   */
  async hiddenStates(ids: readonly number[]): Promise<HiddenStates> {
    return await this.#run(ids, true);
  }

  async #run(ids: readonly number[], trace: boolean): Promise<HiddenStates> {
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

  /**
   * Writes the LoRA adapter as a PEFT folder (`adapter_model.safetensors` F32 +
   * `adapter_config.json`) that Hugging Face peft and vLLM load; see `peft_fs.ts`. The file
   * system module is imported on first use, so this class stays browser-clean.
   *
   * @param dir Destination folder (created when missing).
   * @param options `baseModelNameOrPath` recorded in the config (default null).
   * @throws {ConfigError} when the model has no adapter.
   * @example
   * ```ts ignore
   * await gemma.saveAdapter("runs/sft/adapter", { baseModelNameOrPath: "google/gemma-3-1b-it" });
   * ```
   */
  async saveAdapter(
    dir: string,
    options: { readonly baseModelNameOrPath?: string | null } = {},
  ): Promise<void> {
    if (!this.lora) throw new ConfigError("lora", "this model has no LoRA adapter to save");
    const { savePeftAdapter } = await import("./peft_fs.ts");
    await savePeftAdapter(this.lora, dir, options);
  }
}
