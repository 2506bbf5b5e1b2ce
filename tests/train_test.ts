/**
 * `train()`: the runtime-neutral one (`rl/train.ts`) runs a shortened demo in a
 * `MemoryRunStore` with every Deno file API disabled, stops on abort with a checkpoint and
 * resumes to the same result; the Deno one (`rl/train_fs.ts`) writes `config.json` into a new
 * run folder and refuses to resume a folder with another config.
 *
 * @module
 */

import assert from "node:assert/strict";
import { FieldError } from "../base/field_error.ts";
import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
import type { MetricsRecord } from "../rl/metrics.ts";
import type { PhaseSet } from "../rl/pipeline.ts";
import { loadRunConfig, RUN_FILES } from "../rl/pipeline_fs.ts";
import { resolveTrainConfig } from "../rl/presets.ts";
import { MemoryRunStore } from "../rl/run_store.ts";
import { train } from "../rl/train.ts";
import { TrainConfigError } from "../rl/train_config.ts";
import type { TrainEvent } from "../rl/train_events.ts";
import { train as trainInFolder } from "../rl/train_fs.ts";
import { TINY_TRAIN_SETS, trainUntil } from "./_train_worker.ts";

/** A few steps per phase, small enough for a CPU adapter. */
const TINY = TINY_TRAIN_SETS;

/** Deno's file APIs, replaced by throwing stubs while `fn` runs. */
const FILE_APIS = [
  "open",
  "readFile",
  "readTextFile",
  "writeFile",
  "writeTextFile",
  "mkdir",
  "stat",
  "lstat",
  "readDir",
  "remove",
  "rename",
  "makeTempDir",
  "makeTempFile",
] as const;

async function withoutDisk<T>(fn: () => Promise<T>): Promise<T> {
  const deno = Deno as unknown as Record<string, unknown>;
  const saved = FILE_APIS.map((name) => deno[name]);
  for (const name of FILE_APIS) {
    deno[name] = () => {
      throw new Error(`Deno.${name} was called during a MemoryRunStore run`);
    };
  }
  try {
    return await fn();
  } finally {
    FILE_APIS.forEach((name, i) => deno[name] = saved[i]);
  }
}

const stepMetrics = (records: readonly MetricsRecord[]) =>
  records.filter((r) => r.phase === "sft" || r.phase === "grpo").map((r) => {
    const { time: _t, step_seconds: _s, tokens_per_second: _r, ...rest } = r;
    const { rollout_seconds: _ro, train_seconds: _tr, ...timed } = rest;
    // GPU bytes are measurements, like the times: a resumed process holds other buffers
    const { gpu_bytes_in_use: _u, gpu_bytes_allocated: _a, gpu_bytes_peak: _p, ...kept } = timed;
    return kept;
  });

Deno.test({
  name: "train() runs the demo in a MemoryRunStore without touching the disk",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tokenizer = await loadDefaultTokenizer();
    const config = resolveTrainConfig({ preset: "demo", sets: TINY });
    const store = new MemoryRunStore("mem");
    const events: TrainEvent[] = [];
    const result = await withoutDisk(() =>
      train(config, { store, tokenizer, onEvent: (e) => events.push(e) })
    );
    assert.equal(result.status, "completed");
    assert.equal(result.runDir, "mem");
    assert.deepEqual(Object.keys(result.eval), ["base", "sft", "grpo"]);
    assert.deepEqual(store.evals, result.eval);
    for (const e of Object.values(result.eval)) assert.equal(e.n, 2);
    assert.equal(result.state.status, "completed");
    assert.ok(store.vocabMap !== null, "the demo vocabulary is kept in the store");
    assert.ok(store.report?.startsWith("<!DOCTYPE html>"));
    // keep = 2 per phase: SFT saved 2 and 3, GRPO 2 (the final one).
    assert.deepEqual([...store.checkpoints.keys()].sort(), [
      "mem/checkpoints/grpo/step-2",
      "mem/checkpoints/sft/step-2",
      "mem/checkpoints/sft/step-3",
    ]);
    assert.equal(result.state.outputs.sft?.checkpoint, "mem/checkpoints/sft/step-3");

    // Events: every phase starts and ends, progress counts run to their totals, every logged
    // metrics record and every sample is reported, and each checkpoint.
    const of = <K extends TrainEvent["type"]>(type: K) =>
      events.filter((e): e is Extract<TrainEvent, { type: K }> => e.type === type);
    assert.deepEqual(of("phase-start").map((e) => e.phase), result.state.phases);
    assert.deepEqual(of("phase-end").map((e) => `${e.phase} ${e.status}`), [
      "base-eval completed",
      "sft completed",
      "sft-eval completed",
      "grpo completed",
      "grpo-eval completed",
    ]);
    const sftSteps = of("step").filter((e) => e.phase === "sft");
    assert.deepEqual(sftSteps.map((e) => `${e.step}/${e.total}`), ["1/3", "2/3", "3/3"]);
    assert.ok(Number.isFinite(sftSteps[0].values.loss));
    assert.deepEqual(of("metrics").map((e) => e.record), await store.readMetrics());
    assert.deepEqual(of("sample").map((e) => e.sample), store.samples);
    assert.deepEqual(of("checkpoint").map((e) => `${e.phase} ${e.step}`), [
      "sft 2",
      "sft 3",
      "grpo 2",
    ]);
    assert.ok(of("message").some((e) => e.text === "sft: starting"));
  },
});

Deno.test({
  name:
    "train() stopped by its signal saves a checkpoint; a second call resumes to the same result",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tokenizer = await loadDefaultTokenizer();
    const config = resolveTrainConfig({ preset: "demo", sets: [...TINY, "eval.base=false"] });
    const whole = new MemoryRunStore();
    const expected = await train(config, { store: whole, tokenizer });

    const store = new MemoryRunStore();
    const first = await trainUntil(config, { store, tokenizer }, "sft", 1);
    assert.equal(first.status, "interrupted");
    assert.deepEqual(first.state.current, {
      phase: "sft",
      step: 1,
      checkpoint: "memory/checkpoints/sft/step-1",
    });
    assert.deepEqual(Object.keys(first.eval), []);

    const second = await train(config, { store, tokenizer });
    assert.equal(second.status, "completed");
    assert.deepEqual(second.eval, expected.eval);
    assert.deepEqual(
      stepMetrics(await store.readMetrics()),
      stepMetrics(await whole.readMetrics()),
    );
  },
});

Deno.test("train() without a store names the missing option", async () => {
  const config = resolveTrainConfig({ preset: "demo" });
  for (const options of [{}, { runDir: "runs/x" }]) {
    const e = await train(config, options).catch((e) => e);
    assert.ok(e instanceof FieldError, String(e));
    assert.match(e.message, /options\.store/);
  }
});

Deno.test("train() from mod.ts saves config.json in a new folder and refuses another config", async () => {
  const dir = await Deno.makeTempDir({ prefix: "webtune_train_fs_" });
  const noPhases = (): PhaseSet => ({});
  try {
    const config = resolveTrainConfig({
      preset: "demo",
      sets: ["eval.base=false", "sft.enabled=false", "grpo.enabled=false"],
    });
    const runDir = `${dir}/run`;
    const result = await trainInFolder(config, { runDir, phases: noPhases });
    assert.equal(result.status, "completed");
    assert.equal(result.runDir, runDir);
    assert.deepEqual(await loadRunConfig(runDir), config);
    assert.ok((await Deno.stat(`${runDir}/${RUN_FILES.pipeline}`)).isFile);
    // The same config resumes (here: nothing left to do); another one is refused.
    assert.equal((await trainInFolder(config, { runDir, phases: noPhases })).status, "completed");
    const other = resolveTrainConfig({
      preset: "demo",
      sets: ["eval.base=false", "sft.enabled=false", "grpo.enabled=false", "run.seed=7"],
    });
    const e = await trainInFolder(other, { runDir, phases: noPhases }).catch((e) => e);
    assert.ok(e instanceof TrainConfigError, String(e));
    assert.equal(e.field, "run.seed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
