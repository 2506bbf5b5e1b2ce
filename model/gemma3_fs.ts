/**
 * Loading a Gemma 3 model from a Hugging Face folder (`config.json` + `model.safetensors` or a
 * sharded index), optionally with a PEFT LoRA adapter.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { loadGemma3Config } from "./config_fs.ts";
import { Gemma3 } from "./gemma3.ts";
import { disposeGemma3Weights, uploadGemma3Weights } from "./gemma3_weights.ts";
import type { LoraAdapter } from "./lora.ts";
import { openCheckpoint } from "./safetensors_fs.ts";

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
  const config = await loadGemma3Config(dir);
  const gpu = options.gpu ?? await Gpu.create();
  const checkpoint = await openCheckpoint(dir);
  try {
    const weights = await uploadGemma3Weights(gpu, config, checkpoint);
    let adapter: LoraAdapter | null = null;
    if (options.adapter) {
      const { loadPeftAdapter } = await import("./peft_fs.ts");
      try {
        adapter = await loadPeftAdapter(gpu, config, options.adapter);
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
