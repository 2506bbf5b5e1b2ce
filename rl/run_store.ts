/**
 * Where a training run's files go: the {@linkcode RunStore} interface (state, evaluations,
 * report, samples, metrics, checkpoints, the demo vocabulary and exports) and
 * {@linkcode MemoryRunStore}, which keeps all of it in memory (tests, browsers). A run folder is
 * `RunFolderStore` (`run_folder.ts`): on disk `FsRunStore` (`pipeline_fs.ts`), in a browser
 * directory (the origin-private file system, a picked folder) `DirectoryRunStore`
 * (`directory_run_store.ts`).
 *
 * @module
 */

import type { VocabMap } from "../model/vocab_map.ts";
import {
  checkCheckpointInput,
  checkpointDirName,
  CheckpointError,
  type CheckpointInput,
  checkpointStepsToKeep,
  type HostTensor,
  type JsonValue,
  type LoadedCheckpoint,
  type SaveCheckpointOptions,
} from "./checkpoint.ts";
import { checkExportFileName, type ExportFile, readExportFile } from "./export_files.ts";
import type { AdamWState } from "./optimizer.ts";
import { type LineSink, MemoryLineSink, type MetricsRecord, parseMetricsJsonl } from "./metrics.ts";
import type { EvalFile, PhaseName, PipelineState, RunRow } from "./pipeline_state.ts";
import type { ReportSample } from "./report.ts";
import { joinRunPath } from "./run_files.ts";

/** Where a run's files go. */
export interface RunStore {
  /** The run folder (or a label for in-memory stores). */
  readonly runDir: string;
  /** Where the run's `MetricsLogger` appends `metrics.jsonl` lines. */
  readonly metricsSink: LineSink;
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
  /**
   * Keeps only the rows of `metrics.jsonl` and `samples.jsonl` that `keep` accepts, each file
   * replaced as a whole (atomically); a last line cut short by a crash goes too. A resumed run
   * calls it before writing the steps past its checkpoint again (`keptOnResume`).
   *
   * @param keep True for a row to keep.
   * @returns How many metrics rows and samples were dropped.
   */
  retainRows(keep: (row: RunRow) => boolean): Promise<DroppedRows>;
  /**
   * Saves a checkpoint of a phase as `checkpoints/<phase>/step-<N>` (atomically, replacing one
   * of the same step), then keeps only the newest `keep` of that phase.
   *
   * @param phase The training phase.
   * @param input Step, parameters, optimizer state and JSON trainer fields.
   * @param options `keep` (default 3).
   * @returns The checkpoint's reference (its folder), as recorded in `pipeline.json`.
   * @throws {CheckpointError} `invalid_input` (nothing is written) or `io`.
   */
  saveCheckpoint(
    phase: PhaseName,
    input: CheckpointInput,
    options?: SaveCheckpointOptions,
  ): Promise<string>;
  /**
   * Loads a checkpoint saved by {@linkcode RunStore.saveCheckpoint}.
   *
   * @param ref Its reference.
   * @returns Everything saved, on the host.
   * @throws {CheckpointError} `missing` or `corrupt`.
   */
  loadCheckpoint(ref: string): Promise<LoadedCheckpoint>;
  /** @param map Replaces `vocab_map.json` (the demo model's vocabulary). */
  saveVocabMap(map: VocabMap): Promise<void>;
  /** @returns The saved vocabulary, or null when the run has none. */
  loadVocabMap(): Promise<VocabMap | null>;
  /**
   * Writes a finished training phase's export as `export/<phase>/` (see `export.ts`), replacing
   * an earlier one of that phase as a whole: readers see the old folder or the new one.
   *
   * @param phase The training phase (`sft` or `grpo`).
   * @param files The files, each produced while it is written.
   * @returns The export's reference (its folder, `<runDir>/export/<phase>`).
   */
  writeExport(phase: PhaseName, files: readonly ExportFile[]): Promise<string>;
}

/**
 * The reference of a phase's export in a run: `<runDir>/export/<phase>`.
 *
 * @param runDir The run folder or label.
 * @param phase The training phase.
 * @returns The reference.
 * @example
 * ```ts
 * import { exportRef } from "./run_store.ts";
 * if (exportRef("runs/a/", "grpo") !== "runs/a/export/grpo") throw new Error();
 * ```
 */
export function exportRef(runDir: string, phase: PhaseName): string {
  return joinRunPath(runDir, `export/${phase}`);
}

/** What {@linkcode RunStore.retainRows} dropped. */
export interface DroppedRows {
  /** Rows of `metrics.jsonl`. */
  readonly metrics: number;
  /** Rows of `samples.jsonl`. */
  readonly samples: number;
}

/**
 * The reference of checkpoint `step` of `phase` in a run: `<runDir>/checkpoints/<phase>/step-N`.
 *
 * @param runDir The run folder or label.
 * @param phase The training phase.
 * @param step The step.
 * @returns The reference.
 * @example
 * ```ts
 * import { checkpointRef } from "./run_store.ts";
 * if (checkpointRef("runs/a/", "sft", 4) !== "runs/a/checkpoints/sft/step-4") throw new Error();
 * ```
 */
export function checkpointRef(runDir: string, phase: PhaseName, step: number): string {
  return joinRunPath(runDir, `checkpoints/${phase}/${checkpointDirName(step)}`);
}

function copyOptimizerState(state: AdamWState): AdamWState {
  const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
  for (const [name, { m, v }] of state.moments) moments.set(name, { m: m.slice(), v: v.slice() });
  return Object.freeze({ stepCount: state.stepCount, moments });
}

function copyCheckpoint(c: LoadedCheckpoint): LoadedCheckpoint {
  const params = new Map<string, HostTensor>();
  for (const [name, t] of c.params) {
    params.set(name, Object.freeze({ shape: [...t.shape], data: t.data.slice() }));
  }
  return Object.freeze({
    ...structuredClone({ ...c, params: null, optimizerState: null }),
    params,
    optimizerState: c.optimizerState && copyOptimizerState(c.optimizerState),
  });
}

/**
 * A {@linkcode RunStore} in memory: checkpoints are host copies, `metrics` is the logger's sink.
 *
 * @example
 * ```ts
 * import { MemoryRunStore } from "./run_store.ts";
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
  /** Checkpoints kept, by reference. */
  readonly checkpoints: Map<string, LoadedCheckpoint> = new Map();
  /** The saved demo vocabulary. */
  vocabMap: VocabMap | null = null;
  /** Exports by phase: file name (`merged/config.json`, …) → bytes. */
  readonly exports: Map<PhaseName, Map<string, Uint8Array>> = new Map();

  /** @param runDir Label used as the run folder (default `"memory"`). */
  constructor(runDir = "memory") {
    this.runDir = runDir;
  }
  /** @returns {@linkcode MemoryRunStore.metrics}. */
  get metricsSink(): LineSink {
    return this.metrics;
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
  /**
   * @param keep True for a row to keep.
   * @returns How many metrics rows and samples were dropped.
   */
  retainRows(keep: (row: RunRow) => boolean): Promise<DroppedRows> {
    const lines = this.metrics.lines;
    const keptLines = lines.filter((line) => keep(JSON.parse(line)));
    const keptSamples = this.samples.filter((sample) => keep(sample));
    const dropped = {
      metrics: lines.length - keptLines.length,
      samples: this.samples.length - keptSamples.length,
    };
    lines.splice(0, lines.length, ...keptLines);
    this.samples.splice(0, this.samples.length, ...keptSamples);
    return Promise.resolve(dropped);
  }

  /**
   * Keeps host copies of the parameters and optimizer moments, then prunes the phase's
   * checkpoints to the newest `keep` (the new one always kept).
   *
   * @param phase The training phase.
   * @param input What to save.
   * @param options `keep` (default 3).
   * @returns `<runDir>/checkpoints/<phase>/step-<N>`.
   */
  async saveCheckpoint(
    phase: PhaseName,
    input: CheckpointInput,
    options: SaveCheckpointOptions = {},
  ): Promise<string> {
    const keep = options.keep ?? 3;
    checkCheckpointInput(input, keep);
    const ref = checkpointRef(this.runDir, phase, input.step);
    const params = new Map<string, HostTensor>();
    for (const [name, t] of input.params) {
      const data = ((await t.read()) as Float32Array).slice();
      params.set(name, Object.freeze({ shape: [...t.shape], data }));
    }
    const opt = input.optimizerState ?? null;
    const json = (v: JsonValue | undefined): JsonValue => structuredClone(v ?? null);
    this.checkpoints.set(ref, {
      path: ref,
      step: input.step,
      optimizerStepCount: opt ? opt.stepCount : null,
      rng: json(input.rng),
      dataPosition: json(input.dataPosition),
      config: json(input.config),
      metrics: json(input.metrics),
      trainerState: json(input.trainerState),
      params,
      optimizerState: opt && copyOptimizerState(opt),
    });
    const prefix = checkpointRef(this.runDir, phase, 0).replace(/step-0$/, "");
    const own = [...this.checkpoints.values()].filter((c) => c.path.startsWith(prefix))
      .sort((a, b) => a.step - b.step);
    const kept = checkpointStepsToKeep(own.map((c) => c.step), keep, input.step);
    for (const c of own) if (!kept.has(c.step)) this.checkpoints.delete(c.path);
    return ref;
  }

  /**
   * @param ref A reference returned by {@linkcode MemoryRunStore.saveCheckpoint}.
   * @returns A copy of the checkpoint.
   * @throws {CheckpointError} `missing` for an unknown or pruned reference.
   */
  loadCheckpoint(ref: string): Promise<LoadedCheckpoint> {
    const c = this.checkpoints.get(ref);
    if (!c) return Promise.reject(new CheckpointError("missing", ref, "no such checkpoint"));
    return Promise.resolve(copyCheckpoint(c));
  }

  /** @param map The demo vocabulary. */
  saveVocabMap(map: VocabMap): Promise<void> {
    this.vocabMap = map;
    return Promise.resolve();
  }

  /** @returns The saved vocabulary or null. */
  loadVocabMap(): Promise<VocabMap | null> {
    return Promise.resolve(this.vocabMap);
  }

  /**
   * Keeps the export's bytes in {@linkcode MemoryRunStore.exports}, replacing the phase's
   * earlier export once every file is produced.
   *
   * @param phase The training phase.
   * @param files The files.
   * @returns `<runDir>/export/<phase>`.
   */
  async writeExport(phase: PhaseName, files: readonly ExportFile[]): Promise<string> {
    const out = new Map<string, Uint8Array>();
    for (const file of files) out.set(checkExportFileName(file.name), await readExportFile(file));
    this.exports.set(phase, out);
    return exportRef(this.runDir, phase);
  }
}
