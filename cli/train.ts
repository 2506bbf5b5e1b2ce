/**
 * `deno task train`: SFT → GRPO → evaluation as one pipeline, configured by a preset, a JSON
 * config file and flags (flags override the file, which overrides the preset), with progress
 * lines, a run folder (`runs/<timestamp>/`) and a report. Ctrl-C saves a checkpoint and exits;
 * `--resume runs/<id>` continues.
 *
 *   deno task train                          # the demo: tiny model, built-in arithmetic set
 *   deno task train --preset gemma3-1b-gsm8k --model DIR --sft-data PATH --data PATH
 *   deno task train --resume runs/2026-05-01T12-00-00
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DatasetNotFoundError } from "../data/_common.ts";
import { defaultHubCacheDir, type HubCacheEnv } from "../data/dataset_fs.ts";
import { consoleProgressTarget } from "../rl/metrics_fs.ts";
import { MetricsLogger } from "../rl/metrics.ts";
import { type PhaseSet, type ProgressFactory, runPipeline } from "../rl/pipeline.ts";
import {
  checkDataPath,
  createRunDir,
  findHubModel,
  FsRunStore,
  loadRunConfig,
  MissingInputError,
  resolveModelDir,
  RUN_FILES,
  saveRunConfig,
} from "../rl/pipeline_fs.ts";
import { PipelineError, type PipelineState } from "../rl/pipeline_state.ts";
import { PRESET_NAMES, resolveTrainConfig, type TrainConfigInput } from "../rl/presets.ts";
import { ProgressReporter } from "../rl/progress.ts";
import {
  createTrainConfig,
  DEMO_SOURCE,
  evalDataSource,
  INPUT_HINTS,
  requireInputs,
  type TrainConfig,
  TrainConfigError,
} from "../rl/train_config.ts";
import { createPhases, PhaseNotImplementedError } from "./_phases.ts";

const USAGE = `usage: deno task train [--preset NAME] [--config FILE.json] [--model DIR]
       [--sft-data PATH] [--data PATH] [--out DIR] [--seed N] [--set path=value]...
       deno task train --resume RUN_DIR

  --preset NAME      ${PRESET_NAMES.join(" | ")} (default: demo, or gemma3-1b-gsm8k
                     when --model is given)
  --config FILE      JSON config overriding the preset (may name its "preset")
  --model DIR        Hugging Face Gemma 3 folder (config.json + *.safetensors)
  --sft-data PATH    OpenThoughts-114k file, folder or hub cache folder
  --data PATH        GSM8K file, folder or hub cache folder (train for GRPO, test for eval)
  --out DIR          parent of the run folder (default runs)
  --seed N           run seed
  --set path=value   any config field, e.g. --set grpo.beta=0.04 (repeatable; JSON values)
  --resume RUN_DIR   continue an interrupted run with its saved config

Precedence: preset < --config file < flags < --set. Ctrl-C saves a checkpoint and exits.`;

/** A command-line mistake: printed with the usage, exit code 2. */
export class TrainUsageError extends Error {
  /** @param message What is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "TrainUsageError";
  }
}

/** Parsed command line of `deno task train`. */
export interface TrainArgs {
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
  /** `--resume`. */
  readonly resume: string | null;
  /** `--seed`. */
  readonly seed: number | null;
  /** `--set` texts, in order. */
  readonly sets: readonly string[];
}

/**
 * Parses the command line.
 *
 * @param args Arguments after the script name.
 * @returns The options, or null for `--help`.
 * @throws {TrainUsageError} For unknown or malformed options, or config flags with `--resume`.
 * @example
 * ```ts
 * import { parseTrainArgs } from "./train.ts";
 * const a = parseTrainArgs(["--set", "grpo.beta=0.04", "--set", "run.seed=3"]);
 * if (a?.sets.length !== 2) throw new Error();
 * ```
 */
export function parseTrainArgs(args: readonly string[]): TrainArgs | null {
  let values;
  try {
    values = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        preset: { type: "string" },
        config: { type: "string" },
        model: { type: "string" },
        "sft-data": { type: "string" },
        data: { type: "string" },
        out: { type: "string" },
        resume: { type: "string" },
        seed: { type: "string" },
        set: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (err) {
    throw new TrainUsageError((err as Error).message);
  }
  if (values.help) return null;
  let seed: number | null = null;
  if (values.seed !== undefined) {
    seed = Number(values.seed);
    if (values.seed.trim() === "" || !Number.isSafeInteger(seed) || seed < 0) {
      throw new TrainUsageError(`--seed must be an integer >= 0, got "${values.seed}"`);
    }
  }
  const parsed: TrainArgs = Object.freeze({
    preset: values.preset ?? null,
    config: values.config ?? null,
    model: values.model ?? null,
    sftData: values["sft-data"] ?? null,
    data: values.data ?? null,
    out: values.out ?? null,
    resume: values.resume ?? null,
    seed,
    sets: Object.freeze([...(values.set ?? [])]),
  });
  if (parsed.resume !== null) {
    const others = ["preset", "config", "model", "sftData", "data", "out", "seed"]
      .filter((k) => parsed[k as keyof TrainArgs] !== null);
    if (others.length > 0 || parsed.sets.length > 0) {
      throw new TrainUsageError(
        "--resume continues a run exactly, with its saved config.json; drop the other options " +
          "(edit RUN_DIR/config.json to change the run)",
      );
    }
  }
  return parsed;
}

/**
 * The dedicated flags as a config tree (`--data` feeds both GRPO and evaluation).
 *
 * @param args Parsed flags.
 * @returns A partial config tree.
 */
export function flagOverrides(args: TrainArgs): TrainConfigInput {
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

/** What {@linkcode trainMain} uses from the outside world (injectable for tests). */
export interface TrainEnvironment {
  /** Environment variables deciding the Hugging Face cache. */
  readonly env: HubCacheEnv;
  /** Builds the phase implementations. */
  readonly createPhases: (config: TrainConfig, runDir: string) => Promise<PhaseSet>;
  /** Writes a line to stdout. */
  readonly out: (line: string) => void;
  /** Writes a line to stderr. */
  readonly err: (line: string) => void;
  /** Progress lines. */
  readonly progress: ProgressFactory;
  /**
   * Installs a Ctrl-C handler.
   *
   * @param handler Called on each Ctrl-C.
   * @returns Removes the handler.
   */
  readonly onInterrupt: (handler: () => void) => () => void;
  /** Clock. */
  readonly now: () => Date;
}

function defaultEnvironment(): TrainEnvironment {
  const target = consoleProgressTarget("stderr");
  return {
    env: Deno.env.toObject(),
    createPhases,
    out: (line) => console.log(line),
    err: (line) => console.error(line),
    progress: (o) => new ProgressReporter(target.writer, { ...o, interactive: target.interactive }),
    onInterrupt: (handler) => {
      Deno.addSignalListener("SIGINT", handler);
      return () => Deno.removeSignalListener("SIGINT", handler);
    },
    now: () => new Date(),
  };
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
  args: TrainArgs,
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

function percent(x: number): string {
  return `${(100 * x).toFixed(1)} %`;
}

function summarize(state: PipelineState, runDir: string, say: (line: string) => void): void {
  for (const key of ["base", "sft", "grpo"] as const) {
    const e = state.evals[key];
    if (!e) continue;
    say(
      `${key.padEnd(5)} accuracy ${percent(e.accuracy)}  partial ${percent(e.partialAccuracy)}` +
        `  format ${percent(e.formatAccuracy)}  (n=${e.n})`,
    );
  }
  say(`report: ${runDir}/${RUN_FILES.report}`);
}

const KNOWN_ERRORS = [
  TrainConfigError,
  MissingInputError,
  TrainUsageError,
  PhaseNotImplementedError,
  PipelineError,
  DatasetNotFoundError,
];

/**
 * Runs `deno task train`.
 *
 * @param args Arguments after the script name.
 * @param overrides Replacements for parts of the environment (tests).
 * @returns Exit code: 0 completed, 130 interrupted (resumable), 2 usage, config or missing
 *   input, 1 failure.
 */
export async function trainMain(
  args: readonly string[],
  overrides: Partial<TrainEnvironment> = {},
): Promise<number> {
  const io: TrainEnvironment = { ...defaultEnvironment(), ...overrides };
  let parsed: TrainArgs | null;
  let config: TrainConfig;
  let runDir: string;
  try {
    parsed = parseTrainArgs(args);
    if (parsed === null) {
      io.out(USAGE);
      return 0;
    }
    if (parsed.resume !== null) {
      runDir = parsed.resume.replace(/[/\\]+$/, "");
      config = await loadRunConfig(runDir);
      await checkInputPaths(config);
    } else {
      config = await resolveNewRunConfig(parsed, io.env, io.err);
      runDir = "";
    }
  } catch (e) {
    if (!KNOWN_ERRORS.some((k) => e instanceof k)) throw e;
    io.err(`error: ${(e as Error).message}`);
    if (e instanceof TrainUsageError) io.err(`\n${USAGE}`);
    return 2;
  }
  io.out(`resolved config (preset ${config.preset}):`);
  io.out(JSON.stringify(config, null, 2));
  if (runDir === "") {
    runDir = await createRunDir(config.run.outDir, io.now());
    await saveRunConfig(runDir, config);
  }
  io.err(`run folder: ${runDir}`);

  const controller = new AbortController();
  let interrupts = 0;
  const removeHandler = io.onInterrupt(() => {
    if (++interrupts === 1) {
      io.err("\nstopping: saving a checkpoint (press Ctrl-C again to quit at once)");
      controller.abort();
    } else {
      io.err("quitting without a checkpoint");
      Deno.exit(130);
    }
  });
  const store = await FsRunStore.open(runDir);
  try {
    const state = await runPipeline({
      config,
      phases: await io.createPhases(config, runDir),
      store,
      logger: new MetricsLogger(store.metricsSink),
      signal: controller.signal,
      progress: io.progress,
      onMessage: io.err,
      now: io.now,
      title: `webtune ${config.preset} run ${runDir}`,
    });
    summarize(state, runDir, io.out);
    if (state.status === "interrupted") {
      const at = state.current;
      io.err(
        `interrupted${at ? ` at ${at.phase} step ${at.step}` : ""}; continue with: ` +
          `deno task train --resume ${runDir}`,
      );
      return 130;
    }
    return 0;
  } catch (e) {
    const known = KNOWN_ERRORS.some((k) => e instanceof k);
    io.err(`error: ${known ? (e as Error).message : (e as Error).stack ?? String(e)}`);
    io.err(
      `the run's state is in ${runDir}/${RUN_FILES.pipeline}; after fixing the cause: ` +
        `deno task train --resume ${runDir}`,
    );
    return 1;
  } finally {
    removeHandler();
    store.close();
  }
}

if (import.meta.main) Deno.exit(await trainMain(Deno.args));
