/**
 * Exports on disk (Deno only): {@linkcode writeExportFolder} writes an export's files into a
 * folder as a whole (`RunFiles.writeFolder` of `run_files_fs.ts`: every file into a temporary
 * sibling folder, each fsynced, then one rename over the old folder) and
 * {@linkcode fileExportFile} streams a file from disk into an export (a base model's tokenizer
 * files).
 *
 * @module
 */

import { checkExportFileName, type ExportFile } from "./export_files.ts";
import { fsRunFiles } from "./run_files_fs.ts";

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
  await fsRunFiles.writeFolder(dir, files);
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
