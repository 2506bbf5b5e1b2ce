/**
 * Resume test: 6 SFT steps in one go vs 3 steps, checkpoint, a NEW PROCESS that restores
 * parameters, optimizer state and data position and trains 3 more steps → bit-identical
 * trainable parameters and optimizer moments. Full-parameter training of a tiny model and LoRA
 * training on the fixture model, both with gradient accumulation (2 micro-batches per step),
 * a warmup-cosine learning rate, weight decay and clipping.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { BatchSamplerState } from "../data/batch_sampler.ts";
import { loadCheckpoint } from "../rl/checkpoint_fs.ts";
import { checkpointDirName } from "../rl/checkpoint.ts";
import type { AdamWState } from "../rl/optimizer.ts";
import { createRun, type ResumeMode, saveRun, trainSteps } from "./_resume_worker.ts";
import { testGpu } from "./_helpers.ts";

const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url).pathname;
const WORKER = new URL("./_resume_worker.ts", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;

interface Snapshot {
  readonly params: Map<string, Float32Array>;
  readonly optimizer: AdamWState;
  readonly dataPosition: BatchSamplerState;
}

/** Counts differing float32 bit patterns (so −0 ≠ 0 and NaN payloads count). */
function bitDiffs(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let n = 0;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) n++;
  return n;
}

function assertBitIdentical(got: Snapshot, want: Snapshot, what: string): void {
  assert.deepEqual([...got.params.keys()], [...want.params.keys()], `${what}: parameter names`);
  for (const [name, w] of want.params) {
    const d = bitDiffs(got.params.get(name)!, w);
    assert.equal(d, 0, `${what}: ${name} differs in ${d} of ${w.length} values`);
  }
  assert.equal(got.optimizer.stepCount, want.optimizer.stepCount, `${what}: optimizer count`);
  for (const [name, mv] of want.optimizer.moments) {
    const g = got.optimizer.moments.get(name);
    assert.ok(g, `${what}: no moments for ${name}`);
    assert.equal(bitDiffs(g.m, mv.m), 0, `${what}: first moment of ${name} differs`);
    assert.equal(bitDiffs(g.v, mv.v), 0, `${what}: second moment of ${name} differs`);
  }
  assert.deepEqual({ ...got.dataPosition }, { ...want.dataPosition }, `${what}: data position`);
}

async function resumeCase(mode: ResumeMode): Promise<void> {
  const gpu = await testGpu();
  const dir = await Deno.makeTempDir({ prefix: `webtune_resume_${mode}_` });
  try {
    // 1. Six steps straight.
    const straight = await createRun(gpu, mode, { seed: 3, fixture: FIXTURE });
    const losses = await trainSteps(straight, 6);
    const params = new Map<string, Float32Array>();
    for (const [name, t] of straight.trainable.params) {
      params.set(name, (await t.read()) as Float32Array);
    }
    const want: Snapshot = {
      params,
      optimizer: await straight.optimizer.state(),
      dataPosition: straight.batches.state(),
    };
    straight.dispose();
    assert.equal(want.optimizer.stepCount, 6);
    assert.ok(losses.every(Number.isFinite), `losses ${losses}`);

    // 2. Three steps, checkpoint.
    const first = await createRun(gpu, mode, { seed: 3, fixture: FIXTURE });
    await trainSteps(first, 3);
    const ckpt = await saveRun(first, `${dir}/first`);
    const halfway = first.trainable.params.values().next().value!;
    const sample = (await halfway.read()) as Float32Array;
    first.dispose();
    assert.ok(
      bitDiffs(sample, params.values().next().value!) > 0,
      "steps 4..6 changed nothing: the comparison would be vacuous",
    );

    // 3. New process: restore, three more steps, checkpoint.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", WORKER, mode, ckpt, `${dir}/second`, "3", FIXTURE],
      cwd: REPO,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    assert.equal(
      out.code,
      0,
      `worker failed:\n${text.decode(out.stdout)}\n${text.decode(out.stderr)}`,
    );

    const resumed = await loadCheckpoint(`${dir}/second/${checkpointDirName(6)}`);
    assert.equal(resumed.step, 6);
    const got: Snapshot = {
      params: new Map([...resumed.params].map(([n, t]) => [n, t.data])),
      optimizer: resumed.optimizerState!,
      dataPosition: resumed.dataPosition as unknown as BatchSamplerState,
    };
    assertBitIdentical(got, want, mode);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("SftTrainer full-parameter run resumed in a new process is bit-identical to 6 straight steps", async () => {
  await resumeCase("full");
});

Deno.test("SftTrainer LoRA run on the fixture resumed in a new process is bit-identical to 6 straight steps", async () => {
  await resumeCase("lora");
});
