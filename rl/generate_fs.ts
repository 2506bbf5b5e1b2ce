/**
 * Generation from a folder on disk (Deno only), the library side of `deno task generate`: a
 * Hugging Face Gemma 3 folder, a run folder (`runs/<id>`: the export of its last finished
 * training phase, or `phase`) or an export folder (`export_source_fs.ts`). The tokenizer and
 * chat template come from the model folder (compact ids for the demo's export); the text
 * streams out as tokens arrive.
 *
 * @module
 */

import { buildPrompt } from "../data/prompt.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { loadGemma3Config } from "../model/config_fs.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { disposeGemma3Weights } from "../model/gemma3_weights.ts";
import type { GenerateOptions } from "../model/generate.ts";
import { checkTokenIds, encodePrompt, loadModelCodec } from "../model/model_dir_fs.ts";
import { TextStream } from "../model/text_stream.ts";
import { resolveModelSource } from "./export_source_fs.ts";

/**
 * Options of {@linkcode generateFromModelDir}: what to load, how to wrap the prompt, and the
 * sampling as `generate` takes it (its defaults: temperature 1, top-k and top-p off, seed 0).
 */
export type GenerateFromModelDirOptions =
  & Pick<GenerateOptions, "maxNewTokens">
  & Partial<Pick<GenerateOptions, "temperature" | "topK" | "topP" | "seed">>
  & {
    /** A run folder's export phase (`sft` or `grpo`; default null: the last finished). */
    readonly phase?: string | null;
    /** A PEFT adapter to apply to a plain model folder (default null). */
    readonly adapter?: string | null;
    /** Wrap the prompt in the folder's chat template, one user turn (default false). */
    readonly chat?: boolean;
    /** Wrap the prompt in the recipe's prompt (`buildPrompt`), as training and eval do. */
    readonly recipe?: boolean;
    /** Receives the text as it arrives (every 8 tokens; special tokens skipped). */
    readonly onText?: (text: string) => void;
    /** The device (default: a new one, destroyed at the end). */
    readonly gpu?: Gpu;
  };

/** What {@linkcode generateFromModelDir} produced. */
export interface GenerateFromModelDirResult {
  /** The completion text as streamed (special tokens skipped). */
  readonly text: string;
  /** Generated ids (the model's ids: compact for the demo's export). */
  readonly tokens: readonly number[];
  /** Prompt length in tokens. */
  readonly promptTokens: number;
  /** Wall-clock seconds of the generation. */
  readonly seconds: number;
  /** What was loaded (the folder, or the run and phase). */
  readonly label: string;
}

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
  const { codec } = await loadModelCodec(source.model);
  const text = options.recipe ? buildPrompt(prompt) : prompt;
  const ids = await encodePrompt(source.model, text, { tokenizer: codec, chat: options.chat });
  checkTokenIds(ids, { vocabSize: (await loadGemma3Config(source.model)).vocabSize });
  const model = await loadGemma3(source.model, {
    gpu: options.gpu,
    adapter: source.adapter ?? undefined,
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
