/**
 * Which plots the run report draws (`report.ts`), chosen by the metric names present (see
 * `METRIC_KEYS` in `metrics.ts`): `loss`, `reward_mean`, `reward/<fn>` (one line per reward
 * function), `kl_mean`, GRPO's `ratio_min|mean|max`, clip fractions per region
 * (`clip_fraction`, `clip_low_fraction`, `clip_high_fraction`, `ratio_outside_fraction`,
 * `cispo_clip_fraction`), `entropy_mean`, dynamic sampling (`zero_std_group_fraction`,
 * `resample_draws`, `resample_rounds`), `rollout_logp_max_abs_diff` (the sampler's log-probs
 * against the training forward's), `completion_length_mean|min|max`, the periodic evaluation
 * (`eval_accuracy`, `eval_partial_accuracy`, `eval_format_accuracy`), `lr`, `grad_norm`,
 * `tokens_per_second`, GPU memory (`gpu_bytes_*`); every other numeric key gets its own plot.
 *
 * - A plot whose keys never occur in a phase is left out.
 * - No plot of constants: a plot whose metrics each kept one value through the phase (at least
 *   two records, all finite and equal, e.g. `applied`, always 1) is left out, and
 *   {@linkcode reportConstants} lists those metrics with their value instead. In a plot that is
 *   drawn, a constant line stays (e.g. `reward/checkAnswer` at 0 beside the other rewards).
 * - A line joins the records that have its key (sparse metrics such as the periodic evaluation
 *   are drawn as lines); a null value (non-finite in `metrics.jsonl`) is a gap.
 * - When a (phase, step) occurs more than once (a resumed run), the last record wins.
 *
 * @module
 */

import type { PlotPoint, PlotSeries } from "./svg_plot.ts";
import type { MetricsRecord, MetricValue } from "./metrics.ts";

/** One plot the report draws for one phase. */
export interface ReportPlot {
  /** Phase whose records it shows. */
  readonly phase: string;
  /** Plot title. */
  readonly title: string;
  /** Lines, named after their metric keys. */
  readonly series: readonly PlotSeries[];
  /** Debiased-EMA weight of the line drawn over the raw values (0: none; more for long runs). */
  readonly smoothing: number;
}

/** A metric that kept one value through a phase (not plotted). */
export interface ReportConstant {
  /** The phase. */
  readonly phase: string;
  /** The metric key. */
  readonly key: string;
  /** Its value in every record of the phase that has it. */
  readonly value: number;
}

interface PlotSpec {
  readonly title: string;
  readonly keys: (present: readonly string[]) => string[];
  readonly smooth: boolean;
}

const exact = (...names: string[]) => (present: readonly string[]) =>
  names.filter((n) => present.includes(n));
const prefixed = (prefix: string) => (present: readonly string[]) =>
  present.filter((k) => k.startsWith(prefix));

const PLOT_SPECS: readonly PlotSpec[] = [
  { title: "Loss", keys: exact("loss"), smooth: true },
  { title: "Mean reward", keys: exact("reward_mean"), smooth: true },
  { title: "Reward per function (mean)", keys: prefixed("reward/"), smooth: true },
  { title: "KL to reference (mean)", keys: exact("kl_mean"), smooth: true },
  {
    title: "Importance ratio (min, mean, max)",
    keys: exact("ratio_min", "ratio_mean", "ratio_max"),
    smooth: false,
  },
  {
    title: "Clip regions (fraction of tokens)",
    keys: exact(
      "clip_low_fraction",
      "clip_high_fraction",
      "ratio_outside_fraction",
      "cispo_clip_fraction",
    ),
    smooth: true,
  },
  { title: "Policy entropy (mean, nats)", keys: exact("entropy_mean"), smooth: true },
  {
    title: "Dynamic sampling (groups with equal rewards, extra draws)",
    keys: exact("zero_std_group_fraction", "resample_draws", "resample_rounds"),
    smooth: false,
  },
  {
    title: "Rollout vs training log-prob (max |Δ|)",
    keys: exact("rollout_logp_max_abs_diff"),
    smooth: false,
  },
  {
    title: "Completion length (tokens)",
    keys: exact("completion_length_mean", "completion_length_min", "completion_length_max"),
    smooth: true,
  },
  {
    title: "Periodic evaluation (eval.everySteps)",
    keys: exact("eval_accuracy", "eval_partial_accuracy", "eval_format_accuracy"),
    smooth: false,
  },
  { title: "Learning rate", keys: exact("lr"), smooth: false },
  { title: "Gradient norm", keys: exact("grad_norm"), smooth: true },
  { title: "Throughput (tokens/s)", keys: exact("tokens_per_second"), smooth: true },
  {
    title: "GPU memory (bytes)",
    keys: exact("gpu_bytes_in_use", "gpu_bytes_allocated", "gpu_bytes_peak"),
    smooth: false,
  },
];

/** Keys never plotted: record identity, wall time, and stds that the means' plots cover. */
const NOT_PLOTTED = (k: string): boolean =>
  k === "phase" || k === "step" || k === "time" || k.startsWith("reward_std/");

const SMOOTH_FROM_POINTS = 30;

/** EMA weight for `n` points: 0.6 for short runs, an effective window of ~n/20 for long ones. */
function smoothingFor(n: number): number {
  return n < SMOOTH_FROM_POINTS ? 0 : Math.min(0.995, Math.max(0.6, 1 - 20 / n));
}

/**
 * Records of each phase, in order of first appearance, deduplicated by step (last wins),
 * sorted by step.
 *
 * @param metrics Per-step records; records without a string `phase` and numeric `step` are
 *   ignored.
 * @returns Records by phase.
 * @example
 * ```ts
 * import { metricsByPhase } from "./report_plots.ts";
 * const m = metricsByPhase([{ phase: "sft", step: 2, loss: 1 }, { phase: "sft", step: 1 }]);
 * if (m.get("sft")!.map((r) => r.step).join() !== "1,2") throw new Error();
 * ```
 */
export function metricsByPhase(
  metrics: readonly MetricsRecord[],
): Map<string, MetricsRecord[]> {
  const phases = new Map<string, Map<number, MetricsRecord>>();
  for (const r of metrics) {
    if (typeof r.phase !== "string" || typeof r.step !== "number") continue;
    let steps = phases.get(r.phase);
    if (steps === undefined) phases.set(r.phase, steps = new Map());
    steps.set(r.step, r);
  }
  const out = new Map<string, MetricsRecord[]>();
  for (const [phase, steps] of phases) {
    out.set(phase, [...steps.values()].sort((a, b) => (a.step as number) - (b.step as number)));
  }
  return out;
}

/** Numeric keys of a phase's records, in order of first appearance. */
function numericKeys(records: readonly MetricsRecord[]): string[] {
  const present: string[] = [];
  for (const r of records) {
    for (const [k, v] of Object.entries(r)) {
      if (!NOT_PLOTTED(k) && typeof v === "number" && !present.includes(k)) present.push(k);
    }
  }
  return present;
}

/** The one value of `key` in `records` when there are ≥ 2, all finite and equal; else null. */
function constantValue(records: readonly MetricsRecord[], key: string): number | null {
  let value: number | null = null, count = 0;
  for (const r of records) {
    if (!(key in r)) continue;
    const v: MetricValue = r[key];
    if (typeof v !== "number" || !Number.isFinite(v)) return null;
    if (value !== null && v !== value) return null;
    value = v;
    count++;
  }
  return count >= 2 ? value : null;
}

/**
 * The metrics that kept one value through a phase and are therefore not plotted (see the
 * module doc); the report lists them with their value.
 *
 * @param metrics Per-step records.
 * @returns Constants per phase, phases in order of first appearance.
 * @example
 * ```ts
 * import { reportConstants } from "./report_plots.ts";
 * const c = reportConstants([
 *   { phase: "sft", step: 1, loss: 2, applied: 1 },
 *   { phase: "sft", step: 2, loss: 1, applied: 1 },
 * ]);
 * if (c.length !== 1 || c[0].key !== "applied" || c[0].value !== 1) throw new Error();
 * ```
 */
export function reportConstants(metrics: readonly MetricsRecord[]): ReportConstant[] {
  return choosePlots(metrics).constants;
}

/**
 * Chooses the report's plots from the metric names present (see the module doc).
 *
 * @param metrics Per-step records.
 * @returns Plots per phase, phases in order of first appearance.
 * @example
 * ```ts
 * import { reportPlots } from "./report_plots.ts";
 * const plots = reportPlots([
 *   { phase: "grpo", step: 1, loss: 0.1, "reward/checkAnswer": 1.5, applied: 1 },
 *   { phase: "grpo", step: 2, loss: 0.2, "reward/checkAnswer": 0, applied: 1 },
 * ]);
 * if (plots.map((p) => p.title).join() !== "Loss,Reward per function (mean)") throw new Error();
 * ```
 */
export function reportPlots(metrics: readonly MetricsRecord[]): ReportPlot[] {
  return choosePlots(metrics).plots;
}

/** The plots, and the constants left without one. */
function choosePlots(
  metrics: readonly MetricsRecord[],
): { plots: ReportPlot[]; constants: ReportConstant[] } {
  const plots: ReportPlot[] = [];
  const constants: ReportConstant[] = [];
  for (const [phase, records] of metricsByPhase(metrics)) {
    const present = numericKeys(records);
    const constant = new Map<string, number>();
    for (const k of present) {
      const value = constantValue(records, k);
      if (value !== null) constant.set(k, value);
    }
    const series = (key: string): PlotSeries => ({
      name: key,
      points: records.filter((r) => key in r).map((r): PlotPoint => {
        const v = r[key];
        return [r.step as number, typeof v === "number" && Number.isFinite(v) ? v : null];
      }),
    });
    const used = new Set<string>();
    const add = (title: string, keys: string[], smooth: boolean) => {
      if (keys.length === 0) return;
      keys.forEach((k) => used.add(k));
      if (keys.every((k) => constant.has(k))) {
        for (const key of keys) constants.push({ phase, key, value: constant.get(key)! });
        return;
      }
      const s = keys.map(series);
      const longest = Math.max(...s.map((x) => x.points.filter(([, y]) => y !== null).length));
      const smoothing = smooth ? smoothingFor(longest) : 0;
      plots.push({ phase, title, series: s, smoothing });
    };
    for (const spec of PLOT_SPECS) add(spec.title, spec.keys(present), spec.smooth);
    for (const k of present) if (!used.has(k)) add(k, [k], false);
  }
  return { plots, constants };
}
