import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { RMS_NORM_VARIANTS, rmsNorm, rmsNormCandidates } from "../kernels/rms_norm.ts";
import { rmsNormRef } from "../kernels/rms_norm_ref.ts";
import { roundToBf16 } from "../kernels/dtype.ts";
import { ShapeError } from "../kernels/errors.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";
import { EPS, ODD_SHAPES, TOL } from "./_rms_norm.ts";
import { ADAPTER_KINDS, runnableVariants, skipVariant, standInGpu } from "./_reduce_variants.ts";

Deno.test("rmsNorm() matches reference for odd widths and rows, f32/bf16 w, every variant", async () => {
  const gpu = await testGpu();
  const variants = runnableVariants(gpu, RMS_NORM_VARIANTS, "rmsNorm odd shapes");
  for (const [rows, d] of ODD_SHAPES) {
    for (const [dtype, variant] of variants.flatMap((s) => [["f32", s], ["bf16", s]] as const)) {
      const x = randomArray(rows * d, rows * 31 + d, 3);
      const w32 = randomArray(d, d + 7, 0.5);
      const w = dtype === "bf16" ? roundToBf16(w32) : w32;
      const tx = Tensor.fromArray(gpu, x, [rows, d]);
      const tw = Tensor.fromArray(gpu, w32, [d], dtype);
      const y = rmsNorm(tx, tw, { eps: EPS, variant });
      assert.deepEqual(y.shape, [rows, d]);
      const what = `rmsNorm ${rows}x${d} ${dtype} ${variant}`;
      assertClose(await y.read(), rmsNormRef(x, w, { eps: EPS }).y, TOL, what);
      for (const t of [tx, tw, y]) t.dispose();
    }
  }
});

Deno.test("rmsNorm() stays within 1e-5 on wide rows with a large dynamic range", async () => {
  const gpu = await testGpu();
  const rows = 3, d = 6912;
  const x = randomArray(rows * d, 99, 1);
  for (let i = 0; i < x.length; i += 97) x[i] *= 300; // outliers, as in real hidden states
  const w = randomArray(d, 5, 0.5);
  const tx = Tensor.fromArray(gpu, x, [rows, d]), tw = Tensor.fromArray(gpu, w);
  const want = rmsNormRef(x, w, { eps: EPS }).y;
  for (const variant of runnableVariants(gpu, RMS_NORM_VARIANTS, "rmsNorm outliers")) {
    const y = rmsNorm(tx, tw, { variant });
    assertClose(await y.read(), want, TOL, `rmsNorm outliers ${variant}`);
    y.dispose();
  }
  for (const t of [tx, tw]) t.dispose();
});

Deno.test("rmsNorm() normalises per head for q/k norms ([T, H, headDim] with w [headDim])", async () => {
  const gpu = await testGpu();
  const shapes = [[1, 4, 32], [7, 3, 256], [33, 1, 7]];
  for (
    const [[t, h, hd], variant] of shapes.flatMap((s) =>
      runnableVariants(gpu, RMS_NORM_VARIANTS, "rmsNorm heads").map((g) => [s, g] as const)
    )
  ) {
    const x = randomArray(t * h * hd, t + h + hd, 2);
    const w = randomArray(hd, hd, 0.5);
    const tx = Tensor.fromArray(gpu, x, [t, h, hd]);
    const tw = Tensor.fromArray(gpu, w, [hd], "bf16");
    const y = rmsNorm(tx, tw, { eps: EPS, variant });
    assert.deepEqual(y.shape, [t, h, hd]);
    const want = rmsNormRef(x, roundToBf16(w), { eps: EPS }).y;
    assertClose(await y.read(), want, TOL, `rmsNorm heads ${t}x${h}x${hd} ${variant}`);
    for (const z of [tx, tw, y]) z.dispose();
  }
});

for (const variant of RMS_NORM_VARIANTS) {
  Deno.test(`rmsNorm() fuses the residual add into a new, the residual's or x's buffer (${variant})`, async () => {
    const gpu = await testGpu();
    if (skipVariant(gpu, variant, "rmsNorm residual")) return;
    const rows = 7, d = 257;
    const x = randomArray(rows * d, 1, 2), res = randomArray(rows * d, 2, 20);
    const w = randomArray(d, 3, 0.5);
    const want = rmsNormRef(x, w, { eps: EPS, residual: res }).y;
    const tw = Tensor.fromArray(gpu, w);

    const tx = Tensor.fromArray(gpu, x, [rows, d]), tr = Tensor.fromArray(gpu, res, [rows, d]);
    const y = rmsNorm(tx, tw, { residual: tr, variant });
    assertClose(await y.read(), want, TOL, "residual → new tensor");
    assert.deepEqual(await tx.read(), x, "x unchanged");
    assert.deepEqual(await tr.read(), res, "residual unchanged");

    const same = rmsNorm(tx, tw, { residual: tr, out: tr, variant });
    assert.equal(same, tr);
    assertClose(await tr.read(), want, TOL, "residual in place");

    const tx2 = Tensor.fromArray(gpu, x, [rows, d]), tr2 = Tensor.fromArray(gpu, res, [rows, d]);
    rmsNorm(tx2, tw, { residual: tr2, out: tx2, variant });
    assertClose(await tx2.read(), want, TOL, "into x");

    const tx3 = Tensor.fromArray(gpu, x, [rows, d]);
    rmsNorm(tx3, tw, { out: tx3, variant });
    assertClose(await tx3.read(), rmsNormRef(x, w, { eps: EPS }).y, TOL, "plain norm in place");
    for (const t of [tw, tx, tr, y, tx2, tr2, tx3]) t.dispose();
  });

  Deno.test(`rmsNorm() writes the per-row 1/rms for the backward pass (${variant})`, async () => {
    const gpu = await testGpu();
    if (skipVariant(gpu, variant, "rmsNorm rstd")) return;
    const rows = 33, d = 1000;
    const x = randomArray(rows * d, 11, 4), w = randomArray(d, 12, 0.5);
    const tx = Tensor.fromArray(gpu, x, [rows, d]), tw = Tensor.fromArray(gpu, w, [d], "bf16");
    const rstd = Tensor.empty(gpu, [rows]);
    const y = rmsNorm(tx, tw, { eps: 1e-3, rstd, variant });
    const want = rmsNormRef(x, roundToBf16(w), { eps: 1e-3 });
    const got = await rstd.read();
    for (let r = 0; r < rows; r++) {
      assert.ok(Math.abs(got[r] - want.rstd[r]) <= TOL * want.rstd[r], `rstd row ${r}`);
    }
    assertClose(await y.read(), want.y, TOL, "y with rstd");
    for (const t of [tx, tw, rstd, y]) t.dispose();
  });
}

Deno.test("rmsNorm() of an all-zero row is zero (eps keeps it finite)", async () => {
  const gpu = await testGpu();
  const tx = Tensor.zeros(gpu, [3, 33]), tw = Tensor.fromArray(gpu, randomArray(33, 4));
  for (const variant of runnableVariants(gpu, RMS_NORM_VARIANTS, "rmsNorm zero rows")) {
    const y = rmsNorm(tx, tw, { variant });
    assert.deepEqual(await y.read(), new Float32Array(99));
    y.dispose();
  }
  for (const t of [tx, tw]) t.dispose();
});

Deno.test("rmsNorm() rejects wrong shapes and dtypes with a ShapeError naming the kernel", async () => {
  const gpu = await testGpu();
  const x = Tensor.zeros(gpu, [3, 8]), w = Tensor.zeros(gpu, [7]), w8 = Tensor.zeros(gpu, [8]);
  const xi = Tensor.zeros(gpu, [3, 8], "i32"), w2 = Tensor.zeros(gpu, [2, 4]);
  const r = Tensor.zeros(gpu, [3, 7]), rs = Tensor.zeros(gpu, [4]), o = Tensor.zeros(gpu, [25]);
  const isShape = (e: unknown) => e instanceof ShapeError && /^rmsNorm: /.test(e.message);
  assert.throws(() => rmsNorm(x, w), isShape);
  assert.throws(() => rmsNorm(xi, w8), isShape);
  assert.throws(() => rmsNorm(x, w2), isShape);
  assert.throws(() => rmsNorm(x, w8, { residual: r }), isShape);
  assert.throws(() => rmsNorm(x, w8, { residual: x }), isShape);
  assert.throws(() => rmsNorm(x, w8, { rstd: rs }), isShape);
  assert.throws(() => rmsNorm(x, w8, { out: o }), isShape);
  assert.throws(() => rmsNorm(x, w8, { eps: -1 }), isShape);
  assert.throws(() => rmsNorm(x, w8, { variant: "fast" }), isShape);
  assert.throws(() => rmsNorm(x, w8, { variant: "fast" }), /variant must be one of .*got fast/);
  if (!gpu.features.subgroups) {
    assert.throws(() => rmsNorm(x, w8, { variant: "sg" }), /variant must be one of row, workgroup/);
  }
  for (const t of [x, w, w8, xi, w2, r, rs, o]) t.dispose();
});

Deno.test("rmsNormCandidates(): today's kernel first on fallback adapters, sg first on GPUs with subgroups", async () => {
  const table = ADAPTER_KINDS.map((kind) =>
    rmsNormCandidates(standInGpu(kind), { rows: 7, d: 33 })
  );
  assert.deepEqual(table, [
    ["row", "workgroup"],
    ["row", "workgroup", "sg"],
    ["workgroup", "row"],
    ["sg", "workgroup", "row"],
  ]);
  // Every id is a candidate somewhere: a new variant cannot hide from the tests.
  assert.deepEqual(new Set(table.flat()), new Set(RMS_NORM_VARIANTS));
  const gpu = await testGpu();
  const first = rmsNormCandidates(gpu, { rows: 7, d: 33 })[0];
  const today = gpu.adapter.isFallbackAdapter ? "row" : "workgroup";
  assert.equal(first, !gpu.adapter.isFallbackAdapter && gpu.features.subgroups ? "sg" : today);
});
