/**
 * Crash-safe writes (Deno): a temporary file in the same folder, fsynced, renamed over the
 * destination, then the folder fsynced; and a safetensors writer that produces one tensor at a
 * time, so a multi-GB export never sits in memory as a whole. Shared by `peft_fs.ts` and
 * `rl/checkpoint_fs.ts`.
 *
 * @module
 */

import type { SafetensorsDtype } from "./safetensors.ts";
import { SafetensorsError } from "./safetensors.ts";
import type { TensorData } from "./safetensors_dtype.ts";
import { tensorDataLength } from "./safetensors_dtype.ts";
import { encodeTensor, planSafetensors } from "./safetensors_writer.ts";

/**
 * Joins a folder and a name with `/`.
 *
 * @param dir Folder.
 * @param name Entry name.
 * @returns The path.
 */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") || dir.endsWith("\\") ? dir + name : `${dir}/${name}`;
}

/**
 * The folder part of a path.
 *
 * @param path A path.
 * @returns Everything before the last separator (`.` when there is none).
 */
export function dirName(path: string): string {
  const trimmed = path.replace(/[/\\]+$/, "");
  const i = Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\"));
  return i < 0 ? "." : i === 0 ? trimmed.slice(0, 1) : trimmed.slice(0, i);
}

/**
 * Fsyncs a folder so a rename inside it is durable. Ignored where folders cannot be opened
 * (Windows): the rename still stands, only its durability across power loss is weaker.
 *
 * @param dir The folder.
 */
export async function syncDir(dir: string): Promise<void> {
  let d: Deno.FsFile;
  try {
    d = await Deno.open(dir, { read: true });
  } catch {
    return;
  }
  try {
    await d.sync();
  } catch {
    // subtle: some file systems refuse fsync on a folder handle; nothing more can be done.
  } finally {
    d.close();
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

function tempName(path: string): string {
  const base = path.slice(Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1);
  return joinPath(dirName(path), `.${base}.${crypto.randomUUID()}.tmp`);
}

/**
 * Writes chunks to a temporary file beside `path`, fsyncs it, renames it over `path` and fsyncs
 * the folder. Readers see the old file or the new one, never a partial one.
 *
 * @param path Destination file.
 * @param chunks Produces the bytes in order (called once).
 * @throws The producer's error, or a write error; the temporary file is removed.
 */
export async function writeFileAtomic(
  path: string,
  chunks: (write: (bytes: Uint8Array) => Promise<void>) => Promise<void>,
): Promise<void> {
  const tmp = tempName(path);
  let file: Deno.FsFile | null = null;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    const f = file;
    await chunks((bytes) => writeAll(f, bytes));
    await file.sync();
    file.close();
    file = null;
    await Deno.rename(tmp, path);
  } catch (e) {
    file?.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dirName(path));
}

/**
 * Writes a text file atomically (see {@linkcode writeFileAtomic}).
 *
 * @param path Destination.
 * @param text Contents (UTF-8).
 */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  await writeFileAtomic(path, (write) => write(bytes));
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
