/**
 * The device check's matmul part: square f32 `x·W` at each size, webtune's default launch (the
 * tuned choice when tuning ran), every variant `matmulCandidates` lists for the shape forced,
 * and jax-js (jit'd `numpy.matmul` on its own WebGPU device) on the same host matrices, in
 * GFLOP/s and % of the adapter's f32 peak. Each variant's first output row is compared with
 * jax-js's, so a variant that computes wrong numbers on this GPU shows.
 *
 * @module
 */

import { defaultDevice, init, jit, numpy as np } from "@jax-js/jax";
import { type AdapterPeak, percentOfPeak } from "../bench/peaks.ts";
import {
  gpuRun,
  lcgFill,
  measureRepeated,
  type RepeatedRun,
  type RepeatedTiming,
} from "../bench/harness.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { matmul, matmulCandidates } from "../kernels/matmul.ts";
import { Tensor } from "../kernels/tensor.ts";
import { significant } from "./_device_check_run.ts";

/** One timed matmul: who ran it and how fast. */
export interface MatmulRate {
  /** `default` (webtune's own choice), a variant id, or `jax-js`. */
  readonly variant: string;
  /** GFLOP/s of the fastest sample. */
  readonly gflops: number;
  /** Of the adapter's f32 peak (null when unknown). */
  readonly percentOfPeak: number | null;
  /** Milliseconds per product, fastest and median sample. */
  readonly msBest: number;
  /** Median sample. */
  readonly msMedian: number;
  /** max |row 0 − jax-js's row 0| (null when jax-js did not run). */
  readonly maxAbsDiffVsJax: number | null;
}

/** Timing settings of the part. */
export interface MatmulCheckOptions {
  /** The adapter's peaks. */
  readonly peak: AdapterPeak | null;
  /** Seconds per timed sample (the launch count is calibrated to it). */
  readonly targetSeconds: number;
  /** Samples per measurement (the fastest counts). */
  readonly samples: number;
  /** The tuned choice per size, when tuning chose one (reported beside the default). */
  readonly tunedVariant?: (size: number) => string | null;
}

function rate(variant: string, flops: number, t: RepeatedTiming, o: MatmulCheckOptions) {
  const gflops = flops / t.best / 1e9;
  const pct = percentOfPeak(gflops, "GFLOP/s", o.peak);
  return {
    variant,
    gflops: significant(gflops),
    percentOfPeak: pct === null ? null : significant(pct, 3),
    msBest: significant(t.best * 1e3),
    msMedian: significant(t.median * 1e3),
  };
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number> | null) => {
  if (!b) return null;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - Number(b[i])));
  return m;
};

/**
 * Measures every size; `out.sizes` grows as sizes finish, `out.best` is the fastest webtune
 * launch at the largest size measured.
 *
 * @param gpu The device.
 * @param sizes Square sizes.
 * @param out The part's record.
 * @param signal Stops between measurements.
 * @param options Peak, timing, tuned choices.
 */
export async function checkMatmul(
  gpu: Gpu,
  sizes: readonly number[],
  out: Record<string, unknown>,
  signal: AbortSignal,
  options: MatmulCheckOptions,
): Promise<void> {
  let jaxError: string | null = null;
  try {
    if (!(await init()).includes("webgpu")) throw new Error("jax-js found no WebGPU device");
    defaultDevice("webgpu");
  } catch (e) {
    jaxError = `${(e as Error).name}: ${(e as Error).message}`;
  }
  const jaxMatmul = jit((a: np.Array, b: np.Array) => np.matmul(a, b));
  const results: Record<string, unknown>[] = [];
  out.sizes = results;
  if (jaxError) out.jaxJsError = jaxError;
  for (const size of sizes) {
    if (signal.aborted) return;
    const flops = 2 * size ** 3;
    const a = lcgFill(size * size, size, 0.5), b = lcgFill(size * size, size + 1, 0.5);
    const ta = Tensor.fromArray(gpu, a, [size, size]), tb = Tensor.fromArray(gpu, b, [size, size]);
    const y = Tensor.empty(gpu, [size, size]);
    const entry: Record<string, unknown> = { size, flops };
    results.push(entry);
    let jaxRow: ArrayLike<number> | null = null;
    if (!jaxError) {
      const ja = np.array(a).reshape([size, size]), jb = np.array(b).reshape([size, size]);
      jaxRow = (await jaxMatmul(ja.ref, jb.ref).data()).slice(0, size) as ArrayLike<number>;
      const run: RepeatedRun = async (reps) => {
        const ys = Array.from({ length: reps }, () => jaxMatmul(ja.ref, jb.ref));
        for (const r of ys) await r.blockUntilReady();
        for (const r of ys) r.dispose();
      };
      entry.jaxJs = rate("jax-js", flops, await measureRepeated(run, options), options);
    }
    const webtune: Record<string, unknown>[] = [];
    entry.webtune = webtune;
    const candidates = matmulCandidates(gpu, { form: "nn", m: size, n: size, k: size });
    entry.candidates = candidates;
    entry.tunedVariant = options.tunedVariant?.(size) ?? null;
    for (const variant of [undefined, ...candidates]) {
      if (signal.aborted) break;
      const launch = () => matmul(ta, tb, { transposeB: false, out: y, variant });
      const timing = await measureRepeated(gpuRun(gpu, launch), options);
      const row = (await y.read()).slice(0, size);
      webtune.push({
        ...rate(variant ?? "default", flops, timing, options),
        maxAbsDiffVsJax: maxAbsDiff(row, jaxRow),
      });
    }
    const measured = webtune as unknown as MatmulRate[];
    const best = measured.reduce((x, r) => (r.gflops > x.gflops ? r : x), measured[0]);
    const jax = entry.jaxJs as MatmulRate | undefined;
    if (best) out.best = { size, variant: best.variant, gflops: best.gflops };
    if (jax && measured[0]) {
      entry.defaultOverJaxJs = significant(measured[0].gflops / jax.gflops, 3);
      entry.bestOverJaxJs = significant(best.gflops / jax.gflops, 3);
    }
    for (const t of [ta, tb, y]) t.dispose();
  }
}
