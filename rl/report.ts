/**
 * The run report: one self-contained `report.html` (inline CSS and SVG, no script, no network —
 * a Content-Security-Policy forbids fetching anything) with the evaluation results per phase,
 * training curves per phase (the periodic evaluation of `eval.everySteps` and the GPU memory
 * among them), the metrics that stayed constant, the latest sample completions of each phase
 * (with each reward function's value and whether the answer was right) and the resolved config.
 *
 * Which plots are drawn is decided in `report_plots.ts` (by the metric names present; constant
 * metrics such as `applied` get a one-line note instead of a plot).
 *
 * @module
 */

import { formatBytes } from "../kernels/errors.ts";
import { barChartSvg, escapeXml, linePlotSvg } from "./svg_plot.ts";
import type { MetricsRecord } from "./metrics.ts";
import { formatDuration, formatMetric } from "./progress.ts";
import {
  metricsByPhase,
  type ReportConstant,
  reportConstants,
  type ReportPlot,
  reportPlots,
} from "./report_plots.ts";

export * from "./report_plots.ts";

/** Samples per phase the report shows (the latest ones; `samples.jsonl` keeps all). */
export const REPORT_SAMPLES_PER_PHASE = 20;

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
  /** Whether the answer was right (`scoreResponse(completion, answer).correct`), if scored. */
  readonly correct?: boolean | null;
  /** Each reward function's value for this completion, by function name (GRPO samples). */
  readonly rewards?: Readonly<Record<string, number>> | null;
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
  /**
   * Sample completions in the order they were kept; the report shows the latest
   * `samplesPerPhase` of each phase.
   */
  readonly samples?: readonly ReportSample[];
  /** Samples shown per phase (default {@linkcode REPORT_SAMPLES_PER_PHASE}). */
  readonly samplesPerPhase?: number;
  /** Run start (ISO text, epoch ms or Date). */
  readonly startedAt?: string | number | Date;
  /** Run end (ISO text, epoch ms or Date). */
  readonly finishedAt?: string | number | Date;
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

/** A constant's value as the report notes it (GPU bytes in KiB/MiB/GiB). */
function constantText(c: ReportConstant): string {
  return c.key.startsWith("gpu_bytes_") ? formatBytes(c.value) : formatMetric(c.value);
}

function curvesSection(
  phases: readonly string[],
  plots: readonly ReportPlot[],
  constants: readonly ReportConstant[],
): string {
  if (phases.length === 0) return `<p class="muted">No training metrics were logged.</p>`;
  let out = "";
  for (const phase of phases) {
    out += `<h3>${escapeXml(phase)}</h3>`;
    const own = plots.filter((p) => p.phase === phase);
    if (own.length > 0) {
      out += `<div class="plots">` + own.map((p) =>
        linePlotSvg({ title: `${p.phase}: ${p.title}`, series: p.series, smoothing: p.smoothing })
      ).join("") + `</div>`;
    }
    const fixed = constants.filter((c) => c.phase === phase);
    if (fixed.length > 0) {
      out += `<p class="muted constants">Constant, not plotted: ` +
        fixed.map((c) => `${escapeXml(c.key)} = ${constantText(c)}`).join(" · ") + `</p>`;
    }
  }
  return out;
}

/**
 * The latest `perPhase` samples of each phase, in their original order.
 *
 * @param samples Samples in the order they were kept.
 * @param perPhase Samples kept per phase (default {@linkcode REPORT_SAMPLES_PER_PHASE}).
 * @returns The kept samples.
 * @example
 * ```ts
 * import { latestSamples } from "./report.ts";
 * const s = [1, 2, 3].map((step) => ({ phase: "grpo", step, prompt: "p", completion: "c" }));
 * if (latestSamples(s, 2).map((x) => x.step).join() !== "2,3") throw new Error();
 * ```
 */
export function latestSamples<T extends Pick<ReportSample, "phase">>(
  samples: readonly T[],
  perPhase: number = REPORT_SAMPLES_PER_PHASE,
): T[] {
  const seen = new Map<string, number>();
  const keep: boolean[] = new Array(samples.length).fill(false);
  for (let i = samples.length - 1; i >= 0; i--) {
    const n = seen.get(samples[i].phase) ?? 0;
    if (n < perPhase) keep[i] = true;
    seen.set(samples[i].phase, n + 1);
  }
  return samples.filter((_, i) => keep[i]);
}

function samplesSection(samples: readonly ReportSample[], perPhase: number): string {
  if (samples.length === 0) return `<p class="muted">No samples were recorded.</p>`;
  const cell = (v: unknown): string =>
    v === null || v === undefined
      ? "–"
      : typeof v === "number"
      ? formatMetric(v)
      : escapeXml(String(v));
  const right = (v: boolean | null | undefined): string =>
    v === true
      ? `<td class="right">yes</td>`
      : v === false
      ? `<td class="wrong">no</td>`
      : `<td>–</td>`;
  const rewards = (r: ReportSample["rewards"]): string =>
    r ? Object.entries(r).map(([k, v]) => `${escapeXml(k)} ${cell(v)}`).join("<br/>") : "–";
  const totals = new Map<string, number>();
  for (const s of samples) totals.set(s.phase, (totals.get(s.phase) ?? 0) + 1);
  let out = "";
  const shown = latestSamples(samples, perPhase);
  for (const [phase, total] of totals) {
    const own = shown.filter((s) => s.phase === phase);
    const note = own.length < total
      ? ` <span class="muted">(latest ${own.length} of ${total})</span>`
      : "";
    const rows = own.map((s) =>
      `<tr><td class="num">${cell(s.step)}</td>${right(s.correct)}` +
      `<td class="num">${cell(s.reward)}</td><td class="rewards">${rewards(s.rewards)}</td>` +
      `<td>${cell(s.answer)}</td>` +
      `<td><details><summary>prompt</summary><pre>${escapeXml(s.prompt)}</pre></details>` +
      `<pre>${escapeXml(s.completion)}</pre></td></tr>`
    );
    out += `<h3>${escapeXml(phase)}${note}</h3>` +
      `<table class="samples"><thead><tr><th>step</th><th>right</th><th>reward</th>` +
      `<th>per function</th><th>answer</th><th>completion</th></tr></thead>` +
      `<tbody>${rows.join("")}</tbody></table>`;
  }
  return out;
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
td.right { color: #009e73; font-weight: 600; }
td.wrong { color: #d55e00; }
td.rewards { font-size: 12px; white-space: nowrap; }
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
  const phases = metricsByPhase(input.metrics);
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
${curvesSection([...phases.keys()], reportPlots(input.metrics), reportConstants(input.metrics))}
<h2>Sample completions</h2>
${samplesSection(input.samples ?? [], input.samplesPerPhase ?? REPORT_SAMPLES_PER_PHASE)}
<h2>Config</h2>
<pre class="config">${escapeXml(configJson(input.config))}</pre>
</body>
</html>
`;
}
