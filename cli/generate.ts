/**
 * `deno task generate`: streams a Gemma 3 continuation of a prompt.
 *
 *   deno task generate --model DIR --prompt "…" [--chat] [--max-new-tokens N]
 *     [--temperature T] [--top-k K] [--top-p P] [--seed S]
 *
 * The tokenizer is `DIR/tokenizer.json` when present, else the built-in Gemma 3 tokenizer;
 * `--chat` wraps the prompt in one user turn with the chat template of
 * `DIR/tokenizer_config.json` (else Gemma 3's) and opens the model's turn. Text is printed as
 * tokens arrive (every 8 tokens: the generator reads ids back once per 8 steps); a summary goes
 * to stderr.
 *
 * @module
 */

import { numberFlag, parseCommandLine, parseFlags } from "./_cli.ts";
import { ChatTemplate, type TokenizerConfig } from "../model/chat_template.ts";
import { loadGemma3Config } from "../model/config_fs.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { Tokenizer } from "../model/tokenizer.ts";
import { loadDefaultChatTemplate, loadDefaultTokenizer } from "../model/tokenizer_fs.ts";

const USAGE = `usage: deno task generate --model DIR --prompt "…" [--chat] [--max-new-tokens N]
       [--temperature T] [--top-k K] [--top-p P] [--seed S]

  --model DIR           Hugging Face Gemma 3 folder (config.json + model.safetensors)
  --prompt TEXT         prompt text
  --chat                wrap the prompt in the chat template (one user turn)
  --max-new-tokens N    tokens to generate at most (default 128)
  --temperature T       0 = greedy (default 0)
  --top-k K             keep the K most likely tokens (default 0 = off)
  --top-p P             nucleus mass (default 1 = off)
  --seed S              sampling seed (default 0)`;

/** A command-line mistake: printed with the usage, exit code 2. */
export class CliUsageError extends Error {
  /** @param message What is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "CliUsageError";
  }
}

/** Parsed command line of `deno task generate`. */
export interface GenerateArgs {
  /** Model folder. */
  readonly model: string;
  /** Prompt text. */
  readonly prompt: string;
  /** Wrap in the chat template. */
  readonly chat: boolean;
  /** Tokens to generate at most. */
  readonly maxNewTokens: number;
  /** Sampling temperature (0 = greedy). */
  readonly temperature: number;
  /** Top-k (0 = off). */
  readonly topK: number;
  /** Top-p (1 = off). */
  readonly topP: number;
  /** Seed. */
  readonly seed: number;
}

const numberOption = (
  name: string,
  value: string | undefined,
  fallback: number,
  integer: boolean,
) => numberFlag(name, value, integer, CliUsageError) ?? fallback;

/**
 * Parses the command line.
 *
 * @param args Arguments after the script name.
 * @returns The options, or null when `--help` was given.
 * @throws {CliUsageError} on unknown, missing or malformed options.
 * @example
 * ```ts
 * import { parseGenerateArgs } from "./generate.ts";
 * const a = parseGenerateArgs(["--model", "m", "--prompt", "Hi", "--max-new-tokens", "5"]);
 * console.log(a?.maxNewTokens); // 5
 * ```
 */
export function parseGenerateArgs(args: readonly string[]): GenerateArgs | null {
  const values = parseFlags(args, {
    model: { type: "string" },
    prompt: { type: "string" },
    chat: { type: "boolean" },
    "max-new-tokens": { type: "string" },
    temperature: { type: "string" },
    "top-k": { type: "string" },
    "top-p": { type: "string" },
    seed: { type: "string" },
    help: { type: "boolean", short: "h" },
  }, CliUsageError);
  if (values.help) return null;
  if (!values.model) throw new CliUsageError("--model DIR is required");
  if (values.prompt === undefined) throw new CliUsageError("--prompt TEXT is required");
  const topP = numberOption("top-p", values["top-p"], 1, false);
  if (topP === 0 || topP > 1) throw new CliUsageError(`--top-p must be in (0, 1], got ${topP}`);
  return Object.freeze({
    model: values.model,
    prompt: values.prompt,
    chat: values.chat ?? false,
    maxNewTokens: numberOption("max-new-tokens", values["max-new-tokens"], 128, true),
    temperature: numberOption("temperature", values.temperature, 0, false),
    topK: numberOption("top-k", values["top-k"], 0, true),
    topP,
    seed: numberOption("seed", values.seed, 0, true),
  });
}

function writeAll(bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

async function promptIds(args: GenerateArgs, tokenizer: Tokenizer): Promise<number[]> {
  if (!args.chat) return tokenizer.encode(args.prompt);
  const configPath = `${args.model}/tokenizer_config.json`;
  let chat: ChatTemplate;
  const local = (await exists(configPath))
    ? JSON.parse(await Deno.readTextFile(configPath)) as TokenizerConfig
    : null;
  if (local?.chat_template) chat = ChatTemplate.fromTokenizerConfig(local, { tokenizer });
  else chat = await loadDefaultChatTemplate(tokenizer);
  return chat.applyChatTemplate([{ role: "user", content: args.prompt }], {
    addGenerationPrompt: true,
    tokenize: true,
  });
}

/**
 * Runs the command.
 *
 * @param args Arguments after the script name.
 * @returns The exit code (0 ok, 1 failure, 2 usage error).
 */
export async function main(args: readonly string[]): Promise<number> {
  const parsed = parseCommandLine(args, parseGenerateArgs, CliUsageError, USAGE);
  if (typeof parsed === "number") return parsed;
  try {
    return await run(parsed);
  } catch (err) {
    // Typed library errors (ConfigError, SafetensorsError, …) carry the whole story.
    console.error(`error: ${(err as Error).name}: ${(err as Error).message}`);
    return 1;
  }
}

async function run(a: GenerateArgs): Promise<number> {
  const info = await Deno.stat(a.model).catch(() => null);
  if (!info?.isDirectory) {
    console.error(`error: model directory not found: ${a.model}`);
    return 1;
  }
  if (!(await exists(`${a.model}/config.json`))) {
    console.error(`error: ${a.model} has no config.json (expected a Hugging Face model folder)`);
    return 1;
  }
  const tokenizerPath = `${a.model}/tokenizer.json`;
  const tokenizer = (await exists(tokenizerPath))
    ? await Tokenizer.fromFile(tokenizerPath)
    : await loadDefaultTokenizer();
  const ids = await promptIds(a, tokenizer);
  const vocab = (await loadGemma3Config(a.model)).vocabSize;
  const outside = ids.find((id) => id >= vocab);
  if (outside !== undefined) {
    console.error(
      `error: the tokenizer produced id ${outside}, outside the model's vocabulary of ${vocab}: ` +
        "the tokenizer does not match the model",
    );
    return 1;
  }
  const model = await loadGemma3(a.model);
  try {
    const out = new TextEncoder();
    const generated: number[] = [];
    let printed = "";
    const flush = (final: boolean) => {
      const text = tokenizer.decode(generated, { skipSpecialTokens: true });
      // subtle: a multi-byte character split over byte tokens decodes to U+FFFD until complete.
      if (!final && text.endsWith("\uFFFD")) return;
      const fresh = text.startsWith(printed) ? text.slice(printed.length) : `\n${text}`;
      printed = text;
      if (fresh) writeAll(out.encode(fresh));
    };
    const started = performance.now();
    await model.generate([ids], {
      maxNewTokens: a.maxNewTokens,
      temperature: a.temperature,
      topK: a.topK,
      topP: a.topP,
      seed: a.seed,
      onToken: (_sequence, id) => {
        generated.push(id);
        flush(false);
      },
    });
    flush(true);
    const seconds = (performance.now() - started) / 1000;
    writeAll(out.encode("\n"));
    const rate = (generated.length / seconds).toFixed(2);
    console.error(
      `[${generated.length} tokens after a ${ids.length}-token prompt: ` +
        `${seconds.toFixed(2)} s, ${rate} tokens/s]`,
    );
    return 0;
  } finally {
    model.gpu.destroy();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
