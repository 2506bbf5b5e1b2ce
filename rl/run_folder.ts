/**
 * A run folder over any {@linkcode RunFiles} backend: {@linkcode RunFolderStore}, the
 * {@linkcode RunStore} that `FsRunStore` (the disk, `pipeline_fs.ts`) and `DirectoryRunStore`
 * (a browser directory, `directory_run_store.ts`) are. Both write the same layout
 * ({@linkcode RUN_FILES}) in the same formats, so a run written by one is read by the other:
 *
 * - `config.json`, `pipeline.json`, `eval.json`, `vocab_map.json` (pretty JSON) and
 *   `report.html`, each replaced atomically;
 * - `metrics.jsonl`, `samples.jsonl`: one JSON object a line, appended; a resumed run first
 *   drops (rewriting the file atomically) the rows written after its checkpoint
 *   ({@linkcode RunFolderStore.retainRows});
 * - `checkpoints/<phase>/step-<N>/` (`checkpoint_folder.ts`) and `export/<phase>/` (written as a
 *   whole where the backend can: see {@linkcode RunFiles.writeFolder}).
 *
 * @module
 */

import { VocabMap } from "../model/vocab_map.ts";
import type { CheckpointInput, LoadedCheckpoint, SaveCheckpointOptions } from "./checkpoint.ts";
import { CheckpointFolder, loadCheckpointFrom } from "./checkpoint_folder.ts";
import { checkExportFileName, type ExportFile, jsonFileText } from "./export_files.ts";
import { type LineSink, type MetricsRecord, parseMetricsJsonl } from "./metrics.ts";
import {
  type EvalFile,
  parsePipelineState,
  type PhaseName,
  type PipelineState,
  type RunRow,
} from "./pipeline_state.ts";
import type { ReportSample } from "./report.ts";
import { type ClosableLineSink, joinRunPath, type RunFiles } from "./run_files.ts";
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

/**
 * Reads a run's `config.json` text through the usual validation.
 *
 * @param text The file's text.
 * @param file Its path, for messages.
 * @returns The config.
 * @throws {TrainConfigError} When it is not JSON or not a valid config (the message names the
 *   file).
 * @example
 * ```ts
 * import { parseRunConfig } from "./run_folder.ts";
 * try {
 *   parseRunConfig("{", "runs/a/config.json");
 * } catch (e) {
 *   console.log((e as Error).message.startsWith("runs/a/config.json: ")); // true
 * }
 * ```
 */
export function parseRunConfig(text: string, file: string): TrainConfig {
  try {
    return createTrainConfig(JSON.parse(text));
  } catch (e) {
    if (e instanceof TrainConfigError) {
      throw new TrainConfigError(e.field, `${file}: ${e.message}`);
    }
    if (e instanceof SyntaxError) throw new TrainConfigError("", `${file}: ${e.message}`);
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

/**
 * A {@linkcode RunStore} over a run folder of any {@linkcode RunFiles} backend. Nothing is
 * opened until the first append; {@linkcode RunFolderStore.close} closes the JSONL files.
 *
 * @example
 * ```ts
 * import { RunFolderStore } from "./run_folder.ts";
 * import { fsRunFiles } from "./run_files_fs.ts";
 * const dir = await Deno.makeTempDir();
 * const store = new RunFolderStore(fsRunFiles, dir);
 * await store.metricsSink.append('{"phase":"sft","step":1,"loss":2}');
 * console.log((await store.readMetrics())[0].loss); // 2
 * store.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class RunFolderStore implements RunStore {
  /** The backend. */
  readonly files: RunFiles;
  /** The run folder (its path on the backend). */
  readonly runDir: string;
  /** Appends to `metrics.jsonl`; give it to the run's `MetricsLogger`. */
  readonly metricsSink: LineSink = { append: (line) => this.#append(RUN_FILES.metrics, line) };
  readonly #sinks = new Map<string, Promise<ClosableLineSink>>();
  readonly #opened = new Set<ClosableLineSink>();
  #closed = false;

  /**
   * @param files The backend.
   * @param runDir The run folder, which must exist.
   */
  constructor(files: RunFiles, runDir: string) {
    this.files = files;
    this.runDir = runDir;
  }

  #path(name: string): string {
    return joinRunPath(this.runDir, name);
  }

  #sink(name: string): Promise<ClosableLineSink> {
    let sink = this.#sinks.get(name);
    if (sink === undefined) {
      sink = this.files.openLineSink(this.#path(name)).then((s) => {
        // subtle: close() may have run while the file was being opened.
        if (this.#closed) s.close();
        else this.#opened.add(s);
        return s;
      });
      this.#sinks.set(name, sink);
      const opening = sink;
      sink.catch(() => this.#sinks.get(name) === opening && this.#sinks.delete(name));
    }
    return sink;
  }

  async #append(name: string, line: string): Promise<void> {
    if (this.#closed) throw new Error(`${this.#path(name)}: append after close()`);
    await (await this.#sink(name)).append(line);
  }

  /** Closes the file a JSONL sink appends to; the next append opens the (new) file. */
  async #dropSink(name: string): Promise<void> {
    const sink = await this.#sinks.get(name)?.catch(() => null);
    this.#sinks.delete(name);
    if (!sink) return;
    sink.close();
    this.#opened.delete(sink);
  }

  /** Opens `metrics.jsonl` and `samples.jsonl` for appending (creating them). */
  protected async openLineSinks(): Promise<void> {
    await this.#sink(RUN_FILES.metrics);
    await this.#sink(RUN_FILES.samples);
  }

  /** @returns `pipeline.json`, or null when absent. */
  async readState(): Promise<PipelineState | null> {
    const path = this.#path(RUN_FILES.pipeline);
    const text = await this.files.readText(path);
    return text === null ? null : parsePipelineState(text, path);
  }

  /** @param state Written to `pipeline.json` atomically. */
  async writeState(state: PipelineState): Promise<void> {
    await this.files.writeText(this.#path(RUN_FILES.pipeline), jsonFileText(state));
  }

  /** @param evals Written to `eval.json` atomically. */
  async writeEvals(evals: EvalFile): Promise<void> {
    await this.files.writeText(this.#path(RUN_FILES.evals), jsonFileText(evals));
  }

  /** @param html Written to `report.html` atomically. */
  async writeReport(html: string): Promise<void> {
    await this.files.writeText(this.#path(RUN_FILES.report), html);
  }

  /**
   * @param config Written to `config.json` atomically (the Deno `train()` does this for a new
   *   run folder; in other runtimes call it before `train()`, so the Deno tools read the run).
   */
  async writeConfig(config: TrainConfig): Promise<void> {
    await this.files.writeText(this.#path(RUN_FILES.config), jsonFileText(config));
  }

  /**
   * @returns `config.json`, or null when absent.
   * @throws {TrainConfigError} When the saved config is invalid (the message names the file).
   */
  async readConfig(): Promise<TrainConfig | null> {
    const path = this.#path(RUN_FILES.config);
    const text = await this.files.readText(path);
    return text === null ? null : parseRunConfig(text, path);
  }

  /** @param sample Appended to `samples.jsonl`. */
  async appendSample(sample: ReportSample): Promise<void> {
    await this.#append(RUN_FILES.samples, JSON.stringify(sample));
  }

  /** @returns The samples in `samples.jsonl`. */
  async readSamples(): Promise<ReportSample[]> {
    return parseJsonl(await this.files.readText(this.#path(RUN_FILES.samples)) ?? "");
  }

  /** @returns The records in `metrics.jsonl`. */
  async readMetrics(): Promise<MetricsRecord[]> {
    return parseMetricsJsonl(await this.files.readText(this.#path(RUN_FILES.metrics)) ?? "");
  }

  /**
   * Saves into `checkpoints/<phase>/step-<N>/` (see {@linkcode CheckpointFolder.save}), keeping
   * the newest `keep`.
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
    const dir = this.#path(`${RUN_FILES.checkpoints}/${phase}`);
    return await new CheckpointFolder(this.files, dir).save(input, options);
  }

  /**
   * @param ref A checkpoint folder.
   * @returns The checkpoint (see {@linkcode loadCheckpointFrom}).
   */
  async loadCheckpoint(ref: string): Promise<LoadedCheckpoint> {
    return await loadCheckpointFrom(this.files, ref);
  }

  /** @param map Written to `vocab_map.json` atomically. */
  async saveVocabMap(map: VocabMap): Promise<void> {
    await this.files.writeText(this.#path(RUN_FILES.vocabMap), jsonFileText(map.toJSON()));
  }

  /** @returns `vocab_map.json`, or null when absent. */
  async loadVocabMap(): Promise<VocabMap | null> {
    const text = await this.files.readText(this.#path(RUN_FILES.vocabMap));
    return text === null ? null : VocabMap.fromJSON(text);
  }

  /**
   * Writes `export/<phase>/` (see {@linkcode RunFiles.writeFolder}).
   *
   * @param phase The training phase.
   * @param files The files.
   * @returns The export folder.
   * @throws {ExportError} For a bad file name (nothing is written).
   */
  async writeExport(phase: PhaseName, files: readonly ExportFile[]): Promise<string> {
    for (const f of files) checkExportFileName(f.name);
    const dir = exportRef(this.runDir, phase);
    await this.files.writeFolder(dir, files);
    return dir;
  }

  /**
   * Rewrites `metrics.jsonl` and `samples.jsonl` with the rows `keep` accepts, each atomically,
   * then appends to the new files. Files with nothing to drop are left alone.
   *
   * @param keep True for a row to keep.
   * @returns How many metrics rows and samples were dropped.
   */
  async retainRows(keep: (row: RunRow) => boolean): Promise<DroppedRows> {
    const rewrite = async (name: string): Promise<number> => {
      const path = this.#path(name);
      const text = await this.files.readText(path);
      if (text === null) return 0;
      const { kept, dropped, changed } = filterJsonl(text, keep);
      if (!changed) return dropped;
      await this.files.writeText(path, kept.map((line) => line + "\n").join(""));
      // subtle: an open file may be the replaced one; appends must go to the new file
      await this.#dropSink(name);
      return dropped;
    };
    const metrics = await rewrite(RUN_FILES.metrics);
    const samples = await rewrite(RUN_FILES.samples);
    return { metrics, samples };
  }

  /** Closes the JSONL files; later appends throw. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const sink of this.#opened) sink.close();
    this.#opened.clear();
  }
}
