/**
 * Gemma 3 1B at real size on the current adapter: the `gemma3_1b` config with random bf16
 * weights (~2.0 GB on the GPU; the 262144×1152 embedding is split over several bindings),
 * prefill of a 128-token prompt into the KV cache and 16 single-token decode steps (logits for
 * the last token only, greedy sampling on the GPU).
 *
 * Reported (console.log, plus Deno.bench's own timings), with the % of the adapter's peak where
 * `peaks.ts` knows it:
 * - matmul: one `[128, 1152]·[6912, 1152]ᵀ` bf16 product (the gate/up projection of a 128-token
 *   prefill), GFLOP/s — the kernel's own throughput in this run;
 * - prefill tokens/s and achieved GFLOP/s (`gemma3_workload.ts`: matmul FLOPs `2·params·tokens`
 *   of the decoder, the causal attention `4·hd·heads·Σ visible keys`, and the last token's head
 *   `2·V·D`) as a fraction of the matmul throughput;
 * - decode tokens/s and the weight bytes streamed per second (GB/s: decode is memory bound);
 * - peak GPU bytes from the allocation tracker.
 *
 * An untimed warm-up (a 32-token prefill and 2 decode steps) compiles the pipelines first:
 * matmul row tiles are capped, so it compiles what a 128-token prefill uses. Deno 2.9 runs
 * each slow bench 3 times whatever `n`/`warmup` say; every run prints its numbers, and the
 * matmul is re-timed right before and after each model run so the fraction compares like with
 * like on a loaded machine. On Mesa llvmpipe (2 cores) the file takes about 2 minutes.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { matmul } from "../kernels/matmul.ts";
import { Tensor } from "../kernels/tensor.ts";
import { gemma3_1b } from "../model/config.ts";
import { Gemma3 } from "../model/gemma3.ts";
import {
  decodeWeightBytes,
  forwardFlops,
  measurePrefillDecode,
  prefillFlops,
  randomBf16Weights,
  randomPrompt,
} from "./gemma3_workload.ts";
import { adapterLines, adapterPeak } from "./_measure.ts";
import { formatRate } from "./peaks.ts";

const PROMPT = 128;
const DECODE = 16;
const MATMUL = { m: 128, n: 6912, k: 1152 };
const MATMUL_REPS = 4;

const gpu = await Gpu.create();
const results: Record<string, number> = {};
let matmulOperands: { x: Tensor; w: Tensor } | null = null;
let modelPromise: Promise<Gemma3> | null = null;
let headPrinted = false;

/** The adapter and its peaks, before the first printed result only. */
function head(): string {
  if (headPrinted) return "";
  headPrinted = true;
  return `${adapterLines(gpu)}\n`;
}

/** Builds the model once, then warms up every pipeline the measured runs use. */
function model(): Promise<Gemma3> {
  modelPromise ??= (async () => {
    const config = gemma3_1b();
    const started = performance.now();
    const weights = randomBf16Weights(gpu, config);
    await gpu.sync();
    results.initSeconds = (performance.now() - started) / 1000;
    const m = new Gemma3(gpu, config, weights);
    const warm = performance.now();
    await measurePrefillDecode(m, [randomPrompt(32, config.vocabSize, 1)], 2);
    results.warmupSeconds = (performance.now() - warm) / 1000;
    return m;
  })();
  return modelPromise;
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
      `${head()}matmul ${m}×${k}·${k}×${n} bf16: ${(seconds * 1000).toFixed(1)} ms, ` +
        formatRate((2 * m * n * k) / seconds / 1e9, "GFLOP/s", adapterPeak(gpu)),
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
    const measured = await measurePrefillDecode(m, [randomPrompt(PROMPT, c.vocabSize, 2)], DECODE);
    b.end();
    const prefill = measured.prefillSeconds, decode = measured.decodeSeconds;
    const mem = gpu.memory();
    const after = await matmulSeconds();
    const { m: mm, n: mn, k: mk } = MATMUL;
    results.matmulGflops = (2 * mm * mn * mk) / Math.min(before, after) / 1e9;
    const flops = prefillFlops(c, [PROMPT]);
    const prefillGflops = flops / prefill / 1e9;
    const weightBytes = decodeWeightBytes(c);
    const decodeFlops = forwardFlops(c, PROMPT, PROMPT + DECODE, DECODE) / DECODE;
    const peak = adapterPeak(gpu);
    const first = head();
    const lines = [
      ...(first ? [first.trimEnd()] : []),
      `gemma3_1b bf16 random weights on ${gpu.adapter.description}`,
      `  weights init ${results.initSeconds.toFixed(1)} s, warm-up ${
        results.warmupSeconds.toFixed(1)
      } s`,
      `  prefill ${PROMPT} tokens: ${prefill.toFixed(2)} s = ${(PROMPT / prefill).toFixed(2)} ` +
      `tokens/s, ${(flops / 1e9).toFixed(1)} GFLOP → ${formatRate(prefillGflops, "GFLOP/s", peak)}`,
      `  decode ${DECODE} tokens: ${decode.toFixed(2)} s = ${(DECODE / decode).toFixed(3)} ` +
      `tokens/s, ${(decodeFlops / 1e9).toFixed(2)} GFLOP/token, ~${
        formatRate(weightBytes * DECODE / decode / 1e9, "GB/s", peak)
      } of weights`,
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
