/**
 * Matmul throughput: webtune vs jax-js (jit'd `numpy.matmul` on its WebGPU device) on the same
 * adapter and the same matrices, plus the Gemma 3 1B shapes (MLP up/down projections, tied LM
 * head GEMV over the split 262144×1152 bf16 embedding).
 *
 * Each iteration records several products and waits once, so the ≥ 10 ms GPU wait is < 5 % of
 * it. A GFLOP/s (and GB/s for the GEMV) summary is printed at the end.
 *
 * Run: `deno bench -A bench/matmul_bench.ts`
 *
 * @module
 */

import { defaultDevice, init, jit, numpy as np } from "@jax-js/jax";
import { toBf16 } from "../kernels/dtype.ts";
import { Gpu } from "../kernels/gpu.ts";
import { matmul, matmulTiling } from "../kernels/matmul.ts";
import { Tensor } from "../kernels/tensor.ts";
import { benchIterations, lcgFill } from "./_measure.ts";

const gpu = await Gpu.create();
if (!(await init()).includes("webgpu")) throw new Error("jax-js found no WebGPU device");
defaultDevice("webgpu");
const jaxMatmul = jit((a: np.Array, b: np.Array) => np.matmul(a, b));

/** Milliseconds of each measured iteration, by bench name. */
const times = new Map<string, number[]>();
/** Work of one iteration, by bench name. */
const work = new Map<string, { flops: number; bytes?: number }>();

/** Values uniform in [-0.5, 0.5). */
const random = (n: number, seed: number) => lcgFill(n, seed, 0.5);

/** bf16 bits of a large random matrix, tiled from a small random table (fast to build). */
function randomBf16(n: number, seed: number): Uint16Array {
  const table = toBf16(random(4099, seed).map((v) => v * 0.1));
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = table[i % 4099];
  return out;
}

/** Registers a bench whose iteration runs `reps` products and waits once. */
function bench(
  name: string,
  group: string | undefined,
  flopsPerRep: number,
  reps: number,
  run: () => Promise<void>,
  bytesPerRep?: number,
): void {
  work.set(name, {
    flops: flopsPerRep * reps,
    bytes: bytesPerRep === undefined ? undefined : bytesPerRep * reps,
  });
  const ms: number[] = [];
  times.set(name, ms);
  benchIterations({ name, group, n: 4, warmup: 1, baseline: name.endsWith("jax-js") }, run, ms);
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
  bench(`matmul ${size} webtune`, `matmul ${size}`, flops, reps, async () => {
    for (let r = 0; r < reps; r++) matmul(ta, tb, { transposeB: false, out });
    await gpu.sync();
  });
  bench(`matmul ${size} jax-js`, `matmul ${size}`, flops, reps, async () => {
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
  const name = `matmul gemma3-1b ${label} bf16 webtune`;
  bench(name, undefined, 2 * m * n * k, reps, async () => {
    for (let r = 0; r < reps; r++) matmul(x, w, { out });
    await gpu.sync();
  }, m === 1 ? n * k * 2 : undefined);
}

globalThis.addEventListener("unload", () => {
  console.log(`\nadapter: ${gpu.adapter.description}`);
  const tiling = (m: number, n: number, k: number) =>
    JSON.stringify(matmulTiling(gpu, { m, n, k }));
  console.log(`tiling: 1024³ ${tiling(1024, 1024, 1024)}, GEMV ${tiling(1, 262144, 1152)}`);
  const rate = new Map<string, number>();
  for (const [name, ts] of times) {
    if (ts.length === 0) continue;
    const w = work.get(name)!;
    const ms = ts.reduce((s, t) => s + t, 0) / ts.length;
    rate.set(name, w.flops / ms / 1e6);
    const gbs = w.bytes === undefined ? "" : `  ${(w.bytes / ms / 1e6).toFixed(2)} GB/s of W`;
    console.log(`${name.padEnd(64)} ${(w.flops / ms / 1e6).toFixed(2).padStart(7)} GFLOP/s${gbs}`);
  }
  for (const size of [1024, 2048]) {
    const ours = rate.get(`matmul ${size} webtune`), theirs = rate.get(`matmul ${size} jax-js`);
    if (ours && theirs) {
      console.log(`matmul ${size}: webtune / jax-js = ${(ours / theirs).toFixed(2)}×`);
    }
  }
});
