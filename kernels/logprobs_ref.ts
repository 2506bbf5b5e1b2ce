/**
 * Plain-TS references (float64 accumulation) for the log-prob kernels in `logprobs.ts`.
 *
 * @module
 */

/** Sizes of a log-prob problem. */
export interface LogprobsDims {
  /** Tokens T (rows of h). */
  readonly tokens: number;
  /** Hidden size D. */
  readonly dim: number;
  /** Vocabulary size V (rows of E). */
  readonly vocab: number;
}

/** Result of {@linkcode tokenLogprobsRef}. */
export interface TokenLogprobsRef {
  /** `log softmax(h·Eᵀ / temperature)[target]` per token. */
  readonly logprobs: Float64Array;
  /** `logsumexp(h·Eᵀ / temperature)` per token. */
  readonly lse: Float64Array;
}

/**
 * Reference for `tokenLogprobs`: `log softmax(h·Eᵀ / temperature)[target]` and the logsumexp,
 * in float64, one vocabulary row at a time (O(V) memory per token).
 *
 * @param h Hidden states `[T, D]` row-major.
 * @param embedding Embedding `[V, D]` row-major (pass bf16-rounded values for a bf16 kernel).
 * @param targets Target ids `[T]`.
 * @param dims T, D, V.
 * @param temperature Logit divisor (default 1).
 * @returns Log-probs and logsumexp per token.
 * @example
 * ```ts
 * import { tokenLogprobsRef } from "./logprobs_ref.ts";
 * const r = tokenLogprobsRef([1, 0], [1, 0, 0, 1], [0], { tokens: 1, dim: 2, vocab: 2 });
 * console.log(r.logprobs[0]); // log(e / (e + 1)) ≈ -0.3133
 * ```
 */
export function tokenLogprobsRef(
  h: ArrayLike<number>,
  embedding: ArrayLike<number>,
  targets: ArrayLike<number>,
  dims: LogprobsDims,
  temperature = 1,
): TokenLogprobsRef {
  const { tokens, dim, vocab } = dims;
  const logprobs = new Float64Array(tokens);
  const lse = new Float64Array(tokens);
  const x = new Float64Array(vocab);
  for (let t = 0; t < tokens; t++) {
    let m = -Infinity;
    for (let v = 0; v < vocab; v++) {
      let acc = 0;
      for (let d = 0; d < dim; d++) acc += h[t * dim + d] * embedding[v * dim + d];
      x[v] = acc / temperature;
      if (x[v] > m) m = x[v];
    }
    let s = 0;
    for (let v = 0; v < vocab; v++) s += Math.exp(x[v] - m);
    lse[t] = m + Math.log(s);
    const target = targets[t];
    logprobs[t] = target >= 0 && target < vocab ? x[target] - lse[t] : NaN;
  }
  return { logprobs, lse };
}

/**
 * Reference for `vocabLogits`: `h·Eᵀ` in float64.
 *
 * @param h Hidden states `[T, D]` row-major.
 * @param embedding Embedding `[V, D]` row-major.
 * @param dims T, D, V.
 * @returns Logits `[T, V]` row-major.
 */
export function vocabLogitsRef(
  h: ArrayLike<number>,
  embedding: ArrayLike<number>,
  dims: LogprobsDims,
): Float64Array {
  const { tokens, dim, vocab } = dims;
  const out = new Float64Array(tokens * vocab);
  for (let t = 0; t < tokens; t++) {
    for (let v = 0; v < vocab; v++) {
      let acc = 0;
      for (let d = 0; d < dim; d++) acc += h[t * dim + d] * embedding[v * dim + d];
      out[t * vocab + v] = acc;
    }
  }
  return out;
}

/** Result of {@linkcode tokenLogprobsBackwardRef}. */
export interface TokenLogprobsBackwardRef {
  /** `d loss / d h`, `[T, D]`. */
  readonly dh: Float64Array;
  /** `d loss / d E`, `[V, D]`. */
  readonly dEmbedding: Float64Array;
}

/**
 * Reference for `tokenLogprobsBackward`: the gradients of `loss = Σ_t grad_t · logp_t` with
 * `logp_t = z_t[target_t] − logsumexp(z_t)` and `z = h·Eᵀ / τ`, in float64:
 * `dz_tv = grad_t · (1[v = target_t] − softmax(z_t)_v) / τ`, `dh_t = Σ_v dz_tv · E_v`,
 * `dE_v = Σ_t dz_tv · h_t`. A target outside `[0, V)` contributes only the softmax term.
 *
 * @param h Hidden states `[T, D]` row-major.
 * @param embedding Embedding `[V, D]` row-major (pass bf16-rounded values for a bf16 kernel).
 * @param targets Target ids `[T]`.
 * @param grad `d loss / d logp_t`, `[T]`.
 * @param dims T, D, V.
 * @param temperature Logit divisor (default 1).
 * @returns dh and dE.
 * @example
 * ```ts
 * import { tokenLogprobsBackwardRef } from "./logprobs_ref.ts";
 * const r = tokenLogprobsBackwardRef([1, 0], [1, 0, 0, 1], [0], [1], { tokens: 1, dim: 2, vocab: 2 });
 * console.log(r.dh); // (1 − p0)·E0 − p1·E1 = [0.269, -0.269]
 * ```
 */
export function tokenLogprobsBackwardRef(
  h: ArrayLike<number>,
  embedding: ArrayLike<number>,
  targets: ArrayLike<number>,
  grad: ArrayLike<number>,
  dims: LogprobsDims,
  temperature = 1,
): TokenLogprobsBackwardRef {
  const { tokens, dim, vocab } = dims;
  const dh = new Float64Array(tokens * dim);
  const dEmbedding = new Float64Array(vocab * dim);
  const { lse } = tokenLogprobsRef(h, embedding, targets, dims, temperature);
  for (let t = 0; t < tokens; t++) {
    const g = grad[t] / temperature;
    if (g === 0) continue;
    for (let v = 0; v < vocab; v++) {
      let acc = 0;
      for (let d = 0; d < dim; d++) acc += h[t * dim + d] * embedding[v * dim + d];
      const dz = g * ((v === targets[t] ? 1 : 0) - Math.exp(acc / temperature - lse[t]));
      for (let d = 0; d < dim; d++) {
        dh[t * dim + d] += dz * embedding[v * dim + d];
        dEmbedding[v * dim + d] += dz * h[t * dim + d];
      }
    }
  }
  return { dh, dEmbedding };
}
