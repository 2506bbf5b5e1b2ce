/**
 * Building a run's config from files (Deno only): a JSON config file over a preset, flags and
 * `--set` overrides through `resolveTrainConfig`, the model found in the local Hugging Face hub
 * cache when no folder is given, and every input path checked, with errors that name the path
 * and how to get it.
 *
 * @module
 */

import { joinPath, statOrNull } from "../base/atomic_fs.ts";
import {
  defaultHubCacheDir,
  type HubCacheEnv,
  resolveDatasetFiles,
  type ResolveDatasetOptions,
} from "../data/dataset_fs.ts";
import { DatasetNotFoundError } from "../data/errors.ts";
import { GSM8K_REPO_IDS } from "../data/gsm8k_fs.ts";
import { OPEN_THOUGHTS_REPO_IDS } from "../data/open_thoughts_fs.ts";
import { MissingInputError } from "./pipeline_fs.ts";
import { resolveTrainConfig, type TrainConfigInput } from "./presets.ts";
import {
  createTrainConfig,
  DEMO_SOURCE,
  evalDataSource,
  INPUT_HINTS,
  requireInputs,
  type TrainConfig,
  TrainConfigError,
  usesEvalQuestions,
} from "./train_config.ts";

/** Options of {@linkcode resolveRunConfig}. */
export interface ResolveRunConfigOptions {
  /** Preset name; default: the config file's `"preset"`, else `defaultPreset`. */
  readonly preset?: string | null;
  /** Preset when neither `preset` nor the file names one (default `"demo"`). */
  readonly defaultPreset?: string;
  /** A JSON config file overriding the preset (may name its `"preset"`). */
  readonly configFile?: string | null;
  /** A partial config tree over the file (e.g. from dedicated command-line flags). */
  readonly flags?: TrainConfigInput;
  /** `path=value` overrides, applied last, in order. */
  readonly sets?: readonly string[];
  /** Environment variables locating the Hugging Face cache (default `Deno.env`). */
  readonly env?: HubCacheEnv;
  /** Receives informational lines (a cached checkpoint found, …). */
  readonly onNote?: (line: string) => void;
}

/**
 * Reads a JSON config file (a partial config tree).
 *
 * @param path The file.
 * @returns Its object.
 * @throws {MissingInputError} When the file does not exist (field `--config`).
 * @throws {TrainConfigError} When it is not JSON or not an object.
 */
export async function readTrainConfigFile(path: string): Promise<TrainConfigInput> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new MissingInputError("--config", path, `config file ${path} does not exist`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TrainConfigError("", `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TrainConfigError("", `${path} must hold a JSON object`);
  }
  return value as TrainConfigInput;
}

/**
 * Resolves a new run's config: preset < config file < flags < `--set` (through
 * `resolveTrainConfig`); then finds the model (in the Hugging Face cache when `model.path` is
 * not set) and checks every input path.
 *
 * @param options Preset, config file, flags, `--set` texts, hub cache environment.
 * @returns The config with `model.path` resolved.
 * @throws {TrainConfigError} Naming an invalid or unset field.
 * @throws {MissingInputError} Naming a missing path and how to get it.
 * @example
 * ```ts
 * import { resolveRunConfig } from "./train_config_fs.ts";
 * const config = await resolveRunConfig({ sets: ["grpo.beta=0.04"], env: {} });
 * if (config.preset !== "demo" || config.grpo.beta !== 0.04) throw new Error();
 * ```
 */
export async function resolveRunConfig(
  options: ResolveRunConfigOptions = {},
): Promise<TrainConfig> {
  const path = options.configFile ?? null;
  const file = path === null ? null : await readTrainConfigFile(path);
  const { preset: filePreset, ...fileTree } = file ?? {};
  if (filePreset !== undefined && typeof filePreset !== "string") {
    throw new TrainConfigError("preset", `preset in ${path} must be a string`);
  }
  const preset = options.preset ?? (filePreset as string | undefined) ??
    options.defaultPreset ?? "demo";
  let config = resolveTrainConfig({
    preset,
    file: fileTree,
    flags: options.flags,
    sets: options.sets,
  });
  const note = options.onNote ?? (() => {});
  const cacheDir = defaultHubCacheDir(options.env ?? Deno.env.toObject());
  if (config.model.path === null) {
    const found = await findHubModel(cacheDir, config.model.hubRepoId);
    if (found === null) {
      throw new TrainConfigError(
        "model.path",
        `model.path is not set and ${config.model.hubRepoId} is not in the Hugging Face ` +
          `cache (${cacheDir}): ${INPUT_HINTS.model}`,
      );
    }
    note(`using ${config.model.hubRepoId} from the Hugging Face cache: ${found}`);
    config = createTrainConfig({ ...config, model: { ...config.model, path: found } });
  } else if (config.model.path === DEMO_SOURCE) {
    const found = await findHubModel(cacheDir, config.model.hubRepoId);
    if (found !== null) {
      note(
        `note: found ${config.model.hubRepoId} in the Hugging Face cache (${found}); to train ` +
          `it instead of the demo: deno task train --preset gemma3-1b-gsm8k --model ${found} ` +
          "--sft-data <OpenThoughts-114k> --data <GSM8K>",
      );
    }
  }
  if (config.model.path !== DEMO_SOURCE) {
    const dir = await resolveModelDir(config.model.path!, config.model.hubRepoId);
    if (dir !== config.model.path) {
      config = createTrainConfig({ ...config, model: { ...config.model, path: dir } });
    }
  }
  requireInputs(config);
  await checkInputPaths(config);
  return config;
}

/**
 * Checks that the model folder and every data path an enabled phase reads exist, and that each
 * data path holds the files of the split it is read for (GSM8K train for GRPO and test for
 * evaluation, OpenThoughts train for SFT).
 *
 * @param config The config.
 * @throws {MissingInputError} Naming the field, the path and how to get the data.
 * @example
 * ```ts
 * import { checkInputPaths } from "./train_config_fs.ts";
 * import { presetConfig } from "./presets.ts";
 * await checkInputPaths(presetConfig("demo")); // the demo reads no files
 * ```
 */
export async function checkInputPaths(config: TrainConfig): Promise<void> {
  if (config.model.path !== null && config.model.path !== DEMO_SOURCE) {
    await resolveModelDir(config.model.path, config.model.hubRepoId);
  }
  const inputs: [string, string | null, boolean, string, ResolveDatasetOptions][] = [
    ["sft.data", config.sft.data, config.sft.enabled, INPUT_HINTS.sft, {
      repoIds: OPEN_THOUGHTS_REPO_IDS,
      configDirs: ["data"],
      split: "train",
    }],
    ["grpo.data", config.grpo.data, config.grpo.enabled, INPUT_HINTS.grpo, {
      repoIds: GSM8K_REPO_IDS,
      configDirs: ["main"],
      split: "train",
    }],
    ["eval.data", evalDataSource(config), usesEvalQuestions(config), INPUT_HINTS.eval, {
      repoIds: GSM8K_REPO_IDS,
      configDirs: ["main"],
      split: "test",
    }],
  ];
  for (const [field, path, used, hint, dataset] of inputs) {
    if (!used || path === null || path === DEMO_SOURCE) continue;
    await checkDataPath(field, path, hint);
    try {
      await resolveDatasetFiles(path, dataset);
    } catch (e) {
      if (!(e instanceof DatasetNotFoundError)) throw e;
      throw new MissingInputError(field, path, `${field}: ${e.message}; ${hint}`);
    }
  }
}

async function hasModelFiles(dir: string): Promise<boolean> {
  return (await statOrNull(joinPath(dir, "config.json")))?.isFile ?? false;
}

async function pickModelSnapshot(repoDir: string): Promise<string | null> {
  const snapshots = joinPath(repoDir, "snapshots");
  try {
    const hash = (await Deno.readTextFile(joinPath(joinPath(repoDir, "refs"), "main"))).trim();
    if (hash && await hasModelFiles(joinPath(snapshots, hash))) return joinPath(snapshots, hash);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(snapshots)) if (e.isDirectory) names.push(e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  for (const name of names.sort()) {
    if (await hasModelFiles(joinPath(snapshots, name))) return joinPath(snapshots, name);
  }
  return null;
}

/**
 * Finds a model in the Hugging Face hub cache:
 * `<cache>/models--<owner>--<name>/snapshots/<hash>` with `refs/main` naming the hash (else the
 * first snapshot, by name, that has a `config.json`).
 *
 * @param hubCacheDir The hub cache (see `defaultHubCacheDir` in `data/dataset_fs.ts`).
 * @param repoId E.g. `google/gemma-3-1b-it`.
 * @returns The snapshot folder, or null when not cached.
 */
export async function findHubModel(hubCacheDir: string, repoId: string): Promise<string | null> {
  return await pickModelSnapshot(joinPath(hubCacheDir, `models--${repoId.replaceAll("/", "--")}`));
}

/**
 * Resolves and checks a model folder: a folder with `config.json` and `*.safetensors`, or a
 * hub cache folder (`models--owner--name` or the cache root holding it for `repoId`) whose
 * snapshot is taken.
 *
 * @param path The `--model` path.
 * @param repoId Hub repo looked for under a cache root.
 * @returns The folder holding `config.json`.
 * @throws {MissingInputError} Naming the path and what is missing (field `model.path`).
 */
export async function resolveModelDir(path: string, repoId: string): Promise<string> {
  const how = `download it with \`huggingface-cli download ${repoId}\` and pass --model ` +
    "<the folder with config.json>";
  const info = await statOrNull(path);
  if (!info?.isDirectory) {
    throw new MissingInputError(
      "model.path",
      path,
      `model folder ${path} does not exist; ${how}`,
    );
  }
  let dir = path;
  if (!await hasModelFiles(dir)) {
    const nested = joinPath(dir, `models--${repoId.replaceAll("/", "--")}`);
    const repoDir = (await statOrNull(nested))?.isDirectory ? nested : dir;
    dir = await pickModelSnapshot(repoDir) ?? dir;
  }
  if (!await hasModelFiles(dir)) {
    throw new MissingInputError(
      "model.path",
      path,
      `${path} has no config.json: it is not a Hugging Face model folder; ${how}`,
    );
  }
  let weights = false;
  for await (const e of Deno.readDir(dir)) {
    if (e.name.endsWith(".safetensors") || e.name.endsWith(".safetensors.index.json")) {
      weights = true;
    }
  }
  if (!weights) {
    throw new MissingInputError(
      "model.path",
      path,
      `${dir} has no *.safetensors weights; ${how}`,
    );
  }
  return dir;
}

/**
 * Checks that a data path exists.
 *
 * @param field The config field it came from, e.g. `grpo.data`.
 * @param path The path.
 * @param hint How to get the data, appended to the message.
 * @throws {MissingInputError} Naming the field, the path and the hint.
 */
export async function checkDataPath(field: string, path: string, hint: string): Promise<void> {
  if (await statOrNull(path) === null) {
    throw new MissingInputError(field, path, `${field}: ${path} does not exist; ${hint}`);
  }
}
