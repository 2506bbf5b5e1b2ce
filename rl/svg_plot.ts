/**
 * Minimal inline-SVG charts for the run report: a line plot (axes, nice ticks, several series,
 * legend, gaps for missing values, optional EMA smoothing) and a grouped bar chart. Output is
 * a self-contained `<svg>` string with no external references, safe to embed in HTML.
 *
 * @module
 */

/** One (x, y) point; `y` null, NaN or ±Infinity is a gap in the line. */
export type PlotPoint = readonly [x: number, y: number | null];

/** One line of a {@linkcode linePlotSvg}. */
export interface PlotSeries {
  /** Legend label. */
  readonly name: string;
  /** Points, in any order (sorted by x when drawn). */
  readonly points: readonly PlotPoint[];
}

/** Options of {@linkcode linePlotSvg}. */
export interface LinePlotOptions {
  /** Title drawn above the plot (also the accessible label). */
  readonly title: string;
  /** Lines to draw; series without finite points are listed in the legend only. */
  readonly series: readonly PlotSeries[];
  /** Total width in px (default 560). */
  readonly width?: number;
  /** Height of the plotting area in px, without title and legend (default 220). */
  readonly height?: number;
  /** Label under the x axis (default "step"). */
  readonly xLabel?: string;
  /**
   * TensorBoard-style debiased EMA weight in [0, 1): when > 0, raw values are drawn faintly
   * and the smoothed line on top (default 0, no smoothing).
   */
  readonly smoothing?: number;
}

/** One group of bars in a {@linkcode barChartSvg}. */
export interface BarGroup {
  /** Label under the group. */
  readonly label: string;
  /** One value per entry of `BarChartOptions.barNames`; null draws nothing. */
  readonly values: readonly (number | null)[];
}

/** Options of {@linkcode barChartSvg}. */
export interface BarChartOptions {
  /** Title drawn above the chart. */
  readonly title: string;
  /** Legend names of the bars inside every group. */
  readonly barNames: readonly string[];
  /** The groups, left to right. */
  readonly groups: readonly BarGroup[];
  /** Fixed y range `[min, max]` (default: nice range over the values and 0). */
  readonly yRange?: readonly [number, number];
  /** Formats a value written above its bar (default {@linkcode formatTick}-like). */
  readonly formatValue?: (v: number) => string;
  /** Total width in px (default 560). */
  readonly width?: number;
  /** Height of the plotting area in px (default 200). */
  readonly height?: number;
}

/** Colour-blind-friendly categorical palette (Okabe–Ito, then Tableau fill-ins). */
export const PALETTE: readonly string[] = Object.freeze([
  "#0072b2",
  "#d55e00",
  "#009e73",
  "#cc79a7",
  "#e69f00",
  "#56b4e9",
  "#7f7f7f",
  "#8c564b",
  "#bcbd22",
  "#000000",
]);

const MARGIN = { left: 64, right: 16, top: 30, bottom: 40 };
const FONT = `font-family="system-ui, sans-serif"`;
const LEGEND_ROW = 18;

/**
 * Escapes text for XML/HTML content and attribute values.
 *
 * @param text Any text.
 * @returns The text with `& < > " '` replaced by entities.
 * @example
 * ```ts
 * import { escapeXml } from "./svg_plot.ts";
 * if (escapeXml("<a & 'b'>") !== "&lt;a &amp; &#39;b&#39;&gt;") throw new Error("bad");
 * ```
 */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}
const ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

function niceNumber(x: number, round: boolean): number {
  const exp = Math.floor(Math.log10(x));
  const f = x / 10 ** exp;
  let nf: number;
  if (round) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nf * 10 ** exp;
}

/**
 * "Nice" tick values (multiples of 1, 2 or 5 × 10ᵏ) covering `[min, max]`; the first tick is
 * ≤ min and the last ≥ max. A zero-width range is widened first.
 *
 * @param min Smallest value (finite).
 * @param max Largest value (finite, ≥ min).
 * @param maxTicks Roughly how many ticks (default 5).
 * @returns Ascending ticks, at least two.
 * @example
 * ```ts
 * import { niceTicks } from "./svg_plot.ts";
 * if (niceTicks(0.13, 0.97).join() !== "0,0.2,0.4,0.6,0.8,1") throw new Error("bad");
 * ```
 */
export function niceTicks(min: number, max: number, maxTicks = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max) || max < min) {
    throw new RangeError(`niceTicks needs finite min <= max, got ${min}, ${max}`);
  }
  if (max === min) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const step = niceNumber(niceNumber(max - min, false) / Math.max(1, maxTicks - 1), true);
  const lo = Math.floor(min / step + 1e-9);
  const hi = Math.ceil(max / step - 1e-9);
  const ticks: number[] = [];
  for (let i = lo; i <= hi; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

/**
 * Formats a tick value compactly: plain decimals for ordinary magnitudes, exponent notation
 * below 1e-3 or from 1e6 on.
 *
 * @param v Value.
 * @param step Tick spacing, which sets the number of decimals (default: 4 significant digits).
 * @returns E.g. `"0.25"`, `"1200"`, `"3e-6"`.
 */
export function formatTick(v: number, step?: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e6) {
    return v.toExponential(step === undefined ? 3 : 2).replace(/\.?0+e/, "e").replace("e+", "e");
  }
  if (step === undefined) return String(Number(v.toPrecision(4)));
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

const fmt = (v: number): string => (Math.round(v * 10) / 10).toString();

function textWidth(text: string, size: number): number {
  return text.length * size * 0.6;
}

/** Lays legend entries out in rows; returns the SVG and its height. */
function legend(names: readonly string[], x0: number, y0: number, width: number): [string, number] {
  let x = x0, y = y0 + 12, out = "";
  names.forEach((name, i) => {
    const w = 22 + textWidth(name, 12) + 14;
    if (x > x0 && x + w > width) {
      x = x0;
      y += LEGEND_ROW;
    }
    const c = PALETTE[i % PALETTE.length];
    out += `<line x1="${fmt(x)}" y1="${fmt(y - 4)}" x2="${fmt(x + 16)}" y2="${fmt(y - 4)}" ` +
      `stroke="${c}" stroke-width="2.5"/>` +
      `<text x="${fmt(x + 21)}" y="${fmt(y)}" font-size="12" ${FONT}>${escapeXml(name)}</text>`;
    x += w;
  });
  return [out, names.length === 0 ? 0 : y - y0 + 8];
}

function finite(y: number | null): y is number {
  return y !== null && Number.isFinite(y);
}

/** Debiased EMA over the finite values; gaps stay gaps. */
function smooth(points: readonly PlotPoint[], weight: number): PlotPoint[] {
  let ema = 0, n = 0;
  return points.map(([x, y]) => {
    if (!finite(y)) return [x, null];
    ema = ema * weight + (1 - weight) * y;
    n++;
    return [x, ema / (1 - weight ** n)];
  });
}

/** Path data with a new subpath after each gap, plus the isolated points (drawn as dots). */
function pathData(
  points: readonly PlotPoint[],
  sx: (x: number) => number,
  sy: (y: number) => number,
): { d: string; dots: [number, number][] } {
  let d = "", run: [number, number][] = [];
  const dots: [number, number][] = [];
  const close = () => {
    if (run.length === 1) dots.push(run[0]);
    else if (run.length > 1) {
      d += "M" + run.map(([x, y]) => `${fmt(x)} ${fmt(y)}`).join("L");
    }
    run = [];
  };
  for (const [x, y] of points) {
    if (finite(y) && Number.isFinite(x)) run.push([sx(x), sy(y)]);
    else close();
  }
  close();
  return { d, dots };
}

function frame(title: string, width: number, totalHeight: number): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="${width}" ` +
    `height="${fmt(totalHeight)}" viewBox="0 0 ${width} ${fmt(totalHeight)}" role="img" ` +
    `aria-label="${escapeXml(title)}"><title>${escapeXml(title)}</title>` +
    `<rect x="0" y="0" width="${width}" height="${fmt(totalHeight)}" fill="#ffffff"/>` +
    `<text x="${MARGIN.left}" y="18" font-size="14" font-weight="600" ${FONT}>` +
    `${escapeXml(title)}</text>`;
}

function yAxis(ticks: number[], sy: (y: number) => number, x0: number, x1: number): string {
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
  return ticks.map((t) =>
    `<line x1="${x0}" y1="${fmt(sy(t))}" x2="${x1}" y2="${fmt(sy(t))}" stroke="#e5e5e5"/>` +
    `<text x="${x0 - 6}" y="${fmt(sy(t) + 4)}" font-size="11" text-anchor="end" ${FONT}>` +
    `${formatTick(t, step)}</text>`
  ).join("");
}

/**
 * Renders a line plot as an `<svg>` element. Missing values (null, NaN, ±Infinity) break the
 * line; a run of a single point is drawn as a dot, so a one-point series is visible.
 *
 * @param options Title, series and sizes.
 * @returns The `<svg>…</svg>` markup.
 * @example
 * ```ts
 * import { linePlotSvg } from "./svg_plot.ts";
 * const svg = linePlotSvg({ title: "loss", series: [{ name: "sft", points: [[0, 2], [1, 1.5]] }] });
 * if (!svg.startsWith("<svg")) throw new Error("bad");
 * ```
 */
export function linePlotSvg(options: LinePlotOptions): string {
  const width = options.width ?? 560;
  const height = options.height ?? 220;
  const smoothing = options.smoothing ?? 0;
  if (!(smoothing >= 0 && smoothing < 1)) {
    throw new RangeError(`smoothing must be in [0, 1), got ${smoothing}`);
  }
  const series = options.series.map((s) => ({
    name: s.name,
    points: [...s.points].sort((a, b) => a[0] - b[0]),
  }));
  const xs: number[] = [], ys: number[] = [];
  for (const s of series) {
    for (const [x, y] of s.points) {
      if (finite(y) && Number.isFinite(x)) {
        xs.push(x);
        ys.push(y);
      }
    }
  }
  const plotRight = width - MARGIN.right;
  const plotBottom = MARGIN.top + height;
  const [legendSvg, legendHeight] = legend(
    series.map((s) => s.name),
    MARGIN.left,
    plotBottom + MARGIN.bottom - 4,
    plotRight,
  );
  const total = plotBottom + MARGIN.bottom + legendHeight;
  let out = frame(options.title, width, total);
  if (xs.length === 0) {
    out += `<text x="${fmt((MARGIN.left + plotRight) / 2)}" y="${fmt(MARGIN.top + height / 2)}" ` +
      `font-size="13" text-anchor="middle" fill="#777" ${FONT}>no data</text>`;
    return out + legendSvg + "</svg>";
  }
  const yTicks = niceTicks(Math.min(...ys), Math.max(...ys));
  let xMin = Math.min(...xs), xMax = Math.max(...xs);
  if (xMin === xMax) [xMin, xMax] = [xMin - 1, xMax + 1];
  const integerX = xs.every(Number.isInteger);
  let xTicks = niceTicks(xMin, xMax, 7).filter((t) => t >= xMin && t <= xMax);
  if (integerX) xTicks = xTicks.filter(Number.isInteger);
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  const sx = (x: number) => MARGIN.left + ((x - xMin) / (xMax - xMin)) * (plotRight - MARGIN.left);
  const sy = (y: number) => plotBottom - ((y - y0) / (y1 - y0)) * height;

  out += yAxis(yTicks, sy, MARGIN.left, plotRight);
  const xStep = xTicks.length > 1 ? xTicks[1] - xTicks[0] : 1;
  for (const t of xTicks) {
    out += `<line x1="${fmt(sx(t))}" y1="${plotBottom}" x2="${fmt(sx(t))}" ` +
      `y2="${plotBottom + 4}" stroke="#333"/>` +
      `<text x="${fmt(sx(t))}" y="${plotBottom + 17}" font-size="11" text-anchor="middle" ` +
      `${FONT}>${formatTick(t, xStep)}</text>`;
  }
  out += `<line x1="${MARGIN.left}" y1="${plotBottom}" x2="${plotRight}" y2="${plotBottom}" ` +
    `stroke="#333"/><line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" ` +
    `y2="${plotBottom}" stroke="#333"/>` +
    `<text x="${fmt((MARGIN.left + plotRight) / 2)}" y="${plotBottom + 32}" font-size="11" ` +
    `text-anchor="middle" fill="#555" ${FONT}>${escapeXml(options.xLabel ?? "step")}</text>`;

  // With smoothing, every raw line goes below every smoothed line.
  const layers: [PlotPoint[], string, number, number][] = [];
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    if (smoothing > 0) layers.push([s.points, color, 1, 0.25]);
  });
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    if (smoothing > 0) layers.push([smooth(s.points, smoothing), color, 2, 1]);
    else layers.push([s.points, color, 1.8, 1]);
  });
  for (const [pts, color, strokeWidth, opacity] of layers) {
    const { d, dots } = pathData(pts, sx, sy);
    if (d !== "") {
      out += `<path d="${d}" fill="none" stroke="${color}" stroke-width="${strokeWidth}" ` +
        `stroke-opacity="${opacity}" stroke-linejoin="round"/>`;
    }
    for (const [x, y] of dots) {
      out += `<circle cx="${fmt(x)}" cy="${fmt(y)}" r="3" fill="${color}" ` +
        `fill-opacity="${opacity}"/>`;
    }
  }
  return out + legendSvg + "</svg>";
}

/**
 * Renders a grouped bar chart as an `<svg>` element, each bar labelled with its value.
 *
 * @param options Title, bar names, groups and sizes.
 * @returns The `<svg>…</svg>` markup.
 * @example
 * ```ts
 * import { barChartSvg } from "./svg_plot.ts";
 * const svg = barChartSvg({
 *   title: "accuracy",
 *   barNames: ["accuracy"],
 *   groups: [{ label: "base", values: [0.1] }, { label: "grpo", values: [0.6] }],
 *   yRange: [0, 1],
 * });
 * if (!svg.includes("<rect")) throw new Error("bad");
 * ```
 */
export function barChartSvg(options: BarChartOptions): string {
  const width = options.width ?? 560;
  const height = options.height ?? 200;
  const fmtValue = options.formatValue ?? ((v: number) => formatTick(v));
  const values = options.groups.flatMap((g) => g.values).filter(finite);
  const [lo, hi] = options.yRange ??
    [Math.min(0, ...values), Math.max(0, ...values) || 1];
  const yTicks = niceTicks(lo, hi);
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  const plotRight = width - MARGIN.right;
  const plotBottom = MARGIN.top + height;
  const sy = (y: number) => plotBottom - ((y - y0) / (y1 - y0)) * height;
  const [legendSvg, legendHeight] = legend(
    options.barNames,
    MARGIN.left,
    plotBottom + 24,
    plotRight,
  );
  let out = frame(options.title, width, plotBottom + 24 + legendHeight + 4);
  out += yAxis(yTicks, sy, MARGIN.left, plotRight);
  const groupWidth = (plotRight - MARGIN.left) / Math.max(1, options.groups.length);
  const barWidth = Math.min(48, (groupWidth * 0.8) / Math.max(1, options.barNames.length));
  options.groups.forEach((g, gi) => {
    const center = MARGIN.left + groupWidth * (gi + 0.5);
    const start = center - (barWidth * options.barNames.length) / 2;
    g.values.forEach((v, bi) => {
      if (!finite(v)) return;
      const x = start + bi * barWidth;
      const top = sy(Math.max(v, 0)), bottom = sy(Math.min(v, 0));
      out += `<rect x="${fmt(x + 1)}" y="${fmt(top)}" width="${fmt(barWidth - 2)}" ` +
        `height="${fmt(Math.max(0.5, bottom - top))}" fill="${PALETTE[bi % PALETTE.length]}"/>` +
        `<text x="${fmt(x + barWidth / 2)}" y="${fmt(top - 3)}" font-size="10" ` +
        `text-anchor="middle" ${FONT}>${escapeXml(fmtValue(v))}</text>`;
    });
    out += `<text x="${fmt(center)}" y="${plotBottom + 16}" font-size="12" ` +
      `text-anchor="middle" ${FONT}>${escapeXml(g.label)}</text>`;
  });
  out += `<line x1="${MARGIN.left}" y1="${fmt(sy(Math.max(0, y0)))}" x2="${plotRight}" ` +
    `y2="${fmt(sy(Math.max(0, y0)))}" stroke="#333"/>`;
  return out + legendSvg + "</svg>";
}
