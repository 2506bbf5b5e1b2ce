/// <reference lib="dom" />
/**
 * Where the demo page keeps a run: in memory, or in the origin-private file system (OPFS) as
 * the same run folder the Deno tools read, so a reload resumes it; and the model a finished run
 * exported, as a file source the generation panel can load.
 *
 * @module
 */

import {
  directoryHandleSource,
  DirectoryRunStore,
  type FileSource,
  MemoryRunStore,
  memorySource,
  type RunStore,
  type TrainConfig,
  type WritableDirectoryHandle,
} from "../web.ts";

/** OPFS folder holding the page's runs, one sub-folder per config. */
export const OPFS_RUNS_FOLDER = "webtune-runs";

/**
 * A run folder name for a config: `demo-<first 12 hex digits of SHA-256(config JSON)>`, so the
 * same config finds its run again after a reload.
 *
 * @param config The run's config.
 * @returns The folder name.
 */
export async function opfsRunName(config: TrainConfig): Promise<string> {
  const bytes = new TextEncoder().encode(JSON.stringify(config));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${config.preset}-${hex}`;
}

/**
 * Opens the OPFS run folder of a config (created on first use, with its `config.json`).
 *
 * @param config The run's config.
 * @returns The store: a new run, or the one a previous visit left (resumed by `train()`).
 * @throws {Error} When the browser has no origin-private file system.
 */
export async function openOpfsRunStore(config: TrainConfig): Promise<DirectoryRunStore> {
  if (!navigator.storage?.getDirectory) {
    throw new Error("this browser has no origin-private file system (navigator.storage)");
  }
  const root = await navigator.storage.getDirectory() as unknown as WritableDirectoryHandle;
  const runs = await root.getDirectoryHandle(OPFS_RUNS_FOLDER, { create: true });
  const name = await opfsRunName(config);
  const store = await DirectoryRunStore.open(
    await runs.getDirectoryHandle(name, { create: true }),
  );
  if (await store.readConfig() === null) await store.writeConfig(config);
  return store;
}

/**
 * The model the run exported last (GRPO's, else SFT's) as a file source, or null.
 *
 * @param store The run's store (memory or OPFS).
 * @returns The export folder.
 */
export async function trainedModelSource(store: RunStore): Promise<FileSource | null> {
  for (const phase of ["grpo", "sft"] as const) {
    if (store instanceof MemoryRunStore) {
      const files = store.exports.get(phase);
      if (files) return memorySource(files, { label: `the demo's ${phase} export` });
    } else if (store instanceof DirectoryRunStore) {
      try {
        const folder = await (await store.directory.getDirectoryHandle("export"))
          .getDirectoryHandle(phase);
        return directoryHandleSource(folder, {
          label: `the demo's ${phase} export (OPFS)`,
        });
      } catch {
        // no export of this phase
      }
    }
  }
  return null;
}
