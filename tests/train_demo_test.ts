/**
 * End-to-end `deno task train` on a shortened demo preset: the real tokenizer, the tiny
 * from-scratch Gemma 3 on the WebGPU adapter, SFT, GRPO and the three evaluations, then the
 * run folder's contents; and real `deno task train` processes stopped by SIGTERM (in SFT and in
 * GRPO) and by SIGKILL (between two checkpoints), each continued with `--resume`, against the
 * uninterrupted run.
 */

import assert from "node:assert/strict";
import { RUN_FILES } from "../rl/pipeline_fs.ts";
import type { PhaseName } from "../rl/pipeline_state.ts";
import { type CliRun, pausedLine, runTrainMain } from "./_train_worker.ts";

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

/** `trainMain` in this process with the real phases, quiet progress and a fixed clock. */
const runTrain = (args: string[]): Promise<CliRun> => runTrainMain(args);

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
          RUN_FILES.exports,
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

/** The signal test's `deno task train` process (`_train_worker.ts`). */
const WORKER = new URL("./_train_worker.ts", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;

/** A `deno task train` child process that pauses at a step (see `_train_worker.ts`). */
interface TrainProcess {
  readonly child: Deno.ChildProcess;
  /** Resolves once the process paused at its step (rejects when it ended first). */
  readonly paused: Promise<void>;
  /** The exit status and what it printed. */
  readonly done: Promise<{ status: Deno.CommandStatus; out: string; err: string }>;
}

function trainProcess(pause: `${PhaseName}:${number}`, args: string[]): TrainProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WORKER, pause, ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "", err = "";
  const [phase, step] = pause.split(":") as [PhaseName, string];
  const line = pausedLine(phase, Number(step));
  let seen: () => void = () => {};
  const paused = new Promise<void>((resolve) => seen = resolve);
  const read = async (stream: ReadableStream<Uint8Array>, add: (text: string) => void) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) add(text);
  };
  const done = Promise.all([
    read(child.stdout, (t) => {
      out += t;
      if (out.includes(line)) seen();
    }),
    read(child.stderr, (t) => err += t),
    child.status,
  ]).then(([, , status]) => ({ status, out, err }));
  return {
    child,
    paused: Promise.race([
      paused,
      done.then((r) => Promise.reject(new Error(`ended before "${line}":\n${r.out}\n${r.err}`))),
    ]),
    done,
  };
}

/** Metrics without what is measured rather than computed (times, rates, GPU bytes). */
function computedMetrics(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  return rows.map((row) =>
    Object.fromEntries(
      Object.entries(row).filter(([k]) =>
        !/^time$|_seconds$|^tokens_per_second$|^gpu_bytes_/.test(k)
      ),
    )
  );
}

Deno.test({
  name:
    "deno task train: SIGTERM in SFT and in GRPO and a kill -9 between checkpoints resume to the uninterrupted run",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    Deno.env.set("XDG_RUNTIME_DIR", Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp/xdg");
    const dir = await Deno.makeTempDir({ prefix: "webtune_train_signal_" });
    // Checkpoints at SFT steps 2 and 3 (the end), GRPO steps 2 and 3.
    const args = [
      ...SHORT_DEMO,
      "--set",
      "sft.steps=3",
      "--set",
      "eval.base=false",
      "--set",
      "eval.afterSft=false",
    ];
    try {
      const whole = await runTrain(["--out", `${dir}/whole`, ...args]);
      assert.equal(whole.code, 0, whole.err);
      const wholeDir = `${dir}/whole/${RUN_ID}`;

      // 1. SIGTERM after SFT step 1: a checkpoint, `interrupted`, exit code 143.
      const first = trainProcess("sft:1", ["--out", `${dir}/cut`, ...args]);
      await first.paused;
      first.child.kill("SIGTERM");
      const r1 = await first.done;
      assert.equal(r1.status.code, 143, r1.err);
      assert.equal(r1.status.signal, null, "trainMain exits by itself");
      const cut = (await listDir(`${dir}/cut`))[0];
      const runDir = `${dir}/cut/${cut}`;
      assert.match(r1.err, new RegExp(`--resume ${runDir}`));
      let state = await readJson(`${runDir}/${RUN_FILES.pipeline}`);
      assert.equal(state.status, "interrupted");
      assert.deepEqual(state.current, {
        phase: "sft",
        step: 1,
        checkpoint: `${runDir}/checkpoints/sft/step-1`,
      });
      assert.ok((await Deno.stat(`${runDir}/checkpoints/sft/step-1/state.json`)).isFile);

      // 2. Resumed, then killed (SIGKILL) after SFT step 3: the last checkpoint is step 2.
      const second = trainProcess("sft:3", ["--resume", runDir]);
      await second.paused;
      second.child.kill("SIGKILL");
      assert.equal((await second.done).status.signal, "SIGKILL");
      state = await readJson(`${runDir}/${RUN_FILES.pipeline}`);
      assert.deepEqual(state.current, {
        phase: "sft",
        step: 2,
        checkpoint: `${runDir}/checkpoints/sft/step-2`,
      });
      const key = (m: Record<string, unknown>) => `${m.phase} ${m.step}`;
      assert.deepEqual(
        (await readJsonl(`${runDir}/${RUN_FILES.metrics}`)).map(key),
        ["sft 1", "sft 2", "sft 3"],
        "a row past the checkpoint (else the kill would test nothing)",
      );

      // 3. Resumed, SIGTERM after GRPO step 2 (the first step with a learning rate above 0, so
      // the policy has left the KL reference).
      const third = trainProcess("grpo:2", ["--resume", runDir]);
      await third.paused;
      third.child.kill("SIGTERM");
      const r3 = await third.done;
      assert.equal(r3.status.code, 143, r3.err);
      state = await readJson(`${runDir}/${RUN_FILES.pipeline}`);
      assert.equal(state.status, "interrupted");
      assert.deepEqual(state.current, {
        phase: "grpo",
        step: 2,
        checkpoint: `${runDir}/checkpoints/grpo/step-2`,
      });

      // 4. Resumed to the end.
      const last = await runTrain(["--resume", runDir]);
      assert.equal(last.code, 0, last.err);
      assert.equal((await readJson(`${runDir}/${RUN_FILES.pipeline}`)).status, "completed");

      // Each (phase, step) once; every computed value, every sample and the evaluations equal
      // the uninterrupted run's; the final weights are the same bytes.
      const expected = await readJsonl(`${wholeDir}/${RUN_FILES.metrics}`);
      const resumed = await readJsonl(`${runDir}/${RUN_FILES.metrics}`);
      assert.deepEqual(resumed.map(key), [
        "sft 1",
        "sft 2",
        "sft 3",
        "grpo 1",
        "grpo 2",
        "grpo 3",
      ]);
      assert.deepEqual(computedMetrics(resumed), computedMetrics(expected));
      const samples = await readJsonl(`${runDir}/${RUN_FILES.samples}`);
      assert.equal(new Set(samples.map(key)).size, samples.length, samples.map(key).join());
      assert.deepEqual(samples, await readJsonl(`${wholeDir}/${RUN_FILES.samples}`));
      assert.deepEqual(
        await readJson(`${runDir}/${RUN_FILES.evals}`),
        await readJson(`${wholeDir}/${RUN_FILES.evals}`),
      );
      const params = "checkpoints/grpo/step-3/params.safetensors";
      assert.deepEqual(
        await Deno.readFile(`${runDir}/${params}`),
        await Deno.readFile(`${wholeDir}/${params}`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
