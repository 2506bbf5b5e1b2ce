/**
 * Loading a Gemma 3 model from a Hugging Face folder on disk (`config.json` +
 * `model.safetensors` or a sharded index), optionally with a PEFT LoRA adapter:
 * `loadGemma3From` (`gemma3_load.ts`) over a `dirSource`.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import type { Gemma3 } from "./gemma3.ts";
import { loadGemma3From } from "./gemma3_load.ts";
import { dirSource } from "./file_source_fs.ts";

/** Options of {@linkcode loadGemma3}. */
export interface LoadGemma3Options {
  /** Runtime to load onto (default: a new one). */
  readonly gpu?: Gpu;
  /** A PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`) to apply. */
  readonly adapter?: string;
}

/**
 * Loads a Gemma 3 text model from a Hugging Face model folder.
 *
 * @param dir Folder with `config.json` and `model.safetensors` (or an index with shards).
 * @param options Runtime and optional adapter.
 * @returns The model on the GPU.
 * @throws {SafetensorsError} when a file is damaged (its tensors do not cover its data section
 *   exactly, like the reference library checks) or a weight holds NaN or ±Infinity
 *   (`non_finite`, naming the file and tensor).
 * @example
 * ```ts ignore
 * const gemma = await loadGemma3("models/gemma-3-1b-it");
 * const ids = await gemma.generate([[2, 105]], { maxNewTokens: 8, temperature: 0 });
 * ```
 */
export async function loadGemma3(dir: string, options: LoadGemma3Options = {}): Promise<Gemma3> {
  return await loadGemma3From(dirSource(dir), {
    gpu: options.gpu,
    adapter: options.adapter ? dirSource(options.adapter) : undefined,
  });
}
