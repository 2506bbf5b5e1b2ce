/**
 * A model folder on the local file system (Deno) as a {@linkcode FileSource}, and the file
 * reader behind it: the Deno side of the loaders that `gemma3_load.ts`, `peft_load.ts`,
 * `config_hf.ts` and `model_dir.ts` write once over sources.
 *
 * @module
 */

import { joinPath } from "../base/atomic_fs.ts";
import type { ByteRangeReader } from "./byte_readers.ts";
import { type FileSource, FileSourceError } from "./file_source.ts";

function notFound(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory;
}

async function fileInfo(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (notFound(e)) return null;
    throw new FileSourceError("io", path, `cannot stat: ${(e as Error).message}`);
  }
}

/**
 * Opens a file for random-access reads. Reads are serialised (seek + read pairs never
 * interleave), so concurrent `readInto` calls are safe.
 *
 * @param path The file.
 * @returns A reader; `close()` closes the file (idempotent).
 * @throws {FileSourceError} `not_found` when absent, `io` when it cannot be opened (and from
 *   `readInto` when a read fails).
 * @example
 * ```ts
 * import { fileReader } from "./file_source_fs.ts";
 * const reader = await fileReader("../shared/fixtures/gemma3-tiny-a/config.json");
 * const head = new Uint8Array(1);
 * await reader.readInto(0, head);
 * reader.close();
 * console.log(String.fromCharCode(head[0])); // "{"
 * ```
 */
export async function fileReader(path: string): Promise<ByteRangeReader> {
  const info = await fileInfo(path);
  if (info === null) throw new FileSourceError("not_found", path, "no such file");
  if (!info.isFile) throw new FileSourceError("io", path, "not a regular file");
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new FileSourceError("io", path, `cannot open: ${(e as Error).message}`);
  }
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;
  const readAt = async (offset: number, target: Uint8Array): Promise<number> => {
    if (closed) throw new FileSourceError("io", path, "read after close()");
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
      throw new FileSourceError(
        "io",
        path,
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
 * A folder on disk as a file source; `path(name)` is `dir/name` (just `name` when `dir` is
 * `""`, the current folder).
 *
 * @param dir The folder.
 * @returns The source; its `label` is `dir`.
 * @example
 * ```ts
 * import { dirSource } from "./file_source_fs.ts";
 * const source = dirSource("../shared/fixtures/gemma3-tiny-a");
 * console.log(await source.exists("config.json"), source.path("config.json"));
 * // true "../shared/fixtures/gemma3-tiny-a/config.json"
 * ```
 */
export function dirSource(dir: string): FileSource {
  const path = (name: string) => dir === "" ? name : joinPath(dir, name);
  return Object.freeze({
    label: dir.length > 1 ? dir.replace(/[/\\]+$/, "") : dir,
    path,
    async exists(name: string): Promise<boolean> {
      return (await fileInfo(path(name)))?.isFile ?? false;
    },
    async readText(name: string): Promise<string> {
      try {
        return await Deno.readTextFile(path(name));
      } catch (e) {
        throw new FileSourceError(
          notFound(e) ? "not_found" : "io",
          path(name),
          notFound(e) ? "no such file" : `cannot read: ${(e as Error).message}`,
        );
      }
    },
    openReader: (name: string) => fileReader(path(name)),
  });
}

/**
 * The folder of a file path as a source, and the file's name in it, such that
 * `source.path(name)` is `path` again (`"a/b.json"` → `dirSource("a/")`, `"b.json"`).
 *
 * @param path A file path.
 * @returns The folder source and the name.
 * @example
 * ```ts
 * import { fileInDir } from "./file_source_fs.ts";
 * const { source, name } = fileInDir("../shared/fixtures/gemma3-tiny-a/config.json");
 * console.log(name, source.path(name)); // "config.json" "../shared/fixtures/gemma3-tiny-a/config.json"
 * ```
 */
export function fileInDir(path: string): { readonly source: FileSource; readonly name: string } {
  const cut = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1;
  return { source: dirSource(path.slice(0, cut)), name: path.slice(cut) };
}
