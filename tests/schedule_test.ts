import assert from "node:assert/strict";
import {
  constantSchedule,
  linearSchedule,
  ScheduleError,
  warmupCosineDecaySchedule,
} from "../rl/schedule.ts";

/** Relative closeness for schedule values worked out by hand. */
function near(got: number, want: number, what: string): void {
  const tol = 1e-12 * Math.max(Math.abs(want), 1e-30);
  assert.ok(Math.abs(got - want) <= tol, `${what}: got ${got}, want ${want}`);
}

Deno.test("warmupCosineDecaySchedule() matches optax on the recipe (peak 3e-6, 10 % of 3738)", () => {
  // Tunix recipe: WARMUP_STEPS = 0.1 * MAX_STEPS = 373.8, decay_steps = MAX_STEPS = 3738, so the
  // cosine runs over 3738 − 373.8 = 3364.2 updates (decay_steps includes the warmup).
  const lr = warmupCosineDecaySchedule({
    initValue: 0,
    peakValue: 3e-6,
    warmupSteps: 0.1 * 3738,
    decaySteps: 3738,
    endValue: 0,
  });
  assert.equal(lr(0), 0);
  near(lr(1), 3e-6 / 373.8, "count 1");
  near(lr(100), 3e-6 * 100 / 373.8, "count 100");
  near(lr(373), 3e-6 * 373 / 373.8, "count 373 (last warmup count)");
  // count 374 is 0.2 into the cosine: 3e-6 · ½(1 + cos(0.2π / 3364.2)).
  near(lr(374), 3e-6 * 0.5 * (1 + Math.cos(0.2 * Math.PI / 3364.2)), "count 374");
  assert.ok(lr(374) < 3e-6 && lr(374) > 2.99999997e-6);
  // halfway through the cosine is count 373.8 + 1682.1 = 2055.9; count 2056 is 0.1 past it.
  near(lr(2056), 1.5e-6 * (1 - Math.sin(0.1 * Math.PI / 3364.2)), "count 2056");
  near(lr(2056), 1.4998599254213917e-6, "count 2056 literal");
  near(lr(3000), 3.4233595684499756e-7, "count 3000 literal");
  assert.ok(lr(3737) > 0 && lr(3737) < 1e-12, `count 3737: ${lr(3737)}`);
  assert.equal(lr(3738), 0);
  assert.equal(lr(10_000), 0);
});

Deno.test("warmupCosineDecaySchedule() hits peak, half-peak and end at integer boundaries", () => {
  const lr = warmupCosineDecaySchedule({
    initValue: 0,
    peakValue: 3e-6,
    warmupSteps: 374,
    decaySteps: 3738,
  });
  assert.equal(lr(0), 0);
  near(lr(187), 1.5e-6, "half warmup");
  near(lr(374), 3e-6, "peak");
  near(lr(374 + 1682), 1.5e-6, "half cosine (3364 / 2 = 1682)");
  assert.equal(lr(3738), 0);
});

Deno.test("warmupCosineDecaySchedule() honours initValue, endValue (alpha) and exponent", () => {
  const base = { initValue: 1e-7, peakValue: 3e-6, warmupSteps: 10, decaySteps: 110 };
  const a = warmupCosineDecaySchedule({ ...base, endValue: 3e-7 });
  near(a(0), 1e-7, "init");
  near(a(5), 1e-7 + (3e-6 - 1e-7) * 0.5, "mid warmup");
  // alpha = end / peak = 0.1: halfway the value is peak·(0.9·½ + 0.1).
  near(a(60), 3e-6 * (0.9 * 0.5 + 0.1), "mid cosine with alpha");
  near(a(110), 3e-7, "end value");
  near(a(500), 3e-7, "held at end value");
  const b = warmupCosineDecaySchedule({ ...base, exponent: 2 });
  near(b(60), 3e-6 * 0.25, "exponent 2 squares the cosine factor");
  const c = warmupCosineDecaySchedule({ ...base, warmupSteps: 0 });
  near(c(0), 3e-6, "no warmup starts at peak");
  near(c(55), 1.5e-6, "no warmup: half of 110");
});

Deno.test("warmupCosineDecaySchedule() rejects decaySteps ≤ warmupSteps and bad fields by name", () => {
  const bad = (opts: Parameters<typeof warmupCosineDecaySchedule>[0], field: string) => {
    assert.throws(
      () => warmupCosineDecaySchedule(opts),
      (e: unknown) => e instanceof ScheduleError && e.field === field,
    );
  };
  bad({ initValue: 0, peakValue: 1, warmupSteps: 10, decaySteps: 10 }, "decaySteps");
  bad({ initValue: 0, peakValue: 1, warmupSteps: -1, decaySteps: 10 }, "warmupSteps");
  bad({ initValue: NaN, peakValue: 1, warmupSteps: 1, decaySteps: 10 }, "initValue");
  bad(
    { initValue: 0, peakValue: 1, warmupSteps: 1, decaySteps: 10, exponent: Infinity },
    "exponent",
  );
  const lr = warmupCosineDecaySchedule({
    initValue: 0,
    peakValue: 1,
    warmupSteps: 1,
    decaySteps: 2,
  });
  assert.throws(() => lr(-1), ScheduleError);
});

Deno.test("linearSchedule() matches optax linear_schedule, including transitionBegin", () => {
  const s = linearSchedule({ initValue: 1, endValue: 0.01, transitionSteps: 100 });
  assert.equal(s(0), 1);
  near(s(50), 0.505, "halfway");
  near(s(100), 0.01, "end");
  near(s(1000), 0.01, "held");
  const d = linearSchedule({
    initValue: 1,
    endValue: 0.01,
    transitionSteps: 100,
    transitionBegin: 5,
  });
  assert.equal(d(0), 1);
  assert.equal(d(5), 1);
  near(d(6), 1 - 0.99 / 100, "one past begin");
  near(d(105), 0.01, "begin + steps");
  // optax: transition_steps ≤ 0 gives a constant schedule at init_value.
  const flat = linearSchedule({ initValue: 2, endValue: 0, transitionSteps: 0 });
  assert.equal(flat(0), 2);
  assert.equal(flat(50), 2);
});

Deno.test("constantSchedule() returns its value at every count and rejects non-finite values", () => {
  const s = constantSchedule(3e-6);
  assert.equal(s(0), 3e-6);
  assert.equal(s(12345), 3e-6);
  assert.throws(() => constantSchedule(NaN), ScheduleError);
});
