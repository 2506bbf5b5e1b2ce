/**
 * Checking a checkpoint's tensor names, shapes and dtypes against a {@linkcode Gemma3Config}
 * (Hugging Face naming), and resolving canonical names to the names actually stored.
 *
 * @module
 */

import type { Gemma3Config } from "./config.ts";

/** What {@linkcode checkWeights} needs to know about a stored tensor. */
export interface StoredTensor {
  /** Stored dtype (`BF16`, `F16`, `F32`, …). */
  readonly dtype: string;
  /** Stored shape. */
  readonly shape: readonly number[];
}

/** Dtypes accepted for model weights. */
export const WEIGHT_DTYPES: readonly string[] = Object.freeze(["BF16", "F16", "F32"]);

/** Kind of weight problem. */
export type WeightErrorCode = "missing" | "shape" | "dtype" | "unexpected";

/** A checkpoint's weights do not fit the config; names the tensor, expected and actual. */
export class WeightError extends Error {
  /** Kind of problem. */
  readonly code: WeightErrorCode;
  /** The stored tensor name concerned. */
  readonly tensor: string;
  /** Expected shape. */
  readonly expected: readonly number[];
  /** Actual shape, or null when the tensor is missing. */
  readonly actual: readonly number[] | null;
  /**
   * @param code Kind of problem.
   * @param tensor The tensor name.
   * @param expected Expected shape.
   * @param actual Actual shape (null when missing).
   * @param message Full message.
   */
  constructor(
    code: WeightErrorCode,
    tensor: string,
    expected: readonly number[],
    actual: readonly number[] | null,
    message: string,
  ) {
    super(message);
    this.name = "WeightError";
    this.code = code;
    this.tensor = tensor;
    this.expected = expected;
    this.actual = actual;
  }
}

/** Name prefixes under which a text decoder's `model.*` tensors may be stored. */
const MODEL_PREFIXES: readonly string[] = [
  "model.",
  "language_model.model.",
  "model.language_model.",
];

/**
 * Every weight a config needs, by canonical (text-only HF) name, in load order:
 * `model.embed_tokens.weight [vocab, hidden]`, per layer the four norms `[hidden]`,
 * `self_attn.{q,k,v,o}_proj.weight`, `self_attn.{q,k}_norm.weight [head_dim]`,
 * `mlp.{gate,up,down}_proj.weight`, then `model.norm.weight [hidden]` (and `lm_head.weight`
 * only when embeddings are not tied).
 *
 * @param config The model config.
 * @returns Canonical name → expected shape.
 */
export function expectedWeightShapes(config: Gemma3Config): Map<string, readonly number[]> {
  const { vocabSize: v, hiddenSize: d, intermediateSize: f, headDim: h } = config;
  const q = config.numHeads * h;
  const kv = config.numKvHeads * h;
  const out = new Map<string, readonly number[]>([["model.embed_tokens.weight", [v, d]]]);
  for (let i = 0; i < config.numLayers; i++) {
    const l = `model.layers.${i}.`;
    out.set(`${l}input_layernorm.weight`, [d]);
    out.set(`${l}self_attn.q_proj.weight`, [q, d]);
    out.set(`${l}self_attn.k_proj.weight`, [kv, d]);
    out.set(`${l}self_attn.v_proj.weight`, [kv, d]);
    out.set(`${l}self_attn.o_proj.weight`, [d, q]);
    out.set(`${l}self_attn.q_norm.weight`, [h]);
    out.set(`${l}self_attn.k_norm.weight`, [h]);
    out.set(`${l}post_attention_layernorm.weight`, [d]);
    out.set(`${l}pre_feedforward_layernorm.weight`, [d]);
    out.set(`${l}post_feedforward_layernorm.weight`, [d]);
    out.set(`${l}mlp.gate_proj.weight`, [f, d]);
    out.set(`${l}mlp.up_proj.weight`, [f, d]);
    out.set(`${l}mlp.down_proj.weight`, [d, f]);
  }
  out.set("model.norm.weight", [d]);
  if (!config.tieWordEmbeddings) out.set("lm_head.weight", [v, d]);
  return out;
}

const shapeText = (s: readonly number[]): string => `[${s.join(", ")}]`;

/**
 * Checks a checkpoint against a config: every needed weight present with the config's shape
 * and a float dtype (BF16/F16/F32), and no decoder layer beyond `numLayers`. Accepts the
 * text-only prefix `model.` and the multimodal ones `language_model.model.` (transformers 4.x)
 * and `model.language_model.` (4.52+); other tensors (a vision tower) are ignored, and so is
 * `lm_head.weight` when embeddings are tied (the head is the embedding).
 *
 * @param config The model config.
 * @param tensors Stored name → dtype and shape (e.g. a checkpoint's `tensors`).
 * @returns Canonical name (as in {@linkcode expectedWeightShapes}) → stored name.
 * @throws {WeightError} The first missing tensor, wrong shape or dtype, or extra layer.
 * @example
 * ```ts
 * import { gemma3Config } from "./config.ts";
 * import { checkWeights } from "./weights.ts";
 * const config = gemma3Config({ numLayers: 1 });
 * try {
 *   checkWeights(config, new Map());
 * } catch (e) {
 *   console.log((e as Error).message); // missing tensor model.embed_tokens.weight ...
 * }
 * ```
 */
export function checkWeights(
  config: Gemma3Config,
  tensors: ReadonlyMap<string, StoredTensor>,
): ReadonlyMap<string, string> {
  const prefix = MODEL_PREFIXES.find((p) => tensors.has(`${p}embed_tokens.weight`)) ?? "model.";
  const stored = (canonical: string): string =>
    canonical.startsWith("model.")
      ? prefix + canonical.slice("model.".length)
      : prefix === "language_model.model." && !tensors.has(canonical)
      ? `language_model.${canonical}`
      : canonical;
  const resolved = new Map<string, string>();
  for (const [canonical, expected] of expectedWeightShapes(config)) {
    const name = stored(canonical);
    const t = tensors.get(name);
    if (t === undefined) {
      throw new WeightError(
        "missing",
        name,
        expected,
        null,
        `missing tensor ${name} (expected shape ${shapeText(expected)} for the config)`,
      );
    }
    const same = t.shape.length === expected.length && t.shape.every((x, i) => x === expected[i]);
    if (!same) {
      throw new WeightError(
        "shape",
        name,
        expected,
        t.shape,
        `tensor ${name}: expected shape ${shapeText(expected)} for the config, got ${
          shapeText(t.shape)
        }`,
      );
    }
    if (!WEIGHT_DTYPES.includes(t.dtype)) {
      throw new WeightError(
        "dtype",
        name,
        expected,
        t.shape,
        `tensor ${name} ${
          shapeText(t.shape)
        }: dtype ${t.dtype} is not a weight dtype, expected one of ${WEIGHT_DTYPES.join(", ")}`,
      );
    }
    resolved.set(canonical, name);
  }
  const layerRe = new RegExp(`^${prefix.replaceAll(".", "\\.")}layers\\.(\\d+)\\.`);
  for (const [name, t] of tensors) {
    const m = layerRe.exec(name);
    if (m !== null && Number(m[1]) >= config.numLayers) {
      throw new WeightError(
        "unexpected",
        name,
        [],
        t.shape,
        `tensor ${name} belongs to layer ${m[1]}, but the config has ${config.numLayers} layers`,
      );
    }
  }
  return resolved;
}
