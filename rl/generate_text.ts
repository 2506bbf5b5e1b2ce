/**
 * Generation from a model folder in any runtime (a `FileSource`: served over HTTP, picked in a
 * browser, in OPFS, or on disk): encodes the prompt with the folder's tokenizer (compact ids for
 * the demo's export), checks the ids fit the model, loads it (with an optional PEFT adapter),
 * generates and streams the text. `generate_fs.ts` resolves run and export folders on disk to
 * this.
 *
 * @module
 */

import { buildPrompt } from "../data/prompt.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { loadGemma3ConfigFrom } from "../model/config_hf.ts";
import type { FileSource } from "../model/file_source.ts";
import { loadGemma3From } from "../model/gemma3_load.ts";
import { disposeGemma3Weights } from "../model/gemma3_weights.ts";
import type { GenerateOptions } from "../model/generate.ts";
import {
  checkTokenIds,
  encodePromptFrom,
  loadModelCodecFrom,
  type ModelFilesOptions,
} from "../model/model_dir.ts";
import { TextStream } from "../model/text_stream.ts";

/**
 * Options of {@linkcode generateFromFiles}: the adapter, how to wrap the prompt, the sampling
 * as `generate` takes it (its defaults: temperature 1, top-k and top-p off, seed 0), and the
 * tokenizer of folders without one.
 */
export type GenerateFromFilesOptions =
  & Pick<GenerateOptions, "maxNewTokens">
  & Partial<Pick<GenerateOptions, "temperature" | "topK" | "topP" | "seed">>
  & ModelFilesOptions
  & {
    /** A PEFT adapter folder to apply (default none). */
    readonly adapter?: FileSource | null;
    /** Wrap the prompt in the folder's chat template, one user turn (default false). */
    readonly chat?: boolean;
    /** Wrap the prompt in the recipe's prompt (`buildPrompt`), as training and eval do. */
    readonly recipe?: boolean;
    /** Receives the text as it arrives (every 8 tokens; special tokens skipped). */
    readonly onText?: (text: string) => void;
    /** The device (default: a new one, destroyed at the end). */
    readonly gpu?: Gpu;
  };

/** What {@linkcode generateFromFiles} produced. */
export interface GeneratedText {
  /** The completion text as streamed (special tokens skipped). */
  readonly text: string;
  /** Generated ids (the model's ids: compact for the demo's export). */
  readonly tokens: readonly number[];
  /** Prompt length in tokens. */
  readonly promptTokens: number;
  /** Wall-clock seconds of the generation. */
  readonly seconds: number;
  /** What was loaded (the folder's label). */
  readonly label: string;
}

/**
 * Generates a continuation of one prompt from a model folder.
 *
 * @param source The model folder (`config.json`, safetensors, tokenizer files or a demo
 *   export's `vocab_map.json`).
 * @param prompt The prompt text.
 * @param options Adapter, prompt wrapping, sampling, `onText`, the device and the tokenizer of
 *   folders without one.
 * @returns The text, ids and timing.
 * @throws {ModelDirError} For a prompt the model cannot read or a folder without a tokenizer.
 * @example
 * ```ts ignore
 * import { generateFromFiles } from "./generate_text.ts";
 * import { urlSource } from "../model/file_source_http.ts";
 * const { text } = await generateFromFiles(urlSource("/model/"), "2 + 2 = ?", {
 *   recipe: true,
 *   maxNewTokens: 64,
 *   temperature: 0,
 * });
 * ```
 */
export async function generateFromFiles(
  source: FileSource,
  prompt: string,
  options: GenerateFromFilesOptions,
): Promise<GeneratedText> {
  const files: ModelFilesOptions = {
    defaultTokenizer: options.defaultTokenizer,
    defaultTokenizerConfig: options.defaultTokenizerConfig,
  };
  const { codec } = await loadModelCodecFrom(source, files);
  const text = options.recipe ? buildPrompt(prompt) : prompt;
  const ids = await encodePromptFrom(source, text, {
    ...files,
    tokenizer: codec,
    chat: options.chat,
  });
  checkTokenIds(ids, { vocabSize: (await loadGemma3ConfigFrom(source)).vocabSize });
  const model = await loadGemma3From(source, {
    gpu: options.gpu,
    adapter: options.adapter ?? undefined,
  });
  try {
    let completion = "";
    const stream = new TextStream(codec, (t) => {
      completion += t;
      options.onText?.(t);
    });
    const started = performance.now();
    const { maxNewTokens, temperature, topK, topP, seed } = options;
    const onToken = (_sequence: number, id: number) => stream.push(id);
    await model.generate([ids], { maxNewTokens, temperature, topK, topP, seed, onToken });
    stream.finish();
    return {
      text: completion,
      tokens: [...stream.tokens],
      promptTokens: ids.length,
      seconds: (performance.now() - started) / 1000,
      label: source.label,
    };
  } finally {
    model.lora?.dispose();
    if (options.gpu) disposeGemma3Weights(model.weights);
    else model.gpu.destroy();
  }
}
