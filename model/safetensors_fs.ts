/**
 * Safetensors on the local file system (Deno): opening single files and (sharded) checkpoints
 * (`openCheckpointFrom` over a `dirSource`), and atomic writes. Tensors are read one at a time
 * by byte range, so a multi-GB checkpoint never sits in JS memory as a whole.
 *
 * @module
 */

import { writeFileAtomic } from "../base/atomic_fs.ts";
import { dirSource, fileInDir } from "./file_source_fs.ts";
import {
  openSafetensorsIn,
  type SafetensorsDtype,
  SafetensorsError,
  type SafetensorsFile,
} from "./safetensors.ts";
import { type TensorData, tensorDataLength } from "./safetensors_dtype.ts";
import { type Checkpoint, openCheckpointFrom } from "./safetensors_index.ts";
import { encodeTensor, planSafetensors, type TensorToWrite } from "./safetensors_writer.ts";

// `fileReader` lives with the folder source now; re-exported for existing importers.
export { fileReader } from "./file_source_fs.ts";

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new SafetensorsError("io", path, null, `cannot stat: ${(e as Error).message}`);
  }
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
  const { source, name } = fileInDir(path);
  return await openSafetensorsIn(source, name);
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
  if (info.isDirectory) return await openCheckpointFrom(dirSource(path));
  const { source, name } = fileInDir(path);
  return await openCheckpointFrom(source, { file: name });
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
