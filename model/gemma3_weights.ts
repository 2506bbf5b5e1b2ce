/**
 * Gemma 3 weights on the GPU: upload from a checkpoint (one tensor at a time, by byte range) or
 * seeded random initialisation (benchmarks and the from-scratch demo model).
 *
 * @module
 */

import { SeededRandom } from "../base/random.ts";
import type { DType } from "../kernels/dtype.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { Gemma3Config } from "./config.ts";
import { checkFinite, decodeFloat32 } from "./safetensors_dtype.ts";
import type { TensorStore } from "./safetensors.ts";
import { checkWeights } from "./weights.ts";

/** Weights of one decoder layer, HF names without the `self_attn.` / `mlp.` prefixes. */
export const LAYER_WEIGHTS = [
  "input_layernorm",
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "q_norm",
  "k_norm",
  "post_attention_layernorm",
  "pre_feedforward_layernorm",
  "gate_proj",
  "up_proj",
  "down_proj",
  "post_feedforward_layernorm",
] as const;

/** One layer weight name. */
export type LayerWeightName = typeof LAYER_WEIGHTS[number];

/** The projections LoRA can adapt, in PEFT's order. */
export const LORA_TARGETS = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
] as const;

/** One LoRA target module. */
export type LoraTarget = typeof LORA_TARGETS[number];

/** The norm weights (vectors, kept in f32 on the GPU). */
export const NORM_WEIGHTS: ReadonlySet<LayerWeightName> = new Set([
  "input_layernorm",
  "q_norm",
  "k_norm",
  "post_attention_layernorm",
  "pre_feedforward_layernorm",
  "post_feedforward_layernorm",
]);

/** HF path of a layer weight below `model.layers.{i}.`. */
export function hfLayerWeightPath(name: LayerWeightName): string {
  if (name.endsWith("_proj")) {
    return (name.startsWith("gate") || name.startsWith("up") || name.startsWith("down")
      ? "mlp."
      : "self_attn.") + name;
  }
  return name === "q_norm" || name === "k_norm" ? `self_attn.${name}` : name;
}

/** GPU weights of a Gemma 3 text model. Projections `[out, in]`; norms f32 `[dim]`. */
export interface Gemma3Weights {
  /** `[vocab, hidden]` (bf16 or f32; split into parts when larger than one binding). */
  readonly embed: Tensor;
  /** Per decoder layer. */
  readonly layers: readonly Readonly<Record<LayerWeightName, Tensor>>[];
  /** Final norm `[hidden]`, f32. */
  readonly finalNorm: Tensor;
}

/**
 * Shape of every weight for a config.
 *
 * @param config Model config.
 * @param name Layer weight name.
 * @returns Its shape.
 */
export function layerWeightShape(config: Gemma3Config, name: LayerWeightName): number[] {
  const d = config.hiddenSize, q = config.numHeads * config.headDim;
  const kv = config.numKvHeads * config.headDim, f = config.intermediateSize;
  switch (name) {
    case "q_proj":
      return [q, d];
    case "k_proj":
    case "v_proj":
      return [kv, d];
    case "o_proj":
      return [d, q];
    case "gate_proj":
    case "up_proj":
      return [f, d];
    case "down_proj":
      return [d, f];
    case "q_norm":
    case "k_norm":
      return [config.headDim];
    default:
      return [d];
  }
}

const STORED_TO_DTYPE: Record<string, DType> = { BF16: "bf16", F32: "f32", F16: "f32" };

/** Uploads one stored tensor, widened to f32 when `asF32` (norms) or kept BF16/F32 as stored. */
async function uploadTensor(
  gpu: Gpu,
  store: TensorStore,
  tensor: { readonly name: string; readonly asF32: boolean },
): Promise<Tensor> {
  const { name, asF32 } = tensor;
  const info = store.info(name);
  const dtype: DType = asF32 ? "f32" : STORED_TO_DTYPE[info.dtype];
  const t = Tensor.empty(gpu, info.shape, dtype);
  const rowElems = info.shape.slice(1).reduce((a, b) => a * b, 1);
  const storedBytes = info.byteLength / Math.max(1, info.shape.reduce((a, b) => a * b, 1));
  const direct = dtype === "bf16" && info.dtype === "BF16" ||
    dtype === "f32" && info.dtype === "F32";
  try {
    for (const part of t.parts) {
      // subtle: one part at a time, so the host never holds more than one binding's worth of data
      const bytes = new Uint8Array(part.rows * rowElems * storedBytes);
      await store.readRange(name, part.rowStart * rowElems * storedBytes, bytes);
      // NaN/Inf are refused while the bytes pass through here anyway (no second read).
      const finite = { file: info.file, tensor: name, elementOffset: part.rowStart * rowElems };
      let data: Uint8Array;
      if (direct) {
        checkFinite(info.dtype, bytes, finite);
        data = bytes;
      } else {
        const f = decodeFloat32(info.dtype, bytes, { finite });
        data = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
      }
      if (data.byteLength % 4 !== 0) {
        const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
        padded.set(data);
        data = padded;
      }
      gpu.write(part.buffer, 0, data);
    }
  } catch (e) {
    t.dispose();
    throw e;
  }
  return t;
}

/**
 * Uploads a checkpoint's weights after checking names and shapes against the config.
 * `lm_head.weight`, if present, is ignored in favour of the tied embedding.
 *
 * @param gpu Runtime.
 * @param config Model config.
 * @param store The checkpoint (single file or sharded).
 * @returns GPU weights.
 * @throws {WeightError} naming a missing or mis-shaped tensor.
 * @throws {SafetensorsError} `non_finite` naming the file and tensor holding a NaN or ±Infinity.
 */
export async function uploadGemma3Weights(
  gpu: Gpu,
  config: Gemma3Config,
  store: TensorStore,
): Promise<Gemma3Weights> {
  const names = checkWeights(config, store.tensors);
  const stored = (canonical: string) => names.get(canonical) ?? canonical;
  const uploaded: Tensor[] = [];
  const upload = async (canonical: string, asF32: boolean) => {
    const t = await uploadTensor(gpu, store, { name: stored(canonical), asF32 });
    uploaded.push(t);
    return t;
  };
  try {
    const embed = await upload("model.embed_tokens.weight", false);
    const layers: Record<LayerWeightName, Tensor>[] = [];
    for (let i = 0; i < config.numLayers; i++) {
      const layer = {} as Record<LayerWeightName, Tensor>;
      for (const w of LAYER_WEIGHTS) {
        layer[w] = await upload(
          `model.layers.${i}.${hfLayerWeightPath(w)}.weight`,
          NORM_WEIGHTS.has(w),
        );
      }
      layers.push(Object.freeze(layer));
    }
    const finalNorm = await upload("model.norm.weight", true);
    return Object.freeze({ embed, layers: Object.freeze(layers), finalNorm });
  } catch (e) {
    for (const t of uploaded) t.dispose();
    throw e;
  }
}

/** Options of {@linkcode initGemma3Weights}. */
export interface InitWeightsOptions {
  /** Seed of the normal draws. */
  readonly seed?: number;
  /** Storage dtype of the embedding and projections (norms are always f32). */
  readonly dtype?: "f32" | "bf16";
  /** Standard deviation of projections and embedding (HF `initializer_range`, 0.02). */
  readonly std?: number;
}

/** Seeded standard normal generator (mulberry32 + Box–Muller). */
function normalGenerator(seed: number): () => number {
  const random = SeededRandom.fromState(seed);
  const uniform = () => (random.nextUint32() + 0.5) / 4294967296; // in (0, 1): log() is finite
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** A tensor of `std · normal()` draws, in row-major order. */
function randomTensor(
  gpu: Gpu,
  shape: readonly number[],
  draw: { readonly dtype: DType; readonly std: number; readonly normal: () => number },
): Tensor {
  const { dtype, std, normal } = draw;
  const host = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < host.length; i++) host[i] = std * normal();
  const t = Tensor.empty(gpu, shape, dtype);
  t.write(host); // splits across parts when needed
  return t;
}

/**
 * Seeded random weights (normal(0, std) projections and embedding, zero norms so `1 + w = 1`),
 * for benchmarks and for training a small model from scratch.
 *
 * @param gpu Runtime.
 * @param config Model config.
 * @param options Seed, dtype and std.
 * @returns GPU weights.
 */
export function initGemma3Weights(
  gpu: Gpu,
  config: Gemma3Config,
  options: InitWeightsOptions = {},
): Gemma3Weights {
  const normal = normalGenerator(options.seed ?? 0);
  const dtype = options.dtype ?? "f32";
  const std = options.std ?? 0.02;
  const draw = { dtype, std, normal };
  const embed = randomTensor(gpu, [config.vocabSize, config.hiddenSize], draw);
  const layers: Record<LayerWeightName, Tensor>[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const layer = {} as Record<LayerWeightName, Tensor>;
    for (const w of LAYER_WEIGHTS) {
      const shape = layerWeightShape(config, w);
      layer[w] = NORM_WEIGHTS.has(w)
        ? Tensor.zeros(gpu, shape, "f32")
        : randomTensor(gpu, shape, draw);
    }
    layers.push(Object.freeze(layer));
  }
  const finalNorm = Tensor.zeros(gpu, [config.hiddenSize], "f32");
  return Object.freeze({ embed, layers: Object.freeze(layers), finalNorm });
}

/**
 * Gives every weight's buffer back to the pool.
 *
 * @param weights The weights.
 */
export function disposeGemma3Weights(weights: Gemma3Weights): void {
  weights.embed.dispose();
  weights.finalNorm.dispose();
  for (const layer of weights.layers) for (const t of Object.values(layer)) t.dispose();
}
