/**
 * Overfit test: a tiny Gemma 3 trained from scratch (all parameters, SftTrainer + AdamW at a
 * constant learning rate) memorises 8 fixed sequences to a mean completion loss below 0.05, and greedy decoding
 * then reproduces every completion (up to and including its EOS).
 *
 * @module
 */

import assert from "node:assert/strict";
import { collate, type TokenizedExample } from "../data/batching.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { disposeGemma3Weights, initGemma3Weights } from "../model/gemma3_weights.ts";
import { trainableParameters } from "../model/trainable.ts";
import { AdamW } from "../rl/optimizer.ts";
import { SftTrainer } from "../rl/sft.ts";
import { SMALL } from "./_browser_checks.ts";
import { rng, testGpu } from "./_helpers.ts";

const CONFIG = SMALL;
const TARGET_LOSS = 0.05;
const MAX_STEPS = 400;

/**
 * 8 sequences `<bos> key random… <eos>` of 9..16 tokens. The prompt is `<bos> key`: the key
 * (a distinct id per sequence) makes the completion a function of the prompt, so it can be
 * memorised exactly.
 */
function sequences(): TokenizedExample[] {
  const r = rng(2024);
  return Array.from({ length: 8 }, (_, i) => {
    const body = Array.from({ length: 6 + i }, () => 3 + Math.floor(r() * (CONFIG.vocabSize - 3)));
    return { inputIds: [2, 3 + i, ...body, 1], promptLength: 2 };
  });
}

Deno.test("SftTrainer full-parameter training from scratch overfits 8 sequences to loss < 0.05", async () => {
  const gpu = await testGpu();
  const weights = initGemma3Weights(gpu, CONFIG, { seed: 1 });
  const model = new Gemma3(gpu, CONFIG, weights);
  const trainable = trainableParameters(model, "full");
  const optimizer = new AdamW(gpu, trainable.params, {
    learningRate: 1e-2,
    weightDecay: 0,
    maxGradNorm: 1,
  });
  const trainer = new SftTrainer(model, trainable, optimizer);
  const batch = collate(sequences(), { padId: 0 });
  const losses: number[] = [];
  const started = performance.now();
  while (losses.length < MAX_STEPS && !(losses.at(-1)! < TARGET_LOSS)) {
    const r = await trainer.step([batch]);
    assert.ok(r.applied, `step ${losses.length} skipped (loss ${r.loss})`);
    losses.push(r.loss);
  }
  const seconds = (performance.now() - started) / 1000;
  const first = losses[0], last = losses.at(-1)!;
  console.log(
    `loss ${first.toFixed(3)} → ${last.toFixed(4)} in ${losses.length} steps, ${
      seconds.toFixed(1)
    } s (${gpu.adapter.description})`,
  );
  // Starts near uniform (ln 64 ≈ 4.16) and ends memorised.
  assert.ok(Math.abs(first - Math.log(CONFIG.vocabSize)) < 0.5, `initial loss ${first}`);
  assert.ok(last < TARGET_LOSS, `loss ${last} after ${losses.length} steps`);
  // The reported loss is measured before each update; re-measure the final weights with a
  // zero-learning-rate step, then check that greedy decoding reproduces every completion.
  const frozen = new AdamW(gpu, trainable.params, { learningRate: 0, weightDecay: 0 });
  const evaluated = (await new SftTrainer(model, trainable, frozen).step([batch])).loss;
  frozen.dispose();
  console.log(`final weights' loss ${evaluated.toFixed(4)}`);
  assert.ok(evaluated < TARGET_LOSS, `final weights' loss ${evaluated}`);
  const examples = sequences();
  const generated = await model.generate(
    examples.map((e) => e.inputIds.slice(0, e.promptLength)),
    { maxNewTokens: 16, temperature: 0 },
  );
  examples.forEach((e, i) => {
    assert.deepEqual(generated[i], e.inputIds.slice(e.promptLength), `sequence ${i}`);
  });
  optimizer.dispose();
  trainable.dispose();
  disposeGemma3Weights(weights);
});
