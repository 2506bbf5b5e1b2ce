/**
 * Loading a Gemma 3 model from any file source: a Hugging Face folder (`config.json` +
 * `model.safetensors`, or a sharded index and its shards) over HTTP, picked files, OPFS or
 * memory, optionally with a PEFT LoRA adapter. Weights go to the GPU one tensor at a time by
 * byte ranges. `gemma3_fs.ts` loads a folder on disk through the same code.
 *
 * @module
 */

import { Gpu, type GpuOptions } from "../kernels/gpu.ts";
import { loadGemma3ConfigFrom } from "./config_hf.ts";
import { Gemma3 } from "./gemma3.ts";
import { disposeGemma3Weights, uploadGemma3Weights } from "./gemma3_weights.ts";
import type { LoraAdapter } from "./lora.ts";
import { type FileSource, subSource } from "./file_source.ts";
import { urlSource, type UrlSourceOptions } from "./file_source_http.ts";
import { loadPeftAdapterFrom } from "./peft_load.ts";
import { openCheckpointFrom } from "./safetensors_index.ts";

/** Options of {@linkcode loadGemma3From}. */
export interface LoadGemma3FromOptions {
  /** Runtime to load onto (default: a new one). */
  readonly gpu?: Gpu;
  /** Options of the new runtime when `gpu` is not given (e.g. kernel tuning). */
  readonly gpuOptions?: GpuOptions;
  /**
   * A PEFT adapter (`adapter_config.json` + `adapter_model.safetensors`) to apply: its own
   * source, or a sub-folder of the model's source (`""` for the model folder itself).
   */
  readonly adapter?: FileSource | string;
}

/**
 * Loads a Gemma 3 text model from a file source: `config.json`, then `model.safetensors`
 * (preferred) or `model.safetensors.index.json` and its shards, then the optional adapter.
 *
 * @param source The model folder (`urlSource`, `fileListSource`, `directoryHandleSource`,
 *   `memorySource`, or `dirSource` in Deno).
 * @param options Runtime and optional adapter.
 * @returns The model on the GPU (`logits`, `generate`, `withLora`, …).
 * @throws {ConfigError} when `config.json` is missing, not JSON or not a Gemma 3 config.
 * @throws {SafetensorsError} when a file is missing (`missing_file`, `missing_shard`), cannot
 *   be read (`io`; its `cause` is the source's `FileSourceError` with the URL and HTTP
 *   status), is damaged, or a weight holds NaN or ±Infinity (`non_finite`).
 * @throws {WeightError} naming a missing or mis-shaped tensor.
 * @throws {PeftError} for a bad adapter.
 * @example
 * ```ts ignore
 * import { fileListSource } from "./file_source.ts";
 * import { loadGemma3From } from "./gemma3_load.ts";
 * // <input type="file" webkitdirectory> holding a Hugging Face model folder
 * const gemma = await loadGemma3From(fileListSource(input.files!));
 * const [ids] = await gemma.generate([[2, 105]], { maxNewTokens: 8, temperature: 0 });
 * ```
 */
export async function loadGemma3From(
  source: FileSource,
  options: LoadGemma3FromOptions = {},
): Promise<Gemma3> {
  const config = await loadGemma3ConfigFrom(source);
  const gpu = options.gpu ?? await Gpu.create(options.gpuOptions);
  const checkpoint = await openCheckpointFrom(source);
  try {
    const weights = await uploadGemma3Weights(gpu, config, checkpoint);
    let adapter: LoraAdapter | null = null;
    if (options.adapter !== undefined) {
      const adapterSource = typeof options.adapter === "string"
        ? subSource(source, options.adapter)
        : options.adapter;
      try {
        adapter = await loadPeftAdapterFrom(gpu, config, adapterSource);
      } catch (e) {
        disposeGemma3Weights(weights);
        throw e;
      }
    }
    return new Gemma3(gpu, config, weights, adapter);
  } finally {
    checkpoint.close();
  }
}

/** Options of {@linkcode loadGemma3FromUrl}. */
export interface LoadGemma3FromUrlOptions extends UrlSourceOptions {
  /** Runtime to load onto (default: a new one). */
  readonly gpu?: Gpu;
  /** Options of the new runtime when `gpu` is not given (e.g. kernel tuning). */
  readonly gpuOptions?: GpuOptions;
  /**
   * A PEFT adapter folder: a URL (relative ones resolve against the model's folder URL, so
   * `"adapter/"` is a sub-folder and the model's own URL its folder), or any source.
   */
  readonly adapter?: string | URL | FileSource;
}

/**
 * Loads a Gemma 3 text model from a folder served over HTTP: {@linkcode loadGemma3From} over
 * `urlSource(url)`. Weights are read by HTTP range requests (one per tensor, or per part of a
 * huge one), so the server must answer `Range` with 206.
 *
 * @param url The model folder's URL (relative URLs resolve against the page).
 * @param options Runtime, adapter, and the `urlSource` options (headers, fetch).
 * @returns The model on the GPU.
 * @throws As {@linkcode loadGemma3From}; errors name the URL and the HTTP status.
 * @example
 * ```ts ignore
 * import { loadGemma3FromUrl } from "./gemma3_load.ts";
 * const gemma = await loadGemma3FromUrl("/models/gemma-3-1b-it/", { adapter: "adapter/" });
 * const logits = await gemma.logits([2, 105, 2364]); // [3 × vocab]
 * ```
 */
export async function loadGemma3FromUrl(
  url: string | URL,
  options: LoadGemma3FromUrlOptions = {},
): Promise<Gemma3> {
  const { gpu, gpuOptions, adapter, ...sourceOptions } = options;
  const source = urlSource(url, sourceOptions);
  const adapterSource = typeof adapter === "string" || adapter instanceof URL
    ? urlSource(new URL(adapter, source.label), sourceOptions)
    : adapter;
  return await loadGemma3From(source, { gpu, gpuOptions, adapter: adapterSource });
}
