import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { gegluBackward } from "../kernels/geglu_backward.ts";
import { gegluBackwardRef, gegluRef, geluTanhGradRef, geluTanhRef } from "../kernels/geglu_ref.ts";
import { ShapeError } from "../kernels/errors.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";

const TOL = 1e-5;
const H = 1e-5;

const central = (f: (s: number) => number) => (f(H) - f(-H)) / (2 * H);

function assertNear(got: number, want: number, tol: number, what: string): void {
  assert.ok(
    Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)),
    `${what}: ${got} vs ${want}`,
  );
}

Deno.test("geluTanhGradRef() matches central finite differences of geluTanhRef", () => {
  for (let x = -12; x <= 12; x += 0.37) {
    assertNear(geluTanhGradRef(x), central((s) => geluTanhRef(x + s)), 1e-8, `x=${x}`);
  }
  assert.equal(geluTanhGradRef(1e200), 1);
  assert.equal(geluTanhGradRef(-1e200), 0);
});

Deno.test("gegluBackwardRef() matches central finite differences", () => {
  const rows = 3, inter = 5;
  const gate = Array.from(randomArray(rows * inter, 1, 4)),
    up = Array.from(randomArray(rows * inter, 2, 3));
  const dy = Array.from(randomArray(rows * inter, 3));
  const loss = (g: number[], u: number[]) => gegluRef(g, u).reduce((s, v, k) => s + v * dy[k], 0);
  const { dGate, dUp } = gegluBackwardRef(dy, { gate, up });
  const bump = (a: number[], k: number, s: number) => a.map((v, j) => (j === k ? v + s : v));
  for (let k = 0; k < gate.length; k++) {
    assertNear(dGate[k], central((s) => loss(bump(gate, k, s), up)), 1e-8, `dGate[${k}]`);
    assertNear(dUp[k], central((s) => loss(gate, bump(up, k, s))), 1e-8, `dUp[${k}]`);
  }
});

Deno.test("gegluBackward() matches reference on odd shapes (scalar and vec4 kernels)", async () => {
  const gpu = await testGpu();
  // I % 4 == 0 (4, 1000, 192) runs the vec4 kernel, the others the scalar one.
  const shapes = [[1, 1], [3, 3], [7, 7], [33, 257], [3, 1000], [257, 33], [1, 4], [29, 192]];
  for (const [rows, inter] of shapes) {
    const n = rows * inter;
    const g = randomArray(n, rows + inter, 6), u = randomArray(n, 7, 3), d = randomArray(n, 8, 2);
    const tg = Tensor.fromArray(gpu, g, [rows, inter]),
      tu = Tensor.fromArray(gpu, u, [rows, inter]);
    const td = Tensor.fromArray(gpu, d, [rows, inter]);
    const { dGate, dUp } = gegluBackward(td, { gate: tg, up: tu });
    assert.deepEqual(dGate.shape, [rows, inter]);
    const want = gegluBackwardRef(d, { gate: g, up: u });
    assertClose(await dGate.read(), want.dGate, TOL, `dGate ${rows}x${inter}`);
    assertClose(await dUp.read(), want.dUp, TOL, `dUp ${rows}x${inter}`);
    for (const t of [tg, tu, td, dGate, dUp]) t.dispose();
  }
});

Deno.test("gegluBackward() follows the reference across [-12, 12] and is exact in the limits", async () => {
  const gpu = await testGpu();
  const sweep = Array.from({ length: 2400 }, (_, i) => -12 + i * 0.01);
  const huge = [-Infinity, -1e30, -3e13, -1e4, -100, -20, -10.5, 10.5, 20, 100, 1e4, 3e13, 1e30];
  const xs = Float32Array.from([...sweep, ...huge, Infinity, 0, 0]); // 2416 = 604·4
  for (const shape of [[xs.length], [xs.length / 4, 4]]) { // scalar and vec4 kernels
    const tg = Tensor.fromArray(gpu, xs, shape);
    const tu = Tensor.fromArray(gpu, xs.map(() => 2), shape);
    const td = Tensor.fromArray(gpu, xs.map(() => 1.5), shape);
    const { dGate, dUp } = gegluBackward(td, { gate: tg, up: tu });
    const dg = await dGate.read(), du = await dUp.read();
    xs.forEach((x, i) => {
      assert.ok(Number.isFinite(dg[i]), `dGate(${x}) finite, got ${dg[i]}`);
      const wantDg = 3 * geluTanhGradRef(x);
      assertNear(dg[i], wantDg, Math.abs(x) > 10 ? 0 : TOL, `dGate(${x}) ${shape.length}-D`);
      if (Number.isFinite(x)) assertNear(du[i], 1.5 * geluTanhRef(x), TOL, `dUp(${x})`);
    });
    for (const t of [tg, tu, td, dGate, dUp]) t.dispose();
  }
});

Deno.test("gegluBackward() writes into outs or over its inputs", async () => {
  const gpu = await testGpu();
  for (const [rows, inter] of [[7, 33], [5, 64]]) {
    const n = rows * inter;
    const g = randomArray(n, 1, 4), u = randomArray(n, 2), d = randomArray(n, 3);
    const want = gegluBackwardRef(d, { gate: g, up: u });
    const tg = Tensor.fromArray(gpu, g, [rows, inter]),
      tu = Tensor.fromArray(gpu, u, [rows, inter]);
    const td = Tensor.fromArray(gpu, d, [rows, inter]);
    const oG = Tensor.empty(gpu, [rows, inter]), oU = Tensor.empty(gpu, [rows, inter]);
    const outs = gegluBackward(td, { gate: tg, up: tu }, { dGate: oG, dUp: oU });
    assert.equal(outs.dGate, oG);
    assert.equal(outs.dUp, oU);
    assertClose(await oG.read(), want.dGate, TOL, "dGate out");
    assertClose(await oU.read(), want.dUp, TOL, "dUp out");
    const same = gegluBackward(td, { gate: tg, up: tu }, { dGate: tg, dUp: tu });
    assert.equal(same.dGate, tg);
    assertClose(await tg.read(), want.dGate, TOL, "dGate over gate");
    assertClose(await tu.read(), want.dUp, TOL, "dUp over up");

    for (const t of [tg, tu, td, oG, oU]) t.dispose();
  }
});

Deno.test("gegluBackward() is bit-identical run to run", async () => {
  const gpu = await testGpu();
  const n = 70001;
  const tg = Tensor.fromArray(gpu, randomArray(n, 1, 6)),
    tu = Tensor.fromArray(gpu, randomArray(n, 2));
  const td = Tensor.fromArray(gpu, randomArray(n, 3));
  const runs = [];
  for (let run = 0; run < 2; run++) {
    const { dGate, dUp } = gegluBackward(td, { gate: tg, up: tu });
    runs.push([await dGate.read(), await dUp.read()]);
    for (const t of [dGate, dUp]) t.dispose();
  }
  assert.deepEqual(runs[1], runs[0]);
  for (const t of [tg, tu, td]) t.dispose();
});

Deno.test("gegluBackward() rejects wrong shapes, dtypes and aliasing with a ShapeError naming the kernel", async () => {
  const gpu = await testGpu();
  const a = Tensor.zeros(gpu, [3, 4]), b = Tensor.zeros(gpu, [4, 3]), c = Tensor.zeros(gpu, [3, 4]);
  const e = Tensor.zeros(gpu, [3, 4]), bf = Tensor.zeros(gpu, [3, 4], "bf16");
  const o = Tensor.zeros(gpu, [11]);
  const is = (k: string) => (err: unknown) =>
    err instanceof ShapeError && err.message.startsWith(k);
  assert.throws(() => gegluBackward(c, { gate: a, up: b }), is("gegluBackward: "));
  assert.throws(() => gegluBackward(b, { gate: a, up: c }), is("gegluBackward: "));
  assert.throws(() => gegluBackward(c, { gate: a, up: bf }), is("gegluBackward: "));
  assert.throws(() => gegluBackward(e, { gate: a, up: c }, { dGate: o }), is("gegluBackward: "));
  assert.throws(() => gegluBackward(e, { gate: a, up: c }, { dGate: a }), is("gegluBackward: "));
  assert.throws(
    () => gegluBackward(e, { gate: a, up: c }, { dGate: e, dUp: c }),
    is("gegluBackward: "),
  );
  assert.throws(
    () => gegluBackward(e, { gate: a, up: a }, { dGate: a, dUp: a }),
    is("gegluBackward: "),
  );
  assert.throws(
    () => gegluBackward(e, { gate: a, up: c }, { dGate: b, dUp: b }),
    is("gegluBackward: "),
  );
  for (const t of [a, b, c, e, bf, o]) t.dispose();
});
