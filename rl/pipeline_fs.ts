/**
 * The run folder on disk (Deno only): `runs/<timestamp>/` with the resolved `config.json`,
 * `pipeline.json` (where the pipeline stands), `metrics.jsonl`, `samples.jsonl`, `eval.json`,
 * `report.html`, `vocab_map.json` (demo runs) and `checkpoints/<phase>/step-<N>/` (written by
 * `checkpoint_fs.ts`). JSON and HTML files are replaced atomically (temporary file, fsync,
 * rename); JSONL files are appended line by line.
 *
 * @module
 */

import { joinPath, writeTextAtomic } from "../base/atomic_fs.ts";
import { VocabMap } from "../model/vocab_map.ts";
import type { CheckpointInput, LoadedCheckpoint, SaveCheckpointOptions } from "./checkpoint.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint_fs.ts";
import { FileLineSink, readMetricsFile } from "./metrics_fs.ts";
import { statOrNull } from "./_stat_fs.ts";
import type { MetricsRecord } from "./metrics.ts";
import {
  type EvalFile,
  parsePipelineState,
  type PhaseName,
  type PipelineState,
} from "./pipeline_state.ts";
import type { ReportSample } from "./report.ts";
import type { RunStore } from "./run_store.ts";
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

/** A {@linkcode RunStore} over a run folder. Close it when the run ends. */
export class FsRunStore implements RunStore {
  /** The run folder. */
  readonly runDir: string;
  /** Appends to `metrics.jsonl`; give it to the run's `MetricsLogger`. */
  readonly metricsSink: FileLineSink;
  readonly #samples: FileLineSink;

  private constructor(runDir: string, metrics: FileLineSink, samples: FileLineSink) {
    this.runDir = runDir;
    this.metricsSink = metrics;
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
    const path = joinPath(this.runDir, RUN_FILES.pipeline);
    try {
      return parsePipelineState(await Deno.readTextFile(path), path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
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

  /** Closes the JSONL files. Idempotent. */
  close(): void {
    this.metricsSink.close();
    this.#samples.close();
  }
}
