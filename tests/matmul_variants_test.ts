/**
 * The matmul variants (`MATMUL_VARIANTS`): each one forced on every form, dtype, epilogue, odd
 * and aligned shape, batched products, weight row ranges and split weights against the float64
 * references; long reductions; the deterministic table and the candidates per adapter; the
 * tuner hook; the GeGLU-gated epilogue (`gate`) of every variant against float64 and against
 * matmul-then-geglu, on split weights, and its validation. Subgroup variants run where the adapter offers `subgroups` (Chromium runs
 * `matmulSubgroupChecks` in its page).
 *
 * @module
 */

import assert from "node:assert/strict";
import { roundToBf16 } from "../kernels/dtype.ts";
import { ShapeError } from "../kernels/errors.ts";
import { Gpu } from "../kernels/gpu.ts";
import {
  matmul,
  MATMUL_VARIANTS,
  matmulCandidates,
  matmulTiling,
  matmulTransA,
} from "../kernels/matmul.ts";
import { geglu } from "../kernels/geglu.ts";
import { geluTanhRef } from "../kernels/geglu_ref.ts";
import { matmulRef } from "../kernels/matmul_ref.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { TuningJob } from "../kernels/tuning.ts";
import type { CheckResult } from "./_browser_kernel_checks.ts";
import {
  gateArray,
  longKChecks,
  MATMUL_TOLERANCE,
  matmulGateChecks,
  matmulSubgroupChecks,
  matmulVariantChecks,
  SUBGROUP_VARIANTS,
} from "./_matmul_variant_checks.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";

const gpu = await testGpu();

/** Asserts every result passed and every id in `ids` ran at least `each` times. */
function assertAllOk(results: readonly CheckResult[], ids: readonly string[], each: number): void {
  const bad = results.filter((r) => !r.ok).map((r) =>
    `${r.name}: ${r.maxError} (${r.detail ?? ""})`
  );
  assert.deepEqual(bad, []);
  for (const id of ids) {
    const ran = results.filter((r) => r.name.startsWith(`${id} `)).length;
    assert.ok(ran >= each, `${id} ran ${ran} checks, expected ≥ ${each}`);
  }
}

const PLAIN = MATMUL_VARIANTS.filter((id) => !SUBGROUP_VARIANTS.includes(id));

Deno.test("matmul() every variant matches the reference on every form, dtype, epilogue, odd and aligned shape, batch and wRows", async () => {
  const results = await matmulVariantChecks(gpu);
  assertAllOk(results, PLAIN, 30);
  // The checks can fail: a tolerance 1000× tighter rejects f32 rounding somewhere.
  const strict = await matmulVariantChecks(gpu, {
    variants: ["tile64x64t4x4"],
    shapes: { nt: [[37, 67, 131]] },
    toleranceScale: 1e-3,
  });
  assert.ok(strict.some((r) => !r.ok));
});

Deno.test("matmul() every variant stays within 1e-5 of float64 for K = 6912 and 7001", async () => {
  assertAllOk(await longKChecks(gpu), PLAIN, 1);
});

/** A launch on the split-W runtime and its float64 reference. */
interface SplitCheck {
  name: string;
  got: Tensor;
  want: ArrayLike<number>;
}

/**
 * The GeGLU gate on a split W, every variant: x·W parts along K (the first writes, the others
 * accumulate, the gate applies once, on the last part's write), store and accumulate; x·Wᵀ parts
 * over a row range (each part gates its own columns, at a column offset).
 */
function splitGateChecks(split: Gpu): SplitCheck[] {
  const checks: SplitCheck[] = [];
  let seed = 40;
  const m = 3;
  // x·W, W [K, N] f32 split along K into 2–3 parts: store, and accumulate into out.
  for (const [k, n] of [[1000, 8], [1001, 5], [1300, 8]]) {
    const x = randomArray(m * k, seed++), w = randomArray(k * n, seed++);
    const r = randomArray(m * n, seed++), g = gateArray(m * n, seed++);
    const tx = Tensor.fromArray(split, x, [m, k]), tw = Tensor.fromArray(split, w, [k, n]);
    const tg = Tensor.fromArray(split, g, [m, n]);
    assert.ok(tw.parts.length > 1);
    const ref = (o: { acc?: Float32Array; alpha: number }) =>
      matmulRef(x, w, { m, n, k, transposeB: false, gate: g, ...o });
    for (const id of PLAIN) {
      if (!matmulCandidates(split, { form: "nn", m, n, k }).includes(id)) continue;
      const o = { transposeB: false, gate: tg, variant: id };
      const what = `${id} nn ${tw.parts.length} parts K=${k}`;
      checks.push({ name: `${what} store`, got: matmul(tx, tw, o), want: ref({ alpha: 1 }) });
      const out = Tensor.fromArray(split, r, [m, n]);
      matmul(tx, tw, { ...o, out, accumulate: true, alpha: -0.5 });
      checks.push({ name: `${what} accumulate`, got: out, want: ref({ acc: r, alpha: -0.5 }) });
    }
  }
  // x·Wᵀ, W [1100, 8] bf16 (parts of 1024 rows), rows [1000, 1040) cross a part: each part
  // writes its own columns (at a column offset) through the gate.
  const [n, k, lo, hi] = [1100, 8, 1000, 1040];
  const x = randomArray(m * k, seed++), w = randomArray(n * k, seed++);
  const g = gateArray(m * (hi - lo), seed++, true);
  const tx = Tensor.fromArray(split, x, [m, k]), tw = Tensor.fromArray(split, w, [n, k], "bf16");
  const tg = Tensor.fromArray(split, g, [m, hi - lo]);
  assert.ok(tw.parts.length > 1);
  const full = matmulRef(x, roundToBf16(w), { m, n, k });
  const want = Array.from(
    { length: m * (hi - lo) },
    (_, i) => geluTanhRef(g[i]) * full[Math.floor(i / (hi - lo)) * n + lo + (i % (hi - lo))],
  );
  for (const id of PLAIN) {
    if (!matmulCandidates(split, { form: "nt", m, n: hi - lo, k, bf16: true }).includes(id)) {
      continue;
    }
    const got = matmul(tx, tw, { wRows: [lo, hi], gate: tg, variant: id });
    checks.push({ name: `${id} nt parts wRows clamp`, got, want });
  }
  for (const id of PLAIN) {
    assert.ok(checks.filter((c) => c.name.startsWith(`${id} `)).length >= 3, id);
  }
  return checks;
}

Deno.test("matmul() every variant reads a split W part by part (x·Wᵀ with wRows, and x·W), also with the GeGLU gate", async () => {
  const split = await Gpu.create({ maxStorageBufferBindingSize: 16384 });
  try {
    const checks: SplitCheck[] = [];
    let seed = 1;
    // x·Wᵀ, W [1100, 8] bf16 (16-byte rows: parts of 1024 rows), rows [1000, 1040) cross a part.
    const [m, n, k, lo, hi] = [3, 1100, 8, 1000, 1040];
    const x = randomArray(m * k, seed++), w = randomArray(n * k, seed++);
    const tx = Tensor.fromArray(split, x, [m, k]), tw = Tensor.fromArray(split, w, [n, k], "bf16");
    assert.ok(tw.parts.length > 1);
    const full = matmulRef(x, roundToBf16(w), { m, n, k });
    const rows = Array.from(
      { length: m * (hi - lo) },
      (_, i) => full[Math.floor(i / (hi - lo)) * n + lo + (i % (hi - lo))],
    );
    for (const id of PLAIN) {
      if (!matmulCandidates(split, { form: "nt", m, n: hi - lo, k, bf16: true }).includes(id)) {
        continue;
      }
      checks.push({
        name: `${id} wRows`,
        got: matmul(tx, tw, { wRows: [lo, hi], variant: id }),
        want: rows,
      });
    }
    // x·W, W [K, N] f32 split along K (parts of 512 or 819 rows: the second starts at an odd
    // k, which the aligned-only tile does not take): the parts accumulate.
    for (const [kk, nn] of [[1000, 8], [1001, 5]]) {
      const x2 = randomArray(m * kk, seed++), w2 = randomArray(kk * nn, seed++);
      const r = randomArray(m * nn, seed++);
      const tx2 = Tensor.fromArray(split, x2, [m, kk]), tw2 = Tensor.fromArray(split, w2, [kk, nn]);
      const tr = Tensor.fromArray(split, r, [m, nn]);
      assert.ok(tw2.parts.length > 1);
      const want = matmulRef(x2, w2, { m, n: nn, k: kk, transposeB: false }).map((v, i) =>
        v + r[i]
      );
      for (const id of PLAIN) {
        if (!matmulCandidates(split, { form: "nn", m, n: nn, k: kk }).includes(id)) continue;
        const got = matmul(tx2, tw2, { transposeB: false, residual: tr, variant: id });
        checks.push({ name: `${id} nn parts K=${kk}`, got, want });
      }
    }
    for (const id of PLAIN) {
      assert.ok(checks.filter((c) => c.name.startsWith(`${id} `)).length >= 2, id);
    }
    // Same runtime: its pipelines compile once (a second split runtime would recompile them).
    checks.push(...splitGateChecks(split));
    for (const c of checks) assertClose(await c.got.read(), c.want, MATMUL_TOLERANCE, c.name);
  } finally {
    split.destroy();
  }
});

Deno.test("matmul() subgroup variants match the reference (adapters with subgroups)", {
  ignore: !gpu.features.subgroups,
}, async () => {
  assertAllOk(await matmulSubgroupChecks(gpu), SUBGROUP_VARIANTS, 20);
});

/** A stand-in runtime for the table: a GPU adapter with WebGPU's default limits. */
function gpuLike(o: { fallback?: boolean; subgroups?: boolean; limits?: object } = {}): Gpu {
  return {
    adapter: { isFallbackAdapter: o.fallback ?? false },
    features: { f16: false, timestampQuery: false, subgroups: o.subgroups ?? false },
    limits: {
      maxBufferSize: 2 ** 28,
      maxStorageBufferBindingSize: 2 ** 27,
      maxComputeWorkgroupStorageSize: 16384,
      maxStorageBuffersPerShaderStage: 8,
      maxComputeInvocationsPerWorkgroup: 256,
      maxComputeWorkgroupsPerDimension: 65535,
      ...o.limits,
    },
  } as unknown as Gpu;
}

Deno.test("matmulCandidates() puts today's reg kernel first on fallback adapters and GPU variants first elsewhere", () => {
  const shapes = [
    { form: "nt", m: 1024, n: 1024, k: 1024 },
    { form: "nt", m: 1, n: 1152, k: 6912, bf16: true },
    { form: "tn", m: 16, n: 1152, k: 1024 },
    { form: "nn", m: 3, n: 7, k: 5 },
  ] as const;
  for (const s of shapes) {
    assert.equal(matmulCandidates(gpu, s)[0], "reg", JSON.stringify(s));
    assert.equal(matmulCandidates(gpuLike({ fallback: true }), s)[0], "reg");
  }
  // The fallback table keeps today's tiling (llvmpipe speed).
  assert.deepEqual(matmulTiling(gpu, { m: 1024, n: 1024, k: 1024 }), {
    rows: 16,
    colVec4s: 4,
    workgroupSize: 8,
  });
  const g = gpuLike();
  const first = (s: Parameters<typeof matmulCandidates>[1]) => matmulCandidates(g, s)[0];
  assert.equal(first({ form: "nt", m: 4096, n: 4096, k: 4096 }), "tile128x128t8x8");
  assert.equal(first({ form: "nt", m: 512, n: 512, k: 512 }), "tile64x64t4x4");
  assert.equal(first({ form: "nt", m: 1, n: 1152, k: 6912, bf16: true }), "splitk16");
  assert.equal(first({ form: "nt", m: 1, n: 262144, k: 1152, bf16: true }), "tile4x128t1x4");
  assert.equal(first({ form: "nt", m: 512, n: 16, k: 1152 }), "splitk16"); // LoRA x·Aᵀ
  assert.equal(first({ form: "tn", m: 16, n: 1152, k: 1024 }), "splitk8"); // dA = dxaᵀ·x
  assert.equal(first({ form: "nn", m: 3, n: 7, k: 5 }), "reg");
  // Every id once, valid ones only: sgemv needs subgroups, tiles the limits.
  const all = matmulCandidates(gpuLike({ subgroups: true }), { form: "nt", m: 2, n: 64, k: 64 });
  assert.deepEqual([...all].sort(), [...MATMUL_VARIANTS].sort());
  assert.ok(!matmulCandidates(g, { form: "nt", m: 2, n: 64, k: 64 }).includes("sgemv"));
  assert.ok(
    !matmulCandidates(gpuLike({ subgroups: true }), { form: "nn", m: 2, n: 64, k: 64 })
      .includes("sgemv"),
  );
  const small = gpuLike({ limits: { maxComputeInvocationsPerWorkgroup: 128 } });
  assert.deepEqual(
    matmulCandidates(small, { form: "nt", m: 4096, n: 4096, k: 4096 }).filter((id) =>
      id.startsWith("tile")
    ),
    ["tile4x128t1x4"],
  );
  const noShared = gpuLike({ limits: { maxComputeWorkgroupStorageSize: 2048 } });
  assert.deepEqual(matmulCandidates(noShared, { form: "nt", m: 4096, n: 4096, k: 4096 }), ["reg"]);
});

Deno.test("matmul() rejects an unknown or unfitting variant with a ShapeError naming the valid ones", () => {
  const x = Tensor.zeros(gpu, [3, 4]), w = Tensor.zeros(gpu, [5, 4]);
  const names = (id: string) => (e: unknown) =>
    e instanceof ShapeError && e.message.includes(`"${id}"`) && e.message.includes("valid: reg");
  assert.throws(() => matmul(x, w, { variant: "tile3x3t1x1" }), names("tile3x3t1x1"));
  assert.throws(() => matmul(x, w, { variant: "sgemv" }), names("sgemv"));
  assert.throws(() => matmulTransA(w, w, { variant: "bogus" }), names("bogus"));
  const tiling = { rows: 1, colVec4s: 1, workgroupSize: 8 };
  assert.throws(() => matmul(x, w, { variant: "splitk4", tiling }), ShapeError);
  for (const t of [x, w]) t.dispose();
});

Deno.test("matmul() asks the tuner with its family, shape class, candidates and a bench that launches them", async () => {
  const [m, n, k] = [5, 19, 37];
  const x = randomArray(m * k, 1), w = randomArray(n * k, 2);
  const tx = Tensor.fromArray(gpu, x, [m, k]), tw = Tensor.fromArray(gpu, w, [n, k], "bf16");
  const jobs: TuningJob[] = [];
  const original = gpu.tuner.choose;
  gpu.tuner.choose = (job: TuningJob) => {
    jobs.push(job);
    return "splitk4";
  };
  try {
    const y = matmul(tx, tw);
    assertClose(await y.read(), matmulRef(x, roundToBf16(w), { m, n, k }), MATMUL_TOLERANCE);
    y.dispose();
  } finally {
    gpu.tuner.choose = original;
  }
  assert.equal(jobs.length, 1);
  const [job] = jobs;
  assert.equal(job.family, "matmul");
  assert.equal(job.shapeClass, "nt:bf16:m8:n19:k37");
  assert.deepEqual(job.candidates, matmulCandidates(gpu, { form: "nt", m, n, k, bf16: true }));
  const bench = job.prepare();
  for (const id of ["reg", "splitk4"]) bench.launch(id);
  await gpu.sync();
  bench.dispose();
  // A forced variant and a tiling skip the tuner.
  gpu.tuner.choose = () => {
    throw new Error("asked");
  };
  try {
    matmul(tx, tw, { variant: "reg" }).dispose();
    matmul(tx, tw, { tiling: { rows: 1, colVec4s: 2, workgroupSize: 16 } }).dispose();
  } finally {
    gpu.tuner.choose = original;
  }
  for (const t of [tx, tw]) t.dispose();
});

Deno.test("matmul() gate: every variant fuses GeGLU into the epilogue (x·Wᵀ and x·W, both dtypes, store and accumulate, odd and aligned shapes, the clamp, batch, wRows)", async () => {
  // gelu_tanh(gate)·(out + α·x·W(ᵀ)) against float64, within 1e-5·max(1, |ref|).
  const results = await matmulGateChecks(gpu);
  assertAllOk(results, PLAIN, 20);
  // The checks can fail: a tolerance 1000× tighter rejects f32 rounding somewhere.
  const strict = await matmulGateChecks(gpu, {
    variants: ["reg"],
    shapes: { nt: [[37, 67, 131]], nn: [] },
    toleranceScale: 1e-3,
  });
  assert.ok(strict.some((r) => !r.ok));
});

Deno.test("matmul() gate: every variant's fused result equals matmul then geglu on the GPU", async () => {
  // Within 1e-6·max(1, |x|). On llvmpipe it is bit-identical: the fused epilogue runs the same
  // f32 operations in the same order (`v = α·acc (+ c)`, then `_geglu_wgsl.ts`'s gelu_tanh(gate)
  // · v), and the unfused matmul stores exactly that v before geglu reads it. An adapter whose
  // compiler contracts a·b + c into an FMA differently in the two kernels may differ in the
  // last bit, hence the tolerance.
  let seed = 70;
  const cases: { name: string; fused: Tensor; unfused: Tensor }[] = [];
  const owned: Tensor[] = [];
  const t = (data: Float32Array, shape: number[], dtype: "f32" | "bf16" = "f32") => {
    const x = Tensor.fromArray(gpu, data, shape, dtype);
    owned.push(x);
    return x;
  };
  for (const form of ["nt", "nn"] as const) {
    const transposeB = form === "nt";
    // I % 4 = 0 runs geglu's vec4 path, odd I its scalar one.
    for (const [m, n, k] of [[37, 67, 131], [1, 68, 132]]) {
      const x = t(randomArray(m * k, seed++), [m, k]);
      const w = t(randomArray(n * k, seed++), transposeB ? [n, k] : [k, n], "bf16");
      const gate = t(gateArray(m * n, seed++), [m, n]);
      const prior = randomArray(m * n, seed++);
      for (const id of PLAIN) {
        if (!matmulCandidates(gpu, { form, m, n, k, bf16: true }).includes(id)) continue;
        const o = { variant: id, transposeB, alpha: 0.75 };
        const name = `${id} ${form} ${m}x${n}x${k}`;
        const up = matmul(x, w, o);
        cases.push({
          name: `${name} store`,
          fused: matmul(x, w, { ...o, gate }),
          unfused: geglu(gate, up),
        });
        const acc = t(prior, [m, n]), fused = t(prior, [m, n]);
        matmul(x, w, { ...o, out: acc, accumulate: true });
        matmul(x, w, { ...o, out: fused, accumulate: true, gate });
        cases.push({ name: `${name} accumulate`, fused, unfused: geglu(gate, acc) });
        owned.push(up);
      }
    }
  }
  let identical = 0;
  for (const c of cases) {
    const [fused, unfused] = [await c.fused.read(), await c.unfused.read()];
    assertClose(fused, unfused, 1e-6, c.name);
    if (fused.every((v, i) => Object.is(v, unfused[i]))) identical++;
  }
  console.log(`fused == unfused bit for bit in ${identical} of ${cases.length} launches`);
  for (const x of [...owned, ...cases.flatMap((c) => [c.fused, c.unfused])]) {
    if (!x.disposed) x.dispose();
  }
});

Deno.test("matmul() gate: rejects a mismatched, non-f32 or aliasing gate and a gate with a residual", () => {
  const x = Tensor.zeros(gpu, [3, 4]), w = Tensor.zeros(gpu, [5, 4], "bf16");
  const out = Tensor.zeros(gpu, [3, 5]), gate = Tensor.zeros(gpu, [3, 5]);
  const says = (text: string) => (e: unknown) =>
    e instanceof ShapeError && e.message.startsWith("matmul: ") && e.message.includes(text);
  assert.throws(() => matmul(x, w, { gate: Tensor.zeros(gpu, [3, 4]) }), says("gate must hold"));
  assert.throws(
    () => matmul(x, w, { gate: Tensor.zeros(gpu, [3, 5], "bf16") }),
    says("gate must be f32"),
  );
  assert.throws(() => matmul(x, w, { out, gate: out }), says("gate must not alias out"));
  assert.throws(
    () => matmul(x, w, { out, accumulate: true, gate: out }),
    says("gate must not alias out"),
  );
  assert.throws(
    () => matmul(x, w, { gate, residual: Tensor.zeros(gpu, [3, 5]) }),
    says("gate and residual are exclusive"),
  );
  // The valid call works (gelu_tanh(0)·0 = 0).
  const y = matmul(x, w, { out, gate });
  assert.equal(y, out);
  for (const t of [x, w, out, gate]) t.dispose();
});
