/**
 * What a training run reports while it runs: the {@linkcode TrainEvent} union that `train()`
 * hands to `options.onEvent` (phase start and end, progress steps with their totals, logged
 * metrics, samples, checkpoints, status messages, kernel tuning), {@linkcode progressLines},
 * which turns those events back into {@linkcode ProgressReporter} lines, and
 * {@linkcode tuneKernels}, which times the kernel jobs a device queued and reports it as
 * {@linkcode TuningEvent}s.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import type { TuningReport } from "../kernels/tuning.ts";
import type { MetricsRecord } from "./metrics.ts";
import type { PhaseName } from "./pipeline_state.ts";
import type { ProgressReporter, ProgressReporterOptions, ProgressUpdate } from "./progress.ts";
import type { ReportSample } from "./report.ts";

/** A phase began (`fromStep > 0`: it continues an interrupted one). */
export interface PhaseStartEvent {
  /** Discriminant. */
  readonly type: "phase-start";
  /** The phase. */
  readonly phase: PhaseName;
  /** Steps already done. */
  readonly fromStep: number;
}

/** A phase ended. */
export interface PhaseEndEvent {
  /** Discriminant. */
  readonly type: "phase-end";
  /** The phase. */
  readonly phase: PhaseName;
  /** `interrupted` when the run was stopped in it. */
  readonly status: "completed" | "interrupted";
  /** Steps done. */
  readonly step: number;
}

/** A phase's progress count starts (training: steps or rollout batches; evaluation: batches). */
export interface ProgressStartEvent {
  /** Discriminant. */
  readonly type: "progress-start";
  /** The phase. */
  readonly phase: PhaseName;
  /** Units in the phase. */
  readonly total: number;
  /** Units already done (after a resume). */
  readonly startStep: number;
}

/** A unit of progress is done; with `startStep`, `total` and a clock this gives an ETA. */
export interface StepEvent {
  /** Discriminant. */
  readonly type: "step";
  /** The phase. */
  readonly phase: PhaseName;
  /** Units done. */
  readonly step: number;
  /** Units in the phase. */
  readonly total: number;
  /** Latest loss, reward, KL, tokens, … as the progress line shows them. */
  readonly values: ProgressUpdate;
}

/** A phase's progress count ends. */
export interface ProgressEndEvent {
  /** Discriminant. */
  readonly type: "progress-end";
  /** The phase. */
  readonly phase: PhaseName;
  /** Final values to show. */
  readonly values: ProgressUpdate;
}

/** A training step's metrics record, as appended to `metrics.jsonl`. */
export interface MetricsEvent {
  /** Discriminant. */
  readonly type: "metrics";
  /** `{ phase, step, time?, ...metrics }`. */
  readonly record: MetricsRecord;
}

/** A sample completion was kept. */
export interface SampleEvent {
  /** Discriminant. */
  readonly type: "sample";
  /** The sample. */
  readonly sample: ReportSample;
}

/** A checkpoint was saved and recorded. */
export interface CheckpointEvent {
  /** Discriminant. */
  readonly type: "checkpoint";
  /** The phase. */
  readonly phase: PhaseName;
  /** Steps it holds. */
  readonly step: number;
  /** Its reference (the folder, for a run folder). */
  readonly checkpoint: string;
}

/** A status line ("sft: starting", "resuming …", "grpo: interrupted at step 2"). */
export interface TrainMessageEvent {
  /** Discriminant. */
  readonly type: "message";
  /** The line. */
  readonly text: string;
}

/**
 * Kernel autotuning (`gpu.tuner.tune()`, between steps while the tuner has jobs queued): one
 * `start` event, one `job` event per job timed, one `end` event.
 */
export interface TuningEvent {
  /** Discriminant. */
  readonly type: "tuning";
  /** Which event of the tuning this is. */
  readonly stage: "start" | "job" | "end";
  /** Jobs timed so far. */
  readonly done: number;
  /** Jobs to time. */
  readonly total: number;
  /** The job just timed (`job` events): `family shapeClass`, e.g. `matmul nt:m1:n2048:k1152`. */
  readonly job: string | null;
  /** Seconds since tuning began. */
  readonly seconds: number;
  /** What tuning did (`end` events; null when it failed): its cost is `report.seconds`. */
  readonly report: TuningReport | null;
}

/** Everything a run reports through `onEvent`. */
export type TrainEvent =
  | PhaseStartEvent
  | PhaseEndEvent
  | ProgressStartEvent
  | StepEvent
  | ProgressEndEvent
  | MetricsEvent
  | SampleEvent
  | CheckpointEvent
  | TrainMessageEvent
  | TuningEvent;

/** Builds a progress reporter (e.g. one writing to stderr). */
export type ProgressFactory = (options: ProgressReporterOptions) => ProgressReporter;

/**
 * An `onEvent` listener that draws one {@linkcode ProgressReporter} per progress count:
 * created on `progress-start`, updated on `step`, finished on `progress-end`; and one for each
 * kernel tuning (`tuning kernels 3/12  25% | elapsed … | ETA … | kernel matmul nt:…`, ending
 * with the candidates timed and how many shape classes switched from the table's variant).
 *
 * @param create Builds the reporter of a phase.
 * @returns The listener (other events are ignored).
 * @example
 * ```ts
 * import { progressLines } from "./train_events.ts";
 * import { ProgressReporter } from "./progress.ts";
 * let out = "";
 * const onEvent = progressLines((o) =>
 *   new ProgressReporter({ write: (t) => (out += t) }, { ...o, clock: () => 0 })
 * );
 * onEvent({ type: "progress-start", phase: "sft", total: 2, startStep: 0 });
 * onEvent({ type: "step", phase: "sft", step: 2, total: 2, values: { loss: 0.5 } });
 * onEvent({ type: "progress-end", phase: "sft", values: {} });
 * if (!out.includes("sft [####################] 2/2 100%")) throw new Error(out);
 * ```
 */
export function progressLines(create: ProgressFactory): (event: TrainEvent) => void {
  const bars = new Map<PhaseName, ProgressReporter>();
  let tuning: ProgressReporter | null = null;
  return (e) => {
    if (e.type === "tuning") {
      if (e.stage === "start") {
        for (const bar of bars.values()) bar.clear(); // the tuning line takes the terminal line
        tuning = create({ phase: "tuning kernels", total: e.total, barWidth: 0 });
      } else if (e.stage === "job") {
        tuning?.update(e.done, { extra: { kernel: e.job ?? "" } });
      } else {
        const r = e.report;
        const switched = r?.choices.filter((c) => c.chosen !== c.table).length ?? 0;
        tuning?.finish(r ? { extra: { variants: r.candidatesTimed, switched } } : {});
        tuning = null;
      }
    } else if (e.type === "progress-start") {
      bars.set(e.phase, create({ phase: e.phase, total: e.total, startStep: e.startStep }));
    } else if (e.type === "step") {
      bars.get(e.phase)?.update(e.step, e.values);
    } else if (e.type === "progress-end") {
      bars.get(e.phase)?.finish(e.values);
      bars.delete(e.phase);
    }
  };
}

/**
 * Times the kernel jobs the device's tuner has queued (none with tuning `"off"`, or when every
 * shape class met is already tuned: then it returns at once and reports nothing), reporting it
 * as {@linkcode TuningEvent}s.
 *
 * @param gpu The device (`model.gpu`).
 * @param emit Receives the events (e.g. `train()`'s `onEvent`, or {@linkcode progressLines}).
 * @param options `signal` stops between jobs (those left stay queued).
 * @returns The tuning's report, or null when nothing was queued.
 * @example
 * ```ts
 * import { tuneKernels } from "./train_events.ts";
 * import { Gpu } from "../kernels/gpu.ts";
 * const gpu = await Gpu.create(); // tuning "off": nothing is ever queued
 * console.log(await tuneKernels(gpu, (e) => console.log(e))); // null
 * gpu.destroy();
 * ```
 */
export async function tuneKernels(
  gpu: Pick<Gpu, "tuner">,
  emit: (event: TuningEvent) => void,
  options: { readonly signal?: AbortSignal } = {},
): Promise<TuningReport | null> {
  const total = gpu.tuner.pending;
  if (total === 0) return null;
  const event = { type: "tuning", total, job: null, report: null } as const;
  emit({ ...event, stage: "start", done: 0, seconds: 0 });
  let report: TuningReport | null = null;
  try {
    report = await gpu.tuner.tune({
      signal: options.signal,
      onProgress: ({ done, seconds, family, shapeClass }) =>
        emit({ ...event, stage: "job", done, seconds, job: `${family} ${shapeClass}` }),
    });
    return report;
  } finally {
    const done = report?.jobs ?? 0, seconds = report?.seconds ?? 0;
    emit({ ...event, stage: "end", done, seconds, report });
  }
}
