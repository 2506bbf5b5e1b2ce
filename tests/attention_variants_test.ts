/**
 * Every variant of the attention family — prefill (`ATTENTION_VARIANTS`), decode
 * (`ATTENTION_DECODE_VARIANTS`) and backward (`ATTENTION_BACKWARD_VARIANTS`) — forced on odd
 * shapes against the float64 references (out, lse, dq, dk, dv within 1e-5·max(1, |ref|)); the
 * candidate tables; forced-variant errors; the tuner hook. The Gemma 3 1B head (D 256) runs every
 * variant except on GL llvmpipe, whose first dispatch of a big workgroup tile takes minutes to
 * build (naga's zero-initialisation of workgroup memory; lavapipe builds it in a second).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  attention,
  ATTENTION_DECODE_VARIANTS,
  ATTENTION_VARIANTS,
  attentionCandidates,
  attentionDecode,
  attentionDecodeCandidates,
} from "../kernels/attention.ts";
import {
  ATTENTION_BACKWARD_VARIANTS,
  attentionBackward,
  attentionBackwardCandidates,
} from "../kernels/attention_backward.ts";
import { attentionDecodeRef, attentionRef } from "../kernels/attention_ref.ts";
import { ShapeError } from "../kernels/errors.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { TuningJob } from "../kernels/tuning.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";
import {
  assertLse,
  type AttentionCase,
  attentionInputs,
  checkBackward,
  runBackwardCase,
  SCALE,
  VARIANT_CASES,
} from "./_attention.ts";

/** The Gemma 3 1B head: D 256, 4 query heads on 1 KV head, a window smaller than S. */
const GEMMA_HEAD: AttentionCase = {
  batch: 1,
  seq: 19,
  heads: 4,
  kvHeads: 1,
  headDim: 256,
  window: 8,
};
/** GL llvmpipe builds big workgroup tiles for minutes (see the module doc). */
const SLOW_TILES = Deno.env.get("DENO_WEBGPU_BACKEND") === "gl";

async function checkPrefill(gpu: Gpu, c: AttentionCase, variant: string): Promise<void> {
  const { q, k, v, tq, tk, tv, tr, ref } = attentionInputs(gpu, c, 40);
  const options = { scale: SCALE, window: c.window, ranges: tr, variant };
  const { out, lse } = attention(tq, { k: tk, v: tv }, { ...options, returnLse: true });
  const plain = attention(tq, { k: tk, v: tv }, options); // without lse: scratch or none
  assert.equal(plain.lse, null);
  const want = attentionRef({ q, k, v }, ref);
  const what = `attention ${variant} ${JSON.stringify(c)}`;
  assertClose(await out.read(), want.out, 1e-5, what);
  assertClose(await plain.out.read(), want.out, 1e-5, `${what} without lse`);
  assertLse(await lse!.read(), want.lse, what);
  for (const t of [tq, tk, tv, tr, out, lse, plain.out]) t?.dispose();
}

Deno.test("attention() every variant matches attentionRef (out, lse) on odd shapes, GQA, windows and padding", async () => {
  const gpu = await testGpu();
  for (const variant of ATTENTION_VARIANTS) {
    for (const c of VARIANT_CASES) await checkPrefill(gpu, c, variant);
  }
});

Deno.test("attention() every variant handles the Gemma 3 1B head (D 256, 4 heads, 1 KV head)", {
  ignore: SLOW_TILES,
}, async () => {
  const gpu = await testGpu();
  for (const variant of ATTENTION_VARIANTS) await checkPrefill(gpu, GEMMA_HEAD, variant);
});

/** Decode against ring caches of 300 slots shorter than the sequences, every window. */
async function checkDecode(gpu: Gpu, dims: { heads: number; kvHeads: number; headDim: number }) {
  const [batch, cacheLen] = [4, 300];
  const { heads, kvHeads, headDim } = dims;
  const q = randomArray(batch * heads * headDim, 1, 2);
  const k = randomArray(batch * cacheLen * kvHeads * headDim, 2, 2);
  const v = randomArray(batch * cacheLen * kvHeads * headDim, 3);
  const ranges = [0, 5, 0, 650, 6, 400, 3, 3]; // short, wrapped twice, left-padded and wrapped, empty
  const tq = Tensor.fromArray(gpu, q, [batch, heads, headDim]);
  const cache = {
    k: Tensor.fromArray(gpu, k, [batch, cacheLen, kvHeads, headDim]),
    v: Tensor.fromArray(gpu, v, [batch, cacheLen, kvHeads, headDim]),
  };
  const tr = Tensor.fromArray(gpu, new Int32Array(ranges), [batch, 2]);
  const dimsRef = { batch, seq: cacheLen, numHeads: heads, numKvHeads: kvHeads, headDim };
  for (const variant of ATTENTION_DECODE_VARIANTS) {
    for (const window of [0, 20, 270]) {
      const options = { scale: SCALE, window, ranges: tr, variant };
      const { out, lse } = attentionDecode(tq, cache, { ...options, returnLse: true });
      const plain = attentionDecode(tq, cache, options);
      const want = attentionDecodeRef({ q, k, v }, { ...dimsRef, scale: SCALE, window, ranges });
      const what = `attentionDecode ${variant} window=${window} ${JSON.stringify(dims)}`;
      assertClose(await out.read(), want.out, 1e-5, what);
      assertClose(await plain.out.read(), want.out, 1e-5, `${what} without lse`);
      assertLse(await lse!.read(), want.lse, what);
      for (const t of [out, lse!, plain.out]) t.dispose();
    }
  }
  for (const t of [tq, cache.k, cache.v, tr]) t.dispose();
}

Deno.test("attentionDecode() every variant matches attentionDecodeRef on ring caches, G = 3 and 1", async () => {
  const gpu = await testGpu();
  await checkDecode(gpu, { heads: 6, kvHeads: 2, headDim: 7 });
  await checkDecode(gpu, { heads: 2, kvHeads: 2, headDim: 32 });
});

Deno.test("attentionBackward() every variant matches attentionBackwardRef (dq, dk, dv) on odd shapes", async () => {
  const gpu = await testGpu();
  for (const variant of ATTENTION_BACKWARD_VARIANTS) {
    for (const c of VARIANT_CASES) await checkBackward(gpu, c, { seed: 50, variant });
  }
});

Deno.test(
  "attentionBackward() every variant handles the Gemma 3 1B head after every forward variant",
  {
    ignore: SLOW_TILES,
  },
  async () => {
    const gpu = await testGpu();
    for (const variant of ATTENTION_BACKWARD_VARIANTS) {
      for (const forwardVariant of ATTENTION_VARIANTS) {
        await checkBackward(gpu, GEMMA_HEAD, {
          seed: 60,
          variant,
          forwardKernel: true,
          forwardVariant,
        });
      }
    }
  },
);

Deno.test("attentionBackward() every variant is bit-reproducible and chains after the forward's variants", async () => {
  const gpu = await testGpu();
  const c = VARIANT_CASES[2];
  for (const variant of ATTENTION_BACKWARD_VARIANTS) {
    const forwardVariant = ATTENTION_VARIANTS[ATTENTION_BACKWARD_VARIANTS.indexOf(variant)];
    const run = { seed: 70, variant, forwardKernel: true, forwardVariant };
    const a = await checkBackward(gpu, c, run);
    const b = (await runBackwardCase(gpu, c, run)).got;
    for (const name of ["dq", "dk", "dv"] as const) {
      assert.deepEqual(new Uint32Array(a[name].buffer), new Uint32Array(b[name].buffer), name);
    }
  }
});

/** An adapter stand-in for the candidate tables. */
function adapter(fallback: boolean, limits: Partial<Gpu["limits"]> = {}): Gpu {
  return {
    adapter: { description: "", vendor: "", architecture: "", isFallbackAdapter: fallback },
    limits: {
      maxComputeWorkgroupStorageSize: 16384,
      maxComputeInvocationsPerWorkgroup: 256,
      maxStorageBuffersPerShaderStage: 10,
      ...limits,
    },
  } as unknown as Gpu;
}

Deno.test("attention*Candidates() put reg first on fallback adapters and flash/split elsewhere", async () => {
  const gemma = { batch: 4, seq: 256, heads: 4, kvHeads: 1, headDim: 256, window: 512 };
  const long = { ...gemma, seq: 1024, window: 0 };
  for (
    const [candidates, all] of [
      [attentionCandidates, ATTENTION_VARIANTS],
      [attentionDecodeCandidates, ATTENTION_DECODE_VARIANTS],
      [attentionBackwardCandidates, ATTENTION_BACKWARD_VARIANTS],
    ] as const
  ) {
    const got = candidates(adapter(true), long);
    assert.equal(got[0], "reg");
    assert.deepEqual([...got].sort(), [...all].sort(), "every variant fits a roomy adapter");
  }
  assert.equal(attentionCandidates(adapter(false), gemma)[0], "flash32");
  assert.equal(attentionCandidates(adapter(false), { ...gemma, headDim: 64 })[0], "flash64");
  assert.equal(attentionBackwardCandidates(adapter(false), gemma)[0], "flash32");
  assert.equal(attentionDecodeCandidates(adapter(false), long)[0], "split64");
  assert.equal(attentionDecodeCandidates(adapter(false), gemma)[0], "split64"); // 256 keys
  assert.equal(attentionDecodeCandidates(adapter(false), { ...long, seq: 200 })[0], "reg");
  assert.equal(attentionDecodeCandidates(adapter(false), { ...long, window: 100 })[0], "reg");
  // Limits: 9 storage buffers for the flash backward, workgroup memory, invocations.
  const eight = adapter(false, { maxStorageBuffersPerShaderStage: 8 });
  assert.deepEqual(attentionBackwardCandidates(eight, gemma), ["reg"]);
  const small = adapter(false, { maxComputeWorkgroupStorageSize: 6144 }); // split256: 8 KiB
  assert.deepEqual(attentionDecodeCandidates(small, long), ["split64", "reg"]);
  const narrow = adapter(false, { maxComputeInvocationsPerWorkgroup: 128 });
  assert.deepEqual(attentionCandidates(narrow, gemma), ["reg"]);
  const huge = { ...gemma, headDim: 4096 };
  assert.deepEqual(attentionCandidates(adapter(false), huge), ["reg"]);
  // This machine's adapter is a fallback one: today's kernels stay the table's choice.
  const gpu = await testGpu();
  if (gpu.adapter.isFallbackAdapter) {
    assert.equal(attentionCandidates(gpu, gemma)[0], "reg");
    assert.equal(attentionDecodeCandidates(gpu, long)[0], "reg");
    assert.equal(attentionBackwardCandidates(gpu, gemma)[0], "reg");
  }
});

Deno.test("attention launchers reject an unknown or unfitting variant with a ShapeError naming the valid ones", async () => {
  const gpu = await testGpu();
  const q = Tensor.zeros(gpu, [1, 3, 2, 8]), k = Tensor.zeros(gpu, [1, 3, 1, 8]);
  const ranges = Tensor.fromArray(gpu, new Int32Array([0, 3]), [1, 2]);
  const valid = (ids: readonly string[]) => (e: unknown) =>
    e instanceof ShapeError && ids.every((id) => e.message.includes(id));
  assert.throws(
    () => attention(q, { k, v: k }, { scale: 1, variant: "flash7" }),
    valid(ATTENTION_VARIANTS),
  );
  const dq = Tensor.zeros(gpu, [1, 2, 8]);
  assert.throws(
    () => attentionDecode(dq, { k, v: k }, { scale: 1, ranges, variant: "flash32" }),
    valid(ATTENTION_DECODE_VARIANTS),
  );
  const inputs = { q, k, v: k, out: q, lse: Tensor.zeros(gpu, [1, 3, 2]) };
  assert.throws(
    () => attentionBackward(q, inputs, { scale: 1, variant: "split64" }),
    valid(ATTENTION_BACKWARD_VARIANTS),
  );
  // D = 4096 leaves no flash tile that fits: only reg is valid.
  const wide = Tensor.zeros(gpu, [1, 1, 1, 4096]);
  assert.throws(
    () =>
      attention(wide, { k: wide, v: Tensor.zeros(gpu, [1, 1, 1, 4096]) }, {
        scale: 1,
        variant: "flash32",
      }),
    (e: unknown) => e instanceof ShapeError && /valid: reg$/.test(e.message),
  );
  for (const t of [q, k, ranges, dq, inputs.lse, wide]) t.dispose();
});

Deno.test("attention launchers ask the tuner with their family, shape class, candidates and a bench", async () => {
  const gpu = await testGpu();
  const c = VARIANT_CASES[2];
  const { q, k, v, tq, tk, tv, tr, ref } = attentionInputs(gpu, c, 80);
  const jobs: TuningJob[] = [];
  const original = gpu.tuner.choose;
  gpu.tuner.choose = (job: TuningJob) => {
    jobs.push(job);
    return job.candidates[job.candidates.length - 1]; // not the table's: the launch must use it
  };
  try {
    const options = { scale: SCALE, window: c.window, ranges: tr };
    const fwd = attention(tq, { k: tk, v: tv }, { ...options, returnLse: true });
    assertClose(await fwd.out.read(), attentionRef({ q, k, v }, ref).out, 1e-5, "tuned prefill");
    const decodeRanges = Tensor.fromArray(gpu, new Int32Array([0, 21, 2, 15]), [2, 2]);
    const decodeQ = Tensor.fromArray(gpu, randomArray(2 * 32, 81), [2, 1, 32]); // G = 1
    const dec = attentionDecode(decodeQ, { k: tk, v: tv }, { scale: SCALE, ranges: decodeRanges });
    const grads = attentionBackward(
      tq,
      { q: tq, k: tk, v: tv, out: fwd.out, lse: fwd.lse! },
      options,
    );
    assert.deepEqual(jobs.map((j) => j.family), [
      "attention",
      "attention_decode",
      "attention_backward",
    ]);
    assert.deepEqual(jobs.map((j) => j.shapeClass), [
      "d32:g3:kvh1:b2:s32:w6",
      "d32:g1:kvh1:b2:c32:w0",
      "d32:g3:kvh1:b2:s32:w6",
    ]);
    assert.deepEqual(jobs[0].candidates, attentionCandidates(gpu, { ...c, window: 6 }));
    const outputs = [fwd.out, fwd.lse!, dec.out, grads.dq, grads.dk, grads.dv];
    for (const t of [...outputs, decodeRanges, decodeQ]) t.dispose();
  } finally {
    gpu.tuner.choose = original;
  }
  // Each bench launches every candidate on scratch inputs of the shape, then frees them.
  for (const job of jobs) {
    const bench = job.prepare();
    for (const id of job.candidates) bench.launch(id);
    await gpu.sync();
    bench.dispose();
  }
  for (const t of [tq, tk, tv, tr]) t?.dispose();
});
