import assert from "node:assert/strict";
import { WEBTUNE_VERSION } from "../base/version.ts";
import { GpuOutOfMemoryError } from "../kernels/errors.ts";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import {
  adapterKey,
  memoryTuningStore,
  type TimedRun,
  Tuner,
  type TuningJob,
  type TuningProgress,
  type TuningTimer,
  wallClockTimer,
} from "../kernels/tuning.ts";
import { defaultTuningCachePath, fileTuningStore } from "../kernels/tuning_fs.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { decodeFloat32 } from "../model/safetensors_dtype.ts";
import { openSafetensors } from "../model/safetensors_fs.ts";
import { assertClose, FIXTURE } from "./_helpers.ts";

/** A timer giving each candidate a known time, counting what it timed. */
function fakeTimer(seconds: Record<string, number>): TuningTimer & { timed: string[] } {
  const timed: string[] = [];
  return {
    timed,
    time(run: TimedRun) {
      timed.push(run.id);
      return Promise.resolve(seconds[run.id]);
    },
  };
}

/** A job whose launches only count. */
function job(shapeClass: string, candidates: string[], launches: string[] = []): TuningJob {
  return {
    family: "demo",
    shapeClass,
    candidates,
    prepare: () => ({ launch: (id) => launches.push(id), dispose: () => {} }),
  };
}

const device = { sync: () => Promise.resolve() };

Deno.test("Tuner.tune() picks the fastest candidate, also when the table's choice is slowest", async () => {
  const timer = fakeTimer({ table: 3e-3, mid: 2e-3, fast: 1e-3 });
  const progress: TuningProgress[] = [];
  const launches: string[] = [];
  const tuner = new Tuner("cached", { timer, device });
  const slowFirst = job("a", ["table", "mid", "fast"], launches);
  const fastFirst = job("b", ["fast", "table"]);
  assert.equal(tuner.choose(slowFirst), "table"); // a miss runs the table's choice now
  assert.equal(tuner.choose(fastFirst), "fast");
  assert.equal(tuner.choose(job("single", ["only"])), "only"); // nothing to choose: not queued
  assert.equal(tuner.pending, 2);
  const report = await tuner.tune({ onProgress: (p) => progress.push(p) });
  assert.equal(report.jobs, 2);
  assert.equal(report.candidatesTimed, 5);
  assert.ok(report.seconds >= 0);
  assert.deepEqual(report.choices.map((c) => [c.shapeClass, c.table, c.chosen]), [
    ["a", "table", "fast"],
    ["b", "fast", "fast"],
  ]);
  assert.deepEqual(report.choices[0].times, { table: 3e-3, mid: 2e-3, fast: 1e-3 });
  assert.deepEqual(launches, ["table", "mid", "fast"]); // one warm-up launch each
  assert.deepEqual(progress.map((p) => [p.done, p.total, p.shapeClass]), [[1, 2, "a"], [
    2,
    2,
    "b",
  ]]);
  assert.equal(tuner.choose(slowFirst), "fast");
  assert.equal(tuner.chosen("demo", "a"), "fast");
  assert.equal(tuner.pending, 0);
  assert.equal((await tuner.tune()).jobs, 0); // nothing queued: nothing timed
  assert.equal(timer.timed.length, 5);
});

Deno.test("Tuner: 'off' never queues; 'cached' returns a remembered choice untimed; 'full' retimes", async () => {
  const store = memoryTuningStore();
  await store.save("gpu A", { "demo|a": "mid" });
  const candidates = ["table", "mid", "fast"];

  const off = new Tuner("off", { store, adapterKey: "gpu A", device, timer: fakeTimer({}) });
  assert.equal(await off.load(), 0);
  assert.equal(off.choose(job("a", candidates)), "table");
  assert.equal(off.pending, 0);

  const cachedTimer = fakeTimer({ table: 3, mid: 2, fast: 1 });
  const cached = new Tuner("cached", { store, adapterKey: "gpu A", device, timer: cachedTimer });
  assert.equal(await cached.load(), 1);
  assert.equal(cached.choose(job("a", candidates)), "mid");
  assert.equal(cached.pending, 0);
  await cached.tune();
  assert.deepEqual(cachedTimer.timed, []);

  const fullTimer = fakeTimer({ table: 3, mid: 2, fast: 1 });
  const full = new Tuner("full", { store, adapterKey: "gpu A", device, timer: fullTimer });
  assert.equal(await full.load(), 0);
  assert.equal(full.choose(job("a", candidates)), "table");
  assert.equal(full.pending, 1);
  await full.tune();
  assert.deepEqual(fullTimer.timed, candidates);
  assert.equal(full.choose(job("a", candidates)), "fast");
  assert.deepEqual(await store.load("gpu A"), { "demo|a": "fast" }); // the retimed choice is kept
  assert.throws(() => new Tuner("fast" as "full"), /tuning must be one of off, cached, full/);
});

Deno.test("Tuner: a forced variant runs in every mode where it is a candidate, and is never queued", async () => {
  for (const mode of ["off", "cached", "full"] as const) {
    const timer = fakeTimer({ table: 2, fast: 1 });
    const tuner = new Tuner(mode, { device, timer, force: { demo: "fast" } });
    assert.equal(tuner.choose(job("a", ["table", "fast"])), "fast", mode);
    assert.equal(tuner.pending, 0, mode);
    // Not a candidate of this job: the mode decides as usual.
    assert.equal(tuner.choose(job("b", ["table", "other"])), "table", mode);
    assert.equal(tuner.pending, mode === "off" ? 0 : 1, mode);
    // Another family is not forced.
    const other = { ...job("a", ["table", "fast"]), family: "other" };
    assert.equal(tuner.choose(other), "table", mode);
  }
  const gpu = await Gpu.create({ forceVariants: { demo: "fast" } });
  try {
    assert.equal(gpu.tuner.choose(job("a", ["table", "fast"])), "fast");
  } finally {
    gpu.destroy();
  }
});

/** A trivial kernel with a slow and a fast variant, and a variant the compiler rejects. */
function spinJob(gpu: Gpu, candidates: string[]): TuningJob {
  const n = 64 * 256;
  const source = (c: { iterations: number; broken: boolean }) => `
@group(0) @binding(0) var<storage, read_write> x: array<f32>; // [${n}]
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  var s = x[g.x];
  for (var i = 0u; i < ${c.iterations}u; i++) { s = s * 0.999 + 1.0; }
  x[g.x] = s${c.broken ? " + 1u" : ""};
}`;
  const variants: Record<string, { iterations: number; broken: boolean }> = {
    slow: { iterations: 4000, broken: false },
    fast: { iterations: 1, broken: false },
    broken: { iterations: 1, broken: true },
  };
  return {
    family: "spin",
    shapeClass: `n${n}`,
    candidates,
    prepare() {
      const x = Tensor.zeros(gpu, [n]);
      return {
        launch(id) {
          const pipeline = gpu.pipelines.get("tuning_test_spin", variants[id], source);
          gpu.dispatch({ pipeline, shapes: `x[${n}]`, buffers: [x.buffer], workgroups: [n / 64] });
        },
        dispose: () => x.dispose(),
      };
    },
  };
}

Deno.test("Tuner skips a candidate whose pipeline is rejected and never chooses it", async () => {
  const timer = fakeTimer({ broken: 1e-9, slow: 2e-3, fast: 3e-3 });
  const gpu = await Gpu.create({ tuning: "full", tuningTimer: timer });
  try {
    const spin = spinJob(gpu, ["broken", "slow", "fast"]);
    assert.equal(gpu.tuner.choose(spin), "broken");
    const report = await gpu.tuner.tune();
    assert.deepEqual(report.choices[0].rejected, ["broken"]);
    assert.equal(report.choices[0].chosen, "slow");
    assert.deepEqual(timer.timed, ["slow", "fast"]);
    assert.equal(gpu.tuner.choose(spin), "slow");
    await gpu.sync(); // the device stays usable
  } finally {
    gpu.destroy();
  }
});

Deno.test("Tuner.tune() on this adapter times a real tiny job and picks the faster variant", async () => {
  const gpu = await Gpu.create({ tuning: "full" }); // GPU timestamps where offered
  const wall = await Gpu.create({ tuning: "full", tuningTimer: wallClockTimer() });
  try {
    for (const g of [gpu, wall]) {
      const spin = spinJob(g, ["slow", "fast"]);
      assert.equal(g.tuner.choose(spin), "slow");
      const report = await g.tuner.tune();
      const { times, chosen } = report.choices[0];
      assert.equal(chosen, "fast", JSON.stringify(times));
      assert.ok(times.fast < times.slow && times.fast >= 0, JSON.stringify(times));
      assert.equal(g.tuner.choose(spin), "fast");
    }
  } finally {
    gpu.destroy();
    wall.destroy();
  }
});

Deno.test("fileTuningStore: a choice survives a restart and is ignored for another adapter", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/cache/webtune/tuning.json`;
  const warnings: string[] = [];
  const store = () => fileTuningStore(path, { onWarning: (m) => warnings.push(m) });
  const spin = {
    family: "spin",
    shapeClass: "n8",
    prepare: () => ({ launch: () => {}, dispose: () => {} }),
  };
  const candidates = ["slow", "fast"];
  try {
    const timer = fakeTimer({ slow: 2, fast: 1 });
    const first = await Gpu.create({ tuning: "cached", tuningStore: store(), tuningTimer: timer });
    first.tuner.choose({ ...spin, candidates });
    await first.tuner.tune();
    const key = first.tuner.adapterKey;
    first.destroy();
    assert.ok(key.endsWith(` webtune ${WEBTUNE_VERSION}`), key);
    const saved = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(saved.adapters[key].choices, { "spin|n8": "fast" });

    const again = fakeTimer({});
    const second = await Gpu.create({ tuning: "cached", tuningStore: store(), tuningTimer: again });
    assert.equal(second.tuner.adapterKey, key);
    assert.equal(second.tuner.choose({ ...spin, candidates }), "fast");
    assert.equal(second.tuner.pending, 0);
    second.destroy();

    // Other limits (GL llvmpipe and lavapipe describe themselves alike): another key.
    const other = await Gpu.create({
      tuning: "cached",
      tuningStore: store(),
      maxStorageBufferBindingSize: 1 << 20,
    });
    assert.notEqual(other.tuner.adapterKey, key);
    assert.equal(other.tuner.choose({ ...spin, candidates }), "slow");
    assert.equal(other.tuner.pending, 1);
    other.destroy();
    assert.deepEqual(warnings, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("adapterKey() differs by description, driver, features, limits and version", () => {
  const id = {
    vendor: "65541",
    architecture: "",
    device: "0",
    description: "llvmpipe (LLVM 15.0.6, 256 bits)",
    features: ["timestamp-query"],
    limits: { maxStorageBuffersPerShaderStage: 16 },
  };
  const key = adapterKey(id);
  assert.match(key, /^65541\/\/0\/llvmpipe \(LLVM 15\.0\.6, 256 bits\) #[0-9a-f]{8} webtune /);
  assert.equal(adapterKey({ ...id, features: ["timestamp-query"] }), key);
  const others = [
    { ...id, description: "llvmpipe (LLVM 17.0.0, 256 bits)" },
    { ...id, driver: "Mesa 24.0" },
    { ...id, features: ["timestamp-query", "shader-f16"] },
    { ...id, limits: { maxStorageBuffersPerShaderStage: 32 } },
    { ...id, version: "0.2.0" },
  ];
  for (const o of others) assert.notEqual(adapterKey(o), key, JSON.stringify(o));
});

Deno.test("fileTuningStore: a corrupt file reads as empty with a warning; a save replaces it", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/tuning.json`;
  try {
    for (const bad of ["{ not json", '{"adapters": {}}', '{"format": "webtune-tuning"}']) {
      await Deno.writeTextFile(path, bad);
      const warnings: string[] = [];
      const store = fileTuningStore(path, { onWarning: (m) => warnings.push(m) });
      assert.deepEqual(await store.load("k"), {});
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], new RegExp(`tuning cache ${path} .*; starting empty`));
    }
    const tuner = new Tuner("cached", {
      store: fileTuningStore(path, { onWarning: () => {} }),
      adapterKey: "k",
      device,
      timer: fakeTimer({ a: 2, b: 1 }),
    });
    assert.equal(await tuner.load(), 0);
    tuner.choose(job("x", ["a", "b"]));
    await tuner.tune();
    assert.deepEqual(await fileTuningStore(path).load("k"), { "demo|x": "b" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("defaultTuningCachePath() is under the user's cache folder on each OS", () => {
  assert.equal(
    defaultTuningCachePath({ XDG_CACHE_HOME: "/x", HOME: "/h" }, "linux"),
    "/x/webtune/tuning.json",
  );
  assert.equal(defaultTuningCachePath({ HOME: "/h" }, "linux"), "/h/.cache/webtune/tuning.json");
  assert.equal(
    defaultTuningCachePath({ HOME: "/Users/a", XDG_CACHE_HOME: "/x" }, "darwin"),
    "/Users/a/Library/Caches/webtune/tuning.json",
  );
  assert.equal(
    defaultTuningCachePath({ LOCALAPPDATA: "C:\\Users\\a\\AppData\\Local" }, "windows"),
    "C:\\Users\\a\\AppData\\Local\\webtune\\tuning.json",
  );
  assert.equal(defaultTuningCachePath({}, "linux"), null);
});

Deno.test("WEBTUNE_VERSION is deno.json's version", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(WEBTUNE_VERSION, denoJson.version);
});

Deno.test("the fixture's logits match with tuning 'full' choosing variants other than the table's", async () => {
  // The timer ranks the first candidate timed (the table's) last, so every shape class with
  // alternatives switches: any variant changes the logits only within f32 rounding
  // (gemma3_forward_test's tolerance).
  const timedJobs = new Set<string>();
  const tableLast: TuningTimer = {
    time(run) {
      const key = `${run.family}|${run.shapeClass}`, first = !timedJobs.has(key);
      timedJobs.add(key);
      return Promise.resolve(first ? 1 : 0);
    },
  };
  const gpu = await Gpu.create({ tuning: "full", tuningTimer: tableLast });
  const st = await openSafetensors(`${FIXTURE}/forward.safetensors`);
  try {
    const model = await loadGemma3(FIXTURE, { gpu });
    const forward = JSON.parse(await Deno.readTextFile(`${FIXTURE}/forward.json`));
    for (const s of forward.sequences) await model.logits(s.input_ids); // queues the jobs met
    // A switched layer fusion runs kernels the first pass did not (e.g. the separate RoPE and
    // its q/k norm): their jobs queue on the next pass and are tuned in a second round.
    const families = new Set<string>();
    for (let round = 0; round < 3 && gpu.tuner.pending > 0; round++) {
      const before = timedJobs.size;
      const report = await gpu.tuner.tune();
      assert.equal(report.jobs, timedJobs.size - before);
      for (const c of report.choices) {
        families.add(c.family);
        if (Object.keys(c.times).length > 1) assert.notEqual(c.chosen, c.table, c.shapeClass);
      }
      for (const s of forward.sequences) {
        const want = decodeFloat32(st.info(s.logits_tensor).dtype, await st.read(s.logits_tensor));
        assertClose(await model.logits(s.input_ids), want, 1e-4, `logits of sequence ${s.index}`);
      }
    }
    assert.equal(gpu.tuner.pending, 0); // every launch ran a tuned choice
    assert.ok(families.has("matmul") && families.has("layer_fusion"), [...families].join());
  } finally {
    st.close();
    gpu.destroy();
  }
});

Deno.test("Tuner: a job that runs out of device memory keeps the table's choice and is not stored", async () => {
  const store = memoryTuningStore();
  const timer = fakeTimer({ table: 2, fast: 1 });
  let failSync = false;
  const oomDevice = {
    sync: () =>
      failSync ? Promise.reject(new GpuOutOfMemoryError(1 << 30, 0, "oom")) : Promise.resolve(),
  };
  const tuner = new Tuner("cached", { timer, device: oomDevice, store, adapterKey: "k" });
  const disposed: string[] = [];
  const big: TuningJob = {
    family: "demo",
    shapeClass: "big",
    candidates: ["table", "fast"],
    prepare: () => {
      failSync = true; // the scratch inputs do not fit
      return { launch: () => {}, dispose: () => disposed.push("big") };
    },
  };
  tuner.choose(big);
  tuner.choose(job("small", ["table", "fast"]));
  const report = await tuner.tune();
  assert.deepEqual(report.choices.map((c) => [c.shapeClass, c.chosen, c.outOfMemory]), [
    ["big", "table", true],
    ["small", "table", true], // the failing device fails every job here: each is kept, none stored
  ]);
  assert.deepEqual(disposed, ["big"]);
  assert.equal(tuner.pending, 0); // not retried every step
  assert.deepEqual(await store.load("k"), {});
  // A job that fits is timed and stored as usual.
  failSync = false;
  const fresh = new Tuner("cached", {
    timer,
    device: { sync: () => Promise.resolve() },
    store,
    adapterKey: "k",
  });
  fresh.choose(job("small", ["table", "fast"]));
  await fresh.tune();
  assert.deepEqual(await store.load("k"), { "demo|small": "fast" });
  const other = new Tuner("cached", { store, adapterKey: "k", device });
  await other.load();
  assert.equal(other.choose(big), "table"); // big was never stored: queued again in a new run
  assert.equal(other.pending, 1);
});
