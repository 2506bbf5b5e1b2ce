/**
 * Attention backward at the Gemma 3 1B shape (B 1, S 256, 4 query heads, 1 KV head, head_dim
 * 256), global and with a left-padded sequence, plus the forward (with lse) at the same shape for
 * scale. Each iteration records N launches and waits once, so the ≥ 10 ms GPU wait stays < 5 %.
 * GFLOP/s count the algorithm's FLOPs (backward: q·k, dOut·v, dq, dk, dv = 10·D per visible
 * (query, key, head); forward: 4·D), not the recomputed scores; printed when the run ends.
 */
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { attention, attentionBackward } from "../kernels/attention.ts";
import { benchIterations, iterationLine } from "./_measure.ts";

const gpu = await Gpu.create();
const S = 256, HEADS = 4, KV_HEADS = 1, HEAD_DIM = 256, SCALE = 256 ** -0.5, N = 4;
const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

interface Stat {
  flops: number; // per iteration
  ms: number[];
}
const stats = new Map<string, Stat>();

/** Registers a bench whose iteration records N launches and syncs once. */
function bench(name: string, flops: number, record: () => void): void {
  const stat: Stat = { flops, ms: [] };
  stats.set(name, stat);
  benchIterations({ name, n: 5, warmup: 1 }, async () => {
    record();
    await gpu.sync();
  }, stat.ms);
}

const q = Tensor.fromArray(gpu, random(S * HEADS * HEAD_DIM), [1, S, HEADS, HEAD_DIM]);
const k = Tensor.fromArray(gpu, random(S * KV_HEADS * HEAD_DIM), [1, S, KV_HEADS, HEAD_DIM]);
const v = Tensor.fromArray(gpu, random(S * KV_HEADS * HEAD_DIM), [1, S, KV_HEADS, HEAD_DIM]);
const dOut = Tensor.fromArray(gpu, random(q.numel), q.shape);
const fwd = attention(q, { k, v }, { scale: SCALE, returnLse: true });
const pad = 32; // left padding of the ranged case
const ranges = Tensor.fromArray(gpu, new Int32Array([pad, S]), [1, 2]);
const fwdPad = attention(q, { k, v }, { scale: SCALE, ranges, returnLse: true });
const pairs = (n: number) => (n * (n + 1)) / 2; // visible (query, key) pairs of n tokens

const backward = (r: typeof fwd, options: { ranges?: Tensor }) => () => {
  for (let i = 0; i < N; i++) {
    const g = attentionBackward(q, { k, v }, r.out, r.lse!, dOut, { scale: SCALE, ...options });
    for (const t of [g.dq, g.dk, g.dv]) t.dispose(); // stream-ordered reuse of pooled buffers
  }
};
const bwdFlops = (n: number) => N * pairs(n) * HEADS * 10 * HEAD_DIM;
bench(`attention backward S=${S} H=4 KvH=1 D=256`, bwdFlops(S), backward(fwd, {}));
bench(
  `attention backward S=${S} (left pad ${pad}) H=4 KvH=1 D=256`,
  bwdFlops(S - pad),
  backward(fwdPad, { ranges }),
);
const out = Tensor.empty(gpu, q.shape);
bench(`attention forward + lse S=${S} H=4 KvH=1 D=256`, N * pairs(S) * HEADS * 4 * HEAD_DIM, () => {
  for (let i = 0; i < N; i++) {
    attention(q, { k, v }, { scale: SCALE, out, returnLse: true }).lse?.dispose();
  }
});

globalThis.addEventListener("unload", () => {
  console.log(`\nadapter: ${gpu.adapter.description}`);
  for (const [name, s] of stats) {
    if (s.ms.length === 0) continue;
    console.log(
      iterationLine(name, s.flops, "GFLOP/s", s.ms, (ms) => `${(ms / N).toFixed(1)} ms / call`),
    );
  }
});
