/**
 * One differentiable pass of Gemma 3 for training: forward to per-token log-probs of given
 * targets (keeping only each layer's input), then — once the caller has turned the log-probs
 * into a loss and `d loss / d logp` on the host — the backward pass with per-layer
 * recomputation. Both SFT (`d loss/d logp = −mask / count`) and GRPO (`grpoLoss().dLossDLogp`)
 * drive the model through this one interface. With `{ entropy: true }` the forward also gives
 * each row's policy entropy (same chunked vocabulary pass) and the backward takes
 * `d loss / d entropy` beside `d loss / d logp` (GRPO's entropy bonus).
 *
 * @module
 */

import { embedding } from "../kernels/embedding.ts";
import { embeddingBackward } from "../kernels/embedding_backward.ts";
import { tokenLogprobs } from "../kernels/logprobs.ts";
import { tokenLogprobsBackward } from "../kernels/logprobs_backward.ts";
import { rmsNorm } from "../kernels/rms_norm.ts";
import { rmsNormBackward } from "../kernels/rms_norm_backward.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { TokenBatch } from "./batch.ts";
import { decoderLayerBackward, type GradientSet } from "./backward.ts";
import {
  copyOf,
  decoderLayerForward,
  disposeLayerSaved,
  forwardLayers,
  type LayerStack,
} from "./layer.ts";

/** Options of {@linkcode trainForward}. */
export interface TrainForwardOptions {
  /**
   * Also compute each row's entropy `−Σ_v p_v log p_v` of the temperature-1 next-token
   * distribution (default false: the plain forward, bit for bit).
   */
  readonly entropy?: boolean;
}

/** Options of {@linkcode TrainPass.backward}. */
export interface TrainBackwardOptions {
  /**
   * `d loss / d entropy`, f32 `[B·S]` (zero where no entropy counts); needs a pass made with
   * `{ entropy: true }`. Left out: the plain backward, bit for bit.
   */
  readonly gradEntropy?: Tensor;
}

/** A pass's per-row outputs read back to the host ({@linkcode TrainPass.read}). */
export interface TrainPassRows {
  /** Log-prob of each row's target `[B·S]`. */
  readonly logprobs: Float32Array;
  /** Entropy of each row `[B·S]` (null unless the pass was made with `{ entropy: true }`). */
  readonly entropy: Float32Array | null;
}

/** A forward pass that can be differentiated once. */
export interface TrainPass {
  /** Log-prob of each row's target `[B·S]` (temperature 1), f32. */
  readonly logprobs: Tensor;
  /** Entropy of each row's distribution `[B·S]` (temperature 1), f32; null unless asked for. */
  readonly entropy: Tensor | null;
  /**
   * Reads the log-probs (and entropies) back with one GPU wait.
   *
   * @returns Host copies, `[B·S]` each.
   */
  read(): Promise<TrainPassRows>;
  /**
   * Backpropagates `grad` (`d loss / d logprobs`, f32 `[B·S]`, zero where no target counts) and,
   * with `options.gradEntropy`, `d loss / d entropy`, and adds the parameter gradients into
   * `grads`.
   */
  backward(grad: Tensor, grads: GradientSet, options?: TrainBackwardOptions): void;
  /** Frees what the pass holds (also after backward). */
  dispose(): void;
}

/**
 * Runs the forward pass of a batch keeping what the backward pass needs: each layer's input
 * (activation checkpointing), the final-norm input and the log-softmax statistics.
 *
 * @param model The model, e.g. a `Gemma3` (its adapter, if any, is used for forward and backward
 *   alike).
 * @param batch Token batch.
 * @param targets i32 `[B·S]`: the id whose log-prob each row yields (e.g. the next token).
 * @param options `entropy: true` to also compute per-row entropies (and accept their gradient).
 * @returns The pass.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { Tensor } from "../kernels/tensor.ts";
 * import { disposeTokenBatch, makeTokenBatch } from "./batch.ts";
 * import { gemma3Config } from "./config.ts";
 * import { Gemma3 } from "./gemma3.ts";
 * import { initGemma3Weights } from "./gemma3_weights.ts";
 * import { trainForward } from "./train_pass.ts";
 * import { trainableParameters } from "./trainable.ts";
 *
 * const gpu = await Gpu.create();
 * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2,
 *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
 * const model = new Gemma3(gpu, config, initGemma3Weights(gpu, config, { seed: 1 }));
 * const batch = makeTokenBatch(gpu, [[2, 5, 7]]);
 * const targets = Tensor.fromArray(gpu, new Int32Array([5, 7, 0]));
 * const pass = trainForward(model, batch, targets, { entropy: true });
 * const { logprobs, entropy } = await pass.read(); // [3] each
 * console.log(logprobs.length, entropy!.length); // 3 3
 * // loss = −logp[0] − 0.01·H[0]: its gradients into every weight.
 * const trainable = trainableParameters(model, "full");
 * const grad = Tensor.fromArray(gpu, new Float32Array([-1, 0, 0]));
 * const gradEntropy = Tensor.fromArray(gpu, new Float32Array([-0.01, 0, 0]));
 * pass.backward(grad, trainable.gradientSet, { gradEntropy });
 * for (const t of [grad, gradEntropy, targets]) t.dispose();
 * pass.dispose();
 * disposeTokenBatch(batch);
 * trainable.dispose();
 * gpu.destroy();
 * ```
 */
export function trainForward(
  model: LayerStack,
  batch: TokenBatch,
  targets: Tensor,
  options: TrainForwardOptions = {},
): TrainPass {
  const c = model.config;
  const gpu = model.gpu;
  const T = batch.batch * batch.seq;
  const attend = model.prefillAttend(batch);
  const step = { positions: batch.positions, attend };
  const h = embedding(model.weights.embed, batch.ids, { scale: model.embedScale });
  const layerInputs: Tensor[] = [];
  forwardLayers(model, h, {
    positions: batch.positions,
    maxPositions: batch.seq,
    attendFor: () => attend,
    beforeLayer: (_, input) => void layerInputs.push(copyOf(input)),
  });
  const rstdFinal = Tensor.empty(gpu, [T], "f32");
  const hn = rmsNorm(h, model.weights.finalNorm, { eps: c.rmsNormEps, rstd: rstdFinal });
  const { logprobs, lse, entropy } = tokenLogprobs(
    { h: hn, embedding: model.weights.embed, targets },
    { entropy: options.entropy === true },
  );
  let disposed = false, backwardDone = false;

  const dispose = () => {
    if (disposed) return;
    disposed = true;
    for (const t of [...layerInputs, h, rstdFinal, hn, logprobs, lse, entropy]) t?.dispose();
  };

  const read = async (): Promise<TrainPassRows> => {
    if (disposed) throw new Error("TrainPass.read() after dispose()");
    const rows = [logprobs, ...(entropy ? [entropy] : [])];
    const raw = await gpu.readMany(
      rows.map((t) => ({ buffer: t.buffer, offset: 0, size: Math.max(4, 4 * t.numel) })),
    );
    const [lp, ent] = raw.map((r) => new Float32Array(r, 0, T));
    return { logprobs: lp, entropy: ent ?? null };
  };

  const backward = (grad: Tensor, grads: GradientSet, opts: TrainBackwardOptions = {}) => {
    if (disposed) throw new Error("TrainPass.backward() after dispose()");
    if (backwardDone) throw new Error("TrainPass.backward() may run once per pass");
    if (opts.gradEntropy && !entropy) {
      throw new Error(
        "TrainPass.backward(): gradEntropy needs trainForward(..., { entropy: true })",
      );
    }
    backwardDone = true;
    const head = { h: hn, embedding: model.weights.embed, targets, lse, entropy };
    const dhn = tokenLogprobsBackward(grad, head, {
      dEmbedding: grads.embed ?? undefined,
      gradEntropy: opts.gradEntropy,
    });
    let dh = rmsNormBackward(dhn, { x: h, w: model.weights.finalNorm, rstd: rstdFinal }, {
      ...(grads.finalNorm ? { dw: grads.finalNorm } : {}),
    });
    dhn.dispose();
    const attention = {
      batch: batch.batch,
      seq: batch.seq,
      ranges: batch.ranges,
      scale: model.attentionScale,
    };
    for (let l = c.numLayers - 1; l >= 0; l--) {
      const ctx = model.layerContext(l, batch.seq);
      // The recompute overwrites the checkpointed input in place; it is not needed again.
      const saved = decoderLayerForward(ctx, layerInputs[l], { ...step, save: true });
      dh = decoderLayerBackward(ctx, saved, {
        dh,
        positions: batch.positions,
        attention,
        grads: { lora: grads.lora?.[l] ?? null, full: grads.layers?.[l] ?? null },
      });
      disposeLayerSaved(saved);
    }
    if (grads.embed) {
      embeddingBackward(dh, batch.hostIds, {
        dTable: grads.embed,
        scale: model.embedScale,
        accumulate: true,
      });
    }
    dh.dispose();
  };

  return { logprobs, entropy: entropy ?? null, read, backward, dispose };
}
