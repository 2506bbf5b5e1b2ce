import assert from "node:assert/strict";
import { type StopSignal, trainMain } from "../cli/train.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { MetricsLogger } from "../rl/metrics.ts";
import {
  type Phase,
  type PhaseContext,
  type PhaseResult,
  type PhaseSet,
  runPipeline,
} from "../rl/pipeline.ts";
import {
  createRunDir,
  FsRunStore,
  loadRunConfig,
  MissingInputError,
  RUN_FILES,
  runFolderName,
} from "../rl/pipeline_fs.ts";
import { MemoryRunStore } from "../rl/run_store.ts";
import { resolveModelDir } from "../rl/train_config_fs.ts";
import {
  keptOnResume,
  newPipelineState,
  type PhaseName,
  PipelineError,
  type PipelineState,
  plannedPhases,
} from "../rl/pipeline_state.ts";
import { resolveTrainConfig } from "../rl/presets.ts";
import { ProgressReporter } from "../rl/progress.ts";
import type { TrainConfig } from "../rl/train_config.ts";

const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url).pathname;

/** What the fake phases saw, per phase. */
interface Seen {
  readonly runs: PhaseName[];
  readonly contexts: Map<PhaseName, PhaseContext>;
}

const EVALS: Record<string, { accuracy: number; partialAccuracy: number; formatAccuracy: number }> =
  {
    "base-eval": { accuracy: 0, partialAccuracy: 0.04, formatAccuracy: 0 },
    "sft-eval": { accuracy: 0.3, partialAccuracy: 0.4, formatAccuracy: 0.9 },
    "grpo-eval": { accuracy: 0.5, partialAccuracy: 0.6, formatAccuracy: 0.95 },
  };

interface FakeOptions {
  /** Steps of each training phase. */
  readonly steps?: number;
  /** Calls this after step `n` of phase `phase` (e.g. to simulate Ctrl-C). */
  readonly after?: { phase: PhaseName; step: number; action: () => void };
  /** This phase throws at this step. */
  readonly crash?: { phase: PhaseName; step: number };
}

/** A one-value f32 parameter the stores can checkpoint without a GPU. */
function hostParam(value: number): Tensor {
  const read = () => Promise.resolve(new Float32Array([value]));
  return { dtype: "f32", shape: [1], numel: 1, read } as unknown as Tensor;
}

/** Saves a checkpoint whose one parameter holds the step. */
function saveStep(ctx: PhaseContext, step: number): Promise<string> {
  return ctx.saveCheckpoint({ step, params: new Map([["w", hostParam(step)]]) });
}

/** Fake phases: training ones log a loss per step, checkpoint every 2 steps, honour the signal. */
function fakePhases(seen: Seen, options: FakeOptions = {}): PhaseSet {
  const steps = options.steps ?? 5;
  const training = (phase: PhaseName): Phase => ({
    async run(ctx: PhaseContext): Promise<PhaseResult> {
      seen.runs.push(phase);
      seen.contexts.set(phase, ctx);
      const bar = ctx.createProgress(steps, ctx.resumeFrom?.step ?? 0);
      let checkpoint = ctx.resumeFrom?.checkpoint ?? null;
      for (let step = (ctx.resumeFrom?.step ?? 0) + 1; step <= steps; step++) {
        if (options.crash?.phase === phase && options.crash.step === step) {
          throw new Error(`boom at ${phase} step ${step}`);
        }
        await ctx.logger.log(phase, step, { loss: 1 / step, lr: 1e-3 });
        bar.update(step, { loss: 1 / step });
        if (step % 2 === 0) {
          checkpoint = await saveStep(ctx, step);
          await ctx.addSample({ step, prompt: `q${step}`, completion: `<answer>${step}</answer>` });
        }
        if (options.after?.phase === phase && options.after.step === step) options.after.action();
        if (ctx.signal.aborted) {
          checkpoint = await saveStep(ctx, step);
          return { status: "interrupted", step, checkpoint };
        }
      }
      bar.finish();
      return { status: "completed", step: steps, checkpoint: await saveStep(ctx, steps) };
    },
  });
  const evaluation = (phase: PhaseName): Phase => ({
    run(ctx: PhaseContext): Promise<PhaseResult> {
      seen.runs.push(phase);
      seen.contexts.set(phase, ctx);
      const n = ctx.config.eval.numQuestions;
      // An EvalSummary carries more fields than eval.json keeps.
      const summary = { ...EVALS[phase], n, passes: 1, numCorrect: 0, numPartial: 0 };
      return Promise.resolve({
        status: "completed",
        step: n,
        checkpoint: null,
        eval: { ...summary, numFormatted: 0 },
      });
    },
  });
  return {
    "base-eval": evaluation("base-eval"),
    sft: training("sft"),
    "sft-eval": evaluation("sft-eval"),
    grpo: training("grpo"),
    "grpo-eval": evaluation("grpo-eval"),
  };
}

function newSeen(): Seen {
  return { runs: [], contexts: new Map() };
}

function demoConfig(sets: string[] = []): TrainConfig {
  return resolveTrainConfig({ preset: "demo", sets: ["eval.numQuestions=20", ...sets] });
}

async function withFsStore<T>(fn: (store: FsRunStore) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "webtune_pipeline_" });
  const store = await FsRunStore.open(dir);
  try {
    return await fn(store);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(path));
}

Deno.test("runPipeline() runs every phase and writes eval.json, pipeline.json, report", async () => {
  await withFsStore(async (store) => {
    const seen = newSeen();
    const config = demoConfig();
    const state = await runPipeline({
      config,
      phases: fakePhases(seen),
      store,
      logger: new MetricsLogger(store.metricsSink, { clock: null }),
    });
    assert.deepEqual(seen.runs, ["base-eval", "sft", "sft-eval", "grpo", "grpo-eval"]);
    assert.equal(state.status, "completed");
    const evals = await readJson(`${store.runDir}/${RUN_FILES.evals}`);
    assert.deepEqual(evals, {
      base: { ...EVALS["base-eval"], n: 20 },
      sft: { ...EVALS["sft-eval"], n: 20 },
      grpo: { ...EVALS["grpo-eval"], n: 20 },
    });
    assert.deepEqual(Object.keys(evals), ["base", "sft", "grpo"]);
    const saved = await readJson(`${store.runDir}/${RUN_FILES.pipeline}`);
    assert.equal(saved.status, "completed");
    assert.deepEqual(saved.completed, seen.runs);
    assert.equal(saved.current, null);
    const html = await Deno.readTextFile(`${store.runDir}/${RUN_FILES.report}`);
    assert.match(html, /^<!DOCTYPE html>/);
    assert.ok(html.includes("&lt;answer&gt;4&lt;/answer&gt;"), "samples in the report");
    assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html), "self-contained");
    const metrics = (await Deno.readTextFile(`${store.runDir}/${RUN_FILES.metrics}`)).trim()
      .split("\n");
    assert.equal(metrics.length, 10); // 5 SFT + 5 GRPO steps
    assert.deepEqual(JSON.parse(metrics[0]), { phase: "sft", step: 1, loss: 1, lr: 1e-3 });
    const samples = (await store.readSamples()).map((s) => `${s.phase}:${s.step}`);
    assert.deepEqual(samples, ["sft:2", "sft:4", "grpo:2", "grpo:4"]);
    // Each phase starts from the last finished training phase's final checkpoint.
    const from = (p: PhaseName) => seen.contexts.get(p)!.weightsFrom;
    const ck = (p: string) => `${store.runDir}/checkpoints/${p}/step-5`;
    assert.deepEqual(
      [from("base-eval"), from("sft"), from("sft-eval"), from("grpo"), from("grpo-eval")],
      [null, null, ck("sft"), ck("sft"), ck("grpo")],
    );
    // Checkpoints go through the store into <runDir>/checkpoints/<phase>/step-N.
    assert.ok((await Deno.stat(`${ck("sft")}/state.json`)).isFile);
    const final = await seen.contexts.get("grpo-eval")!.loadCheckpoint(ck("grpo"));
    assert.deepEqual([final.step, ...final.params.get("w")!.data], [5, 5]);
    assert.equal(seen.contexts.get("sft")!.resumeFrom, null);
  });
});

Deno.test("runPipeline() runs only the enabled phases; eval.json holds those that ran", async () => {
  const config = demoConfig(["sft.enabled=false", "eval.base=false"]);
  assert.deepEqual(plannedPhases(config), ["grpo", "grpo-eval"]);
  const store = new MemoryRunStore();
  const seen = newSeen();
  const state = await runPipeline({
    config,
    phases: fakePhases(seen),
    store,
    logger: new MetricsLogger(store.metrics),
  });
  assert.deepEqual(seen.runs, ["grpo", "grpo-eval"]);
  assert.equal(state.status, "completed");
  assert.deepEqual(Object.keys(store.evals!), ["grpo"]);
  assert.equal(seen.contexts.get("grpo")!.weightsFrom, null);
  assert.ok(store.report!.includes("grpo"));
});

Deno.test("runPipeline() stops on abort: pipeline.json says interrupted at phase/step", async () => {
  await withFsStore(async (store) => {
    const controller = new AbortController();
    const seen = newSeen();
    const state = await runPipeline({
      config: demoConfig(),
      phases: fakePhases(seen, {
        after: { phase: "sft", step: 3, action: () => controller.abort() },
      }),
      store,
      logger: new MetricsLogger(store.metricsSink),
      signal: controller.signal,
    });
    assert.deepEqual(seen.runs, ["base-eval", "sft"]);
    assert.equal(state.status, "interrupted");
    const saved = await readJson(`${store.runDir}/${RUN_FILES.pipeline}`);
    assert.equal(saved.status, "interrupted");
    assert.deepEqual(saved.current, {
      phase: "sft",
      step: 3,
      checkpoint: `${store.runDir}/checkpoints/sft/step-3`,
    });
    assert.deepEqual(saved.completed, ["base-eval"]);
    assert.deepEqual(Object.keys(await readJson(`${store.runDir}/${RUN_FILES.evals}`)), ["base"]);
    assert.ok((await Deno.stat(`${store.runDir}/${RUN_FILES.report}`)).isFile);
    assert.equal((await store.loadCheckpoint(`${store.runDir}/checkpoints/sft/step-3`)).step, 3);

    // Resume: base-eval is not run again; sft continues from step 3 and its checkpoint.
    const again = newSeen();
    const resumed = await runPipeline({
      config: demoConfig(),
      phases: fakePhases(again),
      store,
      logger: new MetricsLogger(store.metricsSink),
    });
    assert.deepEqual(again.runs, ["sft", "sft-eval", "grpo", "grpo-eval"]);
    assert.deepEqual(again.contexts.get("sft")!.resumeFrom, {
      step: 3,
      checkpoint: `${store.runDir}/checkpoints/sft/step-3`,
    });
    assert.equal(again.contexts.get("grpo")!.resumeFrom, null);
    assert.equal(resumed.status, "completed");
    assert.deepEqual(Object.keys(await readJson(`${store.runDir}/${RUN_FILES.evals}`)), [
      "base",
      "sft",
      "grpo",
    ]);
    const steps = (await store.readMetrics()).filter((r) => r.phase === "sft").map((r) => r.step);
    assert.deepEqual(steps, [1, 2, 3, 4, 5]);
  });
});

Deno.test("runPipeline() aborted between phases resumes at the next phase's step 0", async () => {
  const store = new MemoryRunStore();
  const controller = new AbortController();
  const phases = fakePhases(newSeen());
  const state = await runPipeline({
    config: demoConfig(),
    phases: {
      ...phases,
      "base-eval": {
        run: async (ctx) => {
          const r = await phases["base-eval"]!.run(ctx);
          controller.abort();
          return r;
        },
      },
    },
    store,
    logger: new MetricsLogger(store.metrics),
    signal: controller.signal,
  });
  assert.equal(state.status, "interrupted");
  assert.deepEqual(state.current, { phase: "sft", step: 0, checkpoint: null });
  assert.deepEqual(state.completed, ["base-eval"]);
});

Deno.test("runPipeline() records a crash, keeps the report, resumes from the last checkpoint", async () => {
  const store = new MemoryRunStore();
  await assert.rejects(
    runPipeline({
      config: demoConfig(),
      phases: fakePhases(newSeen(), { crash: { phase: "grpo", step: 5 } }),
      store,
      logger: new MetricsLogger(store.metrics),
    }),
    /boom at grpo step 5/,
  );
  const failed = store.state as PipelineState;
  assert.equal(failed.status, "failed");
  assert.match(failed.error!, /^grpo: Error: boom at grpo step 5/);
  assert.deepEqual(failed.current, {
    phase: "grpo",
    step: 4,
    checkpoint: "memory/checkpoints/grpo/step-4",
  });
  assert.ok(store.report!.includes("sft"), "report written after the crash");
  assert.deepEqual(Object.keys(store.evals!), ["base", "sft"]);
  const seen = newSeen();
  const state = await runPipeline({
    config: demoConfig(),
    phases: fakePhases(seen),
    store,
    logger: new MetricsLogger(store.metrics),
  });
  assert.deepEqual(seen.runs, ["grpo", "grpo-eval"]);
  assert.deepEqual(seen.contexts.get("grpo")!.resumeFrom, {
    step: 4,
    checkpoint: "memory/checkpoints/grpo/step-4",
  });
  const kept = await store.loadCheckpoint("memory/checkpoints/grpo/step-4");
  assert.deepEqual([...kept.params.get("w")!.data], [4]);
  assert.equal(state.status, "completed");
  assert.equal(state.error, null);
});

Deno.test("runPipeline() stopped during an evaluation is interrupted, not failed; it runs again", async () => {
  const store = new MemoryRunStore();
  const controller = new AbortController();
  const phases = fakePhases(newSeen());
  const state = await runPipeline({
    config: demoConfig(),
    phases: {
      ...phases,
      // What evaluate() does when the signal fires between two batches.
      "sft-eval": {
        run: (ctx) => {
          controller.abort();
          ctx.signal.throwIfAborted();
          return phases["sft-eval"]!.run(ctx);
        },
      },
    },
    store,
    logger: new MetricsLogger(store.metrics),
    signal: controller.signal,
  });
  assert.equal(state.status, "interrupted");
  assert.equal(state.error, null);
  assert.deepEqual(state.current, { phase: "sft-eval", step: 0, checkpoint: null });
  assert.deepEqual(state.completed, ["base-eval", "sft"]);
  const seen = newSeen();
  const resumed = await runPipeline({
    config: demoConfig(),
    phases: fakePhases(seen),
    store,
    logger: new MetricsLogger(store.metrics),
  });
  assert.deepEqual(seen.runs, ["sft-eval", "grpo", "grpo-eval"]);
  assert.equal(resumed.status, "completed");
});

Deno.test("keptOnResume() keeps finished phases and the resumed phase up to its checkpoint", () => {
  const fresh = newPipelineState(plannedPhases(demoConfig()), new Date(0));
  const key = (r: { phase?: unknown; step?: unknown }) => `${r.phase} ${r.step}`;
  const rows = [
    { phase: "base-eval", step: 0 },
    { phase: "sft", step: 2 },
    { phase: "sft", step: 3 },
    { phase: "sft-eval", step: 0 },
    { phase: "grpo", step: 1 },
    { phase: "not-a-phase", step: 9 },
  ];
  const inSft = keptOnResume({
    ...fresh,
    completed: ["base-eval"],
    current: { phase: "sft", step: 2, checkpoint: "runs/a/checkpoints/sft/step-2" },
  });
  assert.deepEqual(rows.filter(inSft).map(key), ["base-eval 0", "sft 2", "not-a-phase 9"]);
  // An evaluation, or a phase without a checkpoint, starts over: none of its rows stay.
  const inEval = keptOnResume({
    ...fresh,
    completed: ["base-eval", "sft"],
    current: { phase: "sft-eval", step: 0, checkpoint: null },
  });
  assert.deepEqual(rows.filter(inEval).map(key), [
    "base-eval 0",
    "sft 2",
    "sft 3",
    "not-a-phase 9",
  ]);
});

Deno.test("runPipeline() resumed after a kill between checkpoints holds each (phase, step) once", async () => {
  await withFsStore(async (store) => {
    // The run dies after logging SFT step 3; its last checkpoint is step 2.
    await assert.rejects(
      runPipeline({
        config: demoConfig(),
        phases: fakePhases(newSeen(), {
          after: {
            phase: "sft",
            step: 3,
            action: () => {
              throw new Error("killed");
            },
          },
        }),
        store,
        logger: new MetricsLogger(store.metricsSink),
      }),
      /killed/,
    );
    // What else a kill -9 can leave: a sample of step 3, rows of a later phase, a cut line.
    const append = (file: string, text: string) =>
      Deno.writeTextFile(`${store.runDir}/${file}`, text, { append: true });
    await append(RUN_FILES.samples, '{"phase":"sft","step":3,"prompt":"q","completion":"c"}\n');
    await append(
      RUN_FILES.samples,
      '{"phase":"sft-eval","step":0,"prompt":"q","completion":"c"}\n',
    );
    await append(RUN_FILES.metrics, '{"phase":"grpo","step":1,"loss":1}\n{"phase":"sft","st');

    const messages: string[] = [];
    const state = await runPipeline({
      config: demoConfig(),
      phases: fakePhases(newSeen()),
      store,
      logger: new MetricsLogger(store.metricsSink),
      onEvent: (e) => e.type === "message" && messages.push(e.text),
    });
    assert.equal(state.status, "completed");
    assert.ok(
      messages.some((m) => m.startsWith("dropped 2 metrics rows and 2 samples")),
      messages.join("\n"),
    );
    const lines = async (file: string) =>
      (await Deno.readTextFile(`${store.runDir}/${file}`)).split("\n").filter((l) => l !== "")
        .map((l) => JSON.parse(l));
    const key = (r: { phase: string; step: number }) => `${r.phase} ${r.step}`;
    assert.deepEqual((await lines(RUN_FILES.metrics)).map(key), [
      ...[1, 2, 3, 4, 5].map((n) => `sft ${n}`),
      ...[1, 2, 3, 4, 5].map((n) => `grpo ${n}`),
    ]);
    assert.deepEqual((await lines(RUN_FILES.samples)).map(key), [
      "sft 2",
      "sft 4",
      "grpo 2",
      "grpo 4",
    ]);
  });
});

Deno.test("runPipeline() rejects a missing phase and an eval phase without a summary", async () => {
  const phases = fakePhases(newSeen());
  const { grpo: _, ...noGrpo } = phases;
  await assert.rejects(
    runPipeline({
      config: demoConfig(),
      phases: noGrpo,
      store: new MemoryRunStore(),
      logger: new MetricsLogger(new MemoryRunStore().metrics),
    }),
    (e) => e instanceof PipelineError && /grpo phase/.test(e.message),
  );
  const store = new MemoryRunStore();
  await assert.rejects(
    runPipeline({
      config: demoConfig(),
      phases: {
        ...phases,
        "base-eval": {
          run: () => Promise.resolve({ status: "completed", step: 1, checkpoint: null }),
        },
      },
      store,
      logger: new MetricsLogger(store.metrics),
    }),
    (e) => e instanceof PipelineError && /no eval summary/.test(e.message),
  );
  assert.equal(store.state!.status, "failed");
});

Deno.test("createRunDir() makes runs/<timestamp>, suffixing a taken name", async () => {
  const out = await Deno.makeTempDir({ prefix: "webtune_runs_" });
  try {
    const t = new Date(Date.UTC(2026, 4, 1, 12, 3, 4));
    assert.equal(runFolderName(t), "2026-05-01T12-03-04");
    const a = await createRunDir(`${out}/runs`, t);
    const b = await createRunDir(`${out}/runs`, t);
    assert.equal(a, `${out}/runs/2026-05-01T12-03-04`);
    assert.equal(b, `${out}/runs/2026-05-01T12-03-04-2`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("resolveModelDir() names a missing or incomplete model folder", async () => {
  const empty = await Deno.makeTempDir();
  try {
    for (const path of [`${empty}/nope`, empty]) {
      const e = await resolveModelDir(path, "google/gemma-3-1b-it").catch((e) => e);
      assert.ok(e instanceof MissingInputError, String(e));
      assert.equal(e.field, "model.path");
      assert.ok(e.message.includes(path) && e.message.includes("huggingface-cli download"));
    }
    // A hub cache root resolves to the snapshot that refs/main names.
    const snap = `${empty}/models--google--gemma-3-1b-it/snapshots/abc123`;
    await Deno.mkdir(snap, { recursive: true });
    await Deno.mkdir(`${empty}/models--google--gemma-3-1b-it/refs`);
    await Deno.writeTextFile(`${empty}/models--google--gemma-3-1b-it/refs/main`, "abc123\n");
    await Deno.writeTextFile(`${snap}/config.json`, "{}");
    await Deno.writeTextFile(`${snap}/model.safetensors`, "");
    assert.equal(await resolveModelDir(empty, "google/gemma-3-1b-it"), snap);
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function runCli(
  args: string[],
  phases: () => PhaseSet,
  extra: { hubCache?: string; interrupt?: (fire: (signal: StopSignal) => void) => void } = {},
): Promise<CliRun> {
  const out: string[] = [], err: string[] = [];
  const code = await trainMain(args, {
    env: { HF_HUB_CACHE: extra.hubCache ?? "/nonexistent-hub-cache" },
    phases: () => phases(),
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    onInterrupt: (handler) => {
      extra.interrupt?.(handler);
      return () => {};
    },
    now: () => new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
    progress: (o) => new ProgressReporter({ write: () => {} }, o),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("trainMain() precedence preset < --config < flags < --set, saved in config.json", async () => {
  const dir = await Deno.makeTempDir({ prefix: "webtune_cli_" });
  try {
    await Deno.writeTextFile(
      `${dir}/cfg.json`,
      JSON.stringify({ run: { seed: 5, outDir: `${dir}/from-file` }, grpo: { beta: 0.1 } }),
    );
    const r = await runCli(
      ["--config", `${dir}/cfg.json`, "--out", `${dir}/runs`, "--set", "grpo.beta=0.04"],
      () => fakePhases(newSeen(), { steps: 2 }),
    );
    assert.equal(r.code, 0, r.err);
    const runDir = `${dir}/runs/2026-01-02T03-04-05`;
    const saved = await loadRunConfig(runDir);
    assert.equal(saved.preset, "demo");
    assert.equal(saved.run.seed, 5); // file over preset
    assert.equal(saved.run.outDir, `${dir}/runs`); // --out over file
    assert.equal(saved.grpo.beta, 0.04); // --set over file
    // One line names the preset and the run folder; the config is in config.json, not printed.
    assert.ok(!r.out.includes('"beta"') && !r.err.includes('"beta"'), r.out);
    assert.ok(r.err.includes(`preset demo, run folder ${runDir}`), r.err);
    assert.ok(r.out.includes("grpo  accuracy 50.0 %"), r.out);
    assert.deepEqual(Object.keys(await readJson(`${runDir}/${RUN_FILES.evals}`)), [
      "base",
      "sft",
      "grpo",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trainMain() SIGTERM exits 143, like Ctrl-C 130, with a checkpoint; --resume finishes the run", async () => {
  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    await stopAndResume(signal, code);
  }
});

async function stopAndResume(signal: StopSignal, code: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "webtune_cli_" });
  try {
    let fire: (signal: StopSignal) => void = () => {};
    const first = await runCli(
      ["--out", dir],
      () =>
        fakePhases(newSeen(), { after: { phase: "grpo", step: 1, action: () => fire(signal) } }),
      { interrupt: (h) => (fire = h) },
    );
    assert.equal(first.code, code, first.err);
    assert.match(first.err, new RegExp(`stopping \\(${signal}\\)`));
    const runDir = `${dir}/2026-01-02T03-04-05`;
    assert.match(first.err, new RegExp(`--resume ${runDir}`));
    const state = await readJson(`${runDir}/${RUN_FILES.pipeline}`);
    assert.equal(state.status, "interrupted");
    assert.deepEqual(state.current, {
      phase: "grpo",
      step: 1,
      checkpoint: `${runDir}/checkpoints/grpo/step-1`,
    });
    const seen = newSeen();
    const second = await runCli(["--resume", runDir], () => fakePhases(seen));
    assert.equal(second.code, 0, second.err);
    assert.deepEqual(seen.runs, ["grpo", "grpo-eval"]);
    assert.equal(seen.contexts.get("grpo")!.resumeFrom?.step, 1);
    assert.equal((await readJson(`${runDir}/${RUN_FILES.pipeline}`)).status, "completed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("trainMain() errors name the missing data path, the field and how to get it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "webtune_cli_" });
  try {
    const never = (): PhaseSet => {
      throw new Error("phases must not be built");
    };
    const missingSft = await runCli(
      ["--model", FIXTURE, "--sft-data", `${dir}/ot`, "--data", `${dir}/gsm8k`, "--out", dir],
      never,
    );
    assert.equal(missingSft.code, 2);
    assert.match(missingSft.err, new RegExp(`sft\\.data: ${dir}/ot does not exist`));
    assert.match(missingSft.err, /OpenThoughts-114k/);
    const noSft = await runCli(["--model", FIXTURE, "--data", `${dir}/gsm8k`], never);
    assert.match(noSft.err, /sft\.data is not set: pass --sft-data PATH/);
    const badModel = await runCli(["--model", `${dir}/none`], never);
    assert.equal(badModel.code, 2);
    assert.match(badModel.err, new RegExp(`model folder ${dir}/none does not exist`));
    const badField = await runCli(["--set", "grpo.numGenerations=1"], never);
    assert.equal(badField.code, 2);
    assert.match(badField.err, /grpo\.numGenerations must be >= 2, got 1/);
    const noPreset = await runCli(["--preset", "gemma3-1b-gsm8k"], never);
    assert.match(noPreset.err, /model\.path is not set .* not in the Hugging Face cache/);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no run folder for a failed start");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trainMain() points to a cached Gemma 3 checkpoint when running the demo", async () => {
  const dir = await Deno.makeTempDir({ prefix: "webtune_cli_" });
  try {
    const snap = `${dir}/hub/models--google--gemma-3-1b-it/snapshots/h1`;
    await Deno.mkdir(snap, { recursive: true });
    await Deno.writeTextFile(`${snap}/config.json`, "{}");
    const r = await runCli(["--out", `${dir}/runs`], () => fakePhases(newSeen(), { steps: 1 }), {
      hubCache: `${dir}/hub`,
    });
    assert.equal(r.code, 0, r.err);
    assert.ok(r.err.includes(`--preset gemma3-1b-gsm8k --model ${snap}`), r.err);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
