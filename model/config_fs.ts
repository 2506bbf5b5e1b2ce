/**
 * Reading a checkpoint folder's `config.json` from disk (Deno): `loadGemma3ConfigFrom` over a
 * `dirSource`.
 *
 * @module
 */

import type { Gemma3Config } from "./config.ts";
import { loadGemma3ConfigFrom } from "./config_hf.ts";
import { dirSource, fileInDir } from "./file_source_fs.ts";

/**
 * Reads and parses `config.json` from a checkpoint folder (or a `.json` file given directly).
 *
 * @param path A folder holding `config.json`, or the JSON file itself.
 * @returns The frozen, validated config.
 * @throws {ConfigError} `field` "config.json" when the file is missing or not JSON; otherwise
 *   the offending field (see `parseGemma3Config`).
 * @example
 * ```ts
 * import { loadGemma3Config } from "./config_fs.ts";
 * const config = await loadGemma3Config("../shared/fixtures/gemma3-tiny-a");
 * console.log(config.hiddenSize); // 64
 * ```
 */
export async function loadGemma3Config(path: string): Promise<Gemma3Config> {
  if (path.endsWith(".json")) {
    const { source, name } = fileInDir(path);
    return await loadGemma3ConfigFrom(source, { file: name });
  }
  return await loadGemma3ConfigFrom(dirSource(path));
}
