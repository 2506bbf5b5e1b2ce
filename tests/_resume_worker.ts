/**
 * The SFT run shared by `train_resume_test.ts` and its child process. Imported, it builds a run
 * (model, trainable parameters, AdamW, SftTrainer, BatchIterator); run as a script, it is the
 * "new process" of the resume test: it loads a checkpoint, restores parameters, optimizer state
 * and data position, trains more steps and saves a checkpoint.
 *
 * ```
 * deno run -A tests/_resume_worker.ts <full|lora> <checkpoint dir> <out run dir> <steps> <fixture>
 * ```
 *
 * @module
 */

import { BatchIterator, type TokenizedExample } from "../data/batching.ts";
import type { BatchSamplerState } from "../data/batch_sampler.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { disposeGemma3Weights, initGemma3Weights } from "../model/gemma3_weights.ts";
import { LoraAdapter, loraConfig } from "../model/lora.ts";
import { type Trainable, trainableParameters } from "../model/trainable.ts";
import { restoreParams } from "../rl/checkpoint.ts";
import { loadCheckpoint, saveCheckpoint } from "../rl/checkpoint_fs.ts";
import { AdamW } from "../rl/optimizer.ts";
import { warmupCosineDecaySchedule } from "../rl/schedule.ts";
import { SftTrainer } from "../rl/sft.ts";
import { rng, testGpu, TINY_CONFIG } from "./_helpers.ts";

/** What the resume test trains. */
export type ResumeMode = "full" | "lora";

/** Micro-batches (gradient accumulation) per optimizer step. */
export const MICRO_BATCHES = 2;

/** The tiny from-scratch model of the full-parameter run. */
export { TINY_CONFIG };

/** 7 examples of 4..9 tokens (7 rows, batch 2: epochs of 4 batches, the last one short). */
export function resumeExamples(vocab: number): TokenizedExample[] {
  const r = rng(11);
  return Array.from({ length: 7 }, (_, i) => {
    const n = 4 + ((i * 5) % 6);
    const ids = [2, ...Array.from({ length: n - 2 }, () => 3 + Math.floor(r() * (vocab - 3))), 1];
    return { inputIds: ids, promptLength: 1 + (i % 3) };
  });
}

const ITERATOR_OPTIONS = { batchSize: 2, seed: 5, shuffle: true, padId: 0 } as const;

/** One run's live objects. */
export interface ResumeRun {
  /** The model. */
  readonly model: Gemma3;
  /** Its trainable parameters and gradients. */
  readonly trainable: Trainable;
  /** The optimizer over them. */
  readonly optimizer: AdamW;
  /** The trainer. */
  readonly trainer: SftTrainer;
  /** The data stream. */
  readonly batches: BatchIterator;
  /** Frees everything. */
  dispose(): void;
}

/**
 * Builds a fresh run. The seed initialises the trained weights (the resumed process uses
 * another seed, so only a complete restore can make it match).
 *
 * @param gpu Runtime.
 * @param mode Full-parameter on the tiny model or LoRA on the fixture.
 * @param options Init seed, fixture folder (LoRA), data position to resume at.
 * @returns The run.
 */
export async function createRun(
  gpu: Gpu,
  mode: ResumeMode,
  options: { seed: number; fixture: string; state?: BatchSamplerState },
): Promise<ResumeRun> {
  let model: Gemma3;
  if (mode === "full") {
    model = new Gemma3(
      gpu,
      TINY_CONFIG,
      initGemma3Weights(gpu, TINY_CONFIG, { seed: options.seed, std: 0.2 }),
    );
  } else {
    model = await loadGemma3(options.fixture, { gpu });
    model = model.withLora(LoraAdapter.init(
      gpu,
      model.config,
      loraConfig({ rank: 4, alpha: 8 }),
      options.seed,
    ));
  }
  const trainable = trainableParameters(model, mode);
  const optimizer = new AdamW(gpu, trainable.params, {
    learningRate: warmupCosineDecaySchedule({
      initValue: 0,
      peakValue: 1e-2,
      warmupSteps: 2,
      decaySteps: 8,
      endValue: 1e-3,
    }),
    weightDecay: 0.01,
    maxGradNorm: 1,
  });
  const trainer = new SftTrainer(model, trainable, optimizer);
  const examples = resumeExamples(model.config.vocabSize);
  const batches = options.state
    ? BatchIterator.restore(examples, ITERATOR_OPTIONS, options.state)
    : new BatchIterator(examples, ITERATOR_OPTIONS);
  return {
    model,
    trainable,
    optimizer,
    trainer,
    batches,
    dispose() {
      optimizer.dispose();
      trainable.dispose();
      model.lora?.dispose();
      disposeGemma3Weights(model.weights);
    },
  };
}

/**
 * Runs optimizer steps of {@linkcode MICRO_BATCHES} micro-batches each.
 *
 * @param run The run.
 * @param steps How many.
 * @returns The losses.
 */
export async function trainSteps(run: ResumeRun, steps: number): Promise<number[]> {
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const micro = Array.from({ length: MICRO_BATCHES }, () => run.batches.next());
    const r = await run.trainer.step(micro);
    if (!r.applied) throw new Error(`step ${run.optimizer.stepCount} was skipped`);
    losses.push(r.loss);
  }
  return losses;
}

/**
 * Saves a run's checkpoint (params, optimizer state, data position).
 *
 * @param run The run.
 * @param runDir Run folder.
 * @returns The checkpoint folder.
 */
export async function saveRun(run: ResumeRun, runDir: string): Promise<string> {
  return await saveCheckpoint(runDir, {
    step: run.optimizer.stepCount,
    params: run.trainable.params,
    optimizerState: await run.optimizer.state(),
    dataPosition: { ...run.batches.state() },
  });
}

async function main(args: string[]): Promise<void> {
  const [mode, checkpointDir, outDir, steps, fixture] = args;
  if ((mode !== "full" && mode !== "lora") || !checkpointDir || !outDir || !steps) {
    throw new Error(
      "usage: _resume_worker.ts <full|lora> <checkpoint dir> <out run dir> <steps> <fixture>",
    );
  }
  const gpu = await testGpu();
  const ckpt = await loadCheckpoint(checkpointDir);
  // A different init seed than the first process: everything trained must come from the file.
  const run = await createRun(gpu, mode, {
    seed: 999,
    fixture,
    state: ckpt.dataPosition as unknown as BatchSamplerState,
  });
  restoreParams(run.trainable.params, ckpt);
  run.optimizer.loadState(ckpt.optimizerState!);
  await trainSteps(run, Number(steps));
  console.log(`resumed at step ${ckpt.step}, saved ${await saveRun(run, outDir)}`);
  run.dispose();
  gpu.destroy();
}

if (import.meta.main) await main(Deno.args);
