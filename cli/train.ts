/**
 * `deno task train`: flags → config (`resolveRunConfig`) → checks (`validateRunFs`) → run folder
 * → `train()` (`rl/train_fs.ts`), with progress lines on stderr and the eval summary on stdout.
 * Ctrl-C or SIGTERM saves a checkpoint and exits (130 / 143); `--resume` continues exactly.
 * `--tuning` sets kernel autotuning (default: cached choices on a GPU, in the user's cache
 * folder; off on a software adapter); a tuning between steps shows as one progress line.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import type { HubCacheEnv } from "../data/dataset_fs.ts";
import { DatasetNotFoundError } from "../data/errors.ts";
import { Gpu } from "../kernels/gpu.ts";
import type { TuningMode, TuningStore } from "../kernels/tuning.ts";
import { formatEvalSummary } from "../rl/evaluate.ts";
import { TrainMemoryError } from "../rl/memory_estimate.ts";
import { consoleProgress } from "../rl/metrics_fs.ts";
import type { PhaseSet } from "../rl/pipeline.ts";
import {
  createRunDir,
  loadRunConfig,
  loadRunState,
  MissingInputError,
  RUN_FILES,
} from "../rl/pipeline_fs.ts";
import { type EvalFile, PipelineError } from "../rl/pipeline_state.ts";
import { PRESET_NAMES, type TrainConfigInput } from "../rl/presets.ts";
import type { ValidatedRun } from "../rl/run_validation.ts";
import { validateRunFs } from "../rl/run_validation_fs.ts";
import type { TrainConfig } from "../rl/train_config.ts";
import { resolveRunConfig, type ResolveRunConfigOptions } from "../rl/train_config_fs.ts";
import { type ProgressFactory, progressLines } from "../rl/train_events.ts";
import { train } from "../rl/train_fs.ts";
import {
  BROKER_FLAGS,
  type BrokerAddress,
  brokerAddress,
  type BrokerEnv,
  connectBroker,
  type LearnerRollout,
  learnerRollout,
} from "./_broker.ts";
import {
  cliGpuOptions,
  parseFlagTable,
  parseTuning,
  runCommand,
  TUNING_FLAG,
  UsageError,
  usageText,
} from "./_cli.ts";

const FLAGS = {
  preset: ["string", "NAME", PRESET_NAMES.join(" | ")],
  config: ["string", "FILE", 'JSON config overriding the preset (may name its "preset")'],
  model: ["string", "DIR", "Hugging Face Gemma 3 folder (config.json + *.safetensors)"],
  "sft-data": ["string", "PATH", "OpenThoughts-114k file, folder or hub cache folder"],
  data: ["string", "PATH", "GSM8K file, folder or hub cache folder (train: GRPO, test: eval)"],
  out: ["string", "DIR", "parent of the run folder (default runs)"],
  seed: ["int", "N", "run seed"],
  set: ["strings", "path=value", "any config field, e.g. grpo.beta=0.04 (repeatable; JSON values)"],
  resume: ["string", "RUN_DIR", "continue an interrupted run with its saved config"],
  "print-config": ["boolean", "", "print the resolved config as JSON and exit (no run starts)"],
  ...TUNING_FLAG,
  ...BROKER_FLAGS,
  "rollout-ack-wait": [
    "number",
    "SECONDS",
    "with --broker: hand a task a worker holds silently\nthis long to another (default 60)",
  ],
  "rollout-timeout": [
    "number",
    "SECONDS",
    "with --broker: sample locally what no worker returned\nwithin this long (default 60)",
  ],
} as const;
const USAGE = usageText(
  `usage: deno task train [--preset NAME] [--config FILE.json] [--model DIR] [--sft-data PATH]
       [--data PATH] [--out DIR] [--seed N] [--set path=value]... [--print-config]
       [--tuning off|cached|full]
       deno task train --resume RUN_DIR [--print-config] [--tuning off|cached|full]
       (either with --broker URL: GRPO rollouts on \`deno task worker\` processes)`,
  FLAGS,
) + `

Precedence: preset (default demo; gemma3-1b-gsm8k with --model) < --config < flags < --set.
Every check the config and inputs allow runs before the run folder is made. Ctrl-C (SIGINT)
or SIGTERM saves a checkpoint and exits 130 or 143; --resume continues exactly.`;

/** Parsed command line of `deno task train`. */
export interface TrainArgs {
  /** `--resume`: the run folder to continue, or null for a new run. */
  readonly resume: string | null;
  /** A new run's `--preset`, `--config`, dedicated flags and `--set` overrides. */
  readonly config: ResolveRunConfigOptions;
  /** `--print-config`: print the resolved config and exit. */
  readonly printConfig: boolean;
  /** `--broker` (credentials from flags or environment), or null: rollouts stay local. */
  readonly broker: BrokerAddress | null;
  /** `--rollout-timeout` in milliseconds. */
  readonly rolloutTimeoutMs: number;
  /** `--rollout-ack-wait` in milliseconds. */
  readonly rolloutAckWaitMs: number;
  /** `--tuning`, or null: the default for the adapter (`tuningForAdapter`). */
  readonly tuning: TuningMode | null;
}

/**
 * Parses the command line.
 *
 * @param args Arguments after the script name.
 * @returns The options, or null for `--help`.
 * @throws {UsageError} For unknown or malformed options, or config flags with `--resume`.
 * @example
 * ```ts
 * import { parseTrainArgs } from "./train.ts";
 * const a = parseTrainArgs(["--set", "grpo.beta=0.04", "--set", "run.seed=3"]);
 * if (a?.config.sets?.length !== 2) throw new Error();
 * ```
 */
export function parseTrainArgs(
  args: readonly string[],
  env: BrokerEnv = {},
): TrainArgs | null {
  const v = parseFlagTable(args, FLAGS);
  if (v === null) return null;
  const {
    resume = null,
    printConfig = false,
    set: sets = [],
    broker: _broker,
    brokerUser: _user,
    brokerPassword: _password,
    rolloutTimeout = 60,
    rolloutAckWait = 60,
    tuning,
    ...configFlags
  } = v;
  const broker = brokerAddress(v, env);
  if (resume !== null && (Object.keys(configFlags).length > 0 || sets.length > 0)) {
    throw new UsageError(
      "--resume continues a run exactly, with its saved config.json; drop the other options " +
        "(edit RUN_DIR/config.json to change the run)",
    );
  }
  // The dedicated flags as a config tree (`--data` feeds both GRPO and evaluation).
  const flags: TrainConfigInput = {};
  if (v.model !== undefined) flags.model = { path: v.model };
  if (v.sftData !== undefined) flags.sft = { data: v.sftData };
  if (v.data !== undefined) flags.grpo = { data: v.data };
  if (v.data !== undefined) flags.eval = { data: v.data };
  const run: TrainConfigInput = {};
  if (v.out !== undefined) run.outDir = v.out;
  if (v.seed !== undefined) run.seed = v.seed;
  if (Object.keys(run).length > 0) flags.run = run;
  return {
    resume,
    printConfig,
    broker,
    rolloutTimeoutMs: rolloutTimeout * 1000,
    rolloutAckWaitMs: rolloutAckWait * 1000,
    tuning: parseTuning(tuning),
    config: {
      preset: v.preset ?? null,
      defaultPreset: v.model !== undefined ? "gemma3-1b-gsm8k" : "demo",
      configFile: v.config ?? null,
      flags,
      sets: Object.freeze([...sets]),
    },
  };
}

/** The signals that stop a run with a checkpoint. */
export type StopSignal = "SIGINT" | "SIGTERM";

/** Exit codes of a run stopped by a signal: 128 + the signal's number, as a shell reports it. */
export const STOP_EXIT_CODES: Readonly<Record<StopSignal, number>> = Object.freeze({
  SIGINT: 130,
  SIGTERM: 143,
});

/** What {@linkcode trainMain} uses from the outside world (injectable for tests). */
export interface TrainEnvironment {
  /** Environment variables deciding the Hugging Face cache and the broker credentials. */
  readonly env: HubCacheEnv & BrokerEnv;
  /** Replaces or wraps the phase implementations (tests). */
  readonly phases?: (defaults: PhaseSet) => PhaseSet;
  /** Writes a line to stdout. */
  readonly out: (line: string) => void;
  /** Writes a line to stderr. */
  readonly err: (line: string) => void;
  /** Progress lines. */
  readonly progress: ProgressFactory;
  /** Installs a Ctrl-C (SIGINT) and SIGTERM handler; returns its removal. */
  readonly onInterrupt: (handler: (signal: StopSignal) => void) => () => void;
  /** Clock. */
  readonly now: () => Date;
  /** Where tuned kernel choices are kept (default: the file in the user's cache folder). */
  readonly tuningStore?: TuningStore;
}

function onSignals(handler: (signal: StopSignal) => void): () => void {
  const signals: StopSignal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const listeners = signals.map((s) => [s, () => handler(s)] as const);
  for (const [s, listener] of listeners) Deno.addSignalListener(s, listener);
  return () => listeners.forEach(([s, listener]) => Deno.removeSignalListener(s, listener));
}

/** Errors reported by their message alone; before the run starts they give exit code 2. */
const isKnown = (e: unknown): e is Error =>
  e instanceof FieldError || e instanceof TrainMemoryError || e instanceof MissingInputError ||
  e instanceof PipelineError || e instanceof DatasetNotFoundError;

function printResult(io: TrainEnvironment, runDir: string, evals: EvalFile): void {
  for (const line of formatEvalSummary(evals)) io.out(line);
  io.out(`report: ${runDir}/${RUN_FILES.report}`);
}

/**
 * Runs `deno task train`: parses the flags, resolves the config (or reads a resumed run's),
 * checks everything the config and the inputs allow (`validateRunFs`), and only then makes the
 * run folder and trains. Ctrl-C or SIGTERM stops with a checkpoint; a second one quits at once.
 *
 * @param args Arguments after the script name.
 * @param overrides Replacements for parts of the environment (tests).
 * @returns Exit code: 0 completed (or `--help`, `--print-config`, `--resume` of a finished
 *   run), 130 / 143 stopped by SIGINT / SIGTERM (resumable), 2 usage, config or input error
 *   (nothing was started), 1 failure during the run.
 * @example
 * ```ts
 * import { trainMain } from "./train.ts";
 * const lines: string[] = [];
 * const code = await trainMain(["--help"], { out: (l) => lines.push(l) });
 * if (code !== 0 || !lines[0].startsWith("usage: deno task train")) throw new Error();
 * ```
 */
export async function trainMain(
  args: readonly string[],
  overrides: Partial<TrainEnvironment> = {},
): Promise<number> {
  const io: TrainEnvironment = {
    env: Deno.env.toObject(),
    out: (line) => console.log(line),
    err: (line) => console.error(line),
    progress: consoleProgress("stderr"),
    onInterrupt: onSignals,
    now: () => new Date(),
    ...overrides,
  };
  const { out, err } = io, run = (a: TrainArgs) => runTrain(a, io);
  const parse = (args: readonly string[]) => parseTrainArgs(args, io.env);
  return await runCommand(args, { usage: USAGE, parse, run, out, err });
}

async function runTrain(a: TrainArgs, io: TrainEnvironment): Promise<number> {
  let runDir = a.resume?.replace(/[/\\]+$/, "") ?? null;
  let config: TrainConfig, validated: ValidatedRun;
  try {
    config = runDir !== null
      ? await loadRunConfig(runDir)
      : await resolveRunConfig({ ...a.config, env: io.env, onNote: io.err });
    if (a.printConfig) {
      io.out(JSON.stringify(config, null, 2));
      return 0;
    }
    const state = runDir === null ? null : await loadRunState(runDir);
    if (state?.status === "completed") {
      io.out(`${runDir} is already complete (finished ${state.updatedAt}); nothing to resume`);
      printResult(io, runDir!, state.evals);
      return 0;
    }
    validated = await validateRunFs(config);
  } catch (e) {
    if (!isKnown(e)) throw e;
    io.err(`error: ${e.message}`);
    return 2;
  }

  const controller = new AbortController();
  let stoppedBy: StopSignal | null = null;
  const removeHandler = io.onInterrupt((signal) => {
    if (stoppedBy !== null) {
      io.err("quitting without a checkpoint");
      Deno.exit(STOP_EXIT_CODES[signal]);
    }
    stoppedBy = signal;
    const again = signal === "SIGINT" ? "press Ctrl-C again" : `send ${signal} again`;
    io.err(`\nstopping (${signal}): saving a checkpoint (${again} to quit at once)`);
    controller.abort();
  });
  let rollout: LearnerRollout | null = null;
  let gpu: Gpu | null = null;
  try {
    gpu = await Gpu.create(cliGpuOptions(a.tuning, { warn: io.err, store: io.tuningStore }));
    runDir ??= await createRunDir(config.run.outDir, io.now());
    io.err(`preset ${config.preset}, run folder ${runDir}`);
    if (a.broker !== null) {
      const runId = runDir.split(/[/\\]/).at(-1)!.replace(/[^A-Za-z0-9_-]/g, "_");
      rollout = learnerRollout({
        connection: await connectBroker(a.broker, `webtune-learner-${runId}`),
        config,
        runId,
        resultTimeoutMs: a.rolloutTimeoutMs,
        ackWaitMs: a.rolloutAckWaitMs,
        log: io.err,
      });
      io.err(`GRPO rollouts through the broker ${a.broker.url} (run id ${runId})`);
    }
    const bars = progressLines(io.progress);
    try {
      const result = await train(config, {
        runDir,
        validated,
        signal: controller.signal,
        onEvent: (e) => e.type === "message" ? io.err(e.text) : bars(e),
        now: io.now,
        phases: io.phases,
        gpu,
        ...(rollout !== null ? { rollout } : {}),
      });
      printResult(io, runDir, result.eval);
      if (result.status !== "interrupted") return 0;
      const at = result.state.current, where = at ? ` at ${at.phase} step ${at.step}` : "";
      io.err(`interrupted${where}; continue with: deno task train --resume ${runDir}`);
      return STOP_EXIT_CODES[stoppedBy ?? "SIGINT"];
    } catch (e) {
      io.err(`error: ${isKnown(e) ? e.message : (e as Error).stack ?? String(e)}`);
      io.err(
        `the run's state is in ${runDir}/${RUN_FILES.pipeline}; after fixing the cause: ` +
          `deno task train --resume ${runDir}`,
      );
      return 1;
    }
  } finally {
    removeHandler();
    await rollout?.close();
    gpu?.destroy();
  }
}

if (import.meta.main) Deno.exit(await trainMain(Deno.args));
