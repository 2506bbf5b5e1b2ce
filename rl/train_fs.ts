/**
 * `train()` for Deno scripts: the run lives in a folder (`options.runDir`, or a new
 * `<run.outDir>/<timestamp>/`) — `config.json`, `pipeline.json`, `metrics.jsonl`,
 * `samples.jsonl`, `eval.json`, `report.html`, `checkpoints/` — and inputs are read from disk
 * (a model folder, GSM8K, OpenThoughts, Gemma 3's built-in tokenizer). A folder that already
 * holds a run is resumed. With `options.store` it is the runtime-neutral `train()` of
 * `train.ts`, reading inputs from disk.
 *
 * @module
 */

import { joinPath, statOrNull } from "../base/atomic_fs.ts";
import {
  createRunDir,
  FsRunStore,
  loadRunConfig,
  loadRunState,
  RUN_FILES,
  saveRunConfig,
} from "./pipeline_fs.ts";
import { fsInputSources } from "./run_inputs_fs.ts";
import { validateRunFs } from "./run_validation_fs.ts";
import { train as trainInStore, type TrainOptions, type TrainResult } from "./train.ts";
import { type TrainConfig, TrainConfigError } from "./train_config.ts";

export type { TrainOptions, TrainResult } from "./train.ts";

/** The first field path where two JSON trees differ, or null. */
function firstDifference(a: unknown, b: unknown, path = ""): string | null {
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) {
    return Object.is(a, b) ? null : path || "(root)";
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const d = firstDifference(
      (a as Record<string, unknown>)[k],
      (b as Record<string, unknown>)[k],
      path ? `${path}.${k}` : k,
    );
    if (d !== null) return d;
  }
  return null;
}

/** Saves `config.json` in a new run folder, or checks that an existing one holds `config`. */
async function prepareRunDir(runDir: string, config: TrainConfig): Promise<void> {
  if (await statOrNull(joinPath(runDir, RUN_FILES.config)) === null) {
    await Deno.mkdir(runDir, { recursive: true });
    await saveRunConfig(runDir, config);
    return;
  }
  const saved = await loadRunConfig(runDir);
  const field = firstDifference(
    JSON.parse(JSON.stringify(saved)),
    JSON.parse(JSON.stringify(config)),
  );
  if (field !== null) {
    throw new TrainConfigError(
      field,
      `${joinPath(runDir, RUN_FILES.config)} holds another config (${field} differs); resume ` +
        "a run with its own config: train(await loadRunConfig(runDir), { runDir })",
    );
  }
}

/**
 * Runs, or resumes, a training run in a folder (Deno). The run is checked first
 * (`validateRunFs`: paths, config, datasets, lengths, tokenizer), before any folder is made. A
 * new folder (or none: a new `<config.run.outDir>/<timestamp>/`) gets `config.json`; a folder
 * holding a run continues where it stopped (its `config.json` must equal `config`: pass
 * `await loadRunConfig(runDir)`), dropping metrics and samples written after the checkpoint
 * it continues from. Aborting `options.signal` saves a checkpoint and returns status
 * `interrupted`.
 *
 * @param config The run's config (`resolveTrainConfig`, `loadRunConfig`).
 * @param options `runDir` or `store`, `signal`, `onEvent`, and `tokenizer`, `sources`, `gpu`.
 * @returns Status, `eval.json`'s contents, the run folder and the final state.
 * @throws {TrainConfigError} When the folder holds a run with another config, or from
 *   `validateRunFs` (with `MissingInputError`, `InputSourceError`, `TokenizerMismatchError`):
 *   then no folder was made.
 * @example
 * ```ts
 * import { train } from "./train_fs.ts";
 * import { resolveTrainConfig } from "./presets.ts";
 * const config = resolveTrainConfig({
 *   preset: "demo",
 *   sets: ["sft.steps=2", "grpo.numBatches=1", "eval.numQuestions=2", "eval.maxNewTokens=4",
 *     "grpo.maxNewTokens=4", "grpo.batchSize=1", "grpo.numGenerations=2"],
 * });
 * const runDir = await Deno.makeTempDir();
 * const result = await train(config, { runDir });
 * console.log(result.status, result.eval); // "completed" { base: {…}, sft: {…}, grpo: {…} }
 * await Deno.remove(runDir, { recursive: true });
 * ```
 */
export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const sources = options.sources ?? fsInputSources({ tokenizer: options.tokenizer });
  if (options.store) {
    if (options.runDir !== undefined) {
      throw new TrainConfigError("runDir", "pass options.runDir or options.store, not both");
    }
    return await trainInStore(config, { ...options, sources });
  }
  const saved = options.runDir === undefined ? null : await loadRunState(options.runDir);
  let validated = options.validated?.config === config ? options.validated : undefined;
  // Checked before the folder is made or written (a completed run only re-renders its report).
  if (validated === undefined && saved?.status !== "completed") {
    validated = await validateRunFs(config, { sources });
  }
  const runDir = options.runDir ??
    await createRunDir(config.run.outDir, (options.now ?? (() => new Date()))());
  await prepareRunDir(runDir, config);
  const store = await FsRunStore.open(runDir);
  try {
    return await trainInStore(config, {
      ...options,
      runDir: undefined,
      store,
      sources: validated?.sources ?? sources,
      validated,
    });
  } finally {
    store.close();
  }
}
