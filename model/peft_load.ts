/**
 * Loading a PEFT LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`) from any
 * file source onto the GPU; `peft_fs.ts` loads one from a folder on disk.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { Gemma3Config } from "./config.ts";
import type { LoraTarget } from "./gemma3_weights.ts";
import { LoraAdapter, type LoraPair } from "./lora.ts";
import { type FileSource, FileSourceError } from "./file_source.ts";
import {
  expectedPeftTensors,
  parsePeftAdapterConfig,
  parsePeftTensorName,
  PEFT_CONFIG_FILE,
  PEFT_WEIGHTS_FILE,
  PeftError,
} from "./peft.ts";
import { openSafetensorsIn } from "./safetensors.ts";
import { decodeFloat32 } from "./safetensors_dtype.ts";

async function readAdapterConfig(source: FileSource) {
  const file = source.path(PEFT_CONFIG_FILE);
  let text: string;
  try {
    text = await source.readText(PEFT_CONFIG_FILE);
  } catch (e) {
    if (!(e instanceof FileSourceError)) throw e;
    throw new PeftError("io", file, null, `cannot read the adapter config: ${e.detail}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PeftError("config", file, null, `not valid JSON (${(e as Error).message})`);
  }
  return parsePeftAdapterConfig(json, file);
}

const FLOAT_DTYPES: readonly string[] = ["F32", "BF16", "F16"];

/**
 * Loads a PEFT LoRA adapter folder from a file source onto the GPU for a model: validates `adapter_config.json`
 * (see `parsePeftAdapterConfig`) and every tensor of `adapter_model.safetensors` (names in any
 * of PEFT's and vLLM's prefix variants, shapes against the model config, dtype F32/BF16/F16,
 * widened to f32). Every adapted (layer, projection) must have both A and B, and nothing else
 * may be in the file.
 *
 * @param gpu Runtime.
 * @param config The model's config.
 * @param source The adapter folder (on disk, over HTTP, picked files, in memory).
 * @returns The adapter (f32 tensors).
 * @throws {PeftError} naming the file, tensor and expectation.
 * @throws {SafetensorsError} when the weights file itself is malformed, or `non_finite` when a
 *   weight holds NaN or ±Infinity.
 * @example
 * ```ts ignore
 * import { urlSource } from "./file_source_http.ts";
 * const source = urlSource("/models/gemma-3-1b-it/adapter/");
 * const tuned = model.withLora(await loadPeftAdapterFrom(gpu, model.config, source));
 * ```
 */
export async function loadPeftAdapterFrom(
  gpu: Gpu,
  config: Gemma3Config,
  source: FileSource,
): Promise<LoraAdapter> {
  const settings = await readAdapterConfig(source);
  const file = source.path(PEFT_WEIGHTS_FILE);
  for (const layer of settings.layers ?? []) {
    if (layer >= config.numLayers) {
      throw new PeftError(
        "config",
        source.path(PEFT_CONFIG_FILE),
        "layers_to_transform",
        `layer ${layer} does not exist; the model has ${config.numLayers} layers`,
      );
    }
  }
  if (!(await source.exists(PEFT_WEIGHTS_FILE))) {
    const bin = await source.exists("adapter_model.bin");
    throw new PeftError(
      "io",
      file,
      null,
      bin
        ? "not found; only adapter_model.bin (a PyTorch pickle) is there, which webtune does " +
          "not read: re-save it with safetensors (peft's default)"
        : "not found",
    );
  }
  const st = await openSafetensorsIn(source, PEFT_WEIGHTS_FILE);
  const uploaded: Tensor[] = [];
  try {
    const expected = expectedPeftTensors(config, settings);
    const byKey = new Map(expected.map((e) => [`${e.layer}.${e.target}.${e.which}`, e]));
    const stored = new Map<string, string>(); // key → stored name
    for (const name of st.tensors.keys()) {
      const ref = parsePeftTensorName(name);
      if (ref === null) {
        throw new PeftError(
          "unexpected_tensor",
          file,
          name,
          "is not a lora_A/lora_B weight of a decoder projection " +
            `(expected names like ${expected[0]?.name ?? "base_model.model.model.layers.0.…"})`,
        );
      }
      const key = `${ref.layer}.${ref.target}.${ref.which}`;
      if (!byKey.has(key)) {
        throw new PeftError(
          "unexpected_tensor",
          file,
          name,
          `layer ${ref.layer} ${ref.target} is not adapted according to ${PEFT_CONFIG_FILE} ` +
            `(target_modules ${settings.lora.targets.join(", ")}, ` +
            `${settings.layers ? `layers ${settings.layers.join(", ")}` : "all layers"}, ` +
            `model of ${config.numLayers} layers)`,
        );
      }
      if (stored.has(key)) {
        throw new PeftError(
          "unexpected_tensor",
          file,
          name,
          `duplicates ${stored.get(key)} (same layer, projection and matrix)`,
        );
      }
      stored.set(key, name);
    }
    const layers: Partial<Record<LoraTarget, LoraPair>>[] = Array.from(
      { length: config.numLayers },
      () => ({}),
    );
    const pending = new Map<string, Tensor>();
    for (const e of expected) {
      const key = `${e.layer}.${e.target}.${e.which}`;
      const name = stored.get(key);
      if (name === undefined) {
        throw new PeftError(
          "missing_tensor",
          file,
          e.name,
          `missing (expected F32 [${e.shape.join(", ")}] for ${e.target} of layer ${e.layer})`,
        );
      }
      const info = st.info(name);
      if (info.shape.join() !== e.shape.join()) {
        throw new PeftError(
          "shape",
          file,
          name,
          `expected shape [${e.shape.join(", ")}] (lora_${e.which} of ${e.target}, r = ` +
            `${settings.lora.rank}), got [${info.shape.join(", ")}]`,
        );
      }
      if (!FLOAT_DTYPES.includes(info.dtype)) {
        throw new PeftError(
          "dtype",
          file,
          name,
          `expected F32, BF16 or F16, got ${info.dtype}`,
        );
      }
      const values = decodeFloat32(info.dtype, await st.read(name), {
        finite: { file, tensor: name }, // NaN/Inf refused while widening
      });
      const t = Tensor.fromArray(gpu, values, e.shape);
      uploaded.push(t);
      if (e.which === "A") {
        pending.set(`${e.layer}.${e.target}`, t);
      } else {
        const a = pending.get(`${e.layer}.${e.target}`)!;
        layers[e.layer][e.target] = { a, b: t };
      }
    }
    return new LoraAdapter(settings.lora, layers);
  } catch (e) {
    for (const t of uploaded) t.dispose();
    throw e;
  } finally {
    st.close();
  }
}
