/**
 * `train()` for any runtime: runs (or resumes) the whole recipe — base evaluation, SFT,
 * evaluation, GRPO, evaluation, as the config plans it — in a {@linkcode RunStore}, reporting
 * progress through `onEvent` and stopping with a checkpoint when `signal` aborts. Nothing here
 * reads files: the demo preset needs only a tokenizer (`options.tokenizer`); other inputs come
 * from `options.sources`. The Deno `train()` of `train_fs.ts` adds run folders and file inputs.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import type { Gpu } from "../kernels/gpu.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import { type LineSink, MetricsLogger } from "./metrics.ts";
import { createPhases } from "./phases.ts";
import { type PhaseSet, runPipeline } from "./pipeline.ts";
import type { EvalFile, PipelineState } from "./pipeline_state.ts";
import { createRunInputs, type InputSources, staticInputSources } from "./run_inputs.ts";
import { createRunSession } from "./run_session.ts";
import type { RolloutExecutor } from "./rollout_tasks.ts";
import type { RunStore } from "./run_store.ts";
import { type ValidatedRun, validateRun } from "./run_validation.ts";
import type { TrainConfig } from "./train_config.ts";
import type { TrainEvent } from "./train_events.ts";

/** Options of `train()`. */
export interface TrainOptions {
  /**
   * The run folder (Deno `train()` only): a new or empty folder gets `config.json`; one with a
   * `config.json` must hold this config and is resumed.
   */
  readonly runDir?: string;
  /** Where the run lives in any runtime, e.g. a `MemoryRunStore` (instead of `runDir`). */
  readonly store?: RunStore;
  /** Aborting it stops the run with a checkpoint (status `interrupted`, resumable). */
  readonly signal?: AbortSignal;
  /** Receives progress, metrics, samples, checkpoints and status lines. */
  readonly onEvent?: (event: TrainEvent) => void;
  /** The real Gemma 3 tokenizer (default: read by the input sources). */
  readonly tokenizer?: Tokenizer;
  /** Where model folders and datasets come from (default: files in Deno, none elsewhere). */
  readonly sources?: InputSources;
  /** The device (default: a new one, destroyed when the run ends). */
  readonly gpu?: Gpu;
  /**
   * Where GRPO's per-prompt rollout tasks run (default: this process), e.g. rollout workers
   * through a broker (`BrokerRollout`); with `grpo.maxStaleness` 0 the run's metrics and
   * evaluations do not depend on it.
   */
  readonly rollout?: RolloutExecutor;
  /** Clock of `pipeline.json`'s times (default `() => new Date()`). */
  readonly now?: () => Date;
  /** Title of `report.html` (default `webtune <preset> run <runDir>`). */
  readonly title?: string;
  /**
   * Least milliseconds between two renders of `report.html` while a phase runs (default 30 s;
   * 0: at every step boundary).
   */
  readonly reportEveryMs?: number;
  /**
   * What `validateRun()` (`validateRunFs()` in Deno) returned for this config object: the run
   * uses the sources holding what it read and is not checked again. Without it, `train()`
   * validates first (a completed run, which only re-renders its report, is not checked).
   */
  readonly validated?: ValidatedRun;
  /**
   * Replaces or wraps phase implementations (tests).
   *
   * @param defaults The real phases.
   * @returns The phases to run.
   */
  readonly phases?: (defaults: PhaseSet) => PhaseSet;
}

/** What `train()` returns. */
export interface TrainResult {
  /** `interrupted` when `signal` stopped it (call `train()` again to continue). */
  readonly status: "completed" | "interrupted";
  /** The run's `eval.json`: one summary per evaluation done so far. */
  readonly eval: EvalFile;
  /** The run folder, or the store's label. */
  readonly runDir: string;
  /** The final `pipeline.json`. */
  readonly state: PipelineState;
}

/** A sink that also reports each line as a `metrics` event once it is written. */
function reportingSink(sink: LineSink, emit: (event: TrainEvent) => void): LineSink {
  return {
    async append(line) {
      await sink.append(line);
      emit({ type: "metrics", record: JSON.parse(line) });
    },
  };
}

/**
 * Runs, or resumes, a training run in a store (any runtime). The run is checked first
 * (`validateRun`: config, inputs, lengths, tokenizer), so a mistake is reported before the
 * store is written. A failing phase is recorded in the store (status `failed`, resumable) and
 * its error rethrown.
 *
 * @param config The run's config (`resolveTrainConfig`).
 * @param options `store` (required here), `signal`, `onEvent`, `tokenizer`, `sources`, `gpu`.
 * @returns Status, evaluations, store label and final state.
 * @throws {FieldError} When `options.store` is missing, or from `validateRun` (a
 *   `TrainConfigError`, `InputSourceError` or `TokenizerMismatchError` naming the field).
 * @example
 * ```ts
 * import { train } from "./train.ts";
 * import { MemoryRunStore } from "./run_store.ts";
 * import { resolveTrainConfig } from "./presets.ts";
 * import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
 * const config = resolveTrainConfig({
 *   preset: "demo",
 *   sets: ["sft.steps=2", "grpo.numBatches=1", "eval.numQuestions=2", "eval.maxNewTokens=4",
 *     "grpo.maxNewTokens=4", "grpo.batchSize=1", "grpo.numGenerations=2"],
 * });
 * const store = new MemoryRunStore();
 * const result = await train(config, { store, tokenizer: await loadDefaultTokenizer() });
 * console.log(result.status, result.eval.grpo?.accuracy, store.checkpoints.size);
 * ```
 */
export async function train(config: TrainConfig, options: TrainOptions): Promise<TrainResult> {
  const store = options.store;
  if (!store || options.runDir !== undefined) {
    throw new FieldError(
      options.runDir !== undefined ? "runDir" : "store",
      "this train() needs options.store (e.g. a MemoryRunStore); a run folder (options.runDir) " +
        "needs the Deno train() of mod.ts",
    );
  }
  const emit = options.onEvent ?? (() => {});
  let sources = options.sources ?? staticInputSources({ tokenizer: options.tokenizer });
  if (options.validated?.config === config) {
    sources = options.validated.sources;
  } else if ((await store.readState())?.status !== "completed") {
    sources = (await validateRun(config, { sources })).sources;
  }
  const inputs = createRunInputs(config, { sources, store });
  const session = createRunSession(inputs, { gpu: options.gpu, rollout: options.rollout });
  const defaults = createPhases(session);
  try {
    const state = await runPipeline({
      config,
      phases: options.phases ? options.phases(defaults) : defaults,
      store,
      logger: new MetricsLogger(reportingSink(store.metricsSink, emit)),
      signal: options.signal,
      onEvent: emit,
      now: options.now,
      title: options.title ?? `webtune ${config.preset} run ${store.runDir}`,
      reportEveryMs: options.reportEveryMs,
    });
    return {
      status: state.status === "completed" ? "completed" : "interrupted",
      eval: state.evals,
      runDir: store.runDir,
      state,
    };
  } finally {
    await session.dispose();
  }
}
