import assert from "node:assert/strict";
import {
  formatDuration,
  formatMetric,
  formatProgress,
  formatRate,
  ProgressError,
  ProgressReporter,
  type ProgressReporterOptions,
} from "../rl/progress.ts";

/** A reporter writing into a string, with a clock the test moves by hand (seconds). */
function harness(options: Omit<ProgressReporterOptions, "clock">) {
  const clock = { now: 0 };
  const out: string[] = [];
  const bar = new ProgressReporter(
    { write: (t) => void out.push(t) },
    { ...options, clock: () => clock.now * 1000 },
  );
  return { bar, out, clock };
}

Deno.test("formatDuration() writes h:mm:ss and a placeholder when unknown", () => {
  const cases: [number | null, string][] = [
    [0, "0:00:00"],
    [59.4, "0:00:59"],
    [59.6, "0:01:00"],
    [187, "0:03:07"],
    [3725.4, "1:02:05"],
    [100_000, "27:46:40"],
    [null, "-:--:--"],
    [NaN, "-:--:--"],
    [Infinity, "-:--:--"],
    [-1, "-:--:--"],
  ];
  for (const [s, want] of cases) assert.equal(formatDuration(s), want, `seconds ${s}`);
});

Deno.test("formatRate() and formatMetric() are compact and stable", () => {
  const rates: [number, string][] = [
    [0, "0.0 tok/s"],
    [8.46, "8.5 tok/s"],
    [812.4, "812 tok/s"],
    [1234, "1.23k tok/s"],
    [99_950, "100k tok/s"],
    [2_500_000, "2.5M tok/s"],
    [NaN, "- tok/s"],
  ];
  for (const [r, want] of rates) assert.equal(formatRate(r), want);
  const metrics: [number, string][] = [
    [0, "0"],
    [1.23456, "1.235"],
    [-0.0123, "-0.0123"],
    [3e-6, "3.00e-6"],
    [123456, "1.23e+5"],
    [12345, "12350"], // four significant digits
    [NaN, "nan"],
    [-Infinity, "-inf"],
  ];
  for (const [v, want] of metrics) assert.equal(formatMetric(v), want, `value ${v}`);
});

Deno.test("formatProgress() renders every field in a fixed order", () => {
  const line = formatProgress({
    phase: "grpo",
    step: 25,
    total: 100,
    elapsedSeconds: 100,
    etaSeconds: 300,
    tokensPerSecond: 1234,
    loss: 0.0123,
    rewardMean: 1.5,
    kl: 0.00042,
    extra: { acc: 0.25, mode: "greedy" },
  });
  assert.equal(
    line,
    "grpo [#####---------------]  25/100  25% | elapsed 0:01:40 | ETA 0:05:00 | 1.23k tok/s" +
      " | loss 0.0123 | reward 1.5 | kl 4.20e-4 | acc 0.25 | mode greedy",
  );
});

Deno.test("formatProgress() leaves out missing fields and handles total 0 and no bar", () => {
  assert.equal(
    formatProgress({ phase: "sft", step: 0, total: 0 }),
    "sft [--------------------] 0/0   0%",
  );
  assert.equal(
    formatProgress({ phase: "sft", step: 7, total: 10, etaSeconds: null, loss: null }, {
      barWidth: 0,
    }),
    "sft  7/10  70%",
  );
  assert.equal(
    formatProgress({ phase: "sft", step: 12, total: 10 }, { barWidth: 4 }),
    "sft [####] 12/10 100%",
  );
});

Deno.test("ProgressReporter ETA ignores the warm-up step and follows an EMA of step times", () => {
  const { bar, clock } = harness({ phase: "sft", total: 100, emaAlpha: 0.5 });
  assert.equal(bar.state.etaSeconds, null, "unknown before the first step");
  clock.now = 60; // first step: 60 s (shader compilation)
  bar.update(1);
  assert.equal(bar.state.etaSeconds, 60 * 99, "only the warm-up sample so far");
  clock.now = 62; // 2 s per step: replaces the warm-up sample
  bar.update(2);
  assert.equal(bar.state.etaSeconds, 2 * 98);
  clock.now = 66; // 2 steps at once, 2 s per step
  bar.update(4);
  assert.equal(bar.state.etaSeconds, 2 * 96);
  clock.now = 67; // 1 s: EMA = 0.5 * 1 + 0.5 * 2 = 1.5
  bar.update(5);
  assert.equal(bar.state.etaSeconds, 1.5 * 95);
  assert.equal(bar.state.elapsedSeconds, 67);
  bar.update(100);
  assert.equal(bar.state.etaSeconds, 0, "done: nothing left");
});

Deno.test("ProgressReporter tokens/s is an EMA of tokens per interval; caller's value wins", () => {
  const { bar, clock } = harness({ phase: "grpo", total: 10, emaAlpha: 0.5, warmupUpdates: 0 });
  clock.now = 2;
  bar.update(1, { tokens: 1000 }); // 500 tok/s
  clock.now = 3;
  bar.update(2, { tokens: 1000 }); // 1000 tok/s → EMA 750
  assert.equal(bar.state.tokensPerSecond, 750);
  bar.update(2, { tokensPerSecond: 42 });
  assert.equal(bar.state.tokensPerSecond, 42);
});

Deno.test("ProgressReporter plain mode prints a line at most every intervalSeconds", () => {
  const { bar, out, clock } = harness({ phase: "sft", total: 6, intervalSeconds: 10 });
  for (let step = 1; step <= 6; step++) {
    clock.now = step * 4;
    bar.update(step, { loss: 1 / step });
  }
  // Lines at t = 4 (first), 16 (≥ 10 s later); t = 24 is only 8 s after 16.
  assert.deepEqual(out, [
    "sft [###-----------------] 1/6  17% | elapsed 0:00:04 | ETA 0:00:20 | loss 1\n",
    "sft [#############-------] 4/6  67% | elapsed 0:00:16 | ETA 0:00:08 | loss 0.25\n",
  ]);
  bar.finish({ loss: 0.125 });
  bar.finish();
  assert.equal(out.length, 3);
  assert.equal(
    out[2],
    "sft [####################] 6/6 100% | elapsed 0:00:24 | ETA 0:00:00 | loss 0.125\n",
  );
  assert.ok(out.every((t) => !t.includes("\r")));
});

Deno.test("ProgressReporter interactive mode redraws with \\r, pads, and finishes the line", () => {
  const { bar, out, clock } = harness({
    phase: "grpo",
    total: 2,
    interactive: true,
    barWidth: 0,
    redrawSeconds: 0,
  });
  clock.now = 1;
  bar.update(1, { rewardMean: 1.25, extra: { note: "long note here" } });
  clock.now = 2;
  bar.update(2, { rewardMean: 2, extra: {} });
  bar.finish();
  assert.equal(out.length, 3);
  assert.ok(out.every((t) => t.startsWith("\r")));
  const first = out[0].slice(1);
  const second = out[1].slice(1);
  assert.equal(second.length, first.length, "a shorter line is padded over the longer one");
  assert.match(second, /^grpo 2\/2 100% \| elapsed 0:00:02 \| ETA 0:00:00 \| reward 2 +$/);
  assert.ok(out[2].endsWith("\n") && !out[1].endsWith("\n"));
});

Deno.test("ProgressReporter.message() clears the bar, prints, and redraws it", () => {
  const { bar, out, clock } = harness({ phase: "sft", total: 4, interactive: true, barWidth: 0 });
  clock.now = 1;
  bar.update(1);
  bar.message("checkpoint saved");
  const width = out[0].length - 1;
  assert.equal(out[1], `\r${" ".repeat(width)}\rcheckpoint saved\n`);
  assert.equal(out[2], out[0]);
  const plain = harness({ phase: "sft", total: 4 });
  plain.bar.message("hello");
  assert.deepEqual(plain.out, ["hello\n"]);
});

Deno.test("ProgressReporter validates options and updates, naming the field", () => {
  const w = { write: () => {} };
  const bad: [Partial<ProgressReporterOptions>, string][] = [
    [{ total: -1 }, "total"],
    [{ total: 1.5 }, "total"],
    [{ emaAlpha: 0 }, "emaAlpha"],
    [{ intervalSeconds: -1 }, "intervalSeconds"],
    [{ warmupUpdates: 0.5 }, "warmupUpdates"],
    [{ startStep: -2 }, "startStep"],
    [{ phase: "" }, "phase"],
  ];
  for (const [patch, field] of bad) {
    assert.throws(
      () => new ProgressReporter(w, { phase: "sft", total: 10, ...patch }),
      (e: unknown) => e instanceof ProgressError && e.field === field && e.message.includes(field),
    );
  }
  const bar = new ProgressReporter(w, { phase: "sft", total: 10, startStep: 5 });
  assert.throws(
    () => bar.update(4),
    (e: unknown) => e instanceof ProgressError && e.field === "step",
  );
  assert.throws(() => bar.update(6, { tokens: -1 }), /tokens must be >= 0/);
});
