import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { ShapeError } from "../kernels/errors.ts";
import {
  rope,
  ropeCosSinTable,
  RopeTable,
  RopeTableCache,
  ropeTableConfig,
} from "../kernels/rope.ts";
import { ropeRef } from "../kernels/rope_ref.ts";
import { assertClose, randomArray, rng, testGpu } from "./_helpers.ts";
import { offsetBatch } from "./_rope.ts";

Deno.test("ropeRef() rotates split halves (pairs d, d + D/2), not interleaved pairs", () => {
  // headDim 4: inv_freq = [1, 0.01]; position 1 rotates pair (0, 2) by 1 rad, pair (1, 3) by 0.01
  const out = ropeRef([1, 0, 0, 0, 0, 1, 0, 0], [1, 1], { numHeads: 2, headDim: 4, base: 1e4 });
  assert.equal(out[0], Math.cos(1));
  assert.equal(out[2], Math.sin(1));
  assert.equal(out[1], 0);
  const angle = Math.fround(Math.fround(0.01)); // f32 inv_freq of j = 1
  assert.equal(out[5], Math.cos(angle));
  assert.equal(out[7], Math.sin(angle));
});

Deno.test("ropeCosSinTable() uses float32 inv_freq and float32 angles like transformers", () => {
  const headDim = 256, base = 1e6, p = 1000;
  const table = ropeCosSinTable({ base, headDim, maxPositions: p + 1 });
  for (const j of [0, 1, 17, 127]) {
    const inv = Math.fround(1 / Math.fround(base ** Math.fround((2 * j) / headDim)));
    const angle = Math.fround(p * inv);
    assert.equal(table[p * headDim + j], Math.fround(Math.cos(angle)));
    assert.equal(table[p * headDim + headDim / 2 + j], Math.fround(Math.sin(angle)));
  }
  // the float32 angle is not the float64 one: at position 1000 they differ by ~1e-5 rad
  const j = 3;
  const inv64 = base ** (-2 * j / headDim);
  assert.notEqual(Math.fround(p * Math.fround(inv64)), p * inv64);
});

Deno.test("rope() matches ropeRef on odd shapes, both bases, positions up to 1023", async () => {
  const gpu = await testGpu();
  const tables = new RopeTableCache(gpu);
  let seed = 1;
  for (const headDim of [2, 6, 10, 32, 256]) {
    for (const [tokens, heads] of [[1, 1], [3, 4], [7, 1], [33, 3]]) {
      for (const base of [1e4, 1e6]) {
        seed++;
        const r = rng(seed);
        const x = randomArray(tokens * heads * headDim, seed, 2);
        const pos = Int32Array.from({ length: tokens }, () => Math.floor(r() * 1024));
        pos[0] = 1023;
        const tx = Tensor.fromArray(gpu, x, [tokens, heads, headDim]);
        const tp = Tensor.fromArray(gpu, pos);
        const table = tables.get({ base, headDim, maxPositions: 1024 });
        const out = rope(tx, tp, { table });
        const want = ropeRef(x, pos, { numHeads: heads, headDim, base });
        assertClose(await out.read(), want, 1e-5, `rope T=${tokens} H=${heads} D=${headDim}`);
        for (const t of [tx, tp, out]) t.dispose();
      }
    }
  }
  tables.dispose();
});

Deno.test("rope() in place on [B, S, H, D] equals out-of-place", async () => {
  const gpu = await testGpu();
  const { heads: h, headDim: d, x, pos, table, tx, tp } = offsetBatch(gpu);
  const copy = rope(tx, tp, { table });
  rope(tx, tp, { table, out: tx });
  const inPlace = await tx.read();
  assert.deepEqual(inPlace, await copy.read());
  assertClose(inPlace, ropeRef(x, pos, { numHeads: h, headDim: d, base: 1e4 }), 1e-5, "in place");
  for (const t of [tx, tp, copy, table]) t.dispose();
});

Deno.test("rope() writes NaN for positions outside the table", async () => {
  const gpu = await testGpu();
  const table = RopeTable.create(gpu, { base: 1e4, headDim: 4, maxPositions: 8 });
  const tx = Tensor.fromArray(gpu, new Float32Array(12).fill(1), [3, 1, 4]);
  const tp = Tensor.fromArray(gpu, new Int32Array([7, 8, -1]));
  const out = await rope(tx, tp, { table }).read();
  assert.ok(out.slice(0, 4).every(Number.isFinite));
  assert.ok(out.slice(4).every(Number.isNaN));
  for (const t of [tx, tp, table]) t.dispose();
});

Deno.test("rope() rejects wrong shapes and dtypes with a ShapeError naming the kernel", async () => {
  const gpu = await testGpu();
  const table = RopeTable.create(gpu, { base: 1e4, headDim: 4, maxPositions: 8 });
  const x = Tensor.zeros(gpu, [3, 2, 4]);
  const wrongD = Tensor.zeros(gpu, [3, 2, 6]);
  const pos = Tensor.zeros(gpu, [3], "i32");
  const pos2 = Tensor.zeros(gpu, [2], "i32");
  const posF = Tensor.zeros(gpu, [3], "f32");
  const isRope = (e: unknown) => e instanceof ShapeError && /^rope: /.test(e.message);
  assert.throws(() => rope(wrongD, pos, { table }), isRope);
  assert.throws(() => rope(x, pos2, { table }), isRope);
  assert.throws(() => rope(x, posF, { table }), isRope);
  assert.throws(() => rope(x, pos, { table, out: wrongD }), isRope);
  for (const t of [x, wrongD, pos, pos2, posF, table]) t.dispose();
});

Deno.test("ropeTableConfig() names the bad field; RopeTableCache reuses tables", async () => {
  assert.throws(() => ropeTableConfig({ base: 1e4, headDim: 5, maxPositions: 8 }), /headDim/);
  assert.throws(() => ropeTableConfig({ base: -1, headDim: 4, maxPositions: 8 }), /base/);
  assert.throws(() => ropeTableConfig({ base: 1e4, headDim: 4, maxPositions: 0 }), /maxPositions/);
  assert.ok(Object.isFrozen(ropeTableConfig({ base: 1e4, headDim: 4, maxPositions: 8 })));
  const gpu = await testGpu();
  const tables = new RopeTableCache(gpu);
  const a = tables.get({ base: 1e4, headDim: 4, maxPositions: 8 });
  assert.equal(tables.get({ base: 1e4, headDim: 4, maxPositions: 8 }), a);
  assert.notEqual(tables.get({ base: 1e6, headDim: 4, maxPositions: 8 }), a);
  tables.dispose();
  assert.ok(a.tensor.disposed);
});
