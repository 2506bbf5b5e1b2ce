/**
 * Plain-TS reference of the prefill attention backward (float64 throughout), the counterpart of
 * {@linkcode attentionRef}: softmax probabilities are recomputed from the forward's logsumexp.
 *
 * @module
 */

import type { AttentionRefInputs, AttentionRefOptions } from "./attention_ref.ts";

/** Inputs of {@linkcode attentionBackwardRef} (row-major). */
export interface AttentionBackwardRefInputs extends AttentionRefInputs {
  /** Forward output `[B, S, H, D]`. */
  readonly out: ArrayLike<number>;
  /** Forward logsumexp of the scaled scores `[B, S, H]` (−∞ for rows that see no key). */
  readonly lse: ArrayLike<number>;
  /** Gradient of the loss with respect to the output `[B, S, H, D]`. */
  readonly dOut: ArrayLike<number>;
}

/** Gradients returned by {@linkcode attentionBackwardRef}. */
export interface AttentionBackwardRefResult {
  /** `[B, S, H, D]`. */
  readonly dq: Float64Array;
  /** `[B, S, KvH, D]`. */
  readonly dk: Float64Array;
  /** `[B, S, KvH, D]`. */
  readonly dv: Float64Array;
}

/**
 * Reference attention backward. For query row i (head h, KV head g = h / (H / KvH)) and each key
 * j it sees (same visibility as {@linkcode attentionRef}):
 * `P = exp(scale·q_i·k_j − lse_i)`, `D_i = dOut_i·out_i`, `dS = P·(dOut_i·v_j − D_i)`,
 * `dq_i += scale·dS·k_j`, `dk_j += scale·dS·q_i`, `dv_j += P·dOut_i`.
 * Rows outside `[start, end)` or with lse −∞ contribute nothing (their dq is 0).
 *
 * @param inputs q `[B, S, H, D]`, k and v `[B, S, KvH, D]`, out, lse `[B, S, H]`, dOut.
 * @param options Dimensions, scale, window, ranges (as for {@linkcode attentionRef}).
 * @returns dq `[B, S, H, D]`, dk and dv `[B, S, KvH, D]`.
 * @example
 * ```ts
 * import { attentionRef } from "./attention_ref.ts";
 * import { attentionBackwardRef } from "./attention_backward_ref.ts";
 * const o = { batch: 1, seq: 2, numHeads: 1, numKvHeads: 1, headDim: 1, scale: 1 };
 * const x = { q: [1, 1], k: [1, 2], v: [3, 5] };
 * const { out, lse } = attentionRef(x, o);
 * const { dv } = attentionBackwardRef({ ...x, out, lse, dOut: [1, 0] }, o);
 * console.log(dv[0]); // 1 (the first query puts all its weight on the first value)
 * ```
 */
export function attentionBackwardRef(
  inputs: AttentionBackwardRefInputs,
  options: AttentionRefOptions,
): AttentionBackwardRefResult {
  const { batch, seq, numHeads: h, numKvHeads: kvh, headDim: d, scale } = options;
  const window = options.window ?? 0;
  const { q, k, v, out, lse, dOut } = inputs;
  const dq = new Float64Array(batch * seq * h * d);
  const dk = new Float64Array(batch * seq * kvh * d);
  const dv = new Float64Array(batch * seq * kvh * d);
  const dot = (a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number) => {
    let s = 0;
    for (let c = 0; c < d; c++) s += a[ai + c] * b[bi + c];
    return s;
  };
  for (let b = 0; b < batch; b++) {
    const start = Math.max(options.ranges ? options.ranges[2 * b] : 0, 0);
    const end = Math.min(options.ranges ? options.ranges[2 * b + 1] : seq, seq);
    for (let i = start; i < end; i++) {
      const lo = window > 0 ? Math.max(start, i - window + 1) : start;
      for (let head = 0; head < h; head++) {
        const row = (b * seq + i) * h + head;
        if (lse[row] === -Infinity) continue;
        const g = Math.floor(head / (h / kvh));
        const qi = row * d;
        const dRow = dot(dOut, qi, out, qi);
        for (let j = lo; j <= i; j++) {
          const kj = ((b * seq + j) * kvh + g) * d;
          const p = Math.exp(scale * dot(q, qi, k, kj) - lse[row]);
          const ds = p * (dot(dOut, qi, v, kj) - dRow);
          for (let c = 0; c < d; c++) {
            dq[qi + c] += scale * ds * k[kj + c];
            dk[kj + c] += scale * ds * q[qi + c];
            dv[kj + c] += p * dOut[qi + c];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
