import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { ShapeError } from "../kernels/errors.ts";
import { attentionBackward } from "../kernels/attention_backward.ts";
import { attentionBackwardRef, attentionRef } from "../kernels/attention_ref.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";
import {
  type AttentionCase,
  BACKWARD_TOLERANCE as TOL,
  checkBackward as check,
  oddCases,
  paddedCase,
  refOptions,
  runBackwardCase as runCase,
} from "./_attention.ts";

Deno.test("attentionBackwardRef() matches central finite differences of attentionRef", () => {
  const cases: AttentionCase[] = [
    { batch: 2, seq: 5, heads: 4, kvHeads: 2, headDim: 3, window: 3, ranges: [1, 5, 0, 4] },
    { batch: 1, seq: 4, heads: 2, kvHeads: 1, headDim: 2, window: 0 },
    { batch: 3, seq: 3, heads: 1, kvHeads: 1, headDim: 4, window: 1, ranges: [0, 3, 2, 2, 1, 3] },
  ];
  let seed = 1;
  for (const c of cases) {
    const o = refOptions(c);
    const x = {
      q: Array.from(randomArray(c.batch * c.seq * c.heads * c.headDim, seed++, 2)),
      k: Array.from(randomArray(c.batch * c.seq * c.kvHeads * c.headDim, seed++, 2)),
      v: Array.from(randomArray(c.batch * c.seq * c.kvHeads * c.headDim, seed++)),
    };
    const dOut = randomArray(x.q.length, seed++);
    const loss = (y: typeof x) => attentionRef(y, o).out.reduce((s, v, i) => s + v * dOut[i], 0);
    const grads = attentionBackwardRef(dOut, { ...x, ...attentionRef(x, o) }, o);
    const h = 1e-5;
    for (const [name, grad] of [["q", grads.dq], ["k", grads.dk], ["v", grads.dv]] as const) {
      for (let e = 0; e < grad.length; e++) {
        const shifted = (s: number) => ({
          ...x,
          [name]: x[name].map((u, i) => i === e ? u + s : u),
        });
        const fd = (loss(shifted(h)) - loss(shifted(-h))) / (2 * h);
        const what = `${JSON.stringify(c)} d${name}[${e}]: fd ${fd} ref ${grad[e]}`;
        assert.ok(Math.abs(fd - grad[e]) <= 1e-7 * Math.max(1, Math.abs(grad[e])), what);
      }
    }
  }
});

Deno.test("attentionBackward() matches attentionBackwardRef on odd shapes, GQA groups and windows", async () => {
  const gpu = await testGpu();
  for (const { c, seed } of oddCases()) await check(gpu, c, { seed });
});

Deno.test("attentionBackward() with ranges: padding rows get 0, others match, after the forward kernel", async () => {
  const gpu = await testGpu();
  for (const window of [0, 3]) {
    for (const forwardKernel of [false, true]) {
      const c = paddedCase(window);
      const { seq, heads, kvHeads, headDim } = c, ranges = c.ranges!;
      const got = await check(gpu, c, { seed: 500 + window, forwardKernel });
      for (let b = 0; b < 4; b++) {
        for (let i = 0; i < seq; i++) {
          if (i >= ranges[2 * b] && i < ranges[2 * b + 1]) continue;
          const row = (n: number, a: Float32Array) =>
            a.subarray((b * seq + i) * n * headDim, (b * seq + i + 1) * n * headDim);
          for (const [name, g, n] of [["dq", got.dq, heads], ["dk", got.dk, kvHeads]] as const) {
            assert.ok(row(n, g).every((x) => x === 0), `${name} of padding row b=${b} i=${i}`);
          }
          assert.ok(row(kvHeads, got.dv).every((x) => x === 0), `dv of padding row b=${b} i=${i}`);
        }
      }
    }
  }
});

Deno.test("attentionBackward() handles the Gemma 3 1B head (D 256, 4 heads, 1 KV head)", async () => {
  const gpu = await testGpu();
  for (const window of [0, 8]) {
    const c = { batch: 1, seq: 17, heads: 4, kvHeads: 1, headDim: 256, window };
    await check(gpu, c, { seed: 700 + window });
  }
});

Deno.test("attentionBackward() is bit-reproducible run to run", async () => {
  const gpu = await testGpu();
  const c = {
    batch: 2,
    seq: 33,
    heads: 4,
    kvHeads: 1,
    headDim: 32,
    window: 0,
    ranges: [0, 33, 5, 30],
  };
  const a = (await runCase(gpu, c, { seed: 900 })).got;
  const b = (await runCase(gpu, c, { seed: 900 })).got;
  for (const name of ["dq", "dk", "dv"] as const) {
    assert.deepEqual(new Uint32Array(a[name].buffer), new Uint32Array(b[name].buffer), name);
  }
});

Deno.test("attentionBackward() takes [S, H, D] like [1, S, H, D]", async () => {
  const gpu = await testGpu();
  const [s, h, d] = [7, 2, 6];
  const q = randomArray(s * h * d, 1), k = randomArray(s * d, 2), v = randomArray(s * d, 3);
  const dOut = randomArray(s * h * d, 4);
  const o = { batch: 1, seq: s, numHeads: h, numKvHeads: 1, headDim: d, scale: 0.3, window: 3 };
  const fwd = attentionRef({ q, k, v }, o);
  const [out, lse] = [Float32Array.from(fwd.out), Float32Array.from(fwd.lse)];
  const t = (a: Float32Array, shape: number[]) => Tensor.fromArray(gpu, a, shape);
  const [tq, tk, tv] = [t(q, [s, h, d]), t(k, [s, 1, d]), t(v, [s, 1, d])];
  const [to, tl, tdo] = [t(out, [s, h, d]), t(lse, [s, h]), t(dOut, [s, h, d])];
  const r = attentionBackward(tdo, { q: tq, k: tk, v: tv, out: to, lse: tl }, {
    scale: 0.3,
    window: 3,
  });
  assert.deepEqual(r.dq.shape, [s, h, d]);
  assert.deepEqual(r.dk.shape, [s, 1, d]);
  const want = attentionBackwardRef(dOut, { q, k, v, out, lse }, o);
  assertClose(await r.dq.read(), want.dq, TOL, "dq");
  assertClose(await r.dk.read(), want.dk, TOL, "dk");
  assertClose(await r.dv.read(), want.dv, TOL, "dv");
  for (const x of [tq, tk, tv, to, tl, tdo, r.dq, r.dk, r.dv]) x.dispose();
});

Deno.test("attentionBackward() rejects wrong shapes, dtypes and options with ShapeError", async () => {
  const gpu = await testGpu();
  const q = Tensor.zeros(gpu, [1, 3, 4, 8]), kv = { k: Tensor.zeros(gpu, [1, 3, 2, 8]) };
  const v = Tensor.zeros(gpu, [1, 3, 2, 8]), lse = Tensor.zeros(gpu, [1, 3, 4]);
  const bad = [
    Tensor.zeros(gpu, [1, 3, 3, 8]), // k with 3 KV heads
    Tensor.zeros(gpu, [1, 3, 4]), // out without D
    Tensor.zeros(gpu, [1, 3, 5]), // lse with 5 heads
    Tensor.zeros(gpu, [1, 2], "i32"), // valid ranges
    Tensor.zeros(gpu, [2, 2], "i32"), // ranges of two sequences
  ];
  const run = (over: Partial<Record<"k" | "out" | "lse" | "scale" | "ranges", unknown>>) => () =>
    attentionBackward(q, {
      q,
      k: (over.k ?? kv.k) as Tensor,
      v,
      out: (over.out ?? q) as Tensor,
      lse: (over.lse ?? lse) as Tensor,
    }, { scale: (over.scale ?? 1) as number, ranges: over.ranges as Tensor | undefined });
  assert.throws(run({ k: bad[0] }), ShapeError);
  assert.throws(run({ out: bad[1] }), ShapeError);
  assert.throws(run({ lse: bad[2] }), ShapeError);
  assert.throws(run({ lse: Tensor.zeros(gpu, [1, 3, 4], "i32") }), ShapeError);
  assert.throws(run({ ranges: bad[4] }), ShapeError);
  assert.throws(run({ scale: NaN }), ShapeError);
  assert.throws(
    () => attentionBackward(q, { q, k: kv.k, v, out: q, lse }, { scale: 1, window: -1 }),
    ShapeError,
  );
  const ok = attentionBackward(q, { q, k: kv.k, v, out: q, lse }, { scale: 1, ranges: bad[3] });
  for (const t of [q, kv.k, v, lse, ...bad, ok.dq, ok.dk, ok.dv]) t.dispose();
});
