/**
 * Plain-TS references of the attention family (float64 throughout, two-pass softmax): prefill
 * attention, decode attention on a (ring) KV cache, the KV cache write, and the prefill
 * backward (softmax probabilities recomputed from the forward's logsumexp).
 *
 * @module
 */

/** Inputs of the attention references (row-major). */
export interface AttentionRefInputs {
  /** Queries: prefill `[B, S, H, D]`, decode `[B, H, D]`. */
  readonly q: ArrayLike<number>;
  /** Keys: prefill `[B, S, KvH, D]`, decode cache `[B, C, KvH, D]`. */
  readonly k: ArrayLike<number>;
  /** Values, shaped like the keys. */
  readonly v: ArrayLike<number>;
}

/** Dimensions and options of {@linkcode attentionRef}. */
export interface AttentionRefOptions {
  /** Sequences B. */
  readonly batch: number;
  /** Prefill: tokens per sequence S. Decode: cache slots C. */
  readonly seq: number;
  /** Query heads H. */
  readonly numHeads: number;
  /** KV heads (divides H). */
  readonly numKvHeads: number;
  /** Head dimension D. */
  readonly headDim: number;
  /** Score scale. */
  readonly scale: number;
  /** Sliding window (0 or absent = global). */
  readonly window?: number;
  /** `[B, 2]` valid index ranges `[start, end)` (prefill default `[0, S)`; decode: required). */
  readonly ranges?: ArrayLike<number>;
}

/** Output of the attention references. */
export interface AttentionRefResult {
  /** Shaped like q. */
  readonly out: Float64Array;
  /** Logsumexp per query row (−∞ for rows that see no key). */
  readonly lse: Float64Array;
}

/** One query row and the keys it attends to (see {@linkcode attendRow}). */
interface RowProblem {
  /** Offset of the query row in q (and out). */
  readonly qAt: number;
  /** Offset of key j's row in k (and v). */
  readonly keyAt: (j: number) => number;
  /** The visible key indices, ascending. */
  readonly keys: readonly number[];
}

/** Adds the softmax-weighted values of one row into `out`; returns the row's logsumexp. */
function attendRow(
  inputs: AttentionRefInputs,
  row: RowProblem,
  o: AttentionRefOptions & { readonly out: Float64Array },
): number {
  const { qAt, keyAt, keys } = row;
  const d = o.headDim;
  const scores = keys.map((j) => {
    let s = 0;
    for (let c = 0; c < d; c++) s += inputs.q[qAt + c] * inputs.k[keyAt(j) + c];
    return s * o.scale;
  });
  if (keys.length === 0) return -Infinity;
  const max = Math.max(...scores);
  let sum = 0;
  for (const s of scores) sum += Math.exp(s - max);
  keys.forEach((j, n) => {
    const p = Math.exp(scores[n] - max) / sum;
    for (let c = 0; c < d; c++) o.out[qAt + c] += p * inputs.v[keyAt(j) + c];
  });
  return max + Math.log(sum);
}

function range(lo: number, hi: number): number[] {
  const r: number[] = [];
  for (let j = lo; j <= hi; j++) r.push(j);
  return r;
}

/** A visible query row of a prefill problem (see {@linkcode prefillRows}). */
interface PrefillRow {
  /** Query index in its sequence. */
  readonly i: number;
  /** Index of the row in lse (`(b·S + i)·H + head`); times D, its offset in q. */
  readonly row: number;
  /** First key index it sees (it sees `lo … i`). */
  readonly lo: number;
  /** Offset of key j's row (its KV head) in k and v. */
  readonly keyAt: (j: number) => number;
}

/**
 * The query rows of a prefill problem that lie inside their sequence's range, in order
 * (sequence, query index, head), with the keys each sees: `start ≤ j ≤ i` and `i − j < W`;
 * query head h uses KV head `h / (H / KvH)`.
 */
function* prefillRows(o: AttentionRefOptions): Generator<PrefillRow> {
  const { batch, seq, numHeads: h, numKvHeads: kvh, headDim: d } = o;
  const window = o.window ?? 0;
  for (let b = 0; b < batch; b++) {
    const start = Math.max(o.ranges ? o.ranges[2 * b] : 0, 0);
    const end = Math.min(o.ranges ? o.ranges[2 * b + 1] : seq, seq);
    for (let i = start; i < end; i++) {
      const lo = window > 0 ? Math.max(start, i - window + 1) : start;
      for (let head = 0; head < h; head++) {
        const g = Math.floor(head / (h / kvh));
        const keyAt = (j: number) => ((b * seq + j) * kvh + g) * d;
        yield { i, row: (b * seq + i) * h + head, lo, keyAt };
      }
    }
  }
}

/**
 * Reference prefill attention: query index i of sequence b sees key j iff
 * `start_b ≤ j ≤ i < end_b` and (with a window W) `i − j < W`; query head h uses KV head
 * `h / (H / KvH)`. Rows outside `[start_b, end_b)` are 0 with lse −∞.
 *
 * @param inputs q `[B, S, H, D]`, k and v `[B, S, KvH, D]`.
 * @param options Dimensions, scale, window, ranges.
 * @returns Output `[B, S, H, D]` and lse `[B, S, H]`.
 * @example
 * ```ts
 * import { attentionRef } from "./attention_ref.ts";
 * const r = attentionRef({ q: [1, 1], k: [1, 2], v: [3, 5] }, {
 *   batch: 1, seq: 2, numHeads: 1, numKvHeads: 1, headDim: 1, scale: 1,
 * });
 * console.log(r.out[0]); // 3 (the first query sees only the first key)
 * ```
 */
export function attentionRef(
  inputs: AttentionRefInputs,
  options: AttentionRefOptions,
): AttentionRefResult {
  const { batch, seq, numHeads: h, headDim: d } = options;
  const out = new Float64Array(batch * seq * h * d);
  const lse = new Float64Array(batch * seq * h).fill(-Infinity);
  for (const { i, row, lo, keyAt } of prefillRows(options)) {
    lse[row] = attendRow(inputs, { qAt: row * d, keyAt, keys: range(lo, i) }, { ...options, out });
  }
  return { out, lse };
}

/**
 * Reference decode attention on a KV cache `[B, C, KvH, D]` where index p lives in slot
 * `p % C`: the new query of sequence b has index `i = end_b − 1` and sees indices
 * `max(start_b, i − W + 1, i − C + 1) … i`.
 *
 * @param inputs q `[B, H, D]`, k and v caches `[B, C, KvH, D]`.
 * @param options Dimensions (`seq` = C), scale, window, ranges (required).
 * @returns Output `[B, H, D]` and lse `[B, H]`.
 */
export function attentionDecodeRef(
  inputs: AttentionRefInputs,
  options: AttentionRefOptions,
): AttentionRefResult {
  const { batch, seq: cacheLen, numHeads: h, numKvHeads: kvh, headDim: d } = options;
  const window = options.window ?? 0;
  const ranges = options.ranges;
  if (!ranges) throw new Error("attentionDecodeRef: ranges are required");
  const out = new Float64Array(batch * h * d);
  const lse = new Float64Array(batch * h).fill(-Infinity);
  for (let b = 0; b < batch; b++) {
    const start = Math.max(ranges[2 * b], 0);
    const i = ranges[2 * b + 1] - 1;
    if (i < start) continue;
    let lo = Math.max(start, i - cacheLen + 1);
    if (window > 0) lo = Math.max(lo, i - window + 1);
    for (let head = 0; head < h; head++) {
      const g = Math.floor(head / (h / kvh));
      const row = b * h + head;
      const keyAt = (j: number) => ((b * cacheLen + (j % cacheLen)) * kvh + g) * d;
      lse[row] = attendRow(inputs, { qAt: row * d, keyAt, keys: range(lo, i) }, {
        ...options,
        out,
      });
    }
  }
  return { out, lse };
}

/** Dimensions of {@linkcode writeKvCacheRef}. */
export interface KvCacheWriteRefOptions {
  /** Sequences B. */
  readonly batch: number;
  /** New tokens per sequence T. */
  readonly tokens: number;
  /** Cache slots C. */
  readonly cacheLen: number;
  /** Values per token (KvH · D). */
  readonly rowSize: number;
  /** Index of each sequence's first new token (default 0). */
  readonly offsets?: ArrayLike<number>;
  /** Valid new tokens per sequence (default T); later tokens are not written. */
  readonly counts?: ArrayLike<number>;
}

/**
 * Reference cache write, token by token in order (so later tokens overwrite earlier ones that
 * share a ring slot): token t < counts[b] of sequence b goes to slot `(offsets[b] + t) % C`.
 *
 * @param cache `[B, C, rowSize]`, updated in place.
 * @param values `[B, T, rowSize]`.
 * @param options Dimensions and offsets.
 */
export function writeKvCacheRef(
  cache: Float32Array | Float64Array,
  values: ArrayLike<number>,
  options: KvCacheWriteRefOptions,
): void {
  const { batch, tokens, cacheLen, rowSize } = options;
  for (let b = 0; b < batch; b++) {
    const count = Math.min(options.counts ? options.counts[b] : tokens, tokens);
    for (let t = 0; t < count; t++) {
      const index = (options.offsets ? options.offsets[b] : 0) + t;
      if (index < 0) continue;
      const slot = index % cacheLen;
      for (let e = 0; e < rowSize; e++) {
        cache[(b * cacheLen + slot) * rowSize + e] = values[(b * tokens + t) * rowSize + e];
      }
    }
  }
}

/** What {@linkcode attentionBackwardRef} needs of the forward (row-major). */
export interface AttentionBackwardRefInputs extends AttentionRefInputs {
  /** Forward output `[B, S, H, D]`. */
  readonly out: ArrayLike<number>;
  /** Forward logsumexp of the scaled scores `[B, S, H]` (−∞ for rows that see no key). */
  readonly lse: ArrayLike<number>;
}

/** Gradients returned by {@linkcode attentionBackwardRef}: dq `[B, S, H, D]`, dk and dv `[B, S, KvH, D]`. */
export type AttentionBackwardRefResult = Readonly<Record<"dq" | "dk" | "dv", Float64Array>>;

/**
 * Reference attention backward. For query row i (head h, KV head g = h / (H / KvH)) and each key
 * j it sees (same visibility as {@linkcode attentionRef}):
 * `P = exp(scale·q_i·k_j − lse_i)`, `D_i = dOut_i·out_i`, `dS = P·(dOut_i·v_j − D_i)`,
 * `dq_i += scale·dS·k_j`, `dk_j += scale·dS·q_i`, `dv_j += P·dOut_i`.
 * Rows outside `[start, end)` or with lse −∞ contribute nothing (their dq is 0).
 *
 * @param dOut Gradient of the loss with respect to the output `[B, S, H, D]`.
 * @param inputs q `[B, S, H, D]`, k and v `[B, S, KvH, D]`, the forward's out and lse `[B, S, H]`.
 * @param options Dimensions, scale, window, ranges (as for {@linkcode attentionRef}).
 * @returns dq `[B, S, H, D]`, dk and dv `[B, S, KvH, D]`.
 * @example
 * ```ts
 * import { attentionBackwardRef, attentionRef } from "./attention_ref.ts";
 * const o = { batch: 1, seq: 2, numHeads: 1, numKvHeads: 1, headDim: 1, scale: 1 };
 * const x = { q: [1, 1], k: [1, 2], v: [3, 5] };
 * const { out, lse } = attentionRef(x, o);
 * const { dv } = attentionBackwardRef([1, 0], { ...x, out, lse }, o);
 * console.log(dv[0]); // 1 (the first query puts all its weight on the first value)
 * ```
 */
export function attentionBackwardRef(
  dOut: ArrayLike<number>,
  inputs: AttentionBackwardRefInputs,
  options: AttentionRefOptions,
): AttentionBackwardRefResult {
  const { batch, seq, numHeads: h, numKvHeads: kvh, headDim: d, scale } = options;
  const { q, k, v, out, lse } = inputs;
  const dq = new Float64Array(batch * seq * h * d);
  const dk = new Float64Array(batch * seq * kvh * d);
  const dv = new Float64Array(batch * seq * kvh * d);
  const dot = (a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number) => {
    let s = 0;
    for (let c = 0; c < d; c++) s += a[ai + c] * b[bi + c];
    return s;
  };
  for (const { i, row, lo, keyAt } of prefillRows(options)) {
    if (lse[row] === -Infinity) continue;
    const qi = row * d;
    const dRow = dot(dOut, qi, out, qi);
    for (let j = lo; j <= i; j++) {
      const kj = keyAt(j);
      const p = Math.exp(scale * dot(q, qi, k, kj) - lse[row]);
      const ds = p * (dot(dOut, qi, v, kj) - dRow);
      for (let c = 0; c < d; c++) {
        dq[qi + c] += scale * ds * k[kj + c];
        dk[kj + c] += scale * ds * q[qi + c];
        dv[kj + c] += p * dOut[qi + c];
      }
    }
  }
  return { dq, dk, dv };
}
