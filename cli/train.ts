/**
 * `deno task train`: SFT → GRPO → evaluation as one pipeline, configured by a preset, a JSON
 * config file and flags (flags override the file, which overrides the preset), with progress
 * lines, a run folder (`runs/<timestamp>/`) and a report. Ctrl-C saves a checkpoint and exits;
 * `--resume runs/<id>` continues. The run itself is `train()` (`rl/train_fs.ts`).
 *
 *   deno task train                          # the demo: tiny model, built-in arithmetic set
 *   deno task train --preset gemma3-1b-gsm8k --model DIR --sft-data PATH --data PATH
 *   deno task train --resume runs/2026-05-01T12-00-00
 *
 * @module
 */

import type { HubCacheEnv } from "../data/dataset_fs.ts";
import { DatasetNotFoundError } from "../data/errors.ts";
import { TrainMemoryError } from "../rl/memory_estimate.ts";
import { consoleProgressTarget } from "../rl/metrics_fs.ts";
import type { PhaseSet } from "../rl/pipeline.ts";
import { createRunDir, loadRunConfig, MissingInputError, RUN_FILES } from "../rl/pipeline_fs.ts";
import { PipelineError } from "../rl/pipeline_state.ts";
import { PRESET_NAMES, type TrainConfigInput } from "../rl/presets.ts";
import { ProgressReporter } from "../rl/progress.ts";
import { type TrainConfig, TrainConfigError } from "../rl/train_config.ts";
import {
  checkInputPaths,
  resolveRunConfig,
  type ResolveRunConfigOptions,
} from "../rl/train_config_fs.ts";
import { type ProgressFactory, progressLines } from "../rl/train_events.ts";
import { train } from "../rl/train_fs.ts";
import { parseFlags } from "./_cli.ts";

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
  /** `--resume`: the run folder to continue, or null for a new run. */
  readonly resume: string | null;
  /** A new run's `--preset`, `--config`, dedicated flags and `--set` overrides. */
  readonly config: ResolveRunConfigOptions;
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
 * if (a?.config.sets?.length !== 2) throw new Error();
 * ```
 */
export function parseTrainArgs(args: readonly string[]): TrainArgs | null {
  const v = parseFlags(args, {
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
  }, TrainUsageError);
  if (v.help) return null;
  const seed = v.seed === undefined ? undefined : Number(v.seed);
  if (seed !== undefined && (v.seed!.trim() === "" || !Number.isSafeInteger(seed) || seed < 0)) {
    throw new TrainUsageError(`--seed must be an integer >= 0, got "${v.seed}"`);
  }
  const { resume = null, help: _, set: sets = [], ...configFlags } = v;
  if (resume !== null && (Object.keys(configFlags).length > 0 || sets.length > 0)) {
    throw new TrainUsageError(
      "--resume continues a run exactly, with its saved config.json; drop the other options " +
        "(edit RUN_DIR/config.json to change the run)",
    );
  }
  // The dedicated flags as a config tree (`--data` feeds both GRPO and evaluation).
  const flags: TrainConfigInput = {};
  if (v.model !== undefined) flags.model = { path: v.model };
  if (v["sft-data"] !== undefined) flags.sft = { data: v["sft-data"] };
  if (v.data !== undefined) flags.grpo = { data: v.data };
  if (v.data !== undefined) flags.eval = { data: v.data };
  const run: TrainConfigInput = {};
  if (v.out !== undefined) run.outDir = v.out;
  if (seed !== undefined) run.seed = seed;
  if (Object.keys(run).length > 0) flags.run = run;
  return {
    resume,
    config: {
      preset: v.preset ?? null,
      defaultPreset: v.model !== undefined ? "gemma3-1b-gsm8k" : "demo",
      configFile: v.config ?? null,
      flags,
      sets: Object.freeze([...sets]),
    },
  };
}

/** What {@linkcode trainMain} uses from the outside world (injectable for tests). */
export interface TrainEnvironment {
  /** Environment variables deciding the Hugging Face cache. */
  readonly env: HubCacheEnv;
  /** Replaces or wraps the phase implementations (tests). */
  readonly phases?: (defaults: PhaseSet) => PhaseSet;
  /** Writes a line to stdout. */
  readonly out: (line: string) => void;
  /** Writes a line to stderr. */
  readonly err: (line: string) => void;
  /** Progress lines. */
  readonly progress: ProgressFactory;
  /**
   * Installs a Ctrl-C (and SIGTERM) handler.
   *
   * @param handler Called on each signal.
   * @returns Removes the handler.
   */
  readonly onInterrupt: (handler: () => void) => () => void;
  /** Clock. */
  readonly now: () => Date;
}

function defaultEnvironment(): TrainEnvironment {
  const target = consoleProgressTarget("stderr");
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  return {
    env: Deno.env.toObject(),
    out: (line) => console.log(line),
    err: (line) => console.error(line),
    progress: (o) => new ProgressReporter(target.writer, { ...o, interactive: target.interactive }),
    onInterrupt: (handler) => {
      for (const s of signals) Deno.addSignalListener(s, handler);
      return () => signals.forEach((s) => Deno.removeSignalListener(s, handler));
    },
    now: () => new Date(),
  };
}

const percent = (x: number) => `${(100 * x).toFixed(1)} %`;

const KNOWN_ERRORS = [
  TrainConfigError,
  TrainMemoryError,
  MissingInputError,
  TrainUsageError,
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
  let config: TrainConfig, runDir: string | null = null;
  try {
    const parsed = parseTrainArgs(args);
    if (parsed === null) {
      io.out(USAGE);
      return 0;
    }
    if (parsed.resume !== null) {
      runDir = parsed.resume.replace(/[/\\]+$/, "");
      config = await loadRunConfig(runDir);
      await checkInputPaths(config);
    } else {
      config = await resolveRunConfig({ ...parsed.config, env: io.env, onNote: io.err });
    }
  } catch (e) {
    if (!KNOWN_ERRORS.some((k) => e instanceof k)) throw e;
    io.err(`error: ${(e as Error).message}`);
    if (e instanceof TrainUsageError) io.err(`\n${USAGE}`);
    return 2;
  }
  io.out(`resolved config (preset ${config.preset}):`);
  io.out(JSON.stringify(config, null, 2));
  runDir ??= await createRunDir(config.run.outDir, io.now());
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
  const bars = progressLines(io.progress);
  try {
    const result = await train(config, {
      runDir,
      signal: controller.signal,
      onEvent: (e) => e.type === "message" ? io.err(e.text) : bars(e),
      now: io.now,
      phases: io.phases,
    });
    for (const key of ["base", "sft", "grpo"] as const) {
      const e = result.eval[key];
      if (!e) continue;
      io.out(
        `${key.padEnd(5)} accuracy ${percent(e.accuracy)}  partial ${percent(e.partialAccuracy)}` +
          `  format ${percent(e.formatAccuracy)}  (n=${e.n})`,
      );
    }
    io.out(`report: ${runDir}/${RUN_FILES.report}`);
    if (result.status === "interrupted") {
      const at = result.state.current;
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
  }
}

if (import.meta.main) Deno.exit(await trainMain(Deno.args));
