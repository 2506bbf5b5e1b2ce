/**
 * The device check's model parts, on random bf16 weights of the real shapes
 * (`bench/gemma3_workload.ts`): building the model with the `gemma3-1b-gsm8k` preset's LoRA, a
 * warm-up that compiles the pipelines and queues the tuning jobs, prefill (tokens/s, GFLOP/s,
 * % of f32 peak and of the best matmul rate; several prefills behind one wait), decode at batch
 * 1 (tokens/s, GB/s of weights, % of memory bandwidth; one wait after all steps, and every 8
 * steps as `generate()` reads ids back) and one GRPO step (`bench/grpo_step.ts`), shortened when the rates
 * measured before it say the full step cannot finish in its time box.
 *
 * @module
 */

import { GrpoStepBench, type GrpoStepSizes } from "../bench/grpo_step.ts";
import {
  decodeWeightBytes,
  layerMatmulParams,
  measurePrefill,
  measurePrefillDecode,
  prefillFlops,
  randomPrompt,
} from "../bench/gemma3_workload.ts";
import { type AdapterPeak, percentOfPeak } from "../bench/peaks.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { matmul } from "../kernels/matmul.ts";
import { Tensor } from "../kernels/tensor.ts";
import { gemma3_1b, type Gemma3Config, gemma3Config } from "../model/config.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import { type CheckSizes, round, significant } from "./_device_check_run.ts";

/** The model of a check and the rates measured on it so far (for the GRPO step's estimate). */
export interface ModelUnderTest {
  /** The GRPO bench: the policy model (LoRA on), its optimizer. */
  readonly bench: GrpoStepBench;
  /** The same weights without LoRA (prefill and decode). */
  readonly base: Gemma3;
  /** Prefill tokens/s, once measured. */
  prefillTokensPerSecond?: number;
  /** Decode steps/s at batch 1, once measured. */
  decodeStepsPerSecond?: number;
}

/** A tiny Gemma 3 for quick checks (every code path of the real one, at toy widths). */
function tinyConfig(): Gemma3Config {
  return gemma3Config({
    vocabSize: 512,
    hiddenSize: 64,
    intermediateSize: 128,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 32,
    queryPreAttnScalar: 32,
    slidingWindow: 16,
    slidingWindowPattern: 2,
    maxPositionEmbeddings: 256,
  });
}

const pct = (rate: number, unit: "GFLOP/s" | "GB/s", peak: AdapterPeak | null) => {
  const p = percentOfPeak(rate, unit, peak);
  return p === null ? null : significant(p, 3);
};

/**
 * Builds the model: random bf16 weights of the check's config and the preset's LoRA.
 *
 * @param gpu The device.
 * @param sizes The check's sizes.
 * @param out The part's record.
 * @returns The model under test.
 */
export async function buildModel(
  gpu: Gpu,
  sizes: CheckSizes,
  out: Record<string, unknown>,
): Promise<ModelUnderTest> {
  const config = sizes.model === "gemma3_1b" ? gemma3_1b() : tinyConfig();
  const bench = GrpoStepBench.create(gpu, config);
  await gpu.sync();
  Object.assign(out, {
    config: sizes.model,
    projectionParams: layerMatmulParams(config),
    vocabSize: config.vocabSize,
    weightBytes: decodeWeightBytes(config),
    initSeconds: round(bench.initSeconds, 3),
    allocatedBytes: gpu.memory().allocatedBytes,
  });
  return { bench, base: bench.model.withLora(null) };
}

/**
 * Compiles what the measured parts run and queues their tuning jobs: one default matmul per
 * size, a prefill and a few decode steps, and a short GRPO step.
 *
 * @param gpu The device.
 * @param model The model under test.
 * @param sizes The check's sizes.
 * @param out The part's record.
 */
export async function warmUp(
  gpu: Gpu,
  model: ModelUnderTest,
  sizes: CheckSizes,
  out: Record<string, unknown>,
): Promise<void> {
  for (const size of sizes.matmul) {
    const x = Tensor.zeros(gpu, [size, size]);
    matmul(x, x, { transposeB: false }).dispose();
    x.dispose();
  }
  await gpu.sync();
  const vocab = model.base.config.vocabSize;
  const { batch, promptLength } = sizes.prefill;
  const prompts = Array.from({ length: batch }, (_, b) => randomPrompt(promptLength, vocab, b));
  await measurePrefillDecode(model.base, prompts, 0);
  await measurePrefillDecode(model.base, [randomPrompt(sizes.decode.promptLength, vocab, 9)], 9);
  const step = await model.bench.step(sizes.warmupGrpo);
  out.grpoStepSeconds = round(step.stepSeconds, 3);
  out.queuedTuningJobs = gpu.tuner.pending;
}

/**
 * Prefill of the rollout's shape: `batch` prompts of `promptLength` tokens.
 *
 * @param model The model under test.
 * @param sizes The check's sizes.
 * @param out The part's record.
 * @param context The adapter's peaks and the best matmul rate at the largest size.
 */
export async function checkPrefill(
  model: ModelUnderTest,
  sizes: CheckSizes,
  out: Record<string, unknown>,
  context: {
    readonly peak: AdapterPeak | null;
    readonly matmul: { readonly size: number; readonly gflops: number } | null;
  },
): Promise<void> {
  const c = model.base.config;
  const { batch, promptLength } = sizes.prefill;
  const prompts = Array.from(
    { length: batch },
    (_, b) => randomPrompt(promptLength, c.vocabSize, b),
  );
  // One prefill alone, then as many back to back as fill ~0.5 s behind one wait.
  const once = await measurePrefill(model.base, prompts, 1);
  const reps = Math.max(1, Math.min(16, Math.ceil(0.5 / once)));
  const seconds = reps > 1 ? await measurePrefill(model.base, prompts, reps) : once;
  const tokens = batch * promptLength;
  const flops = prefillFlops(c, prompts.map((p) => p.length));
  const gflops = flops / seconds / 1e9;
  model.prefillTokensPerSecond = tokens / seconds;
  Object.assign(out, {
    batch,
    promptLength,
    tokens,
    prefills: reps,
    prefillSeconds: significant(seconds),
    prefillSecondsAlone: significant(once),
    tokensPerSecond: significant(model.prefillTokensPerSecond),
    flops,
    gflops: significant(gflops),
    percentOfPeak: pct(gflops, "GFLOP/s", context.peak),
    matmulReference: context.matmul,
    percentOfMatmul: context.matmul ? significant((100 * gflops) / context.matmul.gflops, 3) : null,
  });
}

/**
 * Decode at batch 1: a prompt, then greedy steps, twice: ids read back every 8 steps (as
 * `generate()` does) and once after the last step (the kernels' rate, which the % of memory
 * bandwidth is taken from).
 *
 * @param model The model under test.
 * @param sizes The check's sizes.
 * @param out The part's record.
 * @param peak The adapter's peaks.
 */
export async function checkDecode(
  model: ModelUnderTest,
  sizes: CheckSizes,
  out: Record<string, unknown>,
  peak: AdapterPeak | null,
): Promise<void> {
  const c = model.base.config;
  const { promptLength, steps } = sizes.decode;
  const prompt = [randomPrompt(promptLength, c.vocabSize, 3)];
  const weightBytes = decodeWeightBytes(c);
  Object.assign(out, { batch: 1, promptLength, steps, weightBytesPerToken: weightBytes });
  const measure = async (readbackEvery: number) => {
    const m = await measurePrefillDecode(model.base, prompt, steps, { readbackEvery });
    const gbs = (weightBytes * steps) / m.decodeSeconds / 1e9;
    return {
      decodeSeconds: significant(m.decodeSeconds),
      tokensPerSecond: significant(steps / m.decodeSeconds),
      gbPerSecond: significant(gbs),
      percentOfBandwidth: pct(gbs, "GB/s", peak),
    };
  };
  const oneWait = await measure(Infinity);
  Object.assign(out, oneWait);
  out.readbackEvery8 = await measure(8);
  model.decodeStepsPerSecond = (out.readbackEvery8 as { tokensPerSecond: number }).tokensPerSecond;
}

/**
 * The step the time box allows: the asked-for sizes, or fewer new tokens when the rollout
 * (decode steps at the measured rate) and the training pass (about 5 prefill-equivalents of its
 * tokens: policy forward, recomputation, backward, reference forward) would take longer than
 * 80 % of `seconds`.
 *
 * @param model The model under test (its measured rates).
 * @param sizes The asked-for step.
 * @param seconds The time left for the step.
 * @returns The step to run and the estimate of its seconds (null without rates).
 * @example
 * ```ts ignore
 * const { sizes, estimate } = fitGrpoStep(model, GRPO_STEP_FULL, 150);
 * ```
 */
export function fitGrpoStep(
  model: Pick<ModelUnderTest, "prefillTokensPerSecond" | "decodeStepsPerSecond">,
  sizes: GrpoStepSizes,
  seconds: number,
): { readonly sizes: GrpoStepSizes; readonly estimate: number | null } {
  const prefill = model.prefillTokensPerSecond, decode = model.decodeStepsPerSecond;
  if (!prefill || !decode) return { sizes, estimate: null };
  const estimate = (n: number) =>
    (sizes.completions * sizes.promptLength) / prefill + n / decode +
    (5 * sizes.completions * (sizes.promptLength + n)) / prefill;
  let n = sizes.maxNewTokens;
  while (n > 16 && estimate(n) > 0.8 * seconds) n = Math.max(16, Math.floor(n / 2));
  return {
    sizes: n === sizes.maxNewTokens ? sizes : { ...sizes, maxNewTokens: n },
    estimate: estimate(n),
  };
}

/**
 * One measured GRPO step (see `bench/grpo_step.ts`), fitted to the time left.
 *
 * @param model The model under test.
 * @param sizes The check's sizes.
 * @param out The part's record.
 * @param context The adapter's peaks and the seconds the step may take.
 */
export async function checkGrpoStep(
  model: ModelUnderTest,
  sizes: CheckSizes,
  out: Record<string, unknown>,
  context: { readonly peak: AdapterPeak | null; readonly seconds: number },
): Promise<void> {
  const fitted = fitGrpoStep(model, sizes.grpo, context.seconds);
  Object.assign(out, {
    completions: fitted.sizes.completions,
    promptLength: fitted.sizes.promptLength,
    maxNewTokens: fitted.sizes.maxNewTokens,
    shortened: fitted.sizes !== sizes.grpo,
    estimatedSeconds: fitted.estimate === null ? null : round(fitted.estimate, 1),
  });
  const m = await model.bench.step(fitted.sizes);
  Object.assign(out, {
    generatedTokens: m.generatedTokens,
    trainedTokens: m.trainedTokens,
    stepSeconds: round(m.stepSeconds, 3),
    rolloutSeconds: round(m.rolloutSeconds, 3),
    trainSeconds: round(m.trainSeconds, 3),
    rolloutTokensPerSecond: significant(m.rolloutTokensPerSecond),
    trainingTokensPerSecond: significant(m.trainingTokensPerSecond),
    trainingGflops: significant(m.trainingGflops),
    trainingPercentOfPeak: pct(m.trainingGflops, "GFLOP/s", context.peak),
    persistentBytes: m.persistentBytes,
    peakAllocatedBytes: m.peakAllocatedBytes,
    peakInUseBytes: m.peakInUseBytes,
    loss: m.loss,
  });
}
