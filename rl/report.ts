/**
 * The run report: one self-contained `report.html` (inline CSS and SVG, no script, no network —
 * a Content-Security-Policy forbids fetching anything) with the evaluation results per phase,
 * training curves per phase, sample completions and the resolved config.
 *
 * Plots are chosen by the metric names present (see `METRIC_KEYS` in `metrics.ts`): `loss`,
 * `reward_mean`, `reward/<fn>` (one line per reward function), `kl_mean`,
 * `completion_length_mean|min|max`, `lr`, `grad_norm`, `tokens_per_second`; every other numeric
 * key gets its own plot under "Other metrics". A plot whose keys never occur in a phase is left
 * out. When a (phase, step) occurs more than once (a resumed run), the last record wins.
 *
 * @module
 */

import {
  barChartSvg,
  escapeXml,
  linePlotSvg,
  type PlotPoint,
  type PlotSeries,
} from "./svg_plot.ts";
import type { MetricsRecord } from "./metrics.ts";
import { formatDuration, formatMetric } from "./progress.ts";

/** One evaluation's summary; fractions in [0, 1] (`EvalSummary` from `scoring.ts` fits). */
export interface ReportEval {
  /** Share of exactly correct answers. */
  readonly accuracy: number;
  /** Share of answers within 10 %. */
  readonly partialAccuracy: number;
  /** Share of responses in the required format. */
  readonly formatAccuracy: number;
  /** Questions evaluated. */
  readonly n: number;
}

/** One sample completion shown in the report. */
export interface ReportSample {
  /** Phase it was sampled in, e.g. `"grpo"` or `"eval-sft"`. */
  readonly phase: string;
  /** Step it was sampled at. */
  readonly step: number;
  /** Prompt text (shown collapsed). */
  readonly prompt: string;
  /** Model output. */
  readonly completion: string;
  /** Total reward, if scored. */
  readonly reward?: number | null;
  /** Reference answer, if known. */
  readonly answer?: string | null;
}

/** Input of {@linkcode renderReport}. */
export interface ReportInput {
  /** Page title, e.g. `"webtune run 2026-05-01T12-00-00"`. */
  readonly title: string;
  /** The run's resolved config (JSON-able; shown pretty-printed). */
  readonly config: unknown;
  /** Per-step records, each with `phase` and `step` (as in `metrics.jsonl`). */
  readonly metrics: readonly MetricsRecord[];
  /** Evaluation summaries by phase, e.g. `{ base, sft, grpo }`. */
  readonly evals?: Readonly<Record<string, ReportEval>>;
  /** Sample completions, shown in the given order. */
  readonly samples?: readonly ReportSample[];
  /** Run start (ISO text, epoch ms or Date). */
  readonly startedAt?: string | number | Date;
  /** Run end (ISO text, epoch ms or Date). */
  readonly finishedAt?: string | number | Date;
}

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
    title: "Completion length (tokens)",
    keys: exact("completion_length_mean", "completion_length_min", "completion_length_max"),
    smooth: true,
  },
  { title: "Learning rate", keys: exact("lr"), smooth: false },
  { title: "Gradient norm", keys: exact("grad_norm"), smooth: true },
  { title: "Throughput (tokens/s)", keys: exact("tokens_per_second"), smooth: true },
];

/** Keys never plotted: record identity, wall time, and stds that the means' plots cover. */
const NOT_PLOTTED = (k: string): boolean =>
  k === "phase" || k === "step" || k === "time" || k.startsWith("reward_std/");

const SMOOTH_FROM_POINTS = 30;

/** EMA weight for `n` points: 0.6 for short runs, an effective window of ~n/20 for long ones. */
function smoothingFor(n: number): number {
  return n < SMOOTH_FROM_POINTS ? 0 : Math.min(0.995, Math.max(0.6, 1 - 20 / n));
}

/** Records of each phase, in order of first appearance, deduplicated by step (last wins). */
function byPhase(metrics: readonly MetricsRecord[]): Map<string, MetricsRecord[]> {
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

/**
 * Chooses the report's plots from the metric names present (see the module doc).
 *
 * @param metrics Per-step records.
 * @returns Plots per phase, phases in order of first appearance.
 * @example
 * ```ts
 * import { reportPlots } from "./report.ts";
 * const plots = reportPlots([
 *   { phase: "grpo", step: 1, loss: 0.1, "reward/checkAnswer": 1.5, "reward/checkNumbers": 0 },
 * ]);
 * if (plots.map((p) => p.title).join() !== "Loss,Reward per function (mean)") throw new Error();
 * ```
 */
export function reportPlots(metrics: readonly MetricsRecord[]): ReportPlot[] {
  const plots: ReportPlot[] = [];
  for (const [phase, records] of byPhase(metrics)) {
    const present: string[] = [];
    for (const r of records) {
      for (const [k, v] of Object.entries(r)) {
        if (!NOT_PLOTTED(k) && typeof v === "number" && !present.includes(k)) present.push(k);
      }
    }
    const series = (key: string): PlotSeries => ({
      name: key,
      points: records.map((r): PlotPoint => {
        const v = r[key];
        return [r.step as number, typeof v === "number" && Number.isFinite(v) ? v : null];
      }),
    });
    const used = new Set<string>();
    const add = (title: string, keys: string[], smooth: boolean) => {
      if (keys.length === 0) return;
      keys.forEach((k) => used.add(k));
      const s = keys.map(series);
      const longest = Math.max(...s.map((x) => x.points.filter(([, y]) => y !== null).length));
      const smoothing = smooth ? smoothingFor(longest) : 0;
      plots.push({ phase, title, series: s, smoothing });
    };
    for (const spec of PLOT_SPECS) add(spec.title, spec.keys(present), spec.smooth);
    for (const k of present) if (!used.has(k)) add(k, [k], false);
  }
  return plots;
}

function formatDate(value: string | number | Date | undefined): string | null {
  if (value === undefined) return null;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toISOString().replace(".000Z", "Z");
}

function configJson(config: unknown): string {
  try {
    const text = JSON.stringify(
      config,
      (_k, v) => (typeof v === "bigint" ? v.toString() : v),
      2,
    );
    return text ?? "null";
  } catch (e) {
    return `(config is not JSON-serialisable: ${(e as Error).message})`;
  }
}

const pct = (v: number): string => Number.isFinite(v) ? `${(v * 100).toFixed(1)} %` : "–";
const EVAL_ORDER = ["base", "sft", "grpo"];

function evalSection(evals: Readonly<Record<string, ReportEval>>): string {
  const phases = Object.keys(evals).sort((a, b) => {
    const ia = EVAL_ORDER.indexOf(a), ib = EVAL_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
  if (phases.length === 0) return `<p class="muted">No evaluation ran.</p>`;
  const chart = barChartSvg({
    title: "Accuracy per evaluation",
    barNames: ["accuracy", "partial (within 10 %)", "format"],
    groups: phases.map((p) => ({
      label: p,
      values: [evals[p].accuracy, evals[p].partialAccuracy, evals[p].formatAccuracy],
    })),
    yRange: [0, 1],
    formatValue: (v) => `${(v * 100).toFixed(0)}%`,
  });
  const rows = phases.map((p) => {
    const e = evals[p];
    return `<tr><td>${escapeXml(p)}</td><td class="num">${e.n}</td>` +
      `<td class="num">${pct(e.accuracy)}</td><td class="num">${pct(e.partialAccuracy)}</td>` +
      `<td class="num">${pct(e.formatAccuracy)}</td></tr>`;
  });
  return `<div class="plots">${chart}</div><table><thead><tr><th>after</th><th>n</th>` +
    `<th>accuracy</th><th>partial</th><th>format</th></tr></thead><tbody>${rows.join("")}` +
    `</tbody></table>`;
}

function summarySection(phases: Map<string, MetricsRecord[]>): string {
  if (phases.size === 0) return `<p class="muted">No training metrics were logged.</p>`;
  const cols = ["loss", "reward_mean", "kl_mean", "completion_length_mean"].filter((k) =>
    [...phases.values()].some((rs) => rs.some((r) => typeof r[k] === "number"))
  );
  const last = (rs: MetricsRecord[], k: string): string => {
    for (let i = rs.length - 1; i >= 0; i--) {
      const v = rs[i][k];
      if (typeof v === "number") return formatMetric(v);
    }
    return "–";
  };
  const rows = [...phases].map(([phase, rs]) =>
    `<tr><td>${escapeXml(phase)}</td><td class="num">${rs.length}</td>` +
    `<td class="num">${rs[0].step}–${rs[rs.length - 1].step}</td>` +
    cols.map((k) => `<td class="num">${last(rs, k)}</td>`).join("") + `</tr>`
  );
  return `<table><thead><tr><th>phase</th><th>records</th><th>steps</th>` +
    cols.map((k) => `<th>last ${escapeXml(k)}</th>`).join("") +
    `</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function curvesSection(plots: readonly ReportPlot[]): string {
  if (plots.length === 0) return `<p class="muted">No training metrics were logged.</p>`;
  let out = "";
  let phase: string | null = null;
  for (const p of plots) {
    if (p.phase !== phase) {
      if (phase !== null) out += `</div>`;
      out += `<h3>${escapeXml(p.phase)}</h3><div class="plots">`;
      phase = p.phase;
    }
    out += linePlotSvg({
      title: `${p.phase}: ${p.title}`,
      series: p.series,
      smoothing: p.smoothing,
    });
  }
  return out + `</div>`;
}

function samplesSection(samples: readonly ReportSample[]): string {
  if (samples.length === 0) return `<p class="muted">No samples were recorded.</p>`;
  const cell = (v: unknown): string =>
    v === null || v === undefined
      ? "–"
      : typeof v === "number"
      ? formatMetric(v)
      : escapeXml(String(v));
  const rows = samples.map((s) =>
    `<tr><td>${escapeXml(s.phase)}</td><td class="num">${cell(s.step)}</td>` +
    `<td class="num">${cell(s.reward)}</td><td>${cell(s.answer)}</td>` +
    `<td><details><summary>prompt</summary><pre>${escapeXml(s.prompt)}</pre></details>` +
    `<pre>${escapeXml(s.completion)}</pre></td></tr>`
  );
  return `<table class="samples"><thead><tr><th>phase</th><th>step</th><th>reward</th>` +
    `<th>answer</th><th>completion</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px;
  padding: 0 16px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 8px; text-transform: uppercase; color: #555; }
.muted { color: #777; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots svg { border: 1px solid #e2e2e2; border-radius: 4px; }
table { border-collapse: collapse; margin: 8px 0; background: #fff; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.samples td pre { max-width: 820px; max-height: 320px; overflow: auto; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; font-size: 12px; }
pre.config { background: #fff; border: 1px solid #ddd; padding: 8px; max-height: 600px;
  overflow: auto; }
summary { cursor: pointer; color: #0072b2; font-size: 12px; }
`;

/**
 * Renders the run report as a complete HTML document. Pure: same input, same output. All
 * text from the run (completions, prompts, config, phase and metric names) is HTML-escaped.
 *
 * @param input Title, config, metrics, evaluations, samples and run times.
 * @returns The HTML text (UTF-8; write it to `report.html`).
 * @example
 * ```ts
 * import { renderReport } from "./report.ts";
 * const html = renderReport({
 *   title: "demo",
 *   config: { preset: "demo" },
 *   metrics: [{ phase: "sft", step: 1, loss: 2 }, { phase: "sft", step: 2, loss: 1.5 }],
 *   evals: { base: { accuracy: 0, partialAccuracy: 0, formatAccuracy: 0, n: 10 } },
 *   samples: [{ phase: "grpo", step: 2, prompt: "1+1?", completion: "<answer>2</answer>" }],
 * });
 * if (!html.includes("&lt;answer&gt;2&lt;/answer&gt;")) throw new Error("not escaped");
 * ```
 */
export function renderReport(input: ReportInput): string {
  const phases = byPhase(input.metrics);
  const started = formatDate(input.startedAt);
  const finished = formatDate(input.finishedAt);
  const meta: string[] = [];
  if (started !== null) meta.push(`started ${escapeXml(started)}`);
  if (finished !== null) meta.push(`finished ${escapeXml(finished)}`);
  if (input.startedAt !== undefined && input.finishedAt !== undefined) {
    const ms = new Date(input.finishedAt).getTime() - new Date(input.startedAt).getTime();
    if (Number.isFinite(ms)) meta.push(`took ${formatDuration(ms / 1000)}`);
  }
  const title = escapeXml(input.title);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${title}</h1>
<p class="muted">${meta.length > 0 ? meta.join(" · ") : "webtune run report"}</p>
<h2>Summary</h2>
${summarySection(phases)}
<h2>Evaluation</h2>
${evalSection(input.evals ?? {})}
<h2>Training curves</h2>
${curvesSection(reportPlots(input.metrics))}
<h2>Sample completions</h2>
${samplesSection(input.samples ?? [])}
<h2>Config</h2>
<pre class="config">${escapeXml(configJson(input.config))}</pre>
</body>
</html>
`;
}
