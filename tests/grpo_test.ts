import assert from "node:assert/strict";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { trainableParameters } from "../model/trainable.ts";
import { openSafetensors } from "../model/safetensors_fs.ts";
import { decodeFloat32 } from "../model/safetensors_dtype.ts";
import { grpoGradients } from "../rl/grpo_gradients.ts";
import { completionMask, groupAdvantages, tokenGrid } from "../rl/grpo_math.ts";
import type { LossAggregation } from "../rl/grpo_config.ts";
import { FIXTURE, type GrpoFixture, testGpu } from "./_helpers.ts";

const VARIANTS: { name: string; aggregation: LossAggregation; offpolicy: boolean }[] = [
  { name: "sequence-mean-token-mean", aggregation: "sequence-mean-token-mean", offpolicy: false },
  { name: "token-mean", aggregation: "token-mean", offpolicy: false },
  { name: "offpolicy", aggregation: "sequence-mean-token-mean", offpolicy: true },
];

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

for (const variant of VARIANTS) {
  Deno.test(`grpoGradients() matches the fixture's ${variant.name} loss, log-probs, KL and LoRA gradients`, async () => {
    const gpu = await testGpu();
    const model = await loadGemma3(FIXTURE, { gpu, adapter: FIXTURE });
    const fx = JSON.parse(await Deno.readTextFile(`${FIXTURE}/grpo.json`)) as GrpoFixture;
    const hp = fx.hyperparameters;
    const st = await openSafetensors(`${FIXTURE}/grpo.safetensors`);
    const get = async (name: string) => decodeFloat32(st.info(name).dtype, await st.read(name));
    const ids = tokenGrid(fx.completion_ids);
    const mask = completionMask(ids, { eosIds: hp.eos_id, padId: hp.pad_id });
    assert.deepEqual(Array.from(mask.data), fx.completion_mask.flat(), "completion mask");
    const advantages = groupAdvantages(fx.rewards, hp.num_generations);
    assert.ok(maxAbsDiff(advantages, await get("advantages")) <= 1e-5, "advantages");
    const trainable = trainableParameters(model, "lora");
    const oldLogps = variant.offpolicy
      ? { data: await get("old_per_token_logps_offpolicy"), shape: mask.shape }
      : undefined;
    const r = await grpoGradients(model, {
      prompts: fx.prompt_index_per_row.map((p) => fx.prompts[p]),
      completions: fx.completion_ids,
      mask,
      advantages,
      oldLogps,
    }, {
      trainable,
      config: {
        beta: hp.beta,
        epsilon: hp.epsilon,
        epsilonHigh: hp.epsilon_high,
        aggregation: variant.aggregation,
      },
      padId: hp.pad_id,
    });
    const masked = (x: ArrayLike<number>) => Array.from(x, (v, i) => (mask.data[i] ? v : 0));
    assert.ok(maxAbsDiff(masked(r.logps.data), await get("per_token_logps")) <= 1e-4, "logps");
    assert.ok(maxAbsDiff(masked(r.refLogps.data), await get("ref_per_token_logps")) <= 1e-4, "ref");
    assert.ok(maxAbsDiff(masked(r.result.perTokenKl), await get("per_token_kl")) <= 1e-4, "kl");
    const wantLoss = fx.loss_variants[variant.name].loss;
    assert.ok(Math.abs(r.result.loss - wantLoss) <= 1e-5, `loss ${r.result.loss} vs ${wantLoss}`);
    assert.ok(
      maxAbsDiff(r.result.perTokenLoss, await get(`per_token_loss/${variant.name}`)) <= 1e-5,
      "per-token loss",
    );
    for (const [name, grad] of trainable.grads) {
      const want = await get(`grads/${variant.name}/${name}`);
      let maxRef = 0;
      for (const x of want) maxRef = Math.max(maxRef, Math.abs(x));
      const err = maxAbsDiff((await grad.read()) as Float32Array, want);
      assert.ok(err <= 2e-4 * maxRef, `${name}: ${err} > 2e-4 × ${maxRef}`);
    }
    st.close();
    trainable.dispose();
  });
}

Deno.test("grpoGradients() on row micro-batches, weighted by their share, equals one pass", async () => {
  const gpu = await testGpu();
  const model = await loadGemma3(FIXTURE, { gpu, adapter: FIXTURE });
  const fx = JSON.parse(await Deno.readTextFile(`${FIXTURE}/grpo.json`)) as GrpoFixture;
  const hp = fx.hyperparameters;
  const mask = completionMask(tokenGrid(fx.completion_ids), {
    eosIds: hp.eos_id,
    padId: hp.pad_id,
  });
  const advantages = groupAdvantages(fx.rewards, hp.num_generations);
  const prompts = fx.prompt_index_per_row.map((p) => fx.prompts[p]);
  const config = {
    beta: hp.beta,
    epsilon: hp.epsilon,
    epsilonHigh: hp.epsilon_high,
    aggregation: "sequence-mean-token-mean" as const,
  };
  const whole = trainableParameters(model, "lora");
  const r = await grpoGradients(
    model,
    { prompts, completions: fx.completion_ids, mask, advantages },
    { trainable: whole, config, padId: hp.pad_id },
  );
  const split = trainableParameters(model, "lora");
  const rows = prompts.length, half = rows / 2, width = mask.shape[1];
  let loss = 0;
  for (const [r0, r1] of [[0, half], [half, rows]]) {
    const part = await grpoGradients(model, {
      prompts: prompts.slice(r0, r1),
      completions: fx.completion_ids.slice(r0, r1),
      mask: { data: mask.data.slice(r0 * width, r1 * width), shape: [r1 - r0, width] },
      advantages: advantages.slice(r0, r1),
    }, { trainable: split, config, padId: hp.pad_id, reference: null, scale: (r1 - r0) / rows });
    loss += ((r1 - r0) / rows) * part.result.loss;
  }
  assert.ok(Math.abs(loss - r.result.loss) <= 1e-7, `loss ${loss} vs ${r.result.loss}`);
  for (const [name, g] of whole.grads) {
    const a = (await g.read()) as Float32Array;
    const b = (await split.grads.get(name)!.read()) as Float32Array;
    let maxRef = 0;
    for (const x of a) maxRef = Math.max(maxRef, Math.abs(x));
    assert.ok(maxAbsDiff(a, b) <= 1e-5 * Math.max(maxRef, 1e-6), name);
  }
  whole.dispose();
  split.dispose();
});
