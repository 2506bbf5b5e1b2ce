/**
 * `deno task eval`: the recipe's evaluation of a Gemma 3 folder (optionally with a LoRA adapter),
 * a run folder (`runs/<id>`: the export of its last finished training phase, or `--phase`) or an
 * export folder, on GSM8K or the built-in demo set, through `evaluateModelDir`
 * (`rl/evaluate_fs.ts`). A run's export is evaluated with the run's own settings unless flags
 * say otherwise, so it reproduces the run's `eval.json`.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { ModelDirError } from "../model/model_dir_fs.ts";
import { evalConfig } from "../rl/eval_config.ts";
import { formatEvalResult } from "../rl/evaluate.ts";
import {
  EvalInputError,
  evaluateModelDir,
  type EvaluateModelDirOptions,
} from "../rl/evaluate_fs.ts";
import { consoleProgress } from "../rl/metrics_fs.ts";
import type { ProgressReporter } from "../rl/progress.ts";
import { Gpu } from "../kernels/gpu.ts";
import type { TuningMode } from "../kernels/tuning.ts";
import { progressLines, tuneKernels } from "../rl/train_events.ts";
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
  model: ["string", "DIR", "Hugging Face Gemma 3 folder, run folder (runs/<id>) or export folder"],
  adapter: ["string", "DIR", "PEFT LoRA adapter folder to apply"],
  data: ["string", "PATH|demo", 'GSM8K file/folder/hub cache (default the hub cache) or "demo"'],
  split: ["string", "NAME", "train or test (default test)"],
  limit: ["int", "N", "evaluate the first N questions"],
  "batch-size": ["int", "B", "prompts per generate call (default 8)"],
  "max-new-tokens": ["int", "N", "tokens per completion at most (default 768)"],
  passes: ["int", "K", "completions per question, any counts (default 1; > 1 needs --temperature)"],
  temperature: ["number", "T", "0 = greedy (default 0)"],
  "top-k": ["int", "K", "keep the K most likely tokens (default 0 = off)"],
  "top-p": ["number", "P", "nucleus mass (default 1 = off)"],
  seed: ["int", "S", "seed of pass 0 (default 0)"],
  out: ["string", "DIR", "output folder (default runs/eval-<timestamp>)"],
  phase: [
    "string",
    "NAME",
    "run folder: the export, sft or grpo (default the last finished); also\n" +
    "the name in eval.json (default the export's phase, base or adapter)",
  ],
  ...TUNING_FLAG,
} as const;
const USAGE = usageText(
  "usage: deno task eval --model DIR|runs/<id> [--phase sft|grpo] [--data PATH|demo] [options]",
  FLAGS,
);

/**
 * Parsed command line of `deno task eval`: the model folder and the evaluation's options (unset
 * ones filled with the recipe's values), and which options the flags set (`explicit`: for a run
 * folder or export, the others are the run's own).
 */
export type EvalArgs = EvaluateModelDirOptions & {
  readonly model: string;
  readonly explicit: readonly (keyof EvaluateModelDirOptions)[];
  /** `--tuning` (null: the default for the adapter). */
  readonly tuning: TuningMode | null;
};

/**
 * Parses and validates the command line; unset settings take the recipe's values.
 *
 * @param args Arguments after the script name.
 * @returns The options, or null when `--help` was given.
 * @throws {UsageError} On unknown, missing or invalid options (naming the flag).
 * @example
 * ```ts
 * import { parseEvalArgs } from "./eval.ts";
 * const a = parseEvalArgs(["--model", "m", "--limit", "5"]);
 * if (a?.limit !== 5 || a.maxNewTokens !== 768 || a.phase !== "base") throw new Error();
 * ```
 */
export function parseEvalArgs(args: readonly string[]): EvalArgs | null {
  const v = parseFlagTable(args, FLAGS);
  if (v === null) return null;
  const { model, adapter = null, data = null, split = "test", limit = null, out = null } = v;
  if (!model) throw new UsageError("--model DIR is required");
  if (split !== "train" && split !== "test") {
    throw new UsageError(`--split must be train or test, got "${split}"`);
  }
  if (limit === 0) throw new UsageError("--limit must be >= 1, got 0");
  const phase = v.phase ?? (adapter ? "adapter" : "base");
  const explicit = Object.keys(v).filter((k) => k !== "model" && k !== "tuning") as EvalArgs[
    "explicit"
  ];
  const tuning = parseTuning(v.tuning);
  try {
    const { tuning: _, ...settings } = v;
    const options: EvaluateModelDirOptions = {
      ...evalConfig(settings),
      adapter,
      data,
      split,
      limit,
      out,
    };
    return Object.freeze({ ...options, model, phase, explicit: Object.freeze(explicit), tuning });
  } catch (err) {
    if (!(err instanceof FieldError)) throw err;
    const flag = err.path.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    throw new UsageError(`--${flag}: ${err.message}`);
  }
}

/**
 * The options of `evaluateModelDir` that the command line set (the other fields of `args` are
 * the recipe's defaults, which for a run's export give way to the run's own settings).
 *
 * @param args Parsed command line.
 * @returns Only the options given as flags.
 * @example
 * ```ts
 * import { explicitEvalOptions, parseEvalArgs } from "./eval.ts";
 * const o = explicitEvalOptions(parseEvalArgs(["--model", "runs/x", "--limit", "5"])!);
 * console.log(o); // { limit: 5 }
 * ```
 */
export function explicitEvalOptions(args: EvalArgs): EvaluateModelDirOptions {
  return Object.fromEntries(args.explicit.map((k) => [k, args[k]]));
}

async function run(a: EvalArgs): Promise<void> {
  const progress = consoleProgress();
  let bar: ProgressReporter | undefined;
  const gpu = await Gpu.create(cliGpuOptions(a.tuning, { warn: console.error }));
  try {
    const { result, files, evalJson } = await evaluateModelDir(a.model, {
      ...explicitEvalOptions(a),
      env: Deno.env.toObject(),
      gpu,
      onStart: (line) => console.error(line),
      progress: (total) => bar = progress({ phase: "eval", total }),
    });
    bar?.finish();
    console.log(formatEvalResult(result.summary));
    console.log(`wrote ${files.summary}, ${files.records}, ${evalJson}`);
    // The shape classes met are timed after the results, so the next evaluation runs faster.
    await tuneKernels(gpu, progressLines(consoleProgress()));
  } finally {
    gpu.destroy();
  }
}

const plainErrors = [EvalInputError, ModelDirError];
const command = { usage: USAGE, parse: parseEvalArgs, run, plainErrors };
if (import.meta.main) Deno.exit(await runCommand(Deno.args, command));
