/**
 * The Deno {@linkcode InputSources} of a training run: a model folder's `tokenizer.json` (else
 * Gemma 3's built-in tokenizer), `loadGemma3`, and the GSM8K and OpenThoughts loaders.
 *
 * @module
 */

import { loadGsm8k } from "../data/gsm8k_fs.ts";
import { loadOpenThoughts } from "../data/open_thoughts_fs.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { loadModelTokenizer } from "../model/model_dir_fs.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
import type { InputSources } from "./run_inputs.ts";
import { DEMO_SOURCE } from "./train_config.ts";

/**
 * Input sources that read files.
 *
 * @param options `tokenizer`: use this one instead of reading one (optional).
 * @returns The sources.
 * @example
 * ```ts
 * import { fsInputSources } from "./run_inputs_fs.ts";
 * const tokenizer = await fsInputSources().tokenizer("demo"); // Gemma 3's built-in tokenizer
 * if (tokenizer.encode("<end_of_turn>", { addSpecialTokens: false }).length !== 1) {
 *   throw new Error();
 * }
 * ```
 */
export function fsInputSources(options: { readonly tokenizer?: Tokenizer } = {}): InputSources {
  return {
    async tokenizer(modelPath) {
      if (options.tokenizer) return options.tokenizer;
      if (modelPath !== null && modelPath !== DEMO_SOURCE) {
        return await loadModelTokenizer(modelPath);
      }
      return await loadDefaultTokenizer();
    },
    loadModel: (path, gpu) => loadGemma3(path, { gpu }),
    loadOpenThoughts: (path, o) => loadOpenThoughts(path, o),
    loadGsm8k: (path, o) => loadGsm8k(path, o),
  };
}
