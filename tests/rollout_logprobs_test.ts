/**
 * Rollout log-probs = training log-probs: the log-prob the GPU sampler returns for each sampled
 * token (`generateWithLogprobs`, KV-cache decode) against the training forward's
 * (`trainForward` on prompt + completion) for the same tokens, on the fixture model.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { disposeTokenBatch, makeTokenBatch } from "../model/batch.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import { type GenerateOptions, READBACK_EVERY } from "../model/generate.ts";
import { trainForward } from "../model/train_pass.ts";
import { countReadbacks, FIXTURE, fixtureModel as model } from "./_helpers.ts";

/** The acceptance bound of issue 17 on max |rollout − training| log-prob. */
const MAX_DELTA = 1e-5;

/** Three prompts of different lengths from the fixture (one past the sliding window). */
async function prompts(m: Gemma3): Promise<number[][]> {
  const greedy = JSON.parse(await Deno.readTextFile(`${FIXTURE}/greedy.json`));
  const forward = JSON.parse(await Deno.readTextFile(`${FIXTURE}/forward.json`));
  const longest: number[] = forward.sequences.map((s: { input_ids: number[] }) => s.input_ids)
    .reduce((a: number[], b: number[]) => (b.length > a.length ? b : a));
  const p: number[] = greedy.prompt_ids;
  return [p, longest.slice(0, m.config.slidingWindow + 3), p.slice(0, 2)];
}

/** The training forward's log-prob of every completion token (row `len_prompt + j − 1`). */
async function trainingLogprobs(
  m: Gemma3,
  promptIds: readonly (readonly number[])[],
  completions: readonly (readonly number[])[],
): Promise<number[][]> {
  const sequences = promptIds.map((p, b) => [...p, ...completions[b]]);
  const batch = makeTokenBatch(m.gpu, sequences);
  const targets = new Int32Array(batch.batch * batch.seq);
  sequences.forEach((s, b) => {
    for (let t = 0; t + 1 < s.length; t++) targets[b * batch.seq + t] = s[t + 1];
  });
  const targetTensor = Tensor.fromArray(m.gpu, targets, [targets.length]);
  const pass = trainForward(m, batch, targetTensor);
  const { logprobs } = await pass.read();
  pass.dispose();
  targetTensor.dispose();
  disposeTokenBatch(batch);
  return completions.map((c, b) =>
    c.map((_, j) => logprobs[b * batch.seq + promptIds[b].length + j - 1])
  );
}

/** Generates with log-probs, checks them against training and the plain ids; max |Δ|. */
async function compare(options: GenerateOptions, label: string): Promise<number> {
  const m = await model();
  const ps = await prompts(m);
  const [rollout, readbacks] = await countReadbacks(
    m.gpu,
    () => m.generateWithLogprobs(ps, options),
  );
  // No extra GPU waits: one readback per 8 tokens (fewer when every sequence stopped early).
  const perEight = Math.ceil(options.maxNewTokens / READBACK_EVERY);
  if (options.eosIds?.length === 0) assert.equal(readbacks, perEight);
  else assert.ok(readbacks <= perEight, `${readbacks} readbacks`);
  // The same ids as plain generation.
  assert.deepEqual(rollout.ids, await m.generate(ps, options), `${label}: ids`);
  const training = await trainingLogprobs(m, ps, rollout.ids);
  let maxDelta = 0, identical = 0, total = 0;
  rollout.ids.forEach((ids, b) => {
    assert.equal(rollout.logprobs[b].length, ids.length);
    ids.forEach((_, j) => {
      const got = rollout.logprobs[b][j], want = training[b][j];
      assert.ok(Number.isFinite(got) && got <= 0, `${label}: logp ${got}`);
      maxDelta = Math.max(maxDelta, Math.abs(got - want));
      if (Object.is(Math.fround(got), Math.fround(want))) identical++;
      total++;
    });
  });
  console.log(
    `${label}: ${total} tokens, max |rollout − training| logp = ${maxDelta.toExponential(2)}, ` +
      `bit-identical ${identical}/${total}`,
  );
  assert.ok(maxDelta <= MAX_DELTA, `${label}: max |Δ| ${maxDelta} > ${MAX_DELTA}`);
  return maxDelta;
}

Deno.test("generateWithLogprobs() sampled (temperature 0.9, top-k) log-probs equal trainForward's", async () => {
  await compare(
    { maxNewTokens: 12, temperature: 0.9, topK: 40, seed: 17, eosIds: [] },
    "T=0.9 topK=40",
  );
  await compare(
    { maxNewTokens: 9, temperature: 0.9, topK: 40, topP: 0.95, seed: 5 },
    "T=0.9 topK=40 topP=0.95, default EOS ids",
  );
});

Deno.test("generateWithLogprobs() greedy log-probs equal trainForward's", async () => {
  await compare({ maxNewTokens: 10, temperature: 0, eosIds: [] }, "greedy");
});

Deno.test("generateWithLogprobs() returns empty lists for 0 tokens and rejects what generate() rejects", async () => {
  const m = await model();
  const out = await m.generateWithLogprobs([[2, 5]], { maxNewTokens: 0 });
  assert.deepEqual(out, { ids: [[]], logprobs: [[]] });
  await assert.rejects(() => m.generateWithLogprobs([[]], { maxNewTokens: 2 }));
  await assert.rejects(() => m.generateWithLogprobs([[2]], { maxNewTokens: 2, topP: 2 }));
});
