/**
 * The one training-phase loop, shared by SFT and GRPO: per unit of work (an SFT optimizer step,
 * a GRPO rollout batch) it checks the abort signal (then saves a checkpoint and stops), runs the
 * step, evaluates every `eval.everySteps` steps (when set), logs its metrics with the GPU bytes
 * in use, moves the progress count (which may re-render the live report), keeps samples every
 * `run.sampleEvery` units, saves a checkpoint every `checkpoint.everySteps` steps and at the
 * end. After a unit that met kernel shape classes not tuned yet (tuning `"cached"` or `"full"`;
 * the unit ran the table's variants), it times them (`tuneKernels`) before logging, so the
 * cost lands in that unit's time (the first's, which the ETA ignores) and later units run the
 * tuned variants; a GPU out-of-memory
 * error becomes a {@linkcode TrainMemoryError} saying which settings fit; the optimizer and the
 * trained parameters are freed however it ends.
 *
 * @module
 */

import { GpuOutOfMemoryError } from "../kernels/errors.ts";
import type { Gpu } from "../kernels/gpu.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import type { Trainable } from "../model/trainable.ts";
import type { JsonValue } from "./checkpoint.ts";
import { type StepShape, trainMemoryError } from "./memory_estimate.ts";
import type { AdamW } from "./optimizer.ts";
import type { PhaseContext, PhaseResult, PhaseSample } from "./pipeline.ts";
import type { ProgressUpdate } from "./progress.ts";
import { tuneKernels } from "./train_events.ts";

/** What one unit of a training phase produced. */
export interface TrainingStepResult {
  /** Logged to `metrics.jsonl` at the unit's step. */
  readonly metrics: Record<string, number>;
  /** Shown on the progress line. */
  readonly progress: ProgressUpdate;
  /**
   * The samples to keep when this unit is a sampling point (called only then).
   *
   * @param step The unit's step.
   * @returns The samples.
   */
  samples(step: number): Promise<readonly PhaseSample[]>;
}

/** What differs between the training phases. */
export interface TrainingLoop {
  /** The model trained. */
  readonly model: Gemma3;
  /** Its trained parameters (freed when the loop ends). */
  readonly params: Trainable;
  /** AdamW over them (freed when the loop ends). */
  readonly optimizer: AdamW;
  /** Units in the phase. */
  readonly total: number;
  /** Units already done (when continuing an interrupted phase). */
  readonly start: number;
  /**
   * The step a unit count stands for (logs, checkpoints, `pipeline.json`).
   *
   * @param units Units done.
   * @returns Steps done (SFT: the same; GRPO: rollout batches × iterations).
   */
  stepOf(units: number): number;
  /**
   * Runs one unit.
   *
   * @param unit Its index (units done before it).
   * @returns Metrics, progress values, samples.
   */
  run(unit: number): Promise<TrainingStepResult>;
  /** @returns Where the data stream stands, for the checkpoint (null: nothing to save). */
  dataPosition(): JsonValue;
  /** Batch shape of a step, for the out-of-memory advice. */
  readonly shape: Pick<StepShape, "rows" | "seqLen" | "newTokens">;
  /** Called after every unit (e.g. to note that the weights changed). */
  onStep(): void;
  /** Frees what the phase holds besides the optimizer and the parameters. */
  dispose?(): void;
  /**
   * The periodic evaluation (`eval.everySteps`): evaluates the current weights without changing
   * them or drawing from the training's random streams.
   *
   * @param signal Stops the evaluation (it then rejects).
   * @returns Metrics to log with the step, e.g. `eval_accuracy`.
   */
  evaluate?(signal: AbortSignal): Promise<Record<string, number>>;
}

/**
 * The GPU bytes a metrics row records (from the device's `AllocationTracker`): held by live
 * tensors, held by the device (live and pooled), and the most the device held so far.
 *
 * @param gpu The device (`model.gpu`).
 * @returns `gpu_bytes_in_use`, `gpu_bytes_allocated`, `gpu_bytes_peak`.
 * @example
 * ```ts
 * import { gpuBytesMetrics } from "./train_loop.ts";
 * const gpu = {
 *   memory: () => ({
 *     allocatedBytes: 300,
 *     peakAllocatedBytes: 400,
 *     inUseBytes: 200,
 *     peakInUseBytes: 250,
 *     buffers: 3,
 *   }),
 * };
 * if (gpuBytesMetrics(gpu).gpu_bytes_in_use !== 200) throw new Error();
 * ```
 */
export function gpuBytesMetrics(gpu: Pick<Gpu, "memory">): Record<string, number> {
  const m = gpu.memory();
  return {
    gpu_bytes_in_use: m.inUseBytes,
    gpu_bytes_allocated: m.allocatedBytes,
    gpu_bytes_peak: m.peakAllocatedBytes,
  };
}

/**
 * Runs (or continues) a training phase.
 *
 * @param ctx The phase's context: config, logger, progress, samples, checkpoints, signal, and
 *   where tuning events go.
 * @param loop What the phase does per unit.
 * @returns `completed` with the final checkpoint, or `interrupted` with the one saved on abort.
 * @throws {TrainMemoryError} When the GPU ran out of memory (other errors pass through).
 */
export async function runTrainingLoop(
  ctx: PhaseContext,
  loop: TrainingLoop,
): Promise<PhaseResult> {
  const { config } = ctx;
  const progress = ctx.createProgress(loop.total, loop.start);
  let units = loop.start;
  let last: Record<string, number> | null = null;
  const checkpoint = async (metrics: Record<string, number> | null) =>
    await ctx.saveCheckpoint({
      step: loop.stepOf(units),
      params: loop.params.params,
      optimizerState: await loop.optimizer.state(),
      dataPosition: loop.dataPosition(),
      metrics,
      rng: { seed: config.run.seed, step: loop.stepOf(units) },
    });
  try {
    while (units < loop.total) {
      if (ctx.signal.aborted) {
        const saved = await checkpoint(null);
        return { status: "interrupted", step: loop.stepOf(units), checkpoint: saved };
      }
      const r = await loop.run(units);
      loop.onStep();
      await tuneKernels(loop.model.gpu, ctx.emit, { signal: ctx.signal });
      const before = loop.stepOf(units);
      units++;
      const step = loop.stepOf(units);
      last = r.metrics;
      const memory = gpuBytesMetrics(loop.model.gpu);
      const every = config.eval.everySteps;
      let evaluated: Record<string, number> = {};
      if (loop.evaluate && every > 0 && Math.floor(step / every) > Math.floor(before / every)) {
        try {
          evaluated = await loop.evaluate(ctx.signal);
        } catch (e) {
          // subtle: stopped mid-evaluation, the step is logged without it and checkpointed next
          if (!ctx.signal.aborted) throw e;
        }
      }
      await ctx.logger.log(ctx.phase, step, { ...r.metrics, ...evaluated, ...memory });
      const acc = evaluated.eval_accuracy;
      progress.update(
        units,
        acc === undefined ? r.progress : {
          ...r.progress,
          extra: { ...r.progress.extra, eval_acc: Number(acc.toFixed(3)) },
        },
      );
      if (config.run.sampleEvery > 0 && units % config.run.sampleEvery === 0) {
        for (const sample of await r.samples(step)) await ctx.addSample(sample);
      }
      if (step % config.checkpoint.everySteps === 0 && units < loop.total) {
        await checkpoint(last);
      }
    }
    progress.finish();
    const saved = await checkpoint(last);
    return { status: "completed", step: loop.stepOf(units), checkpoint: saved };
  } catch (e) {
    if (!(e instanceof GpuOutOfMemoryError)) throw e;
    const { model, params } = loop;
    const shape: StepShape = {
      ...loop.shape,
      mode: params.mode,
      loraRank: config.lora?.rank,
      weightBytes: model.weights.layers[0].q_proj.dtype === "bf16" ? 2 : 4,
    };
    const phase = ctx.phase === "sft" ? "sft" : "grpo";
    throw trainMemoryError(model.config, shape, e.allocatedBytes + e.requestedBytes, phase);
  } finally {
    loop.optimizer.dispose();
    loop.params.dispose();
    loop.dispose?.();
  }
}
