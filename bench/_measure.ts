/**
 * Private helpers of the benches: deterministic pseudo-random inputs and GPU launch timing
 * behind one sync (`harness.ts`, calibrated here to ~0.3 s of work, so Deno's ≥ 10 ms GPU wait
 * stays under 5 %), Deno.bench registration, and median/best summaries. Every summary line gives GFLOP/s or GB/s (whichever bounds the kernel)
 * and, on an adapter in `peaks.ts`, the % of that peak; every summary starts with the adapter
 * and its peaks ({@linkcode adapterLines}).
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import { type AdapterPeak, findPeak, peakNote, peakSummary, type RateUnit } from "./peaks.ts";
import {
  calibrateReps as calibrateRun,
  gpuRun,
  lcgFill,
  lcgWords,
  median,
  secondsOf,
} from "./harness.ts";

export { lcgFill, lcgWords, median };
export type { RateUnit };

/** Seconds of GPU work one calibrated bench iteration records. */
export const TARGET_SECONDS = 0.3;

/**
 * Records `reps` launches and waits for the GPU once.
 *
 * @param gpu The device the launches record on.
 * @param launch Records one launch.
 * @param reps Number of launches.
 * @returns Wall seconds from the first launch to the end of the sync.
 * @example
 * ```ts ignore
 * const seconds = await timeLaunches(gpu, () => add(x, y, { out }), 10);
 * ```
 */
export function timeLaunches(gpu: Gpu, launch: () => void, reps: number): Promise<number> {
  return secondsOf(gpuRun(gpu, launch), reps);
}

/** How {@link calibrateReps} compiles and starts. */
export interface CalibrateOptions {
  /** Launches of the untimed compiling run (default 1). */
  readonly compileLaunches?: number;
  /** Launches of the first timed probe, multiplied by 4 until it takes 50 ms (default 1). */
  readonly firstLaunches?: number;
  /** Replaces the compiling run, e.g. the same pipelines on a smaller problem. */
  readonly warm?: () => void;
}

/**
 * Launches per iteration for ~{@link TARGET_SECONDS} of GPU work.
 *
 * @param gpu The device.
 * @param launch Records one launch.
 * @param options Compiling run and first probe size.
 * @returns The launch count (≥ 1).
 * @example
 * ```ts ignore
 * const reps = await calibrateReps(gpu, launch, { compileLaunches: 2, firstLaunches: 4 });
 * ```
 */
export async function calibrateReps(
  gpu: Gpu,
  launch: () => void,
  options: CalibrateOptions = {},
): Promise<number> {
  if (options.warm) {
    options.warm();
    await gpu.sync();
  } else {
    await timeLaunches(gpu, launch, options.compileLaunches ?? 1); // compile
  }
  return await calibrateRun(gpuRun(gpu, launch), {
    targetSeconds: TARGET_SECONDS,
    firstReps: options.firstLaunches,
  });
}

const peaks = new WeakMap<Gpu, AdapterPeak | null>();

/**
 * The peaks of the bench's adapter (`peaks.ts`), or null when unknown (software adapters).
 *
 * @param gpu The device.
 * @returns Its peaks or null.
 * @example
 * ```ts ignore
 * const peak = adapterPeak(gpu);
 * ```
 */
export function adapterPeak(gpu: Gpu): AdapterPeak | null {
  if (!peaks.has(gpu)) peaks.set(gpu, findPeak(gpu.adapter));
  return peaks.get(gpu)!;
}

/**
 * The head of a summary: `adapter: <description>[; title]` and the adapter's peak line.
 *
 * @param gpu The device.
 * @param title Added to the adapter line (e.g. the shapes the cases model).
 * @returns Two lines, with a blank line before.
 * @example
 * ```ts ignore
 * console.log(adapterLines(gpu, "Gemma 3 1B projections"));
 * ```
 */
export function adapterLines(gpu: Gpu, title?: string): string {
  return `\nadapter: ${gpu.adapter.description}${title ? `; ${title}` : ""}\n` +
    peakSummary(adapterPeak(gpu));
}

/** A count per launch reported as a rate beside the main one (e.g. sampled rows). */
export interface SecondaryRate {
  /** Count per launch. */
  readonly perLaunch: number;
  /** Unit of the rate, e.g. `rows/s` (counts per second, not divided by 1e9). */
  readonly unit: string;
}

/** A kernel launch benched at a calibrated number of launches per iteration. */
export interface RateCase {
  /** Bench name. */
  readonly name: string;
  /** Work of one launch: bytes or flops, per `unit`. */
  readonly work: number;
  /** Unit of the recorded rates: the bound of the kernel (FLOPs or memory traffic). */
  readonly unit: RateUnit;
  /** Also printed as a rate (e.g. rows/s). */
  readonly also?: SecondaryRate;
  /** Records one launch. */
  readonly launch: () => void;
  /** Launches per iteration; 0 until calibrated. */
  reps: number;
  /** Rate of each measured iteration, in `unit`. */
  readonly rates: number[];
  /** Milliseconds per launch of each measured iteration. */
  readonly ms: number[];
}

/**
 * A fresh, uncalibrated {@link RateCase}.
 *
 * @param name Bench name.
 * @param work Work of one launch.
 * @param unit Unit of the rate.
 * @param launch Records one launch.
 * @param also A count per launch also printed as a rate.
 * @returns The case.
 * @example
 * ```ts ignore
 * const c = rateCase(`add ${n}`, 12 * n, "GB/s", () => add(x, y, { out }));
 * ```
 */
export function rateCase(
  name: string,
  work: number,
  unit: RateUnit,
  launch: () => void,
  also?: SecondaryRate,
): RateCase {
  return { name, work, unit, launch, also, reps: 0, rates: [], ms: [] };
}

/** Deno.bench settings and calibration of {@link benchRate}. */
export interface BenchRateOptions {
  /** Measured iterations. */
  readonly n: number;
  /** Unmeasured iterations. */
  readonly warmup: number;
  /** Deno.bench group. */
  readonly group?: string;
  /** How the first iteration calibrates. */
  readonly calibrate?: CalibrateOptions;
}

/**
 * Registers a Deno.bench for `c`: calibrates on the first iteration, then times `c.reps`
 * launches behind one sync per iteration and records the rate and ms per launch.
 *
 * @param gpu The device.
 * @param c The case (its `reps`, `rates`, `ms` are filled in).
 * @param options Iterations, group, calibration.
 * @example
 * ```ts ignore
 * benchRate(gpu, c, { n: 5, warmup: 1 });
 * ```
 */
export function benchRate(gpu: Gpu, c: RateCase, options: BenchRateOptions): void {
  Deno.bench({
    name: c.name,
    group: options.group,
    n: options.n,
    warmup: options.warmup,
    async fn(b) {
      if (c.reps === 0) c.reps = await calibrateReps(gpu, c.launch, options.calibrate);
      b.start();
      const s = await timeLaunches(gpu, c.launch, c.reps);
      b.end();
      c.rates.push((c.work * c.reps) / s / 1e9);
      c.ms.push((s / c.reps) * 1e3);
    },
  });
}

/** Column widths and columns of {@link rateLine}. */
export interface RateLineOptions {
  /** Width the name is padded to. */
  readonly nameWidth: number;
  /** Width numbers are padded to. */
  readonly numberWidth: number;
  /** Adds the median ms per launch. */
  readonly ms?: boolean;
  /** The adapter's peaks: adds the median's % of peak (see {@linkcode adapterPeak}). */
  readonly peak?: AdapterPeak | null;
}

/**
 * `name  median unit median[ (p % of peak)], best best[, ms ms/launch][, rows/s] (reps
 * launches/iter)`.
 *
 * @param c A measured case.
 * @param options Widths, the ms column and the adapter's peaks.
 * @returns The summary line.
 * @example
 * ```ts ignore
 * console.log(rateLine(c, { nameWidth: 52, numberWidth: 7, peak: adapterPeak(gpu) }));
 * ```
 */
export function rateLine(c: RateCase, options: RateLineOptions): string {
  const w = options.numberWidth;
  const mid = median(c.rates);
  const ms = options.ms ? `, ${median(c.ms).toFixed(1).padStart(w)} ms/launch` : "";
  const also = c.also
    ? `, ${(c.also.perLaunch / (median(c.ms) / 1e3)).toFixed(1)} ${c.also.unit}`
    : "";
  return `${c.name.padEnd(options.nameWidth)} ${mid.toFixed(2).padStart(w)} ${c.unit} median` +
    `${peakNote(mid, c.unit, options.peak ?? null)}, ${
      Math.max(...c.rates).toFixed(2).padStart(w)
    } best${ms}${also} (${c.reps} launches/iter)`;
}

/** How {@link benchRates} registers and reports its cases. */
export interface BenchRatesOptions {
  /** Deno.bench settings and calibration of every case, or of each case. */
  readonly bench: BenchRateOptions | ((c: RateCase) => BenchRateOptions);
  /** Columns of the summary lines. */
  readonly line: RateLineOptions;
  /** Added to the summary's adapter line (e.g. the shapes the cases model). */
  readonly title?: string;
}

/**
 * Registers a Deno.bench per case ({@link benchRate}) and, when the run ends, prints the adapter
 * and its peaks and a {@link rateLine} (with % of peak) per measured case.
 *
 * @param gpu The device.
 * @param cases The cases, in print order.
 * @param options Bench settings, columns and title.
 * @example
 * ```ts ignore
 * benchRates(gpu, cases, { bench: { n: 5, warmup: 1 }, line: { nameWidth: 52, numberWidth: 7 } });
 * ```
 */
export function benchRates(
  gpu: Gpu,
  cases: readonly RateCase[],
  options: BenchRatesOptions,
): void {
  const settings = options.bench;
  for (const c of cases) benchRate(gpu, c, typeof settings === "function" ? settings(c) : settings);
  globalThis.addEventListener("unload", () => {
    console.log(adapterLines(gpu, options.title));
    const line = { ...options.line, peak: adapterPeak(gpu) };
    for (const c of cases) {
      if (c.rates.length > 0) console.log(rateLine(c, line));
    }
  });
}

/**
 * Registers a Deno.bench whose iteration is timed around `run` (which waits for its own GPU
 * work) and pushes each measured iteration's milliseconds to `ms`.
 *
 * @param options Deno.bench settings (name, group, n, warmup, baseline).
 * @param run One iteration.
 * @param ms Receives each iteration's milliseconds.
 * @example
 * ```ts ignore
 * benchIterations({ name: "rope", n: 5, warmup: 1 }, async () => {
 *   record();
 *   await gpu.sync();
 * }, times);
 * ```
 */
export function benchIterations(
  options: Omit<Deno.BenchDefinition, "fn">,
  run: () => Promise<void>,
  ms: number[],
): void {
  Deno.bench({
    ...options,
    async fn(b) {
      b.start();
      const t0 = performance.now();
      await run();
      ms.push(performance.now() - t0);
      b.end();
    },
  });
}

/** A bench whose iteration is timed whole ({@link benchIterations}), for its summary line. */
export interface IterationCase {
  /** Bench name. */
  readonly name: string;
  /** Work of one iteration: flops or bytes, per `unit` (the bound of the kernel). */
  readonly work: number;
  /** Unit of the rate. */
  readonly unit: RateUnit;
  /** Milliseconds of each measured iteration. */
  readonly ms: number[];
  /** A second rate of the same iteration (e.g. a GEMV's GFLOP/s beside its GB/s). */
  readonly also?: { readonly work: number; readonly unit: RateUnit };
  /** Text in the parentheses, from the best iteration's milliseconds (e.g. ms per call). */
  readonly tail?: (bestMs: number) => string;
}

/**
 * `name: W unit best[ (p % of peak)], W median[; also][ (tail)]`, where a rate is
 * `work / ms / 1e6` (work per iteration in units of 1e9 per second, e.g. flops → GFLOP/s).
 *
 * @param c A measured case (`ms` non-empty).
 * @param peak The adapter's peaks, or null.
 * @returns The summary line.
 * @example
 * ```ts
 * import { iterationLine } from "./_measure.ts";
 * const c = { name: "rope", work: 2e9, unit: "GB/s" as const, ms: [10, 12, 11] };
 * console.log(iterationLine({ ...c, tail: (ms) => `${ms} ms / iteration` }, null));
 * // rope: 200.00 GB/s best, 181.82 median (10 ms / iteration)
 * ```
 */
export function iterationLine(c: IterationCase, peak: AdapterPeak | null): string {
  const best = Math.min(...c.ms);
  const rate = (work: number, ms: number) => work / ms / 1e6;
  const also = c.also
    ? `; ${rate(c.also.work, best).toFixed(2)} ${c.also.unit}` +
      peakNote(rate(c.also.work, best), c.also.unit, peak)
    : "";
  const tail = c.tail ? ` (${c.tail(best)})` : "";
  return `${c.name}: ${rate(c.work, best).toFixed(2)} ${c.unit} best` +
    `${peakNote(rate(c.work, best), c.unit, peak)}, ${
      rate(c.work, median(c.ms)).toFixed(2)
    } median` +
    `${also}${tail}`;
}

/**
 * Median rate of a measured {@link IterationCase} in its unit; NaN before any iteration.
 *
 * @param c The case.
 * @returns GFLOP/s or GB/s.
 * @example
 * ```ts
 * import { medianRate } from "./_measure.ts";
 * const r = medianRate({ name: "x", work: 1e9, unit: "GFLOP/s", ms: [500, 1000, 2000] });
 * if (r !== 1) throw new Error(String(r));
 * ```
 */
export function medianRate(c: IterationCase): number {
  return c.ms.length === 0 ? NaN : c.work / median(c.ms) / 1e6;
}

/**
 * When the run ends, prints the adapter and its peaks, then an {@link iterationLine} per
 * measured case and the `extra` lines.
 *
 * @param gpu The device.
 * @param cases The cases, in print order.
 * @param options Title of the adapter line; more lines after the cases (computed at the end).
 * @example
 * ```ts ignore
 * printIterationSummary(gpu, cases, { extra: () => [`ratio ${r}`] });
 * ```
 */
export function printIterationSummary(
  gpu: Gpu,
  cases: readonly IterationCase[],
  options: { readonly title?: string; readonly extra?: () => string[] } = {},
): void {
  globalThis.addEventListener("unload", () => {
    console.log(adapterLines(gpu, options.title));
    const peak = adapterPeak(gpu);
    for (const c of cases) if (c.ms.length > 0) console.log(iterationLine(c, peak));
    for (const line of options.extra?.() ?? []) console.log(line);
  });
}
