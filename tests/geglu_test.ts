import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { geglu } from "../kernels/geglu.ts";
import { gegluRef, geluTanhRef } from "../kernels/geglu_ref.ts";
import { ShapeError } from "../kernels/errors.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";

const TOL = 1e-5;
const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url).pathname;

interface ActivationCheck {
  readonly x: number[];
  readonly y_f64: number[];
}

Deno.test("geluTanhRef() reproduces the fixture's activation_check table", async () => {
  const forward = JSON.parse(await Deno.readTextFile(`${FIXTURE}/forward.json`));
  const check: ActivationCheck = forward.activation_check;
  assert.ok(check.x.length > 10);
  check.x.forEach((x, i) => {
    assert.ok(Math.abs(geluTanhRef(x) - check.y_f64[i]) <= 1e-15, `x=${x}`);
  });
});

Deno.test("geglu() matches the fixture's activation_check table (gate = x, up = 1)", async () => {
  const gpu = await testGpu();
  const forward = JSON.parse(await Deno.readTextFile(`${FIXTURE}/forward.json`));
  const check: ActivationCheck = forward.activation_check;
  const n = check.x.length;
  // [n] runs the scalar kernel, [n, 4] (each x repeated) the vec4 one.
  for (const width of [1, 4]) {
    const xs = check.x.flatMap((x) => new Array(width).fill(x));
    const want = check.y_f64.flatMap((y) => new Array(width).fill(y));
    const gate = Tensor.fromArray(gpu, xs, [n, width]);
    const up = Tensor.fromArray(gpu, new Array(n * width).fill(1), [n, width]);
    const y = geglu(gate, up);
    assertClose(await y.read(), want, TOL, `activation_check width ${width}`);
    for (const t of [gate, up, y]) t.dispose();
  }
});

Deno.test("geglu() is finite and exact in the limits for huge |gate|", async () => {
  const gpu = await testGpu();
  const xs = [-1e30, -3e13, -1e4, -100, -20, -10.5, 10.5, 20, 100, 1e4, 3e13, 1e30];
  for (const shape of [[12], [3, 4]]) { // scalar and vec4 kernels
    const gate = Tensor.fromArray(gpu, xs, shape),
      up = Tensor.fromArray(gpu, xs.map(() => 2), shape);
    const got = await geglu(gate, up).read();
    xs.forEach((x, i) => {
      assert.ok(Number.isFinite(got[i]), `gelu(${x}) finite, got ${got[i]}`);
      const want = x > 0 ? 2 * Math.fround(x) : 0;
      assert.ok(Math.abs(got[i] - want) <= 1e-6 * Math.max(1, Math.abs(want)), `gelu(${x})`);
    });
    for (const t of [gate, up]) t.dispose();
  }
});

Deno.test("geglu() matches reference on odd shapes", async () => {
  const gpu = await testGpu();
  // I % 4 == 0 (4, 1000, 192) runs the vec4 kernel, the others the scalar one.
  const shapes = [[1, 1], [3, 3], [7, 7], [33, 257], [3, 1000], [257, 33], [1, 4], [29, 192]];
  for (const [rows, inter] of shapes) {
    const g = randomArray(rows * inter, rows + inter, 5), u = randomArray(rows * inter, 7, 3);
    const tg = Tensor.fromArray(gpu, g, [rows, inter]),
      tu = Tensor.fromArray(gpu, u, [rows, inter]);
    const y = geglu(tg, tu);
    assert.deepEqual(y.shape, [rows, inter]);
    assertClose(await y.read(), gegluRef(g, u), TOL, `geglu ${rows}x${inter}`);
    for (const t of [tg, tu, y]) t.dispose();
  }
});

Deno.test("geglu() writes into an out tensor", async () => {
  const gpu = await testGpu();
  const g = randomArray(70001, 1, 6), u = randomArray(70001, 2);
  const tg = Tensor.fromArray(gpu, g), tu = Tensor.fromArray(gpu, u);
  const out = Tensor.empty(gpu, [70001]);
  assert.equal(geglu(tg, tu, { out }), out);
  assertClose(await out.read(), gegluRef(g, u), TOL, "geglu out");
  for (const t of [tg, tu, out]) t.dispose();
});

Deno.test("geglu() rejects wrong shapes and dtypes with a ShapeError naming the kernel", async () => {
  const gpu = await testGpu();
  const a = Tensor.zeros(gpu, [3, 4]), b = Tensor.zeros(gpu, [4, 3]), c = Tensor.zeros(gpu, [3, 5]);
  const bf = Tensor.zeros(gpu, [3, 4], "bf16"), o = Tensor.zeros(gpu, [11]);
  const is = (k: string) => (e: unknown) => e instanceof ShapeError && e.message.startsWith(k);
  assert.throws(() => geglu(a, b), is("geglu: "));
  assert.throws(() => geglu(a, bf), is("geglu: "));
  assert.throws(() => geglu(a, a, { out: o }), is("geglu: "));
  for (const t of [a, b, c, bf, o]) t.dispose();
});
