/**
 * The GRPO family end to end: `--set grpo.lossType=…` (and the other `grpo.*` fields) through
 * `resolveTrainConfig` and `train()`, a short demo run per loss type (GRPO only, from the demo
 * model's initial weights: SFT runs the same code whatever the loss); DAPO's dynamic sampling
 * logs its draws and resumes exactly (the prompts drawn are the checkpoint's data position).
 *
 * @module
 */

import assert from "node:assert/strict";
import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
import type { MetricsRecord } from "../rl/metrics.ts";
import { resolveTrainConfig } from "../rl/presets.ts";
import { reportPlots } from "../rl/report_plots.ts";
import { MemoryRunStore } from "../rl/run_store.ts";
import { train } from "../rl/train.ts";
import { trainUntil } from "./_train_worker.ts";

/** One GRPO step of a smaller demo model from its initial weights: no SFT, no evaluation. */
const TINY = [
  "demoData.trainSize=40",
  "demoData.testSize=8",
  "model.demo.numLayers=2",
  "sft.enabled=false",
  "grpo.numBatches=1",
  "grpo.batchSize=2",
  "grpo.numGenerations=2",
  "grpo.maxNewTokens=6",
  "grpo.microBatchSize=3",
  "eval.numQuestions=2",
  "eval.base=false",
  "eval.afterGrpo=false",
  "checkpoint.everySteps=0",
  "run.sampleEvery=0",
];

const grpoRows = (records: readonly MetricsRecord[]) => records.filter((r) => r.phase === "grpo");

/** Step metrics without the measured ones (times, throughput, GPU bytes). */
const untimed = (records: readonly MetricsRecord[]) =>
  grpoRows(records).map((r) =>
    Object.fromEntries(
      Object.entries(r).filter(([k]) =>
        k !== "time" && !k.endsWith("_seconds") && k !== "tokens_per_second" &&
        !k.startsWith("gpu_bytes_")
      ),
    )
  );

Deno.test({
  name: "train() runs a short demo for every grpo.lossType set with --set",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tokenizer = await loadDefaultTokenizer();
    const variants: [string, string[]][] = [
      ["grpo", []],
      ["bnpo", []],
      ["dr_grpo", ['grpo.advantageScale="none"']],
      ["dapo", ["grpo.epsilonHigh=0.28", "grpo.overlongPenalty.enabled=true"]],
      ["cispo", ["grpo.epsilonHigh=5", "grpo.maskTruncatedCompletions=true"]],
      ["sapo", ['grpo.importanceSampling="sequence"', "grpo.topEntropyQuantile=0.5"]],
    ];
    for (const [lossType, extra] of variants) {
      const config = resolveTrainConfig({
        preset: "demo",
        sets: [...TINY, `grpo.lossType=${lossType}`, ...extra],
      });
      assert.equal(config.grpo.lossType, lossType);
      const store = new MemoryRunStore();
      const result = await train(config, { store, tokenizer });
      assert.equal(result.status, "completed", lossType);
      const rows = grpoRows(await store.readMetrics());
      assert.deepEqual(rows.map((r) => r.step), [1], lossType);
      for (const r of rows) {
        for (const key of ["loss", "grad_norm", "entropy_mean", "ratio_mean"]) {
          assert.ok(Number.isFinite(r[key]), `${lossType}: ${key} = ${r[key]}`);
        }
        // The sampler's log-probs are the training forward's, up to float32 rounding.
        const drift = r.rollout_logp_max_abs_diff as number;
        assert.ok(drift >= 0 && drift <= 1e-4, `${lossType}: rollout log-prob drift ${drift}`);
      }
      // The loss type's own metrics show that it reached the trainer's loss.
      if (lossType === "cispo") assert.ok("cispo_clip_fraction" in rows[0]);
      if (lossType === "sapo") {
        assert.ok("sapo_gate_mean" in rows[0] && "entropy_masked_fraction" in rows[0]);
      }
      if (lossType === "dapo") {
        assert.ok(Number.isFinite(rows[0]["reward/overlongPenalty"]), "overlong penalty logged");
      }
    }
  },
});

Deno.test({
  name: "train() with grpo.dynamicSampling logs its draws and resumes to the same prompts",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tokenizer = await loadDefaultTokenizer();
    const config = resolveTrainConfig({
      preset: "demo",
      sets: [
        ...TINY,
        "grpo.numBatches=2",
        "grpo.dynamicSampling=true",
        "grpo.maxResampleRounds=2",
        "run.sampleEvery=1",
        "run.samplesPerPoint=1",
      ],
    });
    const whole = new MemoryRunStore();
    assert.equal((await train(config, { store: whole, tokenizer })).status, "completed");
    const rows = grpoRows(await whole.readMetrics());
    assert.equal(rows.length, 2);
    for (const r of rows) {
      for (const key of ["resample_draws", "resample_rounds", "zero_std_group_fraction"]) {
        assert.ok(Number.isFinite(r[key]), `${key} = ${r[key]}`);
      }
      assert.ok((r.resample_rounds as number) <= 2);
    }
    // Step 1 drew more prompts (the initial model's rewards are mostly equal), so step 2 starts
    // further down the prompt stream than 1 · batchSize: only the checkpoint knows where.
    assert.ok((rows[0].resample_draws as number) > 0, "dynamic sampling drew more prompts");

    // Stopped after GRPO step 1 and resumed: the same draws, prompts and numbers.
    const store = new MemoryRunStore();
    const first = await trainUntil(config, { store, tokenizer }, "grpo", 1);
    assert.equal(first.status, "interrupted");
    assert.equal((await train(config, { store, tokenizer })).status, "completed");
    assert.deepEqual(untimed(await store.readMetrics()), untimed(await whole.readMetrics()));
    const prompts = (s: MemoryRunStore) =>
      s.samples.filter((x) => x.phase === "grpo").map((x) => `${x.step} ${x.prompt}`);
    assert.deepEqual(prompts(store), prompts(whole));
  },
});

Deno.test("reportPlots() draws the GRPO family's metrics: ratios, clip regions, entropy, sampling, drift", () => {
  const metrics = [1, 2, 3].map((step) => ({
    phase: "grpo",
    step,
    ratio_min: 1 - step / 10,
    ratio_mean: 1,
    ratio_max: 1 + step / 10,
    clip_fraction: step / 10,
    clip_low_fraction: step / 20,
    clip_high_fraction: step / 20,
    ratio_outside_fraction: step / 5,
    entropy_mean: 3 - step / 10,
    zero_std_group_fraction: step / 4,
    resample_draws: step,
    resample_rounds: 1,
    rollout_logp_max_abs_diff: step * 1e-7,
  }));
  const titles = reportPlots(metrics).map((p) => `${p.title}: ${p.series.map((s) => s.name)}`);
  assert.deepEqual(titles, [
    "Importance ratio (min, mean, max): ratio_min,ratio_mean,ratio_max",
    "Clip regions (fraction of tokens): clip_low_fraction,clip_high_fraction," +
    "ratio_outside_fraction",
    "Policy entropy (mean, nats): entropy_mean",
    "Dynamic sampling (groups with equal rewards, extra draws): zero_std_group_fraction," +
    "resample_draws,resample_rounds",
    "Rollout vs training log-prob (max |Δ|): rollout_logp_max_abs_diff",
    "clip_fraction: clip_fraction",
  ]);
});
