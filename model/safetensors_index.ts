/**
 * Sharded checkpoints: parsing `model.safetensors.index.json` and presenting its shards as one
 * name → tensor view. Browser-clean; `safetensors_fs.ts` opens the shard files.
 *
 * @module
 */

import {
  SafetensorsError,
  type SafetensorsFile,
  type TensorInfo,
  type TensorStore,
} from "./safetensors.ts";

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
