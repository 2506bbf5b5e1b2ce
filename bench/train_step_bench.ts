/**
 * One LoRA SFT step of the real `gemma3_1b` config (random bf16 weights; LoRA rank 32, alpha 32
 * on all 7 projections; AdamW) on one 256-token sequence: time, GFLOP/s (forward + backward
 * model FLOPs, `gemma3_workload.ts`, with the % of the adapter's f32 peak where `peaks.ts`
 * knows it) and peak GPU bytes, and the peak projected by the same accounting for a GRPO step
 * with 4 sequences of 256 + 768 tokens. Goal: ≤ 4 GiB. (`grpo_step_bench.ts` measures that
 * step itself.)
 *
 * Accounting: the allocation tracker of `Gpu` (`peakAllocatedBytes`: buffers that exist, pooled
 * or not; `peakInUseBytes`: buffers handed out). Before each measured step the pool is trimmed
 * and the peaks reset, so a step's peak is its own, from a cold pool.
 *
 * Projection (the 4×1024-token GRPO step is not run: on llvmpipe it would take ~an hour, and the
 * 65,535 loop-iteration cap per invocation is a risk for attention over 1024 keys × 256 dims):
 * - persistent = bytes held before the step (bf16 weights, LoRA, its gradients, AdamW moments,
 *   RoPE tables, scratch) — the same for any batch;
 * - activations = peak − persistent, measured at 1×256 and 2×256 tokens and extrapolated
 *   linearly in tokens T = B·S. The training pass saves each layer's input (`26·D` floats per
 *   token) and recomputes one layer at a time; attention keeps `lse` per row and recomputes P,
 *   so nothing is `[S, S]` and the log-probs are chunked over the vocabulary: every activation
 *   buffer is proportional to T. (A one-off check measured 1×512 within 1 % of 2×256, so the
 *   row length itself does not matter at these sizes.) GRPO (`grpoGradients`) runs all B rows
 *   as one pass: T = 4·1024 = 4096;
 * - the rollout's KV cache (4 rows, 1024 positions, f32, ring caches on sliding layers) is
 *   allocated exactly and reported; the rollout's peak is bounded by persistent + KV cache +
 *   the activation projection at T = 4·256 (its prefill is a forward-only pass over the
 *   prompts, which holds less than a training pass of the same tokens).
 *
 * Deno 2.9 runs a slow bench 3 times whatever `n`/`warmup` say: each run times one step (the
 * first includes pipeline compilation) and prints its numbers; the first run also makes the
 * 2×256 measurement (untimed). On Mesa llvmpipe (2 shared cores) a 256-token step took 85–160 s
 * and the file ~10 minutes.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { gemma3_1b } from "../model/config.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { KvCache } from "../model/kv_cache.ts";
import { LoraAdapter, loraConfig } from "../model/lora.ts";
import { type Trainable, trainableParameters } from "../model/trainable.ts";
import { AdamW } from "../rl/optimizer.ts";
import { type SftMicroBatch, SftTrainer } from "../rl/sft.ts";
import { adapterLines, adapterPeak, lcgWords } from "./_measure.ts";
import { forwardFlops, randomBf16Weights } from "./gemma3_workload.ts";
import { formatRate } from "./peaks.ts";

const SEQ = 256;
const GRPO = { rows: 4, prompt: 256, completion: 768 } as const;
const GIB = 2 ** 30;

interface Setup {
  readonly model: Gemma3;
  readonly trainable: Trainable;
  readonly optimizer: AdamW;
  readonly trainer: SftTrainer;
  readonly initSeconds: number;
}

interface StepMeasure {
  readonly tokens: number;
  readonly seconds: number;
  readonly persistent: number;
  readonly peakAllocated: number;
  readonly peakInUse: number;
}

const gpu = await Gpu.create();
let setupPromise: Promise<Setup> | null = null;
let runs = 0;

function setup(): Promise<Setup> {
  setupPromise ??= (async () => {
    const config = gemma3_1b();
    const t0 = performance.now();
    const weights = randomBf16Weights(gpu, config);
    await gpu.sync();
    const initSeconds = (performance.now() - t0) / 1000;
    const model = new Gemma3(
      gpu,
      config,
      weights,
      LoraAdapter.init(gpu, config, loraConfig({ rank: 32, alpha: 32 }), 0),
    );
    const trainable = trainableParameters(model, "lora");
    const optimizer = new AdamW(gpu, trainable.params, {
      learningRate: 1e-5,
      weightDecay: 0.01,
      maxGradNorm: 1,
    });
    const trainer = new SftTrainer(model, trainable, optimizer);
    return { model, trainable, optimizer, trainer, initSeconds };
  })();
  return setupPromise;
}

/** B rows of S pseudo-random ids; the loss counts the second half of each row (a completion). */
function microBatch(rows: number, seq: number, seed: number): SftMicroBatch {
  const n = rows * seq;
  const inputIds = Int32Array.from(lcgWords(n, seed), (s) => 3 + (s % 200_000));
  const targetIds = new Int32Array(n), lossMask = new Float32Array(n);
  for (let b = 0; b < rows; b++) {
    for (let t = 0; t + 1 < seq; t++) {
      targetIds[b * seq + t] = inputIds[b * seq + t + 1];
      lossMask[b * seq + t] = t + 1 >= seq / 2 ? 1 : 0;
    }
  }
  const lengths = new Int32Array(rows).fill(seq);
  return { batchSize: rows, seqLen: seq, inputIds, targetIds, lossMask, lengths };
}

/** One optimizer step from a trimmed pool with reset peaks; `timer` brackets the step only. */
async function measureStep(
  s: Setup,
  rows: number,
  seq: number,
  timer?: Deno.BenchContext,
): Promise<StepMeasure> {
  await gpu.sync();
  gpu.pool.trim();
  gpu.tracker.resetPeaks();
  const persistent = gpu.memory().allocatedBytes;
  const mb = microBatch(rows, seq, 1000 + runs);
  timer?.start();
  const t0 = performance.now();
  const r = await s.trainer.step([mb]);
  const seconds = (performance.now() - t0) / 1000;
  timer?.end();
  if (!r.applied) throw new Error(`the step was skipped (loss ${r.loss})`);
  const m = gpu.memory();
  return {
    tokens: rows * seq,
    seconds,
    persistent,
    peakAllocated: m.peakAllocatedBytes,
    peakInUse: m.peakInUseBytes,
  };
}

const bytesOf = (ts: Iterable<Tensor>) => {
  let n = 0;
  for (const t of ts) for (const p of t.parts) n += p.bytes;
  return n;
};
const gib = (bytes: number) => `${(bytes / GIB).toFixed(3)} GiB`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Linear fit through two points, evaluated at x. */
function extrapolate(x0: number, y0: number, x1: number, y1: number, x: number): number {
  return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
}

function projection(s: Setup, one: StepMeasure, two: StepMeasure): string[] {
  const c = s.model.config;
  const w = s.model.weights;
  const weightBytes = bytesOf([w.embed, w.finalNorm, ...w.layers.flatMap((l) => Object.values(l))]);
  const loraBytes = bytesOf(s.trainable.params.values());
  const gradBytes = bytesOf(s.trainable.grads.values());
  const T = GRPO.rows * (GRPO.prompt + GRPO.completion);
  const act = (m: StepMeasure, key: "peakAllocated" | "peakInUse") => m[key] - m.persistent;
  const project = (key: "peakAllocated" | "peakInUse", tokens: number) =>
    extrapolate(one.tokens, act(one, key), two.tokens, act(two, key), tokens);
  const perToken = (key: "peakAllocated" | "peakInUse") =>
    (act(two, key) - act(one, key)) / (two.tokens - one.tokens);
  const kv = new KvCache(gpu, c, { batch: GRPO.rows, maxLength: GRPO.prompt + GRPO.completion });
  const kvBytes = kv.bytes;
  kv.dispose();
  const persistent = one.persistent;
  const trainAlloc = persistent + project("peakAllocated", T);
  const trainInUse = persistent + project("peakInUse", T);
  const rollout = persistent + kvBytes + project("peakAllocated", GRPO.rows * GRPO.prompt);
  const peak = Math.max(trainAlloc, rollout);
  return [
    `  persistent ${gib(persistent)}: bf16 weights ${gib(weightBytes)}, LoRA r32 ${
      mib(loraBytes)
    }, LoRA grads ${mib(gradBytes)}, AdamW moments ${mib(2 * loraBytes)}, other ${
      mib(persistent - weightBytes - loraBytes - gradBytes - 2 * loraBytes)
    }`,
    `  activations (peak − persistent): ${one.tokens} tokens → allocated ${
      mib(act(one, "peakAllocated"))
    } / in use ${mib(act(one, "peakInUse"))}; ${two.tokens} tokens (2×${SEQ}) → ${
      mib(act(two, "peakAllocated"))
    } / ${mib(act(two, "peakInUse"))}; slope ${(perToken("peakAllocated") / 1024).toFixed(1)} / ${
      (perToken("peakInUse") / 1024).toFixed(1)
    } KiB per token`,
    `  GRPO step projection, ${GRPO.rows}×(${GRPO.prompt}+${GRPO.completion}) = ${T} tokens in one pass:`,
    `    training pass peak: allocated ${gib(trainAlloc)}, in use ${gib(trainInUse)}`,
    `    rollout: KV cache ${mib(kvBytes)}; peak ≤ ${gib(rollout)}`,
    `    projected GRPO step peak ${gib(peak)} — goal ≤ 4 GiB: ${
      peak <= 4 * GIB ? "met" : "MISSED"
    }`,
  ];
}

Deno.bench(
  `gemma3_1b bf16 LoRA r32 SFT step, 1×${SEQ} tokens`,
  { n: 1, warmup: 0 },
  async (b) => {
    const s = await setup();
    runs++;
    const one = await measureStep(s, 1, SEQ, b);
    // LoRA: forward and the backward's dX through the frozen weights (no dW of the base).
    const flops = 2 * forwardFlops(s.model.config, 0, SEQ, SEQ);
    const lines = [
      ...(runs === 1 ? [adapterLines(gpu)] : []),
      `gemma3_1b bf16 random weights, LoRA r32 α32 × 7 targets, on ${gpu.adapter.description}` +
      ` (run ${runs}${
        runs === 1
          ? `, includes pipeline compilation; weights init ${s.initSeconds.toFixed(1)} s`
          : ""
      })`,
      `  SFT step 1×${SEQ}: ${one.seconds.toFixed(1)} s = ${
        (one.tokens / one.seconds).toFixed(2)
      } tokens/s, ${formatRate(flops / one.seconds / 1e9, "GFLOP/s", adapterPeak(gpu))}` +
      `; peak allocated ${one.peakAllocated} B (${gib(one.peakAllocated)}), ` +
      `peak in use ${one.peakInUse} B (${gib(one.peakInUse)})`,
    ];
    if (runs === 1) {
      const two = await measureStep(s, 2, SEQ);
      lines.push(
        `  SFT step 2×${SEQ} (untimed by the bench): ${two.seconds.toFixed(1)} s; peak allocated ${
          gib(two.peakAllocated)
        }, in use ${gib(two.peakInUse)}`,
        ...projection(s, one, two),
      );
    }
    console.log(lines.join("\n"));
  },
);
