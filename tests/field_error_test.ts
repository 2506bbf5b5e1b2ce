import assert from "node:assert/strict";
import { describeValue, FieldError } from "../base/field_error.ts";
import { generateDemoSet } from "../data/demo_set.ts";
import { DataOptionsError, DatasetFormatError } from "../data/errors.ts";
import { ConfigError, gemma3Config } from "../model/config.ts";
import { GenerateOptionsError } from "../model/generate.ts";
import { PeftError } from "../model/peft.ts";
import { SafetensorsError } from "../model/safetensors.ts";
import { adamwConfig, OptimizerError } from "../rl/adamw_config.ts";
import { CheckpointError } from "../rl/checkpoint.ts";
import { evalConfig, EvalError } from "../rl/eval_config.ts";
import { createGrpoConfig, GrpoConfigError } from "../rl/grpo_config.ts";
import { presetInput } from "../rl/presets.ts";
import { constantSchedule, ScheduleError } from "../rl/schedule.ts";
import { createTrainConfig, TrainConfigError } from "../rl/train_config.ts";

function thrown(run: () => unknown): FieldError {
  try {
    run();
  } catch (e) {
    assert.ok(e instanceof FieldError, `not a FieldError: ${e}`);
    return e;
  }
  throw new Error("nothing was thrown");
}

Deno.test("FieldError.mustBe() builds the usual message and keeps path, expected and got", () => {
  const e = ConfigError.mustBe("numHeads", "a positive integer", 0);
  assert.ok(e instanceof ConfigError && e instanceof FieldError && e instanceof Error);
  assert.equal(e.name, "ConfigError");
  assert.equal(e.message, "numHeads must be a positive integer, got 0");
  assert.deepEqual([e.path, e.field, e.expected, e.got], [
    "numHeads",
    "numHeads",
    "a positive integer",
    0,
  ]);
  assert.equal(FieldError.mustBe("x", "a string", 3, String).message, "x must be a string, got 3");
  assert.equal(describeValue({ a: "x".repeat(80) }).length, 60);
  assert.equal(new FieldError("p", "m").expected, "");
});

Deno.test("FieldError: each module's validation error extends it with path, expected and got", () => {
  const cases: [() => unknown, new (...a: never[]) => FieldError, string, string, unknown][] = [
    [() => gemma3Config({ numHeads: 0 }), ConfigError, "numHeads", "a positive integer", 0],
    [() => adamwConfig({ learningRate: 1, b1: 1 }), OptimizerError, "b1", "in [0, 1)", 1],
    [() => evalConfig({ topP: 2 }), EvalError, "topP", "in (0, 1]", 2],
    [() => createGrpoConfig({ numGenerations: 1 }), GrpoConfigError, "numGenerations", ">= 2", 1],
    [() => constantSchedule(NaN), ScheduleError, "value", "a finite number", NaN],
    [
      () => generateDemoSet({ testSize: -1 }),
      DataOptionsError,
      "testSize",
      "a non-negative integer",
      -1,
    ],
  ];
  for (const [run, kind, path, expected, got] of cases) {
    const e = thrown(run);
    assert.ok(e instanceof kind, `${path}: ${e.name}`);
    assert.equal(e.name, kind.name);
    assert.deepEqual([e.path, e.expected, e.got], [path, expected, got], e.message);
    assert.ok(e.message.startsWith(path), e.message);
  }
});

Deno.test("FieldError: the training config re-throws a nested error under its dotted path", () => {
  const input = presetInput("demo");
  (input.grpo as Record<string, unknown>).numGenerations = 1;
  const e = thrown(() => createTrainConfig(input));
  assert.ok(e instanceof TrainConfigError);
  assert.equal(e.message, "grpo.numGenerations must be >= 2, got 1");
  assert.deepEqual([e.path, e.field, e.expected, e.got], [
    "grpo.numGenerations",
    "grpo.numGenerations",
    ">= 2",
    1,
  ]);
  const top = thrown(() => createTrainConfig(3));
  assert.deepEqual([top.path, top.expected, top.got], ["", "an object", 3]);
  assert.equal(top.message, "the config must be an object, got 3");
});

Deno.test("FieldError: file errors name file:line or file:tensor as their path", () => {
  const f = new DatasetFormatError("expected a JSON object", "a.jsonl", 3);
  assert.deepEqual([f.path, f.file, f.line, f.message], [
    "a.jsonl:3",
    "a.jsonl",
    3,
    "a.jsonl:3: expected a JSON object",
  ]);
  assert.equal(new DatasetFormatError("bad parquet", "a.parquet").path, "a.parquet");
  const s = new SafetensorsError("unknown_dtype", "m.safetensors", "w", "dtype X");
  assert.deepEqual([s.path, s.code, s.tensor, s.message], [
    "m.safetensors:w",
    "unknown_dtype",
    "w",
    'm.safetensors: tensor "w": dtype X',
  ]);
  const p = new PeftError("config", "a/adapter_config.json", null, "bad");
  assert.deepEqual([p.path, p.name, p.message], [
    "a/adapter_config.json",
    "PeftError",
    "a/adapter_config.json: bad",
  ]);
  const c = new CheckpointError("invalid_input", "trainer.x", "NaN cannot be stored");
  assert.deepEqual([c.path, c.code, c.message], [
    "trainer.x",
    "invalid_input",
    "trainer.x: NaN cannot be stored",
  ]);
  const g = new GenerateOptionsError("maxNewTokens", "must be an integer ≥ 0, got -1");
  assert.deepEqual([g.path, g.field, g.message], [
    "maxNewTokens",
    "maxNewTokens",
    "maxNewTokens: must be an integer ≥ 0, got -1",
  ]);
  for (const e of [f, s, p, c, g]) assert.ok(e instanceof FieldError);
});
