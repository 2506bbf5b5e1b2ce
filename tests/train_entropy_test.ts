/**
 * Per-token entropy through the training pass (`trainForward(..., { entropy: true })` and
 * `backward(..., { gradEntropy })`): the fixture model's entropies against the float64
 * reference forward (`gemma3ForwardRef` logits), and the gradient of a loss mixing log-probs and
 * entropies against central finite differences of that reference on a tiny random model.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { disposeTokenBatch, makeTokenBatch, type TokenBatch } from "../model/batch.ts";
import type { Gemma3Config } from "../model/config.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { gemma3ForwardRef, type RefWeights } from "../model/gemma3_ref.ts";
import {
  disposeGemma3Weights,
  initGemma3Weights,
  LAYER_WEIGHTS,
  NORM_WEIGHTS,
} from "../model/gemma3_weights.ts";
import { trainForward } from "../model/train_pass.ts";
import { trainableParameters } from "../model/trainable.ts";
import {
  assertClose,
  FIXTURE,
  forEachWeightGradient,
  randomArray,
  refWeights,
  rng,
  testGpu,
  TINY_CONFIG,
} from "./_helpers.ts";

/** Per row of `[n, V]` logits: the log-prob of `targets[t]` and the entropy, in float64. */
function rowStats(
  logits: Float64Array,
  vocab: number,
  targets: readonly number[],
): { logp: number[]; entropy: number[] } {
  const logp: number[] = [], entropy: number[] = [];
  for (let t = 0; t < targets.length; t++) {
    const z = logits.subarray(t * vocab, (t + 1) * vocab);
    let m = -Infinity;
    for (const x of z) m = Math.max(m, x);
    let s = 0;
    for (const x of z) s += Math.exp(x - m);
    const lse = m + Math.log(s);
    let px = 0;
    for (const x of z) px += Math.exp(x - lse) * x;
    logp.push(z[targets[t]] - lse);
    entropy.push(lse - px);
  }
  return { logp, entropy };
}

/** A right-padded batch and its next-token targets, i32 `[B·S]` (0 on last tokens, padding). */
function nextTokenBatch(
  gemma: Gemma3,
  sequences: readonly (readonly number[])[],
): { batch: TokenBatch; tensor: Tensor } {
  const batch = makeTokenBatch(gemma.gpu, sequences);
  const targets = new Int32Array(batch.batch * batch.seq);
  sequences.forEach((s, b) => {
    for (let t = 0; t + 1 < s.length; t++) targets[b * batch.seq + t] = s[t + 1];
  });
  return { batch, tensor: Tensor.fromArray(gemma.gpu, targets, [targets.length]) };
}

Deno.test("trainForward({ entropy: true }) matches the float64 reference entropies of the fixture's completions", async () => {
  const gpu = await testGpu();
  const gemma = await loadGemma3(FIXTURE, { gpu });
  const greedy = JSON.parse(await Deno.readTextFile(`${FIXTURE}/greedy.json`));
  const forward = JSON.parse(await Deno.readTextFile(`${FIXTURE}/forward.json`));
  // Prompt + greedy completion (the completion rows are the ones GRPO scores) and the longest
  // forward sequence (past the sliding window), right-padded into one batch.
  const prompt: number[] = greedy.prompt_ids;
  const sequences: number[][] = [
    [...prompt, ...greedy.generated_ids],
    forward.sequences.map((s: { input_ids: number[] }) => s.input_ids)
      .reduce((a: number[], b: number[]) => (b.length > a.length ? b : a)),
  ];
  const { batch, tensor } = nextTokenBatch(gemma, sequences);
  const pass = trainForward(gemma, batch, tensor, { entropy: true });
  const got = await pass.read();
  const plain = trainForward(gemma, batch, tensor);
  const plainRows = await plain.read();
  assert.equal(plainRows.entropy, null);
  assert.equal(plain.entropy, null);
  // Asking for entropies leaves the log-probs bit for bit.
  assert.deepEqual(
    new Uint32Array(got.logprobs.buffer),
    new Uint32Array(plainRows.logprobs.buffer),
  );
  const ref = await refWeights(gemma.weights);
  const v = gemma.config.vocabSize;
  let worst = 0;
  sequences.forEach((ids, b) => {
    const rows = ids.slice(1);
    const want = rowStats(gemma3ForwardRef(gemma.config, ref, ids), v, rows);
    // Rows t = prompt length − 1 … n − 2 predict the completion tokens (all rows of sequence 1).
    const first = b === 0 ? prompt.length - 1 : 0;
    const at = (x: Float32Array) => x.subarray(b * batch.seq + first, b * batch.seq + rows.length);
    worst = Math.max(
      worst,
      assertClose(at(got.entropy!), want.entropy.slice(first), 1e-4, `entropy ${b}`),
    );
    assertClose(at(got.logprobs), want.logp.slice(first), 1e-4, `logp ${b}`);
    assert.ok(want.entropy.slice(first).every((h) => h > 0.1), "non-degenerate rows");
  });
  console.log(`max |entropy − float64 reference| = ${worst.toExponential(2)}`);
  for (const p of [pass, plain]) p.dispose();
  tensor.dispose();
  disposeTokenBatch(batch);
});

/** Two sequences (7 and 5 tokens, the second right-padded). */
const SEQUENCES = [[2, 5, 9, 14, 5, 30, 1], [2, 17, 9, 22, 36]];
/**
 * Loss weights per row of each sequence: `d loss / d logp` and `d loss / d H`. Some rows carry
 * only the entropy term, some only the log-prob, some both, padding none.
 */
const LOGP_WEIGHTS = [[0, -0.3, -0.2, 0, -0.25, 0.1], [0.2, 0, -0.4, 0]];
const ENTROPY_WEIGHTS = [[-0.05, 0.3, 0, -0.2, 0.15, -0.1], [0, 0.25, -0.1, 0.4]];

function refLoss(config: Gemma3Config, weights: RefWeights): number {
  let loss = 0;
  SEQUENCES.forEach((ids, b) => {
    const { logp, entropy } = rowStats(
      gemma3ForwardRef(config, weights, ids),
      config.vocabSize,
      ids.slice(1),
    );
    for (let t = 0; t < logp.length; t++) {
      loss += LOGP_WEIGHTS[b][t] * logp[t] + ENTROPY_WEIGHTS[b][t] * entropy[t];
    }
  });
  return loss;
}

Deno.test("TrainPass.backward({ gradEntropy }) matches float64 finite differences of a logp + entropy loss", async () => {
  const gpu = await testGpu();
  const config = TINY_CONFIG;
  const weights = initGemma3Weights(gpu, config, { seed: 11, std: 0.25 });
  let seed = 300;
  for (const layer of weights.layers) {
    for (const name of LAYER_WEIGHTS) {
      if (NORM_WEIGHTS.has(name)) layer[name].write(randomArray(layer[name].numel, seed++, 0.5));
    }
  }
  weights.finalNorm.write(randomArray(config.hiddenSize, seed++, 0.5));
  const gemma = new Gemma3(gpu, config, weights);
  const ref = await refWeights(weights);
  const { batch, tensor } = nextTokenBatch(gemma, SEQUENCES);
  const rowsOf = (w: number[][], b: TokenBatch) => {
    const out = new Float32Array(b.batch * b.seq);
    w.forEach((row, s) => out.set(row, s * b.seq));
    return Tensor.fromArray(gpu, out, [out.length]);
  };
  const grad = rowsOf(LOGP_WEIGHTS, batch), gradEntropy = rowsOf(ENTROPY_WEIGHTS, batch);
  const trainable = trainableParameters(gemma, "full");
  const pass = trainForward(gemma, batch, tensor, { entropy: true });
  pass.backward(grad, trainable.gradientSet, { gradEntropy });
  pass.dispose();

  const r = rng(7);
  let worst = 0;
  const check = async (name: string, w: Float64Array, g: Tensor) => {
    const got = (await g.read()) as Float32Array;
    let scale = 0, top = 0;
    got.forEach((x, i) => {
      if (Math.abs(x) > scale) [scale, top] = [Math.abs(x), i];
    });
    assert.ok(scale > 0, `${name}: gradient is all zero`);
    for (const i of [top, Math.floor(r() * got.length), Math.floor(r() * got.length)]) {
      const saved = w[i], h = 1e-4 * Math.max(1, Math.abs(saved));
      w[i] = saved + h;
      const plus = refLoss(config, ref);
      w[i] = saved - h;
      const minus = refLoss(config, ref);
      w[i] = saved;
      const fd = (plus - minus) / (2 * h);
      const err = Math.abs(got[i] - fd);
      assert.ok(err <= 1e-4 * scale + 1e-7, `${name}[${i}]: GPU ${got[i]} vs FD ${fd}`);
      worst = Math.max(worst, err / scale);
    }
  };
  await forEachWeightGradient(ref, trainable, check);
  console.log(`max |gpu − fd| / max|grad tensor| = ${worst.toExponential(2)}`);

  // Without the entropy gradient the same pass gives other gradients (the term is not lost).
  const plain = trainableParameters(gemma, "full");
  const pass2 = trainForward(gemma, batch, tensor, { entropy: true });
  pass2.backward(grad, plain.gradientSet);
  pass2.dispose();
  const a = (await trainable.grads.get("model.norm.weight")!.read()) as Float32Array;
  const b = (await plain.grads.get("model.norm.weight")!.read()) as Float32Array;
  assert.ok(a.some((x, i) => Math.abs(x - b[i]) > 1e-3 * Math.max(...b.map(Math.abs))));
  // gradEntropy needs a pass made with { entropy: true }.
  const noEntropy = trainForward(gemma, batch, tensor);
  assert.throws(() => noEntropy.backward(grad, plain.gradientSet, { gradEntropy }), /entropy/);
  noEntropy.dispose();

  for (const t of [grad, gradEntropy, tensor]) t.dispose();
  disposeTokenBatch(batch);
  trainable.dispose();
  plain.dispose();
  disposeGemma3Weights(weights);
});
