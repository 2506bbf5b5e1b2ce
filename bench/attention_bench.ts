/**
 * Attention and RoPE at Gemma 3 1B shapes (4 query heads, 1 KV head, head_dim 256):
 * prefill of 128 tokens, decode of batch 4 against a 512-token cache, RoPE of the prefill's q.
 * Each iteration records N launches and waits once, so the ≥ 10 ms GPU wait stays < 5 %.
 * Throughput (GFLOP/s, or GB/s for RoPE) is printed when the run ends.
 */
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { attention, attentionDecode, writeKvCache } from "../kernels/attention.ts";
import { rope, RopeTable } from "../kernels/rope.ts";
import { benchIterations, iterationLine } from "./_measure.ts";

const gpu = await Gpu.create();
const HEADS = 4, KV_HEADS = 1, HEAD_DIM = 256, SCALE = 256 ** -0.5;
const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

interface Stat {
  work: number; // FLOPs or bytes per iteration
  unit: string;
  ms: number[];
}
const stats = new Map<string, Stat>();

/** Registers a bench whose iteration records `launches` and syncs once. */
function bench(name: string, work: number, unit: string, record: () => void): void {
  const stat: Stat = { work, unit, ms: [] };
  stats.set(name, stat);
  benchIterations({ name, n: 5, warmup: 1 }, async () => {
    record();
    await gpu.sync();
  }, stat.ms);
}

// prefill: 128 tokens, causal (window 512 > 128, as on Gemma 3 1B's sliding layers)
const S = 128, PREFILL_N = 40;
const q = Tensor.fromArray(gpu, random(S * HEADS * HEAD_DIM), [1, S, HEADS, HEAD_DIM]);
const k = Tensor.fromArray(gpu, random(S * KV_HEADS * HEAD_DIM), [1, S, KV_HEADS, HEAD_DIM]);
const v = Tensor.fromArray(gpu, random(S * KV_HEADS * HEAD_DIM), [1, S, KV_HEADS, HEAD_DIM]);
const out = Tensor.empty(gpu, q.shape);
const lse = { returnLse: true } as const;
const pairs = (S * (S + 1)) / 2; // visible (query, key) pairs
const prefillFlops = pairs * HEADS * 4 * HEAD_DIM; // q·k and p·v: 2 FLOPs per element each
bench("attention prefill S=128 H=4 KvH=1 D=256", PREFILL_N * prefillFlops, "GFLOP/s", () => {
  for (let i = 0; i < PREFILL_N; i++) {
    attention(q, { k, v }, { scale: SCALE, window: 512, out }).lse?.dispose();
  }
});
bench("attention prefill + lse S=128 H=4 KvH=1 D=256", PREFILL_N * prefillFlops, "GFLOP/s", () => {
  for (let i = 0; i < PREFILL_N; i++) {
    attention(q, { k, v }, { scale: SCALE, window: 512, out, ...lse }).lse?.dispose();
  }
});

// decode: batch 4, each sequence 512 tokens in its cache (the new one included)
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
const decodeFlops = B * C * HEADS * 4 * HEAD_DIM;
bench("attention decode B=4 cache=512 H=4 KvH=1 D=256", DECODE_N * decodeFlops, "GFLOP/s", () => {
  for (let i = 0; i < DECODE_N; i++) {
    writeKvCache(cache, newKv, { offsets });
    attentionDecode(dq, cache, { scale: SCALE, ranges, out: dout });
  }
});

// RoPE of the prefill's q (read + write of q, positions and table reads ignored)
const ROPE_N = 200;
const table = RopeTable.create(gpu, { base: 1e6, headDim: HEAD_DIM, maxPositions: 1024 });
const positions = Tensor.fromArray(gpu, Int32Array.from({ length: S }, (_, i) => i));
bench("rope q S=128 H=4 D=256", ROPE_N * 2 * q.numel * 4, "GB/s", () => {
  for (let i = 0; i < ROPE_N; i++) rope(q, positions, { table, out });
});

globalThis.addEventListener("unload", () => {
  console.log(`\nadapter: ${gpu.adapter.description}`);
  for (const [name, s] of stats) {
    if (s.ms.length === 0) continue;
    console.log(
      iterationLine(name, s.work, s.unit, s.ms, (ms) => `${ms.toFixed(0)} ms / iteration`),
    );
  }
});
