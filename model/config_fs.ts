/**
 * Reading a checkpoint folder's `config.json` from disk (Deno).
 *
 * @module
 */

import { ConfigError, type Gemma3Config } from "./config.ts";
import { parseGemma3Config } from "./config_hf.ts";

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
  const file = path.endsWith(".json") ? path : `${path.replace(/[/\\]$/, "")}/config.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new ConfigError("config.json", `cannot read ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError("config.json", `${file} is not JSON: ${(e as Error).message}`);
  }
  return parseGemma3Config(json, file);
}
