/**
 * One GRPO step of the `gemma3-1b-gsm8k` preset on the real `gemma3_1b` shapes (random bf16
 * weights, LoRA r32 on all 7 projections, AdamW; see `grpo_step.ts`): 4 completions of a
 * 256-token prompt, up to 768 new tokens. Prints rollout tokens/s, training tokens/s and the
 * training pass's GFLOP/s (with the % of the adapter's f32 peak where `peaks.ts` knows it), step
 * seconds and peak GPU bytes — measured, not projected.
 *
 * Length: full on a hardware adapter; on a software adapter (llvmpipe, lavapipe: hours at full
 * length) the short step (8-token prompt, 8 new tokens, same 4 rows) unless `--full`.
 * `--short` (or `WEBTUNE_BENCH_SHORT=1`) forces the short step anywhere:
 * `deno bench -A bench/grpo_step_bench.ts -- --short`.
 *
 * Before the first measured step an untimed warm-up step (the same prompt, 4 new tokens)
 * compiles the pipelines. Deno 2.9 runs a slow bench 3 times whatever `n`/`warmup` say: each run
 * is one measured step and prints its numbers. On llvmpipe (2 cores) the short form takes about
 * 5 minutes in all (a loaded machine: 3–4× more).
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { gemma3_1b } from "../model/config.ts";
import {
  GRPO_STEP_FULL,
  GRPO_STEP_SHORT,
  GrpoStepBench,
  type GrpoStepMeasure,
} from "./grpo_step.ts";
import { adapterLines, adapterPeak } from "./_measure.ts";
import { formatRate } from "./peaks.ts";

const gpu = await Gpu.create();
const forced = Deno.args.includes("--short") || Deno.env.get("WEBTUNE_BENCH_SHORT") === "1"
  ? "short"
  : Deno.args.includes("--full")
  ? "full"
  : null;
const short = forced === null ? gpu.adapter.isFallbackAdapter : forced === "short";
const sizes = short ? GRPO_STEP_SHORT : GRPO_STEP_FULL;
let bench: GrpoStepBench | null = null;
let runs = 0;

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(3)} GiB`;

function report(m: GrpoStepMeasure, run: number): string {
  const s = m.sizes;
  return [
    `GRPO step ${s.completions}×(${s.promptLength} + ≤${s.maxNewTokens}) gemma3_1b bf16 random ` +
    `weights, LoRA r32, run ${run}${short ? " — SHORT step" : ""}`,
    `  step ${m.stepSeconds.toFixed(2)} s: rollout ${m.rolloutSeconds.toFixed(2)} s ` +
    `(${m.generatedTokens} tokens, ${m.rolloutTokensPerSecond.toFixed(2)} tokens/s), training ` +
    `${m.trainSeconds.toFixed(2)} s (${m.trainedTokens} tokens, ` +
    `${m.trainingTokensPerSecond.toFixed(2)} tokens/s, ` +
    `${formatRate(m.trainingGflops, "GFLOP/s", adapterPeak(gpu))})`,
    `  peak GPU bytes: allocated ${m.peakAllocatedBytes} (${gib(m.peakAllocatedBytes)}), in use ` +
    `${m.peakInUseBytes} (${gib(m.peakInUseBytes)}); before the step ${gib(m.persistentBytes)}; ` +
    `loss ${m.loss.toFixed(6)}`,
  ].join("\n");
}

Deno.bench(
  `gemma3_1b GRPO step ${sizes.completions}×(${sizes.promptLength} + ≤${sizes.maxNewTokens})`,
  { n: 1, warmup: 0 },
  async (b) => {
    if (!bench) {
      bench = GrpoStepBench.create(gpu, gemma3_1b());
      await gpu.sync();
      const warm = await bench.step({ ...sizes, maxNewTokens: 4 });
      console.log(
        `${adapterLines(gpu)}\nrandom weights built in ${bench.initSeconds.toFixed(1)} s; ` +
          `warm-up step (compiles the pipelines) ${warm.stepSeconds.toFixed(1)} s`,
      );
    }
    b.start();
    const m = await bench.step(sizes);
    b.end();
    console.log(report(m, ++runs));
  },
);
