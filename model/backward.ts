/**
 * Backward pass of Gemma 3, hand-written per layer (no autograd): each decoder layer is
 * recomputed from its saved input (activation checkpointing, so memory holds one layer's
 * activations at a time, not all of them), then differentiated op by op in reverse.
 *
 * Gradients are accumulated (`+=`) into a {@linkcode GradientSet}, so micro-batches add up.
 *
 * @module
 */

import { attentionBackward } from "../kernels/attention.ts";
import { gegluBackward } from "../kernels/geglu.ts";
import { matmul, matmulTransA } from "../kernels/matmul.ts";
import { rmsNormBackward } from "../kernels/rms_norm.ts";
import { rope } from "../kernels/rope.ts";
import { add } from "../kernels/elementwise.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { LayerWeightName, LoraTarget } from "./gemma3_weights.ts";
import type { LayerContext, LayerSaved } from "./layer.ts";
import type { LoraPair } from "./lora.ts";

/** Gradient accumulators, f32, shaped like their parameters. */
export interface GradientSet {
  /** LoRA gradients per layer and target (A `[r, in]`, B `[out, r]`), when training LoRA. */
  readonly lora: readonly Partial<Record<LoraTarget, LoraPair>>[] | null;
  /** Base-weight gradients per layer, when training all parameters. */
  readonly layers: readonly Readonly<Record<LayerWeightName, Tensor>>[] | null;
  /** Embedding gradient `[V, D]` (tied with the LM head), when training all parameters. */
  readonly embed: Tensor | null;
  /** Final norm gradient `[D]`, when training all parameters. */
  readonly finalNorm: Tensor | null;
}

/**
 * Backward of a projection `y = x·Wᵀ (+ s·(x·Aᵀ)·Bᵀ)`: returns dX and accumulates dW / dA / dB.
 *
 * @param ctx Layer context (weights, LoRA).
 * @param name Projection.
 * @param x Input `[T, in]`.
 * @param dy Output gradient `[T, out]`.
 * @param xa Saved `x·Aᵀ` `[T, r]` when LoRA is on.
 * @param grads Accumulators of this layer.
 * @param into Add dX into this tensor instead of returning a new one (projections that share
 *   an input, such as q/k/v or gate/up).
 * @returns dX `[T, in]` (`into` when given).
 */
export function projectionBackward(
  ctx: LayerContext,
  name: LoraTarget,
  x: Tensor,
  dy: Tensor,
  xa: Tensor | undefined,
  grads: LayerGrads,
  into?: Tensor,
): Tensor {
  const w = ctx.weights[name];
  // [T, out]·[out, in]
  const dx = matmul(dy, w, { transposeB: false, ...(into ? { out: into, accumulate: true } : {}) });
  const dw = grads.full?.[name];
  if (dw) matmulTransA(dy, x, { out: dw, accumulate: true }); // dW += dYᵀ·X
  const pair = ctx.lora?.[name];
  if (pair && xa) {
    const s = ctx.loraScale;
    const g = grads.lora?.[name];
    if (g) matmulTransA(dy, xa, { out: g.b, accumulate: true, alpha: s }); // dB = s·dYᵀ·xa
    const dxa = matmul(dy, pair.b, { transposeB: false, alpha: s }); // [T, r] = s·dY·B
    if (g) matmulTransA(dxa, x, { out: g.a, accumulate: true }); // dA = dxaᵀ·x
    matmul(dxa, pair.a, { transposeB: false, out: dx, accumulate: true }); // dX += dxa·A
    dxa.dispose();
  }
  return dx;
}

/** The accumulators of one layer. */
export interface LayerGrads {
  /** LoRA accumulators (only trained pairs). */
  readonly lora: Partial<Record<LoraTarget, LoraPair>> | null;
  /** Full-parameter accumulators. */
  readonly full: Readonly<Record<LayerWeightName, Tensor>> | null;
}

/**
 * Backward of one decoder layer from its saved activations.
 *
 * @param ctx Layer context.
 * @param s Saved activations of the recomputed forward.
 * @param dh Gradient of the layer output `[T, D]`; replaced by the gradient of its input.
 * @param positions i32 `[T]` RoPE positions.
 * @param attentionArgs Shapes and ranges for the attention backward.
 * @param grads Accumulators of this layer.
 * @returns Gradient of the layer input `[T, D]` (a new tensor; `dh` is disposed).
 */
export function decoderLayerBackward(
  ctx: LayerContext,
  s: LayerSaved,
  dh: Tensor,
  positions: Tensor,
  attentionArgs: { batch: number; seq: number; ranges: Tensor; scale: number },
  grads: LayerGrads,
): Tensor {
  const c = ctx.config, w = ctx.weights;
  const T = dh.shape[0], H = c.numHeads, KvH = c.numKvHeads, hd = c.headDim;
  const { batch: B, seq: S } = attentionArgs;
  const normDw = (name: LayerWeightName) => grads.full ? { dw: grads.full[name] } : {};

  // MLP half: h_out = h_mid + N_pf(down(geglu(gate(x2), up(x2)))),  x2 = N_pre(h_mid)
  const dDown = rmsNormBackward(s.down, w.post_feedforward_layernorm, s.rstdDown, dh, {
    ...normDw("post_feedforward_layernorm"),
  });
  const dAct = projectionBackward(ctx, "down_proj", s.act, dDown, s.loraXa.down_proj, grads);
  dDown.dispose();
  const { dGate, dUp } = gegluBackward(s.gate, s.up, dAct);
  dAct.dispose();
  const dX2 = projectionBackward(ctx, "gate_proj", s.x2, dGate, s.loraXa.gate_proj, grads);
  projectionBackward(ctx, "up_proj", s.x2, dUp, s.loraXa.up_proj, grads, dX2);
  for (const t of [dGate, dUp]) t.dispose();
  const dMid = rmsNormBackward(s.hMid, w.pre_feedforward_layernorm, s.rstdMid, dX2, {
    ...normDw("pre_feedforward_layernorm"),
  });
  add(dMid, dh, { out: dMid });
  dX2.dispose();
  dh.dispose();

  // Attention half: h_mid = h_in + N_pa(o(attn(q, k, v))),  x = N_in(h_in)
  const dO = rmsNormBackward(s.o, w.post_attention_layernorm, s.rstdO, dMid, {
    ...normDw("post_attention_layernorm"),
  });
  const attnFlat = s.attn.reshape([T, H * hd]);
  const dAttn = projectionBackward(ctx, "o_proj", attnFlat, dO, s.loraXa.o_proj, grads);
  dO.dispose();
  const { dq, dk, dv } = attentionBackward(
    s.q.reshape([B, S, H, hd]),
    { k: s.k.reshape([B, S, KvH, hd]), v: s.v.reshape([B, S, KvH, hd]) },
    s.attn.reshape([B, S, H, hd]),
    s.lse.reshape([B, S, H]),
    dAttn.reshape([B, S, H, hd]),
    { scale: attentionArgs.scale, window: ctx.window, ranges: attentionArgs.ranges },
  );
  dAttn.dispose();
  const dqr = dq.reshape([T, H, hd]), dkr = dk.reshape([T, KvH, hd]);
  rope(dqr, positions, { table: ctx.rope, inverse: true, out: dqr });
  rope(dkr, positions, { table: ctx.rope, inverse: true, out: dkr });
  const dqRaw = rmsNormBackward(s.qRaw.reshape([T, H, hd]), w.q_norm, s.rstdQ, dqr, {
    ...normDw("q_norm"),
  });
  const dkRaw = rmsNormBackward(s.kRaw.reshape([T, KvH, hd]), w.k_norm, s.rstdK, dkr, {
    ...normDw("k_norm"),
  });
  dq.dispose();
  dk.dispose();
  const dX = projectionBackward(
    ctx,
    "q_proj",
    s.x,
    dqRaw.reshape([T, H * hd]),
    s.loraXa.q_proj,
    grads,
  );
  const kv = [["k_proj", dkRaw], ["v_proj", dv]] as const;
  for (const [name, d] of kv) {
    projectionBackward(ctx, name, s.x, d.reshape([T, KvH * hd]), s.loraXa[name], grads, dX);
  }
  for (const t of [dqRaw, dkRaw, dv]) t.dispose();
  const dIn = rmsNormBackward(s.hIn, w.input_layernorm, s.rstdIn, dX, {
    ...normDw("input_layernorm"),
  });
  add(dIn, dMid, { out: dIn });
  dX.dispose();
  dMid.dispose();
  return dIn;
}

/**
 * Zero-filled accumulators matching a set of parameters.
 *
 * @param params Parameters.
 * @returns Same-shaped f32 zeros.
 */
export function zerosLike(params: readonly Tensor[]): Tensor[] {
  return params.map((p) => Tensor.zeros(p.gpu, p.shape, "f32"));
}
