/**
 * The kernel-variant catalogue (`kernels/kernel_variants.ts`) is complete and compiles:
 * - it uses every `*Source` builder that `kernels/_*_wgsl.ts` exports;
 * - the whole catalogue compiles on Deno's adapter (Chromium runs the same function in a page);
 * - a broad workload compiles nothing the catalogue lacks: the tiny fixture model (LoRA and
 *   full fine-tuning forward and backward, with and without entropy, AdamW, greedy and sampled
 *   generation with log-probs) label for label, and every launcher with each of its options on
 *   odd shapes by name and non-numeric constants.
 *
 * @module
 */

import assert from "node:assert/strict";
import { attention, attentionDecode, writeKvCache } from "../kernels/attention.ts";
import { attentionBackward } from "../kernels/attention_backward.ts";
import { add, scale } from "../kernels/elementwise.ts";
import { embedding } from "../kernels/embedding.ts";
import { embeddingBackward } from "../kernels/embedding_backward.ts";
import { geglu } from "../kernels/geglu.ts";
import { gegluBackward } from "../kernels/geglu_backward.ts";
import { Gpu } from "../kernels/gpu.ts";
import {
  compileKernelVariants,
  kernelFamilies,
  kernelVariants,
} from "../kernels/kernel_variants.ts";
import { tokenLogprobs } from "../kernels/logprobs.ts";
import { tokenLogprobsBackward } from "../kernels/logprobs_backward.ts";
import { matmul, matmulTransA } from "../kernels/matmul.ts";
import { type PipelineConstants, pipelineLabel } from "../kernels/pipeline_cache.ts";
import { rmsNorm } from "../kernels/rms_norm.ts";
import { rmsNormBackward } from "../kernels/rms_norm_backward.ts";
import { rope, RopeTable } from "../kernels/rope.ts";
import { sample } from "../kernels/sampling.ts";
import type { DType } from "../kernels/dtype.ts";
import { Tensor } from "../kernels/tensor.ts";
import { disposeTokenBatch, makeTokenBatch } from "../model/batch.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { disposeGemma3Weights, initGemma3Weights } from "../model/gemma3_weights.ts";
import { generateWithLogprobs } from "../model/generate.ts";
import { trainForward } from "../model/train_pass.ts";
import { trainableParameters } from "../model/trainable.ts";
import { AdamW } from "../rl/optimizer.ts";
import { FIXTURE, randomArray, testGpu } from "./_helpers.ts";
import { attentionVariantWorkload } from "./_attention.ts";
import { rmsNormFusionWorkload } from "./_rms_norm_fusion.ts";
import { matmulVariantWorkload } from "./_matmul_variant_checks.ts";

/** A pipeline's name and its constants with numbers masked: the code paths it selects. */
function pathKey(name: string, constants: PipelineConstants): string {
  const entries = Object.entries(constants).sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => [k, typeof v === "number" ? "#" : v]);
  return `${name}${JSON.stringify(Object.fromEntries(entries))}`;
}

function missing(got: Iterable<string>, have: ReadonlySet<string>): string[] {
  return [...new Set(got)].filter((x) => !have.has(x)).sort();
}

Deno.test("kernelFamilies() uses every *Source builder that kernels/_*_wgsl.ts exports", async () => {
  const used = new Set<unknown>(kernelFamilies().map((f) => f.source));
  const unused: string[] = [];
  let builders = 0;
  for await (const e of Deno.readDir(new URL("../kernels/", import.meta.url))) {
    if (!/^_.*_wgsl\.ts$/.test(e.name)) continue;
    const mod = await import(new URL(`../kernels/${e.name}`, import.meta.url).href);
    for (const [name, value] of Object.entries(mod)) {
      if (!name.endsWith("Source") || typeof value !== "function") continue;
      builders++;
      if (!used.has(value)) unused.push(`${e.name}: ${name}`);
    }
  }
  assert.deepEqual(unused, []);
  assert.ok(builders >= 20, `found only ${builders} builders`);
});

Deno.test("kernelVariants() gives distinct labels, each the PipelineCache label", () => {
  const variants = kernelVariants();
  assert.equal(new Set(variants.map((v) => v.label)).size, variants.length);
  const names = kernelFamilies().map((f) => f.name);
  assert.equal(new Set(names).size, names.length);
  // Embedding variants bind 2 + parts storage buffers: the limit bounds the parts.
  const parts = (limit: number) =>
    kernelVariants({ limits: { maxStorageBuffersPerShaderStage: limit } })
      .filter((v) => v.name === "embedding").map((v) => v.constants.parts as number);
  assert.equal(Math.max(...parts(8)), 6);
  assert.equal(Math.max(...parts(100)), 16);
});

Deno.test("compileKernelVariants() compiles the whole catalogue on Deno's adapter", async () => {
  const gpu = await testGpu();
  const variants = kernelVariants({ limits: gpu.device.limits });
  const t0 = performance.now();
  const failures = await compileKernelVariants(gpu.device, variants);
  const seconds = (performance.now() - t0) / 1000;
  assert.deepEqual(failures, []);
  console.log(`${variants.length} variants compiled in ${seconds.toFixed(1)} s`);
});

Deno.test("compileKernelVariants() returns the variants the device rejects, with the message", async () => {
  const gpu = await testGpu();
  const [add] = kernelVariants().filter((v) => v.name === "add");
  const constants = { ...add.constants, broken: true };
  const broken = {
    name: add.name,
    constants,
    label: pipelineLabel(add.name, constants),
    code: add.code.replace("fn main", "fn main("),
  };
  const failures = await compileKernelVariants(gpu.device, [add, broken]);
  assert.deepEqual(failures.map((f) => f.label), [broken.label]);
  assert.match(failures[0].message, /^line \d+:\d+: /);
});

/** The fixture model: LoRA and full fine-tuning steps, generation (fallback-adapter tiles). */
async function fixtureWorkload(gpu: Gpu): Promise<void> {
  const model = await loadGemma3(FIXTURE, { gpu, adapter: FIXTURE });
  const sequences = [[2, 5, 9, 14, 5, 30, 1, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [2, 17, 9]];
  const batch = makeTokenBatch(gpu, sequences);
  const rows = batch.batch * batch.seq;
  const targets = Tensor.fromArray(gpu, batch.hostIds.map((_, i) => batch.hostIds[i + 1] ?? 0));
  const grad = Tensor.fromArray(gpu, randomArray(rows, 1, 0.1));
  const gradEntropy = Tensor.fromArray(gpu, randomArray(rows, 2, 0.1));
  const full = new Gemma3(gpu, model.config, initGemma3Weights(gpu, model.config, { seed: 1 }));
  for (const [m, mode] of [[model, "lora"], [full, "full"]] as const) {
    const trainable = trainableParameters(m, mode);
    for (const entropy of [false, true]) {
      const pass = trainForward(m, batch, targets, { entropy });
      await pass.read();
      pass.backward(grad, trainable.gradientSet, entropy ? { gradEntropy } : {});
      pass.dispose();
    }
    const optimizer = new AdamW(gpu, trainable.params, { learningRate: 1e-3, maxGradNorm: 1 });
    optimizer.step(trainable.grads);
    await gpu.sync();
    optimizer.dispose();
    trainable.dispose();
  }
  const prompts = [[2, 5, 9], [2, 17, 9, 22, 36]];
  await model.generate(prompts, { maxNewTokens: 9, temperature: 0, eosIds: [] });
  await generateWithLogprobs(model, prompts, {
    maxNewTokens: 9,
    temperature: 0.8,
    topK: 5,
    topP: 0.9,
    seed: 1,
    eosIds: [],
  });
  disposeGemma3Weights(full.weights);
  for (const t of [targets, grad, gradEntropy]) t.dispose();
  disposeTokenBatch(batch);
}

/** Every launcher with each of its options, on odd shapes (`gpu` may split big tensors). */
async function launcherWorkload(gpu: Gpu): Promise<void> {
  let seed = 10;
  const t = (shape: number[], dtype: DType = "f32") =>
    Tensor.fromArray(gpu, randomArray(shape.reduce((a, b) => a * b, 1), seed++), shape, dtype);
  const ids = (values: number[], dtype: DType = "i32", shape = [values.length]) =>
    Tensor.fromArray(
      gpu,
      dtype === "u32" ? Uint32Array.from(values) : Int32Array.from(values),
      shape,
    );
  for (const dtype of ["f32", "bf16"] as const) {
    for (const k of [5, 8, 12]) {
      matmul(t([3, k]), t([7, k], dtype));
      matmul(t([3, k]), t([k, 8], dtype), { transposeB: false });
      matmul(t([3, k]), t([k, 7], dtype), { transposeB: false });
      const out = t([3, 7]);
      matmul(t([3, k]), t([7, k], dtype), { out, accumulate: true, alpha: 0.5 });
      matmul(t([3, k]), t([7, k], dtype), { residual: out });
    }
  }
  for (const [k, m, n] of [[6, 3, 5], [8, 4, 8]]) matmulTransA(t([k, m]), t([k, n]));
  for (const dtype of ["f32", "bf16"] as const) {
    for (const [tokens, dim] of [[3, 5], [20, 8]]) {
      const h = t([tokens, dim]), e = t([37, dim], dtype);
      const targets = ids(Array.from({ length: tokens }, (_, i) => (i * 7) % 40), "u32");
      for (const entropy of [false, true]) {
        const fwd = tokenLogprobs({ h, embedding: e, targets }, { entropy });
        const dEmbedding = Tensor.zeros(gpu, [37, dim]);
        tokenLogprobsBackward(t([tokens]), { h, embedding: e, targets, ...fwd }, {
          dEmbedding,
          gradEntropy: entropy ? t([tokens]) : undefined,
        });
        tokenLogprobsBackward(t([tokens]), { h, embedding: t([64, dim], dtype), targets, ...fwd }, {
          dEmbedding: Tensor.zeros(gpu, [64, dim]),
        });
      }
    }
  }
  const logits = t([2, 300]);
  sample(logits, { temperature: 0.7, topK: 4, topP: 0.8, seed: 3 });
  sample(logits, { temperature: 0, logprobsOut: t([2]) });
  for (const [heads, kvHeads, d] of [[6, 2, 7], [4, 1, 8]]) {
    const q = t([2, 5, heads, d]), k = t([2, 5, kvHeads, d]), v = t([2, 5, kvHeads, d]);
    const ranges = ids([0, 5, 1, 4], "i32", [2, 2]);
    for (const r of [undefined, ranges]) {
      attention(q, { k, v }, { scale: 0.3, window: 3, ranges: r });
      const fwd = attention(q, { k, v }, { scale: 0.3, ranges: r, returnLse: true });
      attentionBackward(t([2, 5, heads, d]), { q, k, v, out: fwd.out, lse: fwd.lse! }, {
        scale: 0.3,
        ranges: r,
      });
    }
    const cache = { k: t([2, 6, kvHeads, d]), v: t([2, 6, kvHeads, d]) };
    for (const returnLse of [false, true]) {
      attentionDecode(t([2, heads, d]), cache, { scale: 0.3, ranges, returnLse });
    }
    for (const offsets of [undefined, ids([1, 2])]) {
      for (const counts of [undefined, ids([2, 1])]) {
        writeKvCache(cache, { k: t([2, 2, kvHeads, d]), v: t([2, 2, kvHeads, d]) }, {
          offsets,
          counts,
        });
      }
    }
  }
  for (const variant of ["row", "workgroup"] as const) {
    for (const dtype of ["f32", "bf16"] as const) {
      for (const rowCount of [5, 40]) {
        const w = t([9], dtype);
        for (const rstd of [undefined, t([rowCount])]) {
          rmsNorm(t([rowCount, 9]), w, { variant, rstd });
          const x = t([rowCount, 9]), residual = t([rowCount, 9]);
          rmsNorm(x, w, { variant, rstd, out: x });
          rmsNorm(t([rowCount, 9]), w, { variant, rstd, residual });
          rmsNorm(t([rowCount, 9]), w, { variant, rstd, residual, out: residual });
          rmsNorm(x, w, { variant, rstd, residual: t([rowCount, 9]), out: x });
        }
        const x = t([rowCount, 9]), rstd = t([rowCount]);
        rmsNormBackward(t([rowCount, 9]), { x, w, rstd }, { variant, dw: t([9]) });
        const dy = t([rowCount, 9]);
        rmsNormBackward(dy, { x, w, rstd }, { variant, out: dy });
        for (const out of [t([rowCount, 9]), dy]) {
          rmsNormBackward(dy, { x, w, rstd }, { variant, out, accumulateDx: true });
        }
      }
    }
  }
  const table = RopeTable.create(gpu, { base: 10000, headDim: 6, maxPositions: 8 });
  const x = t([3, 2, 6]), positions = ids([0, 3, 7]);
  rope(x, positions, { table });
  rope(x, positions, { table, out: x, inverse: true });
  for (const inter of [5, 8]) {
    const gate = t([3, inter]), up = t([3, inter]);
    geglu(gate, up);
    gegluBackward(t([3, inter]), { gate, up });
    gegluBackward(t([3, inter]), { gate, up }, { dGate: gate, dUp: up });
  }
  const a = t([7]);
  add(a, t([7]));
  add(a, t([7]), { out: a });
  scale(a, 2);
  scale(a, 2, { out: a });
  await gpu.sync();
}

/** Tables split into more parts than one dispatch binds (`gpu` with a 1 KiB binding limit). */
async function splitWorkload(gpu: Gpu): Promise<void> {
  let seed = 50;
  const t = (shape: number[], dtype: DType = "f32") =>
    Tensor.fromArray(gpu, randomArray(shape.reduce((a, b) => a * b, 1), seed++), shape, dtype);
  const rows = [0, 1999, 1000, 42];
  const idsTensor = Tensor.fromArray(gpu, Int32Array.from(rows));
  for (const dtype of ["f32", "bf16"] as const) {
    const table = t([2000, 6], dtype);
    assert.ok(table.parts.length > 16, `only ${table.parts.length} parts`);
    embedding(table, idsTensor);
    matmul(t([1, 6]), table, { wRows: [100, 300] }); // parts per dispatch, [1, 200] out
    // One token: the [T, chunks] scratch (a chunk per part at least) fits the binding.
    const h = t([1, 6]), targets = Tensor.fromArray(gpu, Int32Array.from([1999]));
    const fwd = tokenLogprobs({ h, embedding: table, targets }, { entropy: true });
    tokenLogprobsBackward(t([1]), { h, embedding: table, targets, ...fwd }, {
      dEmbedding: Tensor.zeros(gpu, [2000, 6]),
    });
  }
  const dTable = t([2000, 6]);
  embeddingBackward(t([4, 6]), rows, { dTable, accumulate: false });
  embeddingBackward(t([4, 6]), rows, { dTable });
  await gpu.sync();
}

Deno.test("the catalogue holds every pipeline the fixture model and every launcher option compile", async () => {
  const gpu = await testGpu();
  const catalogue = kernelVariants({ limits: gpu.device.limits });
  const labels = new Set(catalogue.map((v) => v.label));
  const paths = new Set(catalogue.map((v) => pathKey(v.name, v.constants)));
  await fixtureWorkload(gpu);
  const fixture = gpu.pipelines.compiled;
  assert.ok(fixture.length >= 30, `the fixture compiled only ${fixture.length} pipelines`);
  // The fixture's shapes are among the catalogue's: every constant matches, numbers too.
  assert.deepEqual(missing(fixture.map((p) => p.label), labels), []);
  // Odd shapes, and tensors split into parts (a 1 KiB storage binding).
  await launcherWorkload(gpu);
  await matmulVariantWorkload(gpu);
  await attentionVariantWorkload(gpu);
  await rmsNormFusionWorkload(gpu);
  const split = await Gpu.create({ maxStorageBufferBindingSize: 1024 });
  await splitWorkload(split);
  const compiled = [...gpu.pipelines.compiled, ...split.pipelines.compiled];
  assert.deepEqual(missing(compiled.map((p) => pathKey(p.name, p.constants)), paths), []);
  // Conversely the workloads reach every code path of the catalogue: none is made up.
  const reached = new Set(compiled.map((p) => pathKey(p.name, p.constants)));
  assert.deepEqual(missing(paths, reached), []);
  split.destroy();
});
