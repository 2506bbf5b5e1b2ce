import assert from "node:assert/strict";
import {
  ADAMW_STATS,
  adamwUpdate,
  GRAD_NORM_VARIANTS,
  gradGlobalNorm,
  gradGlobalNormCandidates,
} from "../kernels/adamw.ts";
import { adamwUpdateRef, gradGlobalNormRef } from "../kernels/adamw_ref.ts";
import { ShapeError } from "../kernels/errors.ts";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { type AdamWOptions, OptimizerError } from "../rl/adamw_config.ts";
import { AdamW } from "../rl/optimizer.ts";
import { warmupCosineDecaySchedule } from "../rl/schedule.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";
import { ADAPTER_KINDS, runnableVariants, standInGpu } from "./_reduce_variants.ts";

const TOL = 1e-5;
const SHAPES: Record<string, number[]> = {
  "bias": [1],
  "small": [7],
  "odd": [257],
  "lora_b": [8, 125],
};

/** max |got − want| ≤ tol · max |want| (for moments, whose scale is far below 1). */
function assertRelClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  let maxRef = 0;
  for (let i = 0; i < want.length; i++) maxRef = Math.max(maxRef, Math.abs(want[i]));
  assertClose(
    Array.from(got, (x) => x / maxRef),
    Array.from(want, (x) => x / maxRef),
    TOL,
    what,
  );
}

/** Host mirror of the optimizer in float64, following optax (and apply_if_finite on skips). */
class Reference {
  count = 0;
  readonly p = new Map<string, Float64Array>();
  readonly m = new Map<string, Float64Array>();
  readonly v = new Map<string, Float64Array>();
  constructor(init: Map<string, Float32Array>, readonly opts: Required<AdamWOptions>) {
    for (const [k, x] of init) {
      this.p.set(k, Float64Array.from(x));
      this.m.set(k, new Float64Array(x.length));
      this.v.set(k, new Float64Array(x.length));
    }
  }
  /** @returns [gradNorm, applied, clipped]. */
  step(grads: Map<string, Float32Array>, guardFinite = true): [number, boolean, boolean] {
    const norm = gradGlobalNormRef([...this.p.keys()].map((k) => grads.get(k)!));
    if (!Number.isFinite(norm) || !guardFinite) return [norm, false, false];
    const o = this.opts;
    const lr = typeof o.learningRate === "function" ? o.learningRate(this.count) : o.learningRate;
    for (const k of this.p.keys()) {
      const decay = o.weightDecayMask === null || o.weightDecayMask(k);
      const r = adamwUpdateRef(this.p.get(k)!, {
        grad: grads.get(k)!,
        m: this.m.get(k)!,
        v: this.v.get(k)!,
        gradNorm: norm,
      }, {
        learningRate: lr,
        b1: o.b1,
        b2: o.b2,
        eps: o.eps,
        weightDecay: decay ? o.weightDecay : 0,
        step: this.count + 1,
        maxGradNorm: o.maxGradNorm,
      });
      this.p.set(k, r.param);
      this.m.set(k, r.m);
      this.v.set(k, r.v);
    }
    this.count++;
    return [norm, true, o.maxGradNorm !== null && !(norm < o.maxGradNorm)];
  }
}

function makeParams(gpu: Gpu, seed: number) {
  const host = new Map<string, Float32Array>();
  const gpuParams = new Map<string, Tensor>();
  let s = seed;
  for (const [name, shape] of Object.entries(SHAPES)) {
    const x = randomArray(shape.reduce((a, b) => a * b, 1), s++, 1);
    host.set(name, x);
    gpuParams.set(name, Tensor.fromArray(gpu, x, shape));
  }
  return { host, gpuParams };
}

function makeGrads(gpu: Gpu, seed: number, scale: number) {
  const host = new Map<string, Float32Array>();
  const tensors = new Map<string, Tensor>();
  let s = seed;
  for (const [name, shape] of Object.entries(SHAPES)) {
    const g = randomArray(shape.reduce((a, b) => a * b, 1), s++, scale);
    host.set(name, g);
    tensors.set(name, Tensor.fromArray(gpu, g, shape));
  }
  return { host, tensors };
}

function disposeAll(ts: Iterable<Tensor>): void {
  for (const t of ts) t.dispose();
}

// The recipe's shape (warmup then cosine, b2 0.99, wd 0.1, clipping) at a visible learning rate.
const SCHEDULE = warmupCosineDecaySchedule({
  initValue: 0,
  peakValue: 1e-2,
  warmupSteps: 3,
  decaySteps: 10,
});
const RECIPE_LIKE: Required<AdamWOptions> = {
  learningRate: SCHEDULE,
  b1: 0.9,
  b2: 0.99,
  eps: 1e-8,
  weightDecay: 0.1,
  maxGradNorm: 1.0,
  weightDecayMask: (name: string) => name !== "bias",
};

// ~1265 values uniform in [−s, s] have a norm of about 20.5·s: scales above ~0.05 clip at 1.0.
const GRAD_SCALES = [0.01, 0.5, 0.02, 0.3, 0.03, 2.0, 0.01, 0.04, 0.8, 0.02];

Deno.test("AdamW.step() matches the float64 optax reference over 10 steps, clip on/off, wd on/off", async () => {
  const gpu = await testGpu();
  for (const weightDecay of [0.1, 0]) {
    const opts = { ...RECIPE_LIKE, weightDecay };
    const { host, gpuParams } = makeParams(gpu, 11);
    const ref = new Reference(host, opts);
    const opt = new AdamW(gpu, gpuParams, opts);
    let clipped = 0;
    for (let k = 0; k < GRAD_SCALES.length; k++) {
      const grads = makeGrads(gpu, 100 * k + 7, GRAD_SCALES[k]);
      opt.step(grads.tensors);
      const names = [...gpuParams.keys()];
      const bytes = await gpu.readMany([
        opt.statsBinding,
        ...names.map((n) => gpuParams.get(n)!.binding()),
      ]);
      const result = opt.commit(bytes[0]);
      const [norm, applied, clip] = ref.step(grads.host);
      clipped += clip ? 1 : 0;
      assert.equal(result.applied, applied);
      assert.equal(result.stepCount, k + 1);
      assert.ok(
        Math.abs(result.gradNorm - norm) <= TOL * norm,
        `norm ${result.gradNorm} vs ${norm}`,
      );
      assert.equal(result.learningRate, SCHEDULE(k));
      names.forEach((n, i) => {
        assertClose(new Float32Array(bytes[i + 1]), ref.p.get(n)!, TOL, `step ${k + 1} ${n}`);
      });
      disposeAll(grads.tensors.values());
    }
    assert.ok(clipped >= 3 && clipped <= 7, `clipping active on ${clipped} of 10 steps`);
    const state = await opt.state();
    assert.equal(state.stepCount, 10);
    for (const [n, mv] of state.moments) {
      assertRelClose(mv.m, ref.m.get(n)!, `m ${n}`);
      assertRelClose(mv.v, ref.v.get(n)!, `v ${n}`);
    }
    opt.dispose();
    disposeAll(gpuParams.values());
  }
});

Deno.test("AdamW skips the update on the GPU for NaN/Inf/overflowing grads or a non-finite guard", async () => {
  const gpu = await testGpu();
  const opts = { ...RECIPE_LIKE, learningRate: 1e-2 } as Required<AdamWOptions>;
  const { host, gpuParams } = makeParams(gpu, 21);
  const ref = new Reference(host, opts);
  const opt = new AdamW(gpu, gpuParams, opts);
  const loss = Tensor.fromArray(gpu, new Float32Array([0.5]));
  const run = async (grads: Map<string, Float32Array>, guard = loss) => {
    const tensors = new Map(
      [...grads].map(([n, g]) => [n, Tensor.fromArray(gpu, g, SHAPES[n])] as const),
    );
    opt.step(tensors, { guard });
    const r = await opt.finishStep();
    disposeAll(tensors.values());
    return r;
  };
  const snapshot = async () => {
    const raw = await gpu.readMany([...gpuParams.values()].map((t) => t.binding()));
    const st = await opt.state();
    return { params: raw.map((b) => new Float32Array(b)), st };
  };
  const first = makeGrads(gpu, 5, 0.3);
  disposeAll(first.tensors.values());
  assert.equal((await run(first.host)).applied, true);
  ref.step(first.host);
  const before = await snapshot();

  const poisoned = (value: number, at: string) => {
    const g = makeGrads(gpu, 9, 0.3);
    disposeAll(g.tensors.values());
    g.host.get(at)![3 % g.host.get(at)!.length] = value;
    return g.host;
  };
  const nan = await run(poisoned(NaN, "odd"));
  assert.equal(nan.applied, false);
  assert.ok(Number.isNaN(nan.gradNorm));
  assert.equal(nan.stepCount, 1);
  assert.equal(nan.consecutiveSkips, 1);
  const inf = await run(poisoned(-Infinity, "bias"));
  assert.equal(inf.applied, false);
  assert.equal(inf.gradNorm, Infinity);
  assert.equal(inf.consecutiveSkips, 2);
  // finite grads whose Σg² overflows f32 also skip (documented limitation of an f32 norm).
  const huge = await run(poisoned(1e20, "small"));
  assert.equal(huge.applied, false);
  assert.equal(huge.consecutiveSkips, 3);
  // finite grads, but the loss (guard) is NaN: skipped, and the stats say why.
  const okGrads = makeGrads(gpu, 13, 0.3);
  disposeAll(okGrads.tensors.values());
  const badLoss = Tensor.fromArray(gpu, new Float32Array([NaN]));
  const guarded = await run(okGrads.host, badLoss);
  assert.equal(guarded.applied, false);
  assert.ok(Number.isFinite(guarded.gradNorm));
  const stats = new Float32Array((await gpu.readMany([opt.statsBinding]))[0]);
  assert.equal(stats[ADAMW_STATS.badGuard], 1);
  assert.equal(stats[ADAMW_STATS.applied], 0);
  badLoss.dispose();

  const after = await snapshot();
  assert.deepEqual(after.params, before.params, "params untouched by skipped steps");
  for (const [n, mv] of before.st.moments) {
    assert.deepEqual(after.st.moments.get(n)!.m, mv.m, `m ${n} untouched`);
    assert.deepEqual(after.st.moments.get(n)!.v, mv.v, `v ${n} untouched`);
  }
  // the next finite step continues as if the skipped ones never happened (t = 2).
  const resumed = await run(okGrads.host);
  assert.equal(resumed.applied, true);
  assert.equal(resumed.stepCount, 2);
  assert.equal(resumed.consecutiveSkips, 0);
  ref.step(okGrads.host);
  const final = await gpu.readMany([...gpuParams.values()].map((t) => t.binding()));
  [...gpuParams.keys()].forEach((n, i) => {
    assertClose(new Float32Array(final[i]), ref.p.get(n)!, TOL, `after skips ${n}`);
  });
  loss.dispose();
  opt.dispose();
  disposeAll(gpuParams.values());
});

Deno.test("AdamW.state()/loadState() round trip continues bit-identically", async () => {
  const gpu = await testGpu();
  const { host, gpuParams: paramsA } = makeParams(gpu, 31);
  const a = new AdamW(gpu, paramsA, RECIPE_LIKE);
  const gradsAt = (k: number) => makeGrads(gpu, 1000 + 10 * k, GRAD_SCALES[k]);
  for (let k = 0; k < 3; k++) {
    const g = gradsAt(k);
    a.step(g.tensors);
    await a.finishStep();
    disposeAll(g.tensors.values());
  }
  const saved = await a.state();
  const savedParams = await gpu.readMany([...paramsA.values()].map((t) => t.binding()));
  const paramsB = new Map(
    [...paramsA].map((
      [n, t],
      i,
    ) => [n, Tensor.fromArray(gpu, new Float32Array(savedParams[i]), t.shape)]),
  );
  const b = new AdamW(gpu, paramsB, RECIPE_LIKE);
  b.loadState(saved);
  assert.equal(b.stepCount, 3);
  assert.equal(b.learningRate, a.learningRate);
  const fresh = new AdamW(
    gpu,
    new Map([["bias", Tensor.fromArray(gpu, host.get("bias")!, [1])]]),
    RECIPE_LIKE,
  );
  for (let k = 3; k < 6; k++) {
    const g = gradsAt(k);
    a.step(g.tensors);
    b.step(g.tensors);
    assert.deepEqual(await a.finishStep(), await b.finishStep());
    disposeAll(g.tensors.values());
  }
  const [pa, pb] = await Promise.all([
    gpu.readMany([...paramsA.values()].map((t) => t.binding())),
    gpu.readMany([...paramsB.values()].map((t) => t.binding())),
  ]);
  pa.forEach((x, i) => assert.deepEqual(new Float32Array(pb[i]), new Float32Array(x)));
  const [sa, sb] = [await a.state(), await b.state()];
  assert.equal(sb.stepCount, 6);
  for (const [n, mv] of sa.moments) {
    assert.deepEqual(sb.moments.get(n)!.m, mv.m, `m ${n}`);
    assert.deepEqual(sb.moments.get(n)!.v, mv.v, `v ${n}`);
  }
  // mismatched states are rejected by name
  assert.throws(
    () => fresh.loadState(saved),
    (e) => e instanceof OptimizerError && e.field === "moments",
  );
  const short = new Map(saved.moments);
  short.set("odd", { m: new Float32Array(3), v: new Float32Array(3) });
  assert.throws(() => b.loadState({ stepCount: 1, moments: short }), OptimizerError);
  assert.throws(() => b.loadState({ stepCount: -1, moments: saved.moments }), OptimizerError);
  for (const o of [a, b, fresh]) o.dispose();
  disposeAll([...paramsA.values(), ...paramsB.values()]);
});

Deno.test("AdamW handles tensors split across several storage bindings", async () => {
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 4096 });
  try {
    const shapes: Record<string, number[]> = { "wide": [300, 7], "flat": [5000], "one": [1] };
    const host = new Map<string, Float32Array>();
    const params = new Map<string, Tensor>();
    let seed = 41;
    for (const [n, s] of Object.entries(shapes)) {
      const x = randomArray(s.reduce((a, b) => a * b, 1), seed++, 1);
      host.set(n, x);
      params.set(n, Tensor.fromArray(gpu, x, s));
    }
    assert.ok(params.get("wide")!.parts.length > 1 && params.get("flat")!.parts.length > 1);
    const opts = { ...RECIPE_LIKE, maxGradNorm: 5 };
    const ref = new Reference(host, opts);
    const opt = new AdamW(gpu, params, opts);
    for (let k = 0; k < 4; k++) {
      const gHost = new Map<string, Float32Array>();
      const gT = new Map<string, Tensor>();
      for (const [n, s] of Object.entries(shapes)) {
        const g = randomArray(s.reduce((a, b) => a * b, 1), 500 + k * 7 + seed++, GRAD_SCALES[k]);
        gHost.set(n, g);
        gT.set(n, Tensor.fromArray(gpu, g, s));
      }
      opt.step(gT);
      const r = await opt.finishStep();
      const [norm] = ref.step(gHost);
      assert.ok(Math.abs(r.gradNorm - norm) <= TOL * norm, `split norm ${r.gradNorm} vs ${norm}`);
      disposeAll(gT.values());
    }
    for (const [n, t] of params) assertClose(await t.read(), ref.p.get(n)!, TOL, `split ${n}`);
    const st = await opt.state();
    for (const [n, mv] of st.moments) assertRelClose(mv.v, ref.v.get(n)!, `split v ${n}`);
    opt.dispose();
    disposeAll(params.values());
  } finally {
    gpu.destroy();
  }
});

Deno.test("gradGlobalNorm() matches the float64 norm for odd sizes and wide dynamic range, every variant", async () => {
  const gpu = await testGpu();
  const sizes = [1, 3, 7, 33, 257, 1000, 4097, 70001, 300_000];
  const host = sizes.map((n, i) => {
    const g = randomArray(n, 700 + i, 0.01 * (i + 1));
    for (let j = 0; j < n; j += 997) g[j] *= 1000; // outliers
    return g;
  });
  const tensors = host.map((g) => Tensor.fromArray(gpu, g));
  const want = gradGlobalNormRef(host);
  for (const variant of runnableVariants(gpu, GRAD_NORM_VARIANTS, "gradGlobalNorm")) {
    const stats = gradGlobalNorm(tensors, { variant });
    const got = await stats.read();
    assert.ok(Math.abs(got[ADAMW_STATS.norm] - want) <= TOL * want, `${got[1]} vs ${want}`);
    assert.ok(Math.abs(got[ADAMW_STATS.sumSquares] - want * want) <= TOL * want * want);
    assert.equal(got[ADAMW_STATS.applied], 1);
    assert.equal(got[ADAMW_STATS.badGuard], 0);
    // deterministic: recomputing gives the same bits
    const again = gradGlobalNorm(tensors, { out: stats, variant });
    assert.deepEqual(await again.read(), got, variant);
    stats.dispose();
  }
  disposeAll(tensors);
});

Deno.test("gradGlobalNorm() flags NaN, Inf, an overflowing Σg² and a non-finite guard, every variant", async () => {
  const gpu = await testGpu();
  const guard = Tensor.fromArray(gpu, new Float32Array([1, NaN, -Infinity]));
  for (const variant of runnableVariants(gpu, GRAD_NORM_VARIANTS, "gradGlobalNorm flags")) {
    for (const bad of [NaN, Infinity, 1e20]) {
      const g = randomArray(70001, 3);
      g[40000] = bad;
      const t = Tensor.fromArray(gpu, g);
      const stats = gradGlobalNorm([t], { variant });
      const s = await stats.read();
      assert.deepEqual([s[ADAMW_STATS.applied], s[ADAMW_STATS.badGuard]], [0, 0], `${bad}`);
      for (const x of [t, stats]) x.dispose();
    }
    const t = Tensor.fromArray(gpu, randomArray(257, 4));
    const stats = gradGlobalNorm([t], { variant, guard });
    const s = await stats.read();
    assert.deepEqual([s[ADAMW_STATS.applied], s[ADAMW_STATS.badGuard]], [0, 2], variant);
    assert.ok(Number.isFinite(s[ADAMW_STATS.norm]));
    for (const x of [t, stats]) x.dispose();
  }
  guard.dispose();
});

Deno.test("gradGlobalNormCandidates(): reg first on fallback adapters, sg first on GPUs with subgroups", async () => {
  const table = ADAPTER_KINDS.map((kind) =>
    gradGlobalNormCandidates(standInGpu(kind), { numel: 9 })
  );
  assert.deepEqual(table, [["reg"], ["reg", "sg"], ["reg"], ["sg", "reg"]]);
  assert.deepEqual(new Set(table.flat()), new Set(GRAD_NORM_VARIANTS));
  const gpu = await testGpu();
  const first = gradGlobalNormCandidates(gpu, { numel: 9 })[0];
  assert.equal(first, !gpu.adapter.isFallbackAdapter && gpu.features.subgroups ? "sg" : "reg");
  const g = Tensor.zeros(gpu, [3]);
  assert.throws(() => gradGlobalNorm([g], { variant: "fast" }), ShapeError);
  if (!gpu.features.subgroups) {
    assert.throws(() => gradGlobalNorm([g], { variant: "sg" }), /must be one of reg .*got sg/);
  }
  g.dispose();
});

Deno.test("AdamW and adamwUpdate() reject bad configs, names, shapes and call order", async () => {
  const gpu = await testGpu();
  const p = Tensor.fromArray(gpu, new Float32Array([1, 2, 3]));
  const field = (fn: () => unknown, f: string) =>
    assert.throws(fn, (e: unknown) => e instanceof OptimizerError && e.field === f);
  field(() => new AdamW(gpu, [{ name: "p", tensor: p }], { learningRate: 1, b1: 1 }), "b1");
  field(() => new AdamW(gpu, [{ name: "p", tensor: p }], { learningRate: -1 }), "learningRate");
  field(
    () => new AdamW(gpu, [{ name: "p", tensor: p }], { learningRate: 1, maxGradNorm: 0 }),
    "maxGradNorm",
  );
  field(
    () => new AdamW(gpu, [{ name: "p", tensor: p }], { learningRate: 1, lr: 2 } as never),
    "lr",
  );
  field(() => new AdamW(gpu, [], { learningRate: 1 }), "params");
  const opt = new AdamW(gpu, [{ name: "p", tensor: p }], { learningRate: 1e-3 });
  assert.equal(opt.config.weightDecay, 1e-4);
  assert.ok(Object.isFrozen(opt.config));
  const g = Tensor.fromArray(gpu, new Float32Array([1, 1, 1]));
  const wrong = Tensor.fromArray(gpu, new Float32Array([1, 1]));
  field(() => opt.step(new Map()), "grads");
  field(() => opt.step(new Map([["p", g], ["q", g]])), "grads");
  assert.throws(() => opt.step(new Map([["p", wrong]])), ShapeError);
  field(() => opt.commit(new ArrayBuffer(16)), "commit");
  opt.step(new Map([["p", g]]));
  field(() => opt.step(new Map([["p", g]])), "step");
  await assert.rejects(() => opt.state(), OptimizerError);
  const r = await opt.finishStep();
  assert.equal(r.applied, true);
  assert.ok(Math.abs(r.gradNorm - Math.sqrt(3)) < 1e-6);
  const stats = Tensor.zeros(gpu, [4]);
  const hyper = {
    learningRate: 1e-3,
    b1: 0.9,
    b2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    step: 1,
    maxGradNorm: null,
  };
  assert.throws(() => adamwUpdate(p, { grad: wrong, m: g, v: g, stats }, hyper), ShapeError);
  assert.throws(
    () => adamwUpdate(p, { grad: g, m: g, v: g, stats }, { ...hyper, step: 0 }),
    ShapeError,
  );
  opt.dispose();
  field(() => opt.step(new Map([["p", g]])), "AdamW");
  disposeAll([p, g, wrong, stats]);
});

Deno.test("AdamW reproduces a two-step example worked by hand (optax formulas)", async () => {
  // p0 = 1, g = 0.5 then −0.25, lr 0.1, b1 0.9, b2 0.999, eps 0, no decay, no clipping.
  // step 1: m = 0.05, v = 2.5e-4, m̂ = 0.5, v̂ = 0.25, update 1 → p = 0.9.
  // step 2: m = 0.02, v = 3.1225e-4, m̂ = 0.02 / 0.19, v̂ = 3.1225e-4 / 0.001999
  //         update = 0.105263… / 0.395225… = 0.266337… → p = 0.873366…
  const hand = [0.9, 0.8733662960339599];
  const hyper = {
    learningRate: 0.1,
    b1: 0.9,
    b2: 0.999,
    eps: 0,
    weightDecay: 0,
    maxGradNorm: null,
  };
  let mv = { m: [0], v: [0] }, p: ArrayLike<number> = [1];
  [0.5, -0.25].forEach((g, i) => {
    const r = adamwUpdateRef(p, { grad: [g], ...mv, gradNorm: Math.abs(g) }, {
      ...hyper,
      step: i + 1,
    });
    assert.ok(Math.abs(r.param[0] - hand[i]) < 1e-15, `ref step ${i + 1}: ${r.param[0]}`);
    mv = { m: Array.from(r.m), v: Array.from(r.v) };
    p = r.param;
  });
  const gpu = await testGpu();
  const w = Tensor.fromArray(gpu, new Float32Array([1]));
  const opt = new AdamW(gpu, [{ name: "w", tensor: w }], hyper);
  for (const [i, g] of [0.5, -0.25].entries()) {
    const gt = Tensor.fromArray(gpu, new Float32Array([g]));
    opt.step(new Map([["w", gt]]));
    await opt.finishStep();
    assertClose(await w.read(), [hand[i]], 1e-6, `kernel step ${i + 1}`);
    gt.dispose();
  }
  // clipping by hand: g = [3, 4] has norm 5; maxGradNorm 1 scales it to [0.6, 0.8], and with
  // eps 0 the first Adam update is sign(g), so p moves by exactly lr, plus decay lr·wd·p.
  const q = Tensor.fromArray(gpu, new Float32Array([2, -2]));
  const clip = new AdamW(gpu, [{ name: "q", tensor: q }], {
    ...hyper,
    maxGradNorm: 1,
    weightDecay: 0.5,
  });
  const gq = Tensor.fromArray(gpu, new Float32Array([3, 4]));
  clip.step(new Map([["q", gq]]));
  const r = await clip.finishStep();
  assert.ok(Math.abs(r.gradNorm - 5) < 1e-6);
  assertClose(await q.read(), [2 - 0.1 * (1 + 0.5 * 2), -2 - 0.1 * (1 - 0.5 * 2)], 1e-6, "clip");
  const m = (await clip.state()).moments.get("q")!.m;
  assertClose(m, [0.06, 0.08], 1e-7, "clipped first moment = (1 − b1)·[0.6, 0.8]");
  for (const o of [opt, clip]) o.dispose();
  disposeAll([w, q, gq]);
});
