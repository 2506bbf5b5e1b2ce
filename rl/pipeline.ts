/**
 * The training pipeline: runs the planned phases (`base-eval → sft → sft-eval → grpo →
 * grpo-eval`, each optional per config) through injected {@linkcode Phase} implementations,
 * records where it stands in `pipeline.json` after every phase and checkpoint, writes
 * `eval.json` and re-renders `report.html` after every phase (so a crash still leaves a
 * report), keeps sample completions, stops cleanly on an abort signal, and resumes a run from
 * its saved state.
 *
 * Files go through a {@linkcode RunStore} (`pipeline_fs.ts` has the folder one,
 * {@linkcode MemoryRunStore} keeps everything in memory), so this module runs in a browser.
 *
 * @module
 */

import {
  MemoryLineSink,
  type MetricsLogger,
  type MetricsRecord,
  parseMetricsJsonl,
} from "./metrics.ts";
import { ProgressReporter, type ProgressReporterOptions } from "./progress.ts";
import { renderReport, type ReportEval, type ReportSample } from "./report.ts";
import type { TrainConfig } from "./train_config.ts";
import {
  EVAL_PHASE_KEYS,
  type EvalFile,
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

/** What a running phase gets. */
export interface PhaseContext {
  /** The phase. */
  readonly phase: PhaseName;
  /** The run's config. */
  readonly config: TrainConfig;
  /** The run folder. */
  readonly runDir: string;
  /** Where this phase keeps its checkpoints: `<runDir>/checkpoints/<phase>`. */
  readonly checkpointDir: string;
  /** Per-step metrics (`metrics.jsonl`). */
  readonly logger: MetricsLogger;
  /** Aborted on Ctrl-C: save a checkpoint and return `{ status: "interrupted" }` soon. */
  readonly signal: AbortSignal;
  /** Non-null when continuing this phase after an interruption. */
  readonly resumeFrom: PhaseResume | null;
  /** Final checkpoint of the last finished training phase (null: the initial weights). */
  readonly weightsFrom: string | null;
  /**
   * A progress line for this phase.
   *
   * @param total Steps in the phase.
   * @param startStep Steps already done (after a resume).
   * @returns The reporter.
   */
  createProgress(total: number, startStep?: number): ProgressReporter;
  /**
   * Keeps a sample completion (`samples.jsonl`, the report's table).
   *
   * @param sample The sample.
   */
  addSample(sample: PhaseSample): Promise<void>;
  /**
   * Records a saved checkpoint in `pipeline.json`, so a crash resumes from it.
   *
   * @param step Steps done.
   * @param checkpoint The checkpoint folder.
   */
  recordCheckpoint(step: number, checkpoint: string): Promise<void>;
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

/** Where a run's files go. */
export interface RunStore {
  /** The run folder (or a label for in-memory stores). */
  readonly runDir: string;
  /** @returns The saved pipeline state, or null for a new run. */
  readState(): Promise<PipelineState | null>;
  /** @param state Replaces `pipeline.json` (atomically). */
  writeState(state: PipelineState): Promise<void>;
  /** @param evals Replaces `eval.json` (atomically). */
  writeEvals(evals: EvalFile): Promise<void>;
  /** @param html Replaces `report.html` (atomically). */
  writeReport(html: string): Promise<void>;
  /** @param sample Appended to `samples.jsonl`. */
  appendSample(sample: ReportSample): Promise<void>;
  /** @returns Every sample kept so far. */
  readSamples(): Promise<ReportSample[]>;
  /** @returns Every metrics record logged so far (the logger is flushed first). */
  readMetrics(): Promise<MetricsRecord[]>;
}

/**
 * A {@linkcode RunStore} in memory; `metrics` is the logger's sink.
 *
 * @example
 * ```ts
 * import { MemoryRunStore } from "./pipeline.ts";
 * const store = new MemoryRunStore();
 * await store.writeReport("<html></html>");
 * if (store.report !== "<html></html>") throw new Error();
 * ```
 */
export class MemoryRunStore implements RunStore {
  /** Label used as the run folder. */
  readonly runDir: string;
  /** Sink to give the run's `MetricsLogger`. */
  readonly metrics: MemoryLineSink = new MemoryLineSink();
  /** Last written state. */
  state: PipelineState | null = null;
  /** Last written `eval.json` contents. */
  evals: EvalFile | null = null;
  /** Last written report. */
  report: string | null = null;
  /** Samples kept. */
  readonly samples: ReportSample[] = [];
  /** Every state written, in order (tests). */
  readonly stateHistory: PipelineState[] = [];

  /** @param runDir Label used as the run folder (default `"memory"`). */
  constructor(runDir = "memory") {
    this.runDir = runDir;
  }
  /** @returns The last written state. */
  readState(): Promise<PipelineState | null> {
    return Promise.resolve(this.state === null ? null : structuredClone(this.state));
  }
  /** @param state The new state. */
  writeState(state: PipelineState): Promise<void> {
    this.state = structuredClone(state);
    this.stateHistory.push(this.state);
    return Promise.resolve();
  }
  /** @param evals The new evaluation results. */
  writeEvals(evals: EvalFile): Promise<void> {
    this.evals = structuredClone(evals);
    return Promise.resolve();
  }
  /** @param html The report. */
  writeReport(html: string): Promise<void> {
    this.report = html;
    return Promise.resolve();
  }
  /** @param sample A sample. */
  appendSample(sample: ReportSample): Promise<void> {
    this.samples.push(sample);
    return Promise.resolve();
  }
  /** @returns The samples. */
  readSamples(): Promise<ReportSample[]> {
    return Promise.resolve([...this.samples]);
  }
  /** @returns The logged records. */
  readMetrics(): Promise<MetricsRecord[]> {
    return Promise.resolve(parseMetricsJsonl(this.metrics.text()));
  }
}

/** Builds a progress reporter (e.g. one writing to stderr). */
export type ProgressFactory = (options: ProgressReporterOptions) => ProgressReporter;

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
  /** Progress lines (default: discarded). */
  readonly progress?: ProgressFactory;
  /** Status lines ("phase sft done", …); default discarded. */
  readonly onMessage?: (text: string) => void;
  /** Clock (default `() => new Date()`). */
  readonly now?: () => Date;
  /** Report title (default `webtune run <runDir>`). */
  readonly title?: string;
}

/**
 * Runs, or resumes, the pipeline. A new run starts at the first planned phase; a run whose
 * store holds a state continues at its `current` phase, handing that phase `resumeFrom`; a
 * completed run only re-renders its report.
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
  const say = options.onMessage ?? (() => {});
  const progress: ProgressFactory = options.progress ??
    ((o) => new ProgressReporter({ write: () => {} }, o));
  const saved = await store.readState();
  let state: PipelineState = saved ?? newPipelineState(plannedPhases(config), now());
  for (const phase of state.phases) {
    if (!state.completed.includes(phase) && options.phases[phase] === undefined) {
      throw new PipelineError(`no implementation was given for the ${phase} phase`);
    }
  }
  const samples = await store.readSamples();
  const title = options.title ?? `webtune run ${store.runDir}`;

  let writes: Promise<void> = Promise.resolve();
  const save = (next: Partial<PipelineState>): Promise<void> => {
    state = { ...state, ...next, updatedAt: now().toISOString() };
    const snapshot = state;
    writes = writes.then(() => store.writeState(snapshot));
    return writes;
  };
  const report = async (): Promise<void> => {
    await logger.flush().catch(() => {});
    await store.writeReport(renderReport({
      title,
      config,
      metrics: await store.readMetrics(),
      evals: state.evals,
      samples,
      startedAt: state.startedAt,
      finishedAt: state.status === "completed" ? state.updatedAt : undefined,
    }));
  };

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
      checkpointDir: `${store.runDir.replace(/[/\\]+$/, "")}/checkpoints/${phase}`,
      logger,
      signal,
      resumeFrom: at && (at.step > 0 || at.checkpoint !== null)
        ? { step: at.step, checkpoint: at.checkpoint }
        : null,
      weightsFrom: weightsBefore(state, phase),
      createProgress: (total, startStep = 0) => progress({ phase, total, startStep }),
      addSample: (sample) => {
        const full: ReportSample = { ...sample, phase: sample.phase ?? phase };
        samples.push(full);
        return store.appendSample(full);
      },
      recordCheckpoint: (step, checkpoint) => save({ current: { phase, step, checkpoint } }),
    };
    say(
      ctx.resumeFrom
        ? `${phase}: continuing from step ${ctx.resumeFrom.step}`
        : `${phase}: starting`,
    );
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
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      await save({ status: "failed", error: `${phase}: ${message}` });
      await report().catch(() => {});
      throw error;
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
      break;
    }
    await save({
      completed: [...state.completed, phase],
      current: null,
      evals,
      outputs: { ...state.outputs, [phase]: { step: result.step, checkpoint: result.checkpoint } },
    });
    say(`${phase}: done`);
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
