/**
 * `deno task generate`: streams a Gemma 3 continuation of a prompt from a model folder, a run
 * folder (`runs/<id>`: the export of its last finished training phase, or `--phase`) or an
 * export folder, through `generateFromModelDir` (`rl/generate_fs.ts`). Text is printed as tokens
 * arrive (every 8 tokens: the generator reads ids back once per 8 steps), a summary goes to
 * stderr. With kernel tuning on (`--tuning`), the shape classes met are timed after the text
 * (one progress line), so later runs use the fastest variants.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import type { TuningMode } from "../kernels/tuning.ts";
import { ModelDirError } from "../model/model_dir_fs.ts";
import { generateFromModelDir, type GenerateFromModelDirOptions } from "../rl/generate_fs.ts";
import { consoleProgress, consoleProgressTarget } from "../rl/metrics_fs.ts";
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
  phase: ["string", "NAME", "run folder: the export, sft or grpo (default the last finished)"],
  adapter: ["string", "DIR", "PEFT LoRA adapter folder to apply to a model folder"],
  prompt: ["string", "TEXT", "prompt text"],
  chat: ["boolean", "", "wrap the prompt in the chat template (one user turn)"],
  recipe: ["boolean", "", "wrap the prompt in the recipe's prompt, as training and eval do"],
  "max-new-tokens": ["int", "N", "tokens to generate at most (default 128)"],
  temperature: ["number", "T", "0 = greedy (default 0)"],
  "top-k": ["int", "K", "keep the K most likely tokens (default 0 = off)"],
  "top-p": ["number", "P", "nucleus mass (default 1 = off)"],
  seed: ["int", "S", "sampling seed (default 0)"],
  ...TUNING_FLAG,
} as const;
const USAGE = usageText(
  'usage: deno task generate --model DIR|runs/<id> --prompt "…" [options]',
  FLAGS,
);

/**
 * Parsed command line of `deno task generate`: folder, prompt, what to load, sampling and
 * `--tuning` (null: the default for the adapter).
 */
export type GenerateArgs =
  & { readonly model: string; readonly prompt: string; readonly tuning: TuningMode | null }
  & Required<Omit<GenerateFromModelDirOptions, "onText" | "gpu">>;

/**
 * Parses the command line.
 *
 * @param args Arguments after the script name.
 * @returns The options, or null when `--help` was given.
 * @throws {UsageError} on unknown, missing or malformed options.
 * @example
 * ```ts
 * import { parseGenerateArgs } from "./generate.ts";
 * const a = parseGenerateArgs(["--model", "m", "--prompt", "Hi", "--max-new-tokens", "5"]);
 * console.log(a?.maxNewTokens); // 5
 * ```
 */
export function parseGenerateArgs(args: readonly string[]): GenerateArgs | null {
  const v = parseFlagTable(args, FLAGS);
  if (v === null) return null;
  if (!v.model) throw new UsageError("--model DIR is required");
  if (v.prompt === undefined) throw new UsageError("--prompt TEXT is required");
  const topP = v.topP ?? 1;
  if (topP === 0 || topP > 1) throw new UsageError(`--top-p must be in (0, 1], got ${topP}`);
  if (v.chat && v.recipe) throw new UsageError("--chat and --recipe exclude each other");
  const defaults = { chat: false, recipe: false, phase: null, adapter: null };
  const sampling = { maxNewTokens: 128, temperature: 0, topK: 0, topP, seed: 0 };
  const { model, prompt } = v;
  const tuning = parseTuning(v.tuning);
  return Object.freeze({ ...defaults, ...sampling, ...v, model, prompt, tuning });
}

async function run(a: GenerateArgs): Promise<void> {
  const { write } = consoleProgressTarget("stdout").writer;
  const gpu = await Gpu.create(cliGpuOptions(a.tuning, { warn: console.error }));
  try {
    const { tuning: _, ...options } = a;
    const r = await generateFromModelDir(a.model, a.prompt, { ...options, gpu, onText: write });
    write("\n");
    const n = r.tokens.length;
    console.error(
      `[${n} tokens after a ${r.promptTokens}-token prompt: ${r.seconds.toFixed(2)} s, ` +
        `${(n / r.seconds).toFixed(2)} tokens/s]`,
    );
    await tuneKernels(gpu, progressLines(consoleProgress()));
  } finally {
    gpu.destroy();
  }
}

const plainErrors = [ModelDirError];
const command = { usage: USAGE, parse: parseGenerateArgs, run, plainErrors };
if (import.meta.main) Deno.exit(await runCommand(Deno.args, command));
