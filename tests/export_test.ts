/**
 * Exports (`rl/export.ts`): a run gets `export/<phase>/` when a training phase finishes; the
 * demo's model folder evaluates and generates through `deno task eval` / `generate` on the run
 * folder exactly as the run evaluated itself; a LoRA run's PEFT adapter loads onto the base with
 * the trainer's logits and its merged bf16 model within bf16 rounding; the stores write exports
 * as a whole.
 *
 * @module
 */

import assert from "node:assert/strict";
import { explicitEvalOptions, parseEvalArgs } from "../cli/eval.ts";
import { parseGenerateArgs } from "../cli/generate.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { disposeGemma3Weights } from "../model/gemma3_weights.ts";
import { LoraAdapter, loraConfig } from "../model/lora.ts";
import { mergeLoraWeight, toBf16Bits } from "../model/lora_merge.ts";
import { ModelDirError } from "../model/model_dir_fs.ts";
import { decodeFloat32 } from "../model/safetensors_dtype.ts";
import { openSafetensors } from "../model/safetensors_fs.ts";
import { restoreParams } from "../rl/checkpoint.ts";
import { loadCheckpoint } from "../rl/checkpoint_fs.ts";
import { evaluateModelDir } from "../rl/evaluate_fs.ts";
import { textExportFile } from "../rl/export_files.ts";
import { writeExportFolder } from "../rl/export_fs.ts";
import { generateFromModelDir } from "../rl/generate_fs.ts";
import { RUN_FILES } from "../rl/pipeline_fs.ts";
import { resolveTrainConfig } from "../rl/presets.ts";
import { MemoryRunStore } from "../rl/run_store.ts";
import { TrainConfigError } from "../rl/train_config.ts";
import { train } from "../rl/train_fs.ts";
import { assertClose, testGpu, thrown } from "./_helpers.ts";
import { writeSmallModelDir } from "./_small_tokenizer.ts";

const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url).pathname;

async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(path)) names.push(e.name);
  return names.sort();
}

async function readJsonl(path: string): Promise<Record<string, unknown>[]> {
  return (await Deno.readTextFile(path)).split("\n").filter((l) => l !== "").map((l) =>
    JSON.parse(l)
  );
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "webtune_export_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A few steps per phase; one question per generate call, so `generate` repeats eval exactly. */
const TINY_DEMO = [
  "sft.steps=3",
  "grpo.numBatches=1",
  "grpo.batchSize=1",
  "grpo.numGenerations=2",
  "grpo.maxNewTokens=6",
  "eval.base=false",
  "eval.numQuestions=3",
  "eval.batchSize=1",
  "eval.maxNewTokens=12",
  "run.sampleEvery=0",
  "run.samplesPerPoint=3",
];

Deno.test({
  name:
    "train() exports the demo model; eval and generate on runs/<id> repeat the run's evaluation",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withTempDir(async (dir) => {
      const config = resolveTrainConfig({ preset: "demo", sets: TINY_DEMO });
      const runDir = `${dir}/run`;
      const trained = await train(config, { runDir });
      assert.equal(trained.status, "completed");
      const exports = `${runDir}/${RUN_FILES.exports}`;
      assert.deepEqual(await listDir(exports), ["grpo", "sft"]);
      assert.deepEqual(await listDir(`${exports}/grpo`), [
        "config.json",
        "model.safetensors",
        "vocab_map.json",
      ]);
      const hf = JSON.parse(await Deno.readTextFile(`${exports}/grpo/config.json`));
      assert.equal(hf.model_type, "gemma3_text");
      assert.equal(hf.torch_dtype, "float32");
      const vocab = JSON.parse(await Deno.readTextFile(`${runDir}/${RUN_FILES.vocabMap}`));
      assert.equal(hf.vocab_size, vocab.ids.length);
      assert.deepEqual(
        JSON.parse(await Deno.readTextFile(`${exports}/grpo/vocab_map.json`)),
        vocab,
      );
      // The demo's export is a plain model folder.
      const gpu = await testGpu();
      const loaded = await loadGemma3(`${exports}/sft`, { gpu });
      assert.equal(loaded.config.vocabSize, vocab.ids.length);
      disposeGemma3Weights(loaded.weights);

      // Each export holds its phase's trained weights bit for bit (the final checkpoint's).
      const state = JSON.parse(await Deno.readTextFile(`${runDir}/${RUN_FILES.pipeline}`));
      for (const phase of ["sft", "grpo"] as const) {
        const checkpoint = await loadCheckpoint(state.outputs[phase].checkpoint);
        const st = await openSafetensors(`${exports}/${phase}/model.safetensors`);
        assert.deepEqual([...st.tensors.keys()].sort(), [...checkpoint.params.keys()].sort());
        for (const [name, t] of checkpoint.params) {
          assert.equal(st.info(name).dtype, "F32");
          assert.deepEqual(decodeFloat32("F32", await st.read(name)), t.data, `${phase} ${name}`);
        }
        st.close();
      }

      const samples = await readJsonl(`${runDir}/${RUN_FILES.samples}`);
      for (const phase of ["sft", "grpo"] as const) {
        // `deno task eval --model runs/<id> [--phase sft]`, through the CLI's parser: the recipe
        // defaults it fills in (768 new tokens, batch 8) give way to the run's own settings.
        const args = ["--model", runDir, "--out", `${dir}/eval`];
        if (phase === "sft") args.push("--phase", "sft");
        const parsed = parseEvalArgs(args)!;
        const { result } = await evaluateModelDir(parsed.model, explicitEvalOptions(parsed));
        const { accuracy, partialAccuracy, formatAccuracy, n } = result.summary;
        assert.deepEqual(
          { accuracy, partialAccuracy, formatAccuracy, n },
          trained.eval[phase],
          `${phase}: eval on the run folder vs the run's eval.json`,
        );
        // Stronger than equal fractions: the same completions as the run's evaluation kept.
        const kept = samples.filter((s) => s.phase === `${phase}-eval`);
        assert.equal(kept.length, 3);
        kept.forEach((s, i) => assert.equal(result.records[i].completions[0], s.completion));

        const gen = parseGenerateArgs([
          "--model",
          phase === "sft" ? `${exports}/sft` : runDir, // an export folder directly, or the run
          "--recipe", // the recipe's prompt around the question, as eval builds it
          "--prompt",
          result.records[0].question,
          "--max-new-tokens",
          String(config.eval.maxNewTokens),
        ])!;
        const out = await generateFromModelDir(gen.model, gen.prompt, { ...gen, gpu });
        assert.equal(out.text, result.records[0].completions[0], `${phase}: generate`);
      }

      // The export of a phase that never ran is named, with what exists.
      const e = await evaluateModelDir(runDir, { phase: "base" }).catch((e) => e);
      assert.ok(e instanceof ModelDirError, String(e));
      await Deno.remove(`${exports}/sft`, { recursive: true });
      const missing = await evaluateModelDir(runDir, { phase: "sft" }).catch((e) => e);
      assert.ok(missing instanceof ModelDirError, String(missing));
      assert.match(missing.message, /has no export\/sft: .* it has export\/grpo/);
    });
  },
});

Deno.test({
  name: "a LoRA run's export: PEFT adapter with the trainer's logits, merged bf16 model",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withTempDir(async (dir) => {
      const base = `${dir}/base`;
      await writeSmallModelDir(FIXTURE, base);
      const config = resolveTrainConfig({
        preset: "gemma3-1b-gsm8k",
        sets: [
          `model.path=${base}`,
          "lora.rank=2",
          "lora.alpha=4",
          "sft.data=demo",
          "sft.maxExamples=4",
          "sft.steps=2",
          "sft.microBatchSize=1",
          "sft.maxLength=640",
          "sft.optimizer.learningRate=0.002",
          "sft.optimizer.schedule=constant",
          "grpo.enabled=false",
          "eval.base=false",
          "eval.afterSft=false",
          "run.sampleEvery=0",
          "export.merged=true",
        ],
      });
      const runDir = `${dir}/run`;
      assert.equal((await train(config, { runDir })).status, "completed");
      const out = `${runDir}/${RUN_FILES.exports}/sft`;
      assert.deepEqual(await listDir(`${runDir}/${RUN_FILES.exports}`), ["sft"]);
      assert.deepEqual(await listDir(out), [
        "adapter_config.json",
        "adapter_model.safetensors",
        "merged",
      ]);
      assert.deepEqual(await listDir(`${out}/merged`), [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
      ]);

      // The PEFT layout peft's save_pretrained writes for Gemma3ForCausalLM.
      const peft = JSON.parse(await Deno.readTextFile(`${out}/adapter_config.json`));
      assert.equal(peft.peft_type, "LORA");
      assert.equal(peft.task_type, "CAUSAL_LM");
      assert.equal(peft.r, 2);
      assert.equal(peft.lora_alpha, 4);
      assert.deepEqual(peft.target_modules, [...config.lora!.targets]);
      assert.equal(peft.base_model_name_or_path, base);
      const st = await openSafetensors(`${out}/adapter_model.safetensors`);
      const gpu = await testGpu();
      const baseModel = await loadGemma3(base, { gpu });
      const layers = baseModel.config.numLayers;
      assert.equal(st.tensors.size, layers * config.lora!.targets.length * 2);
      for (const [name, info] of st.tensors) {
        assert.match(
          name,
          /^base_model\.model\.model\.layers\.\d+\.(self_attn|mlp)\.[a-z]+_proj\.lora_[AB]\.weight$/,
        );
        assert.equal(info.dtype, "F32");
      }
      assert.ok(st.tensors.has("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
      assert.deepEqual(st.metadata, { format: "pt" });
      // The same names and config fields as the fixture's adapter, which peft 0.21 wrote.
      const fixture = await openSafetensors(`${FIXTURE}/adapter_model.safetensors`);
      assert.deepEqual([...st.tensors.keys()].sort(), [...fixture.tensors.keys()].sort());
      fixture.close();
      const fixtureConfig = JSON.parse(await Deno.readTextFile(`${FIXTURE}/adapter_config.json`));
      assert.deepEqual(
        Object.keys(peft).sort(),
        Object.keys(fixtureConfig).filter((k) => k !== "peft_version").sort(),
      );
      st.close();

      // The trainer's weights: the phase's final checkpoint, saved from the same GPU tensors.
      const state = JSON.parse(await Deno.readTextFile(`${runDir}/${RUN_FILES.pipeline}`));
      const trainerAdapter = LoraAdapter.init(gpu, baseModel.config, loraConfig(config.lora!));
      restoreParams(
        trainerAdapter.parameters(),
        await loadCheckpoint(state.outputs.sft.checkpoint),
      );
      const trainer = baseModel.withLora(trainerAdapter);
      const exported = await loadGemma3(base, { gpu, adapter: out });
      const merged = await loadGemma3(`${out}/merged`, { gpu });
      const mergedJson = JSON.parse(await Deno.readTextFile(`${out}/merged/config.json`));
      assert.equal(mergedJson.torch_dtype, "bfloat16");
      assert.equal(merged.weights.layers[0].q_proj.dtype, "bf16");
      const prompt = [2, 105, 300, 45, 77, 411, 106, 107, 105, 250, 7];
      const want = await trainer.logits(prompt);
      // Exact: the adapter file holds the trainer's f32 matrices, applied by the same kernels.
      assert.deepEqual(await exported.logits(prompt), want);
      // The adapter moved the logits, so the comparisons above are not trivially of the base.
      const baseLogits = await baseModel.logits(prompt);
      let moved = 0;
      for (let i = 0; i < want.length; i++) {
        moved = Math.max(moved, Math.abs(want[i] - baseLogits[i]));
      }
      assert.ok(moved > 1e-3, `the adapter changes the logits (max ${moved})`);
      // merged/: W + (alpha/r)·B·A in float64, rounded once to bf16 (nearest, ties to even).
      const name = "model.layers.0.self_attn.q_proj.weight";
      const stored = await openSafetensors(`${out}/merged/model.safetensors`);
      assert.equal(stored.info(name).dtype, "BF16");
      const raw = await stored.read(name);
      const bits = new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
      stored.close();
      const q = baseModel.weights.layers[0].q_proj, pair = trainerAdapter.layers[0].q_proj!;
      const expected = toBf16Bits(mergeLoraWeight(
        (await q.read()) as Float32Array,
        (await pair.a.read()) as Float32Array,
        (await pair.b.read()) as Float32Array,
        { out: q.shape[0], in: q.shape[1], rank: 2, scale: trainerAdapter.scale },
      ));
      assert.deepEqual(bits, expected);
      // Its logits: rounding W + ΔW to bf16 loses part of the small update (here 0.10 off in
      // logits of magnitude 10, while the adapter moves them by 1.9; peft_test's bound: 25%).
      const mergedErr = assertClose(await merged.logits(prompt), want, 2e-2, "merged logits");
      assert.ok(mergedErr < 0.25 * moved, `bf16 merge error ${mergedErr}, adapter effect ${moved}`);
      for (const m of [exported, merged]) {
        m.lora?.dispose();
        disposeGemma3Weights(m.weights);
      }
      trainerAdapter.dispose();
      disposeGemma3Weights(baseModel.weights);
    });
  },
});

Deno.test("export.merged is a LoRA option: refused for full fine-tuning, naming the field", () => {
  const e = thrown(() => resolveTrainConfig({ preset: "demo", sets: ["export.merged=true"] }));
  assert.ok(e instanceof TrainConfigError, String(e));
  assert.equal(e.field, "export.merged");
  assert.equal(resolveTrainConfig({ preset: "demo" }).export.merged, false);
  const bad = thrown(() =>
    resolveTrainConfig({ preset: "gemma3-1b-gsm8k", sets: ["export.merged=1"] })
  );
  assert.ok(bad instanceof TrainConfigError && bad.field === "export.merged", String(bad));
});

Deno.test("RunStore.writeExport(): memory keeps the bytes, disk replaces the folder as a whole", async () => {
  const store = new MemoryRunStore("mem");
  const ref = await store.writeExport("sft", [
    textExportFile("a.json", "{}"),
    textExportFile("merged/b.txt", "b"),
  ]);
  assert.equal(ref, "mem/export/sft");
  assert.deepEqual([...store.exports.get("sft")!.keys()], ["a.json", "merged/b.txt"]);
  assert.equal(new TextDecoder().decode(store.exports.get("sft")!.get("merged/b.txt")), "b");
  assert.throws(() => textExportFile("../x", ""), /plain names/);
  await withTempDir(async (dir) => {
    const target = `${dir}/export/sft`;
    await writeExportFolder(target, [textExportFile("old.txt", "1")]);
    await writeExportFolder(target, [textExportFile("new.txt", "2")]);
    assert.deepEqual(await listDir(target), ["new.txt"]);
    assert.deepEqual(await listDir(`${dir}/export`), ["sft"]); // no temporary folders left
    // A failing file leaves the previous export untouched.
    const failing = {
      name: "bad.bin",
      async *chunks(): AsyncIterable<Uint8Array> {
        yield new Uint8Array(1);
        throw new Error("disk full");
      },
    };
    await assert.rejects(() => writeExportFolder(target, [failing]), /disk full/);
    assert.deepEqual(await listDir(target), ["new.txt"]);
    assert.deepEqual(await listDir(`${dir}/export`), ["sft"]);
  });
});
