import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { gegluBackward, gegluFusedBackward } from "../kernels/geglu.ts";
import {
  gegluBackwardRef,
  gegluFusedBackwardRef,
  gegluFusedRef,
  gegluRef,
  geluTanhGradRef,
  geluTanhRef,
} from "../kernels/geglu_ref.ts";
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

Deno.test("gegluBackwardRef() and gegluFusedBackwardRef() match central finite differences", () => {
  const rows = 3, inter = 5;
  const gate = Array.from(randomArray(rows * inter, 1, 4)),
    up = Array.from(randomArray(rows * inter, 2, 3));
  const dy = Array.from(randomArray(rows * inter, 3));
  const loss = (g: number[], u: number[]) => gegluRef(g, u).reduce((s, v, k) => s + v * dy[k], 0);
  const { dGate, dUp } = gegluBackwardRef(gate, up, dy);
  const bump = (a: number[], k: number, s: number) => a.map((v, j) => (j === k ? v + s : v));
  for (let k = 0; k < gate.length; k++) {
    assertNear(dGate[k], central((s) => loss(bump(gate, k, s), up)), 1e-8, `dGate[${k}]`);
    assertNear(dUp[k], central((s) => loss(gate, bump(up, k, s))), 1e-8, `dUp[${k}]`);
  }
  const gu = Array.from(randomArray(rows * 2 * inter, 4, 4));
  const fusedLoss = (a: number[]) => gegluFusedRef(a, inter).reduce((s, v, k) => s + v * dy[k], 0);
  const dgu = gegluFusedBackwardRef(gu, dy, inter);
  for (let k = 0; k < gu.length; k++) {
    assertNear(dgu[k], central((s) => fusedLoss(bump(gu, k, s))), 1e-8, `dGateUp[${k}]`);
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
    const { dGate, dUp } = gegluBackward(tg, tu, td);
    assert.deepEqual(dGate.shape, [rows, inter]);
    const want = gegluBackwardRef(g, u, d);
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
    const { dGate, dUp } = gegluBackward(tg, tu, td);
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

Deno.test("gegluFusedBackward() matches reference on a [T, 2I] gate|up tensor", async () => {
  const gpu = await testGpu();
  for (const [rows, inter] of [[1, 1], [7, 3], [33, 257], [3, 1000], [1, 4], [7, 192], [257, 7]]) {
    const gu = randomArray(rows * 2 * inter, rows * inter, 4), d = randomArray(rows * inter, 3);
    const t = Tensor.fromArray(gpu, gu, [rows, 2 * inter]);
    const td = Tensor.fromArray(gpu, d, [rows, inter]);
    const dgu = gegluFusedBackward(t, td);
    assert.deepEqual(dgu.shape, [rows, 2 * inter]);
    const want = gegluFusedBackwardRef(gu, d, inter);
    assertClose(await dgu.read(), want, TOL, `gegluFusedBackward ${rows}x${inter}`);
    for (const z of [t, td, dgu]) z.dispose();
  }
});

Deno.test("gegluBackward() and gegluFusedBackward() write into outs or over their inputs", async () => {
  const gpu = await testGpu();
  for (const [rows, inter] of [[7, 33], [5, 64]]) {
    const n = rows * inter;
    const g = randomArray(n, 1, 4), u = randomArray(n, 2), d = randomArray(n, 3);
    const want = gegluBackwardRef(g, u, d);
    const tg = Tensor.fromArray(gpu, g, [rows, inter]),
      tu = Tensor.fromArray(gpu, u, [rows, inter]);
    const td = Tensor.fromArray(gpu, d, [rows, inter]);
    const oG = Tensor.empty(gpu, [rows, inter]), oU = Tensor.empty(gpu, [rows, inter]);
    const outs = gegluBackward(tg, tu, td, { dGate: oG, dUp: oU });
    assert.equal(outs.dGate, oG);
    assert.equal(outs.dUp, oU);
    assertClose(await oG.read(), want.dGate, TOL, "dGate out");
    assertClose(await oU.read(), want.dUp, TOL, "dUp out");
    const same = gegluBackward(tg, tu, td, { dGate: tg, dUp: tu });
    assert.equal(same.dGate, tg);
    assertClose(await tg.read(), want.dGate, TOL, "dGate over gate");
    assertClose(await tu.read(), want.dUp, TOL, "dUp over up");

    const gu = randomArray(2 * n, 4, 4);
    const tgu = Tensor.fromArray(gpu, gu, [rows, 2 * inter]);
    assert.equal(gegluFusedBackward(tgu, td, { out: tgu }), tgu);
    assertClose(await tgu.read(), gegluFusedBackwardRef(gu, d, inter), TOL, "fused in place");
    for (const t of [tg, tu, td, oG, oU, tgu]) t.dispose();
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
    const { dGate, dUp } = gegluBackward(tg, tu, td);
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
  const o = Tensor.zeros(gpu, [11]),
    gu = Tensor.zeros(gpu, [3, 8]),
    gu5 = Tensor.zeros(gpu, [3, 5]);
  const is = (k: string) => (err: unknown) =>
    err instanceof ShapeError && err.message.startsWith(k);
  assert.throws(() => gegluBackward(a, b, c), is("gegluBackward: "));
  assert.throws(() => gegluBackward(a, c, b), is("gegluBackward: "));
  assert.throws(() => gegluBackward(a, bf, c), is("gegluBackward: "));
  assert.throws(() => gegluBackward(a, c, e, { dGate: o }), is("gegluBackward: "));
  assert.throws(() => gegluBackward(a, c, e, { dGate: a }), is("gegluBackward: "));
  assert.throws(() => gegluBackward(a, c, e, { dGate: e, dUp: c }), is("gegluBackward: "));
  assert.throws(() => gegluBackward(a, a, e, { dGate: a, dUp: a }), is("gegluBackward: "));
  assert.throws(() => gegluBackward(a, c, e, { dGate: b, dUp: b }), is("gegluBackward: "));
  assert.throws(() => gegluFusedBackward(gu5, a), is("gegluFusedBackward: "));
  assert.throws(() => gegluFusedBackward(gu, b), is("gegluFusedBackward: "));
  assert.throws(() => gegluFusedBackward(gu, bf), is("gegluFusedBackward: "));
  assert.throws(() => gegluFusedBackward(gu, a, { out: a }), is("gegluFusedBackward: "));
  for (const t of [a, b, c, e, bf, o, gu, gu5]) t.dispose();
});
