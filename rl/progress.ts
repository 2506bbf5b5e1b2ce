/**
 * Progress lines for training phases: a pure formatter ({@linkcode formatProgress}) and a
 * {@linkcode ProgressReporter} that writes to an injected {@linkcode TextWriter} — in place with
 * `\r` on a terminal, as plain lines every few seconds otherwise (logs, CI). The ETA comes from
 * an exponential moving average of the time per step, ignoring the first (warm-up) steps, which
 * include shader compilation. Time comes from an injectable clock, so output is deterministic
 * in tests.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";

/** Where progress text goes (`\r` and `\n` included in the text). */
export interface TextWriter {
  /** @param text Text to write as is. */
  write(text: string): void;
}

/** Everything one progress line shows; optional fields are left out when missing. */
export interface ProgressState {
  /** Phase name, e.g. `"sft"`. */
  readonly phase: string;
  /** Steps done. */
  readonly step: number;
  /** Steps in the phase. */
  readonly total: number;
  /** Seconds since the phase started. */
  readonly elapsedSeconds?: number | null;
  /** Estimated seconds left; null when unknown. */
  readonly etaSeconds?: number | null;
  /** Throughput in tokens per second. */
  readonly tokensPerSecond?: number | null;
  /** Latest loss. */
  readonly loss?: number | null;
  /** Latest mean reward (GRPO). */
  readonly rewardMean?: number | null;
  /** Latest mean KL to the reference (GRPO). */
  readonly kl?: number | null;
  /** Further `name value` pairs, in insertion order. */
  readonly extra?: Readonly<Record<string, number | string>>;
}

/** Thrown for an invalid progress option or update; `field` (= `path`) names it. */
export class ProgressError extends FieldError {
  override readonly name: string = "ProgressError";
}

/**
 * Formats seconds as `h:mm:ss` (hours unpadded and unbounded).
 *
 * @param seconds Duration; null, negative or non-finite gives `"-:--:--"`.
 * @returns E.g. `"0:03:07"`, `"27:46:40"`.
 * @example
 * ```ts
 * import { formatDuration } from "./progress.ts";
 * if (formatDuration(3725.4) !== "1:02:05") throw new Error("bad");
 * ```
 */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return "-:--:--";
  }
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * Formats a token rate: one decimal below 10, integer below 1000, then `k` / `M` with three
 * significant digits.
 *
 * @param tokensPerSecond Rate.
 * @returns E.g. `"8.5 tok/s"`, `"812 tok/s"`, `"1.23k tok/s"`; `"- tok/s"` when not finite.
 */
export function formatRate(tokensPerSecond: number): string {
  const r = tokensPerSecond;
  if (!Number.isFinite(r)) return "- tok/s";
  if (r < 10) return `${r.toFixed(1)} tok/s`;
  if (r < 1000) return `${Math.round(r)} tok/s`;
  if (r < 1e6) return `${Number((r / 1e3).toPrecision(3))}k tok/s`;
  return `${Number((r / 1e6).toPrecision(3))}M tok/s`;
}

/**
 * Formats a metric compactly: four significant digits, exponent notation below 1e-3 or from
 * 1e5 on.
 *
 * @param v Value.
 * @returns E.g. `"1.235"`, `"0.0123"`, `"3.00e-6"`, `"nan"`, `"inf"`.
 */
export function formatMetric(v: number): string {
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e5) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/** Options of {@linkcode formatProgress}. */
export interface FormatProgressOptions {
  /** Characters in the bar (default 20; 0 leaves the bar out). */
  readonly barWidth?: number;
}

/**
 * Renders one progress line (no `\r`, no newline).
 *
 * @param state What to show.
 * @param options Bar width.
 * @returns E.g. `"sft [#####---------------]  25/100  25% | elapsed 0:01:40 | ETA 0:05:00 |
 *   1.23k tok/s | loss 1.234"`.
 * @example
 * ```ts
 * import { formatProgress } from "./progress.ts";
 * const line = formatProgress({ phase: "grpo", step: 3, total: 4, etaSeconds: 65, kl: 0.0021 });
 * if (line !== "grpo [###############-----] 3/4  75% | ETA 0:01:05 | kl 0.0021") {
 *   throw new Error(line);
 * }
 * ```
 */
export function formatProgress(state: ProgressState, options: FormatProgressOptions = {}): string {
  const barWidth = options.barWidth ?? 20;
  const frac = state.total > 0 ? Math.min(1, Math.max(0, state.step / state.total)) : 0;
  const head = [state.phase];
  if (barWidth > 0) {
    const filled = Math.floor(frac * barWidth);
    head.push(`[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}]`);
  }
  const totalText = String(state.total);
  head.push(`${String(state.step).padStart(totalText.length)}/${totalText}`);
  const parts = [`${head.join(" ")} ${(frac * 100).toFixed(0).padStart(3)}%`];
  const known = (v: number | null | undefined): v is number => v !== null && v !== undefined;
  if (known(state.elapsedSeconds)) parts.push(`elapsed ${formatDuration(state.elapsedSeconds)}`);
  if (known(state.etaSeconds) || known(state.elapsedSeconds)) {
    parts.push(`ETA ${formatDuration(state.etaSeconds)}`);
  }
  if (known(state.tokensPerSecond)) parts.push(formatRate(state.tokensPerSecond));
  if (known(state.loss)) parts.push(`loss ${formatMetric(state.loss)}`);
  if (known(state.rewardMean)) parts.push(`reward ${formatMetric(state.rewardMean)}`);
  if (known(state.kl)) parts.push(`kl ${formatMetric(state.kl)}`);
  for (const [name, v] of Object.entries(state.extra ?? {})) {
    parts.push(`${name} ${typeof v === "number" ? formatMetric(v) : v}`);
  }
  return parts.join(" | ");
}

/** Options of {@linkcode ProgressReporter}. */
export interface ProgressReporterOptions {
  /** Phase name shown first. */
  readonly phase: string;
  /** Steps in the phase (integer ≥ 0). */
  readonly total: number;
  /** Terminal output: redraw one line with `\r` (default false: plain lines). */
  readonly interactive?: boolean;
  /** Plain-line mode: at most one line per this many seconds (default 10). */
  readonly intervalSeconds?: number;
  /** Interactive mode: at most one redraw per this many seconds (default 0.1). */
  readonly redrawSeconds?: number;
  /** EMA weight of the newest step time, in (0, 1] (default 0.1). */
  readonly emaAlpha?: number;
  /** Update intervals left out of the EMA once later ones exist (default 1). */
  readonly warmupUpdates?: number;
  /** Monotonic clock in milliseconds (default `performance.now`). */
  readonly clock?: () => number;
  /** Bar width in characters (default 20). */
  readonly barWidth?: number;
  /** Steps already done when the reporter starts, e.g. after `--resume` (default 0). */
  readonly startStep?: number;
}

/** Values reported with a step; missing ones keep their previous value. */
export interface ProgressUpdate {
  /** Tokens processed since the previous update (for the tokens/s EMA). */
  readonly tokens?: number;
  /** Throughput measured by the caller; overrides the `tokens` estimate. */
  readonly tokensPerSecond?: number | null;
  /** Latest loss. */
  readonly loss?: number | null;
  /** Latest mean reward. */
  readonly rewardMean?: number | null;
  /** Latest mean KL. */
  readonly kl?: number | null;
  /** Extra `name value` pairs to show. */
  readonly extra?: Readonly<Record<string, number | string>>;
}

/** Exponential moving average that discards its first `warmup` samples once others exist. */
class WarmEma {
  #value: number | null = null;
  #samples = 0;
  constructor(private readonly alpha: number, private readonly warmup: number) {}
  add(x: number): void {
    this.#samples++;
    if (this.#samples <= this.warmup + 1 || this.#value === null) this.#value = x;
    else this.#value = this.alpha * x + (1 - this.alpha) * this.#value;
  }
  get value(): number | null {
    return this.#value;
  }
}

function checkNumber(field: string, v: number, ok: boolean, expected: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || !ok) {
    throw ProgressError.mustBe(field, expected, v, String);
  }
  return v;
}

/**
 * Reports a phase's progress. Call {@linkcode ProgressReporter.update} after every step and
 * {@linkcode ProgressReporter.finish} at the end; use {@linkcode ProgressReporter.message} to
 * print a line without garbling a terminal bar.
 *
 * @example
 * ```ts
 * import { ProgressReporter } from "./progress.ts";
 * let now = 0, out = "";
 * const bar = new ProgressReporter({ write: (t) => (out += t) }, {
 *   phase: "sft", total: 4, clock: () => now, intervalSeconds: 0,
 * });
 * for (let s = 1; s <= 4; s++) { now += 2000; bar.update(s, { tokens: 1000, loss: 1 / s }); }
 * bar.finish();
 * if (!out.includes("sft [####################] 4/4 100% | elapsed 0:00:08 | ETA 0:00:00 | 500 tok/s")) {
 *   throw new Error(out);
 * }
 * ```
 */
export class ProgressReporter {
  readonly #writer: TextWriter;
  readonly #phase: string;
  readonly #total: number;
  readonly #interactive: boolean;
  readonly #intervalMs: number;
  readonly #redrawMs: number;
  readonly #clock: () => number;
  readonly #barWidth: number;
  readonly #stepTime: WarmEma;
  readonly #tokenRate: WarmEma;
  readonly #start: number;
  #step: number;
  #lastTime: number;
  #lastOutput = -Infinity;
  #drawnLength = 0;
  #lastLine = "";
  #values: Omit<ProgressUpdate, "tokens"> = {};
  #finished = false;

  /**
   * @param writer Where text goes.
   * @param options See {@linkcode ProgressReporterOptions}.
   * @throws {ProgressError} Naming an invalid option.
   */
  constructor(writer: TextWriter, options: ProgressReporterOptions) {
    if (typeof options.phase !== "string" || options.phase === "") {
      throw new ProgressError("phase", `phase must be a non-empty string`);
    }
    const total = options.total;
    checkNumber("total", total, Number.isInteger(total) && total >= 0, "an integer >= 0");
    const alpha = options.emaAlpha ?? 0.1;
    checkNumber("emaAlpha", alpha, alpha > 0 && alpha <= 1, "in (0, 1]");
    const warmup = options.warmupUpdates ?? 1;
    checkNumber(
      "warmupUpdates",
      warmup,
      Number.isInteger(warmup) && warmup >= 0,
      "an integer >= 0",
    );
    const interval = options.intervalSeconds ?? 10;
    checkNumber("intervalSeconds", interval, interval >= 0, ">= 0");
    const redraw = options.redrawSeconds ?? 0.1;
    checkNumber("redrawSeconds", redraw, redraw >= 0, ">= 0");
    const barWidth = options.barWidth ?? 20;
    checkNumber(
      "barWidth",
      barWidth,
      Number.isInteger(barWidth) && barWidth >= 0,
      "an integer >= 0",
    );
    const start = options.startStep ?? 0;
    checkNumber("startStep", start, Number.isInteger(start) && start >= 0, "an integer >= 0");
    this.#writer = writer;
    this.#phase = options.phase;
    this.#total = total;
    this.#interactive = options.interactive ?? false;
    this.#intervalMs = interval * 1000;
    this.#redrawMs = redraw * 1000;
    this.#clock = options.clock ?? (() => performance.now());
    this.#barWidth = barWidth;
    this.#stepTime = new WarmEma(alpha, warmup);
    this.#tokenRate = new WarmEma(alpha, warmup);
    this.#step = start;
    this.#start = this.#lastTime = this.#clock();
  }

  /** @returns The current state, as {@linkcode formatProgress} would show it. */
  get state(): ProgressState {
    const perStep = this.#stepTime.value;
    const left = Math.max(0, this.#total - this.#step);
    return {
      phase: this.#phase,
      step: this.#step,
      total: this.#total,
      elapsedSeconds: (this.#clock() - this.#start) / 1000,
      etaSeconds: left === 0 ? 0 : perStep === null ? null : perStep * left,
      tokensPerSecond: this.#values.tokensPerSecond ?? this.#tokenRate.value,
      loss: this.#values.loss,
      rewardMean: this.#values.rewardMean,
      kl: this.#values.kl,
      extra: this.#values.extra,
    };
  }

  /**
   * Records that `step` steps are done and redraws when due.
   *
   * @param step Steps done so far (integer, not below the previous update's).
   * @param values Latest metrics; see {@linkcode ProgressUpdate}.
   * @throws {ProgressError} For a step that goes backwards or negative tokens.
   */
  update(step: number, values: ProgressUpdate = {}): void {
    checkNumber("step", step, Number.isInteger(step) && step >= this.#step, `>= ${this.#step}`);
    const now = this.#clock();
    const seconds = (now - this.#lastTime) / 1000;
    if (step > this.#step && seconds > 0) {
      this.#stepTime.add(seconds / (step - this.#step));
      if (values.tokens !== undefined) {
        checkNumber("tokens", values.tokens, values.tokens >= 0, ">= 0");
        this.#tokenRate.add(values.tokens / seconds);
      }
      this.#lastTime = now;
    }
    this.#step = step;
    const { tokens: _, ...rest } = values;
    this.#values = { ...this.#values, ...rest };
    const due = now - this.#lastOutput >= (this.#interactive ? this.#redrawMs : this.#intervalMs);
    if (due || (this.#interactive && step >= this.#total)) this.#draw(now, false);
  }

  /**
   * Prints a line of text above the progress line (or among the plain lines).
   *
   * @param text One line, without a newline.
   */
  message(text: string): void {
    if (this.#interactive && this.#drawnLength > 0) {
      this.#writer.write(`\r${" ".repeat(this.#drawnLength)}\r${text}\n`);
      this.#drawnLength = 0;
      this.#draw(this.#clock(), false);
    } else {
      this.#writer.write(text + "\n");
    }
  }

  /**
   * Erases the line drawn on a terminal so other output can take it (another progress line);
   * the next update draws it again. Plain lines are left as they are.
   */
  clear(): void {
    if (this.#interactive && this.#drawnLength > 0) {
      this.#writer.write(`\r${" ".repeat(this.#drawnLength)}\r`);
      this.#drawnLength = 0;
      this.#lastOutput = -Infinity; // redrawn at the next update
    }
  }

  /**
   * Prints the final line and ends it with a newline. Later calls do nothing.
   *
   * @param values Final metrics to show.
   */
  finish(values: ProgressUpdate = {}): void {
    if (this.#finished) return;
    const { tokens: _, ...rest } = values;
    this.#values = { ...this.#values, ...rest };
    this.#draw(this.#clock(), true);
    this.#finished = true;
  }

  #draw(now: number, final: boolean): void {
    const line = formatProgress(this.state, { barWidth: this.#barWidth });
    this.#lastOutput = now;
    if (this.#interactive) {
      const pad = " ".repeat(Math.max(0, this.#drawnLength - line.length));
      this.#writer.write(`\r${line}${pad}${final ? "\n" : ""}`);
      this.#drawnLength = final ? 0 : line.length;
    } else if (!final || line !== this.#lastLine) {
      this.#writer.write(line + "\n");
    }
    this.#lastLine = line;
  }
}
