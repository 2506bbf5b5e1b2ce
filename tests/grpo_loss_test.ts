/**
 * `grpoLoss()` against a float64 autograd reference of TRL's `_compute_loss` for every loss type ×
 * importance-sampling level × KL estimator, and its defaults against the pre-issue-17 loss.
 */

import assert from "node:assert/strict";
import { grpoLoss, type GrpoLossInputs, type GrpoLossOptions } from "../rl/grpo_loss.ts";
import { type TokenGrid, tokenGrid } from "../rl/grpo_math.ts";
import type { GrpoLossType, ImportanceSamplingLevel, KlEstimator } from "../rl/grpo_config.ts";
import { Tape } from "./_autograd.ts";
import { legacyGrpoLoss } from "./_grpo_loss_legacy.ts";
import {
  referenceGrpoLoss,
  type ReferenceInputs,
  type ReferenceOptions,
} from "./_grpo_loss_reference.ts";
import { rng } from "./_helpers.ts";

// ---------------------------------------------------------------------------------------------
// Random batches: 5 rows × 7 tokens, ragged masks (one empty row), ratios far outside the clip.

const B = 5, L = 7;
const MASK_ROWS = [
  [1, 1, 1, 1, 1, 1, 1],
  [1, 1, 1, 1, 0, 0, 0],
  [1, 0, 0, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 0, 0],
  [1, 1, 1, 1, 1, 0, 0],
];
const ADVANTAGES = [1.3, -0.8, 0.4, -1.1, -0.9];
// Per-row log-ratio offsets push whole rows past δ = 1.5 (rows 0, 1) or below 1 − ε (row 4).
const ROW_OFFSETS = [0.6, 0.7, -0.4, 0, -0.5];

function batch(seed: number): ReferenceInputs {
  const r = rng(seed);
  const grid = (f: (b: number, j: number) => number) =>
    Array.from({ length: B }, (_, b) => Array.from({ length: L }, (_, j) => f(b, j)));
  const logps = grid(() => -0.1 - 3 * r());
  return {
    logps,
    oldLogps: grid((b, j) => logps[b][j] - ROW_OFFSETS[b] - (r() - 0.5) * 1.2),
    refLogps: grid((b, j) => logps[b][j] + (r() - 0.5)),
    advantages: ADVANTAGES,
    mask: MASK_ROWS,
    entropies: grid(() => 0.05 + 3 * r()),
  };
}

function toGrid(rows: readonly number[][]): TokenGrid {
  return tokenGrid(rows);
}

/** The same inputs for `grpoLoss`. */
function libraryInputs(x: ReferenceInputs): GrpoLossInputs {
  return {
    logps: toGrid(x.logps),
    oldLogps: x.oldLogps && toGrid(x.oldLogps),
    refLogps: x.refLogps && toGrid(x.refLogps),
    advantages: x.advantages,
    mask: toGrid(x.mask),
    entropies: x.entropies && toGrid(x.entropies),
  };
}

/** |actual − expected| ≤ 1e-9·|expected|, elementwise (exact 0 where the reference is 0). */
function assertRelClose(actual: ArrayLike<number>, expected: readonly number[], what: string) {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    assert.ok(Math.abs(a - e) <= 1e-9 * Math.abs(e), `${what}[${i}]: ${a} vs ${e}`);
  }
}

interface Variant {
  readonly name: string;
  readonly options: Partial<GrpoLossOptions>;
  readonly onPolicy?: boolean;
}

const VARIANTS: readonly Variant[] = [
  { name: "plain", options: {} },
  { name: "beta 0, no reference", options: { beta: 0 } },
  { name: "delta", options: { delta: 1.5 } },
  { name: "entropy mask", options: { topEntropyQuantile: 0.4 } },
  { name: "entropy bonus", options: { entropyCoef: 0.03 } },
  {
    name: "delta + mask + bonus + normalisers",
    options: {
      delta: 1.5,
      topEntropyQuantile: 0.6,
      entropyCoef: -0.02,
      numItemsInBatch: 41,
      maxCompletionLength: 9,
      sapoTemperaturePos: 0.7,
      sapoTemperatureNeg: 1.3,
    },
  },
  {
    name: "on-policy + mask + bonus",
    options: { topEntropyQuantile: 0.5, entropyCoef: 0.01 },
    onPolicy: true,
  },
];

function referenceOptions(o: GrpoLossOptions, x: ReferenceInputs): ReferenceOptions {
  return {
    lossType: o.lossType ?? "grpo",
    importanceSamplingLevel: o.importanceSampling ?? "token",
    klEstimator: o.klEstimator ?? "k3",
    beta: o.beta,
    epsilonLow: o.epsilon,
    epsilonHigh: o.epsilonHigh ?? o.epsilon,
    delta: o.delta ?? null,
    topEntropyQuantile: o.topEntropyQuantile ?? 1,
    entropyCoef: o.entropyCoef ?? 0,
    maxCompletionLength: o.maxCompletionLength ?? L,
    numItemsInBatch: o.numItemsInBatch ?? x.mask.flat().reduce((s, m) => s + m, 0),
    sapoTemperaturePos: o.sapoTemperaturePos ?? 1.0,
    sapoTemperatureNeg: o.sapoTemperatureNeg ?? 1.05,
  };
}

const LOSS_TYPES: readonly GrpoLossType[] = ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo"];
const LEVELS: readonly ImportanceSamplingLevel[] = ["token", "sequence"];
const ESTIMATORS: readonly KlEstimator[] = ["k1", "k2", "k3"];

for (const lossType of LOSS_TYPES) {
  for (const level of LEVELS) {
    for (const klEstimator of ESTIMATORS) {
      Deno.test(`grpoLoss() matches the float64 autograd reference: ${lossType} × ${level} × ${klEstimator}`, () => {
        for (const [v, variant] of VARIANTS.entries()) {
          const full = batch(100 + v);
          const x: ReferenceInputs = {
            ...full,
            oldLogps: variant.onPolicy ? undefined : full.oldLogps,
            refLogps: variant.options.beta === 0 ? undefined : full.refLogps,
          };
          const options: GrpoLossOptions = {
            beta: 0.07,
            epsilon: 0.2,
            // cispo's ε_high caps the ratio itself: 1.6 lies inside the ratios drawn here.
            epsilonHigh: lossType === "cispo" ? 1.6 : 0.28,
            lossType,
            importanceSampling: level,
            klEstimator,
            ...variant.options,
          };
          const got = grpoLoss(libraryInputs(x), options);
          const want = referenceGrpoLoss(x, referenceOptions(options, x));
          const what = `${variant.name}:`;
          assertRelClose([got.loss], [want.loss], `${what} loss`);
          assertRelClose(got.dLossDLogp, want.dLogp.flat(), `${what} dLossDLogp`);
          if ((options.entropyCoef ?? 0) !== 0) {
            assert.ok(got.dLossDEntropy, `${what} dLossDEntropy present`);
            assertRelClose(got.dLossDEntropy, want.dEntropy.flat(), `${what} dLossDEntropy`);
          } else {
            assert.equal(got.dLossDEntropy, undefined, `${what} no dLossDEntropy without a bonus`);
            assert.ok(want.dEntropy.flat().every((g) => g === 0));
          }
          const m = got.metrics;
          assert.ok(
            Math.abs(got.loss - (m.policyLoss + m.klLoss + m.entropyBonus)) <=
              1e-12 * Math.max(1, Math.abs(got.loss)),
            `${what} loss = policy + kl + bonus`,
          );
        }
      });
    }
  }
}

Deno.test("grpoLoss() reference batches exercise every branch (clip, δ, mask, CISPO cap)", () => {
  const x = batch(100);
  const base: GrpoLossOptions = { beta: 0.07, epsilon: 0.2, epsilonHigh: 0.28 };
  const token = grpoLoss(libraryInputs(x), base);
  assert.ok(token.metrics.clipLowFraction > 0 && token.metrics.clipHighFraction > 0);
  const seq = grpoLoss(libraryInputs(x), { ...base, importanceSampling: "sequence" });
  assert.ok(seq.metrics.clipFraction > 0);
  for (const importanceSampling of LEVELS) {
    const plain = grpoLoss(libraryInputs(x), { ...base, importanceSampling });
    const capped = grpoLoss(libraryInputs(x), { ...base, importanceSampling, delta: 1.5 });
    assert.notEqual(plain.loss, capped.loss, `δ changes the ${importanceSampling} loss`);
  }
  const masked = grpoLoss(libraryInputs(x), { ...base, topEntropyQuantile: 0.4 });
  assert.ok(
    masked.metrics.entropyMaskedFraction > 0.3 && masked.metrics.entropyMaskedFraction < 0.5,
  );
  const cispo = grpoLoss(libraryInputs(x), { ...base, epsilonHigh: 1.6, lossType: "cispo" });
  assert.ok(cispo.metrics.cispoClipFraction > 0);
});

Deno.test("the autograd reference agrees with central finite differences", () => {
  const x = batch(7);
  const o = referenceOptions({
    beta: 0.07,
    epsilon: 0.2,
    epsilonHigh: 0.28,
    lossType: "sapo",
    importanceSampling: "sequence",
    klEstimator: "k2",
    entropyCoef: 0.05,
  }, x);
  const base = referenceGrpoLoss(x, o);
  const h = 1e-6;
  for (const field of ["logps", "entropies"] as const) {
    const grads = field === "logps" ? base.dLogp : base.dEntropy;
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < L; j++) {
        const shifted = (dx: number) => {
          const g = x[field]!.map((r) => [...r]);
          g[b][j] += dx;
          return referenceGrpoLoss({ ...x, [field]: g }, o).loss;
        };
        const fd = (shifted(h) - shifted(-h)) / (2 * h);
        assert.ok(
          Math.abs(fd - grads[b][j]) < 1e-8,
          `${field}[${b}][${j}]: ${fd} vs ${grads[b][j]}`,
        );
      }
    }
  }
  // And the tape itself on a tie: min splits the gradient evenly (JAX / torch.minimum).
  const t = new Tape();
  const a = t.variable(2);
  const y = t.min(t.mul(a, 1), 2);
  t.backward(y);
  assert.equal(t.grad(a), 0.5);
});

// ---------------------------------------------------------------------------------------------
// Defaults: bit for bit the loss before issue 17.

Deno.test("grpoLoss() defaults reproduce the pre-issue-17 loss bit for bit (both aggregations)", () => {
  const same = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
    assert.equal(a.length, b.length, what);
    for (let i = 0; i < a.length; i++) {
      assert.ok(Object.is(a[i], b[i]), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
    }
  };
  for (let seed = 0; seed < 6; seed++) {
    const x = batch(200 + seed);
    const f32 = (rows: readonly number[][]) => ({
      data: Float32Array.from(rows.flat()),
      shape: [B, L] as [number, number],
    });
    // Float32 read-backs as the trainer passes them, and float64 grids.
    const grids = seed % 2 === 0 ? libraryInputs(x) : {
      ...libraryInputs(x),
      logps: f32(x.logps),
      oldLogps: f32(x.oldLogps!),
      refLogps: f32(x.refLogps!),
    };
    for (const aggregation of ["sequence-mean-token-mean", "token-mean"] as const) {
      for (const [withOld, beta] of [[true, 0.08], [false, 0.08], [true, 0], [false, 0]] as const) {
        const inputs = { ...grids, oldLogps: withOld ? grids.oldLogps : undefined };
        const legacy = legacyGrpoLoss(inputs, {
          beta,
          epsilon: 0.2,
          epsilonHigh: 0.28,
          aggregation,
        });
        const lossType: GrpoLossType = aggregation === "token-mean" ? "bnpo" : "grpo";
        const optionSets: GrpoLossOptions[] = [
          { beta, epsilon: 0.2, epsilonHigh: 0.28, aggregation },
          { beta, epsilon: 0.2, epsilonHigh: 0.28, lossType },
          // lossType wins over aggregation; the new defaults spelled out change nothing.
          {
            beta,
            epsilon: 0.2,
            epsilonHigh: 0.28,
            aggregation: lossType === "grpo" ? "token-mean" : "sequence-mean-token-mean",
            lossType,
            importanceSampling: "token",
            klEstimator: "k3",
            delta: null,
            topEntropyQuantile: 1,
            entropyCoef: 0,
          },
          // Entropies only logged: the loss is unchanged.
          { beta, epsilon: 0.2, epsilonHigh: 0.28, aggregation, lossType },
        ];
        for (const [i, options] of optionSets.entries()) {
          const withEntropies = i === 3 ? inputs : { ...inputs, entropies: undefined };
          const what = `seed ${seed} ${JSON.stringify(options)} old ${withOld}`;
          const r = grpoLoss(withEntropies, options);
          assert.ok(Object.is(r.loss, legacy.loss), `${what}: loss ${r.loss} vs ${legacy.loss}`);
          same(r.dLossDLogp, legacy.dLossDLogp, `${what} dLossDLogp`);
          same(r.perTokenLoss, legacy.perTokenLoss, `${what} perTokenLoss`);
          same(r.perTokenKl, legacy.perTokenKl, `${what} perTokenKl`);
          same(r.ratio, legacy.ratio, `${what} ratio`);
          for (const [key, value] of Object.entries(legacy.metrics)) {
            const got = (r.metrics as unknown as Record<string, number>)[key];
            assert.ok(Object.is(got, value), `${what} metrics.${key}: ${got} vs ${value}`);
          }
          assert.equal(r.dLossDEntropy, undefined);
        }
      }
    }
  }
});
