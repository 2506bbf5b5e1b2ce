import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { ShapeError } from "../kernels/errors.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { attention, attentionDecode, writeKvCache } from "../kernels/attention.ts";
import { attentionDecodeRef, attentionRef, writeKvCacheRef } from "../kernels/attention_ref.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";
import {
  assertLse,
  type AttentionCase,
  attentionInputs,
  oddCases,
  paddedCase,
  SCALE,
} from "./_attention.ts";

async function checkPrefill(gpu: Gpu, c: AttentionCase, seed: number): Promise<void> {
  const { q, k, v, tq, tk, tv, tr, ref } = attentionInputs(gpu, c, seed);
  const { out, lse } = attention(tq, { k: tk, v: tv }, {
    scale: SCALE,
    window: c.window,
    ranges: tr,
    returnLse: true,
  });
  const want = attentionRef({ q, k, v }, ref);
  const what = `attention ${JSON.stringify(c)}`;
  assertClose(await out.read(), want.out, 1e-5, what);
  assertLse(await lse!.read(), want.lse, what);
  for (const t of [tq, tk, tv, out, lse!, tr]) t?.dispose();
}

Deno.test("attention() matches attentionRef on odd shapes, GQA groups and windows", async () => {
  const gpu = await testGpu();
  for (const { c, seed } of oddCases()) await checkPrefill(gpu, c, seed);
});

Deno.test("attention() with ranges: left/right padding rows are zero, others match", async () => {
  const gpu = await testGpu();
  for (const window of [0, 3]) await checkPrefill(gpu, paddedCase(window), 500 + window);
});

Deno.test("attention() handles the Gemma 3 1B head (D 256, 4 heads, 1 KV head)", async () => {
  const gpu = await testGpu();
  for (const window of [0, 8]) {
    await checkPrefill(gpu, {
      batch: 1,
      seq: 33,
      heads: 4,
      kvHeads: 1,
      headDim: 256,
      window,
    }, 700 + window);
  }
});

Deno.test("attention() takes [S, H, D] for one sequence like [1, S, H, D]", async () => {
  const gpu = await testGpu();
  const [s, h, d] = [7, 2, 6];
  const q = randomArray(s * h * d, 1), k = randomArray(s * d, 2), v = randomArray(s * d, 3);
  const tq = Tensor.fromArray(gpu, q, [s, h, d]);
  const tk = Tensor.fromArray(gpu, k, [s, 1, d]), tv = Tensor.fromArray(gpu, v, [s, 1, d]);
  const { out, lse } = attention(tq, { k: tk, v: tv }, { scale: 0.3, window: 3, returnLse: true });
  assert.deepEqual(out.shape, [s, h, d]);
  assert.deepEqual(lse!.shape, [s, h]);
  const dims = { batch: 1, seq: s, numHeads: h, numKvHeads: 1, headDim: d, scale: 0.3 };
  assertClose(await out.read(), attentionRef({ q, k, v }, { ...dims, window: 3 }).out, 1e-5);
  for (const t of [tq, tk, tv, out, lse!]) t.dispose();
});

Deno.test("writeKvCache() keeps the last C valid tokens of a ring like writeKvCacheRef", async () => {
  const gpu = await testGpu();
  const [batch, tokens, cacheLen, row] = [3, 11, 4, 6];
  const values = randomArray(batch * tokens * row, 5);
  const offsets = [0, 5, 2], counts = [11, 3, 7];
  for (const opts of [{}, { offsets }, { offsets, counts }]) {
    const init = randomArray(batch * cacheLen * row, 6);
    const want = init.slice();
    writeKvCacheRef(want, values, { batch, tokens, cacheLen, rowSize: row, ...opts });
    const cache = {
      k: Tensor.fromArray(gpu, init, [batch, cacheLen, 2, row / 2]),
      v: Tensor.fromArray(gpu, init, [batch, cacheLen, 2, row / 2]),
    };
    const vals = Tensor.fromArray(gpu, values, [batch, tokens, 2, row / 2]);
    const to = (a?: number[]) => (a ? Tensor.fromArray(gpu, new Int32Array(a)) : undefined);
    const tOffsets = to((opts as { offsets?: number[] }).offsets);
    const tCounts = to((opts as { counts?: number[] }).counts);
    writeKvCache(cache, { k: vals, v: vals }, { offsets: tOffsets, counts: tCounts });
    assert.deepEqual(await cache.k.read(), want);
    assert.deepEqual(await cache.v.read(), want);
    for (const t of [cache.k, cache.v, vals, tOffsets, tCounts]) t?.dispose();
  }
});

Deno.test("attentionDecode() matches attentionDecodeRef on random ring caches", async () => {
  const gpu = await testGpu();
  const [batch, cacheLen, heads, kvHeads, headDim] = [4, 8, 4, 2, 10];
  const q = randomArray(batch * heads * headDim, 1, 2);
  const k = randomArray(batch * cacheLen * kvHeads * headDim, 2, 2);
  const v = randomArray(batch * cacheLen * kvHeads * headDim, 3);
  // short, wrapped once, wrapped with left padding, empty
  const ranges = [0, 5, 0, 19, 6, 30, 3, 3];
  const tq = Tensor.fromArray(gpu, q, [batch, heads, headDim]);
  const cache = {
    k: Tensor.fromArray(gpu, k, [batch, cacheLen, kvHeads, headDim]),
    v: Tensor.fromArray(gpu, v, [batch, cacheLen, kvHeads, headDim]),
  };
  const tr = Tensor.fromArray(gpu, new Int32Array(ranges), [batch, 2]);
  for (const window of [0, 1, 3, 8]) {
    const { out, lse } = attentionDecode(tq, cache, {
      scale: SCALE,
      window,
      ranges: tr,
      returnLse: true,
    });
    const want = attentionDecodeRef({ q, k, v }, {
      batch,
      seq: cacheLen,
      numHeads: heads,
      numKvHeads: kvHeads,
      headDim,
      scale: SCALE,
      window,
      ranges,
    });
    assertClose(await out.read(), want.out, 1e-5, `decode window=${window}`);
    assertLse(await lse!.read(), want.lse, `decode window=${window}`);
    out.dispose();
    lse!.dispose();
  }
  for (const t of [tq, cache.k, cache.v, tr]) t.dispose();
});

/**
 * Prefill-writes each sequence's prompt into a cache of `cacheLen` slots, then decodes one token
 * at a time; every step must equal the full-history prefill reference at that index.
 */
async function checkDecodeLoop(
  gpu: Gpu,
  c: { window: number; cacheLen: number; headDim: number },
): Promise<void> {
  const [batch, total, heads, kvHeads] = [3, 20, 4, 2];
  const { window, cacheLen, headDim } = c;
  const starts = [0, 2, 0]; // sequence 1 is left-padded by 2
  const promptEnds = [7, 7, 4]; // sequence 2 is shorter (per-sequence lengths)
  const kvRow = kvHeads * headDim, qRow = heads * headDim;
  const q = randomArray(batch * total * qRow, 11, 2);
  const k = randomArray(batch * total * kvRow, 12, 2);
  const v = randomArray(batch * total * kvRow, 13);
  const fullRanges = starts.flatMap((s) => [s, total]);
  const want = attentionRef({ q, k, v }, {
    batch,
    seq: total,
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim,
    scale: SCALE,
    window,
    ranges: fullRanges,
  });
  const cache = {
    k: Tensor.fromArray(gpu, randomArray(batch * cacheLen * kvRow, 14, 50), [
      batch,
      cacheLen,
      kvHeads,
      headDim,
    ]),
    v: Tensor.fromArray(gpu, randomArray(batch * cacheLen * kvRow, 15, 50), [
      batch,
      cacheLen,
      kvHeads,
      headDim,
    ]),
  };
  // prompt batch [B, 7]: tokens past each prompt's end are garbage and must not be written
  const promptLen = Math.max(...promptEnds);
  const slice = (src: Float32Array, row: number, b: number, t0: number, n: number, end: number) =>
    Float32Array.from(
      { length: n * row },
      (_, i) => (t0 + Math.floor(i / row) < end ? src[(b * total + t0) * row + i] : 1e3),
    );
  const gather = (src: Float32Array, row: number, t0s: number[], n: number, ends: number[]) => {
    const out = new Float32Array(batch * n * row);
    for (let b = 0; b < batch; b++) out.set(slice(src, row, b, t0s[b], n, ends[b]), b * n * row);
    return out;
  };
  const pk = Tensor.fromArray(gpu, gather(k, kvRow, [0, 0, 0], promptLen, promptEnds), [
    batch,
    promptLen,
    kvHeads,
    headDim,
  ]);
  const pv = Tensor.fromArray(gpu, gather(v, kvRow, [0, 0, 0], promptLen, promptEnds), [
    batch,
    promptLen,
    kvHeads,
    headDim,
  ]);
  const counts = Tensor.fromArray(gpu, new Int32Array(promptEnds));
  writeKvCache(cache, { k: pk, v: pv }, { counts });
  for (let step = 0; step < total - promptLen; step++) {
    const index = promptEnds.map((e) => e + step);
    const all = index.map(() => total);
    const nk = Tensor.fromArray(gpu, gather(k, kvRow, index, 1, all), [batch, 1, kvHeads, headDim]);
    const nv = Tensor.fromArray(gpu, gather(v, kvRow, index, 1, all), [batch, 1, kvHeads, headDim]);
    const nq = Tensor.fromArray(gpu, gather(q, qRow, index, 1, all), [batch, heads, headDim]);
    const offsets = Tensor.fromArray(gpu, new Int32Array(index));
    const ranges = Tensor.fromArray(
      gpu,
      new Int32Array(starts.flatMap((s, b) => [s, index[b] + 1])),
      [
        batch,
        2,
      ],
    );
    writeKvCache(cache, { k: nk, v: nv }, { offsets });
    const { out } = attentionDecode(nq, cache, { scale: SCALE, window, ranges });
    const wantRows = new Float64Array(batch * qRow);
    index.forEach((i, b) =>
      wantRows.set(want.out.subarray((b * total + i) * qRow, (b * total + i + 1) * qRow), b * qRow)
    );
    assertClose(await out.read(), wantRows, 1e-5, `decode step ${step} ${JSON.stringify(c)}`);
    for (const t of [nk, nv, nq, offsets, ranges, out]) t.dispose();
  }
  for (const t of [cache.k, cache.v, pk, pv, counts]) t.dispose();
}

Deno.test("writeKvCache() + attentionDecode() reproduce prefill past the window (rings)", async () => {
  const gpu = await testGpu();
  await checkDecodeLoop(gpu, { window: 3, cacheLen: 3, headDim: 6 }); // ring of exactly W
  await checkDecodeLoop(gpu, { window: 3, cacheLen: 5, headDim: 10 }); // ring larger than W
  await checkDecodeLoop(gpu, { window: 1, cacheLen: 1, headDim: 32 });
  await checkDecodeLoop(gpu, { window: 0, cacheLen: 20, headDim: 32 }); // global, plain cache
});

Deno.test("attention launchers reject bad shapes and options with a ShapeError", async () => {
  const gpu = await testGpu();
  const q = Tensor.zeros(gpu, [1, 3, 4, 8]);
  const k = Tensor.zeros(gpu, [1, 3, 3, 8]);
  const k2 = Tensor.zeros(gpu, [1, 3, 2, 8]);
  const kBad = Tensor.zeros(gpu, [1, 4, 2, 8]);
  const r = Tensor.zeros(gpu, [2, 2], "i32");
  const named = (name: string) => (e: unknown) =>
    e instanceof ShapeError && e.message.startsWith(`${name}: `);
  assert.throws(() => attention(q, { k, v: k }, { scale: 1 }), named("attention"));
  assert.throws(() => attention(q, { k: k2, v: kBad }, { scale: 1 }), named("attention"));
  assert.throws(() => attention(q, { k: k2, v: k2 }, { scale: NaN }), named("attention"));
  assert.throws(() => attention(q, { k: k2, v: k2 }, { scale: 1, window: -1 }), /window/);
  assert.throws(() => attention(q, { k: k2, v: k2 }, { scale: 1, ranges: r }), /ranges/);
  assert.throws(() => attention(q, { k: k2, v: k2 }, { scale: 1, out: q }), /alias/);
  const dq = Tensor.zeros(gpu, [1, 4, 8]);
  assert.throws(() => attentionDecode(dq, { k: k2, v: k2 }, { scale: 1 }), /ranges/);
  for (const t of [q, k, k2, kBad, r, dq]) t.dispose();
});
