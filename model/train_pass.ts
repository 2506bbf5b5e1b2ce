/**
 * One differentiable pass of Gemma 3 for training: forward to per-token log-probs of given
 * targets (keeping only each layer's input), then — once the caller has turned the log-probs
 * into a loss and `d loss / d logp` on the host — the backward pass with per-layer
 * recomputation. Both SFT (`d loss/d logp = −mask / count`) and GRPO (`grpoLoss().dLossDLogp`)
 * drive the model through this one interface.
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
import { copyOf, decoderLayerForward, disposeLayerSaved, type LayerStack } from "./layer.ts";

/** A forward pass that can be differentiated once. */
export interface TrainPass {
  /** Log-prob of each row's target `[B·S]` (temperature 1), f32. */
  readonly logprobs: Tensor;
  /**
   * Backpropagates `grad` (`d loss / d logprobs`, f32 `[B·S]`, zero where no target counts) and
   * adds the parameter gradients into `grads`.
   */
  backward(grad: Tensor, grads: GradientSet): void;
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
 * @returns The pass.
 */
export function trainForward(model: LayerStack, batch: TokenBatch, targets: Tensor): TrainPass {
  const c = model.config;
  const gpu = model.gpu;
  const T = batch.batch * batch.seq;
  const attend = model.prefillAttend(batch);
  const step = { positions: batch.positions, attend };
  const h = embedding(model.weights.embed, batch.ids, { scale: model.embedScale });
  const layerInputs: Tensor[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    layerInputs.push(copyOf(h));
    decoderLayerForward(model.layerContext(l, batch.seq), h, step);
  }
  const rstdFinal = Tensor.empty(gpu, [T], "f32");
  const hn = rmsNorm(h, model.weights.finalNorm, { eps: c.rmsNormEps, rstd: rstdFinal });
  const { logprobs, lse } = tokenLogprobs({ h: hn, embedding: model.weights.embed, targets });
  let disposed = false, backwardDone = false;

  const dispose = () => {
    if (disposed) return;
    disposed = true;
    for (const t of [...layerInputs, h, rstdFinal, hn, logprobs, lse]) t.dispose();
  };

  const backward = (grad: Tensor, grads: GradientSet) => {
    if (disposed) throw new Error("TrainPass.backward() after dispose()");
    if (backwardDone) throw new Error("TrainPass.backward() may run once per pass");
    backwardDone = true;
    const head = { h: hn, embedding: model.weights.embed, targets, lse };
    const dhn = tokenLogprobsBackward(grad, head, {
      dEmbedding: grads.embed ?? undefined,
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

  return { logprobs, backward, dispose };
}
