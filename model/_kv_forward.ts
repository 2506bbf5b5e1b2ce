/**
 * The KV-cache forward passes behind `Gemma3.prefill` and `Gemma3.decodeStep`, written against
 * the layer-level {@linkcode LayerStack} so they need nothing else of the model.
 *
 * @module
 */

import { attentionDecode, writeKvCache } from "../kernels/attention.ts";
import { embedding } from "../kernels/embedding.ts";
import { matmul } from "../kernels/matmul.ts";
import { rmsNorm } from "../kernels/rms_norm.ts";
import { Tensor } from "../kernels/tensor.ts";
import { disposeTokenBatch, makeTokenBatch } from "./batch.ts";
import type { KvCache, KvCacheStep } from "./kv_cache.ts";
import { type AttendFn, forwardLayers, type LayerStack } from "./layer.ts";

/**
 * Runs right-padded prompts through the stack, writing each prompt's `len_b` valid K/V rows
 * into the cache.
 *
 * @param stack The model's layers.
 * @param input Prompts (`cache.batch` of them) and the cache.
 * @returns f32 `[B, V]`: logits after each prompt's last token.
 */
export function prefillKvCache(
  stack: LayerStack,
  input: { readonly prompts: readonly (readonly number[])[]; readonly cache: KvCache },
): Tensor {
  const { prompts, cache } = input;
  const { gpu, config: c } = stack;
  const batch = makeTokenBatch(gpu, prompts);
  const lengths = prompts.map((p) => p.length);
  const counts = Tensor.fromArray(gpu, Int32Array.from(lengths)); // i32 [B]
  const h = embedding(stack.weights.embed, batch.ids, { scale: stack.embedScale }); // [B·S, D]
  const attend = stack.prefillAttend(batch);
  const kvShape = [batch.batch, batch.seq, c.numKvHeads, c.headDim];
  cachedLayers(
    stack,
    { h, positions: batch.positions, cache },
    (l) => (q, k, v, window, wantLse) => {
      // subtle: counts = len_b, so right padding never pushes valid tokens out of a ring.
      writeKvCache(cache.layers[l], { k: k.reshape(kvShape), v: v.reshape(kvShape) }, { counts });
      return attend(q, k, v, window, wantLse);
    },
  );
  const lastRows = Tensor.fromArray(
    gpu,
    Int32Array.from(lengths, (n, b) => b * batch.seq + n - 1),
  );
  const last = embedding(h, lastRows); // gathers row b·S + len_b − 1: [B, D]
  for (const t of [h, counts, lastRows]) t.dispose();
  disposeTokenBatch(batch);
  return head(stack, last);
}

/**
 * Feeds one token per sequence at `step.positions`, appending its K/V to the cache.
 *
 * @param stack The model's layers.
 * @param input Ids u32/i32 `[B]`, the cache, positions `[B]` and ranges `[B, 2]`.
 * @returns f32 `[B, V]`: logits after the fed tokens.
 */
export function decodeKvStep(
  stack: LayerStack,
  input: { readonly ids: Tensor; readonly cache: KvCache; readonly step: KvCacheStep },
): Tensor {
  const { ids, cache, step } = input;
  const c = stack.config;
  const h = embedding(stack.weights.embed, ids, { scale: stack.embedScale }); // [B, D]
  const kvShape = [cache.batch, 1, c.numKvHeads, c.headDim];
  cachedLayers(
    stack,
    { h, positions: step.positions, cache },
    (l) => (q, k, v, window, wantLse) => {
      const layer = cache.layers[l];
      writeKvCache(layer, { k: k.reshape(kvShape), v: v.reshape(kvShape) }, {
        offsets: step.positions,
      });
      return attentionDecode(q, layer, {
        scale: stack.attentionScale,
        window,
        ranges: step.ranges,
        returnLse: wantLse,
      });
    },
  );
  return head(stack, h);
}

/** Runs every layer on `h` (in place) with a per-layer attention step over the cache. */
function cachedLayers(
  stack: LayerStack,
  run: { readonly h: Tensor; readonly positions: Tensor; readonly cache: KvCache },
  attendFor: (layer: number) => AttendFn,
): void {
  forwardLayers(stack, run.h, {
    positions: run.positions,
    maxPositions: run.cache.maxLength,
    attendFor,
  });
}

/** Final norm and tied head of `[B, D]` hidden rows (consumed) → logits `[B, V]`. */
function head(stack: LayerStack, h: Tensor): Tensor {
  const x = rmsNorm(h, stack.weights.finalNorm, { eps: stack.config.rmsNormEps });
  h.dispose();
  const logits = matmul(x, stack.weights.embed); // [B, V]
  x.dispose();
  return logits;
}
