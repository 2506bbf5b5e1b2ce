/**
 * {@linkcode RunFiles} over a browser directory handle (the File System standard): the
 * origin-private file system (`await navigator.storage.getDirectory()`) or a folder the user
 * picked (`showDirectoryPicker()`). The handle types are declared structurally here (the parts
 * used), so any object shaped like `FileSystemDirectoryHandle` works, and Deno tests can pass
 * an in-memory one.
 *
 * What is atomic: every file write goes through `createWritable()`, which writes a swap file
 * and replaces the file's contents when `close()` commits, so a file is read whole, old or new —
 * this holds for replaced files (JSON, report, rewritten JSONL) and for each appended line. A
 * file created for the first time is there, empty, until its first write commits (or for good,
 * when the page dies first), so an empty file reads as missing (`kind`, `readText`,
 * `openReader`; every file a run writes holds bytes once written). Folders
 * cannot be renamed through these handles, so a folder is written in place after the old one is
 * removed, its commit marker (a checkpoint's `state.json`) last; readers that trust only folders
 * holding the marker never see a partial one. An export folder being replaced is missing or
 * partial until the write ends.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { blobReader, type ByteRangeReader } from "../model/byte_readers.ts";
import type { ExportFile } from "./export_files.ts";
import type {
  ClosableLineSink,
  FolderOptions,
  RunFileEntry,
  RunFileKind,
  RunFiles,
} from "./run_files.ts";

/** The parts of `FileSystemWritableFileStream` the run files use. */
export interface WritableFileStream {
  /**
   * Writes at the cursor (into the swap file).
   *
   * @param data Text (written as UTF-8) or bytes.
   */
  write(data: string | Uint8Array<ArrayBuffer>): Promise<void>;
  /** @param position Moves the cursor. */
  seek(position: number): Promise<void>;
  /** Commits the written contents to the file. */
  close(): Promise<void>;
  /** @param reason Discards the written contents. */
  abort(reason?: unknown): Promise<void>;
}

/** The parts of `FileSystemFileHandle` the run files use. */
export interface WritableFileHandle {
  /** `"file"`. */
  readonly kind: "file";
  /** Its name in its folder. */
  readonly name: string;
  /** @returns A snapshot of the file's committed contents. */
  getFile(): Promise<Blob>;
  /**
   * @param options `keepExistingData`: start from the current contents (default: empty).
   * @returns A writable whose contents replace the file's on `close()`.
   */
  createWritable(options?: { keepExistingData?: boolean }): Promise<WritableFileStream>;
}

/** The parts of `FileSystemDirectoryHandle` the run files use. */
export interface WritableDirectoryHandle {
  /** `"directory"`. */
  readonly kind: "directory";
  /** Its name in its folder (empty for the origin-private root). */
  readonly name: string;
  /**
   * @param name A child folder's name.
   * @param options `create`: make it when missing.
   * @returns Its handle.
   */
  getDirectoryHandle(
    name: string,
    options?: { create?: boolean },
  ): Promise<WritableDirectoryHandle>;
  /**
   * @param name A file's name.
   * @param options `create`: make it (empty) when missing.
   * @returns Its handle.
   */
  getFileHandle(name: string, options?: { create?: boolean }): Promise<WritableFileHandle>;
  /**
   * @param name A child's name.
   * @param options `recursive`: also a folder that is not empty.
   */
  removeEntry(name: string, options?: { recursive?: boolean }): Promise<void>;
  /** @returns The children's handles. */
  values(): AsyncIterable<{ readonly kind: "file" | "directory"; readonly name: string }>;
}

const errorName = (e: unknown): unknown => (e as { name?: unknown } | null)?.name;
/** A missing entry, or one of the other kind (a file where a folder was asked for). */
const isMissing = (e: unknown): boolean =>
  errorName(e) === "NotFoundError" || errorName(e) === "TypeMismatchError";

async function writeChunks(
  file: WritableFileHandle,
  chunks: AsyncIterable<Uint8Array> | readonly string[],
): Promise<void> {
  const writable = await file.createWritable();
  try {
    for await (const chunk of chunks) {
      await writable.write(chunk as string | Uint8Array<ArrayBuffer>);
    }
  } catch (e) {
    await writable.abort(e).catch(() => {});
    throw e;
  }
  await writable.close();
}

/**
 * The run-folder file operations over a directory handle. Paths are `<label>/<path inside the
 * handle>`, as a run store whose `runDir` is `label` names them (`label` itself is the handle).
 * See the module notes for what is atomic.
 *
 * @param root The run folder's handle.
 * @param label The name its paths start with.
 * @returns The file operations.
 * @example
 * ```ts ignore
 * // needs a browser
 * const root = await navigator.storage.getDirectory();
 * const files = directoryRunFiles(await root.getDirectoryHandle("run-1", { create: true }), "run-1");
 * await files.writeText("run-1/notes.txt", "hello");
 * console.log(await files.readText("run-1/notes.txt")); // "hello"
 * ```
 */
export function directoryRunFiles(root: WritableDirectoryHandle, label: string): RunFiles {
  const parts = (path: string): string[] => {
    if (path === label) return [];
    if (!path.startsWith(`${label}/`)) {
      throw new FieldError("path", `${path} is not inside the run folder ${label}/ of this store`);
    }
    return path.slice(label.length + 1).split("/").filter((p) => p !== "");
  };
  /** The folder at `names`, or null when it is missing and not to be created. */
  const folder = async (names: readonly string[], create: boolean) => {
    let dir = root;
    for (const name of names) {
      try {
        dir = await dir.getDirectoryHandle(name, { create });
      } catch (e) {
        if (!create && isMissing(e)) return null;
        throw e;
      }
    }
    return dir;
  };
  /** The folder holding `path` and the last name of `path`. */
  const locate = async (path: string, create: boolean) => {
    const names = parts(path);
    const name = names.pop();
    if (name === undefined) throw new FieldError("path", `${path} is the run folder itself`);
    return { parent: await folder(names, create), name };
  };
  const existingParent = async (path: string) => {
    const { parent, name } = await locate(path, false);
    if (parent === null) {
      throw new FieldError("path", `${path}: its folder does not exist; expected an existing one`);
    }
    return { parent, name };
  };
  /** The committed contents of a file, or null (missing, or empty: see the module notes). */
  const committed = async (path: string): Promise<Blob | null> => {
    const { parent, name } = await locate(path, false);
    const file = parent && await parent.getFileHandle(name).catch((e) => {
      if (isMissing(e)) return null;
      throw e;
    });
    const blob = file && await file.getFile();
    return blob && blob.size > 0 ? blob : null;
  };
  const removeChild = async (parent: WritableDirectoryHandle, name: string) => {
    await parent.removeEntry(name, { recursive: true }).catch((e) => {
      if (errorName(e) !== "NotFoundError") throw e;
    });
  };
  const removeFolder = async (dir: string, options: FolderOptions = {}) => {
    const { parent, name } = await locate(dir, false);
    if (parent === null) return;
    if (options.marker !== undefined) {
      const old = await parent.getDirectoryHandle(name).catch((e) => {
        if (isMissing(e)) return null;
        throw e;
      });
      if (old !== null) await removeChild(old, options.marker);
    }
    await removeChild(parent, name);
  };

  return Object.freeze({
    async kind(path: string): Promise<RunFileKind | null> {
      const names = parts(path);
      const name = names.pop();
      if (name === undefined) return "directory";
      const parent = await folder(names, false);
      if (parent === null) return null;
      try {
        await parent.getDirectoryHandle(name);
        return "directory";
      } catch (e) {
        if (!isMissing(e)) throw e;
      }
      return await committed(path) === null ? null : "file";
    },
    async readText(path: string): Promise<string | null> {
      const blob = await committed(path);
      return blob && await blob.text();
    },
    async openReader(path: string): Promise<ByteRangeReader | null> {
      const blob = await committed(path);
      return blob && blobReader(blob);
    },
    async writeText(path: string, text: string): Promise<void> {
      const { parent, name } = await existingParent(path);
      await writeChunks(await parent.getFileHandle(name, { create: true }), [text]);
    },
    async openLineSink(path: string): Promise<ClosableLineSink> {
      const { parent, name } = await existingParent(path);
      const file = await parent.getFileHandle(name, { create: true });
      let queue: Promise<unknown> = Promise.resolve();
      let closed = false;
      // Each line is one committed write: the file's contents, then the line.
      const appendNow = async (line: string) => {
        const size = (await file.getFile()).size;
        const writable = await file.createWritable({ keepExistingData: true });
        try {
          await writable.seek(size);
          await writable.write(line + "\n");
        } catch (e) {
          await writable.abort(e).catch(() => {});
          throw e;
        }
        await writable.close();
      };
      return {
        append(line: string): Promise<void> {
          if (closed) return Promise.reject(new Error(`${path}: append after close()`));
          const run = () => appendNow(line);
          const result = queue.then(run, run);
          queue = result.catch(() => {});
          return result;
        },
        close(): void {
          closed = true;
        },
      };
    },
    async list(dir: string): Promise<RunFileEntry[]> {
      const handle = await folder(parts(dir), false);
      const out: RunFileEntry[] = [];
      if (handle === null) return out;
      for await (const child of handle.values()) out.push({ name: child.name, kind: child.kind });
      return out;
    },
    async remove(path: string): Promise<void> {
      const { parent, name } = await locate(path, false);
      if (parent !== null) await removeChild(parent, name);
    },
    async writeFolder(
      dir: string,
      files: readonly ExportFile[],
      options: FolderOptions = {},
    ): Promise<void> {
      const { parent, name } = await locate(dir, true);
      await removeFolder(dir, options);
      const last = files.filter((f) => f.name === options.marker);
      try {
        const out = await parent!.getDirectoryHandle(name, { create: true });
        for (const f of [...files.filter((f) => f.name !== options.marker), ...last]) {
          const slash = f.name.indexOf("/");
          const into = slash < 0
            ? out
            : await out.getDirectoryHandle(f.name.slice(0, slash), { create: true });
          const file = await into.getFileHandle(f.name.slice(slash + 1), { create: true });
          await writeChunks(file, f.chunks());
        }
      } catch (e) {
        await removeChild(parent!, name).catch(() => {});
        throw e;
      }
    },
    removeFolder,
  });
}
