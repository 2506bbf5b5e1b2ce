/**
 * Attention at Gemma 3 1B shapes (4 query heads, 1 KV head, head_dim 256): prefill of 128
 * tokens (with and without lse), decode of batch 4 against a 512-token cache (cache write
 * included), and the backward at S = 256, global and with a left-padded sequence, beside the
 * forward with lse at that shape for scale.
 *
 * Every case runs webtune's default (tuning off: the deterministic table's variant) and every
 * other variant `attentionCandidates` / `attentionDecodeCandidates` /
 * `attentionBackwardCandidates` list for the shape on this adapter, forced (`<name> <variant>`).
 *
 * Each iteration records N launches and waits once, so the ≥ 10 ms GPU wait stays < 5 %.
 * GFLOP/s count the algorithm's FLOPs (forward: q·k and p·v, 4·D per visible (query, key,
 * head); backward: q·k, dOut·v, dq, dk, dv = 10·D), not the recomputed scores; printed with the
 * % of the adapter's f32 peak (`peaks.ts`) when the run ends.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import {
  attention,
  attentionCandidates,
  attentionDecode,
  attentionDecodeCandidates,
  writeKvCache,
} from "../kernels/attention.ts";
import { attentionBackward, attentionBackwardCandidates } from "../kernels/attention_backward.ts";
import { benchIterations, type IterationCase, lcgFill, printIterationSummary } from "./_measure.ts";

const gpu = await Gpu.create();
const HEADS = 4, KV_HEADS = 1, HEAD_DIM = 256, SCALE = 256 ** -0.5;
let seed = 0;
const random = (n: number) => lcgFill(n, ++seed);

const cases: IterationCase[] = [];

/**
 * Registers a bench whose iteration records `calls` launches and syncs once; `variant` names
 * the variant it runs (the table's for the default launch).
 */
function bench(
  name: string,
  stat: { work: number; calls: number; variant?: string },
  record: () => void,
): void {
  const { work, calls, variant } = stat;
  const perCall = (ms: number) => `${(ms / calls).toFixed(1)} ms / call`;
  const c: IterationCase = {
    name,
    work,
    unit: "GFLOP/s",
    ms: [],
    tail: (ms) => (variant ? `variant ${variant}, ` : "") + perCall(ms),
  };
  cases.push(c);
  benchIterations({ name, n: 5, warmup: 1 }, async () => {
    record();
    await gpu.sync();
  }, c.ms);
}

/** The default launch (the table's first candidate) and each other candidate, forced. */
function benchVariants(
  name: string,
  stat: { work: number; calls: number },
  candidates: readonly string[],
  record: (variant: string | undefined) => void,
): void {
  const [table, ...others] = candidates;
  bench(name, { ...stat, variant: table }, () => record(undefined));
  for (const id of others) bench(`${name} ${id}`, { ...stat, variant: id }, () => record(id));
}

/** Visible (query, key) pairs of n causal tokens. */
const pairs = (n: number) => (n * (n + 1)) / 2;

/** q, k, v of one sequence of `s` tokens. */
function qkv(s: number): { q: Tensor; k: Tensor; v: Tensor } {
  return {
    q: Tensor.fromArray(gpu, random(s * HEADS * HEAD_DIM), [1, s, HEADS, HEAD_DIM]),
    k: Tensor.fromArray(gpu, random(s * KV_HEADS * HEAD_DIM), [1, s, KV_HEADS, HEAD_DIM]),
    v: Tensor.fromArray(gpu, random(s * KV_HEADS * HEAD_DIM), [1, s, KV_HEADS, HEAD_DIM]),
  };
}

// Prefill: 128 tokens, causal (window 512 > 128, as on Gemma 3 1B's sliding layers).
const P = 128, PREFILL_N = 40;
const pre = qkv(P), preOut = Tensor.empty(gpu, pre.q.shape);
const prefill = { work: PREFILL_N * pairs(P) * HEADS * 4 * HEAD_DIM, calls: PREFILL_N };
const prefillShape = { batch: 1, seq: P, heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM };
const prefillVariants = attentionCandidates(gpu, { ...prefillShape, window: 512 });
for (const returnLse of [false, true]) {
  const name = `attention prefill${returnLse ? " + lse" : ""} S=${P} H=4 KvH=1 D=256`;
  benchVariants(name, prefill, prefillVariants, (variant) => {
    for (let i = 0; i < PREFILL_N; i++) {
      const options = { scale: SCALE, window: 512, out: preOut, returnLse, variant };
      attention(pre.q, pre, options).lse?.dispose();
    }
  });
}

// Decode: batch 4, each sequence 512 tokens in its cache (the new one included).
const B = 4, C = 512, DECODE_N = 100;
const cache = {
  k: Tensor.fromArray(gpu, random(B * C * KV_HEADS * HEAD_DIM), [B, C, KV_HEADS, HEAD_DIM]),
  v: Tensor.fromArray(gpu, random(B * C * KV_HEADS * HEAD_DIM), [B, C, KV_HEADS, HEAD_DIM]),
};
const dq = Tensor.fromArray(gpu, random(B * HEADS * HEAD_DIM), [B, HEADS, HEAD_DIM]);
const newKv = {
  k: Tensor.fromArray(gpu, random(B * KV_HEADS * HEAD_DIM), [B, 1, KV_HEADS, HEAD_DIM]),
  v: Tensor.fromArray(gpu, random(B * KV_HEADS * HEAD_DIM), [B, 1, KV_HEADS, HEAD_DIM]),
};
const ranges = Tensor.fromArray(gpu, new Int32Array([0, C, 0, C, 0, C, 0, C]), [B, 2]);
const offsets = Tensor.fromArray(gpu, new Int32Array([C - 1, C - 1, C - 1, C - 1]));
const dout = Tensor.empty(gpu, dq.shape);
const decode = { work: DECODE_N * B * C * HEADS * 4 * HEAD_DIM, calls: DECODE_N };
const decodeShape = { batch: B, seq: C, heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM };
const decodeVariants = attentionDecodeCandidates(gpu, decodeShape);
benchVariants(`attention decode B=${B} cache=${C} H=4 KvH=1 D=256`, decode, decodeVariants, (v) => {
  for (let i = 0; i < DECODE_N; i++) {
    writeKvCache(cache, newKv, { offsets });
    attentionDecode(dq, cache, { scale: SCALE, ranges, out: dout, variant: v });
  }
});

// Backward: 256 tokens, global and left-padded by 32, each candidate; and the forward with lse
// at that shape for scale.
const S = 256, N = 4, PAD = 32;
const bwd = qkv(S);
const dOut = Tensor.fromArray(gpu, random(bwd.q.numel), bwd.q.shape);
const padRanges = Tensor.fromArray(gpu, new Int32Array([PAD, S]), [1, 2]);
const bwdShape = { batch: 1, seq: S, heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM };
const bwdVariants = attentionBackwardCandidates(gpu, bwdShape);
const backward = (r: { ranges?: Tensor }) => {
  const fwd = attention(bwd.q, bwd, { scale: SCALE, ranges: r.ranges, returnLse: true });
  return (variant: string | undefined) => {
    for (let i = 0; i < N; i++) {
      const inputs = { ...bwd, out: fwd.out, lse: fwd.lse! };
      const g = attentionBackward(dOut, inputs, { scale: SCALE, ranges: r.ranges, variant });
      for (const t of [g.dq, g.dk, g.dv]) t.dispose(); // stream-ordered reuse of pooled buffers
    }
  };
};
const bwdWork = (n: number) => ({ work: N * pairs(n) * HEADS * 10 * HEAD_DIM, calls: N });
benchVariants(`attention backward S=${S} H=4 KvH=1 D=256`, bwdWork(S), bwdVariants, backward({}));
benchVariants(
  `attention backward S=${S} (left pad ${PAD}) H=4 KvH=1 D=256`,
  bwdWork(S - PAD),
  bwdVariants,
  backward({ ranges: padRanges }),
);
const bwdOut = Tensor.empty(gpu, bwd.q.shape);
const forward = { work: N * pairs(S) * HEADS * 4 * HEAD_DIM, calls: N };
const forwardVariants = attentionCandidates(gpu, bwdShape);
benchVariants(`attention forward + lse S=${S} H=4 KvH=1 D=256`, forward, forwardVariants, (v) => {
  for (let i = 0; i < N; i++) {
    const options = { scale: SCALE, out: bwdOut, returnLse: true, variant: v };
    attention(bwd.q, bwd, options).lse?.dispose();
  }
});

printIterationSummary(gpu, cases);
