/**
 * Training checkpoints in a folder of any {@linkcode RunFiles} backend (the disk in Deno, a
 * browser directory handle): saving `step-<N>/` (its files encoded while they are written, one
 * tensor at a time), listing the complete ones, keep-N pruning, removing crash leftovers and
 * loading. The format is described in `checkpoint.ts`; `checkpoint_fs.ts` is these functions on
 * disk.
 *
 * A checkpoint folder is complete when it holds `state.json`, which is written last: on disk
 * the folder is also renamed into place as a whole, on a directory handle it is written in
 * place. Pruning removes a folder so that it never looks complete half-deleted.
 *
 * @module
 */

import {
  openSafetensorsFrom,
  SafetensorsError,
  type SafetensorsFile,
} from "../model/safetensors.ts";
import { findNonFinite } from "../model/safetensors_dtype.ts";
import {
  checkCheckpointInput,
  CHECKPOINT_OPTIMIZER_FILE,
  CHECKPOINT_PARAMS_FILE,
  CHECKPOINT_STATE_FILE,
  checkpointDirName,
  CheckpointError,
  type CheckpointInput,
  type CheckpointStateJson,
  checkpointStepsToKeep,
  formatCheckpointState,
  type HostTensor,
  isTemporaryCheckpointDirName,
  type LoadedCheckpoint,
  momentTensorName,
  parseCheckpointDirName,
  parseCheckpointState,
  type SaveCheckpointOptions,
} from "./checkpoint.ts";
import { type ExportFile, type ExportTensor, safetensorsExportFile } from "./export_files.ts";
import type { AdamWState } from "./optimizer.ts";
import { joinRunPath, type RunFiles } from "./run_files.ts";

/** A complete checkpoint found by {@linkcode CheckpointFolder.list}. */
export interface CheckpointListing {
  /** Its step. */
  readonly step: number;
  /** Its folder. */
  readonly path: string;
}

/** The files of a checkpoint, `state.json` last; tensors are read only while written. */
function checkpointFiles(input: CheckpointInput): ExportFile[] {
  const params = [...input.params];
  const paramsFile = safetensorsExportFile(
    CHECKPOINT_PARAMS_FILE,
    params.map(([name, t]): ExportTensor => ({
      name,
      dtype: "F32",
      shape: t.shape,
      read: async () => (await t.read()) as Float32Array,
    })),
  );
  const out: ExportFile[] = [paramsFile];
  const sizes: Record<string, number> = { [CHECKPOINT_PARAMS_FILE]: paramsFile.size };
  const opt = input.optimizerState ?? null;
  if (opt) {
    const tensors: ExportTensor[] = [];
    for (const [name, t] of params) {
      const mv = opt.moments.get(name);
      if (!mv) continue;
      for (const which of ["m", "v"] as const) {
        tensors.push({
          name: momentTensorName(which, name),
          dtype: "F32",
          shape: t.shape,
          read: () => Promise.resolve(mv[which]),
        });
      }
    }
    const optFile = safetensorsExportFile(CHECKPOINT_OPTIMIZER_FILE, tensors);
    out.push(optFile);
    sizes[CHECKPOINT_OPTIMIZER_FILE] = optFile.size;
  }
  const state = (): CheckpointStateJson => ({
    step: input.step,
    optimizerStepCount: opt ? opt.stepCount : null,
    rng: input.rng ?? null,
    dataPosition: input.dataPosition ?? null,
    config: input.config ?? null,
    metrics: input.metrics ?? null,
    trainerState: input.trainerState ?? null,
    params: params.map(([n, t]) => ({ name: n, shape: [...t.shape] })),
    files: sizes,
    savedAt: new Date().toISOString(),
  });
  out.push({
    name: CHECKPOINT_STATE_FILE,
    async *chunks() {
      yield new TextEncoder().encode(formatCheckpointState(state()));
    },
  });
  return out;
}

/**
 * The checkpoints of one training phase: a folder of `step-<N>/` folders.
 *
 * @example
 * ```ts
 * import { CheckpointFolder, loadCheckpointFrom } from "./checkpoint_folder.ts";
 * import { fsRunFiles } from "./run_files_fs.ts";
 * import type { Tensor } from "../kernels/tensor.ts";
 * const w = { dtype: "f32", shape: [2], numel: 2, read: () => Promise.resolve(new Float32Array([1, 2])) };
 * const dir = await Deno.makeTempDir();
 * const folder = new CheckpointFolder(fsRunFiles, dir);
 * for (const step of [1, 2, 3]) {
 *   await folder.save({ step, params: new Map([["w", w as unknown as Tensor]]) }, { keep: 2 });
 * }
 * console.log((await folder.list()).map((c) => c.step)); // [2, 3]
 * console.log((await loadCheckpointFrom(fsRunFiles, (await folder.latest())!)).step); // 3
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class CheckpointFolder {
  /** The backend. */
  readonly files: RunFiles;
  /** The folder holding `step-<N>/`. */
  readonly dir: string;

  /**
   * @param files The backend.
   * @param dir The folder holding `step-<N>/` (created by the first save).
   */
  constructor(files: RunFiles, dir: string) {
    this.files = files;
    this.dir = dir;
  }

  /**
   * Removes leftover temporary folders (`step-<N>.tmp-…`, `step-<N>.old-…`) of interrupted
   * saves.
   *
   * @returns The names removed, sorted.
   */
  async removeTemps(): Promise<string[]> {
    const removed: string[] = [];
    for (const e of await this.files.list(this.dir)) {
      if (e.kind === "directory" && isTemporaryCheckpointDirName(e.name)) {
        await this.files.remove(joinRunPath(this.dir, e.name));
        removed.push(e.name);
      }
    }
    return removed.sort();
  }

  /**
   * The complete checkpoints (folders `step-<N>` holding `state.json`), oldest first.
   *
   * @returns Steps and folders (empty when the folder does not exist).
   */
  async list(): Promise<CheckpointListing[]> {
    const out: CheckpointListing[] = [];
    for (const e of await this.files.list(this.dir)) {
      const step = e.kind === "directory" ? parseCheckpointDirName(e.name) : null;
      if (step === null) continue;
      const path = joinRunPath(this.dir, e.name);
      if (await this.files.kind(joinRunPath(path, CHECKPOINT_STATE_FILE)) === "file") {
        out.push({ step, path });
      }
    }
    return out.sort((a, b) => a.step - b.step);
  }

  /** @returns The newest complete checkpoint's folder, or null when there is none. */
  async latest(): Promise<string | null> {
    return (await this.list()).at(-1)?.path ?? null;
  }

  /**
   * Saves a checkpoint as `step-<step>/` (replacing one of the same step), then prunes to the
   * newest `keep`. Leftover temporary folders are removed first.
   *
   * @param input Step, parameters, optimizer state and JSON trainer fields.
   * @param options `keep` (default 3).
   * @returns The checkpoint folder.
   * @throws {CheckpointError} `invalid_input` (nothing is written) or `io` (nothing is left
   *   under the new folder's name; earlier steps are untouched).
   */
  async save(input: CheckpointInput, options: SaveCheckpointOptions = {}): Promise<string> {
    const keep = options.keep ?? 3;
    checkCheckpointInput(input, keep);
    const final = joinRunPath(this.dir, checkpointDirName(input.step));
    try {
      await this.removeTemps();
      await this.files.writeFolder(final, checkpointFiles(input), {
        marker: CHECKPOINT_STATE_FILE,
      });
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      throw new CheckpointError(
        "io",
        final,
        `saving failed, nothing was written: ${(e as Error).message}`,
      );
    }
    await this.prune(keep, input.step);
    return final;
  }

  /**
   * Deletes all but the newest `keep` complete checkpoints.
   *
   * @param keep How many to keep.
   * @param protect A step never to delete (the one just written).
   * @returns The steps deleted.
   */
  async prune(keep: number, protect: number | null = null): Promise<number[]> {
    const all = await this.list();
    const kept = checkpointStepsToKeep(all.map((c) => c.step), keep, protect);
    const deleted: number[] = [];
    for (const c of all) {
      if (kept.has(c.step)) continue;
      await this.files.removeFolder(c.path, { marker: CHECKPOINT_STATE_FILE });
      deleted.push(c.step);
    }
    return deleted;
  }
}

async function readTensor(st: SafetensorsFile, name: string, shape: readonly number[]) {
  const info = st.tensors.get(name);
  if (!info) throw new CheckpointError("corrupt", st.path, `tensor "${name}" is missing`);
  if (info.dtype !== "F32" || info.shape.join() !== shape.join()) {
    throw new CheckpointError(
      "corrupt",
      st.path,
      `tensor "${name}" must be F32 [${shape.join(", ")}], got ${info.dtype} [${
        info.shape.join(", ")
      }]`,
    );
  }
  const bytes = await st.read(name); // a fresh, aligned array of exactly this tensor
  const bad = findNonFinite("F32", bytes);
  if (bad !== null) {
    throw new CheckpointError(
      "non_finite",
      st.path,
      `tensor "${name}": element ${bad.index} is ${bad.value}; expected finite values (the ` +
        "file is damaged, or was saved from a run that diverged)",
    );
  }
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

async function openTensorFile(
  files: RunFiles,
  path: string,
  size: number | undefined,
): Promise<SafetensorsFile> {
  const reader = await files.openReader(path);
  if (reader === null) throw new CheckpointError("missing", path, "file is missing");
  if (size !== undefined && reader.size !== size) {
    reader.close();
    throw new CheckpointError(
      "corrupt",
      path,
      `file is ${reader.size} bytes, state.json recorded ${size}; the checkpoint is damaged`,
    );
  }
  try {
    return await openSafetensorsFrom(path, reader);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError("corrupt", path, e.message);
    throw e;
  }
}

/**
 * Loads a checkpoint folder: `state.json`, parameters and (when saved) optimizer moments,
 * checked against `state.json` (names, shapes, dtypes, file sizes).
 *
 * @param files The backend.
 * @param dir A `step-<N>` folder (e.g. from {@linkcode CheckpointFolder.latest}).
 * @returns Everything saved; pass `optimizerState` to `AdamW.loadState` and the checkpoint to
 *   `restoreParams`.
 * @throws {CheckpointError} `missing` or `corrupt`, naming the file; `non_finite` naming the
 *   file and the tensor (a parameter or an AdamW moment) that holds NaN or ±Infinity.
 * @example
 * ```ts
 * import { loadCheckpointFrom } from "./checkpoint_folder.ts";
 * import { fsRunFiles } from "./run_files_fs.ts";
 * const dir = await Deno.makeTempDir();
 * await loadCheckpointFrom(fsRunFiles, `${dir}/step-1`).catch((e) => console.log(e.code)); // "missing"
 * await Deno.remove(dir);
 * ```
 */
export async function loadCheckpointFrom(files: RunFiles, dir: string): Promise<LoadedCheckpoint> {
  const stateFile = joinRunPath(dir, CHECKPOINT_STATE_FILE);
  let text: string | null;
  try {
    text = await files.readText(stateFile);
  } catch (e) {
    throw new CheckpointError("io", stateFile, `cannot read: ${(e as Error).message}`);
  }
  if (text === null) throw new CheckpointError("missing", stateFile, "cannot read: no such file");
  const state = parseCheckpointState(text, stateFile);
  const params = new Map<string, HostTensor>();
  const st = await openTensorFile(
    files,
    joinRunPath(dir, CHECKPOINT_PARAMS_FILE),
    state.files[CHECKPOINT_PARAMS_FILE],
  );
  try {
    if (st.tensors.size !== state.params.length) {
      throw new CheckpointError(
        "corrupt",
        st.path,
        `holds ${st.tensors.size} tensors, state.json lists ${state.params.length}`,
      );
    }
    for (const { name, shape } of state.params) {
      params.set(name, Object.freeze({ shape, data: await readTensor(st, name, shape) }));
    }
  } finally {
    st.close();
  }
  let optimizerState: AdamWState | null = null;
  if (state.optimizerStepCount !== null) {
    const ost = await openTensorFile(
      files,
      joinRunPath(dir, CHECKPOINT_OPTIMIZER_FILE),
      state.files[CHECKPOINT_OPTIMIZER_FILE],
    );
    try {
      const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
      for (const { name, shape } of state.params) {
        if (!ost.tensors.has(momentTensorName("m", name))) continue;
        moments.set(name, {
          m: await readTensor(ost, momentTensorName("m", name), shape),
          v: await readTensor(ost, momentTensorName("v", name), shape),
        });
      }
      if (ost.tensors.size !== 2 * moments.size) {
        throw new CheckpointError(
          "corrupt",
          ost.path,
          `holds ${ost.tensors.size} tensors; expected m/ and v/ for ${moments.size} parameters`,
        );
      }
      optimizerState = Object.freeze({ stepCount: state.optimizerStepCount, moments });
    } finally {
      ost.close();
    }
  }
  return Object.freeze({
    path: dir,
    step: state.step,
    optimizerStepCount: state.optimizerStepCount,
    rng: state.rng,
    dataPosition: state.dataPosition,
    config: state.config,
    metrics: state.metrics,
    trainerState: state.trainerState,
    params,
    optimizerState,
  });
}
