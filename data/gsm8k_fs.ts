/**
 * Loading GSM8K from disk: the original jsonl files, Hugging Face parquet files
 * (`main/train-*.parquet`), or a local hub cache of `openai/gsm8k` (or the legacy `gsm8k`).
 *
 * @module
 */

import type { Compressors } from "hyparquet";
import {
  collectGsm8k,
  type Gsm8kLoadResult,
  type Gsm8kOptions,
  type Gsm8kRecord,
} from "./gsm8k.ts";
import { resolveGsm8kOptions } from "./gsm8k.ts";
import { readDatasetFiles, resolveDatasetFiles } from "./dataset_fs.ts";

/** Hub repo ids GSM8K is published under. */
export const GSM8K_REPO_IDS: readonly string[] = Object.freeze(["openai/gsm8k", "gsm8k"]);

/** Options for {@linkcode loadGsm8k}. */
export interface Gsm8kLoadOptions extends Gsm8kOptions {
  /** Extra parquet decompressors (ZSTD, GZIP, …); snappy works without. */
  readonly compressors?: Compressors;
}

/**
 * Loads GSM8K with a summary of what was skipped.
 *
 * @param path A jsonl/parquet file; a folder with `train.jsonl`/`test.jsonl` or
 *   `main/train-*.parquet`; a hub cache root, a `datasets--openai--gsm8k` folder, or a snapshot.
 * @param options Split, config, limit, onSkip, compressors.
 * @returns Records and summary.
 * @throws {DatasetNotFoundError} When no data file is found.
 * @throws {DatasetFormatError} On a line that is not JSON or an unreadable parquet file.
 */
export async function loadGsm8kWithSummary(
  path: string,
  options: Gsm8kLoadOptions = {},
): Promise<Gsm8kLoadResult> {
  const opts = resolveGsm8kOptions(options);
  const files = await resolveDatasetFiles(path, {
    repoIds: GSM8K_REPO_IDS,
    configDirs: [opts.config],
    split: opts.split,
  });
  const rows = readDatasetFiles(files, {
    columns: ["question", "answer"],
    compressors: options.compressors,
  });
  return await collectGsm8k(rows, opts, files);
}

/**
 * Loads GSM8K records. Records without `####` are skipped and reported through `onSkip` (or
 * one `console.warn` when no `onSkip` is given); use {@linkcode loadGsm8kWithSummary} for counts.
 *
 * @param path A file, a dataset folder, or a Hugging Face hub cache folder (see
 *   {@linkcode loadGsm8kWithSummary}).
 * @param options Split (default `"train"`), config (default `"main"`), limit, onSkip.
 * @returns The records, in file order.
 * @example
 * ```ts ignore
 * import { loadGsm8k } from "./gsm8k_fs.ts";
 * const test = await loadGsm8k("../shared/data/gsm8k", { split: "test" });
 * console.log(test.length, test[0].answer); // 1319 "18"
 * ```
 */
export async function loadGsm8k(
  path: string,
  options: Gsm8kLoadOptions = {},
): Promise<Gsm8kRecord[]> {
  return (await loadGsm8kWithSummary(path, options)).records;
}
