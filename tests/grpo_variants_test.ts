/**
 * The GPU trainer's GRPO-family loss on the fixture's GRPO data: `grpoBatchGradients()` run in
 * uneven micro-batches gives the loss of one host `grpoLoss()` over the whole batch, for every
 * `lossType` (and GSPO's sequence ratios, δ, the k1/k2 estimators, the entropy quantile and
 * bonus), and the same gradients as one pass over all rows.
 */

import assert from "node:assert/strict";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { openSafetensors } from "../model/safetensors_fs.ts";
import { decodeFloat32 } from "../model/safetensors_dtype.ts";
import { trainableParameters } from "../model/trainable.ts";
import { createGrpoConfig, type GrpoConfigInput } from "../rl/grpo_config.ts";
import { type GrpoBatchGradients, grpoBatchGradients } from "../rl/grpo_gradients.ts";
import { grpoLoss } from "../rl/grpo_loss.ts";
import { completionMask, groupAdvantages, tokenGrid } from "../rl/grpo_math.ts";
import { FIXTURE, type GrpoFixture, testGpu } from "./_helpers.ts";

/** Every loss type, plus the options that change which statistics span the whole batch. */
const VARIANTS: [string, GrpoConfigInput][] = [
  ["grpo", { lossType: "grpo" }],
  ["bnpo", { lossType: "bnpo" }],
  ["dr_grpo", { lossType: "dr_grpo" }],
  ["dapo", { lossType: "dapo", epsilonHigh: 0.28 }],
  ["cispo", { lossType: "cispo", epsilonHigh: 5 }],
  ["sapo", { lossType: "sapo" }],
  ["gspo (grpo, sequence ratios, k1)", { importanceSampling: "sequence", klEstimator: "k1" }],
  ["bnpo with δ and k2", { lossType: "bnpo", delta: 1.5, klEstimator: "k2" }],
  ["dapo, entropy quantile 0.5", { lossType: "dapo", epsilonHigh: 0.28, topEntropyQuantile: 0.5 }],
  ["grpo, entropy bonus 0.01", { entropyCoef: 0.01 }],
];

/** Variants whose micro-batch gradients are also compared with one pass over all rows (the
 * weights 1 of dapo, rows of dr_grpo, and the whole-batch path). */
const GRADIENTS_CHECKED = ["dr_grpo", "dapo", "grpo, entropy bonus 0.01"];

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

Deno.test("grpoBatchGradients() in micro-batches is one host grpoLoss() over the batch, for every lossType", async () => {
  const gpu = await testGpu();
  const model = await loadGemma3(FIXTURE, { gpu, adapter: FIXTURE });
  const fx = JSON.parse(await Deno.readTextFile(`${FIXTURE}/grpo.json`)) as GrpoFixture;
  const hp = fx.hyperparameters;
  const st = await openSafetensors(`${FIXTURE}/grpo.safetensors`);
  const mask = completionMask(tokenGrid(fx.completion_ids), {
    eosIds: hp.eos_id,
    padId: hp.pad_id,
  });
  // Off-policy old log-probs, so that ratios leave the clip range.
  const old = st.info("old_per_token_logps_offpolicy");
  const oldLogps = {
    data: decodeFloat32(old.dtype, await st.read("old_per_token_logps_offpolicy")),
    shape: mask.shape,
  };
  st.close();
  const input = {
    prompts: fx.prompt_index_per_row.map((p) => fx.prompts[p]),
    completions: fx.completion_ids,
    mask,
    advantages: groupAdvantages(fx.rewards, hp.num_generations),
    oldLogps,
  };
  const maxCompletionLength = 16;
  for (const [name, variant] of VARIANTS) {
    const config = createGrpoConfig({
      beta: hp.beta,
      epsilon: hp.epsilon,
      epsilonHigh: hp.epsilon_high,
      ...variant,
    });
    const run = async (microBatchRows: number) => {
      const trainable = trainableParameters(model, "lora");
      const r = await grpoBatchGradients(model, input, {
        trainable,
        config,
        padId: hp.pad_id,
        maxCompletionLength,
        microBatchRows,
        entropy: true,
      });
      return { r, trainable };
    };
    // The host loss of the whole batch, on the log-probs and entropies the passes computed.
    const host = (r: GrpoBatchGradients) =>
      grpoLoss({ ...input, logps: r.logps, refLogps: r.refLogps, entropies: r.entropies }, {
        ...config,
        maxCompletionLength,
      });
    const split = await run(5); // 5 + 3 rows
    const want = host(split.r);
    assert.ok(
      Math.abs(split.r.loss - want.loss) <= 1e-12 * Math.max(1, Math.abs(want.loss)),
      `${name}: loss ${split.r.loss} vs host ${want.loss}`,
    );
    const metrics = want.metrics as unknown as Record<string, number>;
    for (const key of ["klMean", "clipFraction", "ratioMin", "ratioMax", "entropyMean"]) {
      const got = split.r.metrics[key];
      assert.ok(Math.abs(got - metrics[key]) <= 1e-9, `${name}: ${key} ${got} vs ${metrics[key]}`);
    }
    assert.equal(
      split.r.wholeBatchLoss,
      config.topEntropyQuantile < 1 || config.entropyCoef !== 0,
      `${name}: whole-batch path`,
    );
    if (!GRADIENTS_CHECKED.includes(name)) {
      split.trainable.dispose();
      continue;
    }
    const whole = await run(input.prompts.length);
    assert.ok(Math.abs(split.r.loss - whole.r.loss) <= 1e-6, `${name}: split vs one pass loss`);
    for (const [param, g] of whole.trainable.grads) {
      const a = (await g.read()) as Float32Array;
      const b = (await split.trainable.grads.get(param)!.read()) as Float32Array;
      let maxRef = 0;
      for (const x of a) maxRef = Math.max(maxRef, Math.abs(x));
      assert.ok(
        maxAbsDiff(a, b) <= 1e-5 * Math.max(maxRef, 1e-6),
        `${name}: ${param} micro-batch gradient ${maxAbsDiff(a, b)} vs ${maxRef}`,
      );
    }
    whole.trainable.dispose();
    split.trainable.dispose();
  }
});
