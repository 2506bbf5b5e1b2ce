/**
 * The file operations a run folder needs, as one small interface: {@linkcode RunFiles}. The
 * run-folder logic (`run_folder.ts`: layout, JSONL rows, retention; `checkpoint_folder.ts`:
 * checkpoint encoding, listing, keep-N pruning) is written once over it, for two backends:
 * the disk in Deno (`fsRunFiles` in `run_files_fs.ts`) and a browser directory handle, the
 * origin-private file system or a folder the user picked (`directoryRunFiles` in
 * `directory_files.ts`).
 *
 * Paths are `/`-separated strings as the run store names them (`<runDir>/checkpoints/sft`);
 * each backend maps them to its files.
 *
 * @module
 */

import type { ByteRangeReader } from "../model/byte_readers.ts";
import type { ExportFile } from "./export_files.ts";
import type { LineSink } from "./metrics.ts";

/** What a path holds. */
export type RunFileKind = "file" | "directory";

/** One entry of a folder listing. */
export interface RunFileEntry {
  /** Its name in the folder. */
  readonly name: string;
  /** File or folder. */
  readonly kind: RunFileKind;
}

/** A {@linkcode LineSink} that appends to one file until closed. */
export interface ClosableLineSink extends LineSink {
  /**
   * Appends `line` and a newline.
   *
   * @param line One JSON line without a newline.
   * @returns Resolves once the line is stored.
   */
  append(line: string): Promise<void>;
  /** Closes the file; later appends throw. Idempotent. */
  close(): void;
}

/** Options of {@linkcode RunFiles.writeFolder} and {@linkcode RunFiles.removeFolder}. */
export interface FolderOptions {
  /**
   * The folder's commit marker: the file (the last one written) whose presence says the folder
   * is complete, e.g. a checkpoint's `state.json`. Backends that cannot rename a folder into
   * place (directory handles) write it last and remove it first, so readers that trust only
   * folders holding it never see a partial one.
   */
  readonly marker?: string;
}

/** File operations on a run folder. Missing paths read as null / an empty listing. */
export interface RunFiles {
  /**
   * @param path A path.
   * @returns Whether it is a file or a folder, or null when nothing is there.
   */
  kind(path: string): Promise<RunFileKind | null>;
  /**
   * @param path A file.
   * @returns Its text (UTF-8), or null when it does not exist.
   */
  readText(path: string): Promise<string | null>;
  /**
   * @param path A file.
   * @returns Random access to its bytes (close it when done), or null when it is not a file.
   */
  openReader(path: string): Promise<ByteRangeReader | null>;
  /**
   * Replaces a file's contents atomically: readers see the old text or the new, never a part.
   *
   * @param path The file; its folder must exist.
   * @param text The new contents (UTF-8).
   */
  writeText(path: string, text: string): Promise<void>;
  /**
   * Opens a file for appending lines (created when missing).
   *
   * @param path The file; its folder must exist.
   * @returns The sink.
   */
  openLineSink(path: string): Promise<ClosableLineSink>;
  /**
   * @param dir A folder.
   * @returns Its entries, in no particular order (empty when it does not exist).
   */
  list(dir: string): Promise<RunFileEntry[]>;
  /**
   * Removes a file or a folder with everything in it; nothing happens when it is missing.
   *
   * @param path The path.
   */
  remove(path: string): Promise<void>;
  /**
   * Replaces folder `dir` by `files`, written in order (parent folders are created). The Deno
   * backend writes them into a temporary sibling and renames it into place (readers see the old
   * folder or the whole new one); the directory-handle backend removes the old folder first and
   * writes in place, the marker last. On failure nothing is left under `dir`'s name but, on
   * the Deno backend, the old folder.
   *
   * @param dir The folder.
   * @param files The files; names are `file` or `folder/file` (see `checkExportFileName`).
   * @param options The commit marker.
   */
  writeFolder(dir: string, files: readonly ExportFile[], options?: FolderOptions): Promise<void>;
  /**
   * Removes a folder so that a crash never leaves it half-deleted under its own name (Deno:
   * renamed aside first; directory handles: the marker removed first).
   *
   * @param dir The folder.
   * @param options The commit marker.
   */
  removeFolder(dir: string, options?: FolderOptions): Promise<void>;
}

/**
 * Joins a run path and a name with `/` (a trailing separator on `dir` is not doubled).
 *
 * @param dir A folder path.
 * @param name A name or relative path.
 * @returns The path.
 * @example
 * ```ts
 * import { joinRunPath } from "./run_files.ts";
 * console.log(joinRunPath("runs/a/", "eval.json")); // "runs/a/eval.json"
 * ```
 */
export function joinRunPath(dir: string, name: string): string {
  return `${dir.replace(/[/\\]+$/, "")}/${name}`;
}
