/**
 * Full-parameter gradients of the training pass checked against central finite differences of
 * the float64 plain-TS reference (`gemma3ForwardRef` + `nllRef`) on a tiny random model: one
 * sliding (window 3) and one global layer, GQA (4 query / 2 KV heads), query_pre_attn_scalar ≠
 * head_dim, random non-zero norm weights, and a right-padded batch of two sequences with a
 * completion mask.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { disposeTokenBatch, makeTokenBatch } from "../model/batch.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { gemma3ForwardRef, nllRef, type RefWeights } from "../model/gemma3_ref.ts";
import {
  disposeGemma3Weights,
  initGemma3Weights,
  LAYER_WEIGHTS,
  NORM_WEIGHTS,
} from "../model/gemma3_weights.ts";
import { trainForward } from "../model/train_pass.ts";
import { trainableParameters } from "../model/trainable.ts";
import {
  forEachWeightGradient,
  randomArray,
  refWeights,
  rng,
  testGpu,
  TINY_CONFIG,
} from "./_helpers.ts";

/** Two sequences (7 and 5 tokens; the second is right-padded to 7) and their prompt lengths. */
const SEQUENCES = [[2, 5, 9, 14, 5, 30, 1], [2, 17, 9, 22, 36]];
const PROMPT_LENGTHS = [2, 1];
/** Entries sampled per weight tensor: its largest-gradient entry plus random ones. */
const RANDOM_SAMPLES = 2;

/** Bound on |gpu − fd|: relative to the largest |gradient| of the tensor (f32 GPU arithmetic). */
const REL_TOL = 1e-4;
const ABS_TOL = 1e-7;

/** Completion mask per position (target `t+1` counts iff `mask[t+1]`), as `nllRef` takes it. */
const positionMasks = SEQUENCES.map((s, b) => s.map((_, t) => (t >= PROMPT_LENGTHS[b] ? 1 : 0)));

function refLoss(weights: RefWeights): number {
  let sum = 0, count = 0;
  SEQUENCES.forEach((ids, b) => {
    const r = nllRef(gemma3ForwardRef(TINY_CONFIG, weights, ids), {
      ids,
      mask: positionMasks[b],
      vocab: TINY_CONFIG.vocabSize,
    });
    sum += r.sum;
    count += r.count;
  });
  return sum / count;
}

/** Central difference of the float64 reference loss at one weight entry. */
function finiteDifference(weights: RefWeights, w: Float64Array, i: number): number {
  const saved = w[i];
  const h = 1e-4 * Math.max(1, Math.abs(saved));
  w[i] = saved + h;
  const plus = refLoss(weights);
  w[i] = saved - h;
  const minus = refLoss(weights);
  w[i] = saved;
  return (plus - minus) / (2 * h);
}

function argmaxAbs(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (Math.abs(x[i]) > Math.abs(x[best])) best = i;
  return best;
}

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

async function setup() {
  const gpu = await testGpu();
  const weights = initGemma3Weights(gpu, TINY_CONFIG, { seed: 7, std: 0.25 });
  // initGemma3Weights zeroes the norms (1 + w = 1); random norms exercise their gradients.
  let seed = 100;
  for (const layer of weights.layers) {
    for (const name of LAYER_WEIGHTS) {
      if (NORM_WEIGHTS.has(name)) layer[name].write(randomArray(layer[name].numel, seed++, 0.5));
    }
  }
  weights.finalNorm.write(randomArray(TINY_CONFIG.hiddenSize, seed++, 0.5));
  const model = new Gemma3(gpu, TINY_CONFIG, weights);
  const ref = await refWeights(weights);
  return { gpu, model, weights, ref };
}

Deno.test("trainForward() + backward() full-parameter gradients match float64 finite differences on every weight kind", async () => {
  const { gpu, model, weights, ref } = await setup();
  const batch = makeTokenBatch(gpu, SEQUENCES);
  const S = batch.seq, B = SEQUENCES.length;
  assert.equal(S, 7);
  const targets = new Int32Array(B * S), mask = new Float32Array(B * S);
  SEQUENCES.forEach((ids, b) => {
    for (let t = 0; t + 1 < ids.length; t++) {
      targets[b * S + t] = ids[t + 1];
      mask[b * S + t] = positionMasks[b][t + 1];
    }
  });
  const count = mask.reduce((a, m) => a + m, 0);
  assert.equal(count, 5 + 4); // padded positions (row 1, t = 4..6) carry no loss
  const targetTensor = Tensor.fromArray(gpu, targets, [B * S], "i32");
  const trainable = trainableParameters(model, "full");
  assert.equal(trainable.grads.size, 1 + TINY_CONFIG.numLayers * LAYER_WEIGHTS.length + 1);
  const pass = trainForward(model, batch, targetTensor);
  const logp = (await pass.logprobs.read()) as Float32Array;
  let gpuLoss = 0;
  for (let i = 0; i < mask.length; i++) gpuLoss -= mask[i] * logp[i];
  gpuLoss /= count;
  const loss = refLoss(ref);
  assert.ok(Math.abs(gpuLoss - loss) <= 1e-5 * loss, `GPU loss ${gpuLoss} vs reference ${loss}`);
  const g = Tensor.fromArray(gpu, mask.map((m) => -m / count), [B * S]);
  pass.backward(g, trainable.gradientSet);
  pass.dispose();

  // Rows that feed a counted target through the input embedding: tokens before the last one
  // (the last token of a sequence, e.g. the EOS, has no target after it).
  const inputRows = new Set(SEQUENCES.flatMap((s) => s.slice(0, -1)));
  const r = rng(42);
  const report: string[] = [];
  let worst = 0;
  const check = async (name: string, w: Float64Array, grad: Tensor, extra: number[] = []) => {
    const got = (await grad.read()) as Float32Array;
    const scale = maxAbs(got);
    assert.ok(scale > 0, `${name}: gradient is all zero`);
    const picks = [argmaxAbs(got), ...extra];
    for (let k = 0; k < RANDOM_SAMPLES; k++) picks.push(Math.floor(r() * got.length));
    let tensorWorst = 0;
    for (const i of picks) {
      const fd = finiteDifference(ref, w, i);
      const err = Math.abs(got[i] - fd);
      const bound = REL_TOL * scale + ABS_TOL;
      assert.ok(err <= bound, `${name}[${i}]: GPU ${got[i]} vs FD ${fd} (|err| ${err} > ${bound})`);
      tensorWorst = Math.max(tensorWorst, err / scale);
    }
    worst = Math.max(worst, tensorWorst);
    report.push(
      `${name}: max|g| ${scale.toExponential(2)}, max err/max|g| ${tensorWorst.toExponential(2)}`,
    );
  };

  // Embedding (tied with the LM head): one entry in a row used as an input token (input and
  // head contributions) and one in a row that is never an input (head contribution only).
  const D = TINY_CONFIG.hiddenSize;
  const inputRow = 9, headOnlyRow = 20;
  assert.ok(inputRows.has(inputRow) && !inputRows.has(headOnlyRow));
  const embedGrad = trainable.grads.get("model.embed_tokens.weight")!;
  await forEachWeightGradient(
    ref,
    trainable,
    (name, w, grad) =>
      check(name, w, grad, name === "embed" ? [inputRow * D + 3, headOnlyRow * D + 5] : []),
  );
  console.log(
    `max |gpu − fd| / max|grad tensor| = ${worst.toExponential(2)}\n  ${report.join("\n  ")}`,
  );

  // The input-token rows get a real input-side contribution: the head-only part (from the
  // model's own final-norm states and logits) differs from the whole gradient there, and
  // equals it on rows that feed no target (never an input, or only the last token).
  const head = new Float64Array(TINY_CONFIG.vocabSize * D);
  for (let b = 0; b < B; b++) {
    const hs = await model.hiddenStates(SEQUENCES[b]);
    const V = TINY_CONFIG.vocabSize;
    for (let t = 0; t + 1 < SEQUENCES[b].length; t++) {
      const gt = -positionMasks[b][t + 1] / count;
      if (gt === 0) continue;
      let m = -Infinity, z = 0;
      for (let v = 0; v < V; v++) m = Math.max(m, hs.logits[t * V + v]);
      for (let v = 0; v < V; v++) z += Math.exp(hs.logits[t * V + v] - m);
      for (let v = 0; v < V; v++) {
        const p = Math.exp(hs.logits[t * V + v] - m) / z;
        const coef = gt * ((v === SEQUENCES[b][t + 1] ? 1 : 0) - p);
        for (let i = 0; i < D; i++) head[v * D + i] += coef * hs.finalNorm[t * D + i];
      }
    }
  }
  const embed = (await embedGrad.read()) as Float32Array;
  const embedScale = maxAbs(embed);
  for (let v = 0; v < TINY_CONFIG.vocabSize; v++) {
    let diff = 0;
    for (let i = 0; i < D; i++) diff = Math.max(diff, Math.abs(embed[v * D + i] - head[v * D + i]));
    if (inputRows.has(v)) {
      assert.ok(diff > 1e-2 * embedScale, `row ${v}: input contribution ${diff} is missing`);
    } else {
      assert.ok(
        diff <= 1e-4 * embedScale,
        `row ${v}: non-input row differs from head part by ${diff}`,
      );
    }
  }

  for (const t of [g, targetTensor]) t.dispose();
  disposeTokenBatch(batch);
  trainable.dispose();
  disposeGemma3Weights(weights);
});
