import assert from "node:assert/strict";
import {
  completionLengthStats,
  completionMask,
  groupAdvantages,
  GrpoMathError,
  rewardMetrics,
  type TokenGrid,
  tokenGrid,
} from "../rl/grpo_math.ts";
import { grpoLoss, type GrpoLossInputs, type GrpoLossOptions } from "../rl/grpo_loss.ts";
import { createGrpoConfig, GrpoConfigError } from "../rl/grpo_config.ts";
import { rng } from "./_helpers.ts";

// ---------------------------------------------------------------------------------------------
// Fixture access (folder from WEBTUNE_FIXTURE; default: the shared gemma3-tiny-a set).

const FIXTURE_DIR: string = (() => {
  const env = Deno.env.get("WEBTUNE_FIXTURE");
  if (env) return env.endsWith("/") ? env : env + "/";
  return new URL("../../shared/fixtures/gemma3-tiny-a/", import.meta.url).pathname;
})();

type Tensor = { dtype: string; shape: number[]; data: Float32Array | Float64Array | Int32Array };

/** Minimal safetensors reader (F32 / F64 / I32 only) for this test. */
function readSafetensors(path: string): Map<string, Tensor> {
  const bytes = Deno.readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  const base = 8 + headerLen;
  const out = new Map<string, Tensor>();
  type Entry = { dtype: string; shape: number[]; data_offsets: [number, number] };
  for (const [name, info] of Object.entries(header) as [string, Entry][]) {
    if (name === "__metadata__") continue;
    const [begin, end] = info.data_offsets;
    const raw = bytes.slice(base + begin, base + end).buffer; // copy: aligned for typed arrays
    const ctor = ({ F32: Float32Array, F64: Float64Array, I32: Int32Array } as const)[
      info.dtype as "F32" | "F64" | "I32"
    ];
    if (!ctor) continue; // BF16 etc. are not needed here
    out.set(name, { dtype: info.dtype, shape: info.shape, data: new ctor(raw) });
  }
  return out;
}

const json = JSON.parse(Deno.readTextFileSync(FIXTURE_DIR + "grpo.json"));
const tensors = readSafetensors(FIXTURE_DIR + "grpo.safetensors");
const hp = json.hyperparameters;

function tensor(name: string): Tensor {
  const t = tensors.get(name);
  assert.ok(t, `grpo.safetensors lacks ${name}`);
  return t;
}
function grid(name: string): TokenGrid {
  const t = tensor(name);
  return { data: t.data, shape: [t.shape[0], t.shape[1]] };
}
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const VARIANTS = ["sequence-mean-token-mean", "token-mean", "offpolicy"] as const;

function fixtureLoss(variant: (typeof VARIANTS)[number], f64: boolean) {
  const s = f64 ? "_f64" : "";
  const mask = completionMask(grid("completion_ids"), { eosIds: hp.eos_id, padId: hp.pad_id });
  const inputs: GrpoLossInputs = {
    logps: grid("per_token_logps" + s),
    refLogps: grid("ref_per_token_logps" + s),
    oldLogps: variant === "offpolicy" ? grid("old_per_token_logps_offpolicy" + s) : undefined,
    advantages: tensor("advantages" + s).data,
    mask,
  };
  const options: GrpoLossOptions = {
    beta: hp.beta,
    epsilon: hp.epsilon,
    epsilonHigh: hp.epsilon_high,
    aggregation: json.loss_variants[variant].loss_agg_mode,
  };
  return grpoLoss(inputs, options);
}

// ---------------------------------------------------------------------------------------------
// Completion mask and advantages on the fixture.

Deno.test("completionMask() equals the fixture's completion_mask (EOS kept, tail and pad dropped)", () => {
  const mask = completionMask(grid("completion_ids"), { eosIds: hp.eos_id, padId: hp.pad_id });
  assert.deepEqual(Array.from(mask.data), Array.from(tensor("completion_mask").data));
  assert.deepEqual(Array.from(mask.data), json.completion_mask.flat());
  const [b, l] = mask.shape;
  const lengths = Array.from(
    { length: b },
    (_, r) => mask.data.slice(r * l, r * l + l).reduce((x, y) => x + y, 0),
  );
  assert.deepEqual(lengths, json.completion_lengths);
});

Deno.test("completionMask() handles tokens after the first EOS, EOS alone, several EOS ids and pad", () => {
  const ids = tokenGrid([
    [5, 6, 7, 8], // no EOS: all counted
    [5, 1, 9, 0], // EOS then a non-pad token: cut after EOS
    [1, 0, 0, 0], // EOS alone
    [5, 106, 1, 7], // Gemma's <end_of_turn> also ends it
    [0, 5, 0, 0], // pad is never counted, even before EOS
  ]);
  const m = completionMask(ids, { eosIds: [1, 106], padId: 0 });
  assert.deepEqual(Array.from(m.data), [
    1,
    1,
    1,
    1,
    1,
    1,
    0,
    0,
    1,
    0,
    0,
    0,
    1,
    1,
    0,
    0,
    0,
    1,
    0,
    0,
  ]);
  assert.throws(
    () => completionMask({ data: [1, 2, 3], shape: [2, 2] }, { eosIds: 1, padId: 0 }),
    GrpoMathError,
  );
});

Deno.test("groupAdvantages() matches the fixture advantages within 1e-5 (and float64 within 1e-12)", () => {
  const adv = groupAdvantages(json.rewards, hp.num_generations, { epsilon: hp.advantage_eps });
  assert.ok(maxAbsDiff(adv, json.advantages) < 1e-12);
  assert.ok(maxAbsDiff(adv, tensor("advantages").data) < 1e-5);
  assert.ok(maxAbsDiff(adv, tensor("advantages_f64").data) < 1e-12);
});

Deno.test("groupAdvantages() uses ddof=1 and +1e-4, worked by hand", () => {
  // group [1, 0, 0, 0.5]: mean 0.375, sample var (0.390625+0.140625*2+0.015625)/3 = 0.229166...
  const std = Math.sqrt(0.6875 / 3);
  const a = groupAdvantages([1, 0, 0, 0.5, 2, 2], 2);
  assert.equal(a.length, 6);
  // groups of 2 here: [1,0] → ±0.5/(0.70710678+1e-4)
  assert.ok(Math.abs(a[0] - 0.5 / (Math.SQRT1_2 + 1e-4)) < 1e-15);
  assert.deepEqual([a[4], a[5]], [0, 0]); // equal rewards → exactly 0
  const b = groupAdvantages([1, 0, 0, 0.5], 4);
  assert.ok(Math.abs(b[0] - 0.625 / (std + 1e-4)) < 1e-15);
  const dr = groupAdvantages([1, 0, 0, 0.5], 4, { scaleByStd: false });
  assert.deepEqual(Array.from(dr), [0.625, -0.375, -0.375, 0.125]);
  assert.throws(() => groupAdvantages([1, 2, 3], 2), GrpoMathError);
  assert.throws(() => groupAdvantages([1], 1), /groupSize must be an integer >= 2/);
  assert.throws(() => groupAdvantages([1, NaN], 2), /rewards\[1\] must be finite/);
});

Deno.test("groupAdvantages() every scale × baseline, worked by hand", () => {
  const rewards = [1, 0, 0, 0.5, 2, 2, 2, 4]; // two groups of 4
  // Group means 0.375 and 2.5; group stds (ddof 1) √(0.6875/3) and √(3/3) = 1.
  const groupStd = [Math.sqrt(0.6875 / 3), 1];
  // Batch: mean 1.4375, Σ(r − mean)² = 12.71875, std √(12.71875/7).
  const batchStd = Math.sqrt(12.71875 / 7);
  const centred = {
    mean: [0.625, -0.375, -0.375, 0.125, -0.5, -0.5, -0.5, 1.5],
    // r − (Σ − r)/3: 1 − 0.5/3, 0 − 1.5/3, …, 2 − 8/3, 4 − 6/3.
    "leave-one-out": [5 / 6, -0.5, -0.5, 1 / 6, -2 / 3, -2 / 3, -2 / 3, 2],
  };
  const eps = 1e-4;
  const divisor = {
    group: (i: number) => groupStd[Math.floor(i / 4)] + eps,
    batch: () => batchStd + eps,
    none: () => 1,
  };
  for (const scale of ["group", "batch", "none"] as const) {
    for (const baseline of ["mean", "leave-one-out"] as const) {
      const a = groupAdvantages(rewards, 4, { scale, baseline });
      centred[baseline].forEach((c, i) => {
        const want = c / divisor[scale](i);
        assert.ok(Math.abs(a[i] - want) <= 1e-15 * Math.abs(want), `${scale}/${baseline}[${i}]`);
      });
    }
  }
  // Defaults are scale "group", baseline "mean", bit for bit; scaleByStd: false is "none".
  assert.deepEqual(groupAdvantages(rewards, 4), groupAdvantages(rewards, 4, { scale: "group" }));
  assert.deepEqual(
    groupAdvantages(rewards, 4, { scaleByStd: false }),
    groupAdvantages(rewards, 4, { scale: "none" }),
  );
  assert.deepEqual(
    groupAdvantages(rewards, 4, { scaleByStd: false, scale: "batch" }),
    groupAdvantages(rewards, 4, { scale: "batch" }),
  );
  // Leave-one-out is G/(G − 1) times the mean-centred reward.
  const loo = groupAdvantages(rewards, 4, { scale: "none", baseline: "leave-one-out" });
  loo.forEach((v, i) => assert.ok(Math.abs(v - (4 / 3) * centred.mean[i]) < 1e-15));
  assert.throws(
    () => groupAdvantages(rewards, 4, { scale: "std" as never }),
    /scale must be one of group, batch, none, got std/,
  );
  assert.throws(
    () => groupAdvantages(rewards, 4, { baseline: "median" as never }),
    /baseline must be one of mean, leave-one-out, got median/,
  );
  assert.throws(() => groupAdvantages(rewards, 4, { epsilon: -1 }), /epsilon must be/);
});

// ---------------------------------------------------------------------------------------------
// Loss on the fixture, all three variants.

for (const variant of VARIANTS) {
  Deno.test(`grpoLoss() matches the fixture's ${variant} loss, per-token loss, dloss/dlogp and KL`, () => {
    const info = json.loss_variants[variant];
    const r = fixtureLoss(variant, false);
    assert.ok(Math.abs(r.loss - info.loss) < 1e-5, `loss ${r.loss} vs ${info.loss}`);
    assert.ok(maxAbsDiff(r.perTokenLoss, tensor(`per_token_loss/${variant}`).data) < 1e-5);
    assert.ok(maxAbsDiff(r.dLossDLogp, tensor(`dloss_dlogp/${variant}`).data) < 1e-6);
    assert.ok(maxAbsDiff(r.perTokenKl, tensor("per_token_kl").data) < 1e-6);
    assert.ok(Math.abs(r.loss - (r.metrics.policyLoss + r.metrics.klLoss)) < 1e-15);
    // float64 inputs reproduce the float64 reference almost exactly.
    const r64 = fixtureLoss(variant, true);
    assert.ok(
      Math.abs(r64.loss - info.loss_f64) < 1e-12,
      `f64 loss ${r64.loss} vs ${info.loss_f64}`,
    );
    assert.ok(maxAbsDiff(r64.perTokenLoss, tensor(`per_token_loss_f64/${variant}`).data) < 1e-12);
    assert.ok(maxAbsDiff(r64.dLossDLogp, tensor(`dloss_dlogp_f64/${variant}`).data) < 1e-12);
    assert.ok(maxAbsDiff(r64.perTokenKl, tensor("per_token_kl_f64").data) < 1e-12);
  });
}

Deno.test("grpoLoss() offpolicy clip statistics match the fixture's ratio counts", () => {
  const r = fixtureLoss("offpolicy", true);
  const stats = json.offpolicy_ratio_stats;
  const outside = stats["tokens_with_ratio_above_1.2"] + stats["tokens_with_ratio_below_0.8"];
  assert.equal(
    r.metrics.numTokens,
    json.completion_lengths.reduce((a: number, b: number) => a + b, 0),
  );
  assert.equal(Math.round(r.metrics.ratioOutsideFraction * r.metrics.numTokens), outside);
  assert.ok(r.metrics.clipFraction > 0 && r.metrics.clipFraction <= r.metrics.ratioOutsideFraction);
  const onPolicy = fixtureLoss("sequence-mean-token-mean", true);
  assert.equal(onPolicy.metrics.clipFraction, 0);
  assert.equal(onPolicy.metrics.ratioOutsideFraction, 0);
  // Tunix logs kl as the token mean of the masked KL.
  const kl = tensor("per_token_kl_f64").data;
  const mask = tensor("completion_mask").data;
  let sum = 0, n = 0;
  for (let i = 0; i < kl.length; i++) (sum += kl[i] * mask[i]), (n += mask[i]);
  assert.ok(Math.abs(onPolicy.metrics.klMean - sum / n) < 1e-15);
});

// ---------------------------------------------------------------------------------------------
// Loss worked by hand and checked by finite differences.

Deno.test("grpoLoss() clips by hand: upper clip kills the gradient for A > 0, not for A < 0", () => {
  // One row, A = 1; token 0: rho 1.5 (clipped branch 1.2 is the min), token 1: rho 0.5.
  const logps = tokenGrid([[Math.log(1.5), Math.log(0.5)], [Math.log(1.5), Math.log(0.5)]]);
  const oldLogps = tokenGrid([[0, 0], [0, 0]]);
  const mask = tokenGrid([[1, 1], [1, 1]]);
  const r = grpoLoss(
    { logps, oldLogps, advantages: [1, -1], mask },
    { beta: 0, epsilon: 0.2, aggregation: "sequence-mean-token-mean" },
  );
  // Row 0 (A=1): −min(1.5, 1.2) = −1.2 (grad 0); −min(0.5, 0.8) = −0.5 (grad −rho = −0.5).
  // Row 1 (A=−1): −min(−1.5, −1.2) = 1.5 (grad +rho = 1.5); −min(−0.5, −0.8) = 0.8 (grad 0).
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  [-1.2, -0.5, 1.5, 0.8].forEach((v, i) => close(r.perTokenLoss[i], v));
  close(r.loss, ((-1.2 - 0.5) / 2 + (1.5 + 0.8) / 2) / 2);
  [0, -0.5 / 4, 1.5 / 4, 0].forEach((v, i) => close(r.dLossDLogp[i], v));
  assert.equal(r.metrics.clipHighFraction, 0.25);
  assert.equal(r.metrics.clipLowFraction, 0.25);
  assert.equal(r.metrics.clipFraction, 0.5);
  assert.equal(r.metrics.ratioOutsideFraction, 1);
});

Deno.test("grpoLoss() with ratio 1 gives loss −mean(A) + β·KL and gradient −A per token (token-mean)", () => {
  const logps = tokenGrid([[-1, -2, -3], [-0.5, -0.25, 0]]);
  const refLogps = tokenGrid([[-1.5, -2, -2], [-0.5, -1, 0]]);
  const mask = tokenGrid([[1, 1, 1], [1, 1, 0]]);
  const r = grpoLoss(
    { logps, refLogps, advantages: [2, -1], mask },
    { beta: 0.1, epsilon: 0.2, aggregation: "token-mean" },
  );
  const k3 = (lp: number, ref: number) => Math.exp(ref - lp) - (ref - lp) - 1;
  const kls = [k3(-1, -1.5), 0, k3(-3, -2), 0, k3(-0.25, -1)];
  const expected = (-(2 * 3) + 1 * 2) / 5 + (0.1 * kls.reduce((a, b) => a + b)) / 5;
  assert.ok(Math.abs(r.loss - expected) < 1e-14);
  assert.ok(Math.abs(r.dLossDLogp[0] - (-2 + 0.1 * (1 - Math.exp(-0.5))) / 5) < 1e-15);
  assert.equal(r.dLossDLogp[5], 0);
  assert.equal(r.perTokenLoss[5], 0);
});

Deno.test("grpoLoss() dLossDLogp agrees with central finite differences (both aggregations, clipped)", () => {
  const rand = rng(7);
  const [B, L] = [4, 6];
  const logp = Array.from({ length: B * L }, () => -0.2 - 3 * rand());
  const ref = logp.map((v) => v + (rand() - 0.5));
  const old = logp.map((v) => v + (rand() - 0.5) * 0.8);
  const mask = Array.from(
    { length: B * L },
    (_, i) => (i % L < 2 + (Math.floor(i / L) % 4) ? 1 : 0),
  );
  const adv = [1.2, -0.7, 0.3, -0.8];
  for (const aggregation of ["sequence-mean-token-mean", "token-mean"] as const) {
    const opts: GrpoLossOptions = { beta: 0.08, epsilon: 0.2, epsilonHigh: 0.28, aggregation };
    const run = (lp: number[]) =>
      grpoLoss({
        logps: { data: lp, shape: [B, L] },
        refLogps: { data: ref, shape: [B, L] },
        oldLogps: { data: old, shape: [B, L] },
        advantages: adv,
        mask: { data: mask, shape: [B, L] },
      }, opts);
    const base = run(logp);
    assert.ok(base.metrics.clipFraction > 0, "the test should exercise the clip");
    const h = 1e-6;
    for (let k = 0; k < B * L; k++) {
      const up = logp.slice(), down = logp.slice();
      up[k] += h;
      down[k] -= h;
      const fd = (run(up).loss - run(down).loss) / (2 * h);
      assert.ok(
        Math.abs(fd - base.dLossDLogp[k]) < 1e-8,
        `${aggregation} token ${k}: ${fd} vs ${base.dLossDLogp[k]}`,
      );
    }
  }
});

Deno.test("grpoLoss() rejects bad shapes, missing reference with beta > 0 and bad hyperparameters", () => {
  const g = tokenGrid([[-1, -1]]);
  const ok: GrpoLossOptions = { beta: 0, epsilon: 0.2, aggregation: "token-mean" };
  assert.throws(
    () => grpoLoss({ logps: g, advantages: [1, 2], mask: g }, ok),
    /advantages must have 1/,
  );
  assert.throws(
    () => grpoLoss({ logps: g, advantages: [1], mask: tokenGrid([[1]]) }, ok),
    /mask must have shape/,
  );
  assert.throws(
    () => grpoLoss({ logps: g, advantages: [1], mask: g }, { ...ok, beta: 0.1 }),
    /refLogps is required/,
  );
  assert.throws(
    () => grpoLoss({ logps: g, advantages: [1], mask: g }, { ...ok, epsilon: 0 }),
    /epsilon must be in/,
  );
});

// ---------------------------------------------------------------------------------------------
// Config and metrics.

Deno.test("createGrpoConfig() has the recipe defaults, is frozen and names invalid fields", () => {
  const c = createGrpoConfig();
  assert.deepEqual(
    [
      c.numGenerations,
      c.numIterations,
      c.beta,
      c.epsilon,
      c.epsilonHigh,
      c.temperature,
      c.topK,
      c.topP,
    ],
    [4, 1, 0.08, 0.2, 0.2, 0.9, 50, 1.0],
  );
  assert.deepEqual([c.maxPromptLength, c.maxNewTokens, c.aggregation], [
    256,
    768,
    "sequence-mean-token-mean",
  ]);
  assert.ok(Object.isFrozen(c));
  assert.equal(createGrpoConfig({ epsilon: 0.1 }).epsilonHigh, 0.1);
  assert.equal(createGrpoConfig({ epsilonHigh: 0.28 }).epsilonHigh, 0.28);
  assert.throws(
    () => createGrpoConfig({ numGenerations: 1 }),
    /^GrpoConfigError: numGenerations must be >= 2, got 1$/,
  );
  const cases: [Record<string, unknown>, string][] = [
    [{ numIterations: 0 }, "numIterations"],
    [{ numGenerations: 2.5 }, "numGenerations"],
    [{ beta: -0.1 }, "beta"],
    [{ epsilon: 0 }, "epsilon"],
    [{ epsilonHigh: -1 }, "epsilonHigh"],
    [{ temperature: 0 }, "temperature"],
    [{ topK: -1 }, "topK"],
    [{ topP: 0 }, "topP"],
    [{ topP: 1.5 }, "topP"],
    [{ maxPromptLength: 0 }, "maxPromptLength"],
    [{ maxNewTokens: NaN }, "maxNewTokens"],
    [{ aggregation: "sum" }, "aggregation"],
    [{ numGeneration: 4 }, "numGeneration"],
  ];
  for (const [override, field] of cases) {
    assert.throws(
      () => createGrpoConfig(override as never),
      (e: unknown) =>
        e instanceof GrpoConfigError && e.field === field && e.message.startsWith(field),
      field,
    );
  }
});

Deno.test("rewardMetrics() and completionLengthStats() summarise a batch", () => {
  const m = rewardMetrics(
    [1, 0, 0, 0.5, 0.25, 0.25, 0.25, 0.25],
    { a: [1, 1, 1, 1, 1, 1, 1, 1] },
    4,
  );
  assert.equal(m.zeroStdGroupFraction, 0.5);
  assert.equal(m.total.mean, 2.5 / 8);
  assert.deepEqual(m.perFunction.a, { mean: 1, std: 0 });
  const ids = grid("completion_ids");
  const s = completionLengthStats(ids, { eosIds: hp.eos_id, padId: hp.pad_id });
  const lengths: number[] = json.completion_lengths;
  assert.equal(s.mean, lengths.reduce((a, b) => a + b, 0) / lengths.length);
  assert.equal(s.min, Math.min(...lengths));
  assert.equal(s.max, Math.max(...lengths));
  // tiny-a: rows 0 and 5 have no EOS.
  if (FIXTURE_DIR.includes("gemma3-tiny-a")) assert.equal(s.truncatedFraction, 2 / 8);
});
