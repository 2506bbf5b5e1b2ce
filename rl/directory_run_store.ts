/**
 * A training run kept in a browser directory: {@linkcode DirectoryRunStore}, the
 * `RunFolderStore` (`run_folder.ts`) over a directory handle (`directory_files.ts`) — the
 * origin-private file system or a folder the user picked. It writes the Deno run folder's
 * layout and formats exactly (`pipeline.json`, `eval.json`, `report.html`, `config.json`,
 * `metrics.jsonl`, `samples.jsonl`, `vocab_map.json`, `checkpoints/<phase>/step-<N>/` with
 * safetensors and `state.json`, `export/<phase>/`), so a run copied to disk is read by the Deno
 * tools, and a Deno run folder copied into a directory is read here.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { directoryRunFiles, type WritableDirectoryHandle } from "./directory_files.ts";
import { RunFolderStore } from "./run_folder.ts";

/** Options of {@linkcode DirectoryRunStore.open}. */
export interface DirectoryRunStoreOptions {
  /**
   * The run folder's name in the store's references (`runDir`, checkpoint and export folders in
   * `pipeline.json`: `<label>/checkpoints/sft/step-4`). Default: the handle's name, or `"opfs"`
   * for the origin-private root (whose name is empty). A run copied to disk as `./<label>`
   * resumes there with the Deno `train()`, as any run folder whose references name it.
   */
  readonly label?: string;
}

/**
 * A `RunStore` in a browser directory (File System standard handles). Atomic: each file's
 * replacement and each appended JSONL line (`createWritable()` commits on `close()`); a
 * checkpoint folder counts once its `state.json`, written last, exists; an export folder is
 * rewritten in place (see `directory_files.ts`). One writer per run folder at a time.
 *
 * @example
 * ```ts ignore
 * // in a browser page (see train.ts for the config)
 * const root = await navigator.storage.getDirectory();
 * const store = await DirectoryRunStore.open(await root.getDirectoryHandle("run-1", { create: true }));
 * if (await store.readConfig() === null) await store.writeConfig(config); // for the Deno tools
 * const result = await train(config, {
 *   store,
 *   tokenizer,
 *   onEvent: async () => (frame.srcdoc = await renderRunReport(store, { config })),
 * });
 * store.close();
 * ```
 */
export class DirectoryRunStore extends RunFolderStore {
  /** The run folder's handle. */
  readonly directory: WritableDirectoryHandle;

  private constructor(directory: WritableDirectoryHandle, label: string) {
    super(directoryRunFiles(directory, label), label);
    this.directory = directory;
  }

  /**
   * Opens a run folder: `metrics.jsonl` and `samples.jsonl` are created when missing and
   * appended to; a folder that holds a run is resumed by `train()`.
   *
   * @param directory The run folder's handle (a `FileSystemDirectoryHandle`).
   * @param options The label of its references.
   * @returns The store; {@linkcode RunFolderStore.close} it when the run ends.
   * @throws {FieldError} For an empty label or one ending in `/` (field `label`).
   */
  static async open(
    directory: WritableDirectoryHandle,
    options: DirectoryRunStoreOptions = {},
  ): Promise<DirectoryRunStore> {
    const label = options.label ?? (directory.name || "opfs");
    if (label === "" || /[/\\]$/.test(label)) {
      throw new FieldError(
        "label",
        `the run folder label must be a non-empty name not ending in "/", got ${
          JSON.stringify(label)
        }`,
      );
    }
    const store = new DirectoryRunStore(directory, label);
    await store.openLineSinks();
    return store;
  }
}
