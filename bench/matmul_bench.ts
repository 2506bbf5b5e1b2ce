/**
 * Matmul throughput: webtune vs jax-js (jit'd `numpy.matmul` on its WebGPU device) on the same
 * adapter and the same matrices, plus the Gemma 3 1B shapes (MLP up/down projections, tied LM
 * head GEMV over the split 262144×1152 bf16 embedding). Every shape runs webtune's default (the
 * deterministic table's variant: tuning is off) and then every other variant
 * `matmulCandidates` lists for it on this adapter, forced (`<name> <variant>`).
 *
 * Each iteration records several products and waits once, so the ≥ 10 ms GPU wait is < 5 % of
 * it. The summary gives GFLOP/s (GB/s of W for the GEMV, which memory bounds) with the % of the
 * adapter's peak where `peaks.ts` knows it, and the webtune / jax-js ratios.
 *
 * Run: `deno bench -A bench/matmul_bench.ts`; the webtune vs jax-js comparison alone:
 * `deno bench -A bench/matmul_bench.ts --filter "/^matmul (1024|2048) (webtune|jax-js)$/"`.
 *
 * @module
 */

import { defaultDevice, init, jit, numpy as np } from "@jax-js/jax";
import { toBf16 } from "../kernels/dtype.ts";
import { Gpu } from "../kernels/gpu.ts";
import { matmul, matmulCandidates } from "../kernels/matmul.ts";
import { Tensor } from "../kernels/tensor.ts";
import {
  benchIterations,
  type IterationCase,
  lcgFill,
  medianRate,
  printIterationSummary,
  type RateUnit,
} from "./_measure.ts";

const gpu = await Gpu.create();
if (!(await init()).includes("webgpu")) throw new Error("jax-js found no WebGPU device");
defaultDevice("webgpu");
const jaxMatmul = jit((a: np.Array, b: np.Array) => np.matmul(a, b));

const cases: IterationCase[] = [];

/** Values uniform in [-0.5, 0.5). */
const random = (n: number, seed: number) => lcgFill(n, seed, 0.5);

/** bf16 bits of a large random matrix, tiled from a small random table (fast to build). */
function randomBf16(n: number, seed: number): Uint16Array {
  const table = toBf16(random(4099, seed).map((v) => v * 0.1));
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = table[i % 4099];
  return out;
}

/** What one registered bench does per product and how it is reported. */
interface Product {
  readonly flops: number;
  /** Bytes of W read, for memory-bound products (then GB/s is the main rate). */
  readonly weightBytes?: number;
  readonly reps: number;
  readonly variant?: string;
}

/** Registers a bench whose iteration runs `p.reps` products and waits once. */
function bench(name: string, group: string | undefined, p: Product, run: () => Promise<void>) {
  const unit: RateUnit = p.weightBytes === undefined ? "GFLOP/s" : "GB/s";
  const c: IterationCase = {
    name,
    work: (p.weightBytes ?? p.flops) * p.reps,
    unit,
    ms: [],
    also: p.weightBytes === undefined ? undefined : { work: p.flops * p.reps, unit: "GFLOP/s" },
    tail: p.variant === undefined ? undefined : () => `variant ${p.variant}`,
  };
  cases.push(c);
  benchIterations({ name, group, n: 4, warmup: 1, baseline: name.endsWith("jax-js") }, run, c.ms);
}

/** The default launch (tuning off: the table's first candidate) and each other candidate. */
function benchVariants(
  name: string,
  group: string | undefined,
  p: Product & { readonly candidates: readonly string[] },
  launch: (variant: string | undefined) => void,
): void {
  const [table, ...others] = p.candidates;
  for (const variant of [undefined, ...others]) {
    bench(
      variant === undefined ? name : `${name} ${variant}`,
      group,
      { ...p, variant: variant ?? table },
      async () => {
        for (let r = 0; r < p.reps; r++) launch(variant);
        await gpu.sync();
      },
    );
  }
}

// Square f32: webtune `x·W` (W [K, N], i.e. transposeB: false) and jax-js `np.matmul` on the
// very same host matrices, `reps` products per iteration each.
for (const [size, reps] of [[1024, 4], [2048, 1]] as const) {
  const a = random(size * size, size), b = random(size * size, size + 1);
  const ta = Tensor.fromArray(gpu, a, [size, size]);
  const tb = Tensor.fromArray(gpu, b, [size, size]);
  const out = Tensor.empty(gpu, [size, size]);
  const ja = np.array(a).reshape([size, size]), jb = np.array(b).reshape([size, size]);
  // Same products: compare one row of both results.
  const jy = jaxMatmul(ja.ref, jb.ref);
  const jRow = (await jy.data()).slice(0, size);
  const wRow = (await matmul(ta, tb, { transposeB: false, out }).read()).slice(0, size);
  let diff = 0;
  for (let i = 0; i < size; i++) diff = Math.max(diff, Math.abs(wRow[i] - Number(jRow[i])));
  if (diff > 1e-3) throw new Error(`webtune and jax-js disagree at ${size}: ${diff}`);
  const flops = 2 * size ** 3;
  const candidates = matmulCandidates(gpu, { form: "nn", m: size, n: size, k: size });
  const group = `matmul ${size}`;
  benchVariants(`matmul ${size} webtune`, group, { flops, reps, candidates }, (variant) => {
    matmul(ta, tb, { transposeB: false, out, variant });
  });
  bench(`matmul ${size} jax-js`, group, { flops, reps }, async () => {
    const ys = Array.from({ length: reps }, () => jaxMatmul(ja.ref, jb.ref));
    for (const y of ys) await y.blockUntilReady();
    for (const y of ys) y.dispose();
  });
}

// Gemma 3 1B shapes, weights bf16 in HF [out, in] layout: y = x·Wᵀ.
const gemma: [string, number, number, number, number][] = [
  ["mlp up 128x1152·1152x6912", 128, 6912, 1152, 4],
  ["mlp down 128x6912·6912x1152", 128, 1152, 6912, 4],
  ["lm head 1x1152·1152x262144", 1, 262144, 1152, 2],
];
for (const [label, m, n, k, reps] of gemma) {
  const x = Tensor.fromArray(gpu, random(m * k, m + k), [m, k]);
  const w = Tensor.fromArray(gpu, randomBf16(n * k, n), [n, k], "bf16");
  const out = Tensor.empty(gpu, [m, n]);
  const candidates = matmulCandidates(gpu, { form: "nt", m, n, k, bf16: true });
  const product = {
    flops: 2 * m * n * k,
    weightBytes: m === 1 ? n * k * 2 : undefined,
    reps,
    candidates,
  };
  benchVariants(`matmul gemma3-1b ${label} bf16 webtune`, undefined, product, (variant) => {
    matmul(x, w, { out, variant });
  });
}

printIterationSummary(gpu, cases, {
  extra: () =>
    [1024, 2048].flatMap((size) => {
      const rate = (name: string) => {
        const c = cases.find((c) => c.name === name);
        return c ? medianRate(c) : NaN;
      };
      const ours = rate(`matmul ${size} webtune`), theirs = rate(`matmul ${size} jax-js`);
      return ours > 0 && theirs > 0
        ? [`matmul ${size}: webtune / jax-js = ${(ours / theirs).toFixed(2)}× (medians)`]
        : [];
    }),
});
