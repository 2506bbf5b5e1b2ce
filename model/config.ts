/**
 * Gemma 3 text-model configuration: a frozen, validated {@linkcode Gemma3Config} built from the
 * `gemma3_1b` preset or from overrides of it. Parsing Hugging Face `config.json` is in
 * `config_hf.ts`, reading it from disk in `config_fs.ts`.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";

/** Attention kind of one decoder layer. */
export type LayerType = "sliding_attention" | "full_attention";

/**
 * Thrown for an invalid or unsupported configuration field; `field` (= `path`) names it as the
 * caller spelled it (`num_attention_heads`, `numHeads`).
 */
export class ConfigError extends FieldError {
  override readonly name: string = "ConfigError";
}

/** Validated Gemma 3 text-model hyperparameters (frozen). */
export interface Gemma3Config {
  /** Embedding rows (vocabulary size). */
  readonly vocabSize: number;
  /** Residual width D. */
  readonly hiddenSize: number;
  /** MLP width. */
  readonly intermediateSize: number;
  /** Decoder layers. */
  readonly numLayers: number;
  /** Query heads. */
  readonly numHeads: number;
  /** Key/value heads (divides `numHeads`). */
  readonly numKvHeads: number;
  /** Width of one head (even: RoPE rotates halves). */
  readonly headDim: number;
  /** Keys a sliding layer sees: the current token plus `slidingWindow - 1` before it. */
  readonly slidingWindow: number;
  /** Attention kind per layer (`numLayers` entries). */
  readonly layerTypes: readonly LayerType[];
  /** RoPE base of full-attention (global) layers. */
  readonly ropeTheta: number;
  /** RoPE base of sliding-attention (local) layers. */
  readonly ropeLocalBaseFreq: number;
  /** Linear RoPE scaling of global layers: positions are divided by it (1 = none). */
  readonly ropeScalingFactor: number;
  /** Attention scores are scaled by `queryPreAttnScalar ** -0.5`. */
  readonly queryPreAttnScalar: number;
  /** RMSNorm epsilon. */
  readonly rmsNormEps: number;
  /** Output head = embedding matrix (always true for Gemma 3). */
  readonly tieWordEmbeddings: boolean;
  /** Final-logit softcapping: unsupported, always null. */
  readonly finalLogitSoftcapping: null;
  /** Attention-logit softcapping: unsupported, always null. */
  readonly attnLogitSoftcapping: null;
  /** MLP activation. */
  readonly hiddenActivation: "gelu_pytorch_tanh";
  /** Beginning-of-sequence id, or null. */
  readonly bosTokenId: number | null;
  /** End-of-sequence ids (possibly empty). */
  readonly eosTokenIds: readonly number[];
  /** Padding id, or null. */
  readonly padTokenId: number | null;
  /** Longest context the checkpoint was trained for. */
  readonly maxPositionEmbeddings: number;
}

/** Overrides accepted by {@linkcode gemma3Config}: any field, plus the layer pattern. */
export type Gemma3ConfigInput = { -readonly [K in keyof Gemma3Config]?: Gemma3Config[K] } & {
  /** Used when `layerTypes` is absent: layer i is global iff (i + 1) % pattern == 0. */
  slidingWindowPattern?: number;
};

const GEMMA3_1B_VALUES: Readonly<Omit<Gemma3Config, "layerTypes">> = Object.freeze({
  vocabSize: 262144,
  hiddenSize: 1152,
  intermediateSize: 6912,
  numLayers: 26,
  numHeads: 4,
  numKvHeads: 1,
  headDim: 256,
  slidingWindow: 512,
  ropeTheta: 1_000_000,
  ropeLocalBaseFreq: 10_000,
  ropeScalingFactor: 1,
  queryPreAttnScalar: 256,
  rmsNormEps: 1e-6,
  tieWordEmbeddings: true,
  finalLogitSoftcapping: null,
  attnLogitSoftcapping: null,
  hiddenActivation: "gelu_pytorch_tanh",
  bosTokenId: 2,
  eosTokenIds: Object.freeze([1, 106]),
  padTokenId: 0,
  maxPositionEmbeddings: 32768,
});

const KNOWN_FIELDS: readonly string[] = [
  ...Object.keys(GEMMA3_1B_VALUES),
  "layerTypes",
  "slidingWindowPattern",
];

/**
 * Layer kinds from the legacy `sliding_window_pattern`: layer i is global iff
 * (i + 1) % pattern == 0 (pattern 6: five sliding layers, then one global).
 *
 * @param numLayers Decoder layers.
 * @param pattern The pattern (positive integer).
 * @returns One kind per layer.
 */
export function layerTypesFromPattern(numLayers: number, pattern: number): LayerType[] {
  return Array.from(
    { length: numLayers },
    (_, i) => (i + 1) % pattern === 0 ? "full_attention" : "sliding_attention",
  );
}

/** The size fields of {@linkcode Gemma3Config}: each a positive integer. */
export const GEMMA3_SIZE_FIELDS = [
  "vocabSize",
  "hiddenSize",
  "intermediateSize",
  "numLayers",
  "numHeads",
  "numKvHeads",
  "headDim",
  "slidingWindow",
  "maxPositionEmbeddings",
] as const;

/** Field naming used in messages: camelCase for the builder, HF names for config.json. */
export type FieldNames = (field: keyof Gemma3Config | "slidingWindowPattern") => string;

function mustBe(name: string, expected: string, got: unknown): never {
  throw ConfigError.mustBe(name, expected, got, JSON.stringify);
}

function positiveInt(name: string, v: unknown): void {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    mustBe(name, "a positive integer", v);
  }
}

function positiveNumber(name: string, v: unknown): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) mustBe(name, "a positive number", v);
}

function tokenId(name: string, v: unknown, vocab: number): void {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v >= vocab) {
    mustBe(name, `a token id in [0, ${vocab})`, v);
  }
}

/**
 * Validates a complete set of fields and freezes it.
 *
 * @param c Every field of {@linkcode Gemma3Config}.
 * @param name Maps a field to the name used in messages.
 * @returns The frozen config.
 * @throws {ConfigError} Naming the first invalid field.
 */
export function validateGemma3Config(c: Gemma3Config, name: FieldNames): Gemma3Config {
  for (const f of GEMMA3_SIZE_FIELDS) positiveInt(name(f), c[f]);
  if (c.numHeads % c.numKvHeads !== 0) {
    throw new ConfigError(
      name("numHeads"),
      `${name("numHeads")} must be a multiple of ${name("numKvHeads")}, got ${c.numHeads} and ` +
        `${c.numKvHeads}`,
    );
  }
  if (c.headDim % 2 !== 0) {
    throw new ConfigError(
      name("headDim"),
      `${name("headDim")} must be even (RoPE rotates two halves), got ${c.headDim}`,
    );
  }
  for (
    const f of [
      "ropeTheta",
      "ropeLocalBaseFreq",
      "ropeScalingFactor",
      "queryPreAttnScalar",
      "rmsNormEps",
    ] as const
  ) positiveNumber(name(f), c[f]);
  const types = c.layerTypes as unknown;
  if (!Array.isArray(types) || types.length !== c.numLayers) {
    throw new ConfigError(
      name("layerTypes"),
      `${name("layerTypes")} must list one kind per layer (${c.numLayers}), got ${
        Array.isArray(types) ? `${types.length} entries` : JSON.stringify(types)
      }`,
    );
  }
  types.forEach((t, i) => {
    if (t !== "sliding_attention" && t !== "full_attention") {
      throw new ConfigError(
        name("layerTypes"),
        `${name("layerTypes")}[${i}] must be "sliding_attention" or "full_attention", got ${
          JSON.stringify(t)
        }`,
      );
    }
  });
  if (typeof c.tieWordEmbeddings !== "boolean") {
    mustBe(name("tieWordEmbeddings"), "a boolean", c.tieWordEmbeddings);
  }
  for (const f of ["finalLogitSoftcapping", "attnLogitSoftcapping"] as const) {
    if (c[f] !== null) {
      throw new ConfigError(
        name(f),
        `${name(f)} is not supported (Gemma 3 uses none): expected null, got ${
          JSON.stringify(c[f])
        }`,
      );
    }
  }
  if (c.hiddenActivation !== "gelu_pytorch_tanh") {
    mustBe(name("hiddenActivation"), '"gelu_pytorch_tanh"', c.hiddenActivation);
  }
  if (c.bosTokenId !== null) tokenId(name("bosTokenId"), c.bosTokenId, c.vocabSize);
  if (c.padTokenId !== null) tokenId(name("padTokenId"), c.padTokenId, c.vocabSize);
  if (!Array.isArray(c.eosTokenIds)) {
    mustBe(name("eosTokenIds"), "a list of token ids", c.eosTokenIds);
  }
  c.eosTokenIds.forEach((id) => tokenId(name("eosTokenIds"), id, c.vocabSize));
  return Object.freeze({
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    slidingWindow: c.slidingWindow,
    layerTypes: Object.freeze([...c.layerTypes]),
    ropeTheta: c.ropeTheta,
    ropeLocalBaseFreq: c.ropeLocalBaseFreq,
    ropeScalingFactor: c.ropeScalingFactor,
    queryPreAttnScalar: c.queryPreAttnScalar,
    rmsNormEps: c.rmsNormEps,
    tieWordEmbeddings: c.tieWordEmbeddings,
    finalLogitSoftcapping: null,
    attnLogitSoftcapping: null,
    hiddenActivation: c.hiddenActivation,
    bosTokenId: c.bosTokenId,
    eosTokenIds: Object.freeze([...c.eosTokenIds]),
    padTokenId: c.padTokenId,
    maxPositionEmbeddings: c.maxPositionEmbeddings,
  });
}

/**
 * Builds a validated config from the `gemma3_1b` values with `overrides` applied. Without
 * `layerTypes`, layer kinds follow `slidingWindowPattern` (default 6) over `numLayers`.
 *
 * @param overrides Fields to change (camelCase; unknown fields are rejected).
 * @returns The frozen config.
 * @throws {ConfigError} Naming the invalid field (camelCase).
 * @example
 * ```ts
 * import { gemma3Config } from "./config.ts";
 * const tiny = gemma3Config({ vocabSize: 512, hiddenSize: 64, intermediateSize: 192,
 *   numLayers: 6, headDim: 32, slidingWindow: 8, queryPreAttnScalar: 24, eosTokenIds: [1] });
 * console.log(tiny.layerTypes[5]); // "full_attention"
 * ```
 */
export function gemma3Config(overrides: Gemma3ConfigInput = {}): Gemma3Config {
  for (const key of Object.keys(overrides)) {
    if (!KNOWN_FIELDS.includes(key)) {
      throw new ConfigError(key, `unknown Gemma3Config field "${key}"`);
    }
  }
  const { slidingWindowPattern = 6, ...fields } = overrides;
  const merged = { ...GEMMA3_1B_VALUES, ...fields };
  if (overrides.layerTypes === undefined) {
    positiveInt("slidingWindowPattern", slidingWindowPattern);
    positiveInt("numLayers", merged.numLayers);
  }
  const layerTypes = overrides.layerTypes ??
    layerTypesFromPattern(merged.numLayers, slidingWindowPattern);
  return validateGemma3Config({ ...merged, layerTypes } as Gemma3Config, (f) => f);
}

/**
 * The real `google/gemma-3-1b-it` (and `-pt`) configuration: hidden 1152, intermediate 6912,
 * 26 layers (every 6th global), 4 heads, 1 KV head, head_dim 256, vocab 262144, window 512,
 * RoPE 1e6 global / 1e4 local, query_pre_attn_scalar 256, eps 1e-6, tied embeddings, no
 * softcapping, EOS ids 1 and 106.
 *
 * @returns The frozen config.
 */
export function gemma3_1b(): Gemma3Config {
  return gemma3Config();
}

/**
 * Writes a config as a Hugging Face `gemma3_text` `config.json` object (the style of the real
 * `gemma-3-1b-it/config.json`, with `layer_types` listed), readable by transformers and by
 * `parseGemma3Config`.
 *
 * @param config The config.
 * @returns A JSON-serialisable object.
 */
export function gemma3ConfigToJson(config: Gemma3Config): Record<string, unknown> {
  return {
    architectures: ["Gemma3ForCausalLM"],
    model_type: "gemma3_text",
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    hidden_activation: config.hiddenActivation,
    max_position_embeddings: config.maxPositionEmbeddings,
    rms_norm_eps: config.rmsNormEps,
    pad_token_id: config.padTokenId,
    eos_token_id: config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : [
      ...config.eosTokenIds,
    ],
    bos_token_id: config.bosTokenId,
    tie_word_embeddings: config.tieWordEmbeddings,
    rope_theta: config.ropeTheta,
    rope_local_base_freq: config.ropeLocalBaseFreq,
    rope_scaling: config.ropeScalingFactor === 1
      ? null
      : { rope_type: "linear", factor: config.ropeScalingFactor },
    attention_bias: false,
    attention_dropout: 0,
    query_pre_attn_scalar: config.queryPreAttnScalar,
    sliding_window: config.slidingWindow,
    layer_types: [...config.layerTypes],
    final_logit_softcapping: null,
    attn_logit_softcapping: null,
    torch_dtype: "bfloat16",
  };
}
