/**
 * Attention at Gemma 3 1B shapes (4 query heads, 1 KV head, head_dim 256): prefill of 128
 * tokens (with and without lse), decode of batch 4 against a 512-token cache (cache write
 * included), and the backward at S = 256, global and with a left-padded sequence, beside the
 * forward with lse at that shape for scale.
 *
 * Each iteration records N launches and waits once, so the ≥ 10 ms GPU wait stays < 5 %.
 * GFLOP/s count the algorithm's FLOPs (forward: q·k and p·v, 4·D per visible (query, key,
 * head); backward: q·k, dOut·v, dq, dk, dv = 10·D), not the recomputed scores; printed when the
 * run ends.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { attention, attentionDecode, writeKvCache } from "../kernels/attention.ts";
import { attentionBackward } from "../kernels/attention_backward.ts";
import { benchIterations, iterationLine, lcgFill } from "./_measure.ts";

const gpu = await Gpu.create();
const HEADS = 4, KV_HEADS = 1, HEAD_DIM = 256, SCALE = 256 ** -0.5;
let seed = 0;
const random = (n: number) => lcgFill(n, ++seed);

interface Stat {
  work: number; // FLOPs per iteration
  calls: number; // launches per iteration
  ms: number[];
}
const stats = new Map<string, Stat>();

/** Registers a bench whose iteration records `calls` launches and syncs once. */
function bench(name: string, stat: { work: number; calls: number }, record: () => void): void {
  const s: Stat = { ...stat, ms: [] };
  stats.set(name, s);
  benchIterations({ name, n: 5, warmup: 1 }, async () => {
    record();
    await gpu.sync();
  }, s.ms);
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
for (const returnLse of [false, true]) {
  bench(`attention prefill${returnLse ? " + lse" : ""} S=${P} H=4 KvH=1 D=256`, prefill, () => {
    for (let i = 0; i < PREFILL_N; i++) {
      const options = { scale: SCALE, window: 512, out: preOut, returnLse };
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
bench(`attention decode B=${B} cache=${C} H=4 KvH=1 D=256`, decode, () => {
  for (let i = 0; i < DECODE_N; i++) {
    writeKvCache(cache, newKv, { offsets });
    attentionDecode(dq, cache, { scale: SCALE, ranges, out: dout });
  }
});

// Backward: 256 tokens, global and left-padded by 32.
const S = 256, N = 4, PAD = 32;
const bwd = qkv(S);
const dOut = Tensor.fromArray(gpu, random(bwd.q.numel), bwd.q.shape);
const padRanges = Tensor.fromArray(gpu, new Int32Array([PAD, S]), [1, 2]);
const backward = (r: { ranges?: Tensor }) => {
  const fwd = attention(bwd.q, bwd, { scale: SCALE, ranges: r.ranges, returnLse: true });
  return () => {
    for (let i = 0; i < N; i++) {
      const inputs = { ...bwd, out: fwd.out, lse: fwd.lse! };
      const g = attentionBackward(dOut, inputs, { scale: SCALE, ranges: r.ranges });
      for (const t of [g.dq, g.dk, g.dv]) t.dispose(); // stream-ordered reuse of pooled buffers
    }
  };
};
const bwdWork = (n: number) => ({ work: N * pairs(n) * HEADS * 10 * HEAD_DIM, calls: N });
bench(`attention backward S=${S} H=4 KvH=1 D=256`, bwdWork(S), backward({}));
bench(
  `attention backward S=${S} (left pad ${PAD}) H=4 KvH=1 D=256`,
  bwdWork(S - PAD),
  backward({ ranges: padRanges }),
);
const bwdOut = Tensor.empty(gpu, bwd.q.shape);
const forward = { work: N * pairs(S) * HEADS * 4 * HEAD_DIM, calls: N };
bench(`attention forward + lse S=${S} H=4 KvH=1 D=256`, forward, () => {
  for (let i = 0; i < N; i++) {
    attention(bwd.q, bwd, { scale: SCALE, out: bwdOut, returnLse: true }).lse?.dispose();
  }
});

globalThis.addEventListener("unload", () => {
  console.log(`\nadapter: ${gpu.adapter.description}`);
  for (const [name, s] of stats) {
    if (s.ms.length === 0) continue;
    const perCall = (ms: number) => `${(ms / s.calls).toFixed(1)} ms / call`;
    console.log(iterationLine(name, s.work, "GFLOP/s", s.ms, perCall));
  }
});
