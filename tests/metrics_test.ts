import assert from "node:assert/strict";
import { join } from "node:path";
import { rewardMetrics } from "../rl/grpo_math.ts";
import {
  MemoryLineSink,
  METRIC_KEYS,
  MetricsError,
  MetricsLogger,
  parseMetricsJsonl,
  rewardRecord,
  serializeMetrics,
} from "../rl/metrics.ts";
import { FileLineSink, readMetricsFile } from "../rl/metrics_fs.ts";

Deno.test("serializeMetrics() writes NaN and ±Infinity as JSON null", () => {
  const line = serializeMetrics({ a: NaN, b: Infinity, c: -Infinity, d: -0.5, e: "x", f: true });
  assert.equal(line, '{"a":null,"b":null,"c":null,"d":-0.5,"e":"x","f":true}');
  assert.deepEqual(JSON.parse(line), { a: null, b: null, c: null, d: -0.5, e: "x", f: true });
});

Deno.test("serializeMetrics() rejects nested and undefined values, naming the key", () => {
  const bad = [{ nested: { x: 1 } }, { list: [1] }, { missing: undefined }];
  for (const record of bad) {
    assert.throws(
      () => serializeMetrics(record as never),
      (e: unknown) => e instanceof MetricsError && e.message.includes(Object.keys(record)[0]),
    );
  }
});

Deno.test("MetricsLogger.log() lines round-trip through parseMetricsJsonl()", async () => {
  const sink = new MemoryLineSink();
  let now = 1_700_000_000_000;
  const logger = new MetricsLogger(sink, { clock: () => now++ });
  const steps: Record<string, number | string>[] = [
    { loss: 2.25, lr: 3e-6, grad_norm: 0.125 },
    { loss: NaN, lr: 1e-30, note: 'quote " and\nnewline' },
    { "reward/matchFormatExactly": 3, reward_mean: -0.5, kl_mean: 1.5e-4 },
  ];
  for (const [i, values] of steps.entries()) await logger.log(i < 2 ? "sft" : "grpo", i, values);
  assert.equal(sink.lines.length, 3);
  assert.ok(sink.lines.every((l) => !l.includes("\n")), "one physical line per record");
  const back = parseMetricsJsonl(sink.text());
  assert.deepEqual(back, [
    { phase: "sft", step: 0, time: 1_700_000_000_000, loss: 2.25, lr: 3e-6, grad_norm: 0.125 },
    { phase: "sft", step: 1, time: 1_700_000_000_001, loss: null, lr: 1e-30, note: steps[1].note },
    {
      phase: "grpo",
      step: 2,
      time: 1_700_000_000_002,
      "reward/matchFormatExactly": 3,
      reward_mean: -0.5,
      kl_mean: 1.5e-4,
    },
  ]);
  assert.deepEqual(logger.records(), back);
});

Deno.test("MetricsLogger.log() keeps call order with a slow async sink", async () => {
  const lines: string[] = [];
  const delays = [30, 0, 10, 0, 5];
  let call = 0;
  const sink = {
    async append(line: string): Promise<void> {
      await new Promise((r) => setTimeout(r, delays[call++ % delays.length]));
      lines.push(line);
    },
  };
  const logger = new MetricsLogger(sink, { clock: null, keepRecords: false });
  for (let step = 0; step < 10; step++) void logger.log("grpo", step, { loss: step });
  await logger.flush();
  assert.deepEqual(lines.map((l) => JSON.parse(l).step), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(logger.records(), []);
});

Deno.test("MetricsLogger.log() rejects a bad phase, step or reserved key", () => {
  const logger = new MetricsLogger(new MemoryLineSink(), { clock: null });
  assert.throws(() => logger.log("", 0, {}), /phase must be a non-empty string/);
  assert.throws(() => logger.log("sft", -1, {}), /step must be an integer >= 0, got -1/);
  assert.throws(() => logger.log("sft", 1.5, {}), /step must be an integer >= 0, got 1.5/);
  for (const key of ["phase", "step", "time"]) {
    assert.throws(() => logger.log("sft", 0, { [key]: 1 }), new RegExp(`reserved key ${key}`));
  }
});

Deno.test("MetricsLogger.flush() rejects with the sink's error, even when log() was not awaited", async () => {
  let n = 0;
  const logger = new MetricsLogger({
    append(): void {
      if (n++ === 1) throw new Error("disk full");
    },
  }, { clock: null });
  void logger.log("sft", 0, { loss: 1 });
  void logger.log("sft", 1, { loss: 1 });
  void logger.log("sft", 2, { loss: 1 });
  await assert.rejects(logger.flush(), /disk full/);
  assert.equal(n, 2, "lines after the failed one are not written");
});

Deno.test("parseMetricsJsonl() skips blank lines and a truncated last line", () => {
  const text = '{"phase":"sft","step":0}\n\n{"phase":"sft","step":1}\n{"phase":"sf';
  assert.deepEqual(parseMetricsJsonl(text), [
    { phase: "sft", step: 0 },
    { phase: "sft", step: 1 },
  ]);
  assert.throws(
    () => parseMetricsJsonl(text, { allowTruncatedTail: false }),
    /line 4 is not valid JSON/,
  );
});

Deno.test("parseMetricsJsonl() names a malformed or non-object line", () => {
  assert.throws(() => parseMetricsJsonl('{"step":0}\n{oops\n{"step":2}\n'), /line 2 is not valid/);
  assert.throws(() => parseMetricsJsonl('{"step":0}\n[1,2]\n'), /line 2 must be a JSON object/);
});

Deno.test("rewardRecord() flattens rewardMetrics() into reward/<fn> keys", () => {
  // 2 groups of G = 2: totals [3, 3 | 0, 1.5], so one group of two has zero std.
  const m = rewardMetrics([3, 3, 0, 1.5], {
    matchFormatExactly: [3, 3, 0, 0],
    checkNumbers: [0, 0, 0, 1.5],
  }, 2);
  const r = rewardRecord(m);
  assert.equal(r[METRIC_KEYS.rewardMean], 1.875);
  assert.equal(r["reward/matchFormatExactly"], 1.5);
  assert.equal(r["reward_std/matchFormatExactly"], 1.5);
  assert.equal(r["reward/checkNumbers"], 0.375);
  assert.equal(r[METRIC_KEYS.zeroStdGroupFraction], 0.5);
  assert.ok(
    Math.abs(r.reward_std - Math.sqrt((1.125 ** 2 * 2 + 1.875 ** 2 + 0.375 ** 2) / 4)) < 1e-12,
  );
});

Deno.test("FileLineSink appends across reopen; readMetricsFile() reads it back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "webtune_metrics_" });
  try {
    const path = join(dir, "metrics.jsonl");
    let sink = await FileLineSink.open(path);
    let logger = new MetricsLogger(sink, { clock: null });
    await logger.log("sft", 0, { loss: 2 });
    await logger.log("sft", 1, { loss: Infinity });
    // Flushed: another reader sees both lines before the sink is closed.
    assert.equal((await Deno.readTextFile(path)).split("\n").length, 3);
    sink.close();
    sink.close();
    await assert.rejects(sink.append("{}"), /after close/);

    sink = await FileLineSink.open(path, { sync: true });
    logger = new MetricsLogger(sink, { clock: null });
    await logger.log("grpo", 0, { reward_mean: 1.5 });
    sink.close();
    assert.deepEqual(await readMetricsFile(path), [
      { phase: "sft", step: 0, loss: 2 },
      { phase: "sft", step: 1, loss: null },
      { phase: "grpo", step: 0, reward_mean: 1.5 },
    ]);

    sink = await FileLineSink.open(path, { truncate: true });
    await sink.append('{"phase":"sft","step":9}');
    sink.close();
    assert.equal(await Deno.readTextFile(path), '{"phase":"sft","step":9}\n');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
