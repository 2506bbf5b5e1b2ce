/**
 * Parsing a Hugging Face `config.json` into a {@linkcode Gemma3Config}: `gemma3_text`
 * (`Gemma3ForCausalLM`, e.g. gemma-3-1b) or the multimodal `gemma3` wrapper (its `text_config`,
 * e.g. gemma-3-4b). Missing fields take `Gemma3TextConfig`'s defaults, as transformers does.
 * Both the 4.x style (`rope_theta`, `rope_local_base_freq`, `rope_scaling`,
 * `sliding_window_pattern`) and the 5.x style (`rope_parameters` per layer type, `layer_types`)
 * are accepted. {@linkcode loadGemma3ConfigFrom} reads it from any file source.
 *
 * @module
 */

import {
  ConfigError,
  type FieldNames,
  type Gemma3Config,
  type LayerType,
  layerTypesFromPattern,
  validateGemma3Config,
} from "./config.ts";
import { type FileSource, FileSourceError } from "./file_source.ts";

/** `Gemma3TextConfig` defaults (transformers), used for fields a config.json leaves out. */
const HF_DEFAULTS: Readonly<Record<string, unknown>> = Object.freeze({
  vocab_size: 262_208,
  hidden_size: 2304,
  intermediate_size: 9216,
  num_hidden_layers: 26,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256,
  hidden_activation: "gelu_pytorch_tanh",
  max_position_embeddings: 131_072,
  rms_norm_eps: 1e-6,
  pad_token_id: 0,
  eos_token_id: 1,
  bos_token_id: 2,
  tie_word_embeddings: true,
  rope_theta: 1_000_000,
  rope_local_base_freq: 10_000,
  attention_bias: false,
  attention_dropout: 0,
  query_pre_attn_scalar: 256,
  sliding_window: 4096,
  final_logit_softcapping: null,
  attn_logit_softcapping: null,
  sliding_window_pattern: 6,
});

const HF_NAMES: Readonly<Record<Parameters<FieldNames>[0], string>> = Object.freeze({
  vocabSize: "vocab_size",
  hiddenSize: "hidden_size",
  intermediateSize: "intermediate_size",
  numLayers: "num_hidden_layers",
  numHeads: "num_attention_heads",
  numKvHeads: "num_key_value_heads",
  headDim: "head_dim",
  slidingWindow: "sliding_window",
  layerTypes: "layer_types",
  ropeTheta: "rope_theta",
  ropeLocalBaseFreq: "rope_local_base_freq",
  ropeScalingFactor: "rope_scaling.factor",
  queryPreAttnScalar: "query_pre_attn_scalar",
  rmsNormEps: "rms_norm_eps",
  tieWordEmbeddings: "tie_word_embeddings",
  finalLogitSoftcapping: "final_logit_softcapping",
  attnLogitSoftcapping: "attn_logit_softcapping",
  hiddenActivation: "hidden_activation",
  bosTokenId: "bos_token_id",
  eosTokenIds: "eos_token_id",
  padTokenId: "pad_token_id",
  maxPositionEmbeddings: "max_position_embeddings",
  slidingWindowPattern: "sliding_window_pattern",
});

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

interface Rope {
  theta: number | undefined;
  factor: number;
}

/** One RoPE spec (`rope_scaling` or a `rope_parameters` entry): default or linear only. */
function parseRope(field: string, raw: unknown, allowScaling: boolean): Rope {
  if (!isObject(raw)) {
    throw new ConfigError(field, `${field} must be an object, got ${JSON.stringify(raw)}`);
  }
  const type = raw.rope_type ?? raw.type ?? "default";
  const theta = raw.rope_theta;
  if (theta !== undefined && (typeof theta !== "number" || !(theta > 0))) {
    throw new ConfigError(
      `${field}.rope_theta`,
      `${field}.rope_theta must be a positive number, got ${JSON.stringify(theta)}`,
    );
  }
  if (type === "default") return { theta, factor: 1 };
  if (type === "linear") {
    const factor = raw.factor;
    if (typeof factor !== "number" || !Number.isFinite(factor) || factor <= 0) {
      throw new ConfigError(
        `${field}.factor`,
        `${field}.factor must be a positive number for linear RoPE scaling, got ${
          JSON.stringify(factor)
        }`,
      );
    }
    if (!allowScaling && factor !== 1) {
      throw new ConfigError(
        `${field}.factor`,
        `${field}.factor must be 1 (RoPE scaling on sliding layers is not supported), got ${factor}`,
      );
    }
    return { theta, factor };
  }
  throw new ConfigError(
    `${field}.rope_type`,
    `${field}.rope_type ${JSON.stringify(type)} is not supported, expected "default" or "linear"`,
  );
}

function ropeSettings(text: Record<string, unknown>, p: string): Rope & { local: number } {
  let global: Rope = { theta: undefined, factor: 1 };
  let local: Rope = { theta: undefined, factor: 1 };
  const params = text.rope_parameters;
  if (params !== undefined && params !== null) {
    if (!isObject(params) || !("full_attention" in params || "sliding_attention" in params)) {
      throw new ConfigError(
        `${p}rope_parameters`,
        `${p}rope_parameters must map "full_attention" / "sliding_attention" to ` +
          `{rope_type, rope_theta}, got ${JSON.stringify(params)}`,
      );
    }
    if (params.full_attention !== undefined) {
      global = parseRope(`${p}rope_parameters.full_attention`, params.full_attention, true);
    }
    if (params.sliding_attention !== undefined) {
      local = parseRope(`${p}rope_parameters.sliding_attention`, params.sliding_attention, false);
    }
  }
  // transformers 5.x merges a legacy rope_scaling into the full-attention parameters.
  if (text.rope_scaling !== undefined && text.rope_scaling !== null) {
    const scaling = parseRope(`${p}rope_scaling`, text.rope_scaling, true);
    global = { theta: scaling.theta ?? global.theta, factor: scaling.factor };
  }
  const pick = (key: string): unknown => text[key] ?? HF_DEFAULTS[key];
  return {
    theta: global.theta ?? (pick("rope_theta") as number),
    factor: global.factor,
    local: local.theta ?? (pick("rope_local_base_freq") as number),
  };
}

function rejectUnsupported(text: Record<string, unknown>, p: string): void {
  const must = (key: string, ok: (v: unknown) => boolean, expected: string): void => {
    const v = text[key];
    if (v !== undefined && v !== null && !ok(v)) {
      throw new ConfigError(
        `${p}${key}`,
        `${p}${key} is not supported: expected ${expected}, got ${JSON.stringify(v)}`,
      );
    }
  };
  must("attention_bias", (v) => v === false, "false");
  must("attention_dropout", (v) => v === 0, "0");
  must("use_bidirectional_attention", (v) => v === false, "false");
  must("hidden_act", (v) => v === "gelu_pytorch_tanh", '"gelu_pytorch_tanh"');
}

/**
 * Parses a Hugging Face `config.json` object. For the multimodal wrapper (`model_type:
 * "gemma3"`) the text model's fields come from `text_config` (with `Gemma3TextConfig`
 * defaults) and the token ids fall back to the wrapper's. Layer kinds come from `layer_types`
 * when present, else from `sliding_window_pattern` (default 6). Linear RoPE scaling of global
 * layers (`rope_scaling: {rope_type: "linear", factor}`, as in gemma-3-4b and larger) becomes
 * `ropeScalingFactor`; other scaling types, softcapping, attention bias and dropout are rejected.
 *
 * @param json The parsed JSON.
 * @param source Where it came from, for messages.
 * @returns The frozen, validated config.
 * @throws {ConfigError} Naming the offending field (HF spelling, e.g.
 *   `text_config.num_key_value_heads`) and what was expected.
 * @example
 * ```ts
 * import { parseGemma3Config } from "./config_hf.ts";
 * const c = parseGemma3Config({ model_type: "gemma3_text", num_hidden_layers: 2,
 *   sliding_window_pattern: 2 });
 * console.log(c.layerTypes); // ["sliding_attention", "full_attention"]
 * ```
 */
export function parseGemma3Config(json: unknown, source = "config.json"): Gemma3Config {
  if (!isObject(json)) {
    throw new ConfigError("config", `${source} must hold a JSON object`);
  }
  let text = json;
  let p = "";
  if (json.model_type === "gemma3") {
    const inner = json.text_config ?? {};
    if (!isObject(inner)) {
      throw new ConfigError("text_config", `${source}: text_config must be an object`);
    }
    text = inner;
    p = "text_config.";
    if (text.model_type !== undefined && text.model_type !== "gemma3_text") {
      throw new ConfigError(
        "text_config.model_type",
        `${source}: text_config.model_type must be "gemma3_text", got ${
          JSON.stringify(text.model_type)
        }`,
      );
    }
  } else if (json.model_type !== "gemma3_text") {
    throw new ConfigError(
      "model_type",
      `${source}: model_type must be "gemma3_text" or "gemma3", got ${
        JSON.stringify(json.model_type)
      }`,
    );
  }
  rejectUnsupported(text, p);
  const pick = (key: string): unknown => text[key] ?? HF_DEFAULTS[key];
  const pickToken = (key: string): unknown =>
    key in text ? text[key] : key in json ? json[key] : HF_DEFAULTS[key];
  const rope = ropeSettings(text, p);
  const numLayers = pick("num_hidden_layers");
  let layerTypes = text.layer_types as LayerType[] | undefined;
  if (layerTypes === undefined || layerTypes === null) {
    const pattern = pick("sliding_window_pattern");
    const name = `${p}sliding_window_pattern`;
    if (typeof pattern !== "number" || !Number.isSafeInteger(pattern) || pattern <= 0) {
      throw new ConfigError(name, `${name} must be a positive integer, got ${pattern}`);
    }
    if (typeof numLayers !== "number" || !Number.isSafeInteger(numLayers) || numLayers <= 0) {
      throw new ConfigError(
        `${p}num_hidden_layers`,
        `${p}num_hidden_layers must be a positive integer, got ${JSON.stringify(numLayers)}`,
      );
    }
    layerTypes = layerTypesFromPattern(numLayers, pattern);
  }
  const eos = pickToken("eos_token_id");
  const fields = {
    vocabSize: pick("vocab_size"),
    hiddenSize: pick("hidden_size"),
    intermediateSize: pick("intermediate_size"),
    numLayers,
    numHeads: pick("num_attention_heads"),
    numKvHeads: pick("num_key_value_heads"),
    headDim: pick("head_dim"),
    slidingWindow: pick("sliding_window"),
    layerTypes,
    ropeTheta: rope.theta,
    ropeLocalBaseFreq: rope.local,
    ropeScalingFactor: rope.factor,
    queryPreAttnScalar: pick("query_pre_attn_scalar"),
    rmsNormEps: pick("rms_norm_eps"),
    tieWordEmbeddings: pickToken("tie_word_embeddings"),
    finalLogitSoftcapping: text.final_logit_softcapping ?? null,
    attnLogitSoftcapping: text.attn_logit_softcapping ?? null,
    hiddenActivation: pick("hidden_activation"),
    bosTokenId: pickToken("bos_token_id") ?? null,
    eosTokenIds: eos === null ? [] : Array.isArray(eos) ? eos : [eos],
    padTokenId: pickToken("pad_token_id") ?? null,
    maxPositionEmbeddings: pick("max_position_embeddings"),
  };
  return validateGemma3Config(fields as unknown as Gemma3Config, (f) => p + HF_NAMES[f]);
}

/** Options of {@linkcode loadGemma3ConfigFrom}. */
export interface LoadConfigOptions {
  /** The config file's name in the source (default `config.json`). */
  readonly file?: string;
}

/**
 * Reads and parses a model folder's `config.json` from a file source (a folder on disk, a
 * URL, picked files).
 *
 * @param source The model folder.
 * @param options Another file name than `config.json`.
 * @returns The frozen, validated config.
 * @throws {ConfigError} `field` "config.json" when the file cannot be read (the message names
 *   its path or URL and, over HTTP, the status) or is not JSON; otherwise the offending field
 *   (see {@linkcode parseGemma3Config}).
 * @example
 * ```ts
 * import { loadGemma3ConfigFrom } from "./config_hf.ts";
 * import { memorySource } from "./file_source.ts";
 * const source = memorySource({ "config.json": '{"model_type": "gemma3_text", "vocab_size": 512}' });
 * console.log((await loadGemma3ConfigFrom(source)).vocabSize); // 512
 * ```
 */
export async function loadGemma3ConfigFrom(
  source: FileSource,
  options: LoadConfigOptions = {},
): Promise<Gemma3Config> {
  const name = options.file ?? "config.json";
  const file = source.path(name);
  let text: string;
  try {
    text = await source.readText(name);
  } catch (e) {
    if (!(e instanceof FileSourceError)) throw e;
    throw new ConfigError("config.json", `cannot read ${file}: ${e.detail}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError("config.json", `${file} is not JSON: ${(e as Error).message}`);
  }
  return parseGemma3Config(json, file);
}
