/**
 * Hugging Face PEFT LoRA adapters, browser-clean: parsing and validating `adapter_config.json`,
 * writing one, and mapping PEFT tensor names (`base_model.model.model.layers.{i}.self_attn.
 * q_proj.lora_A.weight`) to (layer, projection, A|B). File access is in `peft_fs.ts`.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { type Gemma3Config, gemma3ConfigToJson } from "./config.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { type LoraAdapter, type LoraConfig, loraConfig, type LoraPair, peftName } from "./lora.ts";
import {
  type Gemma3Weights,
  hfLayerWeightPath,
  LAYER_WEIGHTS,
  layerWeightShape,
  LORA_TARGETS,
  type LoraTarget,
} from "./gemma3_weights.ts";
import { mergeLoraWeight, toBf16Bits } from "./lora_merge.ts";

/** File name of a PEFT adapter's config. */
export const PEFT_CONFIG_FILE = "adapter_config.json";
/** File name of a PEFT adapter's weights. */
export const PEFT_WEIGHTS_FILE = "adapter_model.safetensors";

/** Kind of adapter problem. */
export type PeftErrorCode =
  | "config"
  | "unsupported"
  | "missing_tensor"
  | "unexpected_tensor"
  | "shape"
  | "dtype"
  | "io";

/**
 * A PEFT adapter that cannot be read or written; names the file and, where known, the tensor
 * (`path` is `file` or `file:tensor`).
 */
export class PeftError extends FieldError {
  override readonly name: string = "PeftError";
  /** Kind of problem. */
  readonly code: PeftErrorCode;
  /** The file (or folder) concerned. */
  readonly file: string;
  /** The tensor (or config field) concerned, or null. */
  readonly tensor: string | null;
  /**
   * @param code Kind of problem.
   * @param file The file concerned.
   * @param tensor The tensor or config field concerned, or null.
   * @param detail What was expected and what was found.
   */
  constructor(code: PeftErrorCode, file: string, tensor: string | null, detail: string) {
    super(
      tensor === null ? file : `${file}:${tensor}`,
      `${file}: ${tensor === null ? "" : `${tensor}: `}${detail}`,
    );
    this.code = code;
    this.file = file;
    this.tensor = tensor;
  }
}

/** What webtune takes from an `adapter_config.json`. */
export interface PeftAdapterConfig {
  /** Rank, alpha and target projections. */
  readonly lora: LoraConfig;
  /** PEFT `layers_to_transform`: the adapted layers, or null for all of them. */
  readonly layers: readonly number[] | null;
  /** PEFT `base_model_name_or_path` (informational). */
  readonly baseModelNameOrPath: string | null;
}

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

const isEmpty = (x: unknown): boolean =>
  x === undefined || x === null || x === false ||
  (Array.isArray(x) && x.length === 0) || (isObject(x) && Object.keys(x).length === 0);

/** Fields whose non-default values change the math in ways webtune does not implement. */
const UNSUPPORTED: readonly [field: string, why: string][] = [
  ["use_rslora", "rank-stabilised LoRA (scale alpha/sqrt(r))"],
  ["use_dora", "DoRA (weight-decomposed LoRA)"],
  ["use_qalora", "QA-LoRA"],
  ["lora_bias", "LoRA bias terms"],
  ["rank_pattern", "per-module ranks (rank_pattern)"],
  ["alpha_pattern", "per-module alphas (alpha_pattern)"],
  ["modules_to_save", "fully trained extra modules (modules_to_save)"],
  ["trainable_token_indices", "trainable token embeddings"],
  ["target_parameters", "LoRA on raw parameters (target_parameters)"],
  ["layer_replication", "layer replication"],
  ["exclude_modules", "excluded modules"],
  ["fan_in_fan_out", "fan_in_fan_out (Conv1D-style transposed weights)"],
];

function targetList(file: string, raw: unknown): string[] {
  if (raw === "all-linear") return [...LORA_TARGETS]; // PEFT: every linear layer but the head
  const list = typeof raw === "string" ? [raw] : raw;
  if (!Array.isArray(list) || list.length === 0 || !list.every((t) => typeof t === "string")) {
    throw new PeftError(
      "config",
      file,
      "target_modules",
      `expected a non-empty list of module names, got ${JSON.stringify(raw)}`,
    );
  }
  for (const t of list as string[]) {
    if (!(LORA_TARGETS as readonly string[]).includes(t)) {
      throw new PeftError(
        "unsupported",
        file,
        "target_modules",
        `module ${JSON.stringify(t)} is not one of ${LORA_TARGETS.join(", ")} ` +
          "(regular expressions and other modules are not supported)",
      );
    }
  }
  // subtle: PEFT may write the set in any order; keep webtune's canonical order.
  return LORA_TARGETS.filter((t) => (list as string[]).includes(t));
}

function layerList(file: string, raw: unknown): number[] | null {
  if (raw === null || raw === undefined) return null;
  const list = typeof raw === "number" ? [raw] : raw;
  if (!Array.isArray(list) || !list.every((l) => Number.isInteger(l) && l >= 0)) {
    throw new PeftError(
      "config",
      file,
      "layers_to_transform",
      `expected null, a layer index or a list of them, got ${JSON.stringify(raw)}`,
    );
  }
  return [...new Set(list as number[])].sort((a, b) => a - b);
}

/**
 * Validates a parsed `adapter_config.json`: `peft_type` LORA, integer `r` ≥ 1, `lora_alpha` > 0,
 * `target_modules` among the seven projections (or `"all-linear"`), `bias` "none", and none of
 * the variants webtune does not implement (rsLoRA, DoRA, rank/alpha patterns, modules_to_save,
 * …). `lora_dropout` only matters in training and is ignored.
 *
 * @param json The parsed JSON.
 * @param file File name for messages.
 * @returns The adapter's settings.
 * @throws {PeftError} `config` (bad field) or `unsupported` (a variant webtune cannot apply).
 * @example
 * ```ts
 * import { parsePeftAdapterConfig } from "./peft.ts";
 * const c = parsePeftAdapterConfig(
 *   { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"] },
 *   "adapter_config.json",
 * );
 * console.log(c.lora.rank, c.lora.targets); // 4 ["q_proj", "v_proj"]
 * ```
 */
export function parsePeftAdapterConfig(json: unknown, file: string): PeftAdapterConfig {
  if (!isObject(json)) throw new PeftError("config", file, null, "expected a JSON object");
  if (json.peft_type !== "LORA") {
    throw new PeftError(
      "unsupported",
      file,
      "peft_type",
      `expected "LORA", got ${JSON.stringify(json.peft_type)}`,
    );
  }
  for (const [field, why] of UNSUPPORTED) {
    if (!isEmpty(json[field])) {
      throw new PeftError(
        "unsupported",
        file,
        field,
        `${why} is not supported (got ${JSON.stringify(json[field])})`,
      );
    }
  }
  if (json.bias !== undefined && json.bias !== "none") {
    throw new PeftError(
      "unsupported",
      file,
      "bias",
      `only "none" is supported, got ${JSON.stringify(json.bias)}`,
    );
  }
  const r = json.r, alpha = json.lora_alpha;
  if (typeof r !== "number" || !Number.isInteger(r) || r < 1) {
    throw new PeftError("config", file, "r", `expected an integer >= 1, got ${JSON.stringify(r)}`);
  }
  if (typeof alpha !== "number" || !(Number.isFinite(alpha) && alpha > 0)) {
    throw new PeftError(
      "config",
      file,
      "lora_alpha",
      `expected a number > 0, got ${JSON.stringify(alpha)}`,
    );
  }
  const base = json.base_model_name_or_path;
  return Object.freeze({
    lora: loraConfig({ rank: r, alpha, targets: targetList(file, json.target_modules) }),
    layers: (() => {
      const l = layerList(file, json.layers_to_transform);
      return l === null ? null : Object.freeze(l);
    })(),
    baseModelNameOrPath: typeof base === "string" ? base : null,
  });
}

/** Options of {@linkcode buildPeftAdapterConfig}. */
export interface BuildPeftConfigOptions {
  /** `base_model_name_or_path` (default null), e.g. `google/gemma-3-1b-it`. */
  readonly baseModelNameOrPath?: string | null;
  /** Adapted layers when not all of them (`layers_to_transform`); default null = all. */
  readonly layers?: readonly number[] | null;
}

/**
 * An `adapter_config.json` object in the shape peft 0.21's `save_pretrained` writes (the
 * fields of the shared fixture's file, without `peft_version`, which records the writer):
 * `peft_type` LORA, `task_type` CAUSAL_LM, `r`, `lora_alpha`, `target_modules`,
 * `lora_dropout` 0, `bias` "none", `fan_in_fan_out` false, every variant switched off.
 *
 * @param lora Rank, alpha and targets.
 * @param options Base model name and adapted layers.
 * @returns A JSON-serialisable object.
 * @example
 * ```ts
 * import { loraConfig } from "./lora.ts";
 * import { buildPeftAdapterConfig } from "./peft.ts";
 * const json = buildPeftAdapterConfig(loraConfig({ rank: 8, alpha: 16 }));
 * console.log(json.r, json.task_type); // 8 "CAUSAL_LM"
 * ```
 */
export function buildPeftAdapterConfig(
  lora: LoraConfig,
  options: BuildPeftConfigOptions = {},
): Record<string, unknown> {
  return {
    alora_invocation_tokens: null,
    alpha_pattern: {},
    arrow_config: null,
    auto_mapping: null,
    base_model_name_or_path: options.baseModelNameOrPath ?? null,
    bias: "none",
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    kasa_config: null,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: options.layers ? [...options.layers] : null,
    loftq_config: {},
    lora_alpha: lora.alpha,
    lora_bias: false,
    lora_dropout: 0.0,
    lora_ga_config: null,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: null,
    monteclora_config: null,
    peft_type: "LORA",
    qalora_group_size: 16,
    r: lora.rank,
    rank_pattern: {},
    revision: null,
    target_modules: LORA_TARGETS.filter((t) => lora.targets.includes(t)),
    target_parameters: null,
    task_type: "CAUSAL_LM",
    trainable_token_indices: null,
    use_bdlora: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: false,
    velora_config: null,
  };
}

/** Where a PEFT tensor belongs. */
export interface PeftTensorRef {
  /** Decoder layer. */
  readonly layer: number;
  /** Projection. */
  readonly target: LoraTarget;
  /** `A` (`[r, in]`) or `B` (`[out, r]`). */
  readonly which: "A" | "B";
}

/**
 * Prefixes before `layers.{i}.` that PEFT, vLLM and multimodal Gemma 3 checkpoints use; the
 * first is what peft writes for `Gemma3ForCausalLM`.
 */
const NAME_PREFIXES: readonly string[] = [
  "base_model.model.model.",
  "base_model.model.",
  "model.",
  "",
  "base_model.model.model.language_model.",
  "base_model.model.language_model.model.",
  "model.language_model.",
  "language_model.model.",
];

const NAME_RE =
  /^(.*?)layers\.(\d+)\.(self_attn|mlp)\.([a-z]+_proj)\.lora_(A|B)(?:\.[A-Za-z0-9_-]+)?\.weight$/;

/**
 * Maps a PEFT tensor name to its layer, projection and matrix. Accepts the canonical
 * `base_model.model.model.layers.{i}.…` and the variants without `base_model.model.`, with a
 * multimodal `language_model` level, or with an adapter name (`lora_A.default.weight`).
 *
 * @param name Stored tensor name.
 * @returns The reference, or null when the name is not a LoRA A/B of a decoder projection.
 * @example
 * ```ts
 * import { parsePeftTensorName } from "./peft.ts";
 * parsePeftTensorName("base_model.model.model.layers.3.mlp.up_proj.lora_B.weight");
 * // { layer: 3, target: "up_proj", which: "B" }
 * ```
 */
export function parsePeftTensorName(name: string): PeftTensorRef | null {
  const m = NAME_RE.exec(name);
  if (m === null || !NAME_PREFIXES.includes(m[1])) return null;
  const target = m[4] as LoraTarget;
  if (!(LORA_TARGETS as readonly string[]).includes(target)) return null;
  if (hfLayerWeightPath(target) !== `${m[3]}.${target}`) return null; // q_proj under mlp, …
  return Object.freeze({ layer: Number(m[2]), target, which: m[5] as "A" | "B" });
}

/** One tensor an adapter must hold. */
export interface ExpectedPeftTensor extends PeftTensorRef {
  /** Canonical PEFT name. */
  readonly name: string;
  /** `[r, in]` for A, `[out, r]` for B. */
  readonly shape: readonly number[];
}

/**
 * Every tensor an adapter with these settings holds for a model, in layer → target → A, B
 * order, with canonical names.
 *
 * @param model Model config.
 * @param adapter Adapter settings.
 * @returns The tensors with their shapes.
 */
export function expectedPeftTensors(
  model: Gemma3Config,
  adapter: Pick<PeftAdapterConfig, "lora" | "layers">,
): ExpectedPeftTensor[] {
  const out: ExpectedPeftTensor[] = [];
  const r = adapter.lora.rank;
  const layers = adapter.layers ?? Array.from({ length: model.numLayers }, (_, i) => i);
  for (const layer of layers) {
    for (const target of adapter.lora.targets) {
      const [outDim, inDim] = layerWeightShape(model, target);
      for (const which of ["A", "B"] as const) {
        out.push({
          layer,
          target,
          which,
          name: peftName(layer, target, which),
          shape: which === "A" ? [r, inDim] : [outDim, r],
        });
      }
    }
  }
  return out;
}

/** Options of {@linkcode peftAdapterFiles}. */
export interface PeftAdapterFilesOptions {
  /** `base_model_name_or_path` recorded in the config (default null). */
  readonly baseModelNameOrPath?: string | null;
  /** The destination folder, named in errors (default `"adapter"`). */
  readonly dir?: string;
}

/** The contents of a PEFT adapter folder, ready to be written by any runtime. */
export interface PeftAdapterFiles {
  /** `adapter_config.json` (see {@linkcode buildPeftAdapterConfig}). */
  readonly config: Record<string, unknown>;
  /**
   * `adapter_model.safetensors` tensors (F32, canonical PEFT names, A `[r, in]`, B `[out, r]`),
   * sorted by name as `safetensors` orders them.
   */
  readonly tensors: readonly (readonly [string, Tensor])[];
}

/**
 * What a PEFT folder of an adapter holds (pure: nothing is read back or written; `peft_fs.ts`
 * writes it to disk). Layers that adapt nothing become `layers_to_transform`.
 *
 * @param adapter The adapter.
 * @param options Base model name for the config; the folder for error messages.
 * @returns The config object and the sorted tensors.
 * @throws {PeftError} `unsupported` when layers adapt different projection sets (PEFT cannot
 *   express that).
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { gemma3Config } from "./config.ts";
 * import { LoraAdapter, loraConfig } from "./lora.ts";
 * import { peftAdapterFiles } from "./peft.ts";
 *
 * const gpu = await Gpu.create();
 * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2,
 *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
 * const adapter = LoraAdapter.init(gpu, config, loraConfig({ rank: 2, alpha: 4, targets: ["q_proj"] }));
 * const files = peftAdapterFiles(adapter, { baseModelNameOrPath: "google/gemma-3-1b-it" });
 * console.log(files.config.r, files.tensors.length); // 2 4
 * adapter.dispose();
 * gpu.destroy();
 * ```
 */
export function peftAdapterFiles(
  adapter: LoraAdapter,
  options: PeftAdapterFilesOptions = {},
): PeftAdapterFiles {
  const dir = options.dir ?? "adapter";
  const targets = adapter.config.targets;
  const layers: number[] = [];
  adapter.layers.forEach((layer, l) => {
    const present = targets.filter((t) => layer[t] !== undefined);
    if (present.length === 0) return;
    if (present.length !== targets.length) {
      throw new PeftError(
        "unsupported",
        dir,
        null,
        `layer ${l} adapts ${present.join(", ")} but the adapter's targets are ` +
          `${targets.join(", ")}; PEFT configs give every adapted layer the same targets`,
      );
    }
    layers.push(l);
  });
  const tensors = [...adapter.parameters()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
  const config = buildPeftAdapterConfig(adapter.config, {
    baseModelNameOrPath: options.baseModelNameOrPath ?? null,
    layers: layers.length === adapter.layers.length ? null : layers,
  });
  return { config, tensors };
}

/** What a merged export reads of a model; a `Gemma3` (or a `withLora` view of one) is one. */
export interface MergeableModel {
  /** Hyperparameters, written as `config.json`. */
  readonly config: Gemma3Config;
  /** Base weights. */
  readonly weights: Gemma3Weights;
  /** The adapter merged in, or null (the base weights are written). */
  readonly lora: LoraAdapter | null;
}

/** Stored dtype of a merged or full-model export. */
export type ModelExportDtype = "F32" | "BF16";

/** One tensor of a model export: its safetensors header entry and how to get its values. */
export interface ModelExportTensor {
  /** Hugging Face name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly name: string;
  /** Stored dtype. */
  readonly dtype: ModelExportDtype;
  /** `[out, in]` for projections, `[vocab, hidden]` for the embedding, `[hidden]` for norms. */
  readonly shape: readonly number[];
  /**
   * Reads the tensor back from the GPU (merging the LoRA update when it has one) and rounds it
   * once to the stored dtype.
   *
   * @returns Float32 values (`F32`) or bf16 bit patterns (`BF16`).
   */
  read(): Promise<Float32Array | Uint16Array>;
}

/**
 * The tensors of a model's Hugging Face checkpoint with its LoRA update merged in
 * (`W + (alpha/r)·B·A`, computed in float64 on the host, then one rounding to the stored dtype:
 * bf16 round-to-nearest-even, see `lora_merge.ts`), sorted by name as `safetensors` orders
 * them. Without an adapter the model's own weights are described (a full fine-tune's export).
 * Nothing is read before a tensor's `read()` is called, so a writer holds one tensor at a time.
 *
 * @param model The model (a `Gemma3`, or a `withLora(adapter)` view).
 * @param dtype Stored dtype.
 * @returns One entry per tensor (tied models have no `lm_head`).
 * @throws {PeftError} `config` for a dtype other than `F32` / `BF16`.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { gemma3Config } from "./config.ts";
 * import { Gemma3 } from "./gemma3.ts";
 * import { initGemma3Weights } from "./gemma3_weights.ts";
 * import { mergedModelTensors } from "./peft.ts";
 *
 * const gpu = await Gpu.create();
 * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 1,
 *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
 * const model = new Gemma3(gpu, config, initGemma3Weights(gpu, config));
 * const tensors = mergedModelTensors(model, "BF16");
 * console.log(tensors[0].name, (await tensors[0].read()).length); // model.embed_tokens.weight 2048
 * gpu.destroy();
 * ```
 */
export function mergedModelTensors(
  model: MergeableModel,
  dtype: ModelExportDtype,
): ModelExportTensor[] {
  if (dtype !== "F32" && dtype !== "BF16") {
    throw new PeftError(
      "config",
      "model.safetensors",
      "dtype",
      `expected "F32" or "BF16", got ${dtype}`,
    );
  }
  const lora = model.lora;
  const entries: { name: string; tensor: Tensor; pair?: LoraPair }[] = [
    { name: "model.embed_tokens.weight", tensor: model.weights.embed },
  ];
  model.weights.layers.forEach((layer, l) => {
    for (const w of LAYER_WEIGHTS) {
      const pair = (LORA_TARGETS as readonly string[]).includes(w)
        ? lora?.layers[l]?.[w as LoraTarget]
        : undefined;
      entries.push({
        name: `model.layers.${l}.${hfLayerWeightPath(w)}.weight`,
        tensor: layer[w],
        pair,
      });
    }
  });
  entries.push({ name: "model.norm.weight", tensor: model.weights.finalNorm });
  entries.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  return entries.map(({ name, tensor, pair }) => ({
    name,
    dtype,
    shape: tensor.shape,
    async read() {
      const w = (await tensor.read()) as Float32Array;
      if (!pair || !lora) return dtype === "F32" ? w : toBf16Bits(w);
      const [out, inDim] = tensor.shape;
      const merged = mergeLoraWeight(
        w,
        (await pair.a.read()) as Float32Array,
        (await pair.b.read()) as Float32Array,
        { out, in: inDim, rank: lora.config.rank, scale: lora.scale },
      );
      return dtype === "F32" ? Float32Array.from(merged) : toBf16Bits(merged);
    },
  }));
}

/**
 * The `config.json` of a model export: `gemma3ConfigToJson` with `torch_dtype` set to the
 * stored dtype (`float32` or `bfloat16`), as transformers' `Gemma3ForCausalLM` reads it.
 *
 * @param config The model's config.
 * @param dtype Stored dtype.
 * @returns A JSON-serialisable object.
 * @example
 * ```ts
 * import { gemma3Config } from "./config.ts";
 * import { modelExportConfigJson } from "./peft.ts";
 * const config = gemma3Config({ vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 1,
 *   numHeads: 2, numKvHeads: 1, headDim: 16, queryPreAttnScalar: 16, eosTokenIds: [1] });
 * console.log(modelExportConfigJson(config, "F32").torch_dtype); // "float32"
 * ```
 */
export function modelExportConfigJson(
  config: Gemma3Config,
  dtype: ModelExportDtype,
): Record<string, unknown> {
  return { ...gemma3ConfigToJson(config), torch_dtype: dtype === "F32" ? "float32" : "bfloat16" };
}
