/**
 * Private helpers of the benches: deterministic pseudo-random inputs, GPU launch timing behind
 * one sync (calibrated to ~0.3 s of work, so Deno's ≥ 10 ms GPU wait stays under 5 %), and
 * median/best summaries.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";

/** Seconds of GPU work one calibrated bench iteration records. */
export const TARGET_SECONDS = 0.3;

/**
 * `n` successive states of the LCG `s ← 1664525·s + 1013904223 (mod 2³²)`, first step from `seed`.
 *
 * @param n Number of words.
 * @param seed Starting state (taken mod 2³²).
 * @returns The words.
 * @example
 * ```ts
 * import { lcgWords } from "./_measure.ts";
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
 * import { lcgFill } from "./_measure.ts";
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

/**
 * The median (upper middle for an even count) of `xs`.
 *
 * @param xs Samples (not modified).
 * @returns The median; undefined for no samples.
 * @example
 * ```ts
 * import { median } from "./_measure.ts";
 * if (median([3, 1, 2]) !== 2) throw new Error();
 * ```
 */
export function median(xs: readonly number[]): number {
  return xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)];
}

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
export async function timeLaunches(gpu: Gpu, launch: () => void, reps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) launch();
  await gpu.sync();
  return (performance.now() - t0) / 1000;
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
  let reps = options.firstLaunches ?? 1;
  let s = await timeLaunches(gpu, launch, reps);
  while (s < 0.05) s = await timeLaunches(gpu, launch, reps *= 4);
  return Math.max(1, Math.round((reps * TARGET_SECONDS) / s));
}

/** Unit of a {@link RateCase}'s rate; GB/s and GFLOP/s divide by 1e9. */
export type RateUnit = "GB/s" | "GFLOP/s" | "rows/s";

/** A kernel launch benched at a calibrated number of launches per iteration. */
export interface RateCase {
  /** Bench name. */
  readonly name: string;
  /** Work of one launch: bytes, flops or rows, per `unit`. */
  readonly work: number;
  /** Unit of the recorded rates. */
  readonly unit: RateUnit;
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
): RateCase {
  return { name, work, unit, launch, reps: 0, rates: [], ms: [] };
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
  const perUnit = c.unit === "rows/s" ? 1 : 1e9;
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
      c.rates.push((c.work * c.reps) / s / perUnit);
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
}

/**
 * `name  median unit median, best best[, ms ms/launch] (reps launches/iter)`.
 *
 * @param c A measured case.
 * @param options Widths and the ms column.
 * @returns The summary line.
 * @example
 * ```ts ignore
 * console.log(rateLine(c, { nameWidth: 52, numberWidth: 7 }));
 * ```
 */
export function rateLine(c: RateCase, options: RateLineOptions): string {
  const w = options.numberWidth;
  const ms = options.ms ? `, ${median(c.ms).toFixed(1).padStart(w)} ms/launch` : "";
  return `${c.name.padEnd(options.nameWidth)} ${median(c.rates).toFixed(2).padStart(w)} ${c.unit}` +
    ` median, ${Math.max(...c.rates).toFixed(2).padStart(w)} best${ms} (${c.reps} launches/iter)`;
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
 * and a {@link rateLine} per measured case.
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
    const title = options.title ? `; ${options.title}` : "";
    console.log(`\nadapter: ${gpu.adapter.description}${title}`);
    for (const c of cases) {
      if (c.rates.length > 0) console.log(rateLine(c, options.line));
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

/**
 * `name: W unit best, W median (tail)`, where a rate is `work / ms / 1e6` (work per iteration
 * in units of 1e9 per second, e.g. flops → GFLOP/s).
 *
 * @param name Bench name.
 * @param work Work of one iteration.
 * @param unit Unit printed after the rates.
 * @param ms Milliseconds of each measured iteration (non-empty).
 * @param tail Text in the parentheses, from the best iteration's milliseconds.
 * @returns The summary line.
 * @example
 * ```ts
 * import { iterationLine } from "./_measure.ts";
 * iterationLine("rope", 2e9, "GB/s", [10, 12, 11], (ms) => `${ms} ms / iteration`);
 * ```
 */
export function iterationLine(
  name: string,
  work: number,
  unit: string,
  ms: readonly number[],
  tail: (bestMs: number) => string,
): string {
  const best = Math.min(...ms);
  return `${name}: ${(work / best / 1e6).toFixed(2)} ${unit} best, ` +
    `${(work / median(ms) / 1e6).toFixed(2)} median (${tail(best)})`;
}
