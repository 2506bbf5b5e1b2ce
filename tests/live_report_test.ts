/**
 * The live report of issue 15: `report.html` re-rendered while a phase runs (throttled by
 * `reportEveryMs`, from metrics kept in memory), the periodic evaluation of `eval.everySteps`
 * (logged with its step, plotted, leaving the training numbers unchanged), GPU bytes in every
 * metrics row, and samples with each reward function's value and whether the answer was right.
 *
 * @module
 */

import assert from "node:assert/strict";
import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
import { MetricsLogger, type MetricsRecord } from "../rl/metrics.ts";
import type { Phase, PhaseContext, PhaseSet } from "../rl/pipeline.ts";
import { runPipeline } from "../rl/pipeline.ts";
import type { PhaseName } from "../rl/pipeline_state.ts";
import { presetInput, resolveTrainConfig } from "../rl/presets.ts";
import { REWARD_FUNCTIONS } from "../rl/rewards.ts";
import { MemoryRunStore } from "../rl/run_store.ts";
import { scoreResponse } from "../rl/scoring.ts";
import { train } from "../rl/train.ts";
import { createTrainConfig, TrainConfigError } from "../rl/train_config.ts";
import { thrown } from "./_helpers.ts";
import { TINY_TRAIN_SETS } from "./_train_worker.ts";

/** A few steps per phase, small enough for a CPU adapter (one eval question per batch). */
const TINY = [...TINY_TRAIN_SETS, "eval.batchSize=1"];

/** A `MemoryRunStore` that records each report write with the phase running at the time. */
class WatchedStore extends MemoryRunStore {
  running: PhaseName | null = null;
  readonly writes: { phase: PhaseName | null; html: string }[] = [];
  metricsReads = 0;
  override writeReport(html: string): Promise<void> {
    this.writes.push({ phase: this.running, html });
    return super.writeReport(html);
  }
  override readMetrics(): Promise<MetricsRecord[]> {
    this.metricsReads++;
    return super.readMetrics();
  }
  /** Wraps each phase so that `running` names it while it runs. */
  watch(phases: PhaseSet): PhaseSet {
    const out: Partial<Record<PhaseName, Phase>> = {};
    for (const [name, phase] of Object.entries(phases) as [PhaseName, Phase][]) {
      out[name] = {
        run: async (ctx) => {
          this.running = name;
          try {
            return await phase.run(ctx);
          } finally {
            this.running = null;
          }
        },
      };
    }
    return out;
  }
}

/** Training rows without what is measured rather than computed (times, GPU bytes). */
const trainingNumbers = (records: readonly MetricsRecord[]) =>
  records.filter((r) => r.phase === "sft" || r.phase === "grpo").map((r) =>
    Object.fromEntries(
      Object.entries(r).filter(([k]) =>
        !["time", "step_seconds", "tokens_per_second", "rollout_seconds", "train_seconds"]
          .includes(k) && !k.startsWith("gpu_bytes_") && !k.startsWith("eval_")
      ),
    )
  );

Deno.test({
  name: "train() re-renders report.html during phases and logs eval.everySteps and GPU bytes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tokenizer = await loadDefaultTokenizer();
    const plain = new MemoryRunStore();
    const baseline = await train(resolveTrainConfig({ preset: "demo", sets: TINY }), {
      store: plain,
      tokenizer,
    });

    const config = resolveTrainConfig({ preset: "demo", sets: [...TINY, "eval.everySteps=2"] });
    assert.equal(config.eval.everySteps, 2);
    const store = new WatchedStore();
    const result = await train(config, {
      store,
      tokenizer,
      reportEveryMs: 0,
      phases: (defaults) => store.watch(defaults),
    });
    assert.equal(result.status, "completed");

    // Rendered while each phase ran (eval phases between batches, training at step ends).
    const during = (phase: PhaseName) => store.writes.filter((w) => w.phase === phase);
    assert.equal(during("base-eval").length, 2, "one render per eval batch");
    // One per step and one per batch of the periodic evaluation at step 2.
    assert.equal(during("sft").length, 3 + 2);
    assert.equal(during("grpo").length, 2 + 2);
    const live = during("sft").at(-1)!.html;
    assert.ok(live.startsWith("<!DOCTYPE html>") && live.includes(`aria-label="sft: Loss"`));
    assert.ok(live.includes(`aria-label="sft: Periodic evaluation (eval.everySteps)"`));
    assert.ok(!live.includes("finished "), "a live report is not marked finished");

    // Periodic evaluation: logged with the steps 2 of SFT and GRPO, fractions in [0, 1].
    const metrics = await store.readMetrics();
    const rows = metrics.filter((r) => r.phase === "sft" || r.phase === "grpo");
    const evaluated = rows.filter((r) => "eval_accuracy" in r).map((r) => `${r.phase} ${r.step}`);
    assert.deepEqual(evaluated, ["sft 2", "grpo 2"]);
    for (const r of rows.filter((r) => "eval_accuracy" in r)) {
      for (const k of ["eval_accuracy", "eval_partial_accuracy", "eval_format_accuracy"]) {
        const v = r[k] as number;
        assert.ok(v >= 0 && v <= 1 && Math.round(v * 2) === v * 2, `${k} = ${v} of 2 questions`);
      }
    }
    // GPU bytes in every training row.
    for (const r of rows) {
      const inUse = r.gpu_bytes_in_use as number, allocated = r.gpu_bytes_allocated as number;
      assert.ok(Number.isInteger(inUse) && inUse > 0, `${r.phase} ${r.step}: in use ${inUse}`);
      assert.ok(allocated >= inUse && (r.gpu_bytes_peak as number) >= allocated);
    }
    const html = store.report!;
    assert.ok(html.includes("gpu_bytes_in_use"), "GPU bytes are plotted or noted");
    assert.ok(html.includes(`aria-label="grpo: Periodic evaluation (eval.everySteps)"`));
    assert.ok(!html.includes(`aria-label="sft: applied"`), "a constant gets no plot");
    assert.match(html, /Constant, not plotted: [^<]*applied = 1/);

    // The evaluation changed no training number and no phase evaluation.
    assert.deepEqual(trainingNumbers(metrics), trainingNumbers(await plain.readMetrics()));
    assert.deepEqual(result.eval, baseline.eval);
    assert.deepEqual(
      store.samples.map(({ completion }) => completion),
      plain.samples.map(({ completion }) => completion),
    );

    // Samples: GRPO ones carry each reward function's value, all say whether they were right.
    const names = Object.keys(REWARD_FUNCTIONS);
    const grpo = store.samples.filter((s) => s.phase === "grpo");
    assert.equal(grpo.length, 2);
    for (const s of grpo) {
      assert.deepEqual(Object.keys(s.rewards ?? {}), names);
      const sum = Object.values(s.rewards!).reduce((a, b) => a + b, 0);
      assert.equal(sum, s.reward, "the total is the sum of the (unweighted) rewards");
      assert.equal(s.correct, scoreResponse(s.completion, s.answer!).correct);
    }
    for (const s of store.samples) assert.equal(typeof s.correct, "boolean", s.phase);
    assert.ok(html.includes("<th>per function</th>") && html.includes("checkAnswer "));
  },
});

/** Config of one SFT phase and nothing else. */
function sftOnly(): ReturnType<typeof resolveTrainConfig> {
  return resolveTrainConfig({
    preset: "demo",
    sets: ["eval.base=false", "eval.afterSft=false", "grpo.enabled=false", "sft.steps=10"],
  });
}

Deno.test("runPipeline() renders the live report every reportEveryMs, from metrics in memory", async () => {
  let now = 0;
  const sft: Phase = {
    async run(ctx: PhaseContext) {
      const bar = ctx.createProgress(10);
      for (let step = 1; step <= 10; step++) {
        await ctx.logger.log("sft", step, { loss: 1 / step });
        now = step * 10_000; // 10 s per step
        bar.update(step);
      }
      bar.finish();
      return { status: "completed", step: 10, checkpoint: null };
    },
  };
  const store = new WatchedStore();
  await runPipeline({
    config: sftOnly(),
    phases: store.watch({ sft }),
    store,
    logger: new MetricsLogger(store.metricsSink, { clock: null }),
    reportClock: () => now,
  });
  // Default 30 s: the first step boundary, then steps 4, 7 and 10; then the final report.
  const live = store.writes.filter((w) => w.phase === "sft");
  assert.equal(live.length, 4);
  assert.deepEqual(
    live.map((w) => /<td class="num">1–(\d+)<\/td>/.exec(w.html)?.[1]),
    ["1", "4", "7", "10"],
  );
  assert.equal(store.writes.length, 5);
  assert.equal(store.metricsReads, 2, "metrics are read once at the start and once per phase");
});

Deno.test("runPipeline() keeps running when a live report write fails", async () => {
  const messages: string[] = [];
  const store = new class extends MemoryRunStore {
    fail = true;
    override writeReport(html: string): Promise<void> {
      return this.fail ? Promise.reject(new Error("disk full")) : super.writeReport(html);
    }
  }();
  const sft: Phase = {
    async run(ctx: PhaseContext) {
      const bar = ctx.createProgress(2);
      for (let step = 1; step <= 2; step++) {
        await ctx.logger.log("sft", step, { loss: 1 / step });
        bar.update(step);
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
      store.fail = false;
      return { status: "completed", step: 2, checkpoint: null };
    },
  };
  const state = await runPipeline({
    config: sftOnly(),
    phases: { sft },
    store,
    logger: new MetricsLogger(store.metricsSink),
    reportEveryMs: 0,
    onEvent: (e) => e.type === "message" && messages.push(e.text),
  });
  assert.equal(state.status, "completed");
  assert.equal(messages.filter((m) => m.includes("disk full")).length, 1, "said once");
  assert.ok(store.report?.includes("sft: Loss"), "the final report is written");
});

Deno.test("eval.everySteps: validated, 0 by default and when a saved config lacks it", () => {
  assert.equal(resolveTrainConfig({ preset: "demo" }).eval.everySteps, 0);
  const e = thrown(() => resolveTrainConfig({ preset: "demo", sets: ["eval.everySteps=-1"] }));
  assert.ok(e instanceof TrainConfigError, String(e));
  assert.equal(e.field, "eval.everySteps");
  const saved = JSON.parse(JSON.stringify(presetInput("demo")));
  delete saved.eval.everySteps;
  assert.equal(createTrainConfig(saved).eval.everySteps, 0);
});
