/**
 * The device check's plumbing: the sizes of a full and a quick check, parts run in a time box
 * whose outcome (ok, error, timeout) is recorded and never stops the others, and the JSON
 * summary written after each part.
 *
 * @module
 */

import { writeTextAtomic } from "../base/atomic_fs.ts";
import { GRPO_STEP_FULL, type GrpoStepSizes } from "../bench/grpo_step.ts";

/** How a part ended. */
export type PartStatus = "ok" | "error" | "timeout";

/** One part's record in the summary: its outcome, its seconds and what it measured. */
export interface PartRecord {
  /** How it ended. */
  readonly status: PartStatus;
  /** Wall seconds (the box's length on a timeout). */
  readonly seconds: number;
  /** `Name: message` of the error, or what the box cut short. */
  readonly error?: string;
  /** What it measured (parts record as they go, so a timeout keeps what was done). */
  readonly [field: string]: unknown;
}

/** The sizes and time boxes of a check. */
export interface CheckSizes {
  /** `full` (real sizes) or `quick` (tiny, for tests on software adapters). */
  readonly name: "full" | "quick";
  /** Square matmul sizes, ascending; the last is the prefill's reference rate. */
  readonly matmul: readonly number[];
  /** `gemma3_1b` at real size, or a tiny Gemma 3. */
  readonly model: "gemma3_1b" | "tiny";
  /** Prefill: sequences × prompt tokens (the GRPO rollout's prefill). */
  readonly prefill: { readonly batch: number; readonly promptLength: number };
  /** Decode at batch 1: prompt tokens, then steps. */
  readonly decode: { readonly promptLength: number; readonly steps: number };
  /** The measured GRPO step. */
  readonly grpo: GrpoStepSizes;
  /** The warm-up GRPO step (compiles pipelines and queues tuning jobs). */
  readonly warmupGrpo: GrpoStepSizes;
  /**
   * Seconds each part may take (tuning stops between jobs at half its box, so the jobs timed
   * by then are kept).
   */
  readonly budgets: Readonly<Record<PartName, number>>;
  /** Seconds the whole check aims at. */
  readonly totalSeconds: number;
}

/** The parts, in the order they run. */
export const PART_NAMES = [
  "adapter",
  "model",
  "warmup",
  "tuning",
  "matmul",
  "prefill",
  "decode",
  "grpoStep",
] as const;

/** A part of the check. */
export type PartName = typeof PART_NAMES[number];

/** Real sizes; about 6–8 minutes on one datacentre GPU. */
export const FULL_CHECK: CheckSizes = Object.freeze({
  name: "full",
  matmul: Object.freeze([1024, 2048, 4096]),
  model: "gemma3_1b",
  prefill: Object.freeze({ batch: 4, promptLength: 256 }),
  decode: Object.freeze({ promptLength: 256, steps: 64 }),
  grpo: GRPO_STEP_FULL,
  warmupGrpo: Object.freeze({ completions: 4, promptLength: 256, maxNewTokens: 16 }),
  budgets: Object.freeze({
    adapter: 20,
    model: 60,
    warmup: 90,
    tuning: 90,
    matmul: 90,
    prefill: 30,
    decode: 30,
    grpoStep: 240,
  }),
  totalSeconds: 470,
});

/**
 * Tiny sizes that exercise every part: about 20 s on llvmpipe once Mesa's shader cache holds
 * the pipelines (the first run compiles them: a minute or more). The boxes only guard against
 * hangs.
 */
export const QUICK_CHECK: CheckSizes = Object.freeze({
  name: "quick",
  matmul: Object.freeze([32, 64]),
  model: "tiny",
  prefill: Object.freeze({ batch: 2, promptLength: 16 }),
  decode: Object.freeze({ promptLength: 8, steps: 8 }),
  grpo: Object.freeze({ completions: 4, promptLength: 8, maxNewTokens: 8 }),
  warmupGrpo: Object.freeze({ completions: 4, promptLength: 8, maxNewTokens: 4 }),
  budgets: Object.freeze({
    adapter: 15,
    model: 15,
    warmup: 90,
    tuning: 8,
    matmul: 40,
    prefill: 15,
    decode: 15,
    grpoStep: 30,
  }),
  totalSeconds: 200,
});

/**
 * Runs `body` in a time box of `seconds`: its outcome is recorded, never thrown. `body` writes
 * what it measures into `out` as it goes; on a timeout the record keeps what was written so far
 * and the signal is aborted (the work may still finish in the background: GPU work cannot be
 * cancelled).
 *
 * @param seconds The box.
 * @param body The part.
 * @returns The record.
 * @example
 * ```ts
 * import { runPart } from "./_device_check_run.ts";
 * const r = await runPart(1, async (out) => { out.answer = 42; });
 * console.log(r.status, r.answer); // ok 42
 * const t = await runPart(0.01, (out) => {
 *   out.started = true;
 *   return new Promise((resolve) => setTimeout(resolve, 100));
 * });
 * console.log(t.status, t.started); // timeout true
 * ```
 */
export async function runPart(
  seconds: number,
  body: (out: Record<string, unknown>, signal: AbortSignal) => Promise<void>,
): Promise<PartRecord> {
  const out: Record<string, unknown> = {};
  const controller = new AbortController();
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve("timeout");
    }, Math.max(0, seconds) * 1000);
  });
  const work = body(out, controller.signal).then(() => "ok" as const);
  work.catch(() => {}); // a part that fails after its box closed is already recorded
  let status: PartStatus;
  let error: string | undefined;
  try {
    status = await Promise.race([work, timeout]);
    if (status === "timeout") error = `stopped after its ${seconds} s box`;
  } catch (e) {
    status = "error";
    error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  } finally {
    clearTimeout(timer);
  }
  const elapsed = (performance.now() - t0) / 1000;
  return { status, seconds: round(elapsed, 3), ...(error ? { error } : {}), ...out };
}

/**
 * `x` rounded to `digits` decimals, so the JSON stays short (NaN and ±Infinity stay so, and
 * JSON writes them as null).
 *
 * @param x The number.
 * @param digits Decimals.
 * @returns The rounded number.
 * @example
 * ```ts
 * import { round } from "./_device_check_run.ts";
 * console.log(round(1.23456, 2)); // 1.23
 * ```
 */
export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * `x` to `digits` significant digits (rates span 1e-3 on a software adapter to 1e5 GFLOP/s on
 * a GPU); NaN and ±Infinity stay so.
 *
 * @param x The number.
 * @param digits Significant digits (default 4).
 * @returns The rounded number.
 * @example
 * ```ts
 * import { significant } from "./_device_check_run.ts";
 * console.log(significant(0.0043219), significant(51234.5)); // 0.004322 51230
 * ```
 */
export function significant(x: number, digits = 4): number {
  return Number.isFinite(x) && x !== 0 ? Number(x.toPrecision(digits)) : x;
}

/**
 * Writes the summary as pretty JSON, atomically (a reader never sees half a file).
 *
 * @param path Output path.
 * @param summary The summary.
 * @example
 * ```ts ignore
 * await writeSummary("device_check.json", { adapter: { status: "ok" } });
 * ```
 */
export async function writeSummary(path: string, summary: unknown): Promise<void> {
  await writeTextAtomic(path, JSON.stringify(summary, null, 2) + "\n");
}

/** One of issue 14's GPU targets, read off a summary. */
export interface AcceptancePoint {
  /** The measured value (null: not measured, e.g. an adapter without a known peak). */
  readonly value: number | null;
  /** The target (`value ≥ target` passes). */
  readonly target: number;
  /** Whether it passed (null when there is no value). */
  readonly pass: boolean | null;
}

/** The GPU targets webtune aims at, as measured by one device check. */
export interface Acceptance {
  /** The largest square matmul measured (4096 in a full check). */
  readonly matmulSize: number | null;
  /** webtune's default (tuned) matmul at that size, % of the adapter's f32 peak (≥ 40). */
  readonly matmulPercentOfPeak: AcceptancePoint;
  /** webtune's default matmul over jax-js's at that size (≥ 1: faster). */
  readonly matmulOverJaxJs: AcceptancePoint;
  /** Gemma 3 1B prefill, % of the best matmul rate (≥ 60). */
  readonly prefillPercentOfMatmul: AcceptancePoint;
  /** Decode at batch 1, % of the memory bandwidth (≥ 50). */
  readonly decodePercentOfBandwidth: AcceptancePoint;
}

function point(value: unknown, target: number): AcceptancePoint {
  const v = typeof value === "number" && Number.isFinite(value) ? value : null;
  return { value: v, target, pass: v === null ? null : v >= target };
}

/**
 * Issue 14's GPU targets read off a device-check summary: matmul ≥ 40 % of f32 peak at the
 * largest size and faster than jax-js there, prefill ≥ 60 % of the matmul rate, decode ≥ 50 %
 * of memory bandwidth at batch 1. A value a part did not measure (a failed part, an adapter
 * without a known peak) gives `pass: null`.
 *
 * @param summary The summary (`matmul`, `prefill`, `decode` parts).
 * @returns The points.
 * @example
 * ```ts
 * import { acceptance } from "./_device_check_run.ts";
 * const a = acceptance({
 *   matmul: { sizes: [{ size: 4096, webtune: [{ variant: "default", percentOfPeak: 45 }], defaultOverJaxJs: 1.3 }] },
 *   prefill: { percentOfMatmul: 70 },
 *   decode: { percentOfBandwidth: null },
 * });
 * console.log(a.matmulPercentOfPeak.pass, a.decodePercentOfBandwidth.pass); // true null
 * ```
 */
export function acceptance(summary: Record<string, unknown>): Acceptance {
  type Size = {
    size: number;
    webtune?: { variant: string; percentOfPeak?: number | null }[];
    defaultOverJaxJs?: number;
  };
  const part = (name: string) => (summary[name] ?? {}) as Record<string, unknown>;
  const sizes = (part("matmul").sizes ?? []) as Size[];
  const largest = sizes.reduce<Size | null>((a, s) => (a && a.size >= s.size ? a : s), null);
  const byDefault = largest?.webtune?.find((r) => r.variant === "default");
  return {
    matmulSize: largest?.size ?? null,
    matmulPercentOfPeak: point(byDefault?.percentOfPeak, 40),
    matmulOverJaxJs: point(largest?.defaultOverJaxJs, 1),
    prefillPercentOfMatmul: point(part("prefill").percentOfMatmul, 60),
    decodePercentOfBandwidth: point(part("decode").percentOfBandwidth, 50),
  };
}
