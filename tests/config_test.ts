/** Gemma3Config: HF config.json parsing (text and multimodal), preset, builder, validation. */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  gemma3_1b,
  type Gemma3Config,
  gemma3Config,
  gemma3ConfigToJson,
  layerTypesFromPattern,
} from "../model/config.ts";
import { loadGemma3Config } from "../model/config_fs.ts";
import { parseGemma3Config } from "../model/config_hf.ts";

const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  fileURLToPath(new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url));

function expectConfigError(run: () => unknown, field: string, message?: RegExp): ConfigError {
  try {
    run();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    assert.equal(e.field, field, e.message);
    assert.ok(e.message.includes(field), `message names ${field}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return e;
  }
  throw new Error(`expected ConfigError for ${field}, nothing was thrown`);
}

/** The real google/gemma-3-4b-it config.json (text part abridged as on the Hub). */
const GEMMA3_4B_JSON = {
  architectures: ["Gemma3ForConditionalGeneration"],
  boi_token_index: 255999,
  eoi_token_index: 256000,
  eos_token_id: [1, 106],
  image_token_index: 262144,
  initializer_range: 0.02,
  mm_tokens_per_image: 256,
  model_type: "gemma3",
  text_config: {
    hidden_size: 2560,
    intermediate_size: 10240,
    model_type: "gemma3_text",
    num_hidden_layers: 34,
    rope_scaling: { factor: 8.0, rope_type: "linear" },
    sliding_window: 1024,
  },
  torch_dtype: "bfloat16",
  vision_config: { hidden_size: 1152, model_type: "siglip_vision_model" },
};

Deno.test("loadGemma3Config() parses the fixture config.json to its values", async () => {
  const json = JSON.parse(await Deno.readTextFile(`${FIXTURE}/config.json`));
  const c = await loadGemma3Config(FIXTURE);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.layerTypes) && Object.isFrozen(c.eosTokenIds));
  assert.equal(c.vocabSize, json.vocab_size);
  assert.equal(c.hiddenSize, json.hidden_size);
  assert.equal(c.intermediateSize, json.intermediate_size);
  assert.equal(c.numLayers, json.num_hidden_layers);
  assert.equal(c.numHeads, json.num_attention_heads);
  assert.equal(c.numKvHeads, json.num_key_value_heads);
  assert.equal(c.headDim, json.head_dim);
  assert.equal(c.slidingWindow, json.sliding_window);
  assert.equal(c.ropeTheta, json.rope_theta);
  assert.equal(c.ropeLocalBaseFreq, json.rope_local_base_freq);
  assert.equal(c.ropeScalingFactor, 1);
  assert.equal(c.queryPreAttnScalar, json.query_pre_attn_scalar);
  assert.equal(c.rmsNormEps, json.rms_norm_eps);
  assert.equal(c.tieWordEmbeddings, true);
  assert.equal(c.finalLogitSoftcapping, null);
  assert.equal(c.attnLogitSoftcapping, null);
  assert.equal(c.hiddenActivation, "gelu_pytorch_tanh");
  assert.equal(c.bosTokenId, json.bos_token_id);
  assert.deepEqual(c.eosTokenIds, [json.eos_token_id].flat());
  assert.equal(c.padTokenId, json.pad_token_id);
  assert.equal(c.maxPositionEmbeddings, json.max_position_embeddings);
  assert.equal(c.layerTypes.length, c.numLayers);
  // layer_types and sliding_window_pattern agree (the fixture lists both).
  if (json.layer_types) assert.deepEqual(c.layerTypes, json.layer_types);
  if (json.sliding_window_pattern) {
    assert.deepEqual(c.layerTypes, layerTypesFromPattern(c.numLayers, json.sliding_window_pattern));
    const { layer_types: _dropped, ...withoutTypes } = json;
    assert.deepEqual(parseGemma3Config(withoutTypes), c);
  }
  // The same config from the file path, and written back out and re-read.
  assert.deepEqual(await loadGemma3Config(`${FIXTURE}/config.json`), c);
  assert.deepEqual(parseGemma3Config(gemma3ConfigToJson(c)), c);
});

Deno.test("gemma3_1b() has the real gemma-3-1b numbers", () => {
  const c = gemma3_1b();
  assert.deepEqual({ ...c, layerTypes: undefined }, {
    vocabSize: 262144,
    hiddenSize: 1152,
    intermediateSize: 6912,
    numLayers: 26,
    numHeads: 4,
    numKvHeads: 1,
    headDim: 256,
    slidingWindow: 512,
    layerTypes: undefined,
    ropeTheta: 1e6,
    ropeLocalBaseFreq: 1e4,
    ropeScalingFactor: 1,
    queryPreAttnScalar: 256,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: true,
    finalLogitSoftcapping: null,
    attnLogitSoftcapping: null,
    hiddenActivation: "gelu_pytorch_tanh",
    bosTokenId: 2,
    eosTokenIds: [1, 106],
    padTokenId: 0,
    maxPositionEmbeddings: 32768,
  });
  const global = c.layerTypes.flatMap((t, i) => t === "full_attention" ? [i] : []);
  assert.deepEqual(global, [5, 11, 17, 23]);
  assert.ok(Object.isFrozen(c));
  assert.throws(() => {
    (c as { numLayers: number }).numLayers = 3;
  }, TypeError);
  // The real 1B config.json (4.x style, no layer_types) parses to the preset.
  const hf = {
    architectures: ["Gemma3ForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    attn_logit_softcapping: null,
    bos_token_id: 2,
    cache_implementation: "hybrid",
    eos_token_id: [1, 106],
    final_logit_softcapping: null,
    head_dim: 256,
    hidden_activation: "gelu_pytorch_tanh",
    hidden_size: 1152,
    initializer_range: 0.02,
    intermediate_size: 6912,
    max_position_embeddings: 32768,
    model_type: "gemma3_text",
    num_attention_heads: 4,
    num_hidden_layers: 26,
    num_key_value_heads: 1,
    pad_token_id: 0,
    query_pre_attn_scalar: 256,
    rms_norm_eps: 1e-06,
    rope_local_base_freq: 10000,
    rope_scaling: null,
    rope_theta: 1000000,
    sliding_window: 512,
    sliding_window_pattern: 6,
    torch_dtype: "bfloat16",
    use_cache: true,
    vocab_size: 262144,
  };
  assert.deepEqual(parseGemma3Config(hf), c);
});

Deno.test("parseGemma3Config() takes the multimodal wrapper's text_config with defaults", () => {
  const c = parseGemma3Config(GEMMA3_4B_JSON);
  assert.equal(c.hiddenSize, 2560);
  assert.equal(c.intermediateSize, 10240);
  assert.equal(c.numLayers, 34);
  assert.equal(c.slidingWindow, 1024);
  assert.equal(c.ropeScalingFactor, 8);
  // Gemma3TextConfig defaults fill the rest.
  assert.equal(c.vocabSize, 262208);
  assert.equal(c.numHeads, 8);
  assert.equal(c.numKvHeads, 4);
  assert.equal(c.headDim, 256);
  assert.equal(c.queryPreAttnScalar, 256);
  assert.equal(c.ropeTheta, 1e6);
  assert.equal(c.ropeLocalBaseFreq, 1e4);
  assert.equal(c.maxPositionEmbeddings, 131072);
  // Token ids: text_config has none, so the wrapper's eos list is used.
  assert.deepEqual(c.eosTokenIds, [1, 106]);
  assert.equal(c.bosTokenId, 2);
  assert.deepEqual(c.layerTypes, layerTypesFromPattern(34, 6));
  // Errors name the field inside text_config.
  const bad = structuredClone(GEMMA3_4B_JSON) as { text_config: Record<string, unknown> };
  bad.text_config.num_key_value_heads = 3;
  expectConfigError(() => parseGemma3Config(bad), "text_config.num_attention_heads");
});

Deno.test("parseGemma3Config() accepts transformers 5.x rope_parameters and layer_types", () => {
  const v5 = {
    model_type: "gemma3_text",
    num_hidden_layers: 4,
    layer_types: ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
    rope_parameters: {
      sliding_attention: { rope_type: "default", rope_theta: 20000 },
      full_attention: { rope_type: "linear", factor: 4, rope_theta: 500000 },
    },
  };
  const c = parseGemma3Config(v5);
  assert.equal(c.ropeLocalBaseFreq, 20000);
  assert.equal(c.ropeTheta, 500000);
  assert.equal(c.ropeScalingFactor, 4);
  assert.deepEqual(c.layerTypes, v5.layer_types);
  // rope_theta only through legacy keys when rope_parameters leaves it out.
  const partial = {
    ...v5,
    rope_theta: 7,
    rope_parameters: { sliding_attention: { rope_type: "default" } },
  };
  assert.equal(parseGemma3Config(partial).ropeTheta, 7);
  assert.equal(parseGemma3Config(partial).ropeLocalBaseFreq, 10000);
  expectConfigError(
    () =>
      parseGemma3Config({
        ...v5,
        rope_parameters: { sliding_attention: { rope_type: "linear", factor: 2 } },
      }),
    "rope_parameters.sliding_attention.factor",
  );
  expectConfigError(
    () => parseGemma3Config({ ...v5, rope_parameters: { rope_type: "default", rope_theta: 1 } }),
    "rope_parameters",
  );
});

Deno.test("parseGemma3Config() errors name the field and what was expected", () => {
  const base = { model_type: "gemma3_text", num_hidden_layers: 6, sliding_window_pattern: 6 };
  const cases: [Record<string, unknown>, string, RegExp?][] = [
    [
      { num_attention_heads: 4, num_key_value_heads: 3 },
      "num_attention_heads",
      /^num_attention_heads must be a multiple of num_key_value_heads, got 4 and 3$/,
    ],
    [{ vocab_size: 0 }, "vocab_size", /positive integer, got 0/],
    [{ hidden_size: 64.5 }, "hidden_size"],
    [{ intermediate_size: "192" }, "intermediate_size"],
    [{ num_hidden_layers: 0 }, "num_hidden_layers"],
    [{ head_dim: 31 }, "head_dim", /even/],
    [{ sliding_window: -8 }, "sliding_window"],
    [{ max_position_embeddings: 0 }, "max_position_embeddings"],
    [{ layer_types: ["sliding_attention"] }, "layer_types", /one kind per layer \(6\)/],
    [{ layer_types: Array(6).fill("global") }, "layer_types", /\[0\] must be/],
    [{ sliding_window_pattern: 0 }, "sliding_window_pattern"],
    [{ rope_theta: -1 }, "rope_theta"],
    [{ rope_local_base_freq: 0 }, "rope_local_base_freq"],
    [{ query_pre_attn_scalar: 0 }, "query_pre_attn_scalar"],
    [{ rms_norm_eps: 0 }, "rms_norm_eps"],
    [{ tie_word_embeddings: "yes" }, "tie_word_embeddings", /boolean/],
    [{ final_logit_softcapping: 30 }, "final_logit_softcapping", /not supported.*got 30/],
    [{ attn_logit_softcapping: 50 }, "attn_logit_softcapping", /not supported/],
    [{ hidden_activation: "gelu" }, "hidden_activation", /gelu_pytorch_tanh/],
    [{ attention_bias: true }, "attention_bias", /not supported/],
    [{ attention_dropout: 0.1 }, "attention_dropout"],
    [{ rope_scaling: { rope_type: "dynamic", factor: 2 } }, "rope_scaling.rope_type", /linear/],
    [{ rope_scaling: { rope_type: "linear" } }, "rope_scaling.factor", /positive number/],
    [{ eos_token_id: 262208 }, "eos_token_id", /token id in \[0, 262208\)/],
    [{ bos_token_id: -1 }, "bos_token_id"],
    [{ pad_token_id: 1.5 }, "pad_token_id"],
    [{ model_type: "gemma2" }, "model_type", /"gemma3_text" or "gemma3"/],
  ];
  for (const [patch, field, message] of cases) {
    expectConfigError(() => parseGemma3Config({ ...base, ...patch }), field, message);
  }
  expectConfigError(() => parseGemma3Config([1]), "config");
});

Deno.test("gemma3Config() builds validated configs from overrides with camelCase errors", () => {
  const tiny: Gemma3Config = gemma3Config({
    vocabSize: 512,
    hiddenSize: 64,
    intermediateSize: 192,
    numLayers: 12,
    headDim: 32,
    slidingWindow: 8,
    eosTokenIds: [1],
  });
  assert.equal(tiny.numHeads, 4);
  assert.deepEqual(tiny.layerTypes, layerTypesFromPattern(12, 6));
  assert.deepEqual(gemma3Config({ numLayers: 4, slidingWindowPattern: 2 }).layerTypes, [
    "sliding_attention",
    "full_attention",
    "sliding_attention",
    "full_attention",
  ]);
  const scaled = gemma3Config({ ropeScalingFactor: 8 });
  assert.deepEqual(parseGemma3Config(gemma3ConfigToJson(scaled)), scaled);
  expectConfigError(
    () => gemma3Config({ numHeads: 4, numKvHeads: 3 }),
    "numHeads",
    /^numHeads must be a multiple of numKvHeads, got 4 and 3$/,
  );
  expectConfigError(() => gemma3Config({ numLayer: 3 } as never), "numLayer", /unknown/);
  expectConfigError(() => gemma3Config({ numLayers: 3, layerTypes: [] }), "layerTypes");
  expectConfigError(() => gemma3Config({ eosTokenIds: [262144] }), "eosTokenIds");
  expectConfigError(
    () => gemma3Config({ finalLogitSoftcapping: 30 as unknown as null }),
    "finalLogitSoftcapping",
  );
});

Deno.test("loadGemma3Config() reports a missing or non-JSON config.json", async () => {
  const dir = await Deno.makeTempDir({ prefix: "webtune_cfg_" });
  try {
    await assert.rejects(() => loadGemma3Config(dir), (e: unknown) => {
      assert.ok(e instanceof ConfigError && e.field === "config.json");
      return true;
    });
    await Deno.writeTextFile(`${dir}/config.json`, "{ nope");
    await assert.rejects(() => loadGemma3Config(dir), /is not JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
