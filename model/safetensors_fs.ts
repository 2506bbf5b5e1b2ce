/**
 * Safetensors on the local file system (Deno): a byte-range reader over `Deno.FsFile`, opening
 * single files and (sharded) checkpoints, and atomic writes. Tensors are read one at a time by
 * byte range, so a multi-GB checkpoint never sits in JS memory as a whole.
 *
 * @module
 */

import type { ByteRangeReader } from "./byte_readers.ts";
import { openSafetensorsFrom, SafetensorsError, type SafetensorsFile } from "./safetensors.ts";
import { type Checkpoint, combineShards, parseSafetensorsIndex } from "./safetensors_index.ts";
import { encodeTensor, planSafetensors, type TensorToWrite } from "./safetensors_writer.ts";

/** File name of a single-file checkpoint. */
export const SINGLE_CHECKPOINT_FILE = "model.safetensors";
/** File name of a sharded checkpoint's index. */
export const CHECKPOINT_INDEX_FILE = "model.safetensors.index.json";

function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") || dir.endsWith("\\") ? dir + name : `${dir}/${name}`;
}

function dirName(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return i < 0 ? "." : i === 0 ? path.slice(0, 1) : path.slice(0, i);
}

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

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
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
  const dir = dirName(path);
  const base = path.slice(Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1);
  const tmp = joinPath(dir, `.${base}.${crypto.randomUUID()}.tmp`);
  let file: Deno.FsFile | null = null;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    await writeAll(file, layout.header);
    for (const entry of layout.entries) await writeAll(file, encodeTensor(path, entry.tensor));
    await file.sync();
    file.close();
    file = null;
    await Deno.rename(tmp, path);
  } catch (e) {
    file?.close();
    await Deno.remove(tmp).catch(() => {});
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError("io", path, null, `write failed: ${(e as Error).message}`);
  }
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // subtle: folders cannot be opened/fsynced on every platform (Windows); the rename stands.
  }
  return layout.totalBytes;
}
