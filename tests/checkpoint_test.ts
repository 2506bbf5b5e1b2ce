import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { BatchIterator } from "../data/batching.ts";
import {
  CHECKPOINT_OPTIMIZER_FILE,
  CHECKPOINT_PARAMS_FILE,
  CHECKPOINT_STATE_FILE,
  CheckpointError,
  isTemporaryCheckpointDirName,
  momentTensorName,
  parseCheckpointDirName,
  restoreParams,
} from "../rl/checkpoint.ts";
import {
  latestCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  saveCheckpoint,
} from "../rl/checkpoint_fs.ts";
import { openSafetensors } from "../model/safetensors_fs.ts";
import { AdamW } from "../rl/optimizer.ts";
import { randomArray, testGpu } from "./_helpers.ts";
import type { Gpu } from "../kernels/gpu.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "webtune_ckpt_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const SHAPES: [string, number[]][] = [
  ["layers.0.q_proj.lora_A", [4, 64]],
  ["layers.0.q_proj.lora_B", [128, 4]],
  ["norm", [64]],
];

/** Parameters with awkward float bits: −0, a subnormal, huge and tiny values. */
function makeParams(gpu: Gpu, seed: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, shape] of SHAPES) {
    const data = randomArray(shape.reduce((a, b) => a * b, 1), seed++, 0.3);
    data[0] = -0;
    data[1] = 1e-42;
    data[2] = 3.4e38;
    data[3] = Math.fround(1 / 3);
    out.set(name, Tensor.fromArray(gpu, data, shape));
  }
  return out;
}

async function trainSteps(gpu: Gpu, opt: AdamW, params: Map<string, Tensor>, steps: number[]) {
  for (const s of steps) {
    const grads = new Map(
      [...params].map((
        [n, t],
      ) => [n, Tensor.fromArray(gpu, randomArray(t.numel, s * 31), t.shape)]),
    );
    opt.step(grads);
    await opt.finishStep();
    for (const g of grads.values()) g.dispose();
  }
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

async function paramBits(params: Map<string, Tensor>): Promise<Map<string, Uint32Array>> {
  const out = new Map<string, Uint32Array>();
  for (const [n, t] of params) out.set(n, bits((await t.read()) as Float32Array).slice());
  return out;
}

const trainerFields = () => ({
  rng: { seed: 1234, counter: 2 ** 40 + 7, draws: [0.1, 1 / 3] },
  dataPosition: (() => {
    const seqs = [[1, 2], [3], [4, 5, 6]].map((ids) => ({ inputIds: ids, promptLength: 1 }));
    const it = new BatchIterator(seqs, { batchSize: 2, seed: 5, padId: 0 });
    it.next();
    return { ...it.state() };
  })(),
  config: { learningRate: 1e-4, lora: { rank: 4, alpha: 8 }, note: "π ≈ 3.14159" },
  metrics: { loss: 1.25, tokens: 4096 },
  trainerState: { skipsInARow: 0 },
});

Deno.test("saveCheckpoint() → loadCheckpoint() round trip is bit-exact and resumes identically", async () => {
  const gpu = await testGpu();
  await withTempDir(async (dir) => {
    const params = makeParams(gpu, 1);
    const opt = new AdamW(gpu, params, { learningRate: 1e-2, maxGradNorm: 1, weightDecay: 0.1 });
    await trainSteps(gpu, opt, params, [1, 2, 3]);
    const optState = await opt.state();
    const fields = trainerFields();
    const path = await saveCheckpoint(dir, {
      step: 3,
      params,
      optimizerState: optState,
      ...fields,
    });
    assert.equal(path, `${dir}/step-3`);
    assert.equal(await latestCheckpoint(dir), path);
    const loaded = await loadCheckpoint(path);
    assert.equal(loaded.step, 3);
    assert.equal(loaded.optimizerStepCount, 3);
    assert.deepEqual(loaded.rng, fields.rng);
    assert.deepEqual(loaded.dataPosition, fields.dataPosition);
    assert.deepEqual(loaded.config, fields.config);
    assert.deepEqual(loaded.metrics, fields.metrics);
    assert.deepEqual(loaded.trainerState, fields.trainerState);
    const want = await paramBits(params);
    assert.deepEqual([...loaded.params.keys()], [...params.keys()]);
    for (const [n, t] of loaded.params) {
      assert.deepEqual(t.shape, params.get(n)!.shape);
      assert.deepEqual(bits(t.data), want.get(n), n);
    }
    assert.equal(loaded.optimizerState!.stepCount, 3);
    for (const [n, mv] of optState.moments) {
      assert.deepEqual(bits(loaded.optimizerState!.moments.get(n)!.m), bits(mv.m), `m ${n}`);
      assert.deepEqual(bits(loaded.optimizerState!.moments.get(n)!.v), bits(mv.v), `v ${n}`);
    }
    // Resume into fresh tensors and a fresh optimizer: two more steps match bit for bit.
    const fresh = new Map([...params].map(([n, t]) => [n, Tensor.zeros(gpu, t.shape)]));
    restoreParams(fresh, loaded);
    const opt2 = new AdamW(gpu, fresh, { learningRate: 1e-2, maxGradNorm: 1, weightDecay: 0.1 });
    opt2.loadState(loaded.optimizerState!);
    await trainSteps(gpu, opt, params, [4, 5]);
    await trainSteps(gpu, opt2, fresh, [4, 5]);
    assert.deepEqual(await paramBits(fresh), await paramBits(params));
    opt.dispose();
    opt2.dispose();
    for (const t of [...params.values(), ...fresh.values()]) t.dispose();
  });
});

Deno.test("saveCheckpoint() without optimizer state loads optimizerState null", async () => {
  const gpu = await testGpu();
  await withTempDir(async (dir) => {
    const params = makeParams(gpu, 2);
    const loaded = await loadCheckpoint(await saveCheckpoint(dir, { step: 0, params }));
    assert.equal(loaded.optimizerState, null);
    assert.equal(loaded.rng, null);
    assert.equal(loaded.params.size, params.size);
    for (const t of params.values()) t.dispose();
  });
});

Deno.test("saveCheckpoint() keeps the last N and replaces a checkpoint of the same step", async () => {
  const gpu = await testGpu();
  await withTempDir(async (dir) => {
    const params = makeParams(gpu, 3);
    for (const step of [1, 2, 3, 4, 5]) {
      await saveCheckpoint(dir, { step, params, metrics: { step } }, { keep: 2 });
    }
    assert.deepEqual((await listCheckpoints(dir)).map((c) => c.step), [4, 5]);
    await saveCheckpoint(dir, { step: 5, params, metrics: { step: 50 } }, { keep: 2 });
    assert.deepEqual((await loadCheckpoint(`${dir}/step-5`)).metrics, { step: 50 });
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["step-4", "step-5"]); // no temporary folders left
    // A run resumed from an older step: the new checkpoint is kept even below newer ones.
    await saveCheckpoint(dir, { step: 2, params }, { keep: 2 });
    assert.deepEqual((await listCheckpoints(dir)).map((c) => c.step), [2, 5]);
    for (const t of params.values()) t.dispose();
  });
});

Deno.test("a crash leftover (temporary folder) is ignored by latestCheckpoint() and cleaned", async () => {
  const gpu = await testGpu();
  await withTempDir(async (dir) => {
    const params = makeParams(gpu, 4);
    await saveCheckpoint(dir, { step: 5, params });
    // Simulate a crash in the middle of saving step 8 and in the middle of pruning step 2.
    const tmp = `${dir}/step-8.tmp-0b1c2d`;
    await Deno.mkdir(tmp);
    await Deno.writeFile(`${tmp}/${CHECKPOINT_PARAMS_FILE}`, new Uint8Array(100));
    await Deno.writeTextFile(`${tmp}/${CHECKPOINT_STATE_FILE}`, "{");
    await Deno.mkdir(`${dir}/step-2.old-99`);
    await Deno.mkdir(`${dir}/step-9`); // no state.json: incomplete, never listed
    assert.equal(await latestCheckpoint(dir), `${dir}/step-5`);
    assert.deepEqual((await listCheckpoints(dir)).map((c) => c.step), [5]);
    await saveCheckpoint(dir, { step: 6, params });
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["step-5", "step-6", "step-9"]);
    assert.equal(await latestCheckpoint(dir), `${dir}/step-6`);
    for (const t of params.values()) t.dispose();
  });
});

Deno.test("loadCheckpoint() names the damaged file", async () => {
  const gpu = await testGpu();
  await withTempDir(async (dir) => {
    const params = makeParams(gpu, 5);
    const path = await saveCheckpoint(dir, { step: 1, params });
    const stateFile = `${path}/${CHECKPOINT_STATE_FILE}`;
    const good = await Deno.readTextFile(stateFile);
    await Deno.writeTextFile(stateFile, good.slice(0, good.length / 2));
    await assert.rejects(
      () => loadCheckpoint(path),
      (e: unknown) =>
        e instanceof CheckpointError && e.code === "corrupt" && e.path === stateFile &&
        /not valid JSON/.test(e.message) && e.message.includes(stateFile),
    );
    await Deno.writeTextFile(stateFile, good.replace('"step": 1', '"step": -1'));
    await assert.rejects(() => loadCheckpoint(path), /state.json: field "step"/);
    await Deno.writeTextFile(stateFile, good);
    const paramsFile = `${path}/${CHECKPOINT_PARAMS_FILE}`;
    const bytes = await Deno.readFile(paramsFile);
    await Deno.writeFile(paramsFile, bytes.subarray(0, bytes.length - 8));
    await assert.rejects(
      () => loadCheckpoint(path),
      (e: unknown) =>
        e instanceof CheckpointError && e.path === paramsFile && /recorded/.test(e.message),
    );
    await Deno.remove(paramsFile);
    await assert.rejects(() => loadCheckpoint(path), /params.safetensors: file is missing/);
    await assert.rejects(() => loadCheckpoint(`${dir}/step-404`), /state.json: cannot read/);
    for (const t of params.values()) t.dispose();
  });
});

Deno.test("loadCheckpoint() refuses NaN/±Inf in parameters and AdamW moments, naming file and tensor", async () => {
  const gpu = await testGpu();
  await withTempDir(async (dir) => {
    const params = makeParams(gpu, 7);
    const opt = new AdamW(gpu, params, { learningRate: 1e-2 });
    await trainSteps(gpu, opt, params, [1]);
    const path = await saveCheckpoint(dir, { step: 1, params, optimizerState: await opt.state() });
    const paramsFile = `${path}/${CHECKPOINT_PARAMS_FILE}`;
    const optFile = `${path}/${CHECKPOINT_OPTIMIZER_FILE}`;
    const cases: [string, string, number, number][] = [
      [paramsFile, "norm", 7, NaN],
      [paramsFile, "layers.0.q_proj.lora_A", 0, Infinity],
      [optFile, momentTensorName("m", "layers.0.q_proj.lora_B"), 511, -Infinity],
      [optFile, momentTensorName("v", "norm"), 63, NaN],
    ];
    for (const [file, tensor, element, value] of cases) {
      const st = await openSafetensors(file);
      const at = st.info(tensor).byteOffset + 4 * element;
      st.close();
      const original = await Deno.readFile(file);
      const damaged = original.slice();
      new DataView(damaged.buffer).setFloat32(at, value, true);
      await Deno.writeFile(file, damaged);
      await assert.rejects(() => loadCheckpoint(path), (e: unknown) => {
        assert.ok(e instanceof CheckpointError, `${tensor}: ${e}`);
        assert.equal(e.code, "non_finite");
        assert.equal(e.path, file);
        assert.ok(
          e.message.includes(`tensor "${tensor}": element ${element} is ${value}`),
          e.message,
        );
        return true;
      });
      await Deno.writeFile(file, original);
    }
    assert.equal((await loadCheckpoint(path)).step, 1);
    opt.dispose();
    for (const t of params.values()) t.dispose();
  });
});

Deno.test("saveCheckpoint() never shows a partial step folder, even when saving fails", async () => {
  const gpu = await testGpu();
  await withTempDir(async (dir) => {
    // Large enough that the save spans many event-loop turns.
    const params = new Map<string, Tensor>();
    for (let i = 0; i < 24; i++) {
      params.set(`p${i}`, Tensor.fromArray(gpu, randomArray(1 << 16, i), [256, 256]));
    }
    await saveCheckpoint(dir, { step: 1, params });
    let done = false, polls = 0, sawTemp = false;
    const saving = saveCheckpoint(dir, { step: 2, params }).finally(() => (done = true));
    while (!done) {
      for await (const e of Deno.readDir(dir)) sawTemp ||= isTemporaryCheckpointDirName(e.name);
      for (const c of await listCheckpoints(dir)) {
        const loaded = await loadCheckpoint(c.path); // every listed folder is complete
        assert.equal(loaded.params.size, 24);
      }
      polls++;
      await new Promise((r) => setTimeout(r, 0));
    }
    await saving;
    assert.ok(polls > 1 && sawTemp, `polls ${polls}, saw temp ${sawTemp}`);
    // A save that fails half way (a tensor is gone) leaves nothing behind.
    const broken = new Map(params);
    const gone = Tensor.zeros(gpu, [3]);
    gone.dispose();
    broken.set("zz", gone);
    await assert.rejects(() => saveCheckpoint(dir, { step: 3, params: broken }), CheckpointError);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["step-1", "step-2"]);
    for (const t of params.values()) t.dispose();
  });
});

Deno.test("saveCheckpoint() rejects non-JSON trainer state before writing anything", async () => {
  const gpu = await testGpu();
  await withTempDir(async (dir) => {
    const params = makeParams(gpu, 6);
    await assert.rejects(
      () => saveCheckpoint(dir, { step: 1, params, metrics: { loss: NaN } }),
      (e: unknown) => e instanceof CheckpointError && e.path === "metrics.loss",
    );
    await assert.rejects(
      () => saveCheckpoint(dir, { step: 1, params, rng: { state: new Uint32Array(4) } as never }),
      /rng.state: a Uint32Array instance/,
    );
    await assert.rejects(
      () => saveCheckpoint(dir, { step: 1.5, params }),
      /step: must be an integer/,
    );
    await assert.rejects(() => saveCheckpoint(dir, { step: 1, params }, { keep: 0 }), /keep/);
    assert.deepEqual(await listCheckpoints(dir), []);
    for (const t of params.values()) t.dispose();
  });
});

Deno.test("restoreParams() checks names and shapes and writes nothing on a mismatch", async () => {
  const gpu = await testGpu();
  await withTempDir(async (dir) => {
    const params = makeParams(gpu, 7);
    const loaded = await loadCheckpoint(await saveCheckpoint(dir, { step: 1, params }));
    const target = new Map([...params].map(([n, t]) => [n, Tensor.zeros(gpu, t.shape)]));
    const zeros = await paramBits(target);
    const missing = new Map(target);
    missing.set("extra", Tensor.zeros(gpu, [2]));
    assert.throws(() => restoreParams(missing, loaded), /extra: parameter is not in the/);
    const fewer = new Map([...target].slice(1));
    assert.throws(() => restoreParams(fewer, loaded), /holds this tensor but the model has no/);
    const reshaped = new Map(target);
    reshaped.set("norm", Tensor.zeros(gpu, [32]));
    assert.throws(
      () => restoreParams(reshaped, loaded),
      (e: unknown) =>
        e instanceof CheckpointError && e.code === "mismatch" && /\[64\]/.test(e.message),
    );
    assert.deepEqual(await paramBits(target), zeros); // untouched
    restoreParams(target, loaded.params);
    assert.deepEqual(await paramBits(target), await paramBits(params));
    for (const t of [...params.values(), ...target.values()]) t.dispose();
    missing.get("extra")!.dispose();
    reshaped.get("norm")!.dispose();
  });
});

Deno.test("parseCheckpointDirName() accepts only complete step folders", () => {
  assert.equal(parseCheckpointDirName("step-0"), 0);
  assert.equal(parseCheckpointDirName("step-120"), 120);
  for (const n of ["step-1.tmp-ab12", "step-01", "step-", "step-1.old-x", "foo", "step--1"]) {
    assert.equal(parseCheckpointDirName(n), null, n);
  }
  assert.ok(isTemporaryCheckpointDirName("step-3.tmp-1f2e-aa"));
  assert.ok(isTemporaryCheckpointDirName("step-3.old-99"));
  assert.ok(!isTemporaryCheckpointDirName("step-3"));
});
