/**
 * Gemma 3 1B at real size on the current adapter: the `gemma3_1b` config with random bf16
 * weights (~2.0 GB on the GPU; the 262144×1152 embedding is split over several bindings),
 * prefill of a 128-token prompt into the KV cache and 16 single-token decode steps (logits for
 * the last token only, greedy sampling on the GPU).
 *
 * Reported (console.log, plus Deno.bench's own timings):
 * - matmul: one `[128, 1152]·[6912, 1152]ᵀ` bf16 product (the gate/up projection of a 128-token
 *   prefill), GFLOP/s — the kernel's own throughput in this run;
 * - prefill tokens/s and achieved GFLOP/s (matmul FLOPs `2·params·tokens` of the decoder, the
 *   causal attention `4·hd·heads·Σ visible keys`, and the last token's head `2·V·D`) as a
 *   fraction of the matmul throughput;
 * - decode tokens/s and the weight bytes streamed per second;
 * - peak GPU bytes from the allocation tracker.
 *
 * An untimed warm-up (a 32-token prefill and 2 decode steps) compiles the pipelines first:
 * matmul row tiles are capped, so it compiles what a 128-token prefill uses. Deno 2.9 runs
 * each slow bench 3 times whatever `n`/`warmup` say; every run prints its numbers, and the
 * matmul is re-timed right before and after each model run so the fraction compares like with
 * like on a loaded machine. On Mesa llvmpipe (2 cores) the file takes about 2–3 minutes, most
 * of it drawing 1B random weights in JS.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { matmul } from "../kernels/matmul.ts";
import { sample } from "../kernels/sampling.ts";
import { Tensor } from "../kernels/tensor.ts";
import { gemma3_1b, type Gemma3Config } from "../model/config.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { initGemma3Weights, LAYER_WEIGHTS, NORM_WEIGHTS } from "../model/gemma3_weights.ts";
import { DecodeSession } from "../model/generate.ts";
import { lcgWords } from "./_measure.ts";

const PROMPT = 128;
const DECODE = 16;
const MATMUL = { m: 128, n: 6912, k: 1152 };
const MATMUL_REPS = 4;

/** Matmul parameters of the decoder layers (projections; norms excluded). */
function layerMatmulParams(c: Gemma3Config): number {
  const q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  return c.numLayers * (c.hiddenSize * (q + 2 * kv) + q * c.hiddenSize +
    3 * c.hiddenSize * c.intermediateSize);
}

/** Keys query index i sees on each layer, summed over layers, for indices [from, to). */
function visibleKeys(c: Gemma3Config, from: number, to: number): number {
  let total = 0;
  for (const type of c.layerTypes) {
    for (let i = from; i < to; i++) {
      total += type === "sliding_attention" ? Math.min(i + 1, c.slidingWindow) : i + 1;
    }
  }
  return total;
}

/** FLOPs of running tokens [from, to) of one sequence, with the head on the last token only. */
function forwardFlops(c: Gemma3Config, from: number, to: number): number {
  const attention = 4 * c.headDim * c.numHeads * visibleKeys(c, from, to);
  return 2 * layerMatmulParams(c) * (to - from) + attention + 2 * c.vocabSize * c.hiddenSize;
}

const gpu = await Gpu.create();
const results: Record<string, number> = {};
let matmulOperands: { x: Tensor; w: Tensor } | null = null;
let modelPromise: Promise<Gemma3> | null = null;

function prompt(length: number, seed: number): number[] {
  return Array.from(lcgWords(length, seed), (s) => 3 + (s % 200_000));
}

/** Builds the model once, then warms up every pipeline the measured runs use. */
function model(): Promise<Gemma3> {
  modelPromise ??= (async () => {
    const config = gemma3_1b();
    const started = performance.now();
    const weights = initGemma3Weights(gpu, config, { dtype: "bf16" });
    await gpu.sync();
    results.initSeconds = (performance.now() - started) / 1000;
    const m = new Gemma3(gpu, config, weights);
    const warm = performance.now();
    await prefillAndDecode(m, prompt(32, 1), 2);
    results.warmupSeconds = (performance.now() - warm) / 1000;
    return m;
  })();
  return modelPromise;
}

/** Prefill then `steps` greedy decode steps; returns the seconds of each phase. */
async function prefillAndDecode(
  m: Gemma3,
  ids: number[],
  steps: number,
): Promise<{ prefill: number; decode: number }> {
  const session = new DecodeSession(m, [ids], { maxLength: ids.length + steps });
  const current = Tensor.empty(gpu, [1], "u32");
  try {
    const t0 = performance.now();
    let logits = session.prefill();
    sample(logits, { temperature: 0, out: current });
    logits.dispose();
    await current.read(); // one wait: the prefill is done
    const t1 = performance.now();
    for (let s = 0; s < steps; s++) {
      logits = session.step(current);
      sample(logits, { temperature: 0, out: current });
      logits.dispose();
      if ((s + 1) % 8 === 0 || s === steps - 1) await current.read(); // as generate() does
    }
    const t2 = performance.now();
    return { prefill: (t1 - t0) / 1000, decode: (t2 - t1) / 1000 };
  } finally {
    session.dispose();
    current.dispose();
  }
}

/** Seconds of one `[128, 1152]·[6912, 1152]ᵀ` bf16 matmul, averaged over a few launches. */
async function matmulSeconds(): Promise<number> {
  const { m, n, k } = MATMUL;
  matmulOperands ??= {
    x: Tensor.fromArray(gpu, new Float32Array(m * k).map((_, i) => Math.sin(i)), [m, k]),
    w: Tensor.fromArray(
      gpu,
      new Float32Array(n * k).map((_, i) => 0.02 * Math.cos(i)),
      [n, k],
      "bf16",
    ),
  };
  const { x, w } = matmulOperands;
  matmul(x, w).dispose(); // compiled once; also drains earlier work from the timing
  await gpu.sync();
  const t = performance.now();
  for (let r = 0; r < MATMUL_REPS; r++) matmul(x, w).dispose();
  await gpu.sync();
  return (performance.now() - t) / 1000 / MATMUL_REPS;
}

Deno.bench(
  `matmul [${MATMUL.m}, ${MATMUL.k}]·[${MATMUL.n}, ${MATMUL.k}]ᵀ bf16`,
  { n: 1, warmup: 0 },
  async (b) => {
    await matmulSeconds();
    b.start();
    const seconds = await matmulSeconds();
    b.end();
    const { m, n, k } = MATMUL;
    console.log(
      `matmul ${m}×${k}·${k}×${n} bf16: ${(seconds * 1000).toFixed(1)} ms, ` +
        `${((2 * m * n * k) / seconds / 1e9).toFixed(2)} GFLOP/s (${gpu.adapter.description})`,
    );
  },
);

Deno.bench(
  `gemma3_1b bf16: prefill ${PROMPT} tokens + decode ${DECODE}`,
  { n: 1, warmup: 0 },
  async (b) => {
    const m = await model();
    const c = m.config;
    // The matmul is timed right before and after, so both see the same machine load; the
    // faster of the two is its throughput (conservative for the fraction).
    const before = await matmulSeconds();
    b.start();
    const { prefill, decode } = await prefillAndDecode(m, prompt(PROMPT, 2), DECODE);
    b.end();
    const mem = gpu.memory();
    const after = await matmulSeconds();
    const { m: mm, n: mn, k: mk } = MATMUL;
    results.matmulGflops = (2 * mm * mn * mk) / Math.min(before, after) / 1e9;
    const prefillFlops = forwardFlops(c, 0, PROMPT);
    const prefillGflops = prefillFlops / prefill / 1e9;
    const weightBytes = 2 * (layerMatmulParams(c) + c.vocabSize * c.hiddenSize) +
      4 * c.numLayers * LAYER_WEIGHTS.filter((w) => NORM_WEIGHTS.has(w)).length * c.hiddenSize;
    const decodeFlops = forwardFlops(c, PROMPT, PROMPT + DECODE) / DECODE;
    const lines = [
      `gemma3_1b bf16 random weights on ${gpu.adapter.description}`,
      `  weights init ${results.initSeconds.toFixed(1)} s, warm-up ${
        results.warmupSeconds.toFixed(1)
      } s`,
      `  prefill ${PROMPT} tokens: ${prefill.toFixed(2)} s = ${(PROMPT / prefill).toFixed(2)} ` +
      `tokens/s, ${(prefillFlops / 1e9).toFixed(1)} GFLOP → ${prefillGflops.toFixed(2)} GFLOP/s`,
      `  decode ${DECODE} tokens: ${decode.toFixed(2)} s = ${(DECODE / decode).toFixed(3)} ` +
      `tokens/s, ${(decodeFlops / 1e9).toFixed(2)} GFLOP/token, ~${
        (weightBytes * DECODE / decode / 1e9).toFixed(2)
      } GB/s of weights`,
      `  peak GPU bytes (whole run): allocated ${mem.peakAllocatedBytes} (${
        (mem.peakAllocatedBytes / 2 ** 30).toFixed(2)
      } GiB), in use ${mem.peakInUseBytes}`,
    ];
    lines.push(
      `  prefill / matmul throughput: ${
        (100 * prefillGflops / results.matmulGflops).toFixed(1)
      } %` +
        ` (matmul ${mm}×${mk}·${mk}×${mn} bf16: ${results.matmulGflops.toFixed(2)} GFLOP/s, ` +
        `best of ${(before * 1000).toFixed(0)} ms before and ${
          (after * 1000).toFixed(0)
        } ms after)`,
    );
    console.log(lines.join("\n"));
  },
);
