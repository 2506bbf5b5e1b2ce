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

function linear(
  x: Float64Array,
  rows: number,
  inDim: number,
  w: Float64Array,
  outDim: number,
  lora?: { a: Float64Array; b: Float64Array },
  rank = 0,
  scale = 0,
): Float64Array {
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

function rmsNorm(x: Float64Array, rows: number, dim: number, w: Float64Array, eps: number) {
  const y = new Float64Array(rows * dim);
  for (let t = 0; t < rows; t++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[t * dim + i] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[t * dim + i] = x[t * dim + i] * inv * (1 + w[i]);
  }
  return y;
}

function rope(x: Float64Array, tokens: number, heads: number, headDim: number, base: number) {
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
    const x = rmsNorm(h, n, d, w.input_layernorm, eps);
    const q = rmsNorm(
      linear(x, n, d, w.q_proj, nh * hd, lo.q_proj, rank, scale),
      n * nh,
      hd,
      w.q_norm,
      eps,
    );
    const k = rmsNorm(
      linear(x, n, d, w.k_proj, nkv * hd, lo.k_proj, rank, scale),
      n * nkv,
      hd,
      w.k_norm,
      eps,
    );
    const v = linear(x, n, d, w.v_proj, nkv * hd, lo.v_proj, rank, scale);
    rope(q, n, nh, hd, base);
    rope(k, n, nkv, hd, base);
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
    const o = linear(attn, n, nh * hd, w.o_proj, d, lo.o_proj, rank, scale);
    const postAttn = rmsNorm(o, n, d, w.post_attention_layernorm, eps);
    for (let i = 0; i < h.length; i++) h[i] += postAttn[i];
    const x2 = rmsNorm(h, n, d, w.pre_feedforward_layernorm, eps);
    const gate = linear(x2, n, d, w.gate_proj, inter, lo.gate_proj, rank, scale);
    const up = linear(x2, n, d, w.up_proj, inter, lo.up_proj, rank, scale);
    for (let i = 0; i < gate.length; i++) gate[i] = geluTanh(gate[i]) * up[i];
    const down = linear(gate, n, inter, w.down_proj, d, lo.down_proj, rank, scale);
    const postFfw = rmsNorm(down, n, d, w.post_feedforward_layernorm, eps);
    const next = new Float64Array(h.length);
    for (let i = 0; i < h.length; i++) next[i] = h[i] + postFfw[i];
    h = next;
  }
  const hn = rmsNorm(h, n, d, weights.finalNorm, eps);
  return linear(hn, n, d, weights.embed, config.vocabSize);
}

/**
 * Completion-only next-token loss of one sequence in float64: mean over masked targets of
 * `−log softmax(logits[t])[ids[t+1]]` where `mask[t+1] = 1`.
 *
 * @param logits `[n, vocab]`.
 * @param ids Token ids (length n).
 * @param mask Loss mask per position (length n); target t+1 counts iff `mask[t+1]`.
 * @param vocab Vocabulary size.
 * @returns Sum of negative log-probs and the count of counted targets.
 */
export function nllRef(
  logits: Float64Array,
  ids: readonly number[],
  mask: readonly number[],
  vocab: number,
): { sum: number; count: number } {
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
