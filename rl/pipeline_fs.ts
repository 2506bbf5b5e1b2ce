/**
 * The run folder on disk (Deno only): `runs/<timestamp>/` with the resolved `config.json`,
 * `pipeline.json` (where the pipeline stands), `metrics.jsonl`, `samples.jsonl`, `eval.json`,
 * `report.html`, `vocab_map.json` (demo runs), `checkpoints/<phase>/step-<N>/` and
 * `export/<phase>/` (each finished training phase's export). The layout and its logic are
 * `RunFolderStore` (`run_folder.ts`, shared with browser directories); here it runs over
 * `fsRunFiles`: JSON and HTML files are replaced atomically (temporary file, fsync, rename);
 * JSONL files are appended line by line, and a resumed run first drops (atomically) the rows
 * written after the checkpoint it continues from (`retainRows`); checkpoint and export folders
 * are renamed into place as a whole.
 *
 * @module
 */

import { joinPath, statOrNull } from "../base/atomic_fs.ts";
import type { VocabMap } from "../model/vocab_map.ts";
import type { PipelineState } from "./pipeline_state.ts";
import { RUN_FILES, RunFolderStore } from "./run_folder.ts";
import { fsRunFiles } from "./run_files_fs.ts";
import { jsonFileText } from "./export_files.ts";
import type { TrainConfig } from "./train_config.ts";

export { RUN_FILES };

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
  await fsRunFiles.writeText(path, jsonFileText(value));
}

/**
 * Saves the resolved config as `config.json`.
 *
 * @param runDir Run folder.
 * @param config The config.
 */
export async function saveRunConfig(runDir: string, config: TrainConfig): Promise<void> {
  await new RunFolderStore(fsRunFiles, runDir).writeConfig(config);
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
  const config = await new RunFolderStore(fsRunFiles, runDir).readConfig();
  if (config !== null) return config;
  const path = joinPath(runDir, RUN_FILES.config);
  throw new MissingInputError(
    "--resume",
    runDir,
    `${runDir} is not a run folder: ${path} does not exist (pass a folder made by ` +
      "`deno task train`, e.g. runs/2026-05-01T12-00-00)",
  );
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
  return await new RunFolderStore(fsRunFiles, runDir).readState();
}

/**
 * Saves the demo vocabulary as `vocab_map.json`.
 *
 * @param runDir Run folder.
 * @param map The map.
 */
export async function saveVocabMap(runDir: string, map: VocabMap): Promise<void> {
  await new RunFolderStore(fsRunFiles, runDir).saveVocabMap(map);
}

/**
 * Reads `vocab_map.json`, or null when the run has none.
 *
 * @param runDir Run folder.
 * @returns The map or null.
 */
export async function loadVocabMap(runDir: string): Promise<VocabMap | null> {
  return await new RunFolderStore(fsRunFiles, runDir).loadVocabMap();
}

/**
 * A `RunStore` over a run folder on disk ({@linkcode RunFolderStore} over `fsRunFiles`). Close
 * it when the run ends.
 *
 * @example
 * ```ts
 * import { FsRunStore } from "./pipeline_fs.ts";
 * const dir = await Deno.makeTempDir();
 * const store = await FsRunStore.open(dir);
 * await store.writeReport("<html></html>");
 * console.log(await Deno.readTextFile(`${dir}/report.html`)); // "<html></html>"
 * store.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class FsRunStore extends RunFolderStore {
  private constructor(runDir: string) {
    super(fsRunFiles, runDir);
  }

  /**
   * Opens a run folder (which must exist); `metrics.jsonl` and `samples.jsonl` are appended to.
   *
   * @param runDir Run folder.
   * @returns The store.
   * @throws {MissingInputError} When the folder does not exist (field `runDir`).
   */
  static async open(runDir: string): Promise<FsRunStore> {
    const info = await statOrNull(runDir);
    if (!info?.isDirectory) {
      throw new MissingInputError("runDir", runDir, `run folder ${runDir} does not exist`);
    }
    const store = new FsRunStore(runDir);
    await store.openLineSinks();
    return store;
  }
}
