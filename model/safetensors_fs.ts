/**
 * Safetensors on the local file system (Deno): a byte-range reader over `Deno.FsFile`, opening
 * single files and (sharded) checkpoints, and atomic writes. Tensors are read one at a time by
 * byte range, so a multi-GB checkpoint never sits in JS memory as a whole.
 *
 * @module
 */

import { dirName, joinPath, writeFileAtomic } from "../base/atomic_fs.ts";
import type { ByteRangeReader } from "./byte_readers.ts";
import {
  openSafetensorsFrom,
  type SafetensorsDtype,
  SafetensorsError,
  type SafetensorsFile,
} from "./safetensors.ts";
import { type TensorData, tensorDataLength } from "./safetensors_dtype.ts";
import { type Checkpoint, combineShards, parseSafetensorsIndex } from "./safetensors_index.ts";
import { encodeTensor, planSafetensors, type TensorToWrite } from "./safetensors_writer.ts";

/** File name of a single-file checkpoint. */
export const SINGLE_CHECKPOINT_FILE = "model.safetensors";
/** File name of a sharded checkpoint's index. */
export const CHECKPOINT_INDEX_FILE = "model.safetensors.index.json";

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new SafetensorsError("io", path, null, `cannot stat: ${(e as Error).message}`);
  }
}

/**
 * Opens a file for random-access reads. Reads are serialised (seek + read pairs never
 * interleave), so concurrent `readInto` calls are safe.
 *
 * @param path The file.
 * @returns A reader; `close()` closes the file (idempotent).
 * @throws {SafetensorsError} `missing_file` when absent, `io` when it cannot be opened.
 */
export async function fileReader(path: string): Promise<ByteRangeReader> {
  const info = await statOrNull(path);
  if (info === null) throw new SafetensorsError("missing_file", path, null, "no such file");
  if (!info.isFile) throw new SafetensorsError("io", path, null, "not a regular file");
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new SafetensorsError("io", path, null, `cannot open: ${(e as Error).message}`);
  }
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;
  const readAt = async (offset: number, target: Uint8Array): Promise<number> => {
    if (closed) throw new SafetensorsError("io", path, null, "read after close()");
    try {
      await file.seek(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < target.length) {
        const n = await file.read(target.subarray(done));
        if (n === null) break;
        done += n;
      }
      return done;
    } catch (e) {
      throw new SafetensorsError(
        "io",
        path,
        null,
        `reading ${target.length} bytes at ${offset}: ${(e as Error).message}`,
      );
    }
  };
  return {
    size: info.size,
    readInto(offset: number, target: Uint8Array): Promise<number> {
      const run = () => readAt(offset, target);
      const result = queue.then(run, run);
      queue = result.catch(() => {});
      return result;
    },
    close() {
      if (closed) return;
      closed = true;
      file.close();
    },
  };
}

/**
 * Opens one safetensors file: reads and validates its header only.
 *
 * @param path The `.safetensors` file.
 * @returns The open file; call `close()` when done.
 * @throws {SafetensorsError} `missing_file`, or any header problem (see `parseHeader`).
 * @example
 * ```ts
 * import { openSafetensors } from "./safetensors_fs.ts";
 * import { decodeFloat32 } from "./safetensors_dtype.ts";
 * const st = await openSafetensors("../shared/fixtures/gemma3-tiny-a/model.safetensors");
 * const t = st.info("model.norm.weight");
 * const values = decodeFloat32(t.dtype, await st.read(t.name));
 * st.close();
 * ```
 */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  return await openSafetensorsFrom(path, await fileReader(path));
}

async function openSharded(indexPath: string): Promise<Checkpoint> {
  let text: string;
  try {
    text = await Deno.readTextFile(indexPath);
  } catch (e) {
    throw new SafetensorsError("io", indexPath, null, `cannot read: ${(e as Error).message}`);
  }
  const index = parseSafetensorsIndex(indexPath, text);
  const dir = dirName(indexPath);
  for (const shard of index.shards) {
    const info = await statOrNull(joinPath(dir, shard));
    if (info === null || !info.isFile) {
      const listed = [...index.weightMap].filter(([, s]) => s === shard).map(([n]) => n);
      throw new SafetensorsError(
        "missing_shard",
        indexPath,
        listed[0],
        `shard file "${shard}" (${listed.length} tensors) not found in ${dir}`,
      );
    }
  }
  const opened = new Map<string, SafetensorsFile>();
  try {
    for (const shard of index.shards) {
      opened.set(shard, await openSafetensors(joinPath(dir, shard)));
    }
    return combineShards(indexPath, index, opened);
  } catch (e) {
    for (const f of opened.values()) f.close();
    throw e;
  }
}

/**
 * Opens a Hugging Face checkpoint: a folder with `model.safetensors` (preferred, as
 * transformers does) or `model.safetensors.index.json` plus its shards; or directly a
 * `.safetensors` file or an index `.json` file. Every shard's header is validated and every
 * tensor the index lists is checked to be in its shard.
 *
 * @param path Folder or file.
 * @returns One name → tensor view over all shards; call `close()` when done.
 * @throws {SafetensorsError} `missing_file` (no checkpoint), `missing_shard`, `index_mismatch`,
 *   or any header problem.
 * @example
 * ```ts
 * import { openCheckpoint } from "./safetensors_fs.ts";
 * const ckpt = await openCheckpoint("../shared/fixtures/gemma3-tiny-a");
 * for (const [name, t] of ckpt.tensors) console.log(name, t.dtype, t.shape);
 * ckpt.close();
 * ```
 */
export async function openCheckpoint(path: string): Promise<Checkpoint> {
  const info = await statOrNull(path);
  if (info === null) throw new SafetensorsError("missing_file", path, null, "no such file");
  let target = path;
  if (info.isDirectory) {
    const single = joinPath(path, SINGLE_CHECKPOINT_FILE);
    const index = joinPath(path, CHECKPOINT_INDEX_FILE);
    if (await statOrNull(single)) target = single;
    else if (await statOrNull(index)) target = index;
    else {
      throw new SafetensorsError(
        "missing_file",
        path,
        null,
        `no ${SINGLE_CHECKPOINT_FILE} or ${CHECKPOINT_INDEX_FILE} in this folder`,
      );
    }
  }
  if (target.endsWith(".json")) return await openSharded(target);
  const file = await openSafetensors(target);
  return Object.freeze({
    path: target,
    files: Object.freeze([file]),
    tensors: file.tensors,
    info: file.info,
    read: file.read,
    readInto: file.readInto,
    readRange: file.readRange,
    close: file.close,
  });
}

/**
 * Writes a safetensors file atomically: a temporary file in the same folder is written tensor
 * by tensor, fsynced and renamed over `path`, so readers see the old file or the new one, never
 * a partial one. The folder is fsynced too where the platform allows it.
 *
 * @param path Destination file.
 * @param tensors Tensors in storage order (`{ name, dtype, shape, data }`).
 * @param metadata `__metadata__` (string → string), e.g. `{ format: "pt" }`.
 * @returns The file size in bytes.
 * @throws {SafetensorsError} `invalid_tensor` / `invalid_header` on bad input (nothing is
 *   written), `io` when writing fails (the temporary file is removed).
 * @example
 * ```ts
 * import { writeSafetensors } from "./safetensors_fs.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/adapter.safetensors`, [
 *   { name: "a", dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
 * ], { format: "pt" });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata: Readonly<Record<string, string>> = {},
): Promise<number> {
  const layout = planSafetensors(path, tensors, metadata);
  try {
    await writeFileAtomic(path, async (write) => {
      await write(layout.header);
      for (const entry of layout.entries) await write(encodeTensor(path, entry.tensor));
    });
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError("io", path, null, `write failed: ${(e as Error).message}`);
  }
  return layout.totalBytes;
}

/** A tensor's header entry; its data comes later from the producer. */
export interface TensorSpec {
  /** Tensor name. */
  readonly name: string;
  /** Stored dtype. */
  readonly dtype: SafetensorsDtype;
  /** Dimensions. */
  readonly shape: readonly number[];
}

/**
 * Writes a safetensors file atomically, asking for each tensor's data only when it is written,
 * in `specs` order (which is also the header order).
 *
 * @param path Destination file.
 * @param specs Names, dtypes and shapes in storage order.
 * @param produce Returns tensor `i`'s data (values or raw bytes, as `writeSafetensors` takes).
 * @param metadata `__metadata__` (string → string).
 * @returns The file size.
 * @throws {SafetensorsError} `invalid_tensor` when produced data has the wrong length, `io` when
 *   writing fails; the producer's own errors pass through. Nothing is left behind on failure.
 */
export async function writeSafetensorsStreaming(
  path: string,
  specs: readonly TensorSpec[],
  produce: (index: number) => Promise<TensorData> | TensorData,
  metadata: Readonly<Record<string, string>> = {},
): Promise<number> {
  const placeholders = specs.map((s) => ({
    ...s,
    data: { length: s.shape.reduce((a, b) => a * b, 1) } as ArrayLike<number>,
  }));
  const layout = planSafetensors(path, placeholders, metadata);
  let producerFailed = false;
  try {
    await writeFileAtomic(path, async (write) => {
      await write(layout.header);
      for (let i = 0; i < specs.length; i++) {
        const spec = specs[i];
        let data: TensorData;
        try {
          data = await produce(i);
        } catch (e) {
          producerFailed = true;
          throw e;
        }
        const numel = placeholders[i].data.length;
        if (tensorDataLength(spec.dtype, data) !== numel) {
          throw new SafetensorsError(
            "invalid_tensor",
            path,
            spec.name,
            `shape [${spec.shape.join(", ")}] needs ${numel} ${spec.dtype} elements, ` +
              `got ${data.length} values`,
          );
        }
        await write(encodeTensor(path, { ...spec, data }));
      }
    });
  } catch (e) {
    if (producerFailed || e instanceof SafetensorsError) throw e;
    throw new SafetensorsError("io", path, null, `write failed: ${(e as Error).message}`);
  }
  return layout.totalBytes;
}
