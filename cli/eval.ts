/**
 * `deno task eval`: the recipe's evaluation of a Gemma 3 model (optionally with a LoRA adapter)
 * on GSM8K or the built-in demo set.
 *
 *   deno task eval --model DIR [--adapter DIR] [--data PATH|demo] [--split test] [--limit N]
 *     [--batch-size B] [--max-new-tokens N] [--passes K] [--temperature T] [--top-k K]
 *     [--top-p P] [--seed S] [--out DIR] [--phase NAME]
 *
 * Writes `<out>/eval_<phase>_summary.json`, `<out>/eval_<phase>_records.jsonl` and sets the
 * phase in `<out>/eval.json`. The tokenizer is `DIR/tokenizer.json` when present, else the
 * built-in Gemma 3 tokenizer.
 *
 * @module
 */

import { defaultHubCacheDir } from "../data/dataset_fs.ts";
import { generateDemoSet } from "../data/demo_set.ts";
import { loadGsm8k } from "../data/gsm8k_fs.ts";
import { buildPrompt } from "../data/prompt.ts";
import { loadGemma3Config } from "../model/config_fs.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { Tokenizer } from "../model/tokenizer.ts";
import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
import { evalConfig, type EvalQuestion, evalStepCount, evaluate } from "../rl/evaluate.ts";
import { mergeEvalPhase, writeEvalResult } from "../rl/evaluate_fs.ts";
import { consoleProgressTarget } from "../rl/metrics_fs.ts";
import { ProgressReporter } from "../rl/progress.ts";
import { numberFlag, parseCommandLine, parseFlags } from "./_cli.ts";

const USAGE = `usage: deno task eval --model DIR [--adapter DIR] [--data PATH|demo] [options]

  --model DIR           Hugging Face Gemma 3 folder (config.json + model.safetensors)
  --adapter DIR         PEFT LoRA adapter folder to apply
  --data PATH|demo      GSM8K file/folder/hub cache (default: the Hugging Face hub cache),
                        or "demo" for the built-in arithmetic test set
  --split NAME          train or test (default test)
  --limit N             evaluate the first N questions
  --batch-size B        prompts per generate call (default 8)
  --max-new-tokens N    tokens per completion at most (default 768)
  --passes K            completions per question, any counts (default 1; > 1 needs --temperature)
  --temperature T       0 = greedy (default 0)
  --top-k K             keep the K most likely tokens (default 0 = off)
  --top-p P             nucleus mass (default 1 = off)
  --seed S              seed of pass 0 (default 0)
  --out DIR             output folder (default runs/eval-<timestamp>)
  --phase NAME          name in eval.json (default "base", or "adapter" with --adapter)`;

/** A command-line mistake: printed with the usage, exit code 2. */
export class EvalUsageError extends Error {
  /** @param message What is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "EvalUsageError";
  }
}

/** Parsed command line of `deno task eval`. */
export interface EvalArgs {
  /** Model folder. */
  readonly model: string;
  /** Adapter folder, or null. */
  readonly adapter: string | null;
  /** Data path, `"demo"`, or null for the hub cache. */
  readonly data: string | null;
  /** Split. */
  readonly split: "train" | "test";
  /** Questions at most, or null for all. */
  readonly limit: number | null;
  /** Prompts per generate call. */
  readonly batchSize: number;
  /** Tokens per completion at most. */
  readonly maxNewTokens: number;
  /** Completions per question. */
  readonly passes: number;
  /** Temperature (0 = greedy). */
  readonly temperature: number;
  /** Top-k (0 = off). */
  readonly topK: number;
  /** Top-p (1 = off). */
  readonly topP: number;
  /** Seed of pass 0. */
  readonly seed: number;
  /** Output folder, or null for `runs/eval-<timestamp>`. */
  readonly out: string | null;
  /** Phase name in `eval.json`. */
  readonly phase: string;
}

const numberOption = (name: string, value: string | undefined, integer: boolean) =>
  numberFlag(name, value, integer, EvalUsageError);

/**
 * Parses and validates the command line.
 *
 * @param args Arguments after the script name.
 * @returns The options, or null when `--help` was given.
 * @throws {EvalUsageError} On unknown, missing or invalid options (naming the flag).
 * @example
 * ```ts
 * import { parseEvalArgs } from "./eval.ts";
 * const a = parseEvalArgs(["--model", "m", "--limit", "5"]);
 * if (a?.limit !== 5 || a.maxNewTokens !== 768 || a.phase !== "base") throw new Error();
 * ```
 */
export function parseEvalArgs(args: readonly string[]): EvalArgs | null {
  const options = {
    model: { type: "string" },
    adapter: { type: "string" },
    data: { type: "string" },
    split: { type: "string" },
    limit: { type: "string" },
    "batch-size": { type: "string" },
    "max-new-tokens": { type: "string" },
    passes: { type: "string" },
    temperature: { type: "string" },
    "top-k": { type: "string" },
    "top-p": { type: "string" },
    seed: { type: "string" },
    out: { type: "string" },
    phase: { type: "string" },
    help: { type: "boolean", short: "h" },
  } as const;
  const values = parseFlags(args, options, EvalUsageError);
  if (values.help) return null;
  if (!values.model) throw new EvalUsageError("--model DIR is required");
  const split = values.split ?? "test";
  if (split !== "train" && split !== "test") {
    throw new EvalUsageError(`--split must be train or test, got "${split}"`);
  }
  const limit = numberOption("limit", values.limit, true) ?? null;
  if (limit === 0) throw new EvalUsageError("--limit must be >= 1, got 0");
  const flags: Record<string, string> = {
    maxNewTokens: "max-new-tokens",
    batchSize: "batch-size",
    topK: "top-k",
    topP: "top-p",
  };
  let config;
  try {
    config = evalConfig({
      batchSize: numberOption("batch-size", values["batch-size"], true),
      maxNewTokens: numberOption("max-new-tokens", values["max-new-tokens"], true),
      passes: numberOption("passes", values.passes, true),
      temperature: numberOption("temperature", values.temperature, false),
      topK: numberOption("top-k", values["top-k"], true),
      topP: numberOption("top-p", values["top-p"], false),
      seed: numberOption("seed", values.seed, true),
    });
  } catch (err) {
    if (err instanceof EvalUsageError) throw err;
    const e = err as Error & { field?: string };
    const flag = e.field ? `--${flags[e.field] ?? e.field}` : "option";
    throw new EvalUsageError(`${flag}: ${e.message}`);
  }
  return Object.freeze({
    model: values.model,
    adapter: values.adapter ?? null,
    data: values.data ?? null,
    split,
    limit,
    batchSize: config.batchSize,
    maxNewTokens: config.maxNewTokens,
    passes: config.passes,
    temperature: config.temperature,
    topK: config.topK,
    topP: config.topP,
    seed: config.seed,
    out: values.out ?? null,
    phase: values.phase ?? (values.adapter ? "adapter" : "base"),
  });
}

/** An input problem the user can fix (missing folder, tokenizer mismatch): exit code 1. */
export class EvalInputError extends Error {
  /** @param message What is wrong, naming the path. */
  constructor(message: string) {
    super(message);
    this.name = "EvalInputError";
  }
}

async function stat(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

async function loadQuestions(a: EvalArgs): Promise<{ questions: EvalQuestion[]; source: string }> {
  if (a.data === "demo") {
    const { test, train } = generateDemoSet();
    const all = a.split === "test" ? test : train;
    return { questions: all.slice(0, a.limit ?? all.length), source: `demo ${a.split} set` };
  }
  const path = a.data ?? defaultHubCacheDir({
    HF_HOME: Deno.env.get("HF_HOME"),
    XDG_CACHE_HOME: Deno.env.get("XDG_CACHE_HOME"),
    HOME: Deno.env.get("HOME"),
    USERPROFILE: Deno.env.get("USERPROFILE"),
  });
  if (!(await stat(path))) {
    throw new EvalInputError(
      a.data === null
        ? `no --data given and the Hugging Face hub cache ${path} does not exist: pass ` +
          "--data PATH (a GSM8K jsonl/parquet file or folder) or --data demo"
        : `data file or folder not found: ${path}`,
    );
  }
  const questions = await loadGsm8k(path, { split: a.split, limit: a.limit ?? undefined });
  return { questions, source: path };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
}

async function run(a: EvalArgs): Promise<void> {
  const modelInfo = await stat(a.model);
  if (!modelInfo?.isDirectory) throw new EvalInputError(`model directory not found: ${a.model}`);
  if (!(await stat(`${a.model}/config.json`))) {
    throw new EvalInputError(
      `${a.model} has no config.json (expected a Hugging Face model folder)`,
    );
  }
  if (a.adapter !== null && !(await stat(a.adapter))?.isDirectory) {
    throw new EvalInputError(`adapter directory not found: ${a.adapter}`);
  }
  const { questions, source } = await loadQuestions(a);
  if (questions.length === 0) throw new EvalInputError(`no questions in ${source}`);
  const tokenizerPath = `${a.model}/tokenizer.json`;
  const tokenizer = (await stat(tokenizerPath))
    ? await Tokenizer.fromFile(tokenizerPath)
    : await loadDefaultTokenizer();
  const vocab = (await loadGemma3Config(a.model)).vocabSize;
  for (const [i, q] of questions.entries()) {
    const outside = tokenizer.encode(buildPrompt(q.question)).find((id) => id >= vocab);
    if (outside !== undefined) {
      throw new EvalInputError(
        `the tokenizer produced id ${outside} for question ${i}, outside the model's vocabulary ` +
          `of ${vocab}: the tokenizer does not match the model (put the model's tokenizer.json ` +
          `in ${a.model})`,
      );
    }
  }
  console.error(
    `evaluating ${a.model}${a.adapter ? ` + ${a.adapter}` : ""} on ${questions.length} ` +
      `questions of ${source}`,
  );
  const model = await loadGemma3(a.model, { adapter: a.adapter ?? undefined });
  try {
    const { writer, interactive } = consoleProgressTarget();
    const progress = new ProgressReporter(writer, {
      phase: "eval",
      total: evalStepCount(questions.length, a),
      interactive,
    });
    const result = await evaluate(model, questions, {
      tokenizer,
      progress,
      batchSize: a.batchSize,
      maxNewTokens: a.maxNewTokens,
      passes: a.passes,
      temperature: a.temperature,
      topK: a.topK,
      topP: a.topP,
      seed: a.seed,
    });
    progress.finish();
    const out = a.out ?? `runs/eval-${timestamp()}`;
    const files = await writeEvalResult(out, result, {
      name: `eval_${a.phase}`,
      metadata: { model: a.model, adapter: a.adapter, data: source, split: a.split },
    });
    await mergeEvalPhase(`${out}/eval.json`, a.phase, result.summary);
    const s = result.summary;
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    console.log(
      `accuracy ${pct(s.accuracy)} (${s.numCorrect}/${s.n}) | partial ${pct(s.partialAccuracy)} ` +
        `| format ${pct(s.formatAccuracy)} | passes ${s.passes} | ` +
        `${s.generatedTokens} tokens in ${s.seconds.toFixed(1)} s`,
    );
    console.log(`wrote ${files.summary}, ${files.records}, ${out}/eval.json`);
  } finally {
    model.gpu.destroy();
  }
}

/**
 * Runs the command.
 *
 * @param args Arguments after the script name.
 * @returns The exit code (0 ok, 1 failure, 2 usage error).
 */
export async function main(args: readonly string[]): Promise<number> {
  const parsed = parseCommandLine(args, parseEvalArgs, EvalUsageError, USAGE);
  if (typeof parsed === "number") return parsed;
  try {
    await run(parsed);
    return 0;
  } catch (err) {
    const e = err as Error;
    console.error(`error: ${e instanceof EvalInputError ? "" : `${e.name}: `}${e.message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
