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

import { TrainMemoryError } from "../rl/memory_estimate.ts";
import { DatasetNotFoundError } from "../data/_common.ts";
import type { HubCacheEnv } from "../data/dataset_fs.ts";
import { consoleProgressTarget } from "../rl/metrics_fs.ts";
import { MetricsLogger } from "../rl/metrics.ts";
import { type PhaseSet, type ProgressFactory, runPipeline } from "../rl/pipeline.ts";
import {
  createRunDir,
  FsRunStore,
  loadRunConfig,
  MissingInputError,
  RUN_FILES,
  saveRunConfig,
} from "../rl/pipeline_fs.ts";
import { PipelineError, type PipelineState } from "../rl/pipeline_state.ts";
import { PRESET_NAMES } from "../rl/presets.ts";
import { ProgressReporter } from "../rl/progress.ts";
import { type TrainConfig, TrainConfigError } from "../rl/train_config.ts";
import { parseFlags } from "./_cli.ts";
import { createPhases } from "./_phases.ts";
import { checkInputPaths, type ConfigFlags, resolveNewRunConfig } from "./_train_resolve.ts";

export { checkInputPaths, flagOverrides, resolveNewRunConfig } from "./_train_resolve.ts";

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
export interface TrainArgs extends ConfigFlags {
  /** `--resume`. */
  readonly resume: string | null;
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
  const values = parseFlags(args, {
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
