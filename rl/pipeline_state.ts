/**
 * The training pipeline's phases and its saved state (`pipeline.json` in the run folder): which
 * phases are planned, which are done, where the current one stands (step and checkpoint), each
 * finished phase's final checkpoint, and the evaluation results. Pure data and validation; the
 * runner is `pipeline.ts`, the files are written by `pipeline_fs.ts`.
 *
 * @module
 */

import type { ReportEval } from "./report.ts";
import type { TrainConfig } from "./train_config.ts";

/** The pipeline's phases, in the order they run. */
export const PHASE_NAMES: readonly ["base-eval", "sft", "sft-eval", "grpo", "grpo-eval"] = Object
  .freeze(["base-eval", "sft", "sft-eval", "grpo", "grpo-eval"] as const);

/** A phase of the pipeline. */
export type PhaseName = typeof PHASE_NAMES[number];

/** A key of `eval.json`: which model an evaluation measured. */
export type EvalKey = "base" | "sft" | "grpo";

/** The evaluation phases and the `eval.json` key each one fills. */
export const EVAL_PHASE_KEYS: Readonly<Partial<Record<PhaseName, EvalKey>>> = Object.freeze({
  "base-eval": "base",
  "sft-eval": "sft",
  "grpo-eval": "grpo",
});

/** The training phases (they change weights and write checkpoints). */
export const TRAINING_PHASES: readonly PhaseName[] = Object.freeze(["sft", "grpo"]);

/** Contents of `eval.json`: one summary per evaluation that ran. */
export type EvalFile = Readonly<Partial<Record<EvalKey, ReportEval>>>;

/** Where a phase stands: steps done and the checkpoint holding them (null: none yet). */
export interface PhasePosition {
  /** The phase. */
  readonly phase: PhaseName;
  /** Steps done. */
  readonly step: number;
  /** Checkpoint folder of that step, or null. */
  readonly checkpoint: string | null;
}

/** What a finished phase left behind. */
export interface PhaseOutput {
  /** Steps done. */
  readonly step: number;
  /** Its final checkpoint (training phases), or null. */
  readonly checkpoint: string | null;
}

/** The pipeline's overall status. */
export type PipelineStatus = "running" | "interrupted" | "completed" | "failed";

/** Contents of `pipeline.json`. */
export interface PipelineState {
  /** Always `"webtune.pipeline"`. */
  readonly format: "webtune.pipeline";
  /** Always 1. */
  readonly version: 1;
  /** Status; `running` after a hard crash reads like `interrupted`. */
  readonly status: PipelineStatus;
  /** Planned phases, in order. */
  readonly phases: readonly PhaseName[];
  /** Finished phases, in order. */
  readonly completed: readonly PhaseName[];
  /** The phase to run or continue next, or null (not started, or all done). */
  readonly current: PhasePosition | null;
  /** Finished phases' results. */
  readonly outputs: Readonly<Partial<Record<PhaseName, PhaseOutput>>>;
  /** Evaluation results so far. */
  readonly evals: EvalFile;
  /** The error that stopped a failed run, or null. */
  readonly error: string | null;
  /** When the run started (ISO). */
  readonly startedAt: string;
  /** When this state was written (ISO). */
  readonly updatedAt: string;
}

/** Thrown for a malformed `pipeline.json` or a pipeline misuse. */
export class PipelineError extends Error {
  /** @param message What was expected and what was found. */
  constructor(message: string) {
    super(message);
    this.name = "PipelineError";
  }
}

/**
 * The phases a config runs, in order: `base-eval` if `eval.base`; `sft` and then `sft-eval` (if
 * `eval.afterSft`) when SFT is enabled; `grpo` and then `grpo-eval` (if `eval.afterGrpo`) when
 * GRPO is enabled.
 *
 * @param config The config.
 * @returns Phase names.
 * @example
 * ```ts
 * import { plannedPhases } from "./pipeline_state.ts";
 * import { presetConfig } from "./presets.ts";
 * if (plannedPhases(presetConfig("demo")).length !== 5) throw new Error();
 * ```
 */
export function plannedPhases(config: TrainConfig): PhaseName[] {
  const out: PhaseName[] = [];
  if (config.eval.base) out.push("base-eval");
  if (config.sft.enabled) {
    out.push("sft");
    if (config.eval.afterSft) out.push("sft-eval");
  }
  if (config.grpo.enabled) {
    out.push("grpo");
    if (config.eval.afterGrpo) out.push("grpo-eval");
  }
  return out;
}

/**
 * The checkpoint a phase starts from: the final checkpoint of the last finished training phase
 * before it, or null (the initial weights).
 *
 * @param state Pipeline state.
 * @param phase The phase about to run.
 * @returns A checkpoint folder, or null.
 */
export function weightsBefore(state: PipelineState, phase: PhaseName): string | null {
  const upTo = PHASE_NAMES.indexOf(phase);
  let weights: string | null = null;
  for (const p of PHASE_NAMES.slice(0, upTo)) {
    if (TRAINING_PHASES.includes(p) && state.completed.includes(p)) {
      weights = state.outputs[p]?.checkpoint ?? weights;
    }
  }
  return weights;
}

/** A row of `metrics.jsonl` or `samples.jsonl`: each names the phase and step that wrote it. */
export interface RunRow {
  /** The phase, e.g. `"sft"` or `"grpo-eval"`. */
  readonly phase?: unknown;
  /** The step within the phase (evaluation samples: 0). */
  readonly step?: unknown;
}

/**
 * Which rows of `metrics.jsonl` and `samples.jsonl` a resumed run keeps: the rows of finished
 * phases, and those of the phase it continues up to the step of the checkpoint it continues
 * from. Everything after that point is written again by the resumed run, so it is dropped: the
 * steps done after the last checkpoint before a `kill -9`, an evaluation that was cut short, and
 * rows of any phase that had not finished. Rows naming no phase of the pipeline are kept.
 *
 * @param state The saved state the run resumes from.
 * @returns The filter (true: keep the row).
 * @example
 * ```ts
 * import { keptOnResume, newPipelineState } from "./pipeline_state.ts";
 * const state = {
 *   ...newPipelineState(["base-eval", "sft", "sft-eval"], new Date(0)),
 *   completed: ["base-eval" as const],
 *   current: { phase: "sft" as const, step: 2, checkpoint: "runs/a/checkpoints/sft/step-2" },
 * };
 * const keep = keptOnResume(state);
 * const rows = [["base-eval", 0], ["sft", 2], ["sft", 3], ["sft-eval", 0]] as const;
 * const kept = rows.filter(([phase, step]) => keep({ phase, step }));
 * if (kept.length !== 2 || kept[1][1] !== 2) throw new Error();
 * ```
 */
export function keptOnResume(state: PipelineState): (row: RunRow) => boolean {
  const done = new Set<unknown>(state.completed);
  const at = state.current;
  return (row) => {
    if (!isPhase(row.phase) || done.has(row.phase)) return true;
    return at !== null && at.checkpoint !== null && row.phase === at.phase &&
      typeof row.step === "number" && row.step <= at.step;
  };
}

/**
 * A fresh state for a new run.
 *
 * @param phases Planned phases.
 * @param now Start time.
 * @returns The state (status `running`, nothing done).
 */
export function newPipelineState(phases: readonly PhaseName[], now: Date): PipelineState {
  return {
    format: "webtune.pipeline",
    version: 1,
    status: "running",
    phases: [...phases],
    completed: [],
    current: null,
    outputs: {},
    evals: {},
    error: null,
    startedAt: now.toISOString(),
    updatedAt: now.toISOString(),
  };
}

/**
 * Keeps the four `eval.json` fields of an evaluation summary (e.g. `EvalSummary`).
 *
 * @param e A summary.
 * @param what Names it in errors.
 * @returns `{ accuracy, partialAccuracy, formatAccuracy, n }`.
 * @throws {PipelineError} For a fraction outside [0, 1] or a bad count.
 */
export function toReportEval(e: ReportEval, what: string): ReportEval {
  for (const k of ["accuracy", "partialAccuracy", "formatAccuracy"] as const) {
    const v = e?.[k];
    if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
      throw new PipelineError(`${what}.${k} must be a fraction in [0, 1], got ${v}`);
    }
  }
  if (!Number.isSafeInteger(e.n) || e.n < 0) {
    throw new PipelineError(`${what}.n must be an integer >= 0, got ${e.n}`);
  }
  return {
    accuracy: e.accuracy,
    partialAccuracy: e.partialAccuracy,
    formatAccuracy: e.formatAccuracy,
    n: e.n,
  };
}

function isPhase(v: unknown): v is PhaseName {
  return (PHASE_NAMES as readonly unknown[]).includes(v);
}

function position(v: unknown, what: string): PhasePosition {
  const o = v as Record<string, unknown>;
  if (!o || typeof o !== "object" || !isPhase(o.phase)) {
    throw new PipelineError(`${what}.phase must be one of ${PHASE_NAMES.join(", ")}`);
  }
  if (!Number.isSafeInteger(o.step) || (o.step as number) < 0) {
    throw new PipelineError(`${what}.step must be an integer >= 0, got ${o.step}`);
  }
  if (o.checkpoint !== null && typeof o.checkpoint !== "string") {
    throw new PipelineError(`${what}.checkpoint must be a path or null`);
  }
  return { phase: o.phase, step: o.step as number, checkpoint: o.checkpoint as string | null };
}

/**
 * Parses and checks `pipeline.json`.
 *
 * @param text The file's text.
 * @param file Its path, for messages.
 * @returns The state.
 * @throws {PipelineError} Naming the malformed field.
 */
export function parsePipelineState(text: string, file = "pipeline.json"): PipelineState {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new PipelineError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== "object" || v.format !== "webtune.pipeline" || v.version !== 1) {
    throw new PipelineError(`${file} is not a webtune pipeline state (format/version)`);
  }
  const statuses = ["running", "interrupted", "completed", "failed"];
  if (!statuses.includes(v.status as string)) {
    throw new PipelineError(`${file}: status must be one of ${statuses.join(", ")}`);
  }
  for (const k of ["phases", "completed"]) {
    if (!Array.isArray(v[k]) || !(v[k] as unknown[]).every(isPhase)) {
      throw new PipelineError(`${file}: ${k} must be a list of phase names`);
    }
  }
  const outputs: Partial<Record<PhaseName, PhaseOutput>> = {};
  for (const [k, o] of Object.entries((v.outputs ?? {}) as Record<string, unknown>)) {
    const p = position({ ...(o as object), phase: k }, `${file}: outputs.${k}`);
    outputs[p.phase] = { step: p.step, checkpoint: p.checkpoint };
  }
  const evals: Partial<Record<EvalKey, ReportEval>> = {};
  for (const [k, e] of Object.entries((v.evals ?? {}) as Record<string, unknown>)) {
    if (k !== "base" && k !== "sft" && k !== "grpo") {
      throw new PipelineError(`${file}: evals.${k} is not base, sft or grpo`);
    }
    evals[k] = toReportEval(e as ReportEval, `${file}: evals.${k}`);
  }
  for (const k of ["startedAt", "updatedAt"]) {
    if (typeof v[k] !== "string") throw new PipelineError(`${file}: ${k} must be a date text`);
  }
  return {
    format: "webtune.pipeline",
    version: 1,
    status: v.status as PipelineStatus,
    phases: v.phases as PhaseName[],
    completed: v.completed as PhaseName[],
    current: v.current === null || v.current === undefined
      ? null
      : position(v.current, `${file}: current`),
    outputs,
    evals,
    error: typeof v.error === "string" ? v.error : null,
    startedAt: v.startedAt as string,
    updatedAt: v.updatedAt as string,
  };
}
