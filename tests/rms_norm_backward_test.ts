import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { RMS_NORM_VARIANTS, rmsNorm } from "../kernels/rms_norm.ts";
import { rmsNormBackward } from "../kernels/rms_norm_backward.ts";
import { rmsNormBackwardRef, rmsNormRef } from "../kernels/rms_norm_ref.ts";
import { roundToBf16 } from "../kernels/dtype.ts";
import { ShapeError } from "../kernels/errors.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";
import { EPS, ODD_SHAPES, TOL } from "./_rms_norm.ts";
import { runnableVariants, skipVariant } from "./_reduce_variants.ts";

/** Float32 rstd of the reference forward: what the forward kernel hands to the backward. */
function rstdF32(x: ArrayLike<number>, w: ArrayLike<number>, eps = EPS): Float32Array {
  return Float32Array.from(rmsNormRef(x, w, { eps }).rstd);
}

Deno.test("rmsNormBackwardRef() matches central finite differences of rmsNormRef", () => {
  for (const [rows, d, eps] of [[3, 7, 1e-6], [2, 33, 1e-2], [1, 1, 1e-6]]) {
    const x = Array.from(randomArray(rows * d, d, 2)), w = Array.from(randomArray(d, 3, 0.5));
    const dy = Array.from(randomArray(rows * d, 4));
    const loss = (xs: number[], ws: number[]) =>
      rmsNormRef(xs, ws, { eps }).y.reduce((s, v, k) => s + v * dy[k], 0);
    const { dx, dw } = rmsNormBackwardRef(dy, { x, w, rstd: rmsNormRef(x, w, { eps }).rstd });
    const h = 1e-5;
    const central = (f: (s: number) => number) => (f(h) - f(-h)) / (2 * h);
    for (let k = 0; k < x.length; k++) {
      const fd = central((s) => loss(x.map((v, j) => (j === k ? v + s : v)), w));
      assert.ok(Math.abs(fd - dx[k]) <= 1e-7 * Math.max(1, Math.abs(dx[k])), `dx[${k}]`);
    }
    for (let i = 0; i < d; i++) {
      const fd = central((s) => loss(x, w.map((v, j) => (j === i ? v + s : v))));
      assert.ok(Math.abs(fd - dw[i]) <= 1e-7 * Math.max(1, Math.abs(dw[i])), `dw[${i}]`);
    }
  }
});

Deno.test("rmsNormBackward() matches reference on odd shapes, f32/bf16 w, every variant", async () => {
  const gpu = await testGpu();
  const variants = runnableVariants(gpu, RMS_NORM_VARIANTS, "rmsNormBackward odd shapes");
  for (const [rows, d] of ODD_SHAPES) {
    const x = randomArray(rows * d, rows * 31 + d, 3), dy = randomArray(rows * d, rows + 5);
    const w32 = randomArray(d, d + 7, 0.5), dw0 = randomArray(d, 9, 2);
    const tx = Tensor.fromArray(gpu, x, [rows, d]), tdy = Tensor.fromArray(gpu, dy, [rows, d]);
    for (const dtype of ["f32", "bf16"] as const) {
      const w = dtype === "bf16" ? roundToBf16(w32) : w32;
      const rstd = rstdF32(x, w);
      const want = rmsNormBackwardRef(dy, { x, w, rstd });
      const wantDw = want.dw.map((v, i) => v + dw0[i]);
      const tw = Tensor.fromArray(gpu, w32, [d], dtype), tr = Tensor.fromArray(gpu, rstd);
      for (const variant of variants) {
        const dw = Tensor.fromArray(gpu, dw0);
        const dx = rmsNormBackward(tdy, { x: tx, w: tw, rstd: tr }, { dw, variant });
        assert.deepEqual(dx.shape, [rows, d]);
        const what = `rmsNormBackward ${rows}x${d} ${dtype} ${variant}`;
        assertClose(await dx.read(), want.dx, TOL, `${what} dx`);
        assertClose(await dw.read(), wantDw, TOL, `${what} dw`);
        for (const t of [dx, dw]) t.dispose();
      }
      for (const t of [tw, tr]) t.dispose();
    }
    for (const t of [tx, tdy]) t.dispose();
  }
});

Deno.test("rmsNormBackward() stays within 1e-5 on wide rows with outliers, after the forward kernel", async () => {
  const gpu = await testGpu();
  const rows = 5, d = 6912;
  const x = randomArray(rows * d, 99, 1), dy = randomArray(rows * d, 98, 1);
  for (let i = 0; i < x.length; i += 97) x[i] *= 300; // outliers, as in real hidden states
  const w = randomArray(d, 5, 0.5);
  const tx = Tensor.fromArray(gpu, x, [rows, d]), tw = Tensor.fromArray(gpu, w);
  const tdy = Tensor.fromArray(gpu, dy, [rows, d]), tr = Tensor.empty(gpu, [rows]);
  rmsNorm(tx, tw, { rstd: tr }).dispose();
  const want = rmsNormBackwardRef(dy, { x, w, rstd: await tr.read() });
  for (const variant of runnableVariants(gpu, RMS_NORM_VARIANTS, "rmsNormBackward outliers")) {
    const dw = Tensor.zeros(gpu, [d]);
    const dx = rmsNormBackward(tdy, { x: tx, w: tw, rstd: tr }, { dw, variant });
    assertClose(await dx.read(), want.dx, TOL, `outliers dx ${variant}`);
    assertClose(await dw.read(), want.dw, TOL, `outliers dw ${variant}`);
    for (const t of [dx, dw]) t.dispose();
  }
  for (const t of [tx, tw, tdy, tr]) t.dispose();
});

Deno.test("rmsNormBackward() handles per-head q/k norms ([T, H, headDim] with w [headDim])", async () => {
  const gpu = await testGpu();
  for (const [t, h, hd] of [[1, 4, 32], [7, 3, 256], [33, 1, 7], [65, 4, 33]]) {
    const x = randomArray(t * h * hd, t + h + hd, 2), dy = randomArray(t * h * hd, hd, 1);
    const w = randomArray(hd, hd, 0.5);
    const rstd = rstdF32(x, roundToBf16(w));
    const want = rmsNormBackwardRef(dy, { x, w: roundToBf16(w), rstd });
    const tx = Tensor.fromArray(gpu, x, [t, h, hd]), tdy = Tensor.fromArray(gpu, dy, [t, h, hd]);
    const tw = Tensor.fromArray(gpu, w, [hd], "bf16"), tr = Tensor.fromArray(gpu, rstd, [t, h]);
    for (const variant of runnableVariants(gpu, RMS_NORM_VARIANTS, "rmsNormBackward heads")) {
      const dw = Tensor.zeros(gpu, [hd]);
      const dx = rmsNormBackward(tdy, { x: tx, w: tw, rstd: tr }, { dw, variant });
      assert.deepEqual(dx.shape, [t, h, hd]);
      assertClose(await dx.read(), want.dx, TOL, `heads ${t}x${h}x${hd} ${variant} dx`);
      assertClose(await dw.read(), want.dw, TOL, `heads ${t}x${h}x${hd} ${variant} dw`);
      for (const z of [dx, dw]) z.dispose();
    }
    for (const z of [tx, tdy, tw, tr]) z.dispose();
  }
});

for (const variant of RMS_NORM_VARIANTS) {
  Deno.test(`rmsNormBackward() accumulates dw over micro-batches and dx into out, or writes dx over dy (${variant})`, async () => {
    const gpu = await testGpu();
    if (skipVariant(gpu, variant, "rmsNormBackward accumulate")) return;
    const rows = 33, d = 257;
    const w = randomArray(d, 1, 0.5), tw = Tensor.fromArray(gpu, w);
    const batches = [1, 2].map((seed) => {
      const x = randomArray(rows * d, seed, 2), dy = randomArray(rows * d, seed + 10);
      const rstd = rstdF32(x, w);
      return { x, dy, rstd, want: rmsNormBackwardRef(dy, { x, w, rstd }) };
    });
    const dw = Tensor.zeros(gpu, [d]);
    const dh0 = randomArray(rows * d, 3, 5);
    const dh = Tensor.fromArray(gpu, dh0, [rows, d]);
    for (const b of batches) {
      const tx = Tensor.fromArray(gpu, b.x, [rows, d]), tr = Tensor.fromArray(gpu, b.rstd);
      const tdy = Tensor.fromArray(gpu, b.dy, [rows, d]);
      assert.equal(
        rmsNormBackward(tdy, { x: tx, w: tw, rstd: tr }, {
          dw,
          out: dh,
          accumulateDx: true,
          variant,
        }),
        dh,
      );
      for (const t of [tx, tr, tdy]) t.dispose();
    }
    const [b1, b2] = batches;
    assertClose(await dw.read(), b1.want.dw.map((v, i) => v + b2.want.dw[i]), TOL, "dw sum");
    const wantDh = dh0.map((v, k) => v + b1.want.dx[k] + b2.want.dx[k]);
    assertClose(await dh.read(), wantDh, TOL, "dx accumulated into dh");

    // In place over dy, with dw still reading the original dy (it runs first).
    const tx = Tensor.fromArray(gpu, b1.x, [rows, d]), tr = Tensor.fromArray(gpu, b1.rstd);
    const tdy = Tensor.fromArray(gpu, b1.dy, [rows, d]), dw1 = Tensor.zeros(gpu, [d]);
    assert.equal(
      rmsNormBackward(tdy, { x: tx, w: tw, rstd: tr }, { dw: dw1, out: tdy, variant }),
      tdy,
    );
    assertClose(await tdy.read(), b1.want.dx, TOL, "dx in place over dy");
    assertClose(await dw1.read(), b1.want.dw, TOL, "dw with in-place dx");
    for (const t of [tw, dw, dh, tx, tr, tdy, dw1]) t.dispose();
  });
}

Deno.test("rmsNormBackward() skips dw when not asked (frozen weights): one dispatch", async () => {
  const gpu = await testGpu();
  const rows = 7, d = 33;
  const x = randomArray(rows * d, 4), dy = randomArray(rows * d, 5), w = randomArray(d, 6);
  const rstd = rstdF32(x, w);
  const tx = Tensor.fromArray(gpu, x, [rows, d]), tdy = Tensor.fromArray(gpu, dy, [rows, d]);
  const tw = Tensor.fromArray(gpu, w), tr = Tensor.fromArray(gpu, rstd);
  const before = gpu.dispatchCount;
  const dx = rmsNormBackward(tdy, { x: tx, w: tw, rstd: tr });
  assert.equal(gpu.dispatchCount - before, 1);
  assertClose(await dx.read(), rmsNormBackwardRef(dy, { x, w, rstd }).dx, TOL, "dx only");
  for (const t of [tx, tdy, tw, tr, dx]) t.dispose();
});

Deno.test("rmsNormBackward() is bit-identical run to run (two-stage dw over many rows)", async () => {
  const gpu = await testGpu();
  const rows = 1500, d = 257; // 24 blocks of 63 rows in the first dw stage
  const x = randomArray(rows * d, 7, 3), dy = randomArray(rows * d, 8), w = randomArray(d, 9);
  const rstd = rstdF32(x, w);
  const want = rmsNormBackwardRef(dy, { x, w, rstd });
  const tx = Tensor.fromArray(gpu, x, [rows, d]), tdy = Tensor.fromArray(gpu, dy, [rows, d]);
  const tw = Tensor.fromArray(gpu, w, [d], "bf16"), tr = Tensor.fromArray(gpu, rstd);
  const wantBf16 = rmsNormBackwardRef(dy, { x, w: roundToBf16(w), rstd });
  for (const variant of runnableVariants(gpu, RMS_NORM_VARIANTS, "rmsNormBackward bits")) {
    const runs = [];
    for (let run = 0; run < 2; run++) {
      const dw = Tensor.zeros(gpu, [d]);
      const dx = rmsNormBackward(tdy, { x: tx, w: tw, rstd: tr }, { dw, variant });
      runs.push({ dx: await dx.read(), dw: await dw.read() });
      for (const t of [dx, dw]) t.dispose();
    }
    assert.deepEqual(runs[1].dx, runs[0].dx, `dx bit-identical ${variant}`);
    assert.deepEqual(runs[1].dw, runs[0].dw, `dw bit-identical ${variant}`);
    assertClose(runs[0].dw, wantBf16.dw, TOL, `dw over ${rows} rows ${variant}`);
    assertClose(runs[0].dx, wantBf16.dx, TOL, `dx ${variant}`);
  }
  assert.ok(want.dx.some((v, k) => v !== wantBf16.dx[k]), "bf16 w changes the reference dx");
  for (const t of [tx, tdy, tw, tr]) t.dispose();
});

Deno.test("rmsNormBackward() rejects wrong shapes, dtypes and aliasing with a ShapeError naming the kernel", async () => {
  const gpu = await testGpu();
  const x = Tensor.zeros(gpu, [3, 8]), w = Tensor.zeros(gpu, [8]), r = Tensor.zeros(gpu, [3]);
  const dy = Tensor.zeros(gpu, [3, 8]), w7 = Tensor.zeros(gpu, [7]), r4 = Tensor.zeros(gpu, [4]);
  const dy7 = Tensor.zeros(gpu, [3, 7]), dwBad = Tensor.zeros(gpu, [7]);
  const xi = Tensor.zeros(gpu, [3, 8], "i32"), o = Tensor.zeros(gpu, [25]);
  const dwBf = Tensor.zeros(gpu, [8], "bf16"), dw = Tensor.zeros(gpu, [8]);
  const isShape = (e: unknown) => e instanceof ShapeError && /^rmsNormBackward: /.test(e.message);
  assert.throws(() => rmsNormBackward(dy, { x, w: w7, rstd: r }), isShape);
  assert.throws(() => rmsNormBackward(dy, { x: xi, w, rstd: r }), isShape);
  assert.throws(() => rmsNormBackward(dy, { x, w, rstd: r4 }), isShape);
  assert.throws(() => rmsNormBackward(dy7, { x, w, rstd: r }), isShape);
  assert.throws(() => rmsNormBackward(dy, { x, w, rstd: r }, { dw: dwBad }), isShape);
  assert.throws(() => rmsNormBackward(dy, { x, w, rstd: r }, { dw: dwBf }), isShape);
  assert.throws(() => rmsNormBackward(dy, { x, w, rstd: r }, { out: o }), isShape);
  assert.throws(() => rmsNormBackward(dy, { x, w, rstd: r }, { out: x }), isShape);
  assert.throws(() => rmsNormBackward(dy, { x, w, rstd: r }, { accumulateDx: true }), isShape);
  const x1 = Tensor.zeros(gpu, [1, 8]),
    r1 = Tensor.zeros(gpu, [1]),
    dy1 = Tensor.zeros(gpu, [1, 8]);
  assert.throws(
    () => rmsNormBackward(dy1, { x: x1, w, rstd: r1 }, { dw: x1.reshape([8]) }),
    isShape,
  );
  assert.throws(
    () => rmsNormBackward(dy1, { x: x1, w, rstd: r1 }, { dw, out: dw.reshape([1, 8]) }),
    isShape,
  );
  assert.throws(() => rmsNormBackward(dy, { x, w, rstd: r }, { variant: "fast" }), isShape);
  for (const t of [x, w, r, dy, w7, r4, dy7, dwBad, xi, o, dwBf, dw, x1, r1, dy1]) t.dispose();
});
