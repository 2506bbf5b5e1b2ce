/**
 * A Hugging Face Gemma 3 folder as the scripts use it (Deno only): the folder check, its
 * tokenizer (`tokenizer.json`, else Gemma 3's built-in one) — made compact by the folder's
 * `vocab_map.json` when it has one (the demo model's export) —, its chat template
 * (`tokenizer_config.json`, else Gemma 3's) and the check that the tokenizer's ids fit the
 * model's vocabulary.
 *
 * @module
 */

import { joinPath, pathExists } from "../base/atomic_fs.ts";
import { ChatTemplate, type TokenizerConfig } from "./chat_template.ts";
import { Tokenizer } from "./tokenizer.ts";
import { loadDefaultChatTemplate, loadDefaultTokenizer } from "./tokenizer_fs.ts";
import { compactCodec, type IdCodec, VocabMap, VocabMapError } from "./vocab_map.ts";

/**
 * The tokenizer (and generation) files of a Hugging Face model folder that an export of a model
 * trained from it copies, when present.
 */
export const TOKENIZER_FILES: readonly string[] = Object.freeze([
  "tokenizer.json",
  "tokenizer.model",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "chat_template.jinja",
  "chat_template.json",
  "generation_config.json",
]);

/** The file of a model folder whose model reads compact ids (see `vocab_map.ts`). */
export const VOCAB_MAP_FILE = "vocab_map.json";

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
  tokenizer: IdCodec,
): Promise<ChatTemplate> {
  const path = joinPath(dir, "tokenizer_config.json");
  const local = (await pathExists(path))
    ? JSON.parse(await Deno.readTextFile(path)) as TokenizerConfig
    : null;
  return local?.chat_template
    ? ChatTemplate.fromTokenizerConfig(local, { tokenizer })
    : await loadDefaultChatTemplate(tokenizer);
}

/** A model folder's tokenizer as its model reads it. */
export interface ModelCodec {
  /**
   * Encodes and decodes the model's ids: the tokenizer itself, or, with a vocabulary map, a
   * compact codec whose `encode` throws {@linkcode ModelDirError} for text outside the map.
   */
  readonly codec: IdCodec;
  /** The real tokenizer. */
  readonly tokenizer: Tokenizer;
  /** The folder's `vocab_map.json`, or null. */
  readonly vocabMap: VocabMap | null;
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
  const tokenizer = await loadModelTokenizer(dir);
  const path = joinPath(dir, VOCAB_MAP_FILE);
  if (!(await pathExists(path))) return { codec: tokenizer, tokenizer, vocabMap: null };
  let vocabMap: VocabMap;
  try {
    vocabMap = VocabMap.fromJSON(await Deno.readTextFile(path));
  } catch (e) {
    throw new ModelDirError(`${path}: ${(e as Error).message}`);
  }
  const compact = compactCodec(tokenizer, vocabMap);
  const codec: IdCodec = {
    encode(text, options) {
      try {
        return compact.encode(text, options);
      } catch (e) {
        if (!(e instanceof VocabMapError)) throw e;
        const id = tokenizer.encode(text, options).find((i) => !vocabMap.has(i));
        throw new ModelDirError(
          `the text holds the token ${JSON.stringify(tokenizer.decode([id ?? 0]))} (id ${id}), ` +
            `which is not in ${path} (the ${vocabMap.size} tokens this model was trained on)`,
        );
      }
    },
    decode: (ids, options) => compact.decode(ids, options),
  };
  return { codec, tokenizer, vocabMap };
}

/** Options of {@linkcode encodePrompt}. */
export interface EncodePromptOptions {
  /** The model folder's tokenizer (the `codec` of {@linkcode loadModelCodec}). */
  readonly tokenizer: IdCodec;
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
