import assert from "node:assert/strict";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { embedding } from "../kernels/embedding.ts";
import { embeddingRef } from "../kernels/embedding_ref.ts";
import { roundToBf16 } from "../kernels/dtype.ts";
import { ShapeError } from "../kernels/errors.ts";
import { assertClose, randomArray, rng, testGpu } from "./_helpers.ts";

const TOL = 1e-5;

function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

Deno.test("embedding() matches reference on odd shapes, f32 and bf16 tables", async () => {
  const gpu = await testGpu();
  for (
    const [vocab, d, tokens] of [[1, 1, 1], [3, 7, 3], [7, 33, 7], [33, 257, 33], [257, 1000, 7]]
  ) {
    const table = randomArray(vocab * d, vocab + d, 0.1);
    const ids = randomIds(tokens, vocab, tokens);
    const scale = Math.fround(Math.sqrt(d));
    for (const dtype of ["f32", "bf16"] as const) {
      const tt = Tensor.fromArray(gpu, table, [vocab, d], dtype);
      const ti = Tensor.fromArray(gpu, dtype === "f32" ? ids : Uint32Array.from(ids));
      const out = embedding(tt, ti, { scale });
      assert.deepEqual(out.shape, [tokens, d]);
      const want = embeddingRef(dtype === "bf16" ? roundToBf16(table) : table, ids, {
        dim: d,
        scale,
      });
      assertClose(await out.read(), want, TOL, `embedding V=${vocab} D=${d} T=${tokens} ${dtype}`);
      for (const t of [tt, ti, out]) t.dispose();
    }
  }
});

Deno.test("embedding() multiplies by the f32 scale exactly like float32 torch", async () => {
  const gpu = await testGpu();
  const d = 1152, vocab = 5;
  const scale = Math.fround(Math.sqrt(d)); // 33.941124…, not the bf16 34
  const table = randomArray(vocab * d, 3, 0.1);
  const tt = Tensor.fromArray(gpu, table, [vocab, d], "bf16");
  const ids = Tensor.fromArray(gpu, new Uint32Array([4, 0, 4]));
  const got = await embedding(tt, ids, { scale }).read();
  const rounded = roundToBf16(table);
  [4, 0, 4].forEach((id, t) => {
    for (let i = 0; i < d; i++) {
      assert.equal(got[t * d + i], Math.fround(rounded[id * d + i] * scale));
    }
  });
  for (const t of [tt, ids]) t.dispose();
});

Deno.test("embedding() gathers from a table split across storage bindings", async () => {
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 4096 });
  const partsPerDispatch = Math.min(16, gpu.limits.maxStorageBuffersPerShaderStage - 2);
  let maxDispatches = 0;
  // The output [T, D] f32 must fit one 4096-byte binding too: T ≤ 1024 / D.
  // A part holds at most 341 f32 rows of 3 (4096 / 12), so [many, 3] f32 has more parts than
  // one dispatch binds on this adapter (GL llvmpipe 14, lavapipe 16).
  const many = (partsPerDispatch + 1) * Math.floor(4096 / 12);
  for (const [vocab, d] of [[1000, 7], [2001, 3], [301, 15], [65, 33], [many, 3]]) {
    const table = randomArray(vocab * d, d, 0.2);
    for (const dtype of ["bf16", "f32"] as const) {
      const tt = Tensor.fromArray(gpu, table, [vocab, d], dtype);
      assert.ok(tt.parts.length > 1, `split into ${tt.parts.length} parts`);
      // every part boundary, both ends of the table, and out-of-range ids
      const edges = [
        0,
        vocab - 1,
        vocab,
        vocab + 5,
        -1,
        ...tt.parts.flatMap((p) => [
          p.rowStart,
          p.rowStart + p.rows - 1,
        ]),
      ];
      const ids = [...edges, ...randomIds(Math.floor(1024 / d) - edges.length, vocab, d)];
      const ti = Tensor.fromArray(gpu, Int32Array.from(ids));
      const out = Tensor.fromArray(gpu, new Float32Array(ids.length * d).fill(NaN), [
        ids.length,
        d,
      ]);
      const before = gpu.dispatchCount;
      embedding(tt, ti, { scale: 8, out });
      const dispatches = gpu.dispatchCount - before;
      assert.equal(dispatches, Math.ceil(tt.parts.length / partsPerDispatch));
      maxDispatches = Math.max(maxDispatches, dispatches);
      const want = embeddingRef(dtype === "bf16" ? roundToBf16(table) : table, ids, {
        dim: d,
        scale: 8,
      });
      assertClose(await out.read(), want, TOL, `split V=${vocab} D=${d} ${dtype}`);
      for (const t of [tt, ti, out]) t.dispose();
    }
  }
  assert.ok(maxDispatches > 1, "some table needed more than one dispatch");
  gpu.destroy();
});

Deno.test("embedding() writes zero rows for ids outside [0, V) without reading out of bounds", async () => {
  const gpu = await testGpu();
  const vocab = 7, d = 33;
  const table = randomArray(vocab * d, 1);
  const tt = Tensor.fromArray(gpu, table, [vocab, d]);
  const ids = [6, 7, 2 ** 31 - 1, -1, -(2 ** 31), 0];
  const ti = Tensor.fromArray(gpu, Int32Array.from(ids), [2, 3]);
  const out = Tensor.fromArray(gpu, new Float32Array(ids.length * d).fill(7), [2, 3, d]);
  embedding(tt, ti, { out });
  const got = await out.read();
  assertClose(got, embeddingRef(table, ids, { dim: d, scale: 1 }), TOL, "invalid ids");
  for (let i = d; i < 5 * d; i++) assert.equal(got[i], 0);
  const tu = Tensor.fromArray(gpu, new Uint32Array([0xffffffff, 3]));
  const o2 = embedding(tt, tu);
  assertClose(
    await o2.read(),
    embeddingRef(table, [-1, 3], { dim: d, scale: 1 }),
    TOL,
    "u32 max id",
  );
  for (const t of [tt, ti, out, tu, o2]) t.dispose();
});

Deno.test("embedding() rejects wrong shapes and dtypes with a ShapeError naming the kernel", async () => {
  const gpu = await testGpu();
  const t3 = Tensor.zeros(gpu, [2, 3, 4]), t = Tensor.zeros(gpu, [5, 4]);
  const idsF = Tensor.zeros(gpu, [3]), ids = Tensor.zeros(gpu, [3], "u32");
  const o = Tensor.zeros(gpu, [3, 5]), ti = Tensor.zeros(gpu, [5, 4], "i32");
  const isShape = (e: unknown) => e instanceof ShapeError && /^embedding: /.test(e.message);
  assert.throws(() => embedding(t3, ids), isShape);
  assert.throws(() => embedding(ti, ids), isShape);
  assert.throws(() => embedding(t, idsF), isShape);
  assert.throws(() => embedding(t, ids, { out: o }), isShape);
  assert.throws(() => embedding(t, ids, { scale: NaN }), isShape);
  for (const x of [t3, t, idsF, ids, o, ti]) x.dispose();
});
