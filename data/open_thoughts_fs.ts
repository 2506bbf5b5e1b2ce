/**
 * Loading OpenThoughts-114k from disk: parquet shards (`data/train-*.parquet`, or
 * `metadata/train-*.parquet` for the metadata config), jsonl exports, or a local Hugging Face
 * hub cache of `open-thoughts/OpenThoughts-114k`.
 *
 * @module
 */

import type { Compressors } from "hyparquet";
import {
  collectOpenThoughts,
  type OpenThoughtsLoadResult,
  type OpenThoughtsOptions,
  type OpenThoughtsRecord,
  resolveOpenThoughtsOptions,
} from "./open_thoughts.ts";
import { readDatasetFiles, resolveDatasetFiles } from "./dataset_fs.ts";
import { DataOptionsError } from "./errors.ts";

/** Hub repo ids OpenThoughts-114k is published under. */
export const OPEN_THOUGHTS_REPO_IDS: readonly string[] = Object.freeze([
  "open-thoughts/OpenThoughts-114k",
]);

// Columns read from parquet; the metadata config's large code columns (test_cases, …) are not.
const COLUMNS = [
  "system",
  "conversations",
  "problem",
  "deepseek_reasoning",
  "deepseek_solution",
  "ground_truth_solution",
  "domain",
  "source",
];

/** Options for {@linkcode loadOpenThoughts}. */
export interface OpenThoughtsLoadOptions extends OpenThoughtsOptions {
  /** Which config's folder to read from a snapshot: `"default"` (`data/`) or `"metadata"`. */
  readonly config?: "default" | "metadata";
  /** Split to take from a folder. Default `"train"` (the only one published). */
  readonly split?: string;
  /** Extra parquet decompressors (ZSTD, GZIP, …); snappy works without. */
  readonly compressors?: Compressors;
}

/**
 * Loads OpenThoughts with counts of what was filtered, truncated and skipped.
 *
 * @param path A parquet or jsonl file, a folder of shards, or a hub cache folder (root,
 *   `datasets--open-thoughts--OpenThoughts-114k`, or a snapshot).
 * @param options Filters (numericOnly defaults to true), length policy, config, split, limit.
 * @returns Records and summary.
 * @throws {DatasetNotFoundError} When no data file is found.
 * @throws {DatasetFormatError} On bad JSON or unreadable parquet.
 */
export async function loadOpenThoughtsWithSummary(
  path: string,
  options: OpenThoughtsLoadOptions = {},
): Promise<OpenThoughtsLoadResult> {
  const opts = resolveOpenThoughtsOptions(options);
  const config = options.config ?? "default";
  if (config !== "default" && config !== "metadata") {
    throw new DataOptionsError("config", `must be "default" or "metadata", got ${config}`);
  }
  const files = await resolveDatasetFiles(path, {
    repoIds: OPEN_THOUGHTS_REPO_IDS,
    configDirs: [config === "default" ? "data" : "metadata"],
    split: options.split ?? "train",
  });
  const rows = readDatasetFiles(files, { columns: COLUMNS, compressors: options.compressors });
  return await collectOpenThoughts(rows, opts, files);
}

/**
 * Loads OpenThoughts records; see {@linkcode loadOpenThoughtsWithSummary} for counts.
 *
 * @param path A parquet or jsonl file, a folder of shards, or a hub cache folder.
 * @param options Filters, length policy, config, split, limit.
 * @returns The records, in file order.
 * @example
 * ```ts ignore
 * import { loadOpenThoughts } from "./open_thoughts_fs.ts";
 * import { toSftExample } from "./examples.ts";
 * const records = await loadOpenThoughts("OpenThoughts-114k/data", { domains: ["math"] });
 * const sft = records.map((r) => toSftExample(r));
 * ```
 */
export async function loadOpenThoughts(
  path: string,
  options: OpenThoughtsLoadOptions = {},
): Promise<OpenThoughtsRecord[]> {
  return (await loadOpenThoughtsWithSummary(path, options)).records;
}
