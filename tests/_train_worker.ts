/**
 * The `deno task train` process of the signal tests (`train_demo_test.ts`): `trainMain` with
 * its real environment (signal handlers, console), except that the phase named on the command
 * line pauses right after logging the given step: it prints `paused <phase> <step>` on stdout
 * and waits until a signal stops the run (SIGTERM, SIGINT) or the process is killed. So the
 * test sends its signal at a known step, with no timing guess.
 *
 * ```
 * deno run -A tests/_train_worker.ts <phase>:<step>|none <deno task train arguments…>
 * ```
 *
 * It also holds the in-process training helpers the train tests share.
 *
 * @module
 */

import { type TrainEnvironment, trainMain } from "../cli/train.ts";
import type { MetricsLogger } from "../rl/metrics.ts";
import type { Phase, PhaseContext, PhaseSet } from "../rl/pipeline.ts";
import type { PhaseName } from "../rl/pipeline_state.ts";
import { ProgressReporter } from "../rl/progress.ts";
import { train, type TrainOptions, type TrainResult } from "../rl/train.ts";
import type { TrainConfig } from "../rl/train_config.ts";

/** A few steps per phase of the demo preset, small enough for a CPU adapter. */
export const TINY_TRAIN_SETS: readonly string[] = [
  "sft.steps=3",
  "grpo.numBatches=2",
  "eval.numQuestions=2",
  "eval.batchSize=2",
  "eval.maxNewTokens=6",
  "grpo.maxNewTokens=6",
  "grpo.batchSize=1",
  "grpo.numGenerations=2",
  "checkpoint.everySteps=2",
  "run.sampleEvery=1",
  "run.samplesPerPoint=1",
];

/** `train()` stopped (aborted) once `phase` has logged the metrics of `step`. */
export function trainUntil(
  config: TrainConfig,
  options: TrainOptions,
  phase: PhaseName,
  step: number,
): Promise<TrainResult> {
  const controller = new AbortController();
  return train(config, {
    ...options,
    signal: controller.signal,
    onEvent: (e) => {
      if (e.type === "metrics" && e.record.phase === phase && e.record.step === step) {
        controller.abort();
      }
    },
  });
}

/** What an in-process `trainMain` printed, and its exit code. */
export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** `trainMain` in this process with no Hub cache, quiet progress and a fixed clock. */
export async function runTrainMain(
  args: string[],
  phases?: TrainEnvironment["phases"],
): Promise<CliRun> {
  const out: string[] = [], err: string[] = [];
  const code = await trainMain(args, {
    env: { HF_HUB_CACHE: "/nonexistent-hub-cache" },
    ...(phases ? { phases } : {}),
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    onInterrupt: () => () => {},
    now: () => new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
    progress: (o) => new ProgressReporter({ write: () => {} }, o),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** The line the worker prints when it pauses. */
export function pausedLine(phase: PhaseName, step: number): string {
  return `paused ${phase} ${step}`;
}

/** Wraps a phase so that it pauses after logging `step` until the run's signal aborts. */
function pauseAfter(phase: Phase, name: PhaseName, step: number): Phase {
  return {
    run(ctx: PhaseContext) {
      const logger = {
        async log(p: string, s: number, values: Record<string, number>) {
          await ctx.logger.log(p, s, values);
          if (s !== step) return;
          console.log(pausedLine(name, step));
          const deadline = Date.now() + 120_000;
          while (!ctx.signal.aborted && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        },
        flush: () => ctx.logger.flush(),
        records: () => ctx.logger.records(),
      } as unknown as MetricsLogger;
      return phase.run({ ...ctx, logger });
    },
  };
}

if (import.meta.main) {
  const [pause, ...args] = Deno.args;
  let phases: ((defaults: PhaseSet) => PhaseSet) | undefined;
  if (pause !== "none") {
    const [name, step] = pause.split(":") as [PhaseName, string];
    phases = (defaults) => ({
      ...defaults,
      [name]: pauseAfter(defaults[name]!, name, Number(step)),
    });
  }
  Deno.exit(await trainMain(args, { phases }));
}
