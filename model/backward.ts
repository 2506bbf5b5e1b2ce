/**
 * Backward pass of Gemma 3, hand-written per layer (no autograd): each decoder layer is
 * recomputed from its saved input (activation checkpointing, so memory holds one layer's
 * activations at a time, not all of them), then differentiated op by op in reverse.
 *
 * Gradients are accumulated (`+=`) into a {@linkcode GradientSet}, so micro-batches add up.
 *
 * @module
 */

import { attentionBackward } from "../kernels/attention_backward.ts";
import { gegluBackward } from "../kernels/geglu_backward.ts";
import { matmul, matmulTransA } from "../kernels/matmul.ts";
import { rmsNormBackward } from "../kernels/rms_norm_backward.ts";
import { ropeBackward } from "../kernels/rope_backward.ts";
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

/** Input of {@linkcode projectionBackward}. */
export interface ProjectionBackwardInput {
  /** Input of the forward projection `[T, in]`. */
  readonly x: Tensor;
  /** Output gradient `[T, out]`. */
  readonly dy: Tensor;
  /** Saved `x·Aᵀ` `[T, r]` when LoRA is on. */
  readonly xa?: Tensor;
  /** Accumulators of this layer. */
  readonly grads: LayerGrads;
  /**
   * Add dX into this tensor `[T, in]` instead of returning a new one (projections that share
   * an input, such as q/k/v or gate/up).
   */
  readonly into?: Tensor;
}

/**
 * Backward of a projection `y = x·Wᵀ (+ s·(x·Aᵀ)·Bᵀ)`: returns dX and accumulates dW / dA / dB.
 *
 * @param ctx Layer context (weights, LoRA).
 * @param name Projection.
 * @param input Forward input, output gradient, saved `x·Aᵀ`, accumulators, optional `into`.
 * @returns dX `[T, in]` (`into` when given).
 * @example
 * ```ts ignore
 * const dX2 = projectionBackward(ctx, "gate_proj", { x: s.x2, dy: dGate, grads });
 * projectionBackward(ctx, "up_proj", { x: s.x2, dy: dUp, grads, into: dX2 });
 * ```
 */
export function projectionBackward(
  ctx: LayerContext,
  name: LoraTarget,
  input: ProjectionBackwardInput,
): Tensor {
  const { x, dy, xa, grads, into } = input;
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

/** Shapes and ranges the attention backward of a padded batch needs. */
export interface AttentionBackwardArgs {
  /** Sequences B. */
  readonly batch: number;
  /** Padded length S (T = B·S). */
  readonly seq: number;
  /** i32 `[B, 2]` valid index range per sequence. */
  readonly ranges: Tensor;
  /** Attention scale. */
  readonly scale: number;
}

/** Input of {@linkcode decoderLayerBackward}. */
export interface LayerBackwardInput {
  /** Gradient of the layer output `[T, D]`; disposed (replaced by the returned input gradient). */
  readonly dh: Tensor;
  /** i32 `[T]` RoPE positions. */
  readonly positions: Tensor;
  /** Shapes and ranges for the attention backward. */
  readonly attention: AttentionBackwardArgs;
  /** Accumulators of this layer. */
  readonly grads: LayerGrads;
}

/**
 * Backward of one decoder layer from its saved activations.
 *
 * @param ctx Layer context.
 * @param s Saved activations of the recomputed forward.
 * @param input Output gradient, positions, attention shapes and this layer's accumulators.
 * @returns Gradient of the layer input `[T, D]` (a new tensor; `input.dh` is disposed).
 * @example
 * ```ts ignore
 * const saved = decoderLayerForward(ctx, hIn, { positions, attend, save: true });
 * dh = decoderLayerBackward(ctx, saved, { dh, positions, attention, grads: { lora, full: null } });
 * disposeLayerSaved(saved);
 * ```
 */
export function decoderLayerBackward(
  ctx: LayerContext,
  s: LayerSaved,
  input: LayerBackwardInput,
): Tensor {
  const { dh, positions, attention: attentionArgs, grads } = input;
  const c = ctx.config, w = ctx.weights;
  const T = dh.shape[0], H = c.numHeads, KvH = c.numKvHeads, hd = c.headDim;
  const { batch: B, seq: S } = attentionArgs;
  const normDw = (name: LayerWeightName) => grads.full ? { dw: grads.full[name] } : {};

  // MLP half: h_out = h_mid + N_pf(down(geglu(gate(x2), up(x2)))),  x2 = N_pre(h_mid)
  const dDown = rmsNormBackward(dh, {
    x: s.down,
    w: w.post_feedforward_layernorm,
    rstd: s.rstdDown,
  }, {
    ...normDw("post_feedforward_layernorm"),
  });
  const dAct = projectionBackward(ctx, "down_proj", {
    x: s.act,
    dy: dDown,
    xa: s.loraXa.down_proj,
    grads,
  });
  dDown.dispose();
  const { dGate, dUp } = gegluBackward(dAct, { gate: s.gate, up: s.up });
  dAct.dispose();
  const dX2 = projectionBackward(ctx, "gate_proj", {
    x: s.x2,
    dy: dGate,
    xa: s.loraXa.gate_proj,
    grads,
  });
  projectionBackward(ctx, "up_proj", { x: s.x2, dy: dUp, xa: s.loraXa.up_proj, grads, into: dX2 });
  for (const t of [dGate, dUp]) t.dispose();
  const dMid = rmsNormBackward(
    dX2,
    { x: s.hMid, w: w.pre_feedforward_layernorm, rstd: s.rstdMid },
    {
      ...normDw("pre_feedforward_layernorm"),
    },
  );
  add(dMid, dh, { out: dMid });
  dX2.dispose();
  dh.dispose();

  // Attention half: h_mid = h_in + N_pa(o(attn(q, k, v))),  x = N_in(h_in)
  const dO = rmsNormBackward(dMid, { x: s.o, w: w.post_attention_layernorm, rstd: s.rstdO }, {
    ...normDw("post_attention_layernorm"),
  });
  const attnFlat = s.attn.reshape([T, H * hd]);
  const dAttn = projectionBackward(ctx, "o_proj", {
    x: attnFlat,
    dy: dO,
    xa: s.loraXa.o_proj,
    grads,
  });
  dO.dispose();
  const { dq, dk, dv } = attentionBackward(dAttn.reshape([B, S, H, hd]), {
    q: s.q.reshape([B, S, H, hd]),
    k: s.k.reshape([B, S, KvH, hd]),
    v: s.v.reshape([B, S, KvH, hd]),
    out: s.attn.reshape([B, S, H, hd]),
    lse: s.lse.reshape([B, S, H]),
  }, { scale: attentionArgs.scale, window: ctx.window, ranges: attentionArgs.ranges });
  dAttn.dispose();
  const dqr = dq.reshape([T, H, hd]), dkr = dk.reshape([T, KvH, hd]);
  ropeBackward(dqr, positions, { table: ctx.rope, out: dqr });
  ropeBackward(dkr, positions, { table: ctx.rope, out: dkr });
  const dqRaw = rmsNormBackward(
    dqr,
    { x: s.qRaw.reshape([T, H, hd]), w: w.q_norm, rstd: s.rstdQ },
    {
      ...normDw("q_norm"),
    },
  );
  const dkRaw = rmsNormBackward(dkr, {
    x: s.kRaw.reshape([T, KvH, hd]),
    w: w.k_norm,
    rstd: s.rstdK,
  }, {
    ...normDw("k_norm"),
  });
  dq.dispose();
  dk.dispose();
  const dX = projectionBackward(ctx, "q_proj", {
    x: s.x,
    dy: dqRaw.reshape([T, H * hd]),
    xa: s.loraXa.q_proj,
    grads,
  });
  const kv = [["k_proj", dkRaw], ["v_proj", dv]] as const;
  for (const [name, d] of kv) {
    const dy = d.reshape([T, KvH * hd]);
    projectionBackward(ctx, name, { x: s.x, dy, xa: s.loraXa[name], grads, into: dX });
  }
  for (const t of [dqRaw, dkRaw, dv]) t.dispose();
  const dIn = rmsNormBackward(dX, { x: s.hIn, w: w.input_layernorm, rstd: s.rstdIn }, {
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
