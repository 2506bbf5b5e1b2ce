/**
 * Per-adapter kernel autotuning: which variant of a kernel family runs a given shape class.
 *
 * Launchers ask {@linkcode Tuner.choose} synchronously with a {@linkcode TuningJob}: its
 * candidates (variant ids, the deterministic table's choice first) and a way to time them on
 * scratch inputs. With tuning `"off"` the table's choice is returned. With `"cached"` a
 * remembered choice is returned when there is one; a miss runs the table's choice now and
 * queues the job. `"full"` ignores remembered choices: every job met is queued once and retimed.
 * WebGPU cannot wait inside a launch, so the queued jobs are timed later, between steps, by
 * {@linkcode Tuner.tune}: per job it prepares the scratch inputs once; per candidate it records
 * a warm-up launch and waits (a candidate whose pipeline is rejected — a `KernelError` — is
 * skipped and never chosen), then times a few launches with the {@linkcode TuningTimer} (GPU
 * timestamps around a compute pass of their own when the device offers `timestamp-query`, else
 * wall time around the launches and one wait); it keeps the fastest (ties: the table's order),
 * frees the scratch, and saves the new choices in the {@linkcode TuningStore} under the
 * adapter's key ({@linkcode adapterKey}: vendor, architecture, device, description, driver, a
 * digest of the enabled features and limits, and webtune's version).
 *
 * @module
 */

import { WEBTUNE_VERSION } from "../base/version.ts";
import { GpuError, GpuOutOfMemoryError, KernelError } from "./errors.ts";

/** `"off"`: the deterministic table; `"cached"`: remembered choices, tune misses; `"full"`: retune. */
export type TuningMode = "off" | "cached" | "full";

/** Every {@linkcode TuningMode}. */
export const TUNING_MODES: readonly TuningMode[] = Object.freeze(["off", "cached", "full"]);

/**
 * The tuning the command-line scripts use without `--tuning` (the library's default stays
 * `"off"`, reproducible): `"cached"` on a hardware adapter, `"off"` on a software (fallback)
 * adapter, where the deterministic table was measured.
 *
 * @param adapter The adapter (`gpu.adapter`).
 * @returns The mode.
 * @example
 * ```ts
 * import { tuningForAdapter } from "./tuning.ts";
 * console.log(tuningForAdapter({ isFallbackAdapter: false })); // cached
 * console.log(tuningForAdapter({ isFallbackAdapter: true })); // off
 * ```
 */
export function tuningForAdapter(adapter: { readonly isFallbackAdapter: boolean }): TuningMode {
  return adapter.isFallbackAdapter ? "off" : "cached";
}

/**
 * The shape-class bucket of a size: the smallest power of two ≥ n (1 for n ≤ 1), so launches of
 * nearby sizes share one tuning choice.
 *
 * @param n A size ≥ 0.
 * @returns The bucket.
 * @example
 * ```ts
 * import { pow2Bucket } from "./tuning.ts";
 * console.log(pow2Bucket(37), pow2Bucket(64), pow2Bucket(0)); // 64 64 1
 * ```
 */
export function pow2Bucket(n: number): number {
  let b = 1;
  while (b < n) b *= 2;
  return b;
}

/** Scratch inputs of one shape class, able to record a launch of any candidate. */
export interface TuningBench {
  /** Records one launch of the candidate with this id (no wait). */
  launch(id: string): void;
  /** Frees the scratch inputs. */
  dispose(): void;
}

/** One tuning question: which candidate runs this shape class fastest on this adapter. */
export interface TuningJob {
  /** Kernel family, e.g. `matmul`. */
  readonly family: string;
  /** The launcher's bucket of shapes that share a choice, e.g. `nt:bf16:m1:n2048:k1152`. */
  readonly shapeClass: string;
  /** Variant ids; the first is the deterministic table's choice. */
  readonly candidates: readonly string[];
  /** Builds scratch inputs of this shape class (called only when the job is timed). */
  readonly prepare: () => TuningBench;
}

/** Remembered choices of one adapter: `family|shapeClass` → variant id. */
export type TuningChoices = Readonly<Record<string, string>>;

/**
 * Where choices are remembered, per adapter key: {@linkcode memoryTuningStore} (the default),
 * `fileTuningStore` (`tuning_fs.ts`, Deno), or any store of the caller's (e.g. IndexedDB).
 */
export interface TuningStore {
  /**
   * The choices remembered for an adapter.
   *
   * @param adapterKey The adapter's {@linkcode adapterKey}.
   * @returns Its choices (empty when none).
   */
  load(adapterKey: string): Promise<TuningChoices>;
  /**
   * Remembers choices for an adapter, replacing those of the same shape classes and keeping
   * the others.
   *
   * @param adapterKey The adapter's {@linkcode adapterKey}.
   * @param choices The new choices.
   */
  save(adapterKey: string, choices: TuningChoices): Promise<void>;
}

/**
 * A {@linkcode TuningStore} in memory (forgotten when the process ends).
 *
 * @returns The store.
 * @example
 * ```ts
 * import { memoryTuningStore } from "./tuning.ts";
 * const store = memoryTuningStore();
 * await store.save("adapter A", { "matmul|nt:m1": "splitk8" });
 * console.log(await store.load("adapter A"), await store.load("adapter B"));
 * // { "matmul|nt:m1": "splitk8" } {}
 * ```
 */
export function memoryTuningStore(): TuningStore {
  const adapters = new Map<string, TuningChoices>();
  return {
    load: (key) => Promise.resolve({ ...adapters.get(key) }),
    save: (key, choices) => {
      adapters.set(key, Object.freeze({ ...adapters.get(key), ...choices }));
      return Promise.resolve();
    },
  };
}

/** What the tuner needs of the device it times on (a `Gpu` fits). */
export interface TuningDevice {
  /** Submits what is recorded, waits, and raises a rejected pipeline as a `KernelError`. */
  sync(): Promise<void>;
  /**
   * GPU seconds the dispatches `record` makes take, measured with timestamp queries around a
   * compute pass of their own.
   *
   * @param record Records the dispatches.
   * @returns Seconds, or null where the device cannot measure them.
   */
  timeDispatches?(record: () => void): Promise<number | null>;
}

/** The launches a {@linkcode TuningTimer} measures: one candidate of one job. */
export interface TimedRun {
  /** The job's kernel family. */
  readonly family: string;
  /** The job's shape class. */
  readonly shapeClass: string;
  /** The candidate. */
  readonly id: string;
  /** Launches to time. */
  readonly repeats: number;
  /** Records one launch of the candidate (the scratch inputs are prepared, pipelines warm). */
  launch(): void;
}

/** Measures how long a candidate's launch takes (tests inject fake ones). */
export interface TuningTimer {
  /**
   * @param run The candidate's launches.
   * @param device The device they run on.
   * @returns Seconds per launch.
   */
  time(run: TimedRun, device: TuningDevice): Promise<number>;
}

/**
 * Times `repeats` launches by the wall clock, from before the first is recorded until one wait
 * after the last (so a per-wait cost is shared by the launches).
 *
 * @param clock Milliseconds of a monotonic clock (default `performance.now`).
 * @returns The timer.
 * @example
 * ```ts
 * import { wallClockTimer } from "./tuning.ts";
 * let now = 0;
 * const timer = wallClockTimer(() => now);
 * const device = { sync: () => Promise.resolve() };
 * const run = { family: "demo", shapeClass: "n8", id: "a", repeats: 4, launch: () => now += 2 };
 * console.log(await timer.time(run, device)); // 0.002 (seconds per launch)
 * ```
 */
export function wallClockTimer(clock: () => number = () => performance.now()): TuningTimer {
  return {
    async time(run, device) {
      const start = clock();
      for (let r = 0; r < run.repeats; r++) run.launch();
      await device.sync();
      return (clock() - start) / 1000 / run.repeats;
    },
  };
}

/**
 * Times `repeats` launches with GPU timestamps written at the start and end of a compute pass
 * holding only them (`TuningDevice.timeDispatches`); where the device cannot, with `fallback`.
 *
 * @param fallback The timer used without timestamps (default {@linkcode wallClockTimer}).
 * @returns The timer.
 * @example
 * ```ts
 * import { timestampTimer } from "./tuning.ts";
 * const device = {
 *   sync: () => Promise.resolve(),
 *   timeDispatches: (record: () => void) => (record(), Promise.resolve(0.003)),
 * };
 * const run = { family: "demo", shapeClass: "n8", id: "a", repeats: 3, launch: () => {} };
 * console.log(await timestampTimer().time(run, device)); // 0.001
 * ```
 */
export function timestampTimer(fallback: TuningTimer = wallClockTimer()): TuningTimer {
  return {
    async time(run, device) {
      const seconds = await device.timeDispatches?.(() => {
        for (let r = 0; r < run.repeats; r++) run.launch();
      });
      return seconds === null || seconds === undefined
        ? await fallback.time(run, device)
        : seconds / run.repeats;
    },
  };
}

/** What timing one job found. */
export interface TunedJob {
  /** Kernel family. */
  readonly family: string;
  /** Shape class. */
  readonly shapeClass: string;
  /** The fastest candidate (the table's when every candidate was rejected). */
  readonly chosen: string;
  /** The table's choice (the first candidate). */
  readonly table: string;
  /** Seconds per launch of each candidate timed. */
  readonly times: Readonly<Record<string, number>>;
  /** Candidates whose pipeline was rejected (never chosen). */
  readonly rejected: readonly string[];
  /**
   * The device ran out of memory for the scratch inputs or a launch: the table's choice stays
   * for this session and nothing is remembered in the store (a later run with memory to spare
   * times the job).
   */
  readonly outOfMemory: boolean;
}

/** What {@linkcode Tuner.tune} did. */
export interface TuningReport {
  /** Jobs timed. */
  readonly jobs: number;
  /** Candidates timed over all jobs. */
  readonly candidatesTimed: number;
  /** What tuning cost, in seconds of wall time. */
  readonly seconds: number;
  /** One entry per job timed. */
  readonly choices: readonly TunedJob[];
}

/** Progress of {@linkcode Tuner.tune}, reported after each job. */
export interface TuningProgress {
  /** Jobs timed so far. */
  readonly done: number;
  /** Jobs to time. */
  readonly total: number;
  /** The job just timed: its family… */
  readonly family: string;
  /** …and shape class. */
  readonly shapeClass: string;
  /** Seconds since tuning began. */
  readonly seconds: number;
}

/** Options of {@linkcode Tuner.tune}. */
export interface TuneOptions {
  /** Called once per job, after it is timed. */
  readonly onProgress?: (progress: TuningProgress) => void;
  /** Stops between jobs (the jobs left stay queued). */
  readonly signal?: AbortSignal;
  /** Timed launches per candidate, after its warm-up launch (default 3). */
  readonly repeats?: number;
}

/** Options of {@linkcode Tuner}. */
export interface TunerOptions {
  /** Where choices are remembered (default {@linkcode memoryTuningStore}). */
  readonly store?: TuningStore;
  /** The adapter's key in the store (default `"default"`; `Gpu` uses {@linkcode adapterKey}). */
  readonly adapterKey?: string;
  /** Measures candidates (default {@linkcode timestampTimer}). */
  readonly timer?: TuningTimer;
  /** The device jobs are timed on (`Gpu` passes itself); {@linkcode Tuner.tune} needs one. */
  readonly device?: TuningDevice;
  /** Milliseconds of a monotonic clock, for the reported cost (default `performance.now`). */
  readonly clock?: () => number;
  /**
   * Per family, a variant id that runs wherever it is one of a job's candidates, whatever the
   * mode (A/B comparisons, debugging, tests); jobs it answers are never queued.
   */
  readonly force?: Readonly<Record<string, string>>;
}

const jobKey = (family: string, shapeClass: string) => `${family}|${shapeClass}`;

/**
 * Chooses kernel variants per shape class (see the module doc).
 *
 * @example
 * ```ts
 * import { Tuner } from "./tuning.ts";
 * const speed: Record<string, number> = { table: 3e-3, other: 1e-3 };
 * const tuner = new Tuner("cached", {
 *   device: { sync: () => Promise.resolve() },
 *   timer: { time: (run) => Promise.resolve(speed[run.id]) },
 * });
 * const job = {
 *   family: "demo",
 *   shapeClass: "n8",
 *   candidates: ["table", "other"],
 *   prepare: () => ({ launch: () => {}, dispose: () => {} }),
 * };
 * console.log(tuner.choose(job), tuner.pending); // table 1
 * const report = await tuner.tune();
 * console.log(report.jobs, tuner.choose(job), tuner.pending); // 1 other 0
 * ```
 */
export class Tuner {
  /** The mode in force. */
  readonly mode: TuningMode;
  /** The key the choices are stored under. */
  readonly adapterKey: string;
  readonly #store: TuningStore;
  readonly #timer: TuningTimer;
  readonly #device: TuningDevice | null;
  readonly #clock: () => number;
  readonly #force: Readonly<Record<string, string>>;
  #choices = new Map<string, string>();
  #pending = new Map<string, TuningJob>();

  /**
   * @param mode The tuning mode.
   * @param options Store, adapter key, timer, device, clock.
   * @throws {GpuError} For an unknown mode.
   */
  constructor(mode: TuningMode, options: TunerOptions = {}) {
    if (!TUNING_MODES.includes(mode)) {
      throw new GpuError(`tuning must be one of ${TUNING_MODES.join(", ")}, got ${String(mode)}`);
    }
    this.mode = mode;
    this.adapterKey = options.adapterKey ?? "default";
    this.#store = options.store ?? memoryTuningStore();
    this.#timer = options.timer ?? timestampTimer();
    this.#device = options.device ?? null;
    this.#clock = options.clock ?? (() => performance.now());
    this.#force = Object.freeze({ ...options.force });
  }

  /**
   * Reads the store's choices for this adapter (mode `"cached"` only: `"off"` uses none,
   * `"full"` retimes). `Gpu.create` calls it.
   *
   * @returns How many choices are now remembered.
   */
  async load(): Promise<number> {
    if (this.mode !== "cached") return 0;
    for (const [key, id] of Object.entries(await this.#store.load(this.adapterKey))) {
      if (typeof id === "string") this.#choices.set(key, id);
    }
    return this.#choices.size;
  }

  /**
   * The variant to run for this job's shape class now.
   *
   * @param job The question.
   * @returns A candidate id.
   */
  choose(job: TuningJob): string {
    const first = job.candidates[0];
    const forced = Object.hasOwn(this.#force, job.family) ? this.#force[job.family] : undefined;
    if (forced !== undefined && job.candidates.includes(forced)) return forced;
    if (this.mode === "off" || job.candidates.length < 2) return first;
    const key = jobKey(job.family, job.shapeClass);
    const chosen = this.#choices.get(key);
    if (chosen !== undefined && job.candidates.includes(chosen)) return chosen;
    if (!this.#pending.has(key)) this.#pending.set(key, job);
    return first;
  }

  /**
   * The choice in force for a shape class, if any (remembered or tuned).
   *
   * @param family Kernel family.
   * @param shapeClass Shape class.
   * @returns The variant id, or undefined (the table's choice runs).
   */
  chosen(family: string, shapeClass: string): string | undefined {
    return this.#choices.get(jobKey(family, shapeClass));
  }

  /** Jobs waiting for {@linkcode Tuner.tune}. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Times every queued job (see the module doc), keeps the fastest candidate of each and saves
   * the new choices in the store. Work recorded before is waited for first, so its errors are
   * raised as usual, not blamed on a candidate.
   *
   * @param options Progress callback (once per job), abort signal, timed launches per candidate.
   * @returns Jobs and candidates timed, the cost in seconds and each job's choice.
   * @throws {GpuError} When jobs are queued but the tuner has no device.
   * @throws Errors other than a rejected pipeline (`KernelError`), e.g. `GpuOutOfMemoryError`.
   */
  async tune(options: TuneOptions = {}): Promise<TuningReport> {
    const start = this.#clock();
    const jobs = [...this.#pending.values()];
    const tuned: TunedJob[] = [];
    if (jobs.length > 0) {
      const device = this.#device;
      if (device === null) {
        throw new GpuError("Tuner.tune(): this tuner has no device to time on (options.device)");
      }
      const repeats = options.repeats ?? 3;
      await device.sync();
      const saved: Record<string, string> = {};
      for (const job of jobs) {
        if (options.signal?.aborted) break;
        const result = await this.#timeJob(job, device, repeats);
        const key = jobKey(job.family, job.shapeClass);
        this.#pending.delete(key);
        this.#choices.set(key, result.chosen);
        if (!result.outOfMemory) saved[key] = result.chosen;
        tuned.push(result);
        options.onProgress?.({
          done: tuned.length,
          total: jobs.length,
          family: job.family,
          shapeClass: job.shapeClass,
          seconds: (this.#clock() - start) / 1000,
        });
      }
      if (tuned.length > 0) await this.#store.save(this.adapterKey, saved);
    }
    return Object.freeze({
      jobs: tuned.length,
      candidatesTimed: tuned.reduce((n, t) => n + Object.keys(t.times).length, 0),
      seconds: (this.#clock() - start) / 1000,
      choices: Object.freeze(tuned),
    });
  }

  async #timeJob(job: TuningJob, device: TuningDevice, repeats: number): Promise<TunedJob> {
    const { family, shapeClass } = job;
    const times: Record<string, number> = {};
    const rejected: string[] = [];
    let outOfMemory = false;
    let bench: TuningBench | null = null;
    try {
      bench = job.prepare();
      for (const id of job.candidates) {
        try {
          const b: TuningBench = bench;
          b.launch(id); // warm-up: compiles the pipeline, touches the inputs
          await device.sync();
          const launch = () => b.launch(id);
          const seconds = await this.#timer.time(
            { family, shapeClass, id, repeats, launch },
            device,
          );
          if (Number.isFinite(seconds) && seconds >= 0) times[id] = seconds;
        } catch (e) {
          if (!(e instanceof KernelError)) throw e;
          rejected.push(id);
        }
      }
    } catch (e) {
      // Tuning in a full device (mid-training) must not end the run: keep the table's choice.
      if (!(e instanceof GpuOutOfMemoryError)) throw e;
      outOfMemory = true;
    } finally {
      bench?.dispose();
    }
    let chosen = job.candidates[0];
    for (const id of job.candidates) {
      if (!outOfMemory && id in times && !(times[chosen] <= times[id])) chosen = id;
    }
    return Object.freeze({
      family,
      shapeClass,
      chosen,
      table: job.candidates[0],
      times: Object.freeze(times),
      rejected: Object.freeze(rejected),
      outOfMemory,
    });
  }
}

/** What identifies an adapter for remembered choices (see {@linkcode adapterKey}). */
export interface AdapterIdentity {
  /** Vendor string or id. */
  readonly vendor: string;
  /** Architecture (often empty). */
  readonly architecture: string;
  /** Device string or id. */
  readonly device: string;
  /** Description, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`. */
  readonly description: string;
  /** Driver, where the runtime tells it (Deno does not). */
  readonly driver?: string;
  /** Features enabled on the device. */
  readonly features: readonly string[];
  /** The limits webtune uses, as the device has them. */
  readonly limits: Readonly<Record<string, number>>;
  /** webtune's version (default {@linkcode WEBTUNE_VERSION}). */
  readonly version?: string;
}

/** FNV-1a, 32 bits, as 8 hex digits. */
function digest(text: string): string {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/**
 * The key an adapter's choices are remembered under: vendor / architecture / device /
 * description (/ driver), a digest of the enabled features and the limits (two adapters that
 * describe themselves alike, e.g. Mesa's llvmpipe through GL and through Vulkan, differ
 * there), and webtune's version (a new release retunes).
 *
 * @param id What the adapter and device say.
 * @returns E.g. `65541//0/llvmpipe (LLVM 15.0.6, 256 bits) #1a2b3c4d webtune 0.1.0`.
 * @example
 * ```ts
 * import { adapterKey } from "./tuning.ts";
 * const id = {
 *   vendor: "nvidia", architecture: "hopper", device: "", description: "NVIDIA H100",
 *   features: ["timestamp-query"], limits: { maxComputeWorkgroupStorageSize: 49152 },
 * };
 * const key = adapterKey(id);
 * console.log(key.startsWith("nvidia/hopper//NVIDIA H100 #"), key.endsWith(" webtune 0.1.0"));
 * // true true
 * console.log(key === adapterKey({ ...id, features: ["timestamp-query", "subgroups"] })); // false
 * ```
 */
export function adapterKey(id: AdapterIdentity): string {
  const names = [id.vendor, id.architecture, id.device, id.description];
  if (id.driver) names.push(id.driver);
  const limits = Object.keys(id.limits).sort().map((k) => `${k}=${id.limits[k]}`);
  const hash = digest(`${[...id.features].sort().join(",")};${limits.join(",")}`);
  return `${names.join("/")} #${hash} webtune ${id.version ?? WEBTUNE_VERSION}`;
}
