/**
 * Resolving a new `deno task train` run's config from its flags: preset, config file, flags and
 * `--set` overrides; the model found in the Hugging Face cache when not given; every input path
 * checked. Private to `train.ts`.
 *
 * @module
 */

import { defaultHubCacheDir, type HubCacheEnv } from "../data/dataset_fs.ts";
import {
  checkDataPath,
  findHubModel,
  MissingInputError,
  resolveModelDir,
} from "../rl/pipeline_fs.ts";
import { resolveTrainConfig, type TrainConfigInput } from "../rl/presets.ts";
import {
  createTrainConfig,
  DEMO_SOURCE,
  evalDataSource,
  INPUT_HINTS,
  requireInputs,
  type TrainConfig,
  TrainConfigError,
} from "../rl/train_config.ts";

/** The flags of `deno task train` that feed the config. */
export interface ConfigFlags {
  /** `--preset`. */
  readonly preset: string | null;
  /** `--config`. */
  readonly config: string | null;
  /** `--model`. */
  readonly model: string | null;
  /** `--sft-data`. */
  readonly sftData: string | null;
  /** `--data`. */
  readonly data: string | null;
  /** `--out`. */
  readonly out: string | null;
  /** `--seed`. */
  readonly seed: number | null;
  /** `--set` texts, in order. */
  readonly sets: readonly string[];
}

/**
 * The dedicated flags as a config tree (`--data` feeds both GRPO and evaluation).
 *
 * @param args Parsed flags.
 * @returns A partial config tree.
 */
export function flagOverrides(args: ConfigFlags): TrainConfigInput {
  const tree: TrainConfigInput = {};
  if (args.model !== null) tree.model = { path: args.model };
  if (args.sftData !== null) tree.sft = { data: args.sftData };
  if (args.data !== null) {
    tree.grpo = { data: args.data };
    tree.eval = { data: args.data };
  }
  const run: TrainConfigInput = {};
  if (args.out !== null) run.outDir = args.out;
  if (args.seed !== null) run.seed = args.seed;
  if (Object.keys(run).length > 0) tree.run = run;
  return tree;
}

async function readConfigFile(path: string): Promise<TrainConfigInput> {
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
 * Resolves a new run's config from the flags: preset, file, flags, `--set`; then finds the
 * model (in the Hugging Face cache when no `--model` is given) and checks every input path.
 *
 * @param args Parsed flags (not `--resume`).
 * @param env Environment variables for the hub cache.
 * @param note Receives informational lines (a cached checkpoint found, …).
 * @returns The config with `model.path` resolved.
 * @throws {TrainConfigError} Naming an invalid or unset field.
 * @throws {MissingInputError} Naming a missing path and how to get it.
 */
export async function resolveNewRunConfig(
  args: ConfigFlags,
  env: HubCacheEnv,
  note: (line: string) => void,
): Promise<TrainConfig> {
  const file = args.config === null ? null : await readConfigFile(args.config);
  const { preset: filePreset, ...fileTree } = file ?? {};
  if (filePreset !== undefined && typeof filePreset !== "string") {
    throw new TrainConfigError("preset", `preset in ${args.config} must be a string`);
  }
  const preset = args.preset ?? (filePreset as string | undefined) ??
    (args.model !== null ? "gemma3-1b-gsm8k" : "demo");
  let config = resolveTrainConfig({
    preset,
    file: fileTree,
    flags: flagOverrides(args),
    sets: args.sets,
  });
  const cacheDir = defaultHubCacheDir(env);
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
 * Checks that the model folder and every data path an enabled phase reads exist.
 *
 * @param config The config.
 * @throws {MissingInputError} Naming the field, the path and how to get the data.
 */
export async function checkInputPaths(config: TrainConfig): Promise<void> {
  if (config.model.path !== null && config.model.path !== DEMO_SOURCE) {
    await resolveModelDir(config.model.path, config.model.hubRepoId);
  }
  const evals = config.eval.base || (config.sft.enabled && config.eval.afterSft) ||
    (config.grpo.enabled && config.eval.afterGrpo);
  const inputs: [string, string | null, boolean, string][] = [
    ["sft.data", config.sft.data, config.sft.enabled, INPUT_HINTS.sft],
    ["grpo.data", config.grpo.data, config.grpo.enabled, INPUT_HINTS.grpo],
    ["eval.data", evalDataSource(config), evals, INPUT_HINTS.eval],
  ];
  for (const [field, path, used, hint] of inputs) {
    if (used && path !== null && path !== DEMO_SOURCE) await checkDataPath(field, path, hint);
  }
}
