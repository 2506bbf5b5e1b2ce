import assert from "node:assert/strict";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { embeddingBackward, embeddingCsr } from "../kernels/embedding_backward.ts";
import { embeddingBackwardRef, embeddingRef } from "../kernels/embedding_ref.ts";
import { ShapeError } from "../kernels/errors.ts";
import { assertClose, randomArray, rng, testGpu } from "./_helpers.ts";

const TOL = 1e-5;

/** `n` ids drawn from `[0, range)`: a small range gives many duplicates. */
function randomIds(n: number, range: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * range));
}

/** `base + embeddingBackwardRef(...)`, the expected dTable after accumulating. */
function accumulated(
  base: ArrayLike<number>,
  ids: ArrayLike<number>,
  dOut: ArrayLike<number>,
  vocab: number,
  scale: number,
): Float64Array {
  return embeddingBackwardRef(dOut, ids, { vocab, scale }).map((v, k) => v + base[k]);
}

Deno.test("embeddingCsr() groups token positions by ascending id and drops invalid ids", () => {
  const plan = embeddingCsr([5, 2, 5, 9, -1, 2, 5, 1.5, 0], 8);
  assert.deepEqual(plan.rows, Uint32Array.from([0, 2, 5]));
  assert.deepEqual(plan.offsets, Uint32Array.from([0, 1, 3, 6]));
  assert.deepEqual(plan.tokens, Uint32Array.from([8, 1, 5, 0, 2, 6]));
  const empty = embeddingCsr([7, -3], 7);
  assert.deepEqual([empty.rows.length, [...empty.offsets], empty.tokens.length], [0, [0], 0]);
});

Deno.test("embeddingBackwardRef() matches central finite differences of embeddingRef", () => {
  const vocab = 5, d = 3, scale = Math.fround(Math.sqrt(d));
  const ids = [4, 1, 4, 9, 0, 4];
  const table = Array.from(randomArray(vocab * d, 1));
  const dOut = Array.from(randomArray(ids.length * d, 2));
  const loss = (tab: number[]) =>
    embeddingRef(tab, ids, { dim: d, scale }).reduce((s, v, k) => s + v * dOut[k], 0);
  const grad = embeddingBackwardRef(dOut, ids, { vocab, scale });
  const h = 1e-5;
  for (let k = 0; k < table.length; k++) {
    const bump = (s: number) => table.map((v, j) => (j === k ? v + s : v));
    const fd = (loss(bump(h)) - loss(bump(-h))) / (2 * h);
    assert.ok(Math.abs(fd - grad[k]) <= 1e-8 * Math.max(1, Math.abs(grad[k])), `dTable[${k}]`);
  }
  assert.ok(grad.slice(2 * d, 4 * d).every((v) => v === 0), "rows 2, 3 have no tokens");
});

Deno.test("embeddingBackward() matches reference on odd shapes with duplicated ids, accumulating", async () => {
  const gpu = await testGpu();
  const cases = [[1, 1, 1], [3, 3, 3], [7, 7, 7], [33, 33, 33], [257, 257, 33], [50, 1000, 7], [
    9,
    33,
    257,
  ]];
  for (const [vocab, d, tokens] of cases) {
    const ids = randomIds(tokens, Math.max(1, Math.ceil(vocab / 2)), vocab + d); // duplicates
    const dOut = randomArray(tokens * d, tokens, 2), base = randomArray(vocab * d, d, 3);
    const scale = Math.fround(Math.sqrt(d));
    const dTable = Tensor.fromArray(gpu, base, [vocab, d]);
    const tOut = Tensor.fromArray(gpu, dOut, [tokens, d]);
    assert.equal(embeddingBackward(tOut, ids, { dTable, scale }), dTable);
    const want = accumulated(base, ids, dOut, vocab, scale);
    assertClose(await dTable.read(), want, TOL, `V=${vocab} D=${d} T=${tokens}`);
    for (const t of [dTable, tOut]) t.dispose();
  }
});

Deno.test("embeddingBackward() accumulates over calls, or overwrites with accumulate: false", async () => {
  const gpu = await testGpu();
  const vocab = 33, d = 257, tokens = 7;
  const headGrad = randomArray(vocab * d, 1); // e.g. the tied LM head's gradient, added first
  const batches = [2, 3].map((s) => ({
    ids: Array.from(randomIds(tokens, 5, s)),
    dOut: randomArray(tokens * d, s + 10),
  }));
  const dTable = Tensor.fromArray(gpu, headGrad, [vocab, d]);
  const want = Float64Array.from(headGrad);
  for (const b of batches) {
    const tOut = Tensor.fromArray(gpu, b.dOut, [tokens, d]);
    embeddingBackward(tOut, b.ids, { dTable, scale: 8, accumulate: true });
    embeddingBackwardRef(b.dOut, b.ids, { vocab, scale: 8 }).forEach((v, k) => want[k] += v);
    tOut.dispose();
  }
  assertClose(await dTable.read(), want, TOL, "two micro-batches on top of the head's gradient");

  const tOut = Tensor.fromArray(gpu, batches[0].dOut, [tokens, d]);
  embeddingBackward(tOut, batches[0].ids, { dTable, scale: 8, accumulate: false });
  const fresh = embeddingBackwardRef(batches[0].dOut, batches[0].ids, { vocab, scale: 8 });
  assertClose(await dTable.read(), fresh, TOL, "accumulate: false");
  embeddingBackward(tOut, [-1, 33, 2 ** 31, 40, 99, 1e9, 33], { dTable, accumulate: false });
  assert.deepEqual(await dTable.read(), new Float32Array(vocab * d), "only invalid ids: zeros");
  for (const t of [dTable, tOut]) t.dispose();
});

Deno.test("embeddingBackward() scatter-adds into a dTable split across storage bindings", async () => {
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 4096 });
  const partsPerDispatch = Math.min(16, gpu.limits.maxStorageBuffersPerShaderStage - 2);
  let maxDispatches = 0;
  // dOut [T, D] f32 and the CSR (2U + 1 + T words) must fit one 4096-byte binding: T·D ≤ 1024.
  // A part holds at most 341 f32 rows of 3 (4096 / 12), so [many, 3] has more parts than one
  // dispatch binds on this adapter (GL llvmpipe 14, lavapipe 16).
  const many = (partsPerDispatch + 1) * Math.floor(4096 / 12);
  for (const [vocab, d] of [[1000, 7], [2001, 3], [301, 15], [65, 33], [many, 3], [2000, 1]]) {
    const base = randomArray(vocab * d, d, 0.5);
    const dTable = Tensor.fromArray(gpu, base, [vocab, d]);
    assert.ok(dTable.parts.length > 1, `split into ${dTable.parts.length} parts`);
    // both ends of every part and of the table, out-of-range ids, and duplicates
    const edges = [0, vocab - 1, vocab, -1, 0, vocab - 1];
    for (const p of dTable.parts) edges.push(p.rowStart, p.rowStart + p.rows - 1, p.rowStart);
    const tokens = Math.min(300, Math.floor(1024 / d));
    const ids = [...edges, ...randomIds(tokens - edges.length, vocab, d)];
    const dOut = randomArray(ids.length * d, vocab, 1);
    const tOut = Tensor.fromArray(gpu, dOut, [ids.length, d]);
    const before = gpu.dispatchCount;
    embeddingBackward(tOut, ids, { dTable, scale: 3 });
    const dispatches = gpu.dispatchCount - before;
    assert.equal(dispatches, Math.ceil(dTable.parts.length / partsPerDispatch));
    maxDispatches = Math.max(maxDispatches, dispatches);
    assertClose(
      await dTable.read(),
      accumulated(base, ids, dOut, vocab, 3),
      TOL,
      `split V=${vocab} D=${d}`,
    );
    embeddingBackward(tOut, ids, { dTable, scale: 3, accumulate: false });
    const fresh = embeddingBackwardRef(dOut, ids, { vocab, scale: 3 });
    assertClose(await dTable.read(), fresh, TOL, `split V=${vocab} D=${d} accumulate: false`);
    for (const t of [dTable, tOut]) t.dispose();
  }
  assert.ok(maxDispatches > 1, "some table needed more than one dispatch");
  gpu.destroy();
});

Deno.test("embeddingBackward() is bit-identical run to run with heavily duplicated ids", async () => {
  const gpu = await testGpu();
  const vocab = 9, d = 257, tokens = 257;
  const ids = randomIds(tokens, 3, 5); // ~86 tokens per id
  const dOut = randomArray(tokens * d, 6, 3);
  const tOut = Tensor.fromArray(gpu, dOut, [tokens, d]);
  const runs = [];
  for (let run = 0; run < 2; run++) {
    const dTable = Tensor.zeros(gpu, [vocab, d]);
    embeddingBackward(tOut, ids, { dTable, scale: 34 });
    runs.push(await dTable.read());
    dTable.dispose();
  }
  assert.deepEqual(runs[1], runs[0]);
  assertClose(
    runs[0],
    embeddingBackwardRef(dOut, ids, { vocab, scale: 34 }),
    TOL,
    "duplicated ids",
  );
  tOut.dispose();
});

Deno.test("embeddingBackward() rejects wrong shapes and dtypes with a ShapeError naming the kernel", async () => {
  const gpu = await testGpu();
  const dTable = Tensor.zeros(gpu, [5, 4]), d3 = Tensor.zeros(gpu, [2, 3, 4]);
  const dBf = Tensor.zeros(gpu, [5, 4], "bf16"), dOut = Tensor.zeros(gpu, [3, 4]);
  const dOut5 = Tensor.zeros(gpu, [3, 5]), dOutI = Tensor.zeros(gpu, [3, 4], "i32");
  const isShape = (e: unknown) => e instanceof ShapeError && /^embeddingBackward: /.test(e.message);
  assert.throws(() => embeddingBackward(dOut, [0, 1, 2], { dTable: d3 }), isShape);
  assert.throws(() => embeddingBackward(dOut, [0, 1, 2], { dTable: dBf }), isShape);
  assert.throws(() => embeddingBackward(dOut5, [0, 1, 2], { dTable }), isShape);
  assert.throws(() => embeddingBackward(dOutI, [0, 1, 2], { dTable }), isShape);
  assert.throws(() => embeddingBackward(dOut, [0, 1], { dTable }), isShape);
  assert.throws(() => embeddingBackward(dOut, [0, 1, 2], { dTable, scale: Infinity }), isShape);
  for (const t of [dTable, d3, dBf, dOut, dOut5, dOutI]) t.dispose();
});
