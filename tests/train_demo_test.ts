/**
 * End-to-end `deno task train` on a shortened demo preset: the real tokenizer, the tiny
 * from-scratch Gemma 3 on the WebGPU adapter, SFT, GRPO and the three evaluations, then the
 * run folder's contents; and an interrupted run continued with `--resume`.
 */

import assert from "node:assert/strict";
import { trainMain } from "../cli/train.ts";
import type { MetricsLogger } from "../rl/metrics.ts";
import type { Phase, PhaseContext, PhaseSet } from "../rl/pipeline.ts";
import { RUN_FILES } from "../rl/pipeline_fs.ts";
import { ProgressReporter } from "../rl/progress.ts";

/** A few steps per phase; small enough for a CPU adapter, long enough to checkpoint twice. */
const SHORT_DEMO = [
  "--set",
  "sft.steps=4",
  "--set",
  "grpo.numBatches=3",
  "--set",
  "eval.numQuestions=4",
  "--set",
  "eval.batchSize=4",
  "--set",
  "eval.maxNewTokens=8",
  "--set",
  "grpo.maxNewTokens=8",
  "--set",
  "grpo.batchSize=2",
  "--set",
  "grpo.numGenerations=4",
  "--set",
  "checkpoint.everySteps=2",
  "--set",
  "run.sampleEvery=2",
  "--set",
  "run.samplesPerPoint=1",
];

const RUN_ID = "2026-01-02T03-04-05";

interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** `trainMain` with the real phases (optionally wrapped), quiet progress and a fixed clock. */
async function runTrain(
  args: string[],
  options: {
    wrap?: (phases: PhaseSet) => PhaseSet;
    interrupt?: (fire: () => void) => void;
  } = {},
): Promise<CliRun> {
  const out: string[] = [], err: string[] = [];
  const code = await trainMain(args, {
    env: { HF_HUB_CACHE: "/nonexistent-hub-cache" },
    phases: options.wrap,
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    onInterrupt: (handler) => {
      options.interrupt?.(handler);
      return () => {};
    },
    now: () => new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
    progress: (o) => new ProgressReporter({ write: () => {} }, o),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

async function readJson(path: string) {
  return JSON.parse(await Deno.readTextFile(path));
}

async function readJsonl(path: string): Promise<Record<string, unknown>[]> {
  return (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim() !== "").map((l) =>
    JSON.parse(l)
  );
}

async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(path)) names.push(e.name);
  return names.sort();
}

function assertFraction(value: unknown, what: string): void {
  assert.equal(typeof value, "number", `${what} is a number`);
  assert.ok((value as number) >= 0 && (value as number) <= 1, `${what} = ${value} in [0, 1]`);
}

/** Wraps a phase so that `fire` is called right after training step `step` is logged. */
function interruptAfter(phase: Phase, step: number, fire: () => void): Phase {
  return {
    run(ctx: PhaseContext) {
      const logger = {
        async log(name: string, s: number, values: Record<string, number>) {
          await ctx.logger.log(name, s, values);
          if (s === step) fire();
        },
      } as unknown as MetricsLogger;
      return phase.run({ ...ctx, logger });
    },
  };
}

Deno.test({
  name: "trainMain() runs a shortened demo end to end and fills the run folder",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    Deno.env.set("XDG_RUNTIME_DIR", Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp/xdg");
    const dir = await Deno.makeTempDir({ prefix: "webtune_train_demo_" });
    try {
      const r = await runTrain(["--out", dir, ...SHORT_DEMO]);
      assert.equal(r.code, 0, r.err);
      const runDir = `${dir}/${RUN_ID}`;
      assert.match(r.out, /base {2}accuracy .* \(n=4\)/);
      assert.match(r.out, /grpo {2}accuracy .* \(n=4\)/);
      assert.deepEqual(
        await listDir(runDir),
        [
          RUN_FILES.checkpoints,
          RUN_FILES.config,
          RUN_FILES.evals,
          RUN_FILES.metrics,
          RUN_FILES.pipeline,
          RUN_FILES.report,
          RUN_FILES.samples,
          RUN_FILES.vocabMap,
        ].sort(),
      );

      // config.json: the resolved demo preset with the overrides applied.
      const config = await readJson(`${runDir}/${RUN_FILES.config}`);
      assert.equal(config.preset, "demo");
      assert.equal(config.model.path, "demo");
      assert.equal(config.sft.steps, 4);
      assert.equal(config.grpo.numBatches, 3);
      assert.equal(config.eval.numQuestions, 4);
      assert.equal(config.run.outDir, dir);

      // metrics.jsonl: one record per training step, with the documented keys.
      const metrics = await readJsonl(`${runDir}/${RUN_FILES.metrics}`);
      const sft = metrics.filter((m) => m.phase === "sft");
      const grpo = metrics.filter((m) => m.phase === "grpo");
      assert.deepEqual(sft.map((m) => m.step), [1, 2, 3, 4]);
      assert.deepEqual(grpo.map((m) => m.step), [1, 2, 3]);
      for (const m of sft) {
        for (const key of ["loss", "grad_norm", "lr", "tokens_per_second"]) {
          assert.ok(Number.isFinite(m[key]), `sft step ${m.step}: ${key} = ${m[key]}`);
        }
      }
      const rewardFns = [
        "matchFormatExactly",
        "matchFormatApproximately",
        "checkAnswer",
        "checkNumbers",
      ];
      for (const m of grpo) {
        for (
          const key of [
            "loss",
            "reward_mean",
            "reward_std",
            "kl_mean",
            "completion_length_mean",
            ...rewardFns.map((f) => `reward/${f}`),
          ]
        ) {
          assert.ok(Number.isFinite(m[key]), `grpo step ${m.step}: ${key} = ${m[key]}`);
        }
      }

      // Checkpoints every 2 steps and at each phase's end, each complete.
      const ckpt = `${runDir}/${RUN_FILES.checkpoints}`;
      assert.deepEqual(await listDir(ckpt), ["grpo", "sft"]);
      assert.deepEqual(await listDir(`${ckpt}/sft`), ["step-2", "step-4"]);
      assert.deepEqual(await listDir(`${ckpt}/grpo`), ["step-2", "step-3"]);
      for (const step of ["sft/step-4", "grpo/step-3"]) {
        const files = await listDir(`${ckpt}/${step}`);
        assert.ok(files.includes("params.safetensors"), `${step}: ${files}`);
        assert.ok(files.includes("state.json"), `${step}: ${files}`);
      }

      // samples.jsonl: SFT and GRPO samples plus one per evaluation.
      const samples = await readJsonl(`${runDir}/${RUN_FILES.samples}`);
      const phases = new Set(samples.map((s) => s.phase));
      for (const p of ["sft", "grpo", "base-eval", "sft-eval", "grpo-eval"]) {
        assert.ok(phases.has(p), `a ${p} sample in ${[...phases]}`);
      }
      for (const s of samples) {
        assert.equal(typeof s.completion, "string");
        assert.equal(typeof s.prompt, "string");
      }

      // eval.json: { base, sft, grpo }, each { accuracy, partialAccuracy, formatAccuracy, n }.
      const evals = await readJson(`${runDir}/${RUN_FILES.evals}`);
      assert.deepEqual(Object.keys(evals), ["base", "sft", "grpo"]);
      for (const [phase, e] of Object.entries(evals) as [string, Record<string, unknown>][]) {
        assert.deepEqual(
          Object.keys(e).sort(),
          ["accuracy", "formatAccuracy", "n", "partialAccuracy"],
        );
        assertFraction(e.accuracy, `${phase}.accuracy`);
        assertFraction(e.partialAccuracy, `${phase}.partialAccuracy`);
        assertFraction(e.formatAccuracy, `${phase}.formatAccuracy`);
        assert.equal(e.n, 4);
      }

      // report.html: self-contained, with plots; the only URL is the SVG namespace.
      const html = await Deno.readTextFile(`${runDir}/${RUN_FILES.report}`);
      assert.match(html, /^<!DOCTYPE html>/i);
      assert.ok(html.includes("<svg"), "inline SVG plots");
      const urls = new Set(html.match(/https?:\/\/[^\s"'<>)]+/g) ?? []);
      assert.deepEqual([...urls], ["http://www.w3.org/2000/svg"]);
      assert.doesNotMatch(html, /<script|<link|\bsrc\s*=\s*["']?(?!data:)/i);

      const state = await readJson(`${runDir}/${RUN_FILES.pipeline}`);
      assert.equal(state.status, "completed");
      assert.deepEqual(state.completed, ["base-eval", "sft", "sft-eval", "grpo", "grpo-eval"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "trainMain() --resume continues runs interrupted in SFT and in GRPO exactly",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    Deno.env.set("XDG_RUNTIME_DIR", Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp/xdg");
    const dir = await Deno.makeTempDir({ prefix: "webtune_train_resume_" });
    const args = [...SHORT_DEMO, "--set", "eval.base=false", "--set", "eval.afterSft=false"];
    try {
      const whole = await runTrain(["--out", `${dir}/whole`, ...args]);
      assert.equal(whole.code, 0, whole.err);

      // Ctrl-C after SFT step 1; the resumed process is stopped again after GRPO step 2 (the
      // first step with a learning rate above 0, so the policy has left the KL reference).
      let fire: () => void = () => {};
      const interrupt = (handler: () => void) => (fire = handler);
      const runDir = `${dir}/cut/${RUN_ID}`;
      const first = await runTrain(["--out", `${dir}/cut`, ...args], {
        wrap: (phases) => ({ ...phases, sft: interruptAfter(phases.sft!, 1, () => fire()) }),
        interrupt,
      });
      assert.equal(first.code, 130, first.err);
      assert.deepEqual((await readJson(`${runDir}/${RUN_FILES.pipeline}`)).current, {
        phase: "sft",
        step: 1,
        checkpoint: `${runDir}/checkpoints/sft/step-1`,
      });
      const second = await runTrain(["--resume", runDir], {
        wrap: (phases) => ({ ...phases, grpo: interruptAfter(phases.grpo!, 2, () => fire()) }),
        interrupt,
      });
      assert.equal(second.code, 130, second.err);
      assert.deepEqual((await readJson(`${runDir}/${RUN_FILES.pipeline}`)).current, {
        phase: "grpo",
        step: 2,
        checkpoint: `${runDir}/checkpoints/grpo/step-2`,
      });
      const third = await runTrain(["--resume", runDir]);
      assert.equal(third.code, 0, third.err);
      assert.equal((await readJson(`${runDir}/${RUN_FILES.pipeline}`)).status, "completed");

      // Every step's metrics and the final evaluation match the uninterrupted run.
      const steps = async (path: string) =>
        (await readJsonl(path)).filter((m) => m.phase === "sft" || m.phase === "grpo");
      const expected = await steps(`${dir}/whole/${RUN_ID}/${RUN_FILES.metrics}`);
      const resumed = await steps(`${runDir}/${RUN_FILES.metrics}`);
      const key = (m: Record<string, unknown>) => `${m.phase} ${m.step}`;
      assert.deepEqual(resumed.map(key), expected.map(key));
      assert.deepEqual(resumed.map(key), [
        "sft 1",
        "sft 2",
        "sft 3",
        "sft 4",
        "grpo 1",
        "grpo 2",
        "grpo 3",
      ]);
      for (let i = 0; i < expected.length; i++) {
        const names = expected[i].phase === "sft"
          ? ["loss", "grad_norm", "lr"]
          : ["loss", "kl_mean", "reward_mean", "completion_length_mean", "lr"];
        for (const name of names) {
          const want = expected[i][name] as number, got = resumed[i][name] as number;
          assert.ok(
            Math.abs(got - want) <= 1e-5 * Math.max(1, Math.abs(want)),
            `${key(expected[i])} ${name}: resumed ${got}, uninterrupted ${want}`,
          );
        }
      }
      assert.deepEqual(
        await readJson(`${runDir}/${RUN_FILES.evals}`),
        await readJson(`${dir}/whole/${RUN_ID}/${RUN_FILES.evals}`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
