/**
 * Checkpoints: a model folder's `model.safetensors`, or `model.safetensors.index.json` and its
 * shards presented as one name → tensor view, opened from any `FileSource` (a folder on disk,
 * a URL, picked files). Browser-clean; `safetensors_fs.ts` opens folders on disk.
 *
 * @module
 */

import { type FileSource, joinSourceName } from "./file_source.ts";
import {
  openSafetensorsIn,
  SafetensorsError,
  safetensorsErrorOf,
  type SafetensorsFile,
  type TensorInfo,
  type TensorStore,
} from "./safetensors.ts";

/** File name of a single-file checkpoint. */
export const SINGLE_CHECKPOINT_FILE = "model.safetensors";
/** File name of a sharded checkpoint's index. */
export const CHECKPOINT_INDEX_FILE = "model.safetensors.index.json";

/** A parsed `model.safetensors.index.json`. */
export interface SafetensorsIndex {
  /** The index's `metadata` object (e.g. `total_size`), empty when absent. */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Tensor name → shard file name (relative to the index's folder). */
  readonly weightMap: ReadonlyMap<string, string>;
  /** Distinct shard file names, in first-appearance order. */
  readonly shards: readonly string[];
}

/** A checkpoint (one safetensors file or several shards) seen as one name → tensor view. */
export interface Checkpoint extends TensorStore {
  /** The index file (or the single file) the checkpoint was opened from. */
  readonly path: string;
  /** The open shard files, in index order. */
  readonly files: readonly SafetensorsFile[];
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * Parses and validates an index file's text.
 *
 * @param file The index file's path (for messages).
 * @param text Its contents.
 * @returns The weight map and metadata.
 * @throws {SafetensorsError} `invalid_json` or `invalid_header` (e.g. a shard path that leaves
 *   the folder).
 * @example
 * ```ts
 * import { parseSafetensorsIndex } from "./safetensors_index.ts";
 * const index = parseSafetensorsIndex("index.json", '{"weight_map": {"a": "s1.safetensors"}}');
 * console.log(index.shards); // ["s1.safetensors"]
 * ```
 */
export function parseSafetensorsIndex(file: string, text: string): SafetensorsIndex {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError("invalid_json", file, null, `not JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(raw) || !isPlainObject(raw.weight_map)) {
    throw new SafetensorsError(
      "invalid_header",
      file,
      null,
      'expected an object with "weight_map": {tensor name: shard file}',
    );
  }
  const metadata = raw.metadata ?? {};
  if (!isPlainObject(metadata)) {
    throw new SafetensorsError("invalid_header", file, null, '"metadata" must be an object');
  }
  const weightMap = new Map<string, string>();
  const shards: string[] = [];
  for (const [name, shard] of Object.entries(raw.weight_map)) {
    if (typeof shard !== "string" || shard.length === 0) {
      throw new SafetensorsError(
        "invalid_header",
        file,
        name,
        `weight_map entry must be a shard file name, got ${JSON.stringify(shard)}`,
      );
    }
    // subtle: shard names come from the file; refuse ones that would leave the folder.
    if (/^([/\\]|[A-Za-z]:)/.test(shard) || shard.split(/[/\\]/).includes("..")) {
      throw new SafetensorsError(
        "invalid_header",
        file,
        name,
        `shard "${shard}" must be a path relative to the index's folder`,
      );
    }
    weightMap.set(name, shard);
    if (!shards.includes(shard)) shards.push(shard);
  }
  return Object.freeze({
    metadata: Object.freeze({ ...metadata }),
    weightMap,
    shards: Object.freeze(shards),
  });
}

/**
 * Combines open shard files into one view following the index. Tensors a shard holds but the
 * index does not list are left out (as transformers does).
 *
 * @param indexPath The index file (for messages).
 * @param index The parsed index.
 * @param shards Shard file name (as in the index) → the open file.
 * @returns The combined checkpoint; `close()` closes every shard.
 * @throws {SafetensorsError} `missing_shard` when a listed shard is not in `shards`,
 *   `index_mismatch` when a listed tensor is not in its shard.
 */
export function combineShards(
  indexPath: string,
  index: SafetensorsIndex,
  shards: ReadonlyMap<string, SafetensorsFile>,
): Checkpoint {
  const tensors = new Map<string, TensorInfo>();
  const owner = new Map<string, SafetensorsFile>();
  for (const [name, shardName] of index.weightMap) {
    const shard = shards.get(shardName);
    if (shard === undefined) {
      throw new SafetensorsError(
        "missing_shard",
        indexPath,
        name,
        `shard "${shardName}" listed in weight_map was not opened`,
      );
    }
    const t = shard.tensors.get(name);
    if (t === undefined) {
      throw new SafetensorsError(
        "index_mismatch",
        indexPath,
        name,
        `weight_map puts it in "${shardName}" (${shard.path}), which has no such tensor`,
      );
    }
    tensors.set(name, t);
    owner.set(name, shard);
  }
  const files = index.shards.map((s) => shards.get(s) as SafetensorsFile);
  const shardOf = (name: string): SafetensorsFile => {
    const shard = owner.get(name);
    if (shard === undefined) {
      throw new SafetensorsError(
        "missing_tensor",
        indexPath,
        name,
        `no such tensor among ${tensors.size} in ${files.length} shards`,
      );
    }
    return shard;
  };
  return Object.freeze({
    path: indexPath,
    files: Object.freeze(files),
    tensors,
    info: (name: string) => shardOf(name).info(name),
    // Lookups run inside the promise so that a missing name rejects instead of throwing.
    read: (name: string) => Promise.resolve(name).then((n) => shardOf(n).read(n)),
    readInto: (name: string, target: Uint8Array) =>
      Promise.resolve(name).then((n) => shardOf(n).readInto(n, target)),
    readRange: (name: string, start: number, target: Uint8Array) =>
      Promise.resolve(name).then((n) => shardOf(n).readRange(n, start, target)),
    close: () => {
      for (const f of files) f.close();
    },
  });
}

async function existsIn(source: FileSource, name: string): Promise<boolean> {
  try {
    return await source.exists(name);
  } catch (e) {
    throw safetensorsErrorOf(e);
  }
}

async function openShardedFrom(source: FileSource, indexName: string): Promise<Checkpoint> {
  const indexPath = source.path(indexName);
  let text: string;
  try {
    text = await source.readText(indexName);
  } catch (e) {
    throw safetensorsErrorOf(e);
  }
  const index = parseSafetensorsIndex(indexPath, text);
  const folder = indexName.includes("/") ? indexName.slice(0, indexName.lastIndexOf("/")) : "";
  for (const shard of index.shards) {
    if (!(await existsIn(source, joinSourceName(folder, shard)))) {
      const listed = [...index.weightMap].filter(([, s]) => s === shard).map(([n]) => n);
      throw new SafetensorsError(
        "missing_shard",
        indexPath,
        listed[0],
        `shard file "${shard}" (${listed.length} tensors) not found in ` +
          (folder === "" ? source.label : source.path(folder)),
      );
    }
  }
  const opened = new Map<string, SafetensorsFile>();
  try {
    for (const shard of index.shards) {
      opened.set(shard, await openSafetensorsIn(source, joinSourceName(folder, shard)));
    }
    return combineShards(indexPath, index, opened);
  } catch (e) {
    for (const f of opened.values()) f.close();
    throw e;
  }
}

/** Options of {@linkcode openCheckpointFrom}. */
export interface OpenCheckpointOptions {
  /**
   * A file of the source to open instead of looking for the checkpoint: a `.safetensors` file,
   * or a sharded index (`.json`).
   */
  readonly file?: string;
}

/**
 * Opens a Hugging Face checkpoint from a file source: `model.safetensors` (preferred, as
 * transformers does) or `model.safetensors.index.json` plus its shards. Every shard's header
 * is validated and every tensor the index lists is checked to be in its shard; tensors are
 * read later, one at a time, by byte ranges.
 *
 * @param source The model folder (on disk, over HTTP, picked files, in memory).
 * @param options A specific file to open instead.
 * @returns One name → tensor view over all shards; call `close()` when done.
 * @throws {SafetensorsError} `missing_file` (no checkpoint), `missing_shard`, `index_mismatch`,
 *   `io` (the source's `FileSourceError`, naming the URL or path, is the `cause`), or any
 *   header problem.
 * @example
 * ```ts
 * import { memorySource } from "./file_source.ts";
 * import { openCheckpointFrom } from "./safetensors_index.ts";
 * import { encodeSafetensors } from "./safetensors_writer.ts";
 * const source = memorySource({
 *   "model.safetensors.index.json": '{"weight_map": {"a": "s1.safetensors"}}',
 *   "s1.safetensors": encodeSafetensors([{ name: "a", dtype: "F32", shape: [1], data: [5] }]),
 * });
 * const ckpt = await openCheckpointFrom(source);
 * console.log([...ckpt.tensors.keys()], ckpt.path); // ["a"] "memory/model.safetensors.index.json"
 * ckpt.close();
 * ```
 */
export async function openCheckpointFrom(
  source: FileSource,
  options: OpenCheckpointOptions = {},
): Promise<Checkpoint> {
  let name = options.file;
  if (name === undefined) {
    if (await existsIn(source, SINGLE_CHECKPOINT_FILE)) name = SINGLE_CHECKPOINT_FILE;
    else if (await existsIn(source, CHECKPOINT_INDEX_FILE)) name = CHECKPOINT_INDEX_FILE;
    else {
      throw new SafetensorsError(
        "missing_file",
        source.label,
        null,
        `no ${SINGLE_CHECKPOINT_FILE} or ${CHECKPOINT_INDEX_FILE} in this folder`,
      );
    }
  }
  if (name.endsWith(".json")) return await openShardedFrom(source, name);
  const file = await openSafetensorsIn(source, name);
  return Object.freeze({
    path: file.path,
    files: Object.freeze([file]),
    tensors: file.tensors,
    info: file.info,
    read: file.read,
    readInto: file.readInto,
    readRange: file.readRange,
    close: file.close,
  });
}
