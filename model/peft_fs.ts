/**
 * PEFT LoRA adapters and merged weights on disk (Deno): load `adapter_config.json` +
 * `adapter_model.safetensors` onto the GPU (`loadPeftAdapterFrom` of `peft_load.ts` over a
 * `dirSource`), save an adapter in the same format (F32, PEFT
 * names, A `[r, in]`, B `[out, r]`) so Hugging Face peft and vLLM load it, and export merged
 * full weights (`W + (alpha/r)·B·A`) as a Hugging Face checkpoint.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import { joinPath, writeTextAtomic } from "../base/atomic_fs.ts";
import { ConfigError, type Gemma3Config } from "./config.ts";
import type { LoraAdapter } from "./lora.ts";
import { dirSource } from "./file_source_fs.ts";
import {
  type BuildPeftConfigOptions,
  type MergeableModel,
  mergedModelTensors,
  modelExportConfigJson,
  PEFT_CONFIG_FILE,
  PEFT_WEIGHTS_FILE,
  peftAdapterFiles,
  PeftError,
} from "./peft.ts";
import { loadPeftAdapterFrom } from "./peft_load.ts";
import { SafetensorsError } from "./safetensors.ts";
import { type TensorSpec, writeSafetensorsStreaming } from "./safetensors_fs.ts";

/**
 * Loads a PEFT LoRA adapter folder onto the GPU for a model: `loadPeftAdapterFrom` over a
 * `dirSource` (validation as described there).
 *
 * @param gpu Runtime.
 * @param config The model's config.
 * @param dir Adapter folder.
 * @returns The adapter (f32 tensors).
 * @throws {PeftError} naming the file, tensor and expectation.
 * @throws {SafetensorsError} when the weights file itself is malformed, or `non_finite` when a
 *   weight holds NaN or ±Infinity.
 * @example
 * ```ts ignore
 * const adapter = await loadPeftAdapter(gpu, model.config, "runs/sft/adapter");
 * const tuned = model.withLora(adapter);
 * ```
 */
export async function loadPeftAdapter(
  gpu: Gpu,
  config: Gemma3Config,
  dir: string,
): Promise<LoraAdapter> {
  return await loadPeftAdapterFrom(gpu, config, dirSource(dir));
}

/** Options of {@linkcode savePeftAdapter}. */
export type SavePeftOptions = Pick<BuildPeftConfigOptions, "baseModelNameOrPath">;

/** A model that may carry a LoRA adapter (a `Gemma3`, or a view from `withLora`). */
export interface AdapterHolder {
  /** The attached adapter, or null. */
  readonly lora: LoraAdapter | null;
}

/**
 * Writes an adapter as a PEFT folder: `adapter_model.safetensors` (F32, canonical PEFT names,
 * sorted by name as `safetensors` orders them, `{"format": "pt"}` metadata) and
 * `adapter_config.json` — the contents `peftAdapterFiles` builds. Each file is written
 * atomically; the folder is created when missing. The files that Hugging Face peft and vLLM
 * load.
 *
 * @param adapter The adapter, or a model carrying one (`model.lora`).
 * @param dir Destination folder.
 * @param options `baseModelNameOrPath` for the config (default null).
 * @throws {ConfigError} `lora` when given a model without an adapter.
 * @throws {PeftError} `unsupported` when layers adapt different projection sets (PEFT cannot
 *   express that); `io` when the folder cannot be made or written.
 * @throws {SafetensorsError} `io` when writing the weights fails (nothing partial is left).
 * @example
 * ```ts ignore
 * await savePeftAdapter(model, "runs/sft/adapter", {
 *   baseModelNameOrPath: "google/gemma-3-1b-it",
 * });
 * ```
 */
export async function savePeftAdapter(
  adapter: LoraAdapter | AdapterHolder,
  dir: string,
  options: SavePeftOptions = {},
): Promise<void> {
  const lora = "lora" in adapter ? adapter.lora : adapter;
  if (lora === null) throw new ConfigError("lora", "this model has no LoRA adapter to save");
  const { config: json, tensors: params } = peftAdapterFiles(lora, {
    baseModelNameOrPath: options.baseModelNameOrPath,
    dir,
  });
  const specs: TensorSpec[] = params.map(([name, t]) => ({ name, dtype: "F32", shape: t.shape }));
  try {
    await Deno.mkdir(dir, { recursive: true });
    await writeSafetensorsStreaming(
      joinPath(dir, PEFT_WEIGHTS_FILE),
      specs,
      async (i) => (await params[i][1].read()) as Float32Array,
      { format: "pt" },
    );
    await writeTextAtomic(joinPath(dir, PEFT_CONFIG_FILE), JSON.stringify(json, null, 2) + "\n");
  } catch (e) {
    if (e instanceof PeftError || e instanceof SafetensorsError) throw e;
    throw new PeftError("io", dir, null, `cannot write the adapter: ${(e as Error).message}`);
  }
}

export type { MergeableModel } from "./peft.ts";

/** Options of {@linkcode saveMergedWeights}. */
export interface SaveMergedOptions {
  /**
   * Stored dtype: `F32` (default; the merge loses nothing beyond float32 rounding) or `BF16`
   * (half the size, like the released checkpoints; the merged update is rounded to bf16).
   */
  readonly dtype?: "F32" | "BF16";
}

/**
 * Writes the model's weights with its LoRA update merged in (`W + (alpha/r)·B·A`, computed in
 * float64 on the host, rounded once) as a Hugging Face Gemma 3 checkpoint: `model.safetensors`
 * (HF names, `{"format": "pt"}`) and `config.json` (`gemma3ConfigToJson`, `torch_dtype` set to
 * the stored dtype), loadable by transformers' `Gemma3ForCausalLM.from_pretrained` and by
 * `loadGemma3`. Without an adapter (e.g. on `model.withLora(null)`) the base weights are written.
 * Tokenizer files are not copied. Tensors are read back and written one at a time.
 *
 * @param model The model.
 * @param dir Destination folder (created when missing).
 * @param options Stored dtype.
 * @throws {PeftError} `io` when the folder cannot be made or written.
 * @throws {SafetensorsError} `io` when writing the weights fails (nothing partial is left).
 * @example
 * ```ts ignore
 * const model = await loadGemma3("models/gemma-3-1b-it", { adapter: "runs/sft/adapter" });
 * await saveMergedWeights(model, "runs/sft/merged", { dtype: "BF16" });
 * ```
 */
export async function saveMergedWeights(
  model: MergeableModel,
  dir: string,
  options: SaveMergedOptions = {},
): Promise<void> {
  const dtype = options.dtype ?? "F32";
  if (dtype !== "F32" && dtype !== "BF16") {
    throw new PeftError("config", dir, "dtype", `expected "F32" or "BF16", got ${dtype}`);
  }
  const tensors = mergedModelTensors(model, dtype);
  const specs: TensorSpec[] = tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape }));
  const produce = (i: number) => tensors[i].read();
  const config = modelExportConfigJson(model.config, dtype);
  try {
    await Deno.mkdir(dir, { recursive: true });
    await writeSafetensorsStreaming(joinPath(dir, "model.safetensors"), specs, produce, {
      format: "pt",
    });
    await writeTextAtomic(joinPath(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  } catch (e) {
    if (e instanceof PeftError || e instanceof SafetensorsError) throw e;
    throw new PeftError("io", dir, null, `cannot write: ${(e as Error).message}`);
  }
}
