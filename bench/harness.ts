/**
 * What the benches (`_measure.ts`) and the device check share: deterministic pseudo-random
 * inputs, and timing of repeated GPU work behind one wait — a run records `reps` launches and
 * waits once, so a runtime's fixed cost per wait (≥ 10 ms in Deno) is amortised;
 * {@linkcode calibrateReps} picks `reps` for a target duration.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";

/**
 * `n` successive states of the LCG `s ← 1664525·s + 1013904223 (mod 2³²)`, first step from `seed`.
 *
 * @param n Number of words.
 * @param seed Starting state (taken mod 2³²).
 * @returns The words.
 * @example
 * ```ts
 * import { lcgWords } from "./harness.ts";
 * const ids = Array.from(lcgWords(4, 1), (s) => s % 1000);
 * ```
 */
export function lcgWords(n: number, seed: number): Uint32Array<ArrayBuffer> {
  const out = new Uint32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s;
  }
  return out;
}

/**
 * `n` values uniform in [-scale, scale) from {@link lcgWords}.
 *
 * @param n Number of values.
 * @param seed LCG seed.
 * @param scale Half-width of the range.
 * @returns The values.
 * @example
 * ```ts
 * import { lcgFill } from "./harness.ts";
 * const x = lcgFill(1024, 1, 0.5);
 * if (x.some((v) => v < -0.5 || v >= 0.5)) throw new Error("out of range");
 * ```
 */
export function lcgFill(n: number, seed: number, scale = 1): Float32Array<ArrayBuffer> {
  const words = lcgWords(n, seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (words[i] / 2 ** 31 - 1) * scale;
  return out;
}

/** Records `reps` launches and waits until they are done. */
export type RepeatedRun = (reps: number) => Promise<void>;

/**
 * The median (upper middle for an even count) of `xs`.
 *
 * @param xs Samples (not modified).
 * @returns The median; undefined for no samples.
 * @example
 * ```ts
 * import { median } from "./harness.ts";
 * if (median([3, 1, 2]) !== 2) throw new Error();
 * ```
 */
export function median(xs: readonly number[]): number {
  return xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)];
}

/**
 * A {@linkcode RepeatedRun} of webtune launches: records them, then `gpu.sync()`.
 *
 * @param gpu The device.
 * @param launch Records one launch.
 * @returns The run.
 * @example
 * ```ts ignore
 * const seconds = await secondsOf(gpuRun(gpu, () => add(x, y, { out })), 10);
 * ```
 */
export function gpuRun(gpu: Gpu, launch: () => void): RepeatedRun {
  return async (reps) => {
    for (let i = 0; i < reps; i++) launch();
    await gpu.sync();
  };
}

/**
 * Wall seconds of one run of `reps` launches.
 *
 * @param run The run.
 * @param reps Launches.
 * @returns Seconds from the first launch to the end of the wait.
 * @example
 * ```ts
 * import { secondsOf } from "./harness.ts";
 * const s = await secondsOf(async () => {}, 3);
 * if (!(s >= 0)) throw new Error();
 * ```
 */
export async function secondsOf(run: RepeatedRun, reps: number): Promise<number> {
  const t0 = performance.now();
  await run(reps);
  return (performance.now() - t0) / 1000;
}

/**
 * Launches per run for about `targetSeconds` of work: probes with `firstReps`, multiplying by 4
 * until a probe takes 50 ms, then scales. Assumes the pipelines are compiled (run once before).
 *
 * @param run The run.
 * @param options Target seconds and the first probe's launches (default 1).
 * @returns The launch count (≥ 1).
 * @example
 * ```ts
 * import { calibrateReps } from "./harness.ts";
 * const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
 * const reps = await calibrateReps((n) => sleep(10 * n), { targetSeconds: 0.2 });
 * if (reps < 10 || reps > 30) throw new Error(String(reps));
 * ```
 */
export async function calibrateReps(
  run: RepeatedRun,
  options: { readonly targetSeconds: number; readonly firstReps?: number },
): Promise<number> {
  let reps = options.firstReps ?? 1;
  let s = await secondsOf(run, reps);
  while (s < 0.05) s = await secondsOf(run, reps *= 4);
  return Math.max(1, Math.round((reps * options.targetSeconds) / s));
}

/** Seconds per launch of a calibrated measurement. */
export interface RepeatedTiming {
  /** Launches per sample. */
  readonly reps: number;
  /** Fastest sample, seconds per launch. */
  readonly best: number;
  /** Median sample, seconds per launch. */
  readonly median: number;
}

/**
 * Compiles (one launch), calibrates to `targetSeconds` per sample, then takes `samples`.
 *
 * @param run The run.
 * @param options Seconds per sample and sample count.
 * @returns Seconds per launch, best and median.
 * @example
 * ```ts
 * import { measureRepeated } from "./harness.ts";
 * const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
 * const t = await measureRepeated((n) => sleep(10 * n), { targetSeconds: 0.1, samples: 2 });
 * if (t.best < 0.009 || t.best > 0.05) throw new Error(JSON.stringify(t));
 * ```
 */
export async function measureRepeated(
  run: RepeatedRun,
  options: { readonly targetSeconds: number; readonly samples: number },
): Promise<RepeatedTiming> {
  await run(1);
  const reps = await calibrateReps(run, options);
  const perLaunch: number[] = [];
  for (let i = 0; i < options.samples; i++) perLaunch.push((await secondsOf(run, reps)) / reps);
  return { reps, best: Math.min(...perLaunch), median: median(perLaunch) };
}
