import assert from "node:assert/strict";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { LOGPROBS_VARIANTS, tokenLogprobs, tokenLogprobsCandidates } from "../kernels/logprobs.ts";
import { tokenLogprobsRef } from "../kernels/logprobs_ref.ts";
import { ShapeError } from "../kernels/errors.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";
import {
  logprobsProblem,
  type LogprobsShape,
  ODD_SHAPES,
  type ProblemOptions,
  TOL,
} from "./_logprobs.ts";
import { ADAPTER_KINDS, runnableVariants, standInGpu } from "./_reduce_variants.ts";

/**
 * Checks tokenLogprobs() on one problem against the reference; returns E's tensor. With
 * `entropy`, also the entropies, and that the log-probs and lse equal the plain call's.
 */
async function checkLogprobs(
  gpu: Gpu,
  shape: LogprobsShape,
  options: ProblemOptions & {
    readonly temperature?: number;
    readonly entropy?: boolean;
    readonly variant?: string;
  },
): Promise<Tensor> {
  const { dims, h, e, targets, th, te, tt } = logprobsProblem(gpu, shape, options);
  const { temperature, entropy, variant } = options;
  const got = tokenLogprobs({ h: th, embedding: te, targets: tt }, {
    temperature,
    entropy,
    variant,
  });
  const want = tokenLogprobsRef({ h, embedding: e, targets }, { ...dims, temperature });
  const what = `T=${dims.tokens} D=${dims.dim} V=${dims.vocab} ${options.dtype} ` +
    `parts=${te.parts.length} ${variant ?? "table"}`;
  const logprobs = await got.logprobs.read(), lse = await got.lse.read();
  assertClose(logprobs, want.logprobs, TOL, `logprobs ${what}`);
  assertClose(lse, want.lse, TOL, `lse ${what}`);
  assert.equal(got.entropy !== undefined, entropy === true);
  if (got.entropy) {
    assertClose(await got.entropy.read(), want.entropy, TOL, `entropy ${what}`);
    const plain = tokenLogprobs({ h: th, embedding: te, targets: tt }, { temperature, variant });
    assert.deepEqual(bits(logprobs), bits(await plain.logprobs.read()), `logprobs bits ${what}`);
    assert.deepEqual(bits(lse), bits(await plain.lse.read()), `lse bits ${what}`);
    for (const t of [got.entropy, plain.logprobs, plain.lse]) t.dispose();
  }
  for (const t of [th, tt, got.logprobs, got.lse]) t.dispose();
  return te;
}

/** The bit patterns of f32 values (NaN-safe equality). */
function bits(x: ArrayLike<number>): Uint32Array {
  return new Uint32Array(Float32Array.from(x).buffer);
}

Deno.test("tokenLogprobs() matches float64 reference on odd T, D and V, f32 and bf16, every variant", async () => {
  const gpu = await testGpu();
  for (const variant of runnableVariants(gpu, LOGPROBS_VARIANTS, "tokenLogprobs")) {
    for (const shape of ODD_SHAPES) {
      for (const dtype of ["f32", "bf16"] as const) {
        (await checkLogprobs(gpu, shape, { dtype, variant })).dispose();
      }
    }
  }
});

Deno.test("tokenLogprobs() matches float64 reference at V = 262144", async () => {
  const gpu = await testGpu();
  for (const [dim, dtype] of [[16, "bf16"], [7, "f32"]] as const) {
    (await checkLogprobs(gpu, [3, dim, 262144], { dtype, scale: 2 })).dispose();
  }
});

Deno.test("tokenLogprobs() handles E split into parts along V", async () => {
  // A 64 KiB binding cap splits E into many parts whose boundaries fall inside chunks.
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 65536 });
  for (
    const [tokens, dim, vocab, dtype] of [[5, 33, 3001, "bf16"], [3, 16, 20000, "f32"]] as const
  ) {
    const e = await checkLogprobs(gpu, [tokens, dim, vocab], { dtype });
    assert.ok(e.parts.length > 1, "E should be split");
    e.dispose();
  }
  // Targets in the first and last rows of every part.
  const vocab = 9000, dim = 12;
  const probe = Tensor.empty(gpu, [vocab, dim], "bf16");
  const edges = probe.parts.flatMap((p) => [p.rowStart, p.rowStart + p.rows - 1]);
  probe.dispose();
  const targets = Int32Array.from(edges);
  (await checkLogprobs(gpu, [targets.length, dim, vocab], { dtype: "bf16", targets })).dispose();
  gpu.destroy();
});

Deno.test("tokenLogprobs() applies the temperature and stays exact for large logits, every variant", async () => {
  const gpu = await testGpu();
  for (const variant of runnableVariants(gpu, LOGPROBS_VARIANTS, "tokenLogprobs temperature")) {
    (await checkLogprobs(gpu, [4, 33, 1000], { dtype: "f32", temperature: 0.7, variant }))
      .dispose();
    (await checkLogprobs(gpu, [4, 33, 1000], {
      dtype: "bf16",
      temperature: 2.5,
      scale: 3,
      variant,
    }))
      .dispose();
    // Logits of magnitude ~100: the online max must keep exp() in range.
    (await checkLogprobs(gpu, [3, 64, 8197], { dtype: "f32", scale: 12, variant })).dispose();
    (await checkLogprobs(gpu, [17, 36, 8197], { dtype: "bf16", scale: 12, variant })).dispose();
  }
});

Deno.test("tokenLogprobs() shrinks its chunks for very wide D and stays exact", async () => {
  // D = 4501 (odd, unpacked) walks 4501-long dot loops: the kernel must take fewer steps per
  // chunk to stay under llvmpipe's 65535 loop iterations per invocation.
  const gpu = await testGpu();
  (await checkLogprobs(gpu, [2, 4501, 4001], { dtype: "bf16", scale: 0.2 })).dispose();
});

Deno.test("tokenLogprobs() returns NaN for out-of-range targets and checks shapes", async () => {
  const gpu = await testGpu();
  const h = Tensor.fromArray(gpu, randomArray(6, 1), [2, 3]);
  const e = Tensor.fromArray(gpu, randomArray(15, 2), [5, 3], "bf16");
  const bad = Tensor.fromArray(gpu, new Int32Array([5, -1]), [2]);
  const { logprobs, lse } = tokenLogprobs({ h, embedding: e, targets: bad });
  const lp = await logprobs.read();
  assert.ok(Number.isNaN(lp[0]) && Number.isNaN(lp[1]));
  assert.ok(Number.isFinite((await lse.read())[0]));
  const wrongD = Tensor.zeros(gpu, [5, 4]);
  const wrongT = Tensor.zeros(gpu, [3], "u32");
  const f = Tensor.zeros(gpu, [2], "f32");
  const isShape = (e: unknown) => e instanceof ShapeError && /tokenLogprobs: /.test(e.message);
  assert.throws(() => tokenLogprobs({ h, embedding: wrongD, targets: bad }), isShape);
  assert.throws(() => tokenLogprobs({ h, embedding: e, targets: wrongT }), isShape);
  assert.throws(() => tokenLogprobs({ h, embedding: e, targets: f }), isShape);
  assert.throws(
    () => tokenLogprobs({ h, embedding: e, targets: bad }, { temperature: 0 }),
    isShape,
  );
  assert.throws(() => tokenLogprobs({ h, embedding: e, targets: bad }, { variant: "x" }), isShape);
  if (!gpu.features.subgroups) {
    assert.throws(
      () => tokenLogprobs({ h, embedding: e, targets: bad }, { variant: "sg" }),
      /variant must be one of reg .*got sg/,
    );
  }
  for (const t of [h, e, bad, logprobs, lse, wrongD, wrongT, f]) t.dispose();
});

Deno.test("tokenLogprobs() entropy matches float64 reference on odd T, D and V, f32 and bf16, every variant", async () => {
  const gpu = await testGpu();
  for (const variant of runnableVariants(gpu, LOGPROBS_VARIANTS, "tokenLogprobs entropy")) {
    for (const shape of ODD_SHAPES) {
      for (const dtype of ["f32", "bf16"] as const) {
        (await checkLogprobs(gpu, shape, { dtype, entropy: true, variant })).dispose();
      }
    }
  }
  // Temperatures, logits of magnitude ~100 (peaked rows: H near 0) and V = 262144.
  (await checkLogprobs(gpu, [4, 33, 1000], { dtype: "f32", temperature: 0.7, entropy: true }))
    .dispose();
  (await checkLogprobs(gpu, [17, 36, 8197], { dtype: "bf16", scale: 12, entropy: true }))
    .dispose();
  (await checkLogprobs(gpu, [3, 16, 262144], { dtype: "bf16", scale: 2, entropy: true }))
    .dispose();
});

Deno.test("tokenLogprobs() entropy with E split into parts along V", async () => {
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 65536 });
  for (const variant of runnableVariants(gpu, LOGPROBS_VARIANTS, "split entropy")) {
    for (
      const [tokens, dim, vocab, dtype] of [[5, 33, 3001, "bf16"], [3, 16, 20000, "f32"]] as const
    ) {
      const e = await checkLogprobs(gpu, [tokens, dim, vocab], { dtype, entropy: true, variant });
      assert.ok(e.parts.length > 1, "E should be split");
      e.dispose();
    }
  }
  gpu.destroy();
});

Deno.test("tokenLogprobs() entropy of a uniform row is log V and of a one-hot row 0", async () => {
  const gpu = await testGpu();
  // h = 0: every logit 0, p uniform over V = 1001 rows.
  const vocab = 1001, dim = 5;
  const h = Tensor.zeros(gpu, [2, dim]);
  const e = Tensor.fromArray(gpu, randomArray(vocab * dim, 3), [vocab, dim], "bf16");
  const ids = Tensor.fromArray(gpu, new Int32Array([0, 1000]), [2]);
  const r = tokenLogprobs({ h, embedding: e, targets: ids }, { entropy: true });
  assertClose(await r.entropy!.read(), [Math.log(vocab), Math.log(vocab)], 1e-6, "uniform");
  // Logit 200 on row 0, 0 elsewhere: p ≈ one-hot, H ≈ 0 (no cancellation against the logit).
  const oneHot = new Float32Array(vocab * dim);
  oneHot[0] = 1;
  const e2 = Tensor.fromArray(gpu, oneHot, [vocab, dim]);
  const h2 = Tensor.fromArray(gpu, new Float32Array([200, 0, 0, 0, 0]), [1, dim]);
  const id2 = Tensor.fromArray(gpu, new Int32Array([0]), [1]);
  const r2 = tokenLogprobs({ h: h2, embedding: e2, targets: id2 }, { entropy: true });
  assert.ok(Math.abs((await r2.entropy!.read())[0]) < 1e-30);
  for (const t of [h, e, ids, r.logprobs, r.lse, r.entropy!, e2, h2, id2]) t.dispose();
  for (const t of [r2.logprobs, r2.lse, r2.entropy!]) t.dispose();
});

Deno.test("tokenLogprobsCandidates(): reg first on fallback adapters, sg first on GPUs with subgroups", async () => {
  const shape = { tokens: 7, dim: 33, vocab: 257 };
  const table = ADAPTER_KINDS.map((kind) => tokenLogprobsCandidates(standInGpu(kind), shape));
  assert.deepEqual(table, [["reg"], ["reg", "sg"], ["reg"], ["sg", "reg"]]);
  assert.deepEqual(new Set(table.flat()), new Set(LOGPROBS_VARIANTS));
  const gpu = await testGpu();
  const first = tokenLogprobsCandidates(gpu, shape)[0];
  assert.equal(first, !gpu.adapter.isFallbackAdapter && gpu.features.subgroups ? "sg" : "reg");
});
