/**
 * The training pipeline: runs the planned phases (`base-eval → sft → sft-eval → grpo →
 * grpo-eval`, each optional per config) through injected {@linkcode Phase} implementations,
 * records where it stands in `pipeline.json` after every phase and checkpoint, writes
 * `eval.json`, re-renders `report.html` after every phase (so a crash still leaves a report)
 * and while a phase runs — at the first step boundary, then at the first boundary (training
 * step, evaluation batch) at least `reportEveryMs` (30 s) after the last render —, keeps sample
 * completions, stops cleanly on an abort signal, and resumes a run from its saved state.
 *
 * The live report costs no file reads: the metrics are read from the store once when the
 * pipeline starts and after each phase, and in between taken from the logger's in-memory
 * records (`MetricsLogger.records()`); samples are kept in memory (the latest
 * `REPORT_SAMPLES_PER_PHASE` per phase).
 *
 * Files and checkpoints go through a `RunStore` (`run_store.ts`; `FsRunStore` in
 * `pipeline_fs.ts` is the run folder, `MemoryRunStore` keeps everything in memory), and progress
 * goes out as `TrainEvent`s (`train_events.ts`), so this module runs in a browser. The phases
 * of a real run are in `phases.ts`; `train()` (`train.ts`) wires it all.
 *
 * @module
 */

import type { CheckpointInput, LoadedCheckpoint } from "./checkpoint.ts";
import type { ExportFile } from "./export_files.ts";
import type { MetricsLogger } from "./metrics.ts";
import type { ProgressUpdate } from "./progress.ts";
import {
  latestSamples,
  renderReport,
  REPORT_SAMPLES_PER_PHASE,
  type ReportEval,
  type ReportSample,
} from "./report.ts";
import { runReportInput } from "./run_report.ts";
import type { RunStore } from "./run_store.ts";
import { ReportWriter } from "./_report_writer.ts";
import type { TrainEvent } from "./train_events.ts";
import type { TrainConfig } from "./train_config.ts";
import {
  EVAL_PHASE_KEYS,
  type EvalFile,
  keptOnResume,
  newPipelineState,
  type PhaseName,
  PipelineError,
  type PipelineState,
  plannedPhases,
  toReportEval,
  weightsBefore,
} from "./pipeline_state.ts";

/** Where an interrupted phase continues from. */
export interface PhaseResume {
  /** Steps already done. */
  readonly step: number;
  /** Checkpoint of that step, or null (start over from `weightsFrom`). */
  readonly checkpoint: string | null;
}

/** A sample completion as a phase hands it over (`phase` defaults to the running phase). */
export type PhaseSample = Omit<ReportSample, "phase"> & { readonly phase?: string };

/** A phase's progress count (a `ProgressReporter` fits); each call becomes a `TrainEvent`. */
export interface PhaseProgress {
  /**
   * @param step Units done so far.
   * @param values Latest values to show.
   */
  update(step: number, values?: ProgressUpdate): void;
  /** @param values Final values to show. */
  finish(values?: ProgressUpdate): void;
}

/** What a running phase gets. */
export interface PhaseContext {
  /** The phase. */
  readonly phase: PhaseName;
  /** The run's config. */
  readonly config: TrainConfig;
  /** The run folder (or the store's label). */
  readonly runDir: string;
  /** Per-step metrics (`metrics.jsonl`). */
  readonly logger: MetricsLogger;
  /** Aborted on Ctrl-C: save a checkpoint and return `{ status: "interrupted" }` soon. */
  readonly signal: AbortSignal;
  /** Non-null when continuing this phase after an interruption. */
  readonly resumeFrom: PhaseResume | null;
  /** Final checkpoint of the last finished training phase (null: the initial weights). */
  readonly weightsFrom: string | null;
  /**
   * A progress count for this phase (sent out as `progress-start`, `step`, `progress-end`).
   *
   * @param total Steps in the phase.
   * @param startStep Steps already done (after a resume).
   * @returns The progress count.
   */
  createProgress(total: number, startStep?: number): PhaseProgress;
  /**
   * Re-renders `report.html` when at least `reportEveryMs` passed since the last render (call
   * it at step boundaries and between evaluation batches; every `update` of a progress count
   * from {@linkcode PhaseContext.createProgress} calls it). Returns at once: the render is
   * written in the background (in order with the other report writes); a failed write is
   * reported once as a message and does not stop the run.
   */
  refreshReport(): void;
  /**
   * Sends an event to the run's listener (`TrainOptions.onEvent`), e.g. the kernel tuning's
   * progress.
   *
   * @param event The event.
   */
  emit(event: TrainEvent): void;
  /**
   * Keeps a sample completion (`samples.jsonl`, the report's table).
   *
   * @param sample The sample.
   */
  addSample(sample: PhaseSample): Promise<void>;
  /**
   * Saves a checkpoint of this phase through the store (keeping `config.checkpoint.keep`) and
   * records it in `pipeline.json`, so a crash resumes from it.
   *
   * @param input Step, parameters, optimizer state and JSON trainer fields.
   * @returns The checkpoint's reference (`<runDir>/checkpoints/<phase>/step-<N>`).
   */
  saveCheckpoint(input: CheckpointInput): Promise<string>;
  /**
   * Loads a checkpoint of this run (`resumeFrom.checkpoint`, `weightsFrom`).
   *
   * @param ref Its reference.
   * @returns Everything saved, on the host.
   */
  loadCheckpoint(ref: string): Promise<LoadedCheckpoint>;
  /**
   * Writes this (training) phase's export through the store (`export/<phase>/`, see
   * `export.ts`).
   *
   * @param files The files.
   * @returns The export's reference (`<runDir>/export/<phase>`).
   */
  writeExport(files: readonly ExportFile[]): Promise<string>;
}

/** What a phase returns. */
export interface PhaseResult {
  /** `interrupted` when it stopped early because of the signal. */
  readonly status: "completed" | "interrupted";
  /** Steps done. */
  readonly step: number;
  /** Training phases: the final (or, when interrupted, the latest) checkpoint; else null. */
  readonly checkpoint: string | null;
  /** Evaluation phases: the summary (`EvalSummary` fits). */
  readonly eval?: ReportEval | null;
}

/** One phase of the pipeline. */
export interface Phase {
  /**
   * Runs (or continues) the phase.
   *
   * @param ctx Config, run folder, logger, signal, resume point and helpers.
   * @returns How it ended.
   */
  run(ctx: PhaseContext): Promise<PhaseResult>;
}

/** Implementations by phase name (each planned phase needs one). */
export type PhaseSet = Readonly<Partial<Record<PhaseName, Phase>>>;

/** Options of {@linkcode runPipeline}. */
export interface RunPipelineOptions {
  /** The run's config. */
  readonly config: TrainConfig;
  /** Phase implementations. */
  readonly phases: PhaseSet;
  /** Where files go. */
  readonly store: RunStore;
  /** Metrics logger writing to the store's metrics. */
  readonly logger: MetricsLogger;
  /** Stops the run cleanly when aborted. */
  readonly signal?: AbortSignal;
  /** Receives progress, samples, checkpoints and status lines; default discarded. */
  readonly onEvent?: (event: TrainEvent) => void;
  /** Clock (default `() => new Date()`). */
  readonly now?: () => Date;
  /** Report title (default `webtune run <runDir>`). */
  readonly title?: string;
  /**
   * Least milliseconds between two renders of `report.html` while a phase runs (default
   * {@linkcode DEFAULT_REPORT_EVERY_MS}; 0: at every step boundary).
   */
  readonly reportEveryMs?: number;
  /** Milliseconds of a monotonic clock for `reportEveryMs` (default `performance.now`). */
  readonly reportClock?: () => number;
}

/** Default least time between two renders of `report.html` during a phase: 30 s. */
export const DEFAULT_REPORT_EVERY_MS = 30_000;

/**
 * Runs, or resumes, the pipeline. A new run starts at the first planned phase; a run whose
 * store holds a state continues at its `current` phase, handing that phase `resumeFrom`, after
 * dropping the metrics and samples written past that point (`keptOnResume`), so each
 * `(phase, step)` is logged once; a completed run only re-renders its report. A phase that the
 * signal stops by throwing its reason (an evaluation) is `interrupted`, not `failed`.
 *
 * @param options Config, phases, store, logger, signal, progress, clock.
 * @returns The final state: `completed`, or `interrupted` at `current`.
 * @throws The error of a failing phase, after recording `failed` and writing the report.
 * @throws {PipelineError} When a planned phase has no implementation or an evaluation phase
 *   returns no summary.
 */
export async function runPipeline(options: RunPipelineOptions): Promise<PipelineState> {
  const { config, store, logger } = options;
  const now = options.now ?? (() => new Date());
  const signal = options.signal ?? new AbortController().signal;
  const emit = options.onEvent ?? (() => {});
  const say = (text: string) => emit({ type: "message", text });
  const saved = await store.readState();
  let state: PipelineState = saved ?? newPipelineState(plannedPhases(config), now());
  for (const phase of state.phases) {
    if (!state.completed.includes(phase) && options.phases[phase] === undefined) {
      throw new PipelineError(`no implementation was given for the ${phase} phase`);
    }
  }
  if (saved !== null && saved.status !== "completed") {
    // Rows past the checkpoint it resumes from (a kill -9 between checkpoints) are redone.
    const dropped = await store.retainRows(keptOnResume(saved));
    if (dropped.metrics + dropped.samples > 0) {
      say(
        `dropped ${dropped.metrics} metrics rows and ${dropped.samples} samples written after ` +
          "the last checkpoint; those steps run again",
      );
    }
  }
  const perPhase = REPORT_SAMPLES_PER_PHASE;
  let samples = latestSamples(await store.readSamples(), perPhase);
  const title = options.title ?? `webtune run ${store.runDir}`;

  let writes: Promise<void> = Promise.resolve();
  const save = (next: Partial<PipelineState>): Promise<void> => {
    state = { ...state, ...next, updatedAt: now().toISOString() };
    const snapshot = state;
    writes = writes.then(() => store.writeState(snapshot));
    return writes;
  };

  const reports = new ReportWriter({
    store,
    logger,
    render: (metrics) => renderReport(runReportInput(state, { title, config, metrics, samples })),
    everyMs: options.reportEveryMs ?? DEFAULT_REPORT_EVERY_MS,
    clock: options.reportClock ?? (() => performance.now()),
    onLiveError: (e) => say(`report.html was not updated: ${e instanceof Error ? e.message : e}`),
  });
  const report = () => reports.write();
  const refreshReport = () => reports.refresh();
  await reports.sync();

  if (state.status === "completed") {
    await report();
    return state;
  }
  if (saved !== null) {
    const at = state.current;
    say(`resuming ${store.runDir}` + (at ? ` at ${at.phase} step ${at.step}` : ""));
  }
  await save({ status: "running", error: null });

  for (const phase of state.phases) {
    if (state.completed.includes(phase)) continue;
    const at = state.current?.phase === phase ? state.current : null;
    if (signal.aborted) {
      await save({
        status: "interrupted",
        current: at ?? { phase, step: 0, checkpoint: null },
      });
      break;
    }
    await save({ current: at ?? { phase, step: 0, checkpoint: null } });
    const ctx: PhaseContext = {
      phase,
      config,
      runDir: store.runDir,
      logger,
      signal,
      resumeFrom: at && (at.step > 0 || at.checkpoint !== null)
        ? { step: at.step, checkpoint: at.checkpoint }
        : null,
      weightsFrom: weightsBefore(state, phase),
      createProgress: (total, startStep = 0) => {
        emit({ type: "progress-start", phase, total, startStep });
        return {
          update: (step, values = {}) => {
            emit({ type: "step", phase, step, total, values });
            refreshReport();
          },
          finish: (values = {}) => emit({ type: "progress-end", phase, values }),
        };
      },
      refreshReport,
      emit,
      addSample: (sample) => {
        const full: ReportSample = { ...sample, phase: sample.phase ?? phase };
        samples.push(full);
        if (samples.length > 10 * perPhase) samples = latestSamples(samples, perPhase);
        emit({ type: "sample", sample: full });
        return store.appendSample(full);
      },
      saveCheckpoint: async (input) => {
        const checkpoint = await store.saveCheckpoint(phase, input, {
          keep: config.checkpoint.keep,
        });
        await save({ current: { phase, step: input.step, checkpoint } });
        emit({ type: "checkpoint", phase, step: input.step, checkpoint });
        return checkpoint;
      },
      loadCheckpoint: (ref) => store.loadCheckpoint(ref),
      writeExport: (files) => store.writeExport(phase, files),
    };
    say(
      ctx.resumeFrom
        ? `${phase}: continuing from step ${ctx.resumeFrom.step}`
        : `${phase}: starting`,
    );
    emit({ type: "phase-start", phase, fromStep: ctx.resumeFrom?.step ?? 0 });
    let result: PhaseResult;
    let evals = state.evals;
    try {
      result = await options.phases[phase]!.run(ctx);
      await logger.flush();
      const key = EVAL_PHASE_KEYS[phase];
      if (key !== undefined && result.status === "completed") {
        if (!result.eval) throw new PipelineError(`the ${phase} phase returned no eval summary`);
        evals = orderedEvals({ ...evals, [key]: toReportEval(result.eval, `${phase} eval`) });
        await store.writeEvals(evals);
      }
    } catch (error) {
      if (!(signal.aborted && error === signal.reason)) {
        const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        await save({ status: "failed", error: `${phase}: ${message}` });
        await report().catch(() => {});
        throw error;
      }
      // Stopped by the signal mid-phase (an evaluation): it runs again from where it started.
      result = { status: "interrupted", step: at?.step ?? 0, checkpoint: at?.checkpoint ?? null };
    }
    if (result.status === "interrupted") {
      await save({
        status: "interrupted",
        current: {
          phase,
          step: result.step,
          checkpoint: result.checkpoint ?? state.current?.checkpoint ?? null,
        },
      });
      say(`${phase}: interrupted at step ${result.step}`);
      emit({ type: "phase-end", phase, status: "interrupted", step: result.step });
      break;
    }
    await save({
      completed: [...state.completed, phase],
      current: null,
      evals,
      outputs: { ...state.outputs, [phase]: { step: result.step, checkpoint: result.checkpoint } },
    });
    say(`${phase}: done`);
    emit({ type: "phase-end", phase, status: "completed", step: result.step });
    if (state.completed.length < state.phases.length) await report();
  }
  if (state.status === "running" && state.completed.length === state.phases.length) {
    await save({ status: "completed", current: null });
  }
  await report();
  await writes;
  return state;
}

/** `eval.json` keys in pipeline order (base, sft, grpo). */
function orderedEvals(evals: EvalFile): EvalFile {
  const out: Partial<Record<keyof EvalFile, ReportEval>> = {};
  for (const k of ["base", "sft", "grpo"] as const) if (evals[k]) out[k] = evals[k];
  return out;
}
