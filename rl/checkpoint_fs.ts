/**
 * Training checkpoints on disk (Deno): atomic save into `<runDir>/step-<N>/`, keep-last-N
 * pruning, finding the newest complete checkpoint and loading one. The format is described in
 * `checkpoint.ts`; the logic, shared with browser directories, is `checkpoint_folder.ts` over
 * `fsRunFiles` (`run_files_fs.ts`).
 *
 * Atomicity: everything is written into `step-<N>.tmp-<id>/` (each file fsynced), the folder
 * is renamed to `step-<N>/`, then the run folder is fsynced. A crash leaves at most a temporary
 * folder, which listing ignores and the next save removes. Pruned (and replaced) checkpoints are
 * first renamed to `step-<N>.old-<id>/`, so a half-deleted folder is never mistaken for a
 * complete one. One writer per run folder at a time.
 *
 * @module
 */

import type { CheckpointInput, LoadedCheckpoint, SaveCheckpointOptions } from "./checkpoint.ts";
import { CheckpointFolder, loadCheckpointFrom } from "./checkpoint_folder.ts";
import { fsRunFiles } from "./run_files_fs.ts";

/**
 * Removes leftover temporary folders (`step-<N>.tmp-…`, `step-<N>.old-…`) of interrupted saves.
 *
 * @param runDir The run folder.
 * @returns The names removed.
 */
export function removeCheckpointTemps(runDir: string): Promise<string[]> {
  return new CheckpointFolder(fsRunFiles, runDir).removeTemps();
}

/**
 * Complete checkpoints of a run (folders `step-<N>` holding `state.json`), oldest first.
 * Temporary folders are ignored.
 *
 * @param runDir The run folder (missing → empty list).
 * @returns Steps and paths.
 */
export function listCheckpoints(
  runDir: string,
): Promise<{ readonly step: number; readonly path: string }[]> {
  return new CheckpointFolder(fsRunFiles, runDir).list();
}

/**
 * The newest complete checkpoint of a run.
 *
 * @param runDir The run folder.
 * @returns Its path, or null when there is none.
 * @example
 * ```ts ignore
 * const path = await latestCheckpoint("runs/sft");
 * if (path) restoreParams(model.lora!.parameters(), await loadCheckpoint(path));
 * ```
 */
export function latestCheckpoint(runDir: string): Promise<string | null> {
  return new CheckpointFolder(fsRunFiles, runDir).latest();
}

/**
 * Saves a checkpoint atomically into `<runDir>/step-<step>/` (replacing one of the same step),
 * then prunes to the newest `keep`. Leftover temporary folders are removed first.
 *
 * @param runDir The run folder (created when missing).
 * @param input Step, parameters, optimizer state and JSON trainer fields.
 * @param options `keep` (default 3).
 * @returns The checkpoint folder.
 * @throws {CheckpointError} `invalid_input` (nothing is written) or `io` (the temporary folder
 *   is removed; earlier checkpoints are untouched).
 * @example
 * ```ts ignore
 * await saveCheckpoint("runs/sft", {
 *   step, params: model.lora!.parameters(), optimizerState: await optimizer.state(),
 *   rng: sampler.state(), dataPosition: batches.state(), config, metrics: { loss },
 * }, { keep: 3 });
 * ```
 */
export function saveCheckpoint(
  runDir: string,
  input: CheckpointInput,
  options: SaveCheckpointOptions = {},
): Promise<string> {
  return new CheckpointFolder(fsRunFiles, runDir).save(input, options);
}

/**
 * Deletes all but the newest `keep` complete checkpoints (each renamed to a temporary name
 * before removal, so a crash never leaves a half-deleted `step-<N>`).
 *
 * @param runDir The run folder.
 * @param keep How many to keep.
 * @param protect A step never to delete (the one just written).
 * @returns The steps deleted.
 */
export function pruneCheckpoints(
  runDir: string,
  keep: number,
  protect: number | null = null,
): Promise<number[]> {
  return new CheckpointFolder(fsRunFiles, runDir).prune(keep, protect);
}

/**
 * Loads a checkpoint folder: `state.json`, parameters and (when saved) optimizer moments,
 * checked against `state.json` (names, shapes, dtypes, file sizes).
 *
 * @param dir A `step-<N>` folder (e.g. from {@linkcode latestCheckpoint}).
 * @returns Everything saved; pass `optimizerState` to `AdamW.loadState` and the checkpoint to
 *   `restoreParams`.
 * @throws {CheckpointError} `missing` or `corrupt`, naming the file; `non_finite` naming the
 *   file and the tensor (a parameter or an AdamW moment) that holds NaN or ±Infinity.
 */
export function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  return loadCheckpointFrom(fsRunFiles, dir);
}
