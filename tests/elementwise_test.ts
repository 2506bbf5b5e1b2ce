import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { add, scale } from "../kernels/elementwise.ts";
import { addRef, scaleRef } from "../kernels/elementwise_ref.ts";
import { ShapeError } from "../kernels/errors.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";

Deno.test("scale() matches reference on odd sizes, into a new tensor and in place", async () => {
  const gpu = await testGpu();
  for (const n of [1, 3, 7, 33, 257, 1000, 70001]) {
    const x = randomArray(n, n, 3);
    const tx = Tensor.fromArray(gpu, x);
    const y = scale(tx, -0.3);
    assertClose(await y.read(), scaleRef(x, Math.fround(-0.3)), 1e-6, `scale n=${n}`);
    assert.equal(scale(tx, 2.5, { out: tx }), tx);
    assertClose(await tx.read(), scaleRef(x, 2.5), 1e-6, `scale in place n=${n}`);
    for (const t of [tx, y]) t.dispose();
  }
});

Deno.test("scale() rejects wrong dtypes and sizes with a ShapeError naming the kernel", async () => {
  const gpu = await testGpu();
  const x = Tensor.zeros(gpu, [4]), xi = Tensor.zeros(gpu, [4], "i32"), o = Tensor.zeros(gpu, [5]);
  const isShape = (e: unknown) => e instanceof ShapeError && /^scale: /.test(e.message);
  assert.throws(() => scale(xi, 2), isShape);
  assert.throws(() => scale(x, 2, { out: o }), isShape);
  assert.throws(() => scale(x, Infinity), isShape);
  for (const t of [x, xi, o]) t.dispose();
});

Deno.test("add() matches its reference on odd sizes", async () => {
  const gpu = await testGpu();
  for (const n of [1, 3, 7, 33, 257, 1000, 70001]) {
    const a = randomArray(n, 1), b = randomArray(n, 2);
    const ta = Tensor.fromArray(gpu, a), tb = Tensor.fromArray(gpu, b);
    const out = add(ta, tb, { alpha: 0.5, beta: -2 });
    assertClose(await out.read(), addRef(a, b, { alpha: 0.5, beta: -2 }), 1e-6, `add n=${n}`);
    for (const t of [ta, tb, out]) t.dispose();
  }
});

Deno.test("add() rejects mismatched shapes with a ShapeError naming the kernel", async () => {
  const gpu = await testGpu();
  const a = Tensor.zeros(gpu, [3]), b = Tensor.zeros(gpu, [4]);
  assert.throws(() => add(a, b), (e) => e instanceof ShapeError && /add: /.test(e.message));
  a.dispose();
  b.dispose();
});

Deno.test("add() works in place (out = a) and rejects out = b", async () => {
  const gpu = await testGpu();
  const a = randomArray(33, 7), b = randomArray(33, 8);
  const ta = Tensor.fromArray(gpu, a), tb = Tensor.fromArray(gpu, b);
  add(ta, tb, { out: ta, alpha: 2, beta: 0.5 });
  assertClose(await ta.read(), addRef(a, b, { alpha: 2, beta: 0.5 }), 1e-6, "in-place add");
  assert.throws(() => add(ta, tb, { out: tb }), ShapeError);
  ta.dispose();
  tb.dispose();
});
