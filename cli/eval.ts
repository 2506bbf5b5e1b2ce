/**
 * `deno task eval`: the recipe's evaluation of a Gemma 3 folder (optionally with a LoRA adapter)
 * on GSM8K or the built-in demo set, through `evaluateModelDir` (`rl/evaluate_fs.ts`).
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { ModelDirError } from "../model/model_dir_fs.ts";
import { evalConfig } from "../rl/eval_config.ts";
import {
  EvalInputError,
  evaluateModelDir,
  type EvaluateModelDirOptions,
} from "../rl/evaluate_fs.ts";
import { consoleProgressTarget } from "../rl/metrics_fs.ts";
import { ProgressReporter } from "../rl/progress.ts";
import { parseFlagTable, runCommand, UsageError, usageText } from "./_cli.ts";

const FLAGS = {
  model: ["string", "DIR", "Hugging Face Gemma 3 folder (config.json + model.safetensors)"],
  adapter: ["string", "DIR", "PEFT LoRA adapter folder to apply"],
  data: [
    "string",
    "PATH|demo",
    "GSM8K file/folder/hub cache (default: the Hugging Face hub " +
    'cache),\nor "demo" for the built-in arithmetic test set',
  ],
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
  phase: ["string", "NAME", 'name in eval.json (default "base", or "adapter" with --adapter)'],
} as const;
const USAGE = usageText(
  "usage: deno task eval --model DIR [--adapter DIR] [--data PATH|demo] [options]",
  FLAGS,
);

/** Parsed command line of `deno task eval`: the model folder and the evaluation's options. */
export type EvalArgs = EvaluateModelDirOptions & { readonly model: string };

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
  if (!v.model) throw new UsageError("--model DIR is required");
  const split = v.split ?? "test";
  if (split !== "train" && split !== "test") {
    throw new UsageError(`--split must be train or test, got "${split}"`);
  }
  if (v.limit === 0) throw new UsageError("--limit must be >= 1, got 0");
  try {
    return Object.freeze({
      ...evalConfig(v),
      model: v.model,
      adapter: v.adapter ?? null,
      data: v.data ?? null,
      split,
      limit: v.limit ?? null,
      out: v.out ?? null,
      phase: v.phase ?? (v.adapter ? "adapter" : "base"),
    });
  } catch (err) {
    if (!(err instanceof FieldError)) throw err;
    const flag = err.path.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    throw new UsageError(`--${flag}: ${err.message}`);
  }
}

async function run(a: EvalArgs): Promise<void> {
  const { writer, interactive } = consoleProgressTarget();
  let bar: ProgressReporter | undefined;
  const { result, files, evalJson } = await evaluateModelDir(a.model, {
    ...a,
    env: Deno.env.toObject(),
    onStart: (line) => console.error(line),
    progress: (total) => bar = new ProgressReporter(writer, { phase: "eval", total, interactive }),
  });
  bar?.finish();
  const s = result.summary;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(
    `accuracy ${pct(s.accuracy)} (${s.numCorrect}/${s.n}) | partial ${pct(s.partialAccuracy)} ` +
      `| format ${pct(s.formatAccuracy)} | passes ${s.passes} | ` +
      `${s.generatedTokens} tokens in ${s.seconds.toFixed(1)} s`,
  );
  console.log(`wrote ${files.summary}, ${files.records}, ${evalJson}`);
}

if (import.meta.main) {
  const plainErrors = [EvalInputError, ModelDirError];
  Deno.exit(await runCommand(Deno.args, { usage: USAGE, parse: parseEvalArgs, run, plainErrors }));
}
