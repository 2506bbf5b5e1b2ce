/**
 * Exports on disk (Deno only): {@linkcode writeExportFolder} writes an export's files into a
 * folder as a whole — every file into a temporary sibling folder (each fsynced), then one rename
 * over the old folder — and {@linkcode fileExportFile} streams a file from disk into an export
 * (a base model's tokenizer files).
 *
 * @module
 */

import { dirName, joinPath, syncDir, writeFileAtomic } from "../base/atomic_fs.ts";
import { checkExportFileName, type ExportFile } from "./export_files.ts";

/**
 * Writes an export folder atomically as a whole: the files go into `<dir>.tmp-<random>` (each
 * written and fsynced), which then replaces `dir` (an old `dir` is moved aside first and removed
 * after). A reader sees the old folder or the complete new one; a crash leaves at most a
 * `.tmp-` or `.old-` sibling.
 *
 * @param dir The export folder, e.g. `runs/x/export/grpo`.
 * @param files The files (names as {@linkcode checkExportFileName} allows).
 * @returns `dir`.
 * @throws {ExportError} For a bad file name (nothing is written); write errors pass through
 *   (the temporary folder is removed).
 * @example
 * ```ts
 * import { writeExportFolder } from "./export_fs.ts";
 * import { textExportFile } from "./export_files.ts";
 * const root = await Deno.makeTempDir();
 * await writeExportFolder(`${root}/export/sft`, [textExportFile("merged/a.txt", "hi")]);
 * console.log(await Deno.readTextFile(`${root}/export/sft/merged/a.txt`)); // "hi"
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function writeExportFolder(
  dir: string,
  files: readonly ExportFile[],
): Promise<string> {
  for (const f of files) checkExportFileName(f.name);
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
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  const old = `${dir}.old-${suffix}`;
  let moved = false;
  try {
    await Deno.rename(dir, old);
    moved = true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await Deno.rename(tmp, dir);
  await syncDir(parent);
  if (moved) await Deno.remove(old, { recursive: true });
  return dir;
}

/**
 * A file on disk as an export file, read in 1 MiB chunks while the export is written.
 *
 * @param name Path inside the export folder.
 * @param path The file to copy.
 * @returns The export file.
 * @example
 * ```ts ignore
 * const file = fileExportFile("tokenizer.json", "models/gemma-3-1b-it/tokenizer.json");
 * ```
 */
export function fileExportFile(name: string, path: string | URL): ExportFile {
  checkExportFileName(name);
  return {
    name,
    async *chunks() {
      const file = await Deno.open(path, { read: true });
      try {
        const buffer = new Uint8Array(1 << 20);
        for (;;) {
          const n = await file.read(buffer);
          if (n === null) return;
          yield buffer.slice(0, n);
        }
      } finally {
        file.close();
      }
    },
  };
}
