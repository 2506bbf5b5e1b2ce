import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { disposeTokenBatch, makeTokenBatch } from "../model/batch.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { trainForward } from "../model/train_pass.ts";
import { trainableParameters } from "../model/trainable.ts";
import { openSafetensors } from "../model/safetensors_fs.ts";
import { decodeFloat32 } from "../model/safetensors_dtype.ts";
import { AdamW } from "../rl/optimizer.ts";
import { SftTrainer } from "../rl/sft.ts";
import { testGpu } from "./_helpers.ts";

const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url).pathname;

interface LoraFixture {
  input_ids: number[][];
  loss_mask: number[][];
  loss: number;
  target_logprobs: number[][];
}

async function loadLoraFixture() {
  const gpu = await testGpu();
  const model = await loadGemma3(FIXTURE, { gpu, adapter: FIXTURE });
  const fx = JSON.parse(await Deno.readTextFile(`${FIXTURE}/lora.json`)) as LoraFixture;
  const [B, S] = [fx.input_ids.length, fx.input_ids[0].length];
  const targets = new Int32Array(B * S), mask = new Float32Array(B * S);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < S; t++) {
      targets[b * S + t] = fx.input_ids[b][t + 1];
      mask[b * S + t] = fx.loss_mask[b][t + 1];
    }
  }
  return { gpu, model, fx, B, S, targets, mask };
}

Deno.test("trainForward() + backward() match the fixture's LoRA loss, log-probs and every LoRA gradient", async () => {
  const { gpu, model, fx, B, S, targets, mask } = await loadLoraFixture();
  const batch = makeTokenBatch(gpu, fx.input_ids);
  const targetTensor = Tensor.fromArray(gpu, targets, [B * S], "i32");
  const trainable = trainableParameters(model, "lora");
  const pass = trainForward(model, batch, targetTensor);
  const logp = (await pass.logprobs.read()) as Float32Array;
  // target log-probs for t = 0..S-2
  const got: number[] = [], want: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < S; t++) {
      got.push(logp[b * S + t]);
      want.push(fx.target_logprobs[b][t]);
    }
  }
  for (let i = 0; i < got.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= 1e-4, `target logprob ${i}: ${got[i]} vs ${want[i]}`);
  }
  let count = 0, loss = 0;
  for (let i = 0; i < mask.length; i++) {
    count += mask[i];
    loss -= mask[i] * logp[i];
  }
  loss /= count;
  assert.ok(Math.abs(loss - fx.loss) <= 1e-5 * Math.abs(fx.loss), `loss ${loss} vs ${fx.loss}`);
  const g = Tensor.fromArray(gpu, mask.map((m) => -m / count), [B * S]);
  pass.backward(g, trainable.gradientSet);
  pass.dispose();
  const ref = await openSafetensors(`${FIXTURE}/lora_grads.safetensors`);
  assert.equal(ref.tensors.size, trainable.grads.size);
  for (const [name, grad] of trainable.grads) {
    const want = decodeFloat32(ref.info(name).dtype, await ref.read(name));
    let maxRef = 0;
    for (const x of want) maxRef = Math.max(maxRef, Math.abs(x));
    const got = (await grad.read()) as Float32Array;
    let maxErr = 0;
    for (let i = 0; i < want.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
    assert.ok(maxErr <= 1e-4 * maxRef, `${name}: max err ${maxErr} > 1e-4 × ${maxRef}`);
  }
  ref.close();
  g.dispose();
  targetTensor.dispose();
  disposeTokenBatch(batch);
  trainable.dispose();
});

Deno.test("SftTrainer.step() reports the fixture's LoRA SFT loss", async () => {
  const { model, fx, B, S, targets, mask } = await loadLoraFixture();
  const trainable = trainableParameters(model, "lora");
  const optimizer = new AdamW(model.gpu, trainable.params, { learningRate: 0 });
  const trainer = new SftTrainer(model, trainable, optimizer);
  const inputIds = Int32Array.from(fx.input_ids.flat());
  const r = await trainer.step([{
    batchSize: B,
    seqLen: S,
    inputIds,
    targetIds: targets,
    lossMask: mask,
    lengths: Int32Array.from({ length: B }, () => S),
  }]);
  assert.ok(Math.abs(r.loss - fx.loss) <= 1e-5 * fx.loss, `loss ${r.loss} vs ${fx.loss}`);
  assert.equal(r.targetTokens, mask.reduce((a, b) => a + b, 0));
  assert.ok(r.applied && r.gradNorm > 0);
  optimizer.dispose();
  trainable.dispose();
});
