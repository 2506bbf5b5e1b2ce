import assert from "node:assert/strict";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import {
  sample,
  SAMPLE_VARIANTS,
  sampleCandidates,
  type SampleOptions,
  SamplingOptionsError,
} from "../kernels/sampling.ts";
import {
  keyValue,
  orderedKey,
  sampleLogprobsRef,
  sampleRef,
  samplingUniform,
} from "../kernels/sampling_ref.ts";
import { ShapeError } from "../kernels/errors.ts";
import { FieldError } from "../base/field_error.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";
import { ADAPTER_KINDS, runnableVariants, standInGpu } from "./_reduce_variants.ts";

async function gpuSample(
  gpu: Gpu,
  logits: Float32Array,
  vocab: number,
  options: SampleOptions,
): Promise<Uint32Array> {
  const t = Tensor.fromArray(gpu, logits, [logits.length / vocab, vocab]);
  const ids = sample(t, options);
  const out = (await ids.read()) as Uint32Array;
  t.dispose();
  ids.dispose();
  return out;
}

function argmaxRows(logits: Float32Array, vocab: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < logits.length / vocab; r++) {
    let best = 0;
    for (let i = 1; i < vocab; i++) {
      if (logits[r * vocab + i] > logits[r * vocab + best]) best = i;
    }
    out.push(best);
  }
  return out;
}

/** `rows` copies of one row of logits. */
function repeatRow(row: number[], rows: number): Float32Array {
  const out = new Float32Array(rows * row.length);
  for (let r = 0; r < rows; r++) out.set(row, r * row.length);
  return out;
}

Deno.test("sample() with temperature 0 is argmax, ties to the lowest index, NaN ignored, every variant", async () => {
  const gpu = await testGpu();
  const variants = runnableVariants(gpu, SAMPLE_VARIANTS, "sample greedy");
  for (const vocab of [1, 7, 33, 1000, 262144]) {
    const rows = 3;
    const logits = randomArray(rows * vocab, vocab, 5);
    if (vocab > 7) {
      // Row 1: the max appears three times; row 2: a NaN in front of the max.
      logits[vocab + 5] = logits[vocab + vocab - 1] = logits[vocab + 3] = 6;
      logits[2 * vocab + 1] = NaN;
    }
    const want = argmaxRows(logits.map((x) => (Number.isNaN(x) ? -Infinity : x)), vocab);
    if (vocab > 7) assert.equal(want[1], 3);
    for (const variant of variants) {
      const got = await gpuSample(gpu, logits, vocab, { temperature: 0, variant });
      assert.deepEqual([...got], want, `V=${vocab} ${variant}`);
    }
    assert.deepEqual([...sampleRef(logits, vocab, { temperature: 0 })], want);
  }
});

Deno.test("sample() with temperature 1e-6 or topK 1 equals greedy", async () => {
  const gpu = await testGpu();
  for (const vocab of [3, 33, 1000, 262144]) {
    const logits = randomArray(4 * vocab, vocab + 1, 3);
    const want = argmaxRows(logits, vocab);
    for (let step = 0; step < 3; step++) {
      const cold = await gpuSample(gpu, logits, vocab, { temperature: 1e-6, seed: 9, step });
      assert.deepEqual([...cold], want, `T=1e-6 V=${vocab}`);
      const top1 = await gpuSample(gpu, logits, vocab, {
        temperature: 1.5,
        topK: 1,
        seed: 9,
        step,
      });
      assert.deepEqual([...top1], want, `topK=1 V=${vocab}`);
    }
  }
});

Deno.test("sample() top-p 0.7 over probs (0.5, 0.3, 0.15, 0.05) draws only the top two", async () => {
  const gpu = await testGpu();
  // Shuffled so the inverse CDF runs over kept tokens in index order: 1 (0.5), 3 (0.3).
  const row = [Math.log(0.15), Math.log(0.5), Math.log(0.05), Math.log(0.3)];
  const rows = 4000;
  const logits = repeatRow(row, rows);
  const counts = [0, 0, 0, 0];
  for (const seed of [1, 2]) {
    const ids = await gpuSample(gpu, logits, 4, { topP: 0.7, seed, step: 3 });
    for (const id of ids) counts[id]++;
    assert.deepEqual([...ids], [...sampleRef(logits, 4, { topP: 0.7, seed, step: 3 })]);
  }
  assert.equal(counts[0] + counts[2], 0);
  const f = counts[1] / (2 * rows);
  // sd of the frequency is sqrt(0.625·0.375/8000) ≈ 0.0054; allow 4 sd.
  assert.ok(Math.abs(f - 0.625) < 0.022, `frequency of the 0.5 token ${f}, want ≈ 0.625`);
});

Deno.test("sample() is reproducible per (seed, step) and changes with either", async () => {
  const gpu = await testGpu();
  const vocab = 1000, rows = 64;
  const logits = randomArray(rows * vocab, 17, 2);
  const opts = { temperature: 1, topP: 0.95, seed: 5, step: 11 };
  const a = await gpuSample(gpu, logits, vocab, opts);
  const b = await gpuSample(gpu, logits, vocab, opts);
  assert.deepEqual(a, b);
  assert.deepEqual([...a], [...sampleRef(logits, vocab, opts)]);
  const differing = (x: Uint32Array) => x.filter((id, i) => id !== a[i]).length;
  assert.ok(differing(await gpuSample(gpu, logits, vocab, { ...opts, seed: 6 })) > rows / 2);
  assert.ok(differing(await gpuSample(gpu, logits, vocab, { ...opts, step: 12 })) > rows / 2);
});

Deno.test("sample() frequencies match softmax(logits / T) (chi-square, 7 dof)", async () => {
  const gpu = await testGpu();
  const row = [0.3, -1.2, 2.0, 0.0, 1.1, -0.4, 0.9, -2.5];
  const temperature = 0.7;
  const rows = 20000;
  const logits = repeatRow(row, rows);
  const ids = await gpuSample(gpu, logits, row.length, { temperature, seed: 1234, step: 0 });
  assert.deepEqual([...ids], [...sampleRef(logits, row.length, { temperature, seed: 1234 })]);
  const z = row.map((x) => Math.exp(x / temperature));
  const sum = z.reduce((a, b) => a + b, 0);
  const counts = new Array(row.length).fill(0);
  for (const id of ids) counts[id]++;
  let chi2 = 0;
  for (let i = 0; i < row.length; i++) {
    const expected = (rows * z[i]) / sum;
    chi2 += (counts[i] - expected) ** 2 / expected;
  }
  // P(chi2 > 24.3 | 7 dof) = 0.001.
  assert.ok(chi2 < 24.3, `chi-square ${chi2.toFixed(2)} (counts ${counts})`);
});

Deno.test("sample() with topK 50 on V = 262144 only yields the top 50 ids", async () => {
  const gpu = await testGpu();
  const vocab = 262144, rows = 4;
  const logits = randomArray(rows * vocab, 99, 10);
  const top50: Set<number>[] = [];
  for (let r = 0; r < rows; r++) {
    const order = [...Array(vocab).keys()].sort((a, b) =>
      logits[r * vocab + b] - logits[r * vocab + a]
    );
    top50.push(new Set(order.slice(0, 50)));
  }
  const t = Tensor.fromArray(gpu, logits, [rows, vocab]);
  const steps = 8;
  const out = Tensor.empty(gpu, [steps, rows], "u32");
  for (let step = 0; step < steps; step++) {
    sample(t, { topK: 50, topP: step % 2 ? 0.9 : 1, seed: 3, step, out, outOffset: step * rows });
  }
  const ids = (await out.read()) as Uint32Array;
  const distinct = new Set<number>();
  for (let i = 0; i < ids.length; i++) {
    assert.ok(top50[i % rows].has(ids[i]), `id ${ids[i]} (row ${i % rows}) not in the top 50`);
    distinct.add(ids[i]);
  }
  assert.ok(distinct.size > steps * rows / 2, "draws should spread over the top 50");
  for (const step of [0, 1]) {
    const want = sampleRef(logits, vocab, { topK: 50, topP: step % 2 ? 0.9 : 1, seed: 3, step });
    assert.deepEqual([...ids.subarray(step * rows, step * rows + rows)], [...want], `step ${step}`);
  }
  t.dispose();
  out.dispose();
});

Deno.test("sample() matches sampleRef on odd shapes, with ties, for all option mixes, every variant", async () => {
  const gpu = await testGpu();
  const variants = runnableVariants(gpu, SAMPLE_VARIANTS, "sample mixes");
  const mixes: SampleOptions[] = [
    { temperature: 1 },
    { temperature: 0.5, topK: 3 },
    { temperature: 2, topP: 0.8 },
    { temperature: 0.9, topK: 20, topP: 0.6 },
    { temperature: 1, topK: 7 },
  ];
  for (const vocab of [1, 3, 7, 33, 257, 1000]) {
    const rows = 5;
    const smooth = randomArray(rows * vocab, vocab * 13, 3);
    // Quantised logits create ties at the top-k and top-p thresholds.
    const tied = smooth.map((x) => Math.round(x * 2) / 2);
    for (const logits of [smooth, tied]) {
      for (const [m, mix] of mixes.entries()) {
        const opts = { ...mix, seed: 1000 + m, step: vocab };
        const want = [...sampleRef(logits, vocab, opts)];
        for (const variant of variants) {
          const got = await gpuSample(gpu, logits, vocab, { ...opts, variant });
          assert.deepEqual([...got], want, `V=${vocab} ${JSON.stringify(opts)} ${variant}`);
        }
      }
    }
  }
});

Deno.test("sample() logprobsOut: the same ids and their temperature-1 log-probs, for all option mixes, every variant", async () => {
  const gpu = await testGpu();
  const variants = runnableVariants(gpu, SAMPLE_VARIANTS, "sample logprobsOut");
  const mixes: SampleOptions[] = [
    { temperature: 0 },
    { temperature: 1 },
    { temperature: 0.9, topK: 20 },
    { temperature: 2, topP: 0.8 },
    { temperature: 0.5, topK: 7, topP: 0.6 },
  ];
  for (const vocab of [1, 3, 33, 257, 1000, 262144]) {
    const rows = vocab > 1000 ? 2 : 5;
    const logits = randomArray(rows * vocab, vocab * 7, 4);
    const t = Tensor.fromArray(gpu, logits, [rows, vocab]);
    for (const [m, variant] of mixes.flatMap((_, i) => variants.map((v) => [i, v] as const))) {
      const opts = { ...mixes[m], seed: 40 + m, step: vocab, variant };
      const plain = sample(t, opts);
      const logp = Tensor.zeros(gpu, [rows], "f32");
      const ids = sample(t, { ...opts, logprobsOut: logp });
      const got = (await ids.read()) as Uint32Array;
      const what = `V=${vocab} ${JSON.stringify(opts)}`;
      assert.deepEqual([...got], [...((await plain.read()) as Uint32Array)], `ids ${what}`);
      const want = sampleLogprobsRef(logits, vocab, got);
      // Absolute: the log-probs, like the training forward's, are compared without scaling.
      assertClose(await logp.read(), want, 1e-6 / Math.max(1, ...want.map(Math.abs)), what);
      for (const x of [plain, logp, ids]) x.dispose();
    }
    t.dispose();
  }
});

Deno.test("sample() logprobsOut writes at outOffset, across row parts, and is checked", async () => {
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 8192 });
  const vocab = 333, rows = 19; // several parts
  const logits = randomArray(rows * vocab, 5, 4);
  const t = Tensor.fromArray(gpu, logits, [rows, vocab]);
  assert.ok(t.parts.length > 1);
  const out = Tensor.zeros(gpu, [rows + 3], "u32");
  const logp = Tensor.fromArray(gpu, new Float32Array(rows + 3).fill(7), [rows + 3]);
  sample(t, { topK: 10, seed: 3, out, outOffset: 3, logprobsOut: logp });
  const ids = ((await out.read()) as Uint32Array).subarray(3);
  const lp = (await logp.read()) as Float32Array;
  assert.deepEqual([...lp.subarray(0, 3)], [7, 7, 7]);
  assertClose(lp.subarray(3), sampleLogprobsRef(logits, vocab, ids), 1e-6, "logprobs");
  const isShape = (e: unknown) => e instanceof ShapeError && /logprobsOut/.test(e.message);
  const short = Tensor.zeros(gpu, [rows], "f32");
  assert.throws(() => sample(t, { out, outOffset: 3, logprobsOut: short }), isShape);
  const ints = Tensor.zeros(gpu, [rows], "u32");
  assert.throws(() => sample(t, { logprobsOut: ints }), isShape);
  for (const x of [t, out, logp, short, ints]) x.dispose();
  gpu.destroy();
});

Deno.test("sampleRef() keeps every token tied with the k-th value and nothing below", () => {
  // Keys: 3 > 2 = 2 = 2 > 1; topK 2 keeps the three 2s as well.
  const row = [2, 1, 3, 2, 2];
  const seen = new Set<number>();
  for (let seed = 0; seed < 200; seed++) seen.add(sampleRef(row, 5, { topK: 2, seed })[0]);
  assert.deepEqual([...seen].sort(), [0, 2, 3, 4]);
});

Deno.test("sample() writes into slots of an out buffer and handles logits split by rows", async () => {
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 8192 });
  const vocab = 333, rows = 19; // 1332 bytes a row: several parts
  const logits = randomArray(rows * vocab, 4, 4);
  const t = Tensor.fromArray(gpu, logits, [rows, vocab]);
  assert.ok(t.parts.length > 1);
  const out = Tensor.zeros(gpu, [3 * rows + 2], "u32");
  const opts = [{ temperature: 0 }, { topK: 10, seed: 2, step: 1 }, {
    topP: 0.5,
    seed: 2,
    step: 2,
  }];
  opts.forEach((o, s) => sample(t, { ...o, out, outOffset: 2 + s * rows }));
  const ids = (await out.read()) as Uint32Array;
  assert.deepEqual([...ids.subarray(0, 2)], [0, 0]);
  opts.forEach((o, s) => {
    const want = sampleRef(logits, vocab, o);
    assert.deepEqual([...ids.subarray(2 + s * rows, 2 + (s + 1) * rows)], [...want], `slot ${s}`);
  });
  t.dispose();
  out.dispose();
  gpu.destroy();
});

Deno.test("sample() rejects bad options and shapes naming the field", async () => {
  const gpu = await testGpu();
  const t = Tensor.zeros(gpu, [2, 5]);
  const bad: [SampleOptions, string][] = [
    [{ temperature: -1 }, "temperature"],
    [{ temperature: NaN }, "temperature"],
    [{ topK: 1.5 }, "topK"],
    [{ topP: 0 }, "topP"],
    [{ topP: 1.01 }, "topP"],
    [{ seed: -1 }, "seed"],
    [{ step: 2 ** 32 }, "step"],
  ];
  for (const [o, field] of bad) {
    assert.throws(
      () => sample(t, o),
      (e) =>
        e instanceof SamplingOptionsError && e instanceof FieldError && e.path === field &&
        e.message.includes(field),
    );
  }
  const small = Tensor.zeros(gpu, [3], "u32");
  const isShape = (e: unknown) => e instanceof ShapeError && /sample: /.test(e.message);
  assert.throws(() => sample(t, { out: small, outOffset: 2 }), isShape);
  const ints = Tensor.zeros(gpu, [2, 5], "i32");
  assert.throws(() => sample(ints), isShape);
  const huge = Tensor.zeros(gpu, [1, 1 << 20]);
  assert.throws(() => sample(huge), isShape);
  assert.throws(
    () => sample(t, { variant: "fast" }),
    /sample: variant must be one of reg.*got fast/,
  );
  if (!gpu.features.subgroups) assert.throws(() => sample(t, { variant: "sg" }), isShape);
  for (const x of [t, small, ints, huge]) x.dispose();
});

Deno.test("samplingUniform() is deterministic, in [0, 1) and spread; orderedKey() orders floats", () => {
  const us = Array.from({ length: 20000 }, (_, i) => samplingUniform({ seed: 7, step: 1, row: i }));
  assert.equal(samplingUniform({ seed: 7, step: 1, row: 5 }), us[5]);
  assert.ok(us.every((u) => u >= 0 && u < 1 && Number.isInteger(u * 2 ** 24)));
  const mean = us.reduce((a, b) => a + b, 0) / us.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
  assert.ok(new Set(us).size > 19900);
  assert.notEqual(samplingUniform({ seed: 7, step: 2, row: 5 }), us[5]);
  assert.notEqual(samplingUniform({ seed: 8, step: 1, row: 5 }), us[5]);
  const xs = [-Infinity, -3.5, -1e-30, -0, 0, 1e-30, 2, Infinity];
  const keys = xs.map(orderedKey);
  for (let i = 1; i < keys.length; i++) assert.ok(keys[i] > keys[i - 1], `${xs[i]}`);
  assert.equal(orderedKey(NaN), orderedKey(-Infinity));
  for (const x of xs.map(Math.fround)) assert.ok(Object.is(keyValue(orderedKey(x)), x), `${x}`);
});

Deno.test("sampleCandidates(): reg first on fallback adapters, sg first on GPUs with subgroups", async () => {
  const table = ADAPTER_KINDS.map((kind) =>
    sampleCandidates(standInGpu(kind), { rows: 2, vocab: 9 })
  );
  assert.deepEqual(table, [["reg"], ["reg", "sg"], ["reg"], ["sg", "reg"]]);
  assert.deepEqual(new Set(table.flat()), new Set(SAMPLE_VARIANTS));
  const gpu = await testGpu();
  const first = sampleCandidates(gpu, { rows: 2, vocab: 9 })[0];
  assert.equal(first, !gpu.adapter.isFallbackAdapter && gpu.features.subgroups ? "sg" : "reg");
});
