/**
 * Training checkpoints on disk (Deno): atomic save into `<runDir>/step-<N>/`, keep-last-N
 * pruning, finding the newest complete checkpoint and loading one. The format is described in
 * `checkpoint.ts`.
 *
 * Atomicity: everything is written into `step-<N>.tmp-<id>/` (each file fsynced), the folder
 * is fsynced and renamed to `step-<N>/`, then the run folder is fsynced. A crash leaves at
 * most a temporary folder, which listing ignores and the next save removes. Pruned (and
 * replaced) checkpoints are first renamed to `step-<N>.old-<id>/`, so a half-deleted folder is
 * never mistaken for a complete one. One writer per run folder at a time.
 *
 * @module
 */

import { joinPath, syncDir, writeTextAtomic } from "../base/atomic_fs.ts";
import { SafetensorsError, type SafetensorsFile } from "../model/safetensors.ts";
import { findNonFinite } from "../model/safetensors_dtype.ts";
import {
  openSafetensors,
  type TensorSpec,
  writeSafetensorsStreaming,
} from "../model/safetensors_fs.ts";
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
import type { AdamWState } from "./optimizer.ts";

async function removeQuietly(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
}

/**
 * Removes leftover temporary folders (`step-<N>.tmp-…`, `step-<N>.old-…`) of interrupted saves.
 *
 * @param runDir The run folder.
 * @returns The names removed.
 */
export async function removeCheckpointTemps(runDir: string): Promise<string[]> {
  const removed: string[] = [];
  try {
    for await (const e of Deno.readDir(runDir)) {
      if (e.isDirectory && isTemporaryCheckpointDirName(e.name)) {
        await Deno.remove(joinPath(runDir, e.name), { recursive: true });
        removed.push(e.name);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return removed.sort();
}

/**
 * Complete checkpoints of a run (folders `step-<N>` holding `state.json`), oldest first.
 * Temporary folders are ignored.
 *
 * @param runDir The run folder (missing → empty list).
 * @returns Steps and paths.
 */
export async function listCheckpoints(
  runDir: string,
): Promise<{ readonly step: number; readonly path: string }[]> {
  const out: { step: number; path: string }[] = [];
  try {
    for await (const e of Deno.readDir(runDir)) {
      const step = e.isDirectory ? parseCheckpointDirName(e.name) : null;
      if (step === null) continue;
      const path = joinPath(runDir, e.name);
      const state = await Deno.stat(joinPath(path, CHECKPOINT_STATE_FILE)).catch(() => null);
      if (state?.isFile) out.push({ step, path });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a.step - b.step);
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
export async function latestCheckpoint(runDir: string): Promise<string | null> {
  return (await listCheckpoints(runDir)).at(-1)?.path ?? null;
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
export async function saveCheckpoint(
  runDir: string,
  input: CheckpointInput,
  options: SaveCheckpointOptions = {},
): Promise<string> {
  const keep = options.keep ?? 3;
  checkCheckpointInput(input, keep);
  const name = checkpointDirName(input.step);
  const final = joinPath(runDir, name);
  const tmp = joinPath(runDir, `${name}.tmp-${crypto.randomUUID()}`);
  try {
    await Deno.mkdir(runDir, { recursive: true });
    await removeCheckpointTemps(runDir);
    await Deno.mkdir(tmp);
    const params = [...input.params];
    const files: Record<string, number> = {};
    files[CHECKPOINT_PARAMS_FILE] = await writeSafetensorsStreaming(
      joinPath(tmp, CHECKPOINT_PARAMS_FILE),
      params.map(([n, t]): TensorSpec => ({ name: n, dtype: "F32", shape: t.shape })),
      async (i) => (await params[i][1].read()) as Float32Array,
      { format: "pt" },
    );
    const opt = input.optimizerState ?? null;
    if (opt) {
      const specs: TensorSpec[] = [], data: Float32Array[] = [];
      for (const [n, t] of params) {
        const mv = opt.moments.get(n);
        if (!mv) continue;
        specs.push({ name: momentTensorName("m", n), dtype: "F32", shape: t.shape });
        specs.push({ name: momentTensorName("v", n), dtype: "F32", shape: t.shape });
        data.push(mv.m, mv.v);
      }
      files[CHECKPOINT_OPTIMIZER_FILE] = await writeSafetensorsStreaming(
        joinPath(tmp, CHECKPOINT_OPTIMIZER_FILE),
        specs,
        (i) => data[i],
        { format: "pt" },
      );
    }
    const state: CheckpointStateJson = {
      step: input.step,
      optimizerStepCount: opt ? opt.stepCount : null,
      rng: input.rng ?? null,
      dataPosition: input.dataPosition ?? null,
      config: input.config ?? null,
      metrics: input.metrics ?? null,
      trainerState: input.trainerState ?? null,
      params: params.map(([n, t]) => ({ name: n, shape: [...t.shape] })),
      files,
      savedAt: new Date().toISOString(),
    };
    // state.json last: a folder with it is complete even without the folder rename.
    await writeTextAtomic(joinPath(tmp, CHECKPOINT_STATE_FILE), formatCheckpointState(state));
    await syncDir(tmp);
    let old: string | null = null;
    if (await Deno.stat(final).then(() => true, () => false)) {
      old = joinPath(runDir, `${name}.old-${crypto.randomUUID()}`);
      await Deno.rename(final, old);
    }
    await Deno.rename(tmp, final);
    await syncDir(runDir);
    if (old) await removeQuietly(old);
  } catch (e) {
    await removeQuietly(tmp);
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(
      "io",
      final,
      `saving failed, nothing was written: ${(e as Error).message}`,
    );
  }
  await pruneCheckpoints(runDir, keep, input.step);
  return final;
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
export async function pruneCheckpoints(
  runDir: string,
  keep: number,
  protect: number | null = null,
): Promise<number[]> {
  const all = await listCheckpoints(runDir);
  const kept = checkpointStepsToKeep(all.map((c) => c.step), keep, protect);
  const deleted: number[] = [];
  for (const c of all) {
    if (kept.has(c.step)) continue;
    const old = `${c.path}.old-${crypto.randomUUID()}`;
    await Deno.rename(c.path, old);
    await removeQuietly(old);
    deleted.push(c.step);
  }
  if (deleted.length > 0) await syncDir(runDir);
  return deleted;
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

async function openTensorFile(dir: string, file: string, size: number | undefined) {
  const path = joinPath(dir, file);
  const info = await Deno.stat(path).catch(() => null);
  if (!info?.isFile) throw new CheckpointError("missing", path, "file is missing");
  if (size !== undefined && info.size !== size) {
    throw new CheckpointError(
      "corrupt",
      path,
      `file is ${info.size} bytes, state.json recorded ${size}; the checkpoint is damaged`,
    );
  }
  try {
    return await openSafetensors(path);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError("corrupt", path, e.message);
    throw e;
  }
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
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const stateFile = joinPath(dir, CHECKPOINT_STATE_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(stateFile);
  } catch (e) {
    throw new CheckpointError(
      e instanceof Deno.errors.NotFound ? "missing" : "io",
      stateFile,
      `cannot read: ${(e as Error).message}`,
    );
  }
  const state = parseCheckpointState(text, stateFile);
  const params = new Map<string, HostTensor>();
  const st = await openTensorFile(dir, CHECKPOINT_PARAMS_FILE, state.files[CHECKPOINT_PARAMS_FILE]);
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
    const size = state.files[CHECKPOINT_OPTIMIZER_FILE];
    const ost = await openTensorFile(dir, CHECKPOINT_OPTIMIZER_FILE, size);
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
