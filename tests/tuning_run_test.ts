import assert from "node:assert/strict";
import { parseEvalArgs } from "../cli/eval.ts";
import { parseGenerateArgs } from "../cli/generate.ts";
import { parseTrainArgs, trainMain } from "../cli/train.ts";
import { parseWorkerArgs } from "../cli/worker.ts";
import { Gpu } from "../kernels/gpu.ts";
import { Tuner, tuningForAdapter, type TuningJob } from "../kernels/tuning.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import type { Trainable } from "../model/trainable.ts";
import { MetricsLogger } from "../rl/metrics.ts";
import type { AdamW } from "../rl/optimizer.ts";
import { resolveTrainConfig } from "../rl/presets.ts";
import { ProgressReporter } from "../rl/progress.ts";
import {
  progressLines,
  type TrainEvent,
  tuneKernels,
  type TuningEvent,
} from "../rl/train_events.ts";
import { runTrainingLoop } from "../rl/train_loop.ts";
import type { PhaseContext } from "../rl/pipeline.ts";

const device = { sync: () => Promise.resolve() };
const times: Record<string, number> = { table: 2, fast: 1 };
const timer = { time: (run: { id: string }) => Promise.resolve(times[run.id]) };

function job(shapeClass: string): TuningJob {
  return {
    family: "matmul",
    shapeClass,
    candidates: ["table", "fast"],
    prepare: () => ({ launch: () => {}, dispose: () => {} }),
  };
}

Deno.test("runTrainingLoop() tunes after the step that queued jobs; later steps run the tuned choice", async () => {
  const tuner = new Tuner("cached", { device, timer });
  const events: TrainEvent[] = [];
  const ran: string[] = [];
  const gpu = {
    tuner,
    memory: () => ({
      allocatedBytes: 0,
      peakAllocatedBytes: 0,
      inUseBytes: 0,
      peakInUseBytes: 0,
      buffers: 0,
    }),
  };
  const ctx: PhaseContext = {
    phase: "sft",
    config: resolveTrainConfig({ preset: "demo" }),
    runDir: "memory",
    logger: new MetricsLogger({ append: () => Promise.resolve() }),
    signal: new AbortController().signal,
    resumeFrom: null,
    weightsFrom: null,
    createProgress: () => ({
      update: (step) => events.push({ type: "message", text: `step ${step}` }),
      finish: () => {},
    }),
    refreshReport: () => {},
    addSample: () => Promise.resolve(),
    saveCheckpoint: () => Promise.resolve("checkpoint"),
    loadCheckpoint: () => Promise.reject(new Error("not used")),
    writeExport: () => Promise.reject(new Error("not used")),
    emit: (e) => events.push(e),
  };
  const result = await runTrainingLoop(ctx, {
    model: { gpu } as unknown as Gemma3,
    params: { params: [], dispose: () => {} } as unknown as Trainable,
    optimizer: { state: () => Promise.resolve({}), dispose: () => {} } as unknown as AdamW,
    total: 3,
    start: 0,
    stepOf: (units) => units,
    run: () => {
      ran.push(tuner.choose(job("nt:m16:n64:k64")));
      return Promise.resolve({
        metrics: { loss: 1 },
        progress: {},
        samples: () => Promise.resolve([]),
      });
    },
    dataPosition: () => null,
    shape: { rows: 1, seqLen: 1, newTokens: 0 },
    onStep: () => {},
  });
  assert.equal(result.status, "completed");
  assert.deepEqual(ran, ["table", "fast", "fast"]);
  const lines = events.map((e) =>
    e.type === "tuning"
      ? `${e.stage} ${e.done}/${e.total} ${e.job ?? ""}`.trim()
      : e.type === "message"
      ? e.text
      : e.type
  );
  assert.deepEqual(lines, [
    "start 0/1",
    "job 1/1 matmul nt:m16:n64:k64",
    "end 1/1",
    "step 1",
    "step 2",
    "step 3",
  ]);
  const end = events[2] as TuningEvent;
  assert.equal(end.report?.candidatesTimed, 2);
});

Deno.test("tuneKernels() reports nothing when nothing is queued; progressLines() draws one tuning line", async () => {
  const tuner = new Tuner("full", { device, timer });
  const events: TuningEvent[] = [];
  assert.equal(await tuneKernels({ tuner }, (e) => events.push(e)), null);
  assert.deepEqual(events, []);

  let out = "";
  const draw = progressLines((o) =>
    new ProgressReporter({ write: (t) => (out += t) }, {
      ...o,
      interactive: true,
      clock: () => 0,
    })
  );
  draw({ type: "progress-start", phase: "sft", total: 4, startStep: 0 });
  draw({ type: "step", phase: "sft", step: 1, total: 4, values: { loss: 2 } });
  tuner.choose(job("nt:m1:n2048:k1152"));
  tuner.choose({ ...job("tn:m64:n64:k16"), family: "matmulTransA" });
  const report = await tuneKernels({ tuner }, draw);
  assert.equal(report?.jobs, 2);
  const sft = "sft [#####---------------] 1/4  25% | elapsed 0:00:00 | ETA -:--:-- | loss 2";
  const head = "tuning kernels 2/2 100% | elapsed 0:00:00 | ETA 0:00:00";
  const second = `${head} | kernel matmulTransA tn:m64:n64:k16`;
  const last = `${head} | variants 4 | switched 2`;
  assert.equal(
    out,
    `\r${sft}` +
      `\r${" ".repeat(sft.length)}\r` + // the phase's line is cleared for the tuning line
      "\rtuning kernels 1/2  50% | elapsed 0:00:00 | ETA -:--:-- | kernel matmul nt:m1:n2048:k1152" +
      `\r${second}` +
      `\r${last}${" ".repeat(second.length - last.length)}\n`,
  );
});

Deno.test("--tuning: train, eval, generate and worker take off | cached | full; default by adapter", async () => {
  assert.equal(parseTrainArgs([])?.tuning, null);
  assert.equal(parseTrainArgs(["--tuning", "full"])?.tuning, "full");
  assert.equal(parseTrainArgs(["--resume", "runs/x", "--tuning", "off"])?.tuning, "off");
  const gen = ["--model", "m", "--prompt", "Hi"];
  assert.equal(parseGenerateArgs([...gen, "--tuning", "cached"])?.tuning, "cached");
  assert.equal(parseGenerateArgs(gen)?.tuning, null);
  const evalArgs = parseEvalArgs(["--model", "m", "--tuning", "full"]);
  assert.equal(evalArgs?.tuning, "full");
  assert.deepEqual(evalArgs?.explicit, []); // not an evaluation setting
  assert.equal(parseEvalArgs(["--model", "m"])?.tuning, null);
  assert.throws(() => parseEvalArgs(["--model", "m", "--tuning", "fast"]), /got "fast"/);
  const worker = ["--broker", "nats://127.0.0.1:4222", "--tuning", "off"];
  assert.equal(parseWorkerArgs(worker, {})?.tuning, "off");
  const bad = /--tuning must be off, cached or full, got "fast"/;
  assert.throws(() => parseTrainArgs(["--tuning", "fast"]), bad);
  assert.throws(() => parseGenerateArgs([...gen, "--tuning", "fast"]), bad);
  assert.throws(() => parseWorkerArgs([...worker.slice(0, 2), "--tuning", "on"], {}), /got "on"/);
  const help: string[] = [];
  assert.equal(await trainMain(["--help"], { out: (l) => help.push(l) }), 0);
  assert.match(help.join("\n"), /--tuning MODE +kernel autotuning: off \| cached \| full/);

  // Without --tuning: cached on a GPU, off on a software adapter (whose table was measured).
  assert.equal(tuningForAdapter({ isFallbackAdapter: false }), "cached");
  assert.equal(tuningForAdapter({ isFallbackAdapter: true }), "off");
  const gpu = await Gpu.create({ tuning: tuningForAdapter });
  try {
    assert.equal(gpu.tuner.mode, gpu.adapter.isFallbackAdapter ? "off" : "cached");
  } finally {
    gpu.destroy();
  }
});
