/**
 * The run folder on disk (Deno only): `runs/<timestamp>/` with the resolved `config.json`,
 * `pipeline.json` (where the pipeline stands), `metrics.jsonl`, `samples.jsonl`, `eval.json`,
 * `report.html`, `vocab_map.json` (demo runs), `checkpoints/<phase>/step-<N>/` (written by
 * `checkpoint_fs.ts`) and `export/<phase>/` (each finished training phase's export). JSON and
 * HTML files are replaced atomically (temporary file, fsync, rename); JSONL files are appended
 * line by line, and a resumed run first drops (atomically) the rows written after the checkpoint
 * it continues from (`retainRows`).
 *
 * @module
 */

import { joinPath, statOrNull, writeTextAtomic } from "../base/atomic_fs.ts";
import { VocabMap } from "../model/vocab_map.ts";
import type { CheckpointInput, LoadedCheckpoint, SaveCheckpointOptions } from "./checkpoint.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint_fs.ts";
import type { ExportFile } from "./export_files.ts";
import { writeExportFolder } from "./export_fs.ts";
import { FileLineSink, readMetricsFile } from "./metrics_fs.ts";
import type { LineSink, MetricsRecord } from "./metrics.ts";
import {
  type EvalFile,
  parsePipelineState,
  type PhaseName,
  type PipelineState,
  type RunRow,
} from "./pipeline_state.ts";
import type { ReportSample } from "./report.ts";
import { type DroppedRows, exportRef, type RunStore } from "./run_store.ts";
import { createTrainConfig, type TrainConfig, TrainConfigError } from "./train_config.ts";

/** File names inside a run folder. */
export const RUN_FILES: Readonly<{
  config: "config.json";
  pipeline: "pipeline.json";
  metrics: "metrics.jsonl";
  samples: "samples.jsonl";
  evals: "eval.json";
  report: "report.html";
  vocabMap: "vocab_map.json";
  checkpoints: "checkpoints";
  exports: "export";
}> = Object.freeze(
  {
    config: "config.json",
    pipeline: "pipeline.json",
    metrics: "metrics.jsonl",
    samples: "samples.jsonl",
    evals: "eval.json",
    report: "report.html",
    vocabMap: "vocab_map.json",
    checkpoints: "checkpoints",
    exports: "export",
  } as const,
);

/** Thrown when a model folder, data path or run folder is missing or incomplete. */
export class MissingInputError extends Error {
  /** The config field or flag the path came from, e.g. `sft.data`. */
  readonly field: string;
  /** The path. */
  readonly path: string;
  /**
   * @param field The config field or flag.
   * @param path The path.
   * @param message What is missing and how to get it.
   */
  constructor(field: string, path: string, message: string) {
    super(message);
    this.name = "MissingInputError";
    this.field = field;
    this.path = path;
  }
}

/**
 * The run folder name for a start time: UTC `YYYY-MM-DDTHH-MM-SS` (sortable, no colons).
 *
 * @param date Start time.
 * @returns E.g. `2026-05-01T12-00-00`.
 * @example
 * ```ts
 * import { runFolderName } from "./pipeline_fs.ts";
 * if (runFolderName(new Date(Date.UTC(2026, 4, 1, 12))) !== "2026-05-01T12-00-00") throw new Error();
 * ```
 */
export function runFolderName(date: Date): string {
  return date.toISOString().slice(0, 19).replaceAll(":", "-");
}

/**
 * Creates a new run folder `<outDir>/<timestamp>` (adding `-2`, `-3`, … if taken).
 *
 * @param outDir Parent folder (created if needed).
 * @param now Start time (default: now).
 * @returns The new folder's path.
 */
export async function createRunDir(outDir: string, now: Date = new Date()): Promise<string> {
  await Deno.mkdir(outDir, { recursive: true });
  const base = runFolderName(now);
  for (let i = 1;; i++) {
    const path = joinPath(outDir, i === 1 ? base : `${base}-${i}`);
    try {
      await Deno.mkdir(path);
      return path;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
  }
}

/**
 * Writes a value as pretty JSON, atomically.
 *
 * @param path Destination.
 * @param value JSON-serialisable value.
 */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeTextAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/**
 * Saves the resolved config as `config.json`.
 *
 * @param runDir Run folder.
 * @param config The config.
 */
export async function saveRunConfig(runDir: string, config: TrainConfig): Promise<void> {
  await writeJsonAtomic(joinPath(runDir, RUN_FILES.config), config);
}

/**
 * Reads a run folder's `config.json` through the usual validation.
 *
 * @param runDir Run folder.
 * @returns The config.
 * @throws {MissingInputError} When the folder or its `config.json` is missing (field `--resume`).
 * @throws {TrainConfigError} When the saved config is invalid (the message names the file).
 */
export async function loadRunConfig(runDir: string): Promise<TrainConfig> {
  const path = joinPath(runDir, RUN_FILES.config);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new MissingInputError(
      "--resume",
      runDir,
      `${runDir} is not a run folder: ${path} does not exist (pass a folder made by ` +
        "`deno task train`, e.g. runs/2026-05-01T12-00-00)",
    );
  }
  try {
    return createTrainConfig(JSON.parse(text));
  } catch (e) {
    if (e instanceof TrainConfigError) {
      throw new TrainConfigError(e.field, `${path}: ${e.message}`);
    }
    if (e instanceof SyntaxError) throw new TrainConfigError("", `${path}: ${e.message}`);
    throw e;
  }
}

/**
 * Reads a run folder's `pipeline.json` (where the run stands).
 *
 * @param runDir Run folder.
 * @returns The state, or null when the run has not started a phase yet.
 * @throws {PipelineError} For a malformed file.
 * @example
 * ```ts
 * import { loadRunState } from "./pipeline_fs.ts";
 * const dir = await Deno.makeTempDir();
 * if (await loadRunState(dir) !== null) throw new Error();
 * await Deno.remove(dir);
 * ```
 */
export async function loadRunState(runDir: string): Promise<PipelineState | null> {
  const path = joinPath(runDir, RUN_FILES.pipeline);
  try {
    return parsePipelineState(await Deno.readTextFile(path), path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Saves the demo vocabulary as `vocab_map.json`.
 *
 * @param runDir Run folder.
 * @param map The map.
 */
export async function saveVocabMap(runDir: string, map: VocabMap): Promise<void> {
  await writeJsonAtomic(joinPath(runDir, RUN_FILES.vocabMap), map.toJSON());
}

/**
 * Reads `vocab_map.json`, or null when the run has none.
 *
 * @param runDir Run folder.
 * @returns The map or null.
 */
export async function loadVocabMap(runDir: string): Promise<VocabMap | null> {
  try {
    return VocabMap.fromJSON(await Deno.readTextFile(joinPath(runDir, RUN_FILES.vocabMap)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

function parseJsonl<T>(text: string): T[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const out: T[] = [];
  lines.forEach((line, i) => {
    try {
      out.push(JSON.parse(line));
    } catch (e) {
      // subtle: a crash may cut the last line short; anything else is corruption.
      if (i !== lines.length - 1) throw e;
    }
  });
  return out;
}

/**
 * The lines of a JSONL text that `keep` accepts (a last line cut short by a crash is dropped).
 *
 * @returns The kept lines and how many rows were dropped (the cut line not counted).
 * @throws {SyntaxError} For a malformed line other than the last.
 */
function filterJsonl(
  text: string,
  keep: (row: RunRow) => boolean,
): { kept: string[]; dropped: number; changed: boolean } {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const kept: string[] = [];
  let dropped = 0, cut = false;
  lines.forEach((line, i) => {
    let row: RunRow;
    try {
      row = JSON.parse(line);
    } catch (e) {
      if (i !== lines.length - 1) throw e;
      cut = true;
      return;
    }
    if (keep(row)) kept.push(line);
    else dropped++;
  });
  return { kept, dropped, changed: dropped > 0 || cut };
}

/** A {@linkcode RunStore} over a run folder. Close it when the run ends. */
export class FsRunStore implements RunStore {
  /** The run folder. */
  readonly runDir: string;
  /** Appends to `metrics.jsonl`; give it to the run's `MetricsLogger`. */
  readonly metricsSink: LineSink = { append: (line) => this.#metrics.append(line) };
  #metrics: FileLineSink;
  #samples: FileLineSink;

  private constructor(runDir: string, metrics: FileLineSink, samples: FileLineSink) {
    this.runDir = runDir;
    this.#metrics = metrics;
    this.#samples = samples;
  }

  /**
   * Opens a run folder (which must exist); `metrics.jsonl` and `samples.jsonl` are appended to.
   *
   * @param runDir Run folder.
   * @returns The store.
   */
  static async open(runDir: string): Promise<FsRunStore> {
    const info = await statOrNull(runDir);
    if (!info?.isDirectory) {
      throw new MissingInputError("runDir", runDir, `run folder ${runDir} does not exist`);
    }
    const metrics = await FileLineSink.open(joinPath(runDir, RUN_FILES.metrics));
    const samples = await FileLineSink.open(joinPath(runDir, RUN_FILES.samples));
    return new FsRunStore(runDir, metrics, samples);
  }

  /** @returns `pipeline.json`, or null when absent. */
  async readState(): Promise<PipelineState | null> {
    return await loadRunState(this.runDir);
  }

  /** @param state Written to `pipeline.json` atomically. */
  async writeState(state: PipelineState): Promise<void> {
    await writeJsonAtomic(joinPath(this.runDir, RUN_FILES.pipeline), state);
  }

  /** @param evals Written to `eval.json` atomically. */
  async writeEvals(evals: EvalFile): Promise<void> {
    await writeJsonAtomic(joinPath(this.runDir, RUN_FILES.evals), evals);
  }

  /** @param html Written to `report.html` atomically. */
  async writeReport(html: string): Promise<void> {
    await writeTextAtomic(joinPath(this.runDir, RUN_FILES.report), html);
  }

  /** @param sample Appended to `samples.jsonl`. */
  async appendSample(sample: ReportSample): Promise<void> {
    await this.#samples.append(JSON.stringify(sample));
  }

  /** @returns The samples in `samples.jsonl`. */
  async readSamples(): Promise<ReportSample[]> {
    try {
      return parseJsonl(await Deno.readTextFile(joinPath(this.runDir, RUN_FILES.samples)));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
  }

  /** @returns The records in `metrics.jsonl`. */
  async readMetrics(): Promise<MetricsRecord[]> {
    try {
      return await readMetricsFile(joinPath(this.runDir, RUN_FILES.metrics));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
  }

  /**
   * Saves into `checkpoints/<phase>/step-<N>/` (atomically; see `saveCheckpoint` in
   * `checkpoint_fs.ts`), keeping the newest `keep`.
   *
   * @param phase The training phase.
   * @param input What to save.
   * @param options `keep` (default 3).
   * @returns The checkpoint folder.
   */
  async saveCheckpoint(
    phase: PhaseName,
    input: CheckpointInput,
    options: SaveCheckpointOptions = {},
  ): Promise<string> {
    const dir = `${this.runDir.replace(/[/\\]+$/, "")}/${RUN_FILES.checkpoints}/${phase}`;
    return await saveCheckpoint(dir, input, options);
  }

  /**
   * @param ref A checkpoint folder.
   * @returns The checkpoint (see `loadCheckpoint` in `checkpoint_fs.ts`).
   */
  async loadCheckpoint(ref: string): Promise<LoadedCheckpoint> {
    return await loadCheckpoint(ref);
  }

  /** @param map Written to `vocab_map.json` atomically. */
  async saveVocabMap(map: VocabMap): Promise<void> {
    await saveVocabMap(this.runDir, map);
  }

  /** @returns `vocab_map.json`, or null when absent. */
  async loadVocabMap(): Promise<VocabMap | null> {
    return await loadVocabMap(this.runDir);
  }

  /**
   * Writes `export/<phase>/` as a whole (see `writeExportFolder` in `export_fs.ts`).
   *
   * @param phase The training phase.
   * @param files The files.
   * @returns The export folder.
   */
  async writeExport(phase: PhaseName, files: readonly ExportFile[]): Promise<string> {
    return await writeExportFolder(exportRef(this.runDir, phase), files);
  }

  /**
   * Rewrites `metrics.jsonl` and `samples.jsonl` with the rows `keep` accepts, each atomically
   * (temporary file, fsync, rename), then appends to the new files. Files with nothing to drop
   * are left alone.
   *
   * @param keep True for a row to keep.
   * @returns How many metrics rows and samples were dropped.
   */
  async retainRows(keep: (row: RunRow) => boolean): Promise<DroppedRows> {
    const rewrite = async (name: string, sink: FileLineSink) => {
      const path = joinPath(this.runDir, name);
      let text: string;
      try {
        text = await Deno.readTextFile(path);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return { dropped: 0, sink };
        throw e;
      }
      const { kept, dropped, changed } = filterJsonl(text, keep);
      if (!changed) return { dropped, sink };
      await writeTextAtomic(path, kept.map((line) => line + "\n").join(""));
      // subtle: the open file is the replaced one; appends must go to the new file
      sink.close();
      return { dropped, sink: await FileLineSink.open(path) };
    };
    const metrics = await rewrite(RUN_FILES.metrics, this.#metrics);
    this.#metrics = metrics.sink;
    const samples = await rewrite(RUN_FILES.samples, this.#samples);
    this.#samples = samples.sink;
    return { metrics: metrics.dropped, samples: samples.dropped };
  }

  /** Closes the JSONL files. Idempotent. */
  close(): void {
    this.#metrics.close();
    this.#samples.close();
  }
}
