/**
 * File-system side of the dataset readers (Deno APIs live only here): finds the data files
 * behind a path — a file, a plain folder, or a Hugging Face hub cache folder at any of its
 * three levels — and streams their rows.
 *
 * Hub cache layout (`huggingface_hub`):
 * `<cache>/datasets--<owner>--<name>/snapshots/<hash>/<config>/<split>-00000-of-00001.parquet`,
 * with `refs/main` naming the current snapshot hash.
 *
 * @module
 */

import type { RawRow } from "./_common.ts";
import { DatasetFormatError, DatasetNotFoundError } from "./errors.ts";
import { parseJsonlStream, parseJsonlText } from "./jsonl.ts";
import { type ParquetByteSource, type ReadParquetOptions, readParquetRows } from "./parquet.ts";

/** File name endings the readers understand. */
export const DATA_FILE_EXTENSIONS: readonly string[] = Object.freeze([
  ".parquet",
  ".jsonl",
  ".ndjson",
  ".json",
]);

const KNOWN_SPLITS = ["train", "test", "validation", "valid", "dev"];

/** How {@linkcode resolveDatasetFiles} looks inside folders. */
export interface ResolveDatasetOptions {
  /** Hub repo ids whose cache folder may sit under the given path, e.g. `["openai/gsm8k"]`. */
  readonly repoIds: readonly string[];
  /** Sub-folders of a snapshot to look in first, e.g. `["main"]` or `["data"]`. */
  readonly configDirs: readonly string[];
  /** Split whose files to take from a folder, e.g. `"train"`. */
  readonly split: string;
}

/** Environment variables that decide where the Hugging Face hub cache lives. */
export interface HubCacheEnv {
  /** Overrides everything. */
  readonly HF_HUB_CACHE?: string;
  /** The cache is `$HF_HOME/hub`. */
  readonly HF_HOME?: string;
  /** Without HF_HOME the cache is `$XDG_CACHE_HOME/huggingface/hub`. */
  readonly XDG_CACHE_HOME?: string;
  /** Otherwise `$HOME/.cache/huggingface/hub`. */
  readonly HOME?: string;
  /** Windows fallback for HOME. */
  readonly USERPROFILE?: string;
}

/**
 * Where `huggingface_hub` keeps its cache, following its own rules. The caller passes the
 * environment (library code reads no env vars itself).
 *
 * @param env Typically `Deno.env.toObject()`.
 * @returns The hub cache folder, e.g. `/home/me/.cache/huggingface/hub`.
 * @example
 * ```ts
 * import { defaultHubCacheDir } from "./dataset_fs.ts";
 * if (defaultHubCacheDir({ HOME: "/h" }) !== "/h/.cache/huggingface/hub") throw new Error();
 * ```
 */
export function defaultHubCacheDir(env: HubCacheEnv): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return joinPath(env.HF_HOME, "hub");
  const cache = env.XDG_CACHE_HOME ?? joinPath(env.HOME ?? env.USERPROFILE ?? ".", ".cache");
  return joinPath(cache, "huggingface", "hub");
}

/**
 * Joins path parts with `/`.
 *
 * @param parts Path parts.
 * @returns The joined path.
 */
export function joinPath(...parts: string[]): string {
  return parts.map((p, i) => (i === 0 ? p.replace(/\/+$/, "") : p.replace(/^\/+|\/+$/g, "")))
    .filter((p, i) => i === 0 || p.length > 0).join("/");
}

function baseName(path: string): string {
  return path.replace(/\/+$/, "").split("/").pop() ?? path;
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

async function isDir(path: string): Promise<boolean> {
  return (await statOrNull(path))?.isDirectory ?? false;
}

function isDataFile(name: string): boolean {
  const lower = name.toLowerCase();
  return DATA_FILE_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

async function pickSnapshot(datasetDir: string): Promise<string> {
  const snapshots = joinPath(datasetDir, "snapshots");
  try {
    const hash = (await Deno.readTextFile(joinPath(datasetDir, "refs", "main"))).trim();
    if (hash && await isDir(joinPath(snapshots, hash))) return joinPath(snapshots, hash);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  let best: { path: string; mtime: number } | null = null;
  for await (const entry of Deno.readDir(snapshots)) {
    const path = joinPath(snapshots, entry.name);
    const info = await statOrNull(path);
    if (!info?.isDirectory) continue;
    const mtime = info.mtime?.getTime() ?? 0;
    // subtle: ties broken by name so the choice does not depend on readDir order.
    if (!best || mtime > best.mtime || (mtime === best.mtime && path > best.path)) {
      best = { path, mtime };
    }
  }
  if (!best) throw new DatasetNotFoundError(`${snapshots} holds no snapshot folder`);
  return best.path;
}

async function listSplitFiles(dir: string, split: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!isDataFile(entry.name)) continue;
    const info = await statOrNull(joinPath(dir, entry.name));
    if (info?.isFile) names.push(entry.name);
  }
  names.sort();
  const startsWithSplit = (name: string, s: string) =>
    name.startsWith(`${s}-`) || name.startsWith(`${s}.`) || name.startsWith(`${s}_`);
  const matched = names.filter((n) => startsWithSplit(n, split));
  // A folder of files that name no split at all (e.g. `openthoughts.jsonl`) is taken whole.
  const unnamed = names.filter((n) => !KNOWN_SPLITS.some((s) => startsWithSplit(n, s)));
  return (matched.length > 0 ? matched : unnamed).map((n) => joinPath(dir, n));
}

/**
 * Finds the data files behind a path: the file itself; or, for a folder, the split's files
 * (`<split>.jsonl`, `<split>-00000-of-00002.parquet`, …) in `<config dir>/` or the folder
 * itself. A hub cache root (holding `datasets--owner--name`), a dataset cache folder (holding
 * `snapshots/`) and a snapshot folder are all accepted.
 *
 * @param path A file or folder.
 * @param options Repo ids, config sub-folders and split.
 * @returns Sorted file paths (at least one).
 * @throws {DatasetNotFoundError} When the path does not exist or holds no matching file.
 */
export async function resolveDatasetFiles(
  path: string,
  options: ResolveDatasetOptions,
): Promise<string[]> {
  const info = await statOrNull(path);
  if (!info) throw new DatasetNotFoundError(`${path} does not exist`);
  if (info.isFile) return [path];
  let dir = path;
  for (const repoId of options.repoIds) {
    const cached = joinPath(dir, `datasets--${repoId.replaceAll("/", "--")}`);
    if (await isDir(cached)) {
      dir = cached;
      break;
    }
  }
  if (await isDir(joinPath(dir, "snapshots"))) dir = await pickSnapshot(dir);
  for (const sub of [...options.configDirs, ""]) {
    const candidate = sub ? joinPath(dir, sub) : dir;
    if (!await isDir(candidate)) continue;
    const files = await listSplitFiles(candidate, options.split);
    if (files.length > 0) return files;
  }
  const where = options.configDirs.map((c) => `${c}/`).join(", ");
  throw new DatasetNotFoundError(
    `no ${options.split} data files (${DATA_FILE_EXTENSIONS.join(", ")}) in ${dir}` +
      (where ? ` or its ${where}` : ""),
  );
}

/** Lazy random-access reads of a file, serialized because seek+read share one cursor. */
class FileByteSource implements ParquetByteSource {
  readonly byteLength: number;
  #file: Deno.FsFile;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(file: Deno.FsFile, byteLength: number) {
    this.#file = file;
    this.byteLength = byteLength;
  }

  slice(start: number, end: number = this.byteLength): Promise<ArrayBuffer> {
    const read = this.#tail.then(async () => {
      const out = new Uint8Array(Math.max(0, end - start));
      await this.#file.seek(start, Deno.SeekMode.Start);
      let filled = 0;
      while (filled < out.length) {
        const n = await this.#file.read(out.subarray(filled));
        if (n === null) break;
        filled += n;
      }
      return out.buffer;
    });
    this.#tail = read.catch(() => undefined);
    return read;
  }
}

/**
 * Streams the rows of one data file: parquet row by row, jsonl line by line, and a `.json`
 * file holding one JSON array element by element (otherwise it is read as jsonl).
 *
 * @param path The file.
 * @param options Columns to read and extra decompressors (parquet only).
 * @returns Rows with their 1-based line (jsonl) or row (parquet, json array) number.
 * @throws {DatasetFormatError} On unreadable content.
 */
export async function* readDatasetRows(
  path: string,
  options: ReadParquetOptions = {},
): AsyncGenerator<RawRow> {
  const name = baseName(path);
  const lower = name.toLowerCase();
  if (lower.endsWith(".parquet")) {
    const file = await Deno.open(path, { read: true });
    try {
      const { size } = await file.stat();
      yield* readParquetRows(new FileByteSource(file, size), path, options);
    } finally {
      file.close();
    }
  } else if (lower.endsWith(".json")) {
    const text = await Deno.readTextFile(path);
    if (text.trimStart().startsWith("[")) {
      let values: unknown;
      try {
        values = JSON.parse(text);
      } catch (err) {
        throw new DatasetFormatError(`invalid JSON (${(err as Error).message})`, path);
      }
      const list = values as unknown[];
      for (let i = 0; i < list.length; i++) yield { value: list[i], file: path, line: i + 1 };
    } else {
      yield* parseJsonlText(text, path);
    }
  } else if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) {
    const file = await Deno.open(path, { read: true });
    try {
      yield* parseJsonlStream(file.readable, path);
    } finally {
      try {
        file.close();
      } catch {
        // subtle: consuming `readable` to the end closes the file already.
      }
    }
  } else {
    throw new DatasetFormatError(
      `unsupported file type (expected ${DATA_FILE_EXTENSIONS.join(", ")})`,
      path,
    );
  }
}

/**
 * Streams the rows of several files in order.
 *
 * @param paths Files from {@linkcode resolveDatasetFiles}.
 * @param options Parquet options.
 * @returns All rows, file after file.
 */
export async function* readDatasetFiles(
  paths: readonly string[],
  options: ReadParquetOptions = {},
): AsyncGenerator<RawRow> {
  for (const path of paths) yield* readDatasetRows(path, options);
}
