/**
 * Plain-TS references (float64 accumulation) of the log-prob kernels: `tokenLogprobs`
 * (logprobs.ts) and `tokenLogprobsBackward` (logprobs_backward.ts).
 *
 * @module
 */

/** Sizes of a log-prob problem and the logit divisor. */
export interface LogprobsRefOptions {
  /** Tokens T (rows of h). */
  readonly tokens: number;
  /** Hidden size D. */
  readonly dim: number;
  /** Vocabulary size V (rows of E). */
  readonly vocab: number;
  /** Logit divisor (default 1). */
  readonly temperature?: number;
}

/** What a log-prob reference scores (row-major). */
export interface LogprobsRefInputs {
  /** Hidden states `[T, D]`. */
  readonly h: ArrayLike<number>;
  /** Embedding `[V, D]` (pass bf16-rounded values for a bf16 kernel). */
  readonly embedding: ArrayLike<number>;
  /** Target ids `[T]`. */
  readonly targets: ArrayLike<number>;
}

/** Result of {@linkcode tokenLogprobsRef}. */
export interface TokenLogprobsRef {
  /** `log softmax(h·Eᵀ / temperature)[target]` per token. */
  readonly logprobs: Float64Array;
  /** `logsumexp(h·Eᵀ / temperature)` per token. */
  readonly lse: Float64Array;
  /** Entropy `−Σ_v p_v log p_v` of `p = softmax(h·Eᵀ / temperature)` per token. */
  readonly entropy: Float64Array;
}

/** `h_t · E_v` in float64. */
function dotRow(inputs: LogprobsRefInputs, dim: number, at: { t: number; v: number }): number {
  const { h, embedding } = inputs;
  let acc = 0;
  for (let d = 0; d < dim; d++) acc += h[at.t * dim + d] * embedding[at.v * dim + d];
  return acc;
}

/**
 * Reference for `tokenLogprobs`: `log softmax(h·Eᵀ / temperature)[target]`, the logsumexp and
 * the entropy `lse − Σ_v p_v x_v` (`x = h·Eᵀ / temperature`), in float64, one vocabulary row at
 * a time (O(V) memory per token).
 *
 * @param inputs h `[T, D]`, E `[V, D]` and the targets `[T]`.
 * @param options T, D, V and the temperature.
 * @returns Log-probs, logsumexp and entropy per token.
 * @example
 * ```ts
 * import { tokenLogprobsRef } from "./logprobs_ref.ts";
 * const r = tokenLogprobsRef(
 *   { h: [1, 0], embedding: [1, 0, 0, 1], targets: [0] },
 *   { tokens: 1, dim: 2, vocab: 2 },
 * );
 * console.log(r.logprobs[0]); // log(e / (e + 1)) ≈ -0.3133
 * console.log(r.entropy[0]); // ≈ 0.5822
 * ```
 */
export function tokenLogprobsRef(
  inputs: LogprobsRefInputs,
  options: LogprobsRefOptions,
): TokenLogprobsRef {
  const { tokens, dim, vocab, temperature = 1 } = options;
  const { targets } = inputs;
  const logprobs = new Float64Array(tokens);
  const lse = new Float64Array(tokens);
  const entropy = new Float64Array(tokens);
  const x = new Float64Array(vocab);
  for (let t = 0; t < tokens; t++) {
    let m = -Infinity;
    for (let v = 0; v < vocab; v++) {
      x[v] = dotRow(inputs, dim, { t, v }) / temperature;
      if (x[v] > m) m = x[v];
    }
    let s = 0;
    for (let v = 0; v < vocab; v++) s += Math.exp(x[v] - m);
    lse[t] = m + Math.log(s);
    let px = 0;
    for (let v = 0; v < vocab; v++) px += Math.exp(x[v] - lse[t]) * x[v];
    entropy[t] = lse[t] - px;
    const target = targets[t];
    logprobs[t] = target >= 0 && target < vocab ? x[target] - lse[t] : NaN;
  }
  return { logprobs, lse, entropy };
}

/** Result of {@linkcode tokenLogprobsBackwardRef}. */
export interface TokenLogprobsBackwardRef {
  /** `d loss / d h`, `[T, D]`. */
  readonly dh: Float64Array;
  /** `d loss / d E`, `[V, D]`. */
  readonly dEmbedding: Float64Array;
}

/** Options of {@linkcode tokenLogprobsBackwardRef}: sizes, temperature, entropy gradient. */
export interface LogprobsBackwardRefOptions extends LogprobsRefOptions {
  /** `d loss / d H_t`, `[T]` (default: none). */
  readonly gradEntropy?: ArrayLike<number>;
}

/**
 * Reference for `tokenLogprobsBackward`: the gradients of
 * `loss = Σ_t grad_t · logp_t + gradEntropy_t · H_t` with `logp_t = z_t[target_t] − lse_t`,
 * `H_t = lse_t − Σ_v p_tv z_tv` and `z = h·Eᵀ / τ`, in float64:
 * `dz_tv = (grad_t · (1[v = target_t] − p_tv) − gradEntropy_t · p_tv · (log p_tv + H_t)) / τ`,
 * `dh_t = Σ_v dz_tv · E_v`, `dE_v = Σ_t dz_tv · h_t`. A target outside `[0, V)` contributes
 * only the softmax term.
 *
 * @param grad `d loss / d logp_t`, `[T]`.
 * @param inputs h `[T, D]`, E `[V, D]` and the targets `[T]`.
 * @param options T, D, V, the temperature and `d loss / d H_t`.
 * @returns dh and dE.
 * @example
 * ```ts
 * import { tokenLogprobsBackwardRef } from "./logprobs_ref.ts";
 * const r = tokenLogprobsBackwardRef(
 *   [1],
 *   { h: [1, 0], embedding: [1, 0, 0, 1], targets: [0] },
 *   { tokens: 1, dim: 2, vocab: 2 },
 * );
 * console.log(r.dh); // (1 − p0)·E0 − p1·E1 = [0.269, -0.269]
 * ```
 */
export function tokenLogprobsBackwardRef(
  grad: ArrayLike<number>,
  inputs: LogprobsRefInputs,
  options: LogprobsBackwardRefOptions,
): TokenLogprobsBackwardRef {
  const { tokens, dim, vocab, temperature = 1, gradEntropy } = options;
  const { h, embedding, targets } = inputs;
  const dh = new Float64Array(tokens * dim);
  const dEmbedding = new Float64Array(vocab * dim);
  const { lse, entropy } = tokenLogprobsRef(inputs, options);
  for (let t = 0; t < tokens; t++) {
    const g = grad[t] / temperature;
    const ge = (gradEntropy?.[t] ?? 0) / temperature;
    if (g === 0 && ge === 0) continue;
    for (let v = 0; v < vocab; v++) {
      const acc = dotRow(inputs, dim, { t, v });
      const logp = acc / temperature - lse[t];
      const p = Math.exp(logp);
      const dz = g * ((v === targets[t] ? 1 : 0) - p) - ge * p * (logp + entropy[t]);
      for (let d = 0; d < dim; d++) {
        dh[t * dim + d] += dz * embedding[v * dim + d];
        dEmbedding[v * dim + d] += dz * h[t * dim + d];
      }
    }
  }
  return { dh, dEmbedding };
}
