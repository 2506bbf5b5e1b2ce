import assert from "node:assert/strict";
import { barChartSvg, escapeXml, formatTick, linePlotSvg, niceTicks } from "../rl/svg_plot.ts";
import type { MetricsRecord } from "../rl/metrics.ts";
import {
  latestSamples,
  renderReport,
  reportConstants,
  type ReportInput,
  reportPlots,
  type ReportSample,
} from "../rl/report.ts";
import { rng } from "./_helpers.ts";

const SVG_NS = "http://www.w3.org/2000/svg";
const VOID = new Set(["meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"]);

/**
 * Minimal well-formedness check (no DOM parser is available offline): every tag is closed in
 * order, void elements aside; no stray `<`; every `&` starts an entity; quoted attributes.
 * Returns the number of elements seen.
 */
function assertWellFormed(html: string): number {
  const body = html.replace(/^<!DOCTYPE html>\s*/, "");
  const stack: string[] = [];
  let elements = 0;
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  for (let i = 0; i < body.length;) {
    const c = body[i];
    if (c === "<") {
      tag.lastIndex = i;
      const m = tag.exec(body);
      assert.ok(m, `malformed tag at ${i}: ${body.slice(i, i + 60)}`);
      const [all, closing, name, , selfClosing] = m;
      if (closing) {
        assert.equal(stack.pop(), name, `</${name}> at ${i} closes the wrong element`);
      } else {
        elements++;
        if (!selfClosing && !VOID.has(name)) stack.push(name);
      }
      i += all.length;
    } else if (c === "&") {
      const m = /^&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);/.exec(body.slice(i, i + 12));
      assert.ok(m, `bare & at ${i}: ${body.slice(i, i + 20)}`);
      i += m[0].length;
    } else {
      assert.notEqual(c, ">", `stray > at ${i}: ${body.slice(i - 30, i + 10)}`);
      i++;
    }
  }
  assert.deepEqual(stack, [], "unclosed elements");
  return elements;
}

/** A realistic run: SFT then GRPO with four reward functions, evals and samples. */
function demoInput(): ReportInput {
  const r = rng(7);
  const metrics: MetricsRecord[] = [];
  for (let s = 1; s <= 60; s++) {
    metrics.push({
      phase: "sft",
      step: s,
      time: 1_700_000_000_000 + s * 1000,
      loss: 3 * Math.exp(-s / 20) + 0.3 + 0.1 * r(),
      lr: s <= 6 ? (3e-4 * s) / 6 : 3e-4 * 0.5 * (1 + Math.cos((Math.PI * (s - 6)) / 54)),
      grad_norm: 1 + r(),
      tokens_per_second: 900 + 100 * r(),
    });
  }
  for (let s = 1; s <= 80; s++) {
    const fmt = Math.min(3, (3 * s) / 50 + r());
    metrics.push({
      phase: "grpo",
      step: s,
      loss: s === 40 ? NaN : 0.02 * (r() - 0.5),
      reward_mean: fmt + s / 40 + r(),
      "reward/matchFormatExactly": fmt,
      "reward/matchFormatApproximately": fmt / 1.2 - 1,
      "reward/checkAnswer": s / 40 - 0.5 + r(),
      "reward/checkNumbers": (s / 80) * 1.5 * r(),
      "reward_std/checkAnswer": r(),
      kl_mean: s === 1 ? 0 : 1e-4 * s * (1 + r()),
      completion_length_mean: 120 - s / 2 + 10 * r(),
      completion_length_max: 200,
      clip_fraction: 0.01 * r(),
      lr: 3e-6,
      mode: "train",
    });
  }
  return {
    title: "webtune demo run <2026>",
    config: { preset: "demo", grpo: { numGenerations: 4, beta: 0.08 }, note: "a & b < c" },
    metrics,
    evals: {
      grpo: { accuracy: 0.62, partialAccuracy: 0.7, formatAccuracy: 0.99, n: 100 },
      base: { accuracy: 0, partialAccuracy: 0.01, formatAccuracy: 0, n: 100 },
      sft: { accuracy: 0.41, partialAccuracy: 0.5, formatAccuracy: 0.95, n: 100 },
    },
    samples: [
      {
        phase: "grpo",
        step: 80,
        prompt: "What is 6 * 12?",
        completion: "<reasoning>6*12 = 72</reasoning>\n<answer>72</answer>",
        reward: 9,
        answer: "72",
      },
      {
        phase: "grpo",
        step: 80,
        prompt: "Q <b>bold</b>",
        completion: "<script>alert('x')</script> & see https://example.com",
        reward: -1.5,
      },
    ],
    startedAt: "2026-05-01T12:00:00Z",
    finishedAt: Date.parse("2026-05-01T12:14:05Z"),
  };
}

Deno.test("reportPlots() picks plots by the metric names present, per phase", () => {
  const plots = reportPlots(demoInput().metrics);
  assert.deepEqual(plots.map((p) => `${p.phase}: ${p.title}`), [
    "sft: Loss",
    "sft: Learning rate",
    "sft: Gradient norm",
    "sft: Throughput (tokens/s)",
    "grpo: Loss",
    "grpo: Mean reward",
    "grpo: Reward per function (mean)",
    "grpo: KL to reference (mean)",
    "grpo: Completion length (tokens)",
    // grpo's lr is 3e-6 at every step: a constant gets a note, not a plot
    "grpo: clip_fraction",
  ]);
  assert.deepEqual(
    reportConstants(demoInput().metrics).map((c) => `${c.phase}: ${c.key} = ${c.value}`),
    ["grpo: lr = 0.000003"],
  );
  // A constant line in a plot that is drawn anyway stays (context beside the others).
  const lengths = plots.find((p) => p.title.startsWith("Completion length"))!;
  assert.deepEqual(lengths.series.map((s) => s.name), [
    "completion_length_mean",
    "completion_length_max",
  ]);
  const perFn = plots.find((p) => p.title.startsWith("Reward per function"))!;
  assert.deepEqual(perFn.series.map((s) => s.name), [
    "reward/matchFormatExactly",
    "reward/matchFormatApproximately",
    "reward/checkAnswer",
    "reward/checkNumbers",
  ]);
  assert.equal(perFn.smoothing, 0.75, "80 noisy points: EMA weight 1 - 20/80");
  assert.equal(plots.find((p) => p.title === "Learning rate")!.smoothing, 0, "lr never smoothed");
  const loss = plots.find((p) => p.phase === "grpo" && p.title === "Loss")!;
  assert.equal(loss.series[0].points[39][1], null, "NaN loss is a gap");
});

Deno.test("reportPlots() keeps the last record of a repeated step (resumed run)", () => {
  const plots = reportPlots([
    { phase: "sft", step: 1, loss: 3 },
    { phase: "sft", step: 2, loss: 2 },
    { phase: "sft", step: 2, loss: 1.5 },
    { phase: "sft", step: 3, loss: 1 },
    { step: 4, loss: 0 }, // no phase: ignored
  ]);
  assert.equal(plots.length, 1);
  assert.deepEqual(plots[0].series[0].points, [[1, 3], [2, 1.5], [3, 1]]);
  assert.equal(plots[0].smoothing, 0, "3 points: no smoothing");
  const long = Array.from({ length: 4000 }, (_, i) => ({ phase: "grpo", step: i, loss: i % 7 }));
  assert.equal(reportPlots(long)[0].smoothing, 0.995, "long runs: window ~n/20, capped");
});

Deno.test("renderReport() draws one <svg> per present plot plus the accuracy chart", () => {
  const input = demoInput();
  const html = renderReport(input);
  const svgs = html.match(/<svg /g) ?? [];
  assert.equal(svgs.length, reportPlots(input.metrics).length + 1);
  for (const p of reportPlots(input.metrics)) {
    assert.ok(html.includes(`aria-label="${escapeXml(`${p.phase}: ${p.title}`)}"`), p.title);
  }
  assert.ok(html.includes(`aria-label="Accuracy per evaluation"`));
  // Eval table in base, sft, grpo order with percentages.
  const order = ["base", "sft", "grpo"].map((p) =>
    html.indexOf(`<tr><td>${p}</td><td class="num">100`)
  );
  assert.ok(order.every((i) => i > 0) && order[0] < order[1] && order[1] < order[2], `${order}`);
  assert.ok(html.includes(`<td class="num">62.0 %</td>`));
  assert.ok(html.includes("took 0:14:05"));
});

Deno.test("renderReport() omits plots whose metrics are missing", () => {
  const html = renderReport({
    title: "t",
    config: {},
    metrics: [{ phase: "grpo", step: 1, kl_mean: 0.1 }, { phase: "grpo", step: 2, kl_mean: null }],
    evals: {},
    samples: [],
  });
  assert.equal((html.match(/<svg /g) ?? []).length, 1);
  assert.ok(html.includes("KL to reference"));
  for (const absent of ["Loss", "Mean reward", "Reward per function", "Learning rate"]) {
    assert.ok(!html.includes(`grpo: ${absent}`), absent);
  }
  assert.ok(html.includes("No evaluation ran."));
});

Deno.test("renderReport() references no network resource besides the SVG namespace", () => {
  const html = renderReport({ ...demoInput(), samples: [] });
  const urls = html.match(/https?:\/\/[^\s"'<>]+/g) ?? [];
  assert.ok(urls.length > 0);
  assert.deepEqual([...new Set(urls)], [SVG_NS]);
  assert.ok(!/<(script|link|img|iframe|object|embed)\b/i.test(html));
  assert.ok(!/\b(src|href)=/.test(html.replace(/xmlns="[^"]*"/g, "")));
  assert.ok(html.includes(`http-equiv="Content-Security-Policy" content="default-src 'none'`));
});

Deno.test("renderReport() escapes completions, prompts, answers, config and title", () => {
  const input = demoInput();
  const html = renderReport({
    ...input,
    samples: [...input.samples!, {
      phase: "<i>p</i>",
      step: 1,
      prompt: "</pre><script>",
      completion: "x",
      answer: "\"'&",
    }],
  });
  assert.ok(!html.includes("<script"), "no script element");
  assert.ok(html.includes("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; see"));
  assert.ok(html.includes("Q &lt;b&gt;bold&lt;/b&gt;"));
  assert.ok(html.includes("&lt;/pre&gt;&lt;script&gt;"));
  assert.ok(html.includes("&lt;i&gt;p&lt;/i&gt;") && !html.includes("<i>"));
  assert.ok(html.includes("&quot;&#39;&amp;"));
  assert.ok(html.includes("&quot;note&quot;: &quot;a &amp; b &lt; c&quot;"));
  assert.ok(html.includes("<title>webtune demo run &lt;2026&gt;</title>"));
  assertWellFormed(html);
});

Deno.test("renderReport() renders with empty metrics, evals and samples", () => {
  for (
    const input of [
      { title: "empty", config: null, metrics: [] },
      { title: "empty", config: undefined, metrics: [], evals: {}, samples: [] },
    ]
  ) {
    const html = renderReport(input);
    assert.ok(html.startsWith("<!DOCTYPE html>") && html.trimEnd().endsWith("</html>"));
    assert.ok(!html.includes("<svg"));
    assert.ok(html.includes("No training metrics were logged."));
    assert.ok(html.includes("No samples were recorded."));
    assert.ok(html.includes(`<pre class="config">null</pre>`));
    assertWellFormed(html);
  }
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.match(renderReport({ title: "c", config: cyclic, metrics: [] }), /not JSON-serialisable/);
});

Deno.test("renderReport() example is well-formed and written to a file", async () => {
  const html = renderReport(demoInput());
  assert.equal(html, renderReport(demoInput()), "pure: same input, same output");
  const elements = assertWellFormed(html);
  assert.ok(elements > 300, `elements: ${elements}`);
  // WEBTUNE_REPORT_OUT keeps the example, e.g. for a headless-browser screenshot.
  const path = Deno.env.get("WEBTUNE_REPORT_OUT") ?? await Deno.makeTempFile({ suffix: ".html" });
  await Deno.writeTextFile(path, html);
  assert.equal(await Deno.readTextFile(path), html);
  if (!Deno.env.get("WEBTUNE_REPORT_OUT")) await Deno.remove(path);
});

Deno.test("linePlotSvg() breaks lines at gaps and draws lone points as dots", () => {
  const svg = linePlotSvg({
    title: "t",
    series: [
      { name: "a", points: [[0, 1], [1, 2], [2, NaN], [3, 4], [4, null], [5, 1], [6, 2]] },
      { name: "single", points: [[3, 3]] },
      { name: "empty", points: [[0, null]] },
    ],
  });
  const paths = svg.match(/<path d="([^"]*)"/g) ?? [];
  assert.equal(paths.length, 1);
  assert.equal((paths[0].match(/M/g) ?? []).length, 2, "two runs: [0,1] and [5,6]");
  assert.equal((svg.match(/<circle /g) ?? []).length, 2, "x=3 of a, and the single point");
  assert.ok(svg.includes(">single</text>") && svg.includes(">empty</text>"), "legend lists all");
  assertWellFormed(svg);
  const one = linePlotSvg({ title: "one", series: [{ name: "s", points: [[7, 0.5]] }] });
  assert.equal((one.match(/<circle /g) ?? []).length, 1);
  assert.ok(!one.includes("NaN") && !one.includes("Infinity"));
  const none = linePlotSvg({ title: "none", series: [{ name: "s", points: [] }] });
  assert.ok(none.includes(">no data</text>"));
});

Deno.test("linePlotSvg() smoothing draws raw and smoothed lines; bad smoothing throws", () => {
  const points = Array.from({ length: 50 }, (_, i): [number, number] => [i, i % 2]);
  const svg = linePlotSvg({ title: "s", series: [{ name: "x", points }], smoothing: 0.6 });
  assert.equal((svg.match(/<path /g) ?? []).length, 2);
  assert.ok(svg.includes(`stroke-opacity="0.25"`));
  assert.throws(() => linePlotSvg({ title: "s", series: [], smoothing: 1 }), /smoothing/);
});

Deno.test("niceTicks() and formatTick() give round, covering ticks", () => {
  assert.deepEqual(niceTicks(0.13, 0.97), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(-2.5, 2.5), [-3, -2, -1, 0, 1, 2, 3]);
  assert.deepEqual(niceTicks(1, 3738, 7), [0, 1000, 2000, 3000, 4000]);
  assert.deepEqual(niceTicks(5, 5), [4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6]); // widened ±10 %
  assert.deepEqual(niceTicks(0, 0), [-1, -0.5, 0, 0.5, 1]);
  const lr = niceTicks(0, 3e-6);
  assert.ok(lr[0] === 0 && lr[lr.length - 1] >= 3e-6 && lr.length <= 8);
  assert.throws(() => niceTicks(1, 0), RangeError);
  assert.equal(formatTick(0.30000000000000004, 0.1), "0.3");
  assert.equal(formatTick(3e-6, 5e-7), "3e-6");
  assert.equal(formatTick(2500, 500), "2500");
});

Deno.test("barChartSvg() draws a bar per finite value with its label", () => {
  const svg = barChartSvg({
    title: "acc",
    barNames: ["a", "b"],
    groups: [{ label: "base", values: [0.5, null] }, { label: "grpo", values: [1, 0.25] }],
    yRange: [0, 1],
    formatValue: (v) => `${v * 100}%`,
  });
  assert.equal((svg.match(/<rect /g) ?? []).length, 1 + 3, "background + 3 bars");
  for (const label of ["50%", "100%", "25%", ">base<", ">grpo<"]) assert.ok(svg.includes(label));
  assertWellFormed(svg);
});

Deno.test("reportPlots() draws no constant metric; renderReport() notes its value", () => {
  const metrics: MetricsRecord[] = [1, 2, 3].map((step) => ({
    phase: "sft",
    step,
    loss: 1 / step,
    applied: 1,
    lr: 0.001,
    grad_norm: step === 2 ? null : 0.5, // a gap is not a constant
  }));
  assert.deepEqual(reportPlots(metrics).map((p) => p.title), ["Loss", "Gradient norm"]);
  assert.deepEqual(reportConstants(metrics).map((c) => `${c.key}=${c.value}`), [
    "lr=0.001",
    "applied=1",
  ]);
  const html = renderReport({ title: "t", config: {}, metrics });
  assert.ok(!html.includes(`aria-label="sft: applied"`) && !html.includes("sft: Learning rate"));
  assert.ok(html.includes("Constant, not plotted: lr = 0.001 · applied = 1"));
  assertWellFormed(html);
  // One record is no evidence of a constant: a phase that just started is plotted.
  assert.deepEqual(reportPlots([metrics[0]]).map((p) => p.title), [
    "Loss",
    "Learning rate",
    "Gradient norm",
    "applied",
  ]);
  assert.deepEqual(reportConstants([metrics[0]]), []);
});

Deno.test("reportPlots() joins the sparse periodic-evaluation rows and plots GPU bytes", () => {
  const metrics: MetricsRecord[] = Array.from({ length: 6 }, (_, i) => ({
    phase: "grpo",
    step: i + 1,
    loss: i,
    gpu_bytes_in_use: 1000 + 10 * i, // a leak
    gpu_bytes_allocated: 4096,
    ...((i + 1) % 2 === 0
      ? {
        eval_accuracy: i / 10,
        eval_partial_accuracy: i / 8,
        eval_format_accuracy: 0.5 + i / 20,
      }
      : {}),
  }));
  const plots = reportPlots(metrics);
  const periodic = plots.find((p) => p.title === "Periodic evaluation (eval.everySteps)")!;
  assert.deepEqual(periodic.series.map((s) => s.name), [
    "eval_accuracy",
    "eval_partial_accuracy",
    "eval_format_accuracy",
  ]);
  assert.deepEqual(periodic.series[0].points, [[2, 0.1], [4, 0.3], [6, 0.5]]);
  const svg = linePlotSvg({ title: "p", series: periodic.series });
  assert.equal((svg.match(/<path d="M[^"M]*"/g) ?? []).length, 3, "one unbroken line each");
  const memory = plots.find((p) => p.title === "GPU memory (bytes)")!;
  assert.deepEqual(memory.series.map((s) => s.name), ["gpu_bytes_in_use", "gpu_bytes_allocated"]);
  assert.deepEqual(reportConstants(metrics), []);
  const flat = metrics.map((r) => ({ ...r, gpu_bytes_in_use: 3 * 2 ** 20 }));
  assert.ok(!reportPlots(flat).some((p) => p.title === "GPU memory (bytes)"));
  assert.ok(
    renderReport({ title: "t", config: {}, metrics: flat }).includes(
      "gpu_bytes_in_use = 3.00 MiB · gpu_bytes_allocated = 4.00 KiB",
    ),
  );
});

Deno.test("renderReport() shows each sample's rewards and correctness, the latest 20 per phase", () => {
  const samples: ReportSample[] = [];
  for (let step = 1; step <= 25; step++) {
    samples.push({
      phase: "grpo",
      step,
      prompt: `q${step}`,
      completion: `<answer>${step}</answer>`,
      answer: "7",
      reward: step === 7 ? 9 : 0,
      correct: step === 7,
      rewards: { matchFormatExactly: step === 7 ? 3 : 0, "checkAnswer<x>": step === 7 ? 3 : -1 },
    });
    if (step % 10 === 0) {
      samples.push({ phase: "sft-eval", step: 0, prompt: "p", completion: "c", correct: false });
    }
  }
  assert.deepEqual(
    latestSamples(samples, 20).filter((s) => s.phase === "grpo").map((s) => s.step),
    Array.from({ length: 20 }, (_, i) => i + 6),
  );
  assert.equal(latestSamples(samples, 20).length, 22, "both sft-eval samples are kept");
  const html = renderReport({ title: "t", config: {}, metrics: [], samples });
  assertWellFormed(html);
  assert.ok(html.includes('grpo <span class="muted">(latest 20 of 25)</span>'));
  assert.ok(!html.includes("q5<") && html.includes("q6<") && html.includes("q25<"));
  assert.equal((html.match(/<td class="right">yes<\/td>/g) ?? []).length, 1, "step 7 was right");
  assert.equal((html.match(/<td class="wrong">no<\/td>/g) ?? []).length, 19 + 2);
  assert.ok(html.includes("matchFormatExactly 3<br/>checkAnswer&lt;x&gt; 3"));
  assert.equal(
    renderReport({ title: "t", config: {}, metrics: [], samples, samplesPerPhase: 3 })
      .match(/<tr><td class="num">/g)?.length,
    3 + 2,
  );
});
