/**
 * {@linkcode RunFiles} on disk (Deno): paths are file-system paths. Text files are replaced
 * atomically (temporary file, fsync, rename, folder fsync: `base/atomic_fs.ts`), lines are
 * appended with one write each (`FileLineSink`), and a folder is written into a temporary
 * sibling (`<dir>.tmp-<id>`, every file fsynced) that one rename puts in place, so readers see the
 * old folder or the whole new one; a crash leaves at most a `.tmp-` or `.old-` sibling.
 *
 * @module
 */

import {
  dirName,
  joinPath,
  statOrNull,
  syncDir,
  writeFileAtomic,
  writeTextAtomic,
} from "../base/atomic_fs.ts";
import type { ByteRangeReader } from "../model/byte_readers.ts";
import { fileReader } from "../model/safetensors_fs.ts";
import type { ExportFile } from "./export_files.ts";
import { FileLineSink } from "./metrics_fs.ts";
import type { FolderOptions, RunFileEntry, RunFileKind, RunFiles } from "./run_files.ts";

async function removeQuietly(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
}

async function writeFolder(
  dir: string,
  files: readonly ExportFile[],
  _options?: FolderOptions,
): Promise<void> {
  const parent = dirName(dir);
  await Deno.mkdir(parent, { recursive: true });
  const suffix = crypto.randomUUID().slice(0, 8);
  const tmp = `${dir}.tmp-${suffix}`;
  await Deno.mkdir(tmp);
  try {
    const folders = new Set<string>();
    for (const f of files) {
      const slash = f.name.indexOf("/");
      if (slash > 0 && !folders.has(f.name.slice(0, slash))) {
        folders.add(f.name.slice(0, slash));
        await Deno.mkdir(joinPath(tmp, f.name.slice(0, slash)));
      }
      await writeFileAtomic(joinPath(tmp, f.name), async (write) => {
        for await (const chunk of f.chunks()) await write(chunk);
      });
    }
    for (const folder of folders) await syncDir(joinPath(tmp, folder));
  } catch (e) {
    await removeQuietly(tmp);
    throw e;
  }
  const old = `${dir}.old-${suffix}`;
  let moved = false;
  try {
    await Deno.rename(dir, old);
    moved = true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      await removeQuietly(tmp);
      throw e;
    }
  }
  await Deno.rename(tmp, dir);
  await syncDir(parent);
  if (moved) await removeQuietly(old);
}

/**
 * The run-folder file operations on disk (Deno).
 *
 * @example
 * ```ts
 * import { fsRunFiles } from "./run_files_fs.ts";
 * const dir = await Deno.makeTempDir();
 * await fsRunFiles.writeText(`${dir}/a.json`, "{}\n");
 * console.log(await fsRunFiles.readText(`${dir}/a.json`)); // "{}\n"
 * console.log(await fsRunFiles.readText(`${dir}/missing.json`)); // null
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export const fsRunFiles: RunFiles = Object.freeze({
  async kind(path: string): Promise<RunFileKind | null> {
    const info = await statOrNull(path);
    return info?.isFile ? "file" : info?.isDirectory ? "directory" : null;
  },
  async readText(path: string): Promise<string | null> {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  },
  async openReader(path: string): Promise<ByteRangeReader | null> {
    return (await statOrNull(path))?.isFile ? await fileReader(path) : null;
  },
  writeText: writeTextAtomic,
  openLineSink: (path: string) => FileLineSink.open(path),
  async list(dir: string): Promise<RunFileEntry[]> {
    const out: RunFileEntry[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        out.push({ name: e.name, kind: e.isDirectory ? "directory" : "file" });
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out;
  },
  async remove(path: string): Promise<void> {
    try {
      await Deno.remove(path, { recursive: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  },
  writeFolder,
  async removeFolder(dir: string): Promise<void> {
    const old = `${dir}.old-${crypto.randomUUID()}`;
    await Deno.rename(dir, old);
    await syncDir(dirName(dir));
    await removeQuietly(old);
  },
});
