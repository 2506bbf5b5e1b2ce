/**
 * What `deno task eval --model X` and `deno task generate --model X` load (Deno only): X may be
 * a run folder (`runs/<id>`: the export of its last finished training phase, or of `phase`), an
 * export folder (a PEFT adapter, whose base model is the run's `model.path` or its
 * `base_model_name_or_path`; a model folder, the demo's with its compact `vocab_map.json`), or
 * any Hugging Face Gemma 3 folder. A run's own evaluation settings come with it, so evaluating
 * a run's export repeats the run's evaluation.
 *
 * @module
 */

import { dirName, joinPath, statOrNull } from "../base/atomic_fs.ts";
import type { DemoSetOptions } from "../data/demo_set.ts";
import { checkModelDir, ModelDirError } from "../model/model_dir_fs.ts";
import { PEFT_CONFIG_FILE } from "../model/peft.ts";
import type { EvalConfig } from "./eval_config.ts";
import { loadRunConfig, RUN_FILES } from "./pipeline_fs.ts";
import {
  parsePipelineState,
  type PhaseName,
  type PipelineState,
  TRAINING_PHASES,
} from "./pipeline_state.ts";
import { evalDataSource, evalDecoding, type TrainConfig } from "./train_config.ts";

/** The run an export belongs to. */
export interface ExportRun {
  /** The run folder. */
  readonly dir: string;
  /** Its `config.json`. */
  readonly config: TrainConfig;
  /** The training phase of the export. */
  readonly phase: PhaseName;
  /** The export folder (`<dir>/export/<phase>`). */
  readonly export: string;
}

/** What to load for a `--model` path. */
export interface ModelSource {
  /** The Hugging Face model folder to load (`config.json` + weights). */
  readonly model: string;
  /** The PEFT adapter folder to apply, or null. */
  readonly adapter: string | null;
  /** The run the export came from, or null for other folders. */
  readonly run: ExportRun | null;
  /** What is loaded, for messages: `runs/x (grpo export)`, `base + adapter`, or the folder. */
  readonly label: string;
}

/** Options of {@linkcode resolveModelSource}. */
export interface ResolveModelSourceOptions {
  /** Run folders: the training phase whose export to load (`sft` or `grpo`; default the last
   * finished one). */
  readonly phase?: string | null;
  /** A PEFT adapter to apply to a plain model folder (`--adapter`). */
  readonly adapter?: string | null;
}

async function isFile(path: string): Promise<boolean> {
  return (await statOrNull(path))?.isFile ?? false;
}

/**
 * Whether a folder is a run folder (`config.json` and `pipeline.json`, as `deno task train`
 * makes them).
 *
 * @param path A path.
 * @returns True for a run folder.
 * @example
 * ```ts
 * import { isRunFolder } from "./export_source_fs.ts";
 * console.log(await isRunFolder("/no/such/run")); // false
 * ```
 */
export async function isRunFolder(path: string): Promise<boolean> {
  return await isFile(joinPath(path, RUN_FILES.config)) &&
    await isFile(joinPath(path, RUN_FILES.pipeline));
}

async function readState(runDir: string): Promise<PipelineState> {
  const path = joinPath(runDir, RUN_FILES.pipeline);
  return parsePipelineState(await Deno.readTextFile(path), path);
}

async function listExports(runDir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(joinPath(runDir, RUN_FILES.exports))) {
      if (e.isDirectory && (TRAINING_PHASES as readonly string[]).includes(e.name)) {
        names.push(e.name);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return names.sort();
}

/** Why a run folder has no export of `phase`, and what exists instead. */
async function missingExport(runDir: string, phase: string, state: PipelineState) {
  const existing = await listExports(runDir);
  const has = existing.length > 0
    ? `it has ${existing.map((p) => `export/${p}`).join(", ")} (pick one with --phase)`
    : "it has no export/ folder";
  let why: string;
  if (!state.phases.includes(phase as PhaseName)) {
    why = `the run has no ${phase} phase (phases: ${state.phases.join(", ")})`;
  } else if (!state.completed.includes(phase as PhaseName)) {
    const at = state.current ? ` at ${state.current.phase} step ${state.current.step}` : "";
    why = `the ${phase} phase has not finished (status ${state.status}${at}; finish it with ` +
      `deno task train --resume ${runDir})`;
  } else {
    why = `the ${phase} phase finished before webtune wrote exports`;
  }
  return new ModelDirError(`${runDir} has no export/${phase}: ${why}; ${has}`);
}

/** The run of an export folder `<run>/export/<phase>`, or null. */
async function runOfExport(dir: string): Promise<ExportRun | null> {
  const trimmed = dir.replace(/[/\\]+$/, "");
  const phase = trimmed.split(/[/\\]/).pop() ?? "";
  const exportsDir = dirName(trimmed);
  if (!(TRAINING_PHASES as readonly string[]).includes(phase)) return null;
  if (exportsDir.split(/[/\\]/).pop() !== RUN_FILES.exports) return null;
  const runDir = dirName(exportsDir);
  if (!(await isRunFolder(runDir))) return null;
  return {
    dir: runDir,
    config: await loadRunConfig(runDir),
    phase: phase as PhaseName,
    export: trimmed,
  };
}

/** An export folder (or any folder): the model and adapter to load. */
async function resolveFolder(
  dir: string,
  run: ExportRun | null,
  adapter: string | null,
): Promise<ModelSource> {
  const label = run ? `${run.dir} (${run.phase} export)` : dir;
  // subtle: a model folder may hold an adapter too (the test fixture); its model comes first
  const adapterOnly = await isFile(joinPath(dir, PEFT_CONFIG_FILE)) &&
    !(await isFile(joinPath(dir, "config.json")));
  if (adapterOnly) {
    if (adapter !== null) {
      throw new ModelDirError(
        `${dir} is a PEFT adapter folder; pass it as --adapter with --model <base model folder>, ` +
          `not with --adapter ${adapter}`,
      );
    }
    const base = run?.config.model.path ?? await adapterBase(dir);
    if (base === null || !(await statOrNull(joinPath(base, "config.json")))?.isFile) {
      throw new ModelDirError(
        `${dir} is a PEFT adapter whose base model ${JSON.stringify(base)} is not a local ` +
          `model folder: pass --model <base model folder> --adapter ${dir}`,
      );
    }
    return { model: base, adapter: dir, run, label };
  }
  await checkModelDir(dir);
  return { model: dir, adapter, run, label: adapter ? `${dir} + ${adapter}` : label };
}

async function adapterBase(dir: string): Promise<string | null> {
  try {
    const json = JSON.parse(await Deno.readTextFile(joinPath(dir, PEFT_CONFIG_FILE)));
    const base = json?.base_model_name_or_path;
    return typeof base === "string" && base !== "" ? base : null;
  } catch {
    return null;
  }
}

/**
 * Resolves a `--model` path: a run folder (its export of `options.phase`, default the last
 * finished training phase), an export folder (inside a run or moved elsewhere), or a Hugging
 * Face model folder (with `options.adapter`).
 *
 * @param path The path given.
 * @param options Export phase of a run folder; adapter of a model folder.
 * @returns The model folder, adapter, run and a label.
 * @throws {ModelDirError} For a missing folder, a run without the export (naming what it has
 *   and why), an adapter whose base model is not on disk, or a bad combination.
 * @example
 * ```ts ignore
 * import { resolveModelSource } from "./export_source_fs.ts";
 * const source = await resolveModelSource("runs/2026-05-01T12-00-00", { phase: "sft" });
 * // { model: "runs/…/export/sft", adapter: null, run: {…}, label: "runs/… (sft export)" }
 * ```
 */
export async function resolveModelSource(
  path: string,
  options: ResolveModelSourceOptions = {},
): Promise<ModelSource> {
  const info = await statOrNull(path);
  if (!info?.isDirectory) throw new ModelDirError(`model directory not found: ${path}`);
  const adapter = options.adapter ?? null;
  if (await isRunFolder(path)) {
    if (adapter !== null) {
      throw new ModelDirError(
        `${path} is a run folder: its exports bring their own adapter; drop --adapter ${adapter}`,
      );
    }
    const state = await readState(path);
    const wanted = options.phase ?? null;
    if (wanted !== null && !(TRAINING_PHASES as readonly string[]).includes(wanted)) {
      throw new ModelDirError(
        `--phase must be ${TRAINING_PHASES.join(" or ")} for a run folder, got ${wanted}`,
      );
    }
    const finished = state.completed.filter((p) => TRAINING_PHASES.includes(p));
    const phase = wanted ?? finished.at(-1) ?? null;
    if (phase === null) {
      const at = state.current ? ` at ${state.current.phase} step ${state.current.step}` : "";
      throw new ModelDirError(
        `${path} has no export yet: no training phase has finished (status ${state.status}` +
          `${at}); finish it with deno task train --resume ${path}`,
      );
    }
    const dir = joinPath(joinPath(path, RUN_FILES.exports), phase);
    if (!(await statOrNull(dir))?.isDirectory) throw await missingExport(path, phase, state);
    const run: ExportRun = {
      dir: path,
      config: await loadRunConfig(path),
      phase: phase as PhaseName,
      export: dir,
    };
    return await resolveFolder(dir, run, null);
  }
  return await resolveFolder(path, await runOfExport(path), adapter);
}

/** A run's evaluation settings, as `evaluateModelDir` takes them. */
export interface RunEvalSettings extends Omit<EvalConfig, "eosIds" | "systemPrompt"> {
  /** `eval.data` (else `grpo.data`): `"demo"` or a GSM8K path. */
  readonly data: string | null;
  /** The run's demo set (`demoData`), for `"demo"`. */
  readonly demoData: DemoSetOptions;
  /** `eval.numQuestions`. */
  readonly limit: number;
}

/**
 * The evaluation a run did after each phase, as settings: its questions (`eval.data` or
 * `grpo.data`, the first `eval.numQuestions`, the run's demo set), decoding (`eval.*`) and
 * seed (`run.seed`).
 *
 * @param config The run's config.
 * @returns The settings.
 * @example
 * ```ts
 * import { runEvalSettings } from "./export_source_fs.ts";
 * import { presetConfig } from "./presets.ts";
 * const s = runEvalSettings(presetConfig("demo"));
 * console.log(s.data, s.limit, s.batchSize); // "demo" 200 25
 * ```
 */
export function runEvalSettings(config: TrainConfig): RunEvalSettings {
  const { seed, trainSize, testSize, difficulty } = config.demoData;
  return {
    data: evalDataSource(config),
    demoData: { seed, trainSize, testSize, difficulty },
    limit: config.eval.numQuestions,
    ...evalDecoding(config),
  };
}
