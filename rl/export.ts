/**
 * A finished training phase's export, `export/<phase>/` in the run (any runtime; written through
 * the run's `RunStore`):
 *
 * - LoRA runs: a Hugging Face PEFT adapter — `adapter_config.json` + `adapter_model.safetensors`
 *   (F32, `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`, …) — that peft loads
 *   on the base model (`PeftModel.from_pretrained(base, "runs/<id>/export/grpo")`) and
 *   `loadGemma3(base, { adapter })` loads here; with `export.merged` also `merged/`, the base
 *   model with the update merged in (`config.json`, `model.safetensors` in the base's dtype,
 *   bf16 rounded to nearest-even, and the base folder's tokenizer files).
 * - Full fine-tuning (the demo): the model folder — `config.json` (Hugging Face Gemma 3),
 *   `model.safetensors` (F32, the trained weights exactly), the tokenizer files and, for the
 *   demo's compact vocabulary, `vocab_map.json`, which maps the model's ids to the tokenizer's.
 *
 * @module
 */

import { type MergeableModel, modelExportConfigJson } from "../model/peft.ts";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, peftAdapterFiles } from "../model/peft.ts";
import type { VocabMap } from "../model/vocab_map.ts";
import {
  type ExportFile,
  jsonExportFile,
  modelSafetensorsExportFile,
  safetensorsExportFile,
} from "./export_files.ts";
import type { PhaseContext } from "./pipeline.ts";
import type { RunSession } from "./run_session.ts";
import { DEMO_SOURCE, type TrainConfig } from "./train_config.ts";

/** The sub-folder of a LoRA export that holds the merged model (`export.merged`). */
export const MERGED_EXPORT_DIR = "merged";

/** The file of a compact-vocabulary model folder that maps its ids (see `vocab_map.ts`). */
export const EXPORT_VOCAB_MAP_FILE = "vocab_map.json";

/** Options of {@linkcode phaseExportFiles}. */
export interface PhaseExportOptions {
  /** LoRA models: also the merged model in `merged/` (default false). */
  readonly merged?: boolean;
  /** `base_model_name_or_path` of `adapter_config.json` (default null). */
  readonly baseModelNameOrPath?: string | null;
  /** The compact vocabulary the model reads (the demo), written as `vocab_map.json`. */
  readonly vocabMap?: VocabMap | null;
  /** Tokenizer files of the base model, copied into each model folder of the export. */
  readonly tokenizerFiles?: readonly ExportFile[];
}

function underFolder(folder: string, file: ExportFile): ExportFile {
  return { name: `${folder}/${file.name}`, chunks: () => file.chunks() };
}

/**
 * The files of a phase's export (nothing is read from the GPU until a file is written): the
 * PEFT adapter (plus `merged/` when asked) for a model with a LoRA adapter, else the model
 * folder (F32, the trained weights exactly).
 *
 * @param model The trained model (`model.lora` set for LoRA runs).
 * @param options Merged model, base name, vocabulary map, tokenizer files.
 * @returns The files.
 * @throws {PeftError} When the adapter's layers adapt different projection sets.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { gemma3Config } from "../model/config.ts";
 * import { Gemma3 } from "../model/gemma3.ts";
 * import { initGemma3Weights } from "../model/gemma3_weights.ts";
 * import { LoraAdapter, loraConfig } from "../model/lora.ts";
 * import { phaseExportFiles } from "./export.ts";
 *
 * const gpu = await Gpu.create();
 * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 1,
 *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
 * const base = new Gemma3(gpu, config, initGemma3Weights(gpu, config, { dtype: "bf16" }));
 * const tuned = base.withLora(LoraAdapter.init(gpu, config, loraConfig({ rank: 2, alpha: 4 })));
 * const files = phaseExportFiles(tuned, { merged: true });
 * console.log(files.map((f) => f.name));
 * // ["adapter_config.json", "adapter_model.safetensors", "merged/config.json",
 * //  "merged/model.safetensors"]
 * gpu.destroy();
 * ```
 */
export function phaseExportFiles(
  model: MergeableModel,
  options: PhaseExportOptions = {},
): ExportFile[] {
  const tokenizerFiles = options.tokenizerFiles ?? [];
  const lora = model.lora;
  if (lora === null) {
    const files = [
      jsonExportFile("config.json", modelExportConfigJson(model.config, "F32")),
      modelSafetensorsExportFile("model.safetensors", model, "F32"),
      ...tokenizerFiles,
    ];
    if (options.vocabMap) {
      files.push(jsonExportFile(EXPORT_VOCAB_MAP_FILE, options.vocabMap.toJSON()));
    }
    return files;
  }
  const adapter = peftAdapterFiles(lora, {
    baseModelNameOrPath: options.baseModelNameOrPath ?? null,
  });
  const files = [
    jsonExportFile(PEFT_CONFIG_FILE, adapter.config),
    safetensorsExportFile(
      PEFT_WEIGHTS_FILE,
      adapter.tensors.map(([name, t]) => ({
        name,
        dtype: "F32" as const,
        shape: t.shape,
        read: async () => (await t.read()) as Float32Array,
      })),
    ),
  ];
  if (options.merged) {
    // "bf16 like the base": the merged model keeps the base checkpoint's precision.
    const dtype = model.weights.layers[0]?.q_proj.dtype === "bf16" ? "BF16" : "F32";
    files.push(
      jsonExportFile(
        `${MERGED_EXPORT_DIR}/config.json`,
        modelExportConfigJson(model.config, dtype),
      ),
      modelSafetensorsExportFile(`${MERGED_EXPORT_DIR}/model.safetensors`, model, dtype),
      ...tokenizerFiles.map((f) => underFolder(MERGED_EXPORT_DIR, f)),
    );
  }
  return files;
}

/**
 * What a run's adapter names as its base model: the Hugging Face repo id when `model.path` is
 * that repo's folder in the hub cache (so `AutoPeftModelForCausalLM` finds it anywhere), else
 * `model.path`.
 *
 * @param config The run's config.
 * @returns The name, or null for the demo model.
 * @example
 * ```ts
 * import { exportBaseModelName } from "./export.ts";
 * import { presetConfig } from "./presets.ts";
 * import { createTrainConfig } from "./train_config.ts";
 * const c = presetConfig("gemma3-1b-gsm8k");
 * const path = "/h/hub/models--google--gemma-3-1b-it/snapshots/abc";
 * const named = createTrainConfig({ ...c, model: { ...c.model, path } });
 * console.log(exportBaseModelName(named)); // "google/gemma-3-1b-it"
 * ```
 */
export function exportBaseModelName(config: TrainConfig): string | null {
  const path = config.model.path;
  if (path === null || path === DEMO_SOURCE) return null;
  const cached = `models--${config.model.hubRepoId.replaceAll("/", "--")}`;
  return path.split(/[/\\]/).includes(cached) ? config.model.hubRepoId : path;
}

/**
 * Writes a finished training phase's export (`export/<phase>/`) through the run's store: the
 * session's model as {@linkcode phaseExportFiles} describes it, with the tokenizer files the
 * input sources provide (`InputSources.tokenizerFiles`) and the demo's vocabulary map.
 *
 * @param session The run's session (its model holds the phase's final weights).
 * @param ctx The phase's context (`writeExport`, the config's `export` section).
 * @returns The export's reference (`<runDir>/export/<phase>`).
 * @example
 * ```ts ignore
 * const result = await runTrainingLoop(ctx, loop);
 * if (result.status === "completed") await writePhaseExport(session, ctx);
 * ```
 */
export async function writePhaseExport(session: RunSession, ctx: PhaseContext): Promise<string> {
  const config = ctx.config;
  const model = await session.model();
  const merged = config.export.merged && model.lora !== null;
  const needsTokenizer = model.lora === null || merged;
  const sources = session.inputs.sources;
  const tokenizerFiles = needsTokenizer && config.model.path !== null
    ? await sources.tokenizerFiles?.(config.model.path) ?? []
    : [];
  const files = phaseExportFiles(model, {
    merged,
    baseModelNameOrPath: exportBaseModelName(config),
    vocabMap: await session.inputs.vocabMap(),
    tokenizerFiles,
  });
  return await ctx.writeExport(files);
}
