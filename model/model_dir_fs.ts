/**
 * A Hugging Face Gemma 3 folder as the scripts use it (Deno only): the folder check, its
 * tokenizer (`tokenizer.json`, else Gemma 3's built-in one), its chat template
 * (`tokenizer_config.json`, else Gemma 3's) and the check that the tokenizer's ids fit the
 * model's vocabulary.
 *
 * @module
 */

import { joinPath, pathExists } from "../base/atomic_fs.ts";
import { ChatTemplate, type TokenizerConfig } from "./chat_template.ts";
import { Tokenizer } from "./tokenizer.ts";
import { loadDefaultChatTemplate, loadDefaultTokenizer } from "./tokenizer_fs.ts";

/** A model folder that is missing, is not a Hugging Face folder, or whose tokenizer does not fit. */
export class ModelDirError extends Error {
  override readonly name: string = "ModelDirError";
}

/**
 * Checks that `dir` is a folder holding `config.json`.
 *
 * @param dir The model folder.
 * @throws {ModelDirError} Naming the folder.
 * @example
 * ```ts
 * import { checkModelDir, ModelDirError } from "./model_dir_fs.ts";
 * await checkModelDir("/no/such/folder").catch((e) => {
 *   if (!(e instanceof ModelDirError)) throw e;
 * });
 * ```
 */
export async function checkModelDir(dir: string): Promise<void> {
  const info = await Deno.stat(dir).catch(() => null);
  if (!info?.isDirectory) throw new ModelDirError(`model directory not found: ${dir}`);
  if (!(await pathExists(joinPath(dir, "config.json")))) {
    throw new ModelDirError(`${dir} has no config.json (expected a Hugging Face model folder)`);
  }
}

/**
 * The tokenizer of a model folder: its `tokenizer.json`, else Gemma 3's built-in one.
 *
 * @param dir The model folder.
 * @returns The tokenizer.
 * @example
 * ```ts ignore
 * import { loadModelTokenizer } from "./model_dir_fs.ts";
 * const tokenizer = await loadModelTokenizer("models/gemma-3-1b-it");
 * ```
 */
export async function loadModelTokenizer(dir: string): Promise<Tokenizer> {
  const path = joinPath(dir, "tokenizer.json");
  return (await pathExists(path)) ? await Tokenizer.fromFile(path) : await loadDefaultTokenizer();
}

/**
 * The chat template of a model folder: the `chat_template` of its `tokenizer_config.json`, else
 * Gemma 3's.
 *
 * @param dir The model folder.
 * @param tokenizer Encodes rendered text (for `tokenize: true`).
 * @returns The template.
 * @example
 * ```ts ignore
 * import { loadModelChatTemplate, loadModelTokenizer } from "./model_dir_fs.ts";
 * const tokenizer = await loadModelTokenizer("models/gemma-3-1b-it");
 * const chat = await loadModelChatTemplate("models/gemma-3-1b-it", tokenizer);
 * ```
 */
export async function loadModelChatTemplate(
  dir: string,
  tokenizer: Tokenizer,
): Promise<ChatTemplate> {
  const path = joinPath(dir, "tokenizer_config.json");
  const local = (await pathExists(path))
    ? JSON.parse(await Deno.readTextFile(path)) as TokenizerConfig
    : null;
  return local?.chat_template
    ? ChatTemplate.fromTokenizerConfig(local, { tokenizer })
    : await loadDefaultChatTemplate(tokenizer);
}

/** Options of {@linkcode encodePrompt}. */
export interface EncodePromptOptions {
  /** The model folder's tokenizer. */
  readonly tokenizer: Tokenizer;
  /** Wrap the prompt in one user turn of the folder's chat template and open the model's turn. */
  readonly chat?: boolean;
}

/**
 * Token ids of a prompt for a model folder: plain text (with `<bos>`), or one chat turn.
 *
 * @param dir The model folder (its `tokenizer_config.json` holds the chat template).
 * @param prompt The prompt text.
 * @param options The tokenizer and whether to use the chat template.
 * @returns The ids.
 * @example
 * ```ts ignore
 * import { encodePrompt, loadModelTokenizer } from "./model_dir_fs.ts";
 * const tokenizer = await loadModelTokenizer("models/gemma-3-1b-it");
 * const ids = await encodePrompt("models/gemma-3-1b-it", "Hi", { tokenizer, chat: true });
 * ```
 */
export async function encodePrompt(
  dir: string,
  prompt: string,
  options: EncodePromptOptions,
): Promise<number[]> {
  const { tokenizer } = options;
  if (!options.chat) return tokenizer.encode(prompt);
  const chat = await loadModelChatTemplate(dir, tokenizer);
  return chat.applyChatTemplate([{ role: "user", content: prompt }], {
    addGenerationPrompt: true,
    tokenize: true,
  });
}

/** Options of {@linkcode checkTokenIds}. */
export interface CheckTokenIdsOptions {
  /** The model's vocabulary size (`config.vocabSize`). */
  readonly vocabSize: number;
  /** What the ids encode, for the message (e.g. `"question 3"`). */
  readonly what?: string;
  /** The model folder, named in a hint to put its `tokenizer.json` there. */
  readonly dir?: string;
}

/**
 * Checks that a tokenizer's ids fit the model (a tokenizer of another model does not).
 *
 * @param ids Encoded ids.
 * @param options The vocabulary size, and what to name in the message.
 * @throws {ModelDirError} Naming the first id outside the vocabulary.
 * @example
 * ```ts
 * import { checkTokenIds } from "./model_dir_fs.ts";
 * checkTokenIds([2, 9], { vocabSize: 10 });
 * ```
 */
export function checkTokenIds(ids: readonly number[], options: CheckTokenIdsOptions): void {
  const outside = ids.find((id) => id >= options.vocabSize);
  if (outside === undefined) return;
  throw new ModelDirError(
    `the tokenizer produced id ${outside}${options.what ? ` for ${options.what}` : ""}, ` +
      `outside the model's vocabulary of ${options.vocabSize}: the tokenizer does not match ` +
      `the model${options.dir ? ` (put the model's tokenizer.json in ${options.dir})` : ""}`,
  );
}
