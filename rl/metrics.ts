/**
 * Per-step metrics as JSON Lines: one flat JSON object per optimizer step, written through an
 * injected {@linkcode LineSink} so this module runs in a browser as well as in Deno (the file
 * sink lives in `metrics_fs.ts`).
 *
 * Record layout: `{ "phase": "sft" | "grpo" | …, "step": n, "time": ms?, …metrics }`. Metric
 * names follow {@linkcode METRIC_KEYS}; per reward function the mean is `reward/<name>` and the
 * std `reward_std/<name>`. The report (`report.ts`) picks its plots by these names.
 *
 * Non-finite numbers: JSON has no NaN or Infinity, so NaN, +Infinity and −Infinity are written
 * as `null` (what `JSON.stringify` does too). A diverged loss thus reads back as null and the
 * report draws it as a gap.
 *
 * @module
 */

import type { RewardMetrics } from "./grpo_math.ts";

/** A metric value: numbers, labels, flags; null for missing or non-finite. */
export type MetricValue = number | string | boolean | null;

/** One step's metrics, flat (no nesting). */
export type MetricsRecord = Readonly<Record<string, MetricValue>>;

/**
 * Where JSONL lines go. `line` is one JSON object without a trailing newline; the sink adds
 * the line break. May be synchronous or return a promise; calls arrive one at a time, in order.
 */
export interface LineSink {
  /**
   * Stores one line.
   *
   * @param line JSON text without a newline.
   */
  append(line: string): Promise<void> | void;
}

/** Thrown for malformed metric records or JSONL text. */
export class MetricsError extends Error {
  /** @param message What was expected and what was received. */
  constructor(message: string) {
    super(message);
    this.name = "MetricsError";
  }
}

/** Canonical metric names, shared by the trainers, the progress line and the report. */
export const METRIC_KEYS: Readonly<{
  loss: "loss";
  rewardMean: "reward_mean";
  rewardStd: "reward_std";
  rewardPrefix: "reward/";
  rewardStdPrefix: "reward_std/";
  zeroStdGroupFraction: "zero_std_group_fraction";
  klMean: "kl_mean";
  clipFraction: "clip_fraction";
  completionLengthMean: "completion_length_mean";
  completionLengthMin: "completion_length_min";
  completionLengthMax: "completion_length_max";
  truncatedFraction: "truncated_fraction";
  lr: "lr";
  gradNorm: "grad_norm";
  tokensPerSecond: "tokens_per_second";
  rolloutSeconds: "rollout_seconds";
  trainSeconds: "train_seconds";
}> = Object.freeze(
  {
    loss: "loss",
    rewardMean: "reward_mean",
    rewardStd: "reward_std",
    rewardPrefix: "reward/",
    rewardStdPrefix: "reward_std/",
    zeroStdGroupFraction: "zero_std_group_fraction",
    klMean: "kl_mean",
    clipFraction: "clip_fraction",
    completionLengthMean: "completion_length_mean",
    completionLengthMin: "completion_length_min",
    completionLengthMax: "completion_length_max",
    truncatedFraction: "truncated_fraction",
    lr: "lr",
    gradNorm: "grad_norm",
    tokensPerSecond: "tokens_per_second",
    rolloutSeconds: "rollout_seconds",
    trainSeconds: "train_seconds",
  } as const,
);

/** Keys the logger sets itself; `values` may not contain them. */
const RESERVED = ["phase", "step", "time"];

/**
 * Serialises one record as a JSON line, turning NaN and ±Infinity into null.
 *
 * @param record Flat record; values must be numbers, strings, booleans or null.
 * @returns JSON text without a newline.
 * @throws {MetricsError} For a nested object, array, undefined or other non-scalar value.
 * @example
 * ```ts
 * import { serializeMetrics } from "./metrics.ts";
 * if (serializeMetrics({ step: 1, loss: NaN }) !== '{"step":1,"loss":null}') throw new Error();
 * ```
 */
export function serializeMetrics(record: MetricsRecord): string {
  const out: Record<string, MetricValue> = {};
  for (const [key, value] of Object.entries(record)) {
    if (typeof value === "number") out[key] = Number.isFinite(value) ? value : null;
    else if (value === null || typeof value === "string" || typeof value === "boolean") {
      out[key] = value;
    } else {
      throw new MetricsError(
        `metric ${key} must be a number, string, boolean or null, got ${typeof value}`,
      );
    }
  }
  return JSON.stringify(out);
}

/** Options of {@linkcode parseMetricsJsonl}. */
export interface ParseMetricsOptions {
  /**
   * Skip an unparsable *last* line (a write cut short by a crash) instead of throwing
   * (default true). Malformed lines elsewhere always throw.
   */
  readonly allowTruncatedTail?: boolean;
}

/**
 * Parses JSONL metrics text (blank lines are skipped).
 *
 * @param text File contents.
 * @param options See {@linkcode ParseMetricsOptions}.
 * @returns The records, in file order.
 * @throws {MetricsError} Naming the 1-based line of a malformed or non-object line.
 * @example
 * ```ts
 * import { parseMetricsJsonl } from "./metrics.ts";
 * const recs = parseMetricsJsonl('{"phase":"sft","step":1,"loss":null}\n{"phase":"sft","st');
 * if (recs.length !== 1 || recs[0].loss !== null) throw new Error("bad");
 * ```
 */
export function parseMetricsJsonl(
  text: string,
  options: ParseMetricsOptions = {},
): MetricsRecord[] {
  const lines = text.split("\n");
  let last = lines.length - 1;
  while (last >= 0 && lines[last].trim() === "") last--;
  const records: MetricsRecord[] = [];
  for (let i = 0; i <= last; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      if (i === last && (options.allowTruncatedTail ?? true)) break;
      throw new MetricsError(`line ${i + 1} is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new MetricsError(`line ${i + 1} must be a JSON object, got ${line.slice(0, 40)}`);
    }
    records.push(value as MetricsRecord);
  }
  return records;
}

/**
 * Flattens GRPO reward statistics into metric keys: `reward_mean`, `reward_std`,
 * `zero_std_group_fraction`, and `reward/<fn>` / `reward_std/<fn>` per reward function.
 *
 * @param metrics Output of `rewardMetrics()` in `grpo_math.ts`.
 * @returns Flat metric values.
 * @example
 * ```ts
 * import { rewardRecord } from "./metrics.ts";
 * const r = rewardRecord({
 *   total: { mean: 1, std: 0.5 },
 *   perFunction: { checkAnswer: { mean: 0.25, std: 0.1 } },
 *   zeroStdGroupFraction: 0,
 * });
 * if (r["reward/checkAnswer"] !== 0.25) throw new Error("bad");
 * ```
 */
export function rewardRecord(metrics: RewardMetrics): Record<string, number> {
  const out: Record<string, number> = {
    [METRIC_KEYS.rewardMean]: metrics.total.mean,
    [METRIC_KEYS.rewardStd]: metrics.total.std,
    [METRIC_KEYS.zeroStdGroupFraction]: metrics.zeroStdGroupFraction,
  };
  for (const [name, { mean, std }] of Object.entries(metrics.perFunction)) {
    out[METRIC_KEYS.rewardPrefix + name] = mean;
    out[METRIC_KEYS.rewardStdPrefix + name] = std;
  }
  return out;
}

/** Options of {@linkcode MetricsLogger}. */
export interface MetricsLoggerOptions {
  /**
   * Milliseconds since the Unix epoch, written as `time` on each record (default `Date.now`);
   * null writes no `time` key (deterministic output for tests).
   */
  readonly clock?: (() => number) | null;
  /** Keep every logged record in memory for {@linkcode MetricsLogger.records} (default true). */
  readonly keepRecords?: boolean;
}

/**
 * Appends one JSON object per step to a {@linkcode LineSink}. Writes are chained, so lines
 * stay in call order even when the caller does not await {@linkcode MetricsLogger.log}; a sink
 * error rejects that call's promise and every later `log`/`flush` (so await `flush()` at the
 * end of a phase when not awaiting each `log`).
 *
 * @example
 * ```ts
 * import { MemoryLineSink, MetricsLogger } from "./metrics.ts";
 * const sink = new MemoryLineSink();
 * const logger = new MetricsLogger(sink, { clock: null });
 * await logger.log("sft", 1, { loss: 2.5, lr: 3e-6 });
 * if (sink.lines[0] !== '{"phase":"sft","step":1,"loss":2.5,"lr":0.000003}') throw new Error();
 * ```
 */
export class MetricsLogger {
  readonly #sink: LineSink;
  readonly #clock: (() => number) | null;
  readonly #records: MetricsRecord[] | null;
  #pending: Promise<void> = Promise.resolve();

  /**
   * @param sink Where lines go.
   * @param options See {@linkcode MetricsLoggerOptions}.
   */
  constructor(sink: LineSink, options: MetricsLoggerOptions = {}) {
    this.#sink = sink;
    this.#clock = options.clock === undefined ? Date.now : options.clock;
    this.#records = (options.keepRecords ?? true) ? [] : null;
  }

  /**
   * Logs one step.
   *
   * @param phase Training phase, e.g. `"sft"` or `"grpo"` (non-empty).
   * @param step Step number within the phase (integer ≥ 0).
   * @param values Flat metric values; must not contain `phase`, `step` or `time`.
   * @returns Resolves when the line has been handed to the sink.
   * @throws {MetricsError} (synchronously) for a bad phase, step, reserved or non-scalar value.
   */
  log(phase: string, step: number, values: MetricsRecord): Promise<void> {
    if (typeof phase !== "string" || phase === "") {
      throw new MetricsError(`phase must be a non-empty string, got ${String(phase)}`);
    }
    if (!Number.isInteger(step) || step < 0) {
      throw new MetricsError(`step must be an integer >= 0, got ${step}`);
    }
    for (const key of RESERVED) {
      if (key in values) throw new MetricsError(`values must not contain the reserved key ${key}`);
    }
    const record: Record<string, MetricValue> = { phase, step };
    if (this.#clock !== null) record.time = this.#clock();
    Object.assign(record, values);
    const line = serializeMetrics(record);
    this.#records?.push(JSON.parse(line));
    const write = this.#pending.then(() => this.#sink.append(line));
    // A caller may fire and forget; the error then surfaces from flush().
    write.catch(() => {});
    this.#pending = write;
    return write;
  }

  /**
   * Waits for every line logged so far to reach the sink.
   *
   * @returns Resolves when the sink has accepted them; rejects with the first sink error.
   */
  flush(): Promise<void> {
    return this.#pending;
  }

  /**
   * The records logged so far, as they were written (non-finite numbers as null).
   *
   * @returns A copy of the kept records (empty when `keepRecords` is false).
   */
  records(): MetricsRecord[] {
    return this.#records === null ? [] : [...this.#records];
  }
}

/**
 * A {@linkcode LineSink} that keeps lines in memory (tests, browsers, building a report
 * without touching the disk).
 *
 * @example
 * ```ts
 * import { MemoryLineSink } from "./metrics.ts";
 * const sink = new MemoryLineSink();
 * sink.append('{"step":0}');
 * if (sink.text() !== '{"step":0}\n') throw new Error("bad");
 * ```
 */
export class MemoryLineSink implements LineSink {
  /** Lines received, without newlines. */
  readonly lines: string[] = [];

  /** @param line One JSON line without a newline. */
  append(line: string): void {
    this.lines.push(line);
  }

  /** @returns The JSONL text (every line ends with a newline). */
  text(): string {
    return this.lines.map((l) => l + "\n").join("");
  }
}
