/**
 * PEFT LoRA adapters and merged weights on disk (Deno): load `adapter_config.json` +
 * `adapter_model.safetensors` onto the GPU, save an adapter in the same format (F32, PEFT
 * names, A `[r, in]`, B `[out, r]`) so Hugging Face peft and vLLM load it, and export merged
 * full weights (`W + (alpha/r)·B·A`) as a Hugging Face checkpoint.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { Gemma3Config } from "./config.ts";
import type { LoraTarget } from "./gemma3_weights.ts";
import { LoraAdapter, type LoraPair } from "./lora.ts";
import {
  type BuildPeftConfigOptions,
  expectedPeftTensors,
  type MergeableModel,
  mergedModelTensors,
  modelExportConfigJson,
  parsePeftAdapterConfig,
  parsePeftTensorName,
  PEFT_CONFIG_FILE,
  PEFT_WEIGHTS_FILE,
  peftAdapterFiles,
  PeftError,
} from "./peft.ts";
import { joinPath, pathExists, writeTextAtomic } from "../base/atomic_fs.ts";
import { SafetensorsError } from "./safetensors.ts";
import { decodeFloat32 } from "./safetensors_dtype.ts";
import { openSafetensors, type TensorSpec, writeSafetensorsStreaming } from "./safetensors_fs.ts";

async function readAdapterConfig(dir: string) {
  const file = joinPath(dir, PEFT_CONFIG_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new PeftError(
      "io",
      file,
      null,
      `cannot read the adapter config: ${(e as Error).message}`,
    );
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
 * Loads a PEFT LoRA adapter folder onto the GPU for a model: validates `adapter_config.json`
 * (see `parsePeftAdapterConfig`) and every tensor of `adapter_model.safetensors` (names in any
 * of PEFT's and vLLM's prefix variants, shapes against the model config, dtype F32/BF16/F16,
 * widened to f32). Every adapted (layer, projection) must have both A and B, and nothing else
 * may be in the file.
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
  const settings = await readAdapterConfig(dir);
  const file = joinPath(dir, PEFT_WEIGHTS_FILE);
  for (const layer of settings.layers ?? []) {
    if (layer >= config.numLayers) {
      throw new PeftError(
        "config",
        joinPath(dir, PEFT_CONFIG_FILE),
        "layers_to_transform",
        `layer ${layer} does not exist; the model has ${config.numLayers} layers`,
      );
    }
  }
  if (!(await pathExists(file))) {
    const bin = await pathExists(joinPath(dir, "adapter_model.bin"));
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
  const st = await openSafetensors(file);
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

/** Options of {@linkcode savePeftAdapter}. */
export type SavePeftOptions = Pick<BuildPeftConfigOptions, "baseModelNameOrPath">;

/**
 * Writes an adapter as a PEFT folder: `adapter_model.safetensors` (F32, canonical PEFT names,
 * sorted by name as `safetensors` orders them, `{"format": "pt"}` metadata) and
 * `adapter_config.json` — the contents `peftAdapterFiles` builds. Each file is written
 * atomically; the folder is created when missing.
 *
 * @param adapter The adapter.
 * @param dir Destination folder.
 * @param options `baseModelNameOrPath` for the config (default null).
 * @throws {PeftError} `unsupported` when layers adapt different projection sets (PEFT cannot
 *   express that); `io` when the folder cannot be made or written.
 * @throws {SafetensorsError} `io` when writing the weights fails (nothing partial is left).
 * @example
 * ```ts ignore
 * await savePeftAdapter(model.lora!, "runs/sft/adapter", {
 *   baseModelNameOrPath: "google/gemma-3-1b-it",
 * });
 * ```
 */
export async function savePeftAdapter(
  adapter: LoraAdapter,
  dir: string,
  options: SavePeftOptions = {},
): Promise<void> {
  const { config: json, tensors: params } = peftAdapterFiles(adapter, {
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
