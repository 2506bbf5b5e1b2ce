/**
 * checkWeights(): checkpoint tensor names/shapes/dtypes against a Gemma3Config; loading refuses
 * non-finite weights.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { gemma3Config } from "../model/config.ts";
import { loadGemma3Config } from "../model/config_fs.ts";
import { parseGemma3Config } from "../model/config_hf.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { disposeGemma3Weights } from "../model/gemma3_weights.ts";
import { SafetensorsError } from "../model/safetensors.ts";
import { openCheckpoint, openSafetensors } from "../model/safetensors_fs.ts";
import {
  checkWeights,
  expectedWeightShapes,
  type StoredTensor,
  WeightError,
  type WeightErrorCode,
} from "../model/weights.ts";
import { testGpu } from "./_helpers.ts";

const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  fileURLToPath(new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url));

const TINY = gemma3Config({
  vocabSize: 32,
  hiddenSize: 8,
  intermediateSize: 12,
  numLayers: 2,
  numHeads: 2,
  numKvHeads: 1,
  headDim: 4,
  slidingWindow: 4,
  eosTokenIds: [1],
});

function tinyIndex(prefix = "model."): Map<string, StoredTensor> {
  const out = new Map<string, StoredTensor>();
  for (const [name, shape] of expectedWeightShapes(TINY)) {
    out.set(prefix + name.slice("model.".length), { dtype: "BF16", shape });
  }
  return out;
}

function expectWeightError(
  run: () => unknown,
  code: WeightErrorCode,
  tensor: string,
  expected: number[],
  actual: number[] | null,
): void {
  try {
    run();
  } catch (e) {
    assert.ok(e instanceof WeightError, `expected WeightError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.tensor, tensor);
    assert.deepEqual(e.expected, expected);
    assert.deepEqual(e.actual, actual);
    assert.ok(e.message.includes(tensor), e.message);
    if (code !== "unexpected") assert.ok(e.message.includes(`[${expected.join(", ")}]`), e.message);
    if (actual !== null && code === "shape") {
      assert.ok(e.message.includes(`[${actual.join(", ")}]`), e.message);
    }
    return;
  }
  throw new Error(`expected WeightError ${code} for ${tensor}`);
}

Deno.test("checkWeights() accepts the fixture checkpoint and resolves every weight", async () => {
  const config = await loadGemma3Config(FIXTURE);
  const ckpt = await openCheckpoint(FIXTURE);
  try {
    const resolved = checkWeights(config, ckpt.tensors);
    assert.equal(resolved.size, ckpt.tensors.size);
    for (const [canonical, stored] of resolved) assert.equal(canonical, stored);
    // A config with one layer fewer than the file is caught.
    const json = JSON.parse(await Deno.readTextFile(`${FIXTURE}/config.json`));
    const fewer = parseGemma3Config({
      ...json,
      num_hidden_layers: config.numLayers - 1,
      layer_types: config.layerTypes.slice(0, -1),
    });
    assert.throws(() => checkWeights(fewer, ckpt.tensors), (e: unknown) => {
      assert.ok(e instanceof WeightError && e.code === "unexpected");
      assert.ok(e.tensor.startsWith(`model.layers.${config.numLayers - 1}.`));
      return true;
    });
  } finally {
    ckpt.close();
  }
});

Deno.test("checkWeights() resolves multimodal prefixes and ignores a tied lm_head", () => {
  for (const prefix of ["language_model.model.", "model.language_model."]) {
    const index = tinyIndex(prefix);
    index.set("lm_head.weight", { dtype: "BF16", shape: [32, 8] });
    index.set("vision_tower.vision_model.post_layernorm.weight", { dtype: "F32", shape: [3] });
    const resolved = checkWeights(TINY, index);
    assert.equal(resolved.size, expectedWeightShapes(TINY).size);
    assert.equal(resolved.get("model.norm.weight"), `${prefix}norm.weight`);
    assert.equal(resolved.has("lm_head.weight"), false);
  }
});

Deno.test("checkWeights() names the tensor, expected and actual shape on a mismatch", () => {
  const missing = tinyIndex();
  missing.delete("model.layers.1.mlp.up_proj.weight");
  expectWeightError(
    () => checkWeights(TINY, missing),
    "missing",
    "model.layers.1.mlp.up_proj.weight",
    [12, 8],
    null,
  );
  const wrong = tinyIndex();
  wrong.set("model.layers.0.self_attn.q_proj.weight", { dtype: "BF16", shape: [4, 8] });
  expectWeightError(
    () => checkWeights(TINY, wrong),
    "shape",
    "model.layers.0.self_attn.q_proj.weight",
    [8, 8],
    [4, 8],
  );
  const transposed = tinyIndex();
  transposed.set("model.embed_tokens.weight", { dtype: "BF16", shape: [8, 32] });
  expectWeightError(
    () => checkWeights(TINY, transposed),
    "shape",
    "model.embed_tokens.weight",
    [32, 8],
    [8, 32],
  );
  const ints = tinyIndex();
  ints.set("model.norm.weight", { dtype: "I32", shape: [8] });
  expectWeightError(() => checkWeights(TINY, ints), "dtype", "model.norm.weight", [8], [8]);
  const extra = tinyIndex();
  extra.set("model.layers.2.input_layernorm.weight", { dtype: "BF16", shape: [8] });
  expectWeightError(
    () => checkWeights(TINY, extra),
    "unexpected",
    "model.layers.2.input_layernorm.weight",
    [],
    [8],
  );
  expectWeightError(
    () => checkWeights(TINY, new Map()),
    "missing",
    "model.embed_tokens.weight",
    [32, 8],
    null,
  );
});

Deno.test("checkWeights() requires lm_head.weight when embeddings are not tied", () => {
  const untied = gemma3Config({ ...TINY, tieWordEmbeddings: false });
  const index = tinyIndex();
  expectWeightError(() => checkWeights(untied, index), "missing", "lm_head.weight", [32, 8], null);
  index.set("lm_head.weight", { dtype: "F32", shape: [32, 8] });
  assert.equal(checkWeights(untied, index).get("lm_head.weight"), "lm_head.weight");
  const mm = tinyIndex("language_model.model.");
  mm.set("language_model.lm_head.weight", { dtype: "F32", shape: [32, 8] });
  assert.equal(checkWeights(untied, mm).get("lm_head.weight"), "language_model.lm_head.weight");
});

Deno.test("loadGemma3() refuses NaN/±Inf in a weight or adapter tensor, naming the file and tensor", async () => {
  const gpu = await testGpu();
  const dir = await Deno.makeTempDir({ prefix: "webtune_weights_" });
  try {
    for (const f of ["config.json", "model.safetensors", "adapter_config.json"]) {
      await Deno.copyFile(`${FIXTURE}/${f}`, `${dir}/${f}`);
    }
    await Deno.copyFile(`${FIXTURE}/adapter_model.safetensors`, `${dir}/adapter_model.safetensors`);
    const model = `${dir}/model.safetensors`, adapter = `${dir}/adapter_model.safetensors`;
    const lora = "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight";
    // [file, tensor, element, stored bits of the bad value, the value]
    const cases: [string, string, number, number[], number][] = [
      [model, "model.layers.2.mlp.down_proj.weight", 37, [0xc0, 0x7f], NaN], // bf16 as stored
      [model, "model.embed_tokens.weight", 512 * 64 - 1, [0x80, 0x7f], Infinity],
      [model, "model.layers.1.input_layernorm.weight", 5, [0x80, 0xff], -Infinity], // widened
      [adapter, lora, 3, [0, 0, 0xc0, 0x7f], NaN], // f32 adapter
      [adapter, lora, 0, [0, 0, 0x80, 0x7f], Infinity],
    ];
    const baseline = gpu.memory().inUseBytes;
    for (const [file, tensor, element, bits, value] of cases) {
      const st = await openSafetensors(file);
      const at = st.info(tensor).byteOffset + element * bits.length;
      st.close();
      const original = await Deno.readFile(file);
      const damaged = original.slice();
      damaged.set(bits, at);
      await Deno.writeFile(file, damaged);
      await assert.rejects(() => loadGemma3(dir, { gpu, adapter: dir }), (e: unknown) => {
        assert.ok(e instanceof SafetensorsError, `${tensor}: ${e}`);
        assert.equal(e.code, "non_finite");
        assert.equal(e.file, file);
        assert.equal(e.tensor, tensor);
        assert.ok(e.message.includes(`element ${element} is ${value}`), e.message);
        return true;
      });
      assert.equal(gpu.memory().inUseBytes, baseline, `${tensor}: uploaded weights are released`);
      await Deno.writeFile(file, original);
    }
    const ok = await loadGemma3(dir, { gpu, adapter: dir });
    assert.ok((await ok.logits([2, 5, 9])).every(Number.isFinite));
    disposeGemma3Weights(ok.weights);
    ok.lora?.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
