/**
 * One Gemma 3 decoder layer, forward, assembled from the kernels:
 *
 *   h ← h + post_attention_norm(o_proj(attn(rope(q_norm(q)), rope(k_norm(k)), v)))   x = input_norm(h)
 *   h ← h + post_feedforward_norm(down(gelu_tanh(gate(x₂)) · up(x₂)))               x₂ = pre_ffw_norm(h)
 *
 * With `save: true`, every intermediate the backward pass needs is kept (see
 * {@linkcode LayerSaved}); without it, intermediates go back to the pool as soon as they are
 * consumed. Three steps may run fused (`layer_fusion.ts`, chosen per adapter by the tuner):
 * q/k norm with RoPE, the post-attention residual norm with the pre-feedforward norm, and —
 * without saving — GeGLU in the up-projection's epilogue and the post-feedforward residual norm
 * with the next layer's input norm ({@linkcode forwardLayers}).
 *
 * @module
 */

import { rmsNorm } from "../kernels/rms_norm.ts";
import { matmul } from "../kernels/matmul.ts";
import { loraLinear } from "../kernels/lora.ts";
import { rope, type RopeTable } from "../kernels/rope.ts";
import { geglu } from "../kernels/geglu.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { Gpu } from "../kernels/gpu.ts";
import type { TokenBatch } from "./batch.ts";
import type { Gemma3Config } from "./config.ts";
import type { Gemma3Weights, LayerWeightName, LoraTarget } from "./gemma3_weights.ts";
import type { LoraPair } from "./lora.ts";
import { chainsNorms, gegluUpBench, normRopeBench, useFusion } from "./layer_fusion.ts";

/** What one layer's forward needs besides its input. */
export interface LayerContext {
  /** Model config. */
  readonly config: Gemma3Config;
  /** This layer's weights. */
  readonly weights: Readonly<Record<LayerWeightName, Tensor>>;
  /** This layer's LoRA pairs, or null when LoRA is off. */
  readonly lora: Readonly<Partial<Record<LoraTarget, LoraPair>>> | null;
  /** alpha / r. */
  readonly loraScale: number;
  /** RoPE table of this layer's base. */
  readonly rope: RopeTable;
  /** Sliding window (0 on global layers). */
  readonly window: number;
}

/**
 * The attention step: gets roped q `[T, H, hd]`, roped k and v `[T, KvH, hd]`, returns the
 * attention output `[T, H, hd]` and optionally the per-row logsumexp (prefill and decode differ
 * only here).
 */
export type AttendFn = (
  q: Tensor,
  k: Tensor,
  v: Tensor,
  window: number,
  wantLse: boolean,
) => { out: Tensor; lse: Tensor | null };

/**
 * The layer-level surface of a decoder model that its passes (full forward, training,
 * KV-cache prefill and decode) are assembled from; `Gemma3` implements it.
 */
export interface LayerStack {
  /** Runtime. */
  readonly gpu: Gpu;
  /** Hyperparameters. */
  readonly config: Gemma3Config;
  /** Base weights (embedding `[V, D]`, tied with the head; final norm `[D]`; layers). */
  readonly weights: Gemma3Weights;
  /** Scale of the embedding output. */
  readonly embedScale: number;
  /** Attention scale. */
  readonly attentionScale: number;
  /**
   * The context of layer `l` (weights, adapter, RoPE table, window).
   *
   * @param l Layer index.
   * @param maxPositions Largest position + 1 that will be roped.
   */
  layerContext(l: number, maxPositions: number): LayerContext;
  /**
   * The prefill attention step of a padded batch.
   *
   * @param batch Token batch.
   */
  prefillAttend(batch: TokenBatch): AttendFn;
}

/** Everything a layer's backward needs. All f32, T = tokens. */
export interface LayerSaved {
  /** Layer input `[T, D]` (copy). */
  readonly hIn: Tensor;
  /** 1/rms of input_layernorm `[T]`. */
  readonly rstdIn: Tensor;
  /** input_layernorm output `[T, D]`. */
  readonly x: Tensor;
  /** q before q_norm `[T, H·hd]`, its 1/rms `[T·H]`. */
  readonly qRaw: Tensor;
  readonly rstdQ: Tensor;
  /** k before k_norm `[T, KvH·hd]`, its 1/rms `[T·KvH]`. */
  readonly kRaw: Tensor;
  readonly rstdK: Tensor;
  /** Roped q `[T, H, hd]`, roped k `[T, KvH, hd]`, v `[T, KvH·hd]`. */
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  /** Attention output `[T, H, hd]` and its logsumexp `[T, H]`. */
  readonly attn: Tensor;
  readonly lse: Tensor;
  /** o_proj output `[T, D]`, post-attention norm 1/rms `[T]`. */
  readonly o: Tensor;
  readonly rstdO: Tensor;
  /** Residual after attention `[T, D]` (copy), pre-ffw norm 1/rms and output. */
  readonly hMid: Tensor;
  readonly rstdMid: Tensor;
  readonly x2: Tensor;
  /** gate and up projections `[T, I]`, GeGLU output `[T, I]`. */
  readonly gate: Tensor;
  readonly up: Tensor;
  readonly act: Tensor;
  /** down_proj output `[T, D]`, post-ffw norm 1/rms `[T]`. */
  readonly down: Tensor;
  readonly rstdDown: Tensor;
  /** LoRA `x·Aᵀ` `[T, r]` per adapted target. */
  readonly loraXa: Readonly<Partial<Record<LoraTarget, Tensor>>>;
}

/** Input of {@linkcode projection}. */
export interface ProjectionInput {
  /** Input `[T, in]`. */
  readonly x: Tensor;
  /** Receives `x·Aᵀ` `[T, r]` under the projection's name when saving (otherwise it is freed). */
  readonly xa?: Partial<Record<LoraTarget, Tensor>>;
  /** GeGLU epilogue: the result is `gelu_tanh(gate) · y` (gate f32 `[T, out]`). */
  readonly gate?: Tensor;
}

/**
 * A projection with its optional LoRA update: `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ`.
 *
 * @param ctx Layer context.
 * @param name Projection.
 * @param input The input and where `x·Aᵀ` goes when saving.
 * @returns `[T, out]`.
 * @example
 * ```ts ignore
 * const q = projection(ctx, "q_proj", { x }); // [T, H·hd]
 * ```
 */
export function projection(ctx: LayerContext, name: LoraTarget, input: ProjectionInput): Tensor {
  const { x, xa, gate } = input;
  const pair = ctx.lora?.[name];
  if (!pair) return matmul(x, ctx.weights[name], { gate });
  const { y, xa: down } = loraLinear(x, { w: ctx.weights[name], ...pair }, {
    scale: ctx.loraScale,
    gate,
  });
  if (xa) xa[name] = down; // [T, r], kept for the backward pass
  else down.dispose();
  return y;
}

/** Options of {@linkcode decoderLayerForward}. */
export interface LayerForwardOptions {
  /** i32 `[T]` RoPE positions. */
  readonly positions: Tensor;
  /** The attention step (prefill or decode). */
  readonly attend: AttendFn;
  /** Keep what the backward pass needs (default false). */
  readonly save?: boolean;
  /**
   * Receives `attnOut` (o_proj output `[T, D]`) and `mlpOut` (down_proj output `[T, D]`); the
   * tensors are only valid during the call (copy them).
   */
  readonly trace?: (name: "attnOut" | "mlpOut", t: Tensor) => void;
  /**
   * Without saving: `input_layernorm(h)` `[T, D]` as the previous layer's post-feedforward norm
   * wrote it (its `nextInputNorm`); the layer uses it instead of norming `h`, and frees it.
   */
  readonly inputNorm?: Tensor;
  /**
   * Without saving: the post-feedforward residual norm also writes `norm(h)·(1 + w)` into
   * `out` `[T, D]` — the next layer's input norm, chained (see {@linkcode forwardLayers}).
   */
  readonly nextInputNorm?: { readonly w: Tensor; readonly out: Tensor };
}

/**
 * Runs one decoder layer on `h` `[T, D]`, updating it in place.
 *
 * @param ctx Layer context.
 * @param h Residual stream `[T, D]` (updated in place).
 * @param options Positions, the attention step, whether to save for backward, a trace.
 * @returns The saved activations when `options.save`, else null.
 * @example
 * ```ts ignore
 * decoderLayerForward(model.layerContext(l, batch.seq), h, { positions, attend });
 * const saved = decoderLayerForward(ctx, h, { positions, attend, save: true });
 * ```
 */
export function decoderLayerForward(
  ctx: LayerContext,
  h: Tensor,
  options: LayerForwardOptions & { readonly save: true },
): LayerSaved;
export function decoderLayerForward(
  ctx: LayerContext,
  h: Tensor,
  options: LayerForwardOptions,
): LayerSaved | null;
export function decoderLayerForward(
  ctx: LayerContext,
  h: Tensor,
  options: LayerForwardOptions,
): LayerSaved | null {
  const { positions, attend, save = false, trace, inputNorm, nextInputNorm } = options;
  if (save && (inputNorm || nextInputNorm)) {
    throw new Error(
      "decoderLayerForward: inputNorm and nextInputNorm are for forwards without saving",
    );
  }
  const { config: c, weights: w } = ctx;
  const tokens = h.shape[0];
  const eps = c.rmsNormEps;
  const gpu = h.gpu;
  const hIn = save ? copyOf(h) : null;
  const rstdIn = save ? emptyLike(gpu, [tokens]) : undefined;
  const x = inputNorm ?? rmsNorm(h, w.input_layernorm, { eps, rstd: rstdIn });
  const loraXa: Partial<Record<LoraTarget, Tensor>> = {};
  const xa = save ? loraXa : undefined;

  const qRaw = projection(ctx, "q_proj", { x, xa }); // [T, H·hd]
  const kRaw = projection(ctx, "k_proj", { x, xa }); // [T, KvH·hd]
  const vFlat = projection(ctx, "v_proj", { x, xa }); // [T, KvH·hd]
  const v = vFlat.reshape([tokens, c.numKvHeads, c.headDim]);
  const rstdQ = save ? emptyLike(gpu, [tokens * c.numHeads]) : undefined;
  const rstdK = save ? emptyLike(gpu, [tokens * c.numKvHeads]) : undefined;
  const fuseRope = useFusion(gpu, {
    fusion: "norm_rope",
    tokens,
    shape: `h${c.numHeads}:d${c.headDim}:${w.q_norm.dtype}`,
    prepare: () =>
      normRopeBench(gpu, {
        tokens,
        heads: c.numHeads,
        headDim: c.headDim,
        wDtype: w.q_norm.dtype,
        base: ctx.rope.config.base,
      }),
  });
  // q/k norm, then RoPE: one launch each with the fusion, else norm and RoPE in place.
  const normRope = (raw: Tensor, heads: number, wNorm: Tensor, rstd: Tensor | undefined) => {
    const x3 = raw.reshape([tokens, heads, c.headDim]);
    if (fuseRope) return rmsNorm(x3, wNorm, { eps, rstd, rope: { table: ctx.rope, positions } });
    const normed = rmsNorm(x3, wNorm, { eps, rstd });
    return rope(normed, positions, { table: ctx.rope, out: normed });
  };
  const q = normRope(qRaw, c.numHeads, w.q_norm, rstdQ);
  const k = normRope(kRaw, c.numKvHeads, w.k_norm, rstdK);
  const { out: attn, lse } = attend(q, k, v, ctx.window, save);
  const o = projection(ctx, "o_proj", { x: attn.reshape([tokens, c.numHeads * c.headDim]), xa });
  if (trace) trace("attnOut", o);
  const rstdO = save ? emptyLike(gpu, [tokens]) : undefined;
  const rstdMid = save ? emptyLike(gpu, [tokens]) : undefined;
  const d = c.hiddenSize;
  const chain = chainsNorms(gpu, { tokens, d, wDtype: w.pre_feedforward_layernorm.dtype });
  // h ← h + post_attention_norm(o), then x₂ = pre_feedforward_norm(h): one launch when chained.
  let x2: Tensor;
  if (chain) {
    x2 = emptyLike(gpu, [tokens, d]);
    const next = { w: w.pre_feedforward_layernorm, out: x2, rstd: rstdMid };
    rmsNorm(o, w.post_attention_layernorm, { eps, residual: h, out: h, rstd: rstdO, next });
  } else {
    rmsNorm(o, w.post_attention_layernorm, { eps, residual: h, out: h, rstd: rstdO });
    x2 = rmsNorm(h, w.pre_feedforward_layernorm, { eps, rstd: rstdMid });
  }
  const hMid = save ? copyOf(h) : null;

  const gate = projection(ctx, "gate_proj", { x: x2, xa });
  const inter = c.intermediateSize;
  const wUp = w.up_proj;
  // Without saving, GeGLU can run in the up-projection's epilogue (the backward pass needs `up`).
  const fuseGeglu = !save && useFusion(gpu, {
    fusion: "geglu_up",
    tokens,
    shape: `n${inter}:k${d}:${wUp.dtype}`,
    prepare: () => gegluUpBench(gpu, { tokens, n: inter, k: d, wDtype: wUp.dtype }),
  });
  const up = fuseGeglu ? null : projection(ctx, "up_proj", { x: x2, xa });
  const act = up ? geglu(gate, up) : projection(ctx, "up_proj", { x: x2, xa, gate });
  const down = projection(ctx, "down_proj", { x: act, xa });
  if (trace) trace("mlpOut", down);
  const rstdDown = save ? emptyLike(gpu, [tokens]) : undefined;
  rmsNorm(down, w.post_feedforward_layernorm, {
    eps,
    residual: h,
    out: h,
    rstd: rstdDown,
    next: nextInputNorm,
  });

  if (!save) {
    for (const t of [x, qRaw, kRaw, q, k, vFlat, attn, o, x2, gate, up, act, down]) t?.dispose();
    lse?.dispose();
    return null;
  }
  return {
    hIn: hIn!,
    rstdIn: rstdIn!,
    x,
    qRaw,
    rstdQ: rstdQ!,
    kRaw,
    rstdK: rstdK!,
    q,
    k,
    v: vFlat,
    attn,
    lse: lse!,
    o,
    rstdO: rstdO!,
    hMid: hMid!,
    rstdMid: rstdMid!,
    x2,
    gate,
    up: up!,
    act,
    down,
    rstdDown: rstdDown!,
    loraXa,
  };
}

/** Options of {@linkcode forwardLayers}. */
export interface ForwardLayersOptions {
  /** i32 `[T]` RoPE positions. */
  readonly positions: Tensor;
  /** Largest position + 1 that will be roped (for `layerContext`). */
  readonly maxPositions: number;
  /** The attention step of each layer. */
  readonly attendFor: (layer: number) => AttendFn;
  /** Called with the residual stream before each layer (e.g. to keep a copy of its input). */
  readonly beforeLayer?: (layer: number, h: Tensor) => void;
  /** Called with the residual stream after each layer. */
  readonly afterLayer?: (layer: number, h: Tensor) => void;
  /** Receives each layer's o_proj / down_proj outputs (valid only during the call). */
  readonly trace?: (layer: number, name: "attnOut" | "mlpOut", t: Tensor) => void;
}

/**
 * Runs every decoder layer on `h` `[T, D]` in place, without saving. Where the tuner chains
 * norms (`norm_chain`), each layer's post-feedforward residual norm also writes the next layer's
 * input norm, so a layer begins with its projections.
 *
 * @param stack The model's layers.
 * @param h Residual stream `[T, D]` (updated in place).
 * @param options Positions, attention per layer, hooks.
 * @example
 * ```ts ignore
 * forwardLayers(model, h, { positions, maxPositions: batch.seq, attendFor: () => attend });
 * ```
 */
export function forwardLayers(stack: LayerStack, h: Tensor, options: ForwardLayersOptions): void {
  const { config: c, gpu } = stack;
  const tokens = h.shape[0];
  const layers = stack.weights.layers;
  const wDtype = layers[0]?.input_layernorm.dtype ?? "f32";
  const chain = chainsNorms(gpu, { tokens, d: c.hiddenSize, wDtype });
  const trace = options.trace;
  let inputNorm: Tensor | undefined;
  for (let l = 0; l < c.numLayers; l++) {
    options.beforeLayer?.(l, h);
    const nextInputNorm = chain && l + 1 < c.numLayers
      ? { w: layers[l + 1].input_layernorm, out: emptyLike(gpu, [tokens, c.hiddenSize]) }
      : undefined;
    decoderLayerForward(stack.layerContext(l, options.maxPositions), h, {
      positions: options.positions,
      attend: options.attendFor(l),
      trace: trace && ((name, t) => trace(l, name, t)),
      inputNorm,
      nextInputNorm,
    });
    inputNorm = nextInputNorm?.out;
    options.afterLayer?.(l, h);
  }
}

/**
 * Gives every saved tensor back to the pool.
 *
 * @param s Saved activations.
 */
export function disposeLayerSaved(s: LayerSaved): void {
  for (const [key, t] of Object.entries(s)) {
    if (key === "loraXa") {
      for (const xa of Object.values(t as Record<string, Tensor>)) xa.dispose();
    } else (t as Tensor).dispose();
  }
}

function emptyLike(gpu: Tensor["gpu"], shape: number[]): Tensor {
  return Tensor.empty(gpu, shape, "f32");
}

/**
 * A copy of a tensor (stream-ordered GPU copy).
 *
 * @param t Source (unsplit).
 * @returns New tensor with the same contents.
 */
export function copyOf(t: Tensor): Tensor {
  const c = Tensor.empty(t.gpu, t.shape, t.dtype);
  t.gpu.copy(t.buffer, 0, c.buffer, 0, Math.max(4, t.parts[0].bytes));
  return c;
}
