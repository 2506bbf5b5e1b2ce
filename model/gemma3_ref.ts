/**
 * A plain-TypeScript float64 Gemma 3 forward pass: the reference that finite-difference gradient
 * checks and small tests compare the GPU model against. Slow by design (no batching, no cache);
 * written from the fixture README's "Forward semantics".
 *
 * @module
 */

import type { Gemma3Config } from "./config.ts";
import {
  LAYER_WEIGHTS,
  type LayerWeightName,
  LORA_TARGETS,
  type LoraTarget,
} from "./gemma3_weights.ts";

/** The config fields the reference needs (a `Gemma3Config` satisfies it). */
export type RefConfig = Pick<
  Gemma3Config,
  | "vocabSize"
  | "hiddenSize"
  | "intermediateSize"
  | "numLayers"
  | "numHeads"
  | "numKvHeads"
  | "headDim"
  | "slidingWindow"
  | "layerTypes"
  | "ropeTheta"
  | "ropeLocalBaseFreq"
  | "queryPreAttnScalar"
  | "rmsNormEps"
>;

export { LAYER_WEIGHTS, type LayerWeightName, LORA_TARGETS, type LoraTarget };

/** Weights for the reference, float64, HF `[out, in]` layout. */
export interface RefWeights {
  /** `[vocab, hidden]`. */
  readonly embed: Float64Array;
  /** Per layer, by name. */
  readonly layers: readonly Readonly<Record<LayerWeightName, Float64Array>>[];
  /** `[hidden]`. */
  readonly finalNorm: Float64Array;
}

/** A LoRA adapter for the reference: per layer, per target, A `[r, in]` and B `[out, r]`. */
export interface RefLora {
  readonly rank: number;
  readonly scale: number;
  readonly layers: readonly Partial<Record<LoraTarget, { a: Float64Array; b: Float64Array }>>[];
}

/** Shape of a projection and its optional LoRA pair (A `[rank, in]`, B `[out, rank]`). */
interface LinearShape {
  readonly rows: number;
  readonly inDim: number;
  readonly outDim: number;
  readonly lora?: { a: Float64Array; b: Float64Array };
  readonly rank?: number;
  readonly scale?: number;
}

/** `y = x·Wᵀ (+ scale·(x·Aᵀ)·Bᵀ)`: x `[rows, in]`, W `[out, in]` → `[rows, out]`. */
function linear(x: Float64Array, w: Float64Array, shape: LinearShape): Float64Array {
  const { rows, inDim, outDim, lora, rank = 0, scale = 0 } = shape;
  const y = new Float64Array(rows * outDim);
  for (let t = 0; t < rows; t++) {
    for (let o = 0; o < outDim; o++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[t * inDim + i] * w[o * inDim + i];
      y[t * outDim + o] = s;
    }
    if (lora) {
      const xa = new Float64Array(rank);
      for (let r = 0; r < rank; r++) {
        let s = 0;
        for (let i = 0; i < inDim; i++) s += x[t * inDim + i] * lora.a[r * inDim + i];
        xa[r] = s;
      }
      for (let o = 0; o < outDim; o++) {
        let s = 0;
        for (let r = 0; r < rank; r++) s += xa[r] * lora.b[o * rank + r];
        y[t * outDim + o] += scale * s;
      }
    }
  }
  return y;
}

/** Gemma RMS norm of each `[dim]` row of x `[rows, dim]`, weight `(1 + w)`. */
function rmsNorm(
  x: Float64Array,
  w: Float64Array,
  shape: { readonly rows: number; readonly dim: number; readonly eps: number },
): Float64Array {
  const { rows, dim, eps } = shape;
  const y = new Float64Array(rows * dim);
  for (let t = 0; t < rows; t++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[t * dim + i] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[t * dim + i] = x[t * dim + i] * inv * (1 + w[i]);
  }
  return y;
}

/** Rotates x `[tokens, heads, headDim]` in place (positions 0..tokens−1, half-split pairs). */
function rope(
  x: Float64Array,
  shape: {
    readonly tokens: number;
    readonly heads: number;
    readonly headDim: number;
    readonly base: number;
  },
): void {
  const { tokens, heads, headDim, base } = shape;
  const half = headDim / 2;
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * headDim;
      for (let j = 0; j < half; j++) {
        const angle = t * Math.pow(base, (-2 * j) / headDim);
        const c = Math.cos(angle), s = Math.sin(angle);
        const x1 = x[o + j], x2 = x[o + j + half];
        x[o + j] = x1 * c - x2 * s;
        x[o + j + half] = x2 * c + x1 * s;
      }
    }
  }
}

function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/**
 * Runs one sequence (positions 0..n-1) through the model in float64.
 *
 * @param config Model config.
 * @param weights Float64 weights.
 * @param ids Token ids.
 * @param lora Optional LoRA adapter.
 * @returns Logits `[n, vocab]`, row-major.
 */
export function gemma3ForwardRef(
  config: RefConfig,
  weights: RefWeights,
  ids: readonly number[],
  lora?: RefLora,
): Float64Array {
  const n = ids.length, d = config.hiddenSize, hd = config.headDim;
  const nh = config.numHeads, nkv = config.numKvHeads, inter = config.intermediateSize;
  const group = nh / nkv;
  const eps = config.rmsNormEps;
  const embedScale = Math.sqrt(d);
  let h = new Float64Array(n * d);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < d; i++) h[t * d + i] = weights.embed[ids[t] * d + i] * embedScale;
  }
  for (let l = 0; l < config.numLayers; l++) {
    const w = weights.layers[l];
    const lo = lora?.layers[l] ?? {};
    const rank = lora?.rank ?? 0, scale = lora?.scale ?? 0;
    const sliding = config.layerTypes[l] === "sliding_attention";
    const base = sliding ? config.ropeLocalBaseFreq : config.ropeTheta;
    const x = rmsNorm(h, w.input_layernorm, { rows: n, dim: d, eps });
    // Projection `name` of input `[n, inDim]` with this layer's LoRA pair.
    const project = (name: LoraTarget, input: Float64Array, inDim: number, outDim: number) =>
      linear(input, w[name], { rows: n, inDim, outDim, lora: lo[name], rank, scale });
    // q or k: projected, per-head norm, roped: `[n, heads, hd]`.
    const headsOf = (name: "q_proj" | "k_proj", heads: number, norm: Float64Array) => {
      const y = rmsNorm(project(name, x, d, heads * hd), norm, { rows: n * heads, dim: hd, eps });
      rope(y, { tokens: n, heads, headDim: hd, base });
      return y;
    };
    const q = headsOf("q_proj", nh, w.q_norm);
    const k = headsOf("k_proj", nkv, w.k_norm);
    const v = project("v_proj", x, d, nkv * hd);
    const attn = new Float64Array(n * nh * hd);
    const scaleQk = Math.pow(config.queryPreAttnScalar, -0.5);
    for (let t = 0; t < n; t++) {
      for (let head = 0; head < nh; head++) {
        const kvh = Math.floor(head / group);
        const lo0 = sliding ? Math.max(0, t - config.slidingWindow + 1) : 0;
        const scores: number[] = [];
        let m = -Infinity;
        for (let j = lo0; j <= t; j++) {
          let s = 0;
          for (let i = 0; i < hd; i++) {
            s += q[(t * nh + head) * hd + i] * k[(j * nkv + kvh) * hd + i];
          }
          s *= scaleQk;
          scores.push(s);
          m = Math.max(m, s);
        }
        let z = 0;
        for (const s of scores) z += Math.exp(s - m);
        for (let j = lo0; j <= t; j++) {
          const p = Math.exp(scores[j - lo0] - m) / z;
          for (let i = 0; i < hd; i++) {
            attn[(t * nh + head) * hd + i] += p * v[(j * nkv + kvh) * hd + i];
          }
        }
      }
    }
    const o = project("o_proj", attn, nh * hd, d);
    const postAttn = rmsNorm(o, w.post_attention_layernorm, { rows: n, dim: d, eps });
    for (let i = 0; i < h.length; i++) h[i] += postAttn[i];
    const x2 = rmsNorm(h, w.pre_feedforward_layernorm, { rows: n, dim: d, eps });
    const gate = project("gate_proj", x2, d, inter);
    const up = project("up_proj", x2, d, inter);
    for (let i = 0; i < gate.length; i++) gate[i] = geluTanh(gate[i]) * up[i];
    const down = project("down_proj", gate, inter, d);
    const postFfw = rmsNorm(down, w.post_feedforward_layernorm, { rows: n, dim: d, eps });
    const next = new Float64Array(h.length);
    for (let i = 0; i < h.length; i++) next[i] = h[i] + postFfw[i];
    h = next;
  }
  const hn = rmsNorm(h, weights.finalNorm, { rows: n, dim: d, eps });
  return linear(hn, weights.embed, { rows: n, inDim: d, outDim: config.vocabSize });
}

/**
 * Completion-only next-token loss of one sequence in float64: mean over masked targets of
 * `−log softmax(logits[t])[ids[t+1]]` where `mask[t+1] = 1`.
 *
 * @param logits `[n, vocab]`.
 * @param target Token ids (length n), the loss mask per position (length n; target t+1 counts
 *   iff `mask[t+1]`) and the vocabulary size.
 * @returns Sum of negative log-probs and the count of counted targets.
 * @example
 * ```ts
 * import { nllRef } from "./gemma3_ref.ts";
 * // Two positions over a vocabulary of 2; only target ids[1] = 1 counts.
 * const logits = Float64Array.from([0, 0, 5, 5]);
 * const r = nllRef(logits, { ids: [0, 1], mask: [0, 1], vocab: 2 });
 * console.log(r.count, r.sum.toFixed(4)); // 1 "0.6931"
 * ```
 */
export function nllRef(
  logits: Float64Array,
  target: {
    readonly ids: readonly number[];
    readonly mask: readonly number[];
    readonly vocab: number;
  },
): { sum: number; count: number } {
  const { ids, mask, vocab } = target;
  let sum = 0, count = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    if (!mask[t + 1]) continue;
    let m = -Infinity;
    for (let v = 0; v < vocab; v++) m = Math.max(m, logits[t * vocab + v]);
    let z = 0;
    for (let v = 0; v < vocab; v++) z += Math.exp(logits[t * vocab + v] - m);
    sum -= logits[t * vocab + ids[t + 1]] - m - Math.log(z);
    count++;
  }
  return { sum, count };
}
