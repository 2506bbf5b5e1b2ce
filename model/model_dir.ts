/**
 * A Hugging Face Gemma 3 folder as the scripts and pages use it, from any file source: the
 * folder check, its tokenizer (`tokenizer.json`, else a default one) — made compact by the
 * folder's `vocab_map.json` when it has one (the demo model's export) —, its chat template
 * (`tokenizer_config.json`, else a default one) and the check that the tokenizer's ids fit the
 * model's vocabulary. Also a tokenizer or chat template fetched from a URL (a page serving
 * Gemma 3's `tokenizer.json` itself). `model_dir_fs.ts` binds these to folders on disk, with
 * Gemma 3's built-in tokenizer as the default.
 *
 * @module
 */

import { ChatTemplate, type TokenizerConfig } from "./chat_template.ts";
import { type FileSource, FileSourceError } from "./file_source.ts";
import { resolveUrl, urlSource, type UrlSourceOptions } from "./file_source_http.ts";
import { Tokenizer, TokenizerError } from "./tokenizer.ts";
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

/** What to use when a model folder lacks its own tokenizer files. */
export interface ModelFilesOptions {
  /**
   * The tokenizer of a folder without `tokenizer.json` (Deno: Gemma 3's built-in one; a page:
   * e.g. `() => loadTokenizerFromUrl("/gemma3/tokenizer.json")`). Without it such a folder is
   * refused with {@linkcode ModelDirError}.
   */
  readonly defaultTokenizer?: () => Promise<Tokenizer>;
  /** The `tokenizer_config.json` whose `chat_template` applies when the folder has none. */
  readonly defaultTokenizerConfig?: () => Promise<TokenizerConfig>;
}

async function readJson(source: FileSource, name: string): Promise<unknown> {
  const text = await source.readText(name);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelDirError(`${source.path(name)} is not JSON: ${(e as Error).message}`);
  }
}

/**
 * Checks that a source holds a model folder (`config.json`).
 *
 * @param source The model folder.
 * @throws {ModelDirError} Naming the folder.
 * @example
 * ```ts
 * import { checkModelFolder, ModelDirError } from "./model_dir.ts";
 * import { memorySource } from "./file_source.ts";
 * await checkModelFolder(memorySource({ "config.json": "{}" }));
 * await checkModelFolder(memorySource({})).catch((e) => {
 *   if (!(e instanceof ModelDirError)) throw e;
 * });
 * ```
 */
export async function checkModelFolder(source: FileSource): Promise<void> {
  if (!(await source.exists("config.json"))) {
    throw new ModelDirError(
      `${source.label} has no config.json (expected a Hugging Face model folder)`,
    );
  }
}

function urlFile(url: string | URL, options: UrlSourceOptions) {
  const full = resolveUrl(url);
  const cut = full.pathname.lastIndexOf("/") + 1;
  return {
    source: urlSource(new URL(full.pathname.slice(0, cut), full), options),
    name: decodeURIComponent(full.pathname.slice(cut)),
  };
}

function tokenizerFromText(file: string, text: string): Tokenizer {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${file}: not JSON (${(e as Error).message})`);
  }
  return Tokenizer.fromJSON(json);
}

/**
 * Fetches a `tokenizer.json` (e.g. Gemma 3's, served by the page's own server) and builds the
 * tokenizer.
 *
 * @param url The file's URL (relative URLs resolve against the page).
 * @param options Headers and fetch, as for `urlSource`.
 * @returns The tokenizer.
 * @throws {FileSourceError} Naming the URL and HTTP status when it cannot be fetched.
 * @throws {TokenizerError} For a malformed file.
 * @example
 * ```ts ignore
 * import { loadTokenizerFromUrl } from "./model_dir.ts";
 * const tokenizer = await loadTokenizerFromUrl("/assets/gemma3/tokenizer.json");
 * tokenizer.encode("Hello"); // [2, 9259]
 * ```
 */
export async function loadTokenizerFromUrl(
  url: string | URL,
  options: UrlSourceOptions = {},
): Promise<Tokenizer> {
  const { source, name } = urlFile(url, options);
  return tokenizerFromText(source.path(name), await source.readText(name));
}

/** Options of {@linkcode loadChatTemplateFromUrl}. */
export interface LoadChatTemplateFromUrlOptions extends UrlSourceOptions {
  /** Encodes rendered text (for `tokenize: true`). */
  readonly tokenizer?: IdCodec;
}

/**
 * Fetches a `tokenizer_config.json` (e.g. Gemma 3's) and builds its chat template.
 *
 * @param url The file's URL (relative URLs resolve against the page).
 * @param options The tokenizer for `tokenize: true`; headers and fetch.
 * @returns The template.
 * @throws {FileSourceError} Naming the URL and HTTP status when it cannot be fetched.
 * @throws {ModelDirError} When it is not JSON; {@linkcode ChatTemplateError} without a template.
 * @example
 * ```ts ignore
 * import { loadChatTemplateFromUrl, loadTokenizerFromUrl } from "./model_dir.ts";
 * const tokenizer = await loadTokenizerFromUrl("/assets/gemma3/tokenizer.json");
 * const chat = await loadChatTemplateFromUrl("/assets/gemma3/tokenizer_config.json", { tokenizer });
 * ```
 */
export async function loadChatTemplateFromUrl(
  url: string | URL,
  options: LoadChatTemplateFromUrlOptions = {},
): Promise<ChatTemplate> {
  const { tokenizer, ...sourceOptions } = options;
  const { source, name } = urlFile(url, sourceOptions);
  const config = await readJson(source, name) as TokenizerConfig;
  return ChatTemplate.fromTokenizerConfig(config, { tokenizer });
}

/**
 * The tokenizer of a model folder: its `tokenizer.json`, else `options.defaultTokenizer`.
 *
 * @param source The model folder.
 * @param options The default tokenizer.
 * @returns The tokenizer.
 * @throws {ModelDirError} When the folder has no `tokenizer.json` and no default is given.
 * @throws {FileSourceError} When the file cannot be read; {@linkcode TokenizerError} when it
 *   is malformed.
 * @example
 * ```ts ignore
 * import { loadModelTokenizerFrom } from "./model_dir.ts";
 * import { urlSource } from "./file_source_http.ts";
 * const tokenizer = await loadModelTokenizerFrom(urlSource("/models/gemma-3-1b-it/"));
 * ```
 */
export async function loadModelTokenizerFrom(
  source: FileSource,
  options: ModelFilesOptions = {},
): Promise<Tokenizer> {
  const name = "tokenizer.json";
  if (await source.exists(name)) {
    return tokenizerFromText(source.path(name), await source.readText(name));
  }
  if (options.defaultTokenizer) return await options.defaultTokenizer();
  throw new ModelDirError(
    `${source.label} has no tokenizer.json, and no default tokenizer was given`,
  );
}

/**
 * The chat template of a model folder: the `chat_template` of its `tokenizer_config.json`,
 * else that of `options.defaultTokenizerConfig`.
 *
 * @param source The model folder.
 * @param tokenizer Encodes rendered text (for `tokenize: true`).
 * @param options The default tokenizer config.
 * @returns The template.
 * @throws {ModelDirError} When there is no template and no default, or the config is not JSON.
 * @example
 * ```ts
 * import { loadModelChatTemplateFrom } from "./model_dir.ts";
 * import { memorySource } from "./file_source.ts";
 * const source = memorySource({
 *   "tokenizer_config.json": '{"chat_template": "{{ messages[0].content }}!"}',
 * });
 * const chat = await loadModelChatTemplateFrom(source, { encode: () => [], decode: () => "" });
 * console.log(chat.render([{ role: "user", content: "Hi" }])); // "Hi!"
 * ```
 */
export async function loadModelChatTemplateFrom(
  source: FileSource,
  tokenizer: IdCodec,
  options: ModelFilesOptions = {},
): Promise<ChatTemplate> {
  const name = "tokenizer_config.json";
  const local = (await source.exists(name))
    ? await readJson(source, name) as TokenizerConfig
    : null;
  if (local?.chat_template) return ChatTemplate.fromTokenizerConfig(local, { tokenizer });
  if (options.defaultTokenizerConfig) {
    return ChatTemplate.fromTokenizerConfig(await options.defaultTokenizerConfig(), { tokenizer });
  }
  throw new ModelDirError(
    `${source.label} has no chat_template in a tokenizer_config.json, and no default was given`,
  );
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
 * The tokenizer of a model folder as its model reads it: {@linkcode loadModelTokenizerFrom},
 * wrapped in a compact codec when the folder holds a `vocab_map.json` (the demo model's
 * export).
 *
 * @param source The model folder.
 * @param options The default tokenizer for a folder without `tokenizer.json`.
 * @returns The codec, the real tokenizer and the map.
 * @throws {ModelDirError} For a malformed `vocab_map.json`, or no tokenizer.
 * @example
 * ```ts ignore
 * import { loadModelCodecFrom, loadTokenizerFromUrl } from "./model_dir.ts";
 * import { fileListSource } from "./file_source.ts";
 * const { codec } = await loadModelCodecFrom(fileListSource(input.files!), {
 *   defaultTokenizer: () => loadTokenizerFromUrl("/assets/gemma3/tokenizer.json"),
 * });
 * codec.encode("2 + 3 = ?"); // compact ids
 * ```
 */
export async function loadModelCodecFrom(
  source: FileSource,
  options: ModelFilesOptions = {},
): Promise<ModelCodec> {
  const tokenizer = await loadModelTokenizerFrom(source, options);
  const path = source.path(VOCAB_MAP_FILE);
  if (!(await source.exists(VOCAB_MAP_FILE))) {
    return { codec: tokenizer, tokenizer, vocabMap: null };
  }
  let vocabMap: VocabMap;
  try {
    vocabMap = VocabMap.fromJSON(await source.readText(VOCAB_MAP_FILE));
  } catch (e) {
    if (e instanceof FileSourceError) throw e;
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

/** Options of {@linkcode encodePromptFrom} (and `encodePrompt` of `model_dir_fs.ts`). */
export interface EncodePromptOptions {
  /** The model folder's tokenizer (the `codec` of {@linkcode loadModelCodecFrom}). */
  readonly tokenizer: IdCodec;
  /** Wrap the prompt in one user turn of the folder's chat template and open the model's turn. */
  readonly chat?: boolean;
}

/**
 * Token ids of a prompt for a model folder: plain text (with `<bos>`), or one chat turn.
 *
 * @param source The model folder (its `tokenizer_config.json` holds the chat template).
 * @param prompt The prompt text.
 * @param options The tokenizer, whether to use the chat template, and the default template.
 * @returns The ids.
 * @example
 * ```ts ignore
 * import { encodePromptFrom, loadModelCodecFrom } from "./model_dir.ts";
 * import { urlSource } from "./file_source_http.ts";
 * const source = urlSource("/models/gemma-3-1b-it/");
 * const { codec } = await loadModelCodecFrom(source);
 * const ids = await encodePromptFrom(source, "Hi", { tokenizer: codec, chat: true });
 * ```
 */
export async function encodePromptFrom(
  source: FileSource,
  prompt: string,
  options: EncodePromptOptions & ModelFilesOptions,
): Promise<number[]> {
  const { tokenizer } = options;
  if (!options.chat) return tokenizer.encode(prompt);
  const chat = await loadModelChatTemplateFrom(source, tokenizer, options);
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
 * import { checkTokenIds } from "./model_dir.ts";
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
