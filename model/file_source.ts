/**
 * A model folder as named files, in any runtime: {@linkcode FileSource} reads a file as text or
 * opens it for byte-range reads, so the loaders (`config.json`, safetensors checkpoints, PEFT
 * adapters, tokenizer files) are written once. Sources over in-memory bytes and `Blob`s
 * ({@linkcode memorySource}), a picked folder's `FileList` ({@linkcode fileListSource}) and a
 * `FileSystemDirectoryHandle` ({@linkcode directoryHandleSource}, {@linkcode opfsSource}) are
 * here; over HTTP in `file_source_http.ts`; over a Deno folder in `file_source_fs.ts`.
 *
 * File names are relative, `/`-separated (`model-00001-of-00002.safetensors`,
 * `adapter/adapter_config.json`).
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { blobReader, type ByteRangeReader, bytesReader } from "./byte_readers.ts";

/** What went wrong reading a {@linkcode FileSource}. */
export type FileSourceErrorCode =
  /** The file does not exist (HTTP 404/410, no such file or handle). */
  | "not_found"
  /** The server answered another HTTP error status. */
  | "http"
  /** The server ignored a `Range` request for a file too large to read whole. */
  | "range_unsupported"
  /** Any other failure (network, permissions, a file that changed). */
  | "io";

/** A file of a file source could not be read; names the file (its URL or path). */
export class FileSourceError extends FieldError {
  override readonly name: string = "FileSourceError";
  /** Machine-readable kind of problem. */
  readonly code: FileSourceErrorCode;
  /** The file concerned: its URL, path or name in the source. */
  readonly file: string;
  /** The HTTP status, when a server answered. */
  readonly status: number | null;
  /** The message without the file name. */
  readonly detail: string;

  /**
   * @param code Kind of problem.
   * @param file The file concerned.
   * @param detail What happened and what was expected.
   * @param status The HTTP status, if any.
   */
  constructor(
    code: FileSourceErrorCode,
    file: string,
    detail: string,
    status: number | null = null,
  ) {
    super(file, `${file}: ${detail}`);
    this.code = code;
    this.file = file;
    this.status = status;
    this.detail = detail;
  }
}

/** A model folder: named files, read whole as text or by byte ranges. */
export interface FileSource {
  /** The folder, for messages: a URL, a path, a picked folder's name. */
  readonly label: string;
  /**
   * @param name A file name in the folder.
   * @returns How messages name that file (its URL or path).
   */
  path(name: string): string;
  /**
   * @param name A file name in the folder.
   * @returns Whether it exists (and is a file).
   * @throws {FileSourceError} When the answer cannot be known (network, permissions).
   */
  exists(name: string): Promise<boolean>;
  /**
   * Reads a whole (small) file as UTF-8.
   *
   * @param name A file name in the folder.
   * @returns Its text.
   * @throws {FileSourceError} `not_found`, or another code naming the file.
   */
  readText(name: string): Promise<string>;
  /**
   * Opens a file for random-access reads (safetensors weights are read one tensor at a time).
   *
   * @param name A file name in the folder.
   * @returns A reader; close it when done.
   * @throws {FileSourceError} `not_found`, or another code naming the file.
   */
  openReader(name: string): Promise<ByteRangeReader>;
}

/**
 * Joins a folder and a name of a source (`""` is the source's root).
 *
 * @param folder A folder name, with or without a trailing `/`, or `""`.
 * @param name A file name in it.
 * @returns `folder/name`.
 * @example
 * ```ts
 * import { joinSourceName } from "./file_source.ts";
 * console.log(joinSourceName("adapter/", "adapter_config.json")); // "adapter/adapter_config.json"
 * ```
 */
export function joinSourceName(folder: string, name: string): string {
  const trimmed = folder.replace(/^(\.\/)+|\/+$/g, "");
  return trimmed === "" || trimmed === "." ? name : `${trimmed}/${name}`;
}

/**
 * A sub-folder of a source (e.g. an adapter kept beside the model).
 *
 * @param source The source.
 * @param folder A relative folder name (`""` or `"."` is the source itself).
 * @returns The sub-folder as a source.
 * @throws {FileSourceError} `io` for an absolute folder or one that leaves the source (`..`).
 * @example
 * ```ts
 * import { memorySource, subSource } from "./file_source.ts";
 * const root = memorySource({ "adapter/adapter_config.json": "{}" });
 * console.log(await subSource(root, "adapter").readText("adapter_config.json")); // "{}"
 * ```
 */
export function subSource(source: FileSource, folder: string): FileSource {
  const prefix = joinSourceName(folder, "").replace(/\/$/, "");
  if (prefix === "") return source;
  if (/^([/\\]|[A-Za-z]:)/.test(prefix) || prefix.split(/[/\\]/).includes("..")) {
    throw new FileSourceError(
      "io",
      source.path(prefix),
      "expected a folder relative to the model folder, inside it",
    );
  }
  const full = (name: string) => joinSourceName(prefix, name);
  return Object.freeze({
    label: source.path(prefix),
    path: (name: string) => source.path(full(name)),
    exists: (name: string) => source.exists(full(name)),
    readText: (name: string) => source.readText(full(name)),
    openReader: (name: string) => source.openReader(full(name)),
  });
}

/** The contents of one in-memory file: bytes, a `Blob`/`File`, or text. */
export type ModelFileData = Blob | ArrayBuffer | Uint8Array | string;

/** Options of {@linkcode memorySource} and {@linkcode fileListSource}. */
export interface MemorySourceOptions {
  /** Names the folder in messages (default `"memory"`, or the picked folder's name). */
  readonly label?: string;
}

/**
 * A model folder held in memory: file name → bytes, `Blob`/`File` (read by slices, never whole)
 * or text.
 *
 * @param files File name → contents (a `Map` or a plain object).
 * @param options The label for messages.
 * @returns The source.
 * @example
 * ```ts
 * import { memorySource } from "./file_source.ts";
 * const source = memorySource({
 *   "config.json": '{"model_type": "gemma3_text"}',
 *   "model.safetensors": new Blob([new Uint8Array(16)]),
 * });
 * const reader = await source.openReader("model.safetensors");
 * console.log(reader.size, await source.exists("tokenizer.json")); // 16 false
 * ```
 */
export function memorySource(
  files: ReadonlyMap<string, ModelFileData> | Readonly<Record<string, ModelFileData>>,
  options: MemorySourceOptions = {},
): FileSource {
  const map: ReadonlyMap<string, ModelFileData> = files instanceof Map
    ? new Map(files)
    : new Map(Object.entries(files));
  const label = options.label ?? "memory";
  const path = (name: string) => joinSourceName(label, name);
  const get = (name: string): ModelFileData => {
    const data = map.get(name);
    if (data === undefined) {
      throw new FileSourceError("not_found", path(name), `no such file among ${map.size} files`);
    }
    return data;
  };
  return Object.freeze({
    label,
    path,
    exists: (name: string) => Promise.resolve(map.has(name)),
    async readText(name: string): Promise<string> {
      const data = get(name);
      if (typeof data === "string") return data;
      if (data instanceof Blob) return await data.text();
      return new TextDecoder().decode(data);
    },
    openReader(name: string): Promise<ByteRangeReader> {
      return Promise.resolve().then(() => {
        const data = get(name);
        if (typeof data === "string") return bytesReader(new TextEncoder().encode(data));
        if (data instanceof Blob) return blobReader(data);
        return bytesReader(data instanceof Uint8Array ? data : new Uint8Array(data));
      });
    },
  });
}

/** A `File` as a folder picker (`<input type=file webkitdirectory>`) gives it. */
type PickedFile = File & { readonly webkitRelativePath?: string };

/**
 * The files of an `<input type=file webkitdirectory>` (or a multi-file picker) as a model folder.
 * Names come from `webkitRelativePath` without the picked folder's own name
 * (`gemma-3-1b-it/config.json` → `config.json`), or from `File.name` when the files carry no
 * folder path. Weights are read by `Blob` slices, never whole.
 *
 * @param files `input.files` (a `FileList`) or an array of `File`s.
 * @param options The label for messages (default: the picked folder's name).
 * @returns The source.
 * @example
 * ```ts
 * import { fileListSource } from "./file_source.ts";
 * const file = new File(["{}"], "config.json");
 * Object.defineProperty(file, "webkitRelativePath", { value: "my-model/config.json" });
 * const source = fileListSource([file]);
 * console.log(source.label, await source.readText("config.json")); // "my-model" "{}"
 * ```
 */
export function fileListSource(
  files: Iterable<File> | ArrayLike<File>,
  options: MemorySourceOptions = {},
): FileSource {
  const list = Array.from(files as ArrayLike<PickedFile>);
  const paths = list.map((f) => (f.webkitRelativePath || f.name).split(/[/\\]/));
  const root = paths[0]?.[0];
  const inFolder = paths.length > 0 && paths.every((p) => p.length > 1 && p[0] === root);
  const map = new Map<string, Blob>();
  list.forEach((f, i) => map.set((inFolder ? paths[i].slice(1) : paths[i]).join("/"), f));
  return memorySource(map, { label: options.label ?? (inFolder ? root : "selected files") });
}

/**
 * The part of `FileSystemDirectoryHandle` that {@linkcode directoryHandleSource} uses (the
 * browser's handles from `navigator.storage.getDirectory()` or `showDirectoryPicker()` fit).
 */
export interface DirectoryHandleLike {
  /** The folder's name. */
  readonly name: string;
  /** A sub-folder; rejects with a `NotFoundError`/`TypeMismatchError` `DOMException`. */
  getDirectoryHandle(name: string): Promise<DirectoryHandleLike>;
  /** A file; rejects with a `NotFoundError`/`TypeMismatchError` `DOMException`. */
  getFileHandle(name: string): Promise<{ getFile(): Promise<Blob> }>;
}

const MISSING_HANDLE = ["NotFoundError", "TypeMismatchError"];

/**
 * A folder of the File System API as a model folder: the origin-private file system (see
 * {@linkcode opfsSource}) or a folder the user picked with `showDirectoryPicker()`. Weights are
 * read by `Blob` slices of `getFile()`, never whole.
 *
 * @param handle The folder.
 * @param options The label for messages (default: the folder's name).
 * @returns The source.
 * @example
 * ```ts ignore
 * import { directoryHandleSource } from "./file_source.ts";
 * const source = directoryHandleSource(await showDirectoryPicker());
 * ```
 */
export function directoryHandleSource(
  handle: DirectoryHandleLike,
  options: MemorySourceOptions = {},
): FileSource {
  const label = options.label ?? handle.name;
  const path = (name: string) => joinSourceName(label, name);
  const getFile = async (name: string): Promise<Blob> => {
    const parts = name.split("/").filter((p) => p !== "" && p !== ".");
    try {
      let dir = handle;
      for (const part of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(part);
      return await (await dir.getFileHandle(parts.at(-1) ?? "")).getFile();
    } catch (e) {
      const missing = MISSING_HANDLE.includes((e as Error)?.name);
      throw new FileSourceError(
        missing ? "not_found" : "io",
        path(name),
        missing ? "no such file" : `cannot read: ${(e as Error)?.message ?? e}`,
      );
    }
  };
  return Object.freeze({
    label,
    path,
    async exists(name: string): Promise<boolean> {
      try {
        await getFile(name);
        return true;
      } catch (e) {
        if (e instanceof FileSourceError && e.code === "not_found") return false;
        throw e;
      }
    },
    readText: async (name: string) => await (await getFile(name)).text(),
    openReader: async (name: string) => blobReader(await getFile(name)),
  });
}

/**
 * A folder of the origin-private file system (`navigator.storage.getDirectory()`), where a page
 * can keep downloaded model files across visits.
 *
 * @param folder A `/`-separated folder under the OPFS root (`""` for the root).
 * @returns The source.
 * @throws {FileSourceError} `io` where OPFS is unavailable, `not_found` for a missing folder.
 * @example
 * ```ts ignore
 * import { opfsSource } from "./file_source.ts";
 * const source = await opfsSource("models/gemma-3-1b-it");
 * ```
 */
export async function opfsSource(folder = ""): Promise<FileSource> {
  const label = joinSourceName("opfs:", folder).replace(/\/$/, "");
  const storage = (globalThis as {
    navigator?: { storage?: { getDirectory?: () => Promise<DirectoryHandleLike> } };
  }).navigator?.storage;
  if (typeof storage?.getDirectory !== "function") {
    throw new FileSourceError(
      "io",
      label,
      "the origin-private file system (navigator.storage.getDirectory) is not available here",
    );
  }
  let dir = await storage.getDirectory();
  for (const part of folder.split("/").filter((p) => p !== "" && p !== ".")) {
    try {
      dir = await dir.getDirectoryHandle(part);
    } catch (e) {
      const missing = MISSING_HANDLE.includes((e as Error)?.name);
      throw new FileSourceError(
        missing ? "not_found" : "io",
        label,
        missing ? `no folder "${part}"` : `cannot open: ${(e as Error)?.message ?? e}`,
      );
    }
  }
  return directoryHandleSource(dir, { label });
}
