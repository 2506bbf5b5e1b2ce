/**
 * `deno task generate`: streams a Gemma 3 continuation of a prompt. The tokenizer and chat
 * template come from the model folder (`model/model_dir_fs.ts`); text is printed as tokens
 * arrive (every 8 tokens: the generator reads ids back once per 8 steps), a summary goes to
 * stderr.
 *
 * @module
 */

import { loadGemma3Config } from "../model/config_fs.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import type { GenerateOptions } from "../model/generate.ts";
import {
  checkModelDir,
  checkTokenIds,
  encodePrompt,
  loadModelTokenizer,
  ModelDirError,
} from "../model/model_dir_fs.ts";
import { TextStream } from "../model/text_stream.ts";
import { parseFlagTable, runCommand, UsageError, usageText } from "./_cli.ts";

const FLAGS = {
  model: ["string", "DIR", "Hugging Face Gemma 3 folder (config.json + model.safetensors)"],
  prompt: ["string", "TEXT", "prompt text"],
  chat: ["boolean", "", "wrap the prompt in the chat template (one user turn)"],
  "max-new-tokens": ["int", "N", "tokens to generate at most (default 128)"],
  temperature: ["number", "T", "0 = greedy (default 0)"],
  "top-k": ["int", "K", "keep the K most likely tokens (default 0 = off)"],
  "top-p": ["number", "P", "nucleus mass (default 1 = off)"],
  seed: ["int", "S", "sampling seed (default 0)"],
} as const;
const USAGE = usageText(
  `usage: deno task generate --model DIR --prompt "…" [--chat] [--max-new-tokens N]
       [--temperature T] [--top-k K] [--top-p P] [--seed S]`,
  FLAGS,
);

/** Parsed command line of `deno task generate`: folder, prompt, chat switch and sampling. */
export type GenerateArgs =
  & { readonly model: string; readonly prompt: string; readonly chat: boolean }
  & Required<Pick<GenerateOptions, "maxNewTokens" | "temperature" | "topK" | "topP" | "seed">>;

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
  const defaults = { chat: false, maxNewTokens: 128, temperature: 0, topK: 0, seed: 0 };
  return Object.freeze({ ...defaults, ...v, model: v.model, prompt: v.prompt, topP });
}

function write(text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
}

async function run(a: GenerateArgs): Promise<void> {
  await checkModelDir(a.model);
  const tokenizer = await loadModelTokenizer(a.model);
  const ids = await encodePrompt(a.model, a.prompt, { tokenizer, chat: a.chat });
  checkTokenIds(ids, { vocabSize: (await loadGemma3Config(a.model)).vocabSize });
  const model = await loadGemma3(a.model);
  try {
    const stream = new TextStream(tokenizer, write);
    const started = performance.now();
    const { maxNewTokens, temperature, topK, topP, seed } = a;
    const onToken = (_sequence: number, id: number) => stream.push(id);
    await model.generate([ids], { maxNewTokens, temperature, topK, topP, seed, onToken });
    stream.finish();
    const seconds = (performance.now() - started) / 1000;
    write("\n");
    const n = stream.tokens.length;
    console.error(
      `[${n} tokens after a ${ids.length}-token prompt: ${seconds.toFixed(2)} s, ` +
        `${(n / seconds).toFixed(2)} tokens/s]`,
    );
  } finally {
    model.gpu.destroy();
  }
}

if (import.meta.main) {
  const plainErrors = [ModelDirError];
  Deno.exit(
    await runCommand(Deno.args, { usage: USAGE, parse: parseGenerateArgs, run, plainErrors }),
  );
}
