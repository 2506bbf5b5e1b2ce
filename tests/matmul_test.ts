import assert from "node:assert/strict";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { roundToBf16 } from "../kernels/dtype.ts";
import { ShapeError } from "../kernels/errors.ts";
import { matmul, matmulTiling, matmulTransA } from "../kernels/matmul.ts";
import { matmulRef, matmulTransARef } from "../kernels/matmul_ref.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";

const TOL = 1e-5;

/** [M, N, K]: odd sizes, aligned shapes (vec4 paths) and K = 1000 (long reduction). */
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 7, 33],
  [7, 3, 1000],
  [33, 257, 7],
  [257, 33, 3],
  [1, 1000, 257],
  [1000, 7, 33],
  [33, 33, 257],
  [16, 64, 128],
  [3, 1000, 4],
  [3, 33, 64], // K % 8 = 0 and few rows: wide bf16 loads
  [1, 7, 1000],
];

/** Checks matmul() against matmulRef on every {@linkcode SHAPES} entry, f32 and bf16 W. */
async function checkSweep(gpu: Gpu, run: { transposeB: boolean; seed: number }): Promise<void> {
  const { transposeB } = run;
  let seed = run.seed;
  for (const [m, n, k] of SHAPES) {
    for (const dtype of ["f32", "bf16"] as const) {
      const x = randomArray(m * k, seed++), w = randomArray(n * k, seed++);
      const tx = Tensor.fromArray(gpu, x, [m, k]);
      const tw = Tensor.fromArray(gpu, w, transposeB ? [n, k] : [k, n], dtype);
      const y = matmul(tx, tw, { transposeB });
      assert.deepEqual(y.shape, [m, n]);
      const wRef = dtype === "bf16" ? roundToBf16(w) : w;
      const want = matmulRef(x, wRef, { m, n, k, transposeB });
      assertClose(await y.read(), want, TOL, `${m}x${n}x${k} ${dtype}`);
      for (const t of [tx, tw, y]) t.dispose();
    }
  }
}

Deno.test("matmul() x·Wᵀ matches reference on odd shapes, f32 and bf16 W", async () => {
  await checkSweep(await testGpu(), { transposeB: true, seed: 1 });
});

Deno.test("matmul() x·W (transposeB: false) matches reference on odd shapes", async () => {
  await checkSweep(await testGpu(), { transposeB: false, seed: 100 });
});

Deno.test("matmulTransA() aᵀ·b matches reference on odd shapes", async () => {
  const gpu = await testGpu();
  let seed = 200;
  for (const [m, n, k] of SHAPES) {
    const a = randomArray(k * m, seed++), b = randomArray(k * n, seed++);
    const ta = Tensor.fromArray(gpu, a, [k, m]), tb = Tensor.fromArray(gpu, b, [k, n]);
    const y = matmulTransA(ta, tb);
    assert.deepEqual(y.shape, [m, n]);
    assertClose(await y.read(), matmulTransARef(a, b, { m, n, k }), TOL, `${m}x${n}x${k}`);
    for (const t of [ta, tb, y]) t.dispose();
  }
});

Deno.test("matmul() stays within 1e-5 of float64 for K = 6912 and 7001", async () => {
  const gpu = await testGpu();
  for (const [m, n, k] of [[33, 65, 6912], [5, 9, 7001]]) {
    const x = randomArray(m * k, k), w = randomArray(n * k, k + 1);
    const tx = Tensor.fromArray(gpu, x, [m, k]), tw = Tensor.fromArray(gpu, w, [n, k]);
    const y = matmul(tx, tw);
    assertClose(await y.read(), matmulRef(x, w, { m, n, k }), TOL, `K=${k}`);
    for (const t of [tx, tw, y]) t.dispose();
  }
});

Deno.test("matmul() gives the same results with every tiling", async () => {
  const gpu = await testGpu();
  const [m, n, k] = [37, 45, 68];
  const x = randomArray(m * k, 7), w = randomArray(n * k, 8);
  const tx = Tensor.fromArray(gpu, x, [m, k]);
  const wNt = Tensor.fromArray(gpu, w, [n, k], "bf16"), wNn = Tensor.fromArray(gpu, w, [k, n]);
  const wantNt = matmulRef(x, roundToBf16(w), { m, n, k });
  const wantNn = matmulRef(x, w, { m, n, k, transposeB: false });
  const production = matmulTiling(gpu, { m: 1024, n: 1024, k: 1024 });
  const tilings = [
    { rows: 1, colVec4s: 2, workgroupSize: 16 },
    { rows: 4, colVec4s: 1, workgroupSize: 64 },
    { rows: 3, colVec4s: 3, workgroupSize: 5 },
    { rows: 4, colVec4s: 2, workgroupSize: 8 },
    production,
  ];
  for (const tiling of tilings) {
    const y = matmul(tx, wNt, { tiling });
    assertClose(await y.read(), wantNt, TOL, `x·Wᵀ ${JSON.stringify(tiling)}`);
    // subtle: the large tile compiles slowly on llvmpipe (seconds), so it runs in one form only.
    if (tiling !== production) {
      matmul(tx, wNn, { tiling, transposeB: false, out: y });
      assertClose(await y.read(), wantNn, TOL, `x·W ${JSON.stringify(tiling)}`);
    }
    y.dispose();
  }
  const big = { m: 128, n: 6912, k: 1152 };
  assert.deepEqual(matmulTiling(gpu, big), matmulTiling(gpu, big));
  for (const t of [tx, wNt, wNn]) t.dispose();
});

Deno.test("matmul() batches rank-3 W and flattens leading dims of x for a 2-D W", async () => {
  const gpu = await testGpu();
  const [batch, m, n, k] = [3, 7, 33, 9];
  const x = randomArray(batch * m * k, 1), w = randomArray(batch * n * k, 2);
  const tx = Tensor.fromArray(gpu, x, [batch, m, k]);
  const tw = Tensor.fromArray(gpu, w, [batch, n, k]);
  const y = matmul(tx, tw);
  assert.deepEqual(y.shape, [batch, m, n]);
  assertClose(
    await y.read(),
    matmulRef(x, w, { batch, m, n, k, wBatched: true }),
    TOL,
    "batched nt",
  );
  const twn = Tensor.fromArray(gpu, w, [batch, k, n]);
  const yn = matmul(tx, twn, { transposeB: false });
  assertClose(
    await yn.read(),
    matmulRef(x, w, { batch, m, n, k, transposeB: false, wBatched: true }),
    TOL,
    "batched nn",
  );
  const w2 = Tensor.fromArray(gpu, w.subarray(0, n * k), [n, k]);
  const y2 = matmul(tx, w2);
  assert.deepEqual(y2.shape, [batch, m, n]);
  assertClose(await y2.read(), matmulRef(x, w, { m: batch * m, n, k }), TOL, "shared W");
  const v = matmul(Tensor.fromArray(gpu, x.subarray(0, k), [k]), w2);
  assert.deepEqual(v.shape, [n]);
  assertClose(await v.read(), matmulRef(x, w, { m: 1, n, k }), TOL, "vector x");
  for (const t of [tx, tw, y, twn, yn, w2, y2, v]) t.dispose();
});

Deno.test("matmulTransA() batches equal leading dims and accumulates", async () => {
  const gpu = await testGpu();
  const [batch, m, n, k] = [2, 5, 7, 33];
  const a = randomArray(batch * k * m, 3), b = randomArray(batch * k * n, 4);
  const ta = Tensor.fromArray(gpu, a, [batch, k, m]), tb = Tensor.fromArray(gpu, b, [batch, k, n]);
  const y = matmulTransA(ta, tb);
  const want = matmulTransARef(a, b, { batch, m, n, k });
  assertClose(await y.read(), want, TOL, "batched tn");
  matmulTransA(ta, tb, { out: y, accumulate: true, alpha: 0.5 });
  assertClose(await y.read(), want.map((v) => 1.5 * v), TOL, "accumulate");
  for (const t of [ta, tb, y]) t.dispose();
});

Deno.test("matmul() fuses residual add and accumulate with alpha", async () => {
  const gpu = await testGpu();
  const [m, n, k] = [7, 33, 257];
  const x = randomArray(m * k, 5), w = randomArray(n * k, 6), r = randomArray(m * n, 7);
  const tx = Tensor.fromArray(gpu, x, [m, k]), tw = Tensor.fromArray(gpu, w, [n, k], "bf16");
  const tr = Tensor.fromArray(gpu, r, [m, n]);
  const xw = matmulRef(x, roundToBf16(w), { m, n, k });
  const y = matmul(tx, tw, { residual: tr });
  assertClose(await y.read(), xw.map((v, i) => v + r[i]), TOL, "residual");
  matmul(tx, tw, { out: y, accumulate: true, alpha: -2 });
  assertClose(await y.read(), xw.map((v, i) => r[i] - v), TOL, "accumulate alpha=-2");
  const z = matmul(tx, tw, { residual: tr, alpha: 0.25, out: Tensor.empty(gpu, [m, n]) });
  assertClose(await z.read(), xw.map((v, i) => r[i] + 0.25 * v), TOL, "residual alpha");
  for (const t of [tx, tw, tr, y, z]) t.dispose();
});

Deno.test("matmul() reads a split W part by part (x·Wᵀ with wRows, and x·W)", async () => {
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 4096 });
  try {
    const [m, n, k] = [3, 301, 7]; // bf16 rows of 14 bytes: W [301, 7] is split
    const x = randomArray(m * k, 8), w = randomArray(n * k, 9);
    const tx = Tensor.fromArray(gpu, x, [m, k]);
    for (const dtype of ["bf16", "f32"] as const) {
      const tw = Tensor.fromArray(gpu, w, [n, k], dtype);
      assert.ok(tw.parts.length > 1);
      const wRef = dtype === "bf16" ? roundToBf16(w) : w;
      const full = matmulRef(x, wRef, { m, n, k });
      assertClose(await matmul(tx, tw).read(), full, TOL, `split ${dtype}`);
      const [lo, hi] = [100, 250]; // crosses a part boundary
      const chunk = matmul(tx, tw, { wRows: [lo, hi] });
      assert.deepEqual(chunk.shape, [m, hi - lo]);
      const want = Array.from({ length: m * (hi - lo) }, (_, i) => {
        const row = Math.floor(i / (hi - lo));
        return full[row * n + lo + (i % (hi - lo))];
      });
      assertClose(await chunk.read(), want, TOL, `wRows ${dtype}`);
      tw.dispose();
    }
    // x·W with W [K, N] split along K: parts accumulate into the output.
    const [kk, nn] = [501, 5]; // W [501, 5]: 10 (bf16) or 20 (f32) bytes a row
    const x2 = randomArray(2 * kk, 10), w2 = randomArray(kk * nn, 11);
    const tx2 = Tensor.fromArray(gpu, x2, [2, kk]);
    for (const dtype of ["bf16", "f32"] as const) {
      const tw2 = Tensor.fromArray(gpu, w2, [kk, nn], dtype);
      assert.ok(tw2.parts.length > 1);
      const r = randomArray(2 * nn, 12);
      const y = matmul(tx2, tw2, {
        transposeB: false,
        residual: Tensor.fromArray(gpu, r, [2, nn]),
      });
      const ref = matmulRef(x2, dtype === "bf16" ? roundToBf16(w2) : w2, {
        m: 2,
        n: nn,
        k: kk,
        transposeB: false,
      });
      assertClose(await y.read(), ref.map((v, i) => v + r[i]), TOL, `split nn ${dtype}`);
      tw2.dispose();
    }
  } finally {
    gpu.destroy();
  }
});

Deno.test("matmul() and matmulTransA() reject bad shapes with a ShapeError", async () => {
  const gpu = await testGpu();
  const x = Tensor.zeros(gpu, [3, 4]), w = Tensor.zeros(gpu, [5, 6]);
  const isShape = (name: string) => (e: unknown) =>
    e instanceof ShapeError && e.message.startsWith(`${name}: `);
  assert.throws(() => matmul(x, w), isShape("matmul"));
  assert.throws(() => matmul(x, w, { transposeB: false }), isShape("matmul"));
  const ids = Tensor.zeros(gpu, [5, 4], "i32");
  assert.throws(() => matmul(x, ids), isShape("matmul"));
  const w4 = Tensor.zeros(gpu, [5, 4]);
  assert.throws(() => matmul(x, w4, { out: Tensor.zeros(gpu, [3, 4]) }), isShape("matmul"));
  assert.throws(() => matmul(x, w4, { accumulate: true }), isShape("matmul"));
  assert.throws(() => matmul(x, w4, { wRows: [2, 9] }), isShape("matmul"));
  assert.throws(() => matmul(x, Tensor.zeros(gpu, [2, 5, 4])), isShape("matmul"));
  assert.throws(() => matmulTransA(x, Tensor.zeros(gpu, [4, 2])), isShape("matmulTransA"));
  assert.throws(() => matmulTransA(x, Tensor.zeros(gpu, [2, 3, 2])), isShape("matmulTransA"));
  const y = matmul(x, w4);
  assert.throws(() => matmul(x, w4, { out: y, residual: y }), isShape("matmul"));
  const sq = Tensor.zeros(gpu, [4, 4]);
  assert.throws(() => matmul(sq, sq, { out: sq }), isShape("matmul"));
});
