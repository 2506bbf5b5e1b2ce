/**
 * Throughput of the vocabulary-head kernels at Gemma 3 1B shapes (D = 1152, V = 262144, tied
 * bf16 embedding of 604 MB, split into parts along V):
 * - `tokenLogprobs` of T = 256 tokens (GFLOP/s, 2·T·V·D flops; one launch is seconds of work);
 * - `vocabLogits` of B = 4 rows (the generation head, GFLOP/s);
 * - `sample` over B = 4 rows of V = 262144 logits: greedy, temperature 1, and top-k 50 +
 *   top-p 0.95 (rows/s).
 * Each iteration records enough launches for ≥ 0.3 s (calibrated once) and waits once, so the
 * ≥ 10 ms GPU wait stays < 5 %. Medians are printed at the end.
 */

import { f32ToBf16Bits } from "../kernels/dtype.ts";
import { Gpu } from "../kernels/gpu.ts";
import { tokenLogprobs, vocabLogits } from "../kernels/logprobs.ts";
import { sample, type SampleOptions } from "../kernels/sampling.ts";
import { Tensor } from "../kernels/tensor.ts";

const gpu = await Gpu.create();
const TARGET_S = 0.3;
const T = 256, D = 1152, V = 262144, B = 4;

function fill(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * scale;
  }
  return out;
}

/** bf16 bits of V·D small values: a random 1 Mi block tiled (generating 302 M values is slow). */
function embeddingBits(): Uint16Array {
  const block = Uint16Array.from(fill(1 << 20, 7, 0.05), f32ToBf16Bits);
  const out = new Uint16Array(V * D);
  for (let at = 0; at < out.length; at += block.length) {
    out.set(block.subarray(0, Math.min(block.length, out.length - at)), at);
  }
  return out;
}

const embedding = Tensor.fromArray(gpu, embeddingBits(), [V, D], "bf16");
const h = Tensor.fromArray(gpu, fill(T * D, 1, 1), [T, D]);
const targets = Tensor.fromArray(gpu, Uint32Array.from({ length: T }, (_, i) => (i * 7919) % V));
const hLast = Tensor.fromArray(gpu, fill(B * D, 2, 1), [B, D]);
const logits = Tensor.fromArray(gpu, fill(B * V, 3, 8), [B, V]);
const ids = Tensor.empty(gpu, [64 * B], "u32");

interface Case {
  readonly name: string;
  /** Work per launch (flops or rows). */
  readonly work: number;
  readonly unit: "GFLOP/s" | "rows/s";
  readonly launch: () => void;
  reps: number;
  readonly rates: number[];
  readonly ms: number[];
}

async function timeLaunches(c: Case, reps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) c.launch();
  await gpu.sync();
  return (performance.now() - t0) / 1000;
}

async function calibrate(c: Case): Promise<void> {
  await timeLaunches(c, 1); // compile
  let reps = 1;
  let s = await timeLaunches(c, reps);
  while (s < 0.05) s = await timeLaunches(c, reps *= 4);
  c.reps = Math.max(1, Math.round((reps * TARGET_S) / s));
}

let step = 0;
const sampling = (name: string, options: SampleOptions): Case => ({
  name: `sample B=${B} V=${V} ${name}`,
  work: B,
  unit: "rows/s",
  launch: () => {
    const slot = step++ % 64;
    sample(logits, { ...options, seed: 1, step, out: ids, outOffset: slot * B });
  },
  reps: 0,
  rates: [],
  ms: [],
});

const cases: Case[] = [
  {
    name: `tokenLogprobs T=${T} D=${D} V=${V} bf16 (${embedding.parts.length} parts)`,
    work: 2 * T * V * D,
    unit: "GFLOP/s",
    launch: () => {
      const r = tokenLogprobs(h, embedding, targets);
      r.logprobs.dispose();
      r.lse.dispose();
    },
    reps: 0,
    rates: [],
    ms: [],
  },
  {
    name: `vocabLogits B=${B} D=${D} V=${V} bf16`,
    work: 2 * B * V * D,
    unit: "GFLOP/s",
    launch: () => vocabLogits(hLast, embedding).dispose(),
    reps: 0,
    rates: [],
    ms: [],
  },
  sampling("greedy", { temperature: 0 }),
  sampling("temperature 1", { temperature: 1 }),
  sampling("top-k 50 top-p 0.95", { temperature: 1, topK: 50, topP: 0.95 }),
];

for (const c of cases) {
  Deno.bench({
    name: c.name,
    // One log-prob launch is seconds of work on llvmpipe: keep its iteration count low.
    n: c.unit === "GFLOP/s" && c.work > 1e10 ? 2 : 4,
    warmup: 1,
    async fn(b) {
      if (c.reps === 0) await calibrate(c);
      b.start();
      const s = await timeLaunches(c, c.reps);
      b.end();
      const rate = (c.work * c.reps) / s;
      c.rates.push(c.unit === "GFLOP/s" ? rate / 1e9 : rate);
      c.ms.push((s / c.reps) * 1e3);
    },
  });
}

globalThis.addEventListener("unload", () => {
  console.log(`\nadapter: ${gpu.adapter.description}; Gemma 3 1B head shapes`);
  const med = (xs: number[]) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const c of cases) {
    if (c.rates.length === 0) continue;
    console.log(
      `${c.name.padEnd(52)} ${med(c.rates).toFixed(2).padStart(8)} ${c.unit} median, ${
        Math.max(...c.rates).toFixed(2).padStart(8)
      } best, ${med(c.ms).toFixed(1).padStart(8)} ms/launch (${c.reps} launches/iter)`,
    );
  }
});
