/**
 * The GRPO-family loss terms and `grpoLoss()` worked by hand (the autograd reference check of
 * every combination is in `grpo_loss_test.ts`).
 */

import assert from "node:assert/strict";
import { grpoLoss, type GrpoLossOptions } from "../rl/grpo_loss.ts";
import { resolveGrpoLossOptions } from "../rl/grpo_loss_options.ts";
import {
  cispoObjective,
  clippedObjective,
  entropyQuantile,
  klEstimate,
  sapoObjective,
} from "../rl/grpo_loss_terms.ts";
import { GrpoMathError, tokenGrid } from "../rl/grpo_math.ts";
import type { KlEstimator } from "../rl/grpo_config.ts";

const ESTIMATORS: readonly KlEstimator[] = ["k1", "k2", "k3"];

// ---------------------------------------------------------------------------------------------
// Worked by hand.

const close = (a: number, b: number, what = "") =>
  assert.ok(Math.abs(a - b) <= 1e-14 * Math.max(1, Math.abs(b)), `${what} ${a} vs ${b}`);

Deno.test("grpoLoss() sequence ratios (GSPO): one ratio per row, its gradient reaches every token", () => {
  // Row log-ratios 0.1 and 0.3 (mask 2 tokens): ρ = e^0.2 inside [0.8, 1.28], A = 1.
  const r = grpoLoss(
    {
      logps: tokenGrid([[0.1, 0.3, 5]]),
      oldLogps: tokenGrid([[0, 0, 0]]),
      advantages: [1],
      mask: tokenGrid([[1, 1, 0]]),
    },
    { beta: 0, epsilon: 0.2, epsilonHigh: 0.28, importanceSampling: "sequence" },
  );
  const rho = Math.exp(0.2);
  close(r.loss, -rho);
  // d(−ρ)/dlogp_j = −ρ · 1/2 on each masked token.
  close(r.dLossDLogp[0], -rho / 2);
  close(r.dLossDLogp[1], -rho / 2);
  assert.equal(r.dLossDLogp[2], 0);
  assert.deepEqual([r.ratio[0], r.ratio[1], r.ratio[2]], [rho, rho, 0]);
  assert.deepEqual([r.metrics.ratioMin, r.metrics.ratioMax], [rho, rho]);
});

Deno.test("grpoLoss() CISPO: −min(ρ, ε_high)·A·logp with the capped ratio held constant", () => {
  const r = grpoLoss(
    {
      logps: tokenGrid([[Math.log(3), Math.log(0.5)]]),
      oldLogps: tokenGrid([[0, 0]]),
      advantages: [2],
      mask: tokenGrid([[1, 1]]),
    },
    { beta: 0, epsilon: 0.2, epsilonHigh: 2, lossType: "cispo", numItemsInBatch: 4 },
  );
  // Token 0: ρ 3 capped at 2; token 1: ρ 0.5. Sum / numItemsInBatch (4).
  close(r.loss, (-2 * 2 * Math.log(3) - 0.5 * 2 * Math.log(0.5)) / 4);
  close(r.dLossDLogp[0], -2 * 2 / 4);
  close(r.dLossDLogp[1], -0.5 * 2 / 4);
  assert.equal(r.metrics.cispoClipFraction, 0.5);
  assert.equal(r.metrics.clipFraction, 0);
});

Deno.test("grpoLoss() SAPO: at ratio 1 the gate gives the GRPO gradient; τ follows the sign of A", () => {
  const inputs = {
    logps: tokenGrid([[-1, -2], [-1, -2]]),
    advantages: [1.5, -0.5],
    mask: tokenGrid([[1, 1], [1, 0]]),
  };
  const sapo = grpoLoss(inputs, { beta: 0, epsilon: 0.2, lossType: "sapo" });
  const grpo = grpoLoss(inputs, { beta: 0, epsilon: 0.2, lossType: "grpo" });
  for (let k = 0; k < 4; k++) close(sapo.dLossDLogp[k], grpo.dLossDLogp[k], `token ${k}`);
  // Value: −σ(0)·4/τ·A = −2A/τ, τ = 1 for A > 0 and 1.05 for A ≤ 0, row means then batch mean.
  close(sapo.loss, (-2 * 1.5 / 1 + -2 * -0.5 / 1.05) / 2);
  assert.equal(sapo.metrics.sapoGateMean, 1);
  const t = sapoObjective(1.5, -1, 2);
  const s = 1 / (1 + Math.exp(-1));
  close(t.value, s * 4 / 2);
  close(t.slope, 4 * s * (1 - s));
});

Deno.test("grpoLoss() KL estimators k1, k2, k3 and their gradients, worked by hand", () => {
  const inputs = {
    logps: tokenGrid([[-1, -2]]),
    refLogps: tokenGrid([[-1.5, -1]]),
    advantages: [0],
    mask: tokenGrid([[1, 1]]),
  };
  const d = [-0.5, 1]; // ref − logp
  const expected = {
    k1: { kl: d.map((x) => -x), slope: [1, 1] },
    k2: { kl: d.map((x) => x * x / 2), slope: d.map((x) => -x) },
    k3: { kl: d.map((x) => Math.exp(x) - x - 1), slope: d.map((x) => 1 - Math.exp(x)) },
  };
  for (const klEstimator of ESTIMATORS) {
    const r = grpoLoss(inputs, { beta: 0.5, epsilon: 0.2, lossType: "bnpo", klEstimator });
    const e = expected[klEstimator];
    close(r.loss, 0.5 * (e.kl[0] + e.kl[1]) / 2, klEstimator);
    close(r.metrics.klMean, (e.kl[0] + e.kl[1]) / 2, klEstimator);
    for (let k = 0; k < 2; k++) {
      close(r.perTokenKl[k], e.kl[k]);
      close(r.dLossDLogp[k], 0.5 * e.slope[k] / 2, `${klEstimator} grad ${k}`);
      close(
        klEstimate(inputs.logps.data[k], inputs.refLogps.data[k], klEstimator).slope,
        e.slope[k],
      );
    }
  }
});

Deno.test("grpoLoss() δ caps the unclipped ratio for A < 0 (INTELLECT-2), not the clipped branch", () => {
  const t = clippedObjective(4, -1, { lo: 0.8, hi: 1.2, delta: 2 });
  assert.deepEqual([t.value, t.slope + 0], [2, 0]); // + 0: no signed zeros
  const below = clippedObjective(1.5, -1, { lo: 0.8, hi: 1.2, delta: 2 });
  assert.deepEqual([below.value, below.slope + 0], [1.5, 1]);
  const pos = clippedObjective(4, 1, { lo: 0.8, hi: 1.2, delta: 2 });
  assert.deepEqual([pos.value, pos.slope + 0], [-1.2, 0]);
  assert.deepEqual(cispoObjective(4, 1, -2, 2), { value: 4, slope: -2 });
});

Deno.test("grpoLoss() entropy mask keeps tokens ≥ the (1 − q) quantile; the bonus uses the kept ones", () => {
  // Masked entropies 1, 2, 3, 4 (the 5th token is masked out): q = 0.5 → 0.5 quantile 2.5.
  const inputs = {
    logps: tokenGrid([[-1, -1, -1, -1, -1]]),
    entropies: tokenGrid([[1, 4, 2, 3, 9]]),
    advantages: [1],
    mask: tokenGrid([[1, 1, 1, 1, 0]]),
  };
  assert.equal(entropyQuantile(inputs.entropies, inputs.mask, 0.5), 2.5);
  assert.equal(entropyQuantile(inputs.entropies, tokenGrid([[0, 0, 0, 0, 0]]), 0.5), null);
  const r = grpoLoss(inputs, {
    beta: 0,
    epsilon: 0.2,
    lossType: "bnpo",
    topEntropyQuantile: 0.5,
    entropyCoef: 0.1,
  });
  // Tokens 1 (H 4) and 3 (H 3) carry −A each over 4 masked tokens; bonus −0.1·mean(4, 3).
  close(r.loss, -2 / 4 - 0.1 * 3.5);
  assert.deepEqual(Array.from(r.dLossDLogp), [0, -0.25, 0, -0.25, 0]);
  assert.deepEqual(Array.from(r.dLossDEntropy!), [0, -0.05, 0, -0.05, 0]);
  assert.equal(r.metrics.entropyMaskedFraction, 0.5);
  assert.equal(r.metrics.entropyMean, 2.5);
  close(r.metrics.entropyBonus, -0.35);
  // q = 0 keeps only the highest-entropy token.
  const top = grpoLoss(inputs, { beta: 0, epsilon: 0.2, topEntropyQuantile: 0 });
  assert.deepEqual(Array.from(top.dLossDLogp), [0, -0.25, 0, 0, 0]);
});

Deno.test("grpoLoss() normalisers: dr_grpo batch·maxCompletionLength, dapo numItemsInBatch", () => {
  const inputs = {
    logps: tokenGrid([[-1, -1, -1], [-1, -1, -1]]),
    advantages: [1, 2],
    mask: tokenGrid([[1, 1, 1], [1, 0, 0]]),
  };
  const base = { beta: 0, epsilon: 0.2 };
  // Masked sum of −A: −(3·1 + 1·2) = −5.
  close(grpoLoss(inputs, { ...base, lossType: "dr_grpo" }).loss, -5 / (2 * 3));
  close(grpoLoss(inputs, { ...base, lossType: "dr_grpo", maxCompletionLength: 10 }).loss, -5 / 20);
  close(grpoLoss(inputs, { ...base, lossType: "dapo" }).loss, -5 / 4);
  close(grpoLoss(inputs, { ...base, lossType: "dapo", numItemsInBatch: 16 }).loss, -5 / 16);
  close(grpoLoss(inputs, { ...base, lossType: "bnpo" }).loss, -5 / 4);
  close(grpoLoss(inputs, { ...base, lossType: "grpo" }).loss, (-1 - 2) / 2);
  const r = grpoLoss({ ...inputs, oldLogps: tokenGrid([[-1, -2, -1], [0, 0, 0]]) }, base);
  close(r.metrics.ratioMax, Math.E);
  close(r.metrics.ratioMin, Math.exp(-1));
  close(r.metrics.ratioMean, (1 + Math.E + 1 + Math.exp(-1)) / 4);
});

Deno.test("grpoLoss() rejects bad new options and missing entropies, naming the option", () => {
  const inputs = { logps: tokenGrid([[-1]]), advantages: [1], mask: tokenGrid([[1]]) };
  const ok: GrpoLossOptions = { beta: 0, epsilon: 0.2 };
  const cases: [Partial<GrpoLossOptions> | Record<string, unknown>, RegExp][] = [
    [{ lossType: "ppo" }, /^lossType must be one of grpo, bnpo/],
    [{ importanceSampling: "row" }, /^importanceSampling must be token or sequence/],
    [{ klEstimator: "k4" }, /^klEstimator must be k1, k2 or k3/],
    [{ delta: 1 }, /^delta must be a finite number > 1, got 1/],
    [{ topEntropyQuantile: 1.5 }, /^topEntropyQuantile must be in \[0, 1\]/],
    [{ entropyCoef: NaN }, /^entropyCoef must be finite/],
    [{ maxCompletionLength: 0 }, /^maxCompletionLength must be an integer >= 1/],
    [{ numItemsInBatch: -1 }, /^numItemsInBatch must be a finite number >= 0/],
    [{ sapoTemperatureNeg: 0 }, /^sapoTemperatureNeg must be a finite number > 0/],
    [{ topEntropyQuantile: 0.5 }, /entropies are required/],
    [{ entropyCoef: 0.1 }, /entropies are required/],
  ];
  for (const [override, message] of cases) {
    assert.throws(
      () => grpoLoss(inputs, { ...ok, ...override } as GrpoLossOptions),
      (e: unknown) => e instanceof GrpoMathError && message.test(e.message),
      String(message),
    );
  }
  assert.throws(
    () => grpoLoss({ ...inputs, entropies: tokenGrid([[1, 2]]) }, ok),
    /entropies must have shape \[1, 1\]/,
  );
  const resolved = resolveGrpoLossOptions({ beta: 0, epsilon: 0.2 });
  assert.equal(resolved.lossType, "grpo");
  assert.equal(resolved.sapoTemperatureNeg, 1.05);
});
