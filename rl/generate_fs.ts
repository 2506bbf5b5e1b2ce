/**
 * Generation from a folder on disk (Deno only), the library side of `deno task generate`: a
 * Hugging Face Gemma 3 folder, a run folder (`runs/<id>`: the export of its last finished
 * training phase, or `phase`) or an export folder (`export_source_fs.ts`). The tokenizer and
 * chat template come from the model folder (compact ids for the demo's export); the text
 * streams out as tokens arrive.
 *
 * @module
 */

import { dirSource } from "../model/file_source_fs.ts";
import { GEMMA3_DEFAULTS } from "../model/model_dir_fs.ts";
import { resolveModelSource } from "./export_source_fs.ts";
import {
  type GeneratedText,
  generateFromFiles,
  type GenerateFromFilesOptions,
} from "./generate_text.ts";

/**
 * Options of {@linkcode generateFromModelDir}: what to load, how to wrap the prompt, and the
 * sampling as `generate` takes it (its defaults: temperature 1, top-k and top-p off, seed 0).
 */
export type GenerateFromModelDirOptions =
  & Omit<GenerateFromFilesOptions, "adapter" | "defaultTokenizer" | "defaultTokenizerConfig">
  & {
    /** A run folder's export phase (`sft` or `grpo`; default null: the last finished). */
    readonly phase?: string | null;
    /** A PEFT adapter to apply to a plain model folder (default null). */
    readonly adapter?: string | null;
  };

/** What {@linkcode generateFromModelDir} produced (`label`: the folder, or the run and phase). */
export type GenerateFromModelDirResult = GeneratedText;

/**
 * Generates a continuation of one prompt from a model, run or export folder: resolves the
 * folder, encodes the prompt with its tokenizer (compact for the demo's export), checks the ids
 * fit the model, generates and streams the text to `onText`.
 *
 * @param path A model, run or export folder.
 * @param prompt The prompt text.
 * @param options What to load, prompt wrapping, sampling, `onText` and the device.
 * @returns The text, ids and timing.
 * @throws {ModelDirError} For a missing folder or export, or a prompt the model cannot read.
 * @example
 * ```ts ignore
 * import { generateFromModelDir } from "./generate_fs.ts";
 * const { text } = await generateFromModelDir("runs/2026-05-01T12-00-00", "2 + 2 = ?", {
 *   recipe: true,
 *   maxNewTokens: 64,
 *   onText: (t) => console.log(t),
 * });
 * ```
 */
export async function generateFromModelDir(
  path: string,
  prompt: string,
  options: GenerateFromModelDirOptions,
): Promise<GenerateFromModelDirResult> {
  const source = await resolveModelSource(path, options);
  const result = await generateFromFiles(dirSource(source.model), prompt, {
    ...options,
    ...GEMMA3_DEFAULTS,
    adapter: source.adapter === null ? null : dirSource(source.adapter),
  });
  return { ...result, label: source.label };
}
