import assert from "node:assert/strict";
import {
  mergeConfigInput,
  parseSetOverride,
  presetConfig,
  presetInput,
  resolveTrainConfig,
} from "../rl/presets.ts";
import {
  checkContextLengths,
  createTrainConfig,
  grpoTotalSteps,
  optimizerSchedule,
  requireInputs,
  sftTotalSteps,
  type TrainConfig,
  TrainConfigError,
  usesEvalQuestions,
} from "../rl/train_config.ts";

function isDeepFrozen(v: unknown, path = "config"): string | null {
  if (v === null || typeof v !== "object") return null;
  if (!Object.isFrozen(v)) return path;
  for (const [k, x] of Object.entries(v)) {
    const bad = isDeepFrozen(x, `${path}.${k}`);
    if (bad) return bad;
  }
  return null;
}

function errorOf(fn: () => unknown): TrainConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TrainConfigError) return e;
    throw e;
  }
  throw new Error("expected a TrainConfigError");
}

Deno.test("presetConfig() gemma3-1b-gsm8k holds the seed recipe's numbers", () => {
  const c = presetConfig("gemma3-1b-gsm8k");
  assert.equal(c.model.path, null);
  assert.equal(c.model.hubRepoId, "google/gemma-3-1b-it");
  assert.deepEqual(c.lora, {
    rank: 32,
    alpha: 32,
    targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  });
  const g = c.grpo;
  assert.deepEqual(
    [g.numGenerations, g.numIterations, g.beta, g.epsilon, g.epsilonHigh, g.temperature],
    [4, 1, 0.08, 0.2, 0.2, 0.9],
  );
  assert.deepEqual([g.topK, g.topP, g.maxPromptLength, g.maxNewTokens], [50, 1, 256, 768]);
  assert.deepEqual([g.batchSize, g.numBatches, g.microBatchSize], [1, 3738, 2]);
  assert.equal(grpoTotalSteps(g), 3738);
  for (const opt of [c.grpo.optimizer, c.sft.optimizer]) {
    assert.deepEqual(opt, {
      learningRate: 3e-6,
      schedule: "warmup-cosine",
      warmupFraction: 0.1,
      endLearningRate: 0,
      b1: 0.9,
      b2: 0.99,
      eps: 1e-8,
      weightDecay: 0.1,
      maxGradNorm: 0.1,
    });
  }
  assert.equal(c.sft.microBatchSize, 2);
  assert.equal(c.eval.numQuestions, 100);
  assert.equal(c.eval.temperature, 0);
  assert.deepEqual(c.checkpoint, { everySteps: 500, keep: 4 });
});

Deno.test("presetConfig() demo is a from-scratch full-parameter run on the demo set", () => {
  const c = presetConfig("demo");
  assert.equal(c.model.path, "demo");
  assert.equal(c.lora, null);
  assert.equal(c.demoData.difficulty, "easy");
  assert.deepEqual(
    [c.sft.data, c.grpo.data, c.eval.data, c.sft.steps, c.sft.microBatchSize],
    ["demo", "demo", "demo", 500, 16],
  );
  assert.deepEqual(
    [c.model.demo?.hiddenSize, c.model.demo?.intermediateSize, c.model.demo?.headDim],
    [64, 192, 16],
  );
  assert.equal(c.grpo.numBatches, 50);
  assert.equal(c.eval.numQuestions, 200);
  assert.equal(c.eval.maxNewTokens, 32);
  assert.doesNotThrow(() => requireInputs(c));
});

Deno.test("createTrainConfig() freezes the whole tree", () => {
  for (const name of ["demo", "gemma3-1b-gsm8k"]) {
    assert.equal(isDeepFrozen(presetConfig(name)), null, name);
  }
});

Deno.test("createTrainConfig() reads back its own JSON (config.json round trip)", () => {
  for (const name of ["demo", "gemma3-1b-gsm8k"]) {
    const c = presetConfig(name);
    assert.deepEqual(createTrainConfig(JSON.parse(JSON.stringify(c))), c);
  }
});

Deno.test("createTrainConfig() errors name the field's dotted path", () => {
  const cases: [string, string, string, string][] = [
    [
      "demo",
      "grpo.numGenerations=1",
      "grpo.numGenerations",
      "grpo.numGenerations must be >= 2, got 1",
    ],
    ["demo", "grpo.beta=-0.5", "grpo.beta", "grpo.beta must be >= 0, got -0.5"],
    ["demo", "grpo.topP=0", "grpo.topP", "grpo.topP must be in (0, 1], got 0"],
    ["demo", "grpo.epsilon=1", "grpo.epsilon", "grpo.epsilon must be in (0, 1), got 1"],
    ["demo", 'grpo.aggregation="sum"', "grpo.aggregation", "grpo.aggregation must be one of"],
    ["demo", "grpo.batchSize=0", "grpo.batchSize", "grpo.batchSize must be >= 1, got 0"],
    ["demo", "sft.optimizer.b2=1", "sft.optimizer.b2", "sft.optimizer.b2 must be in [0, 1), got 1"],
    [
      "demo",
      "grpo.optimizer.maxGradNorm=0",
      "grpo.optimizer.maxGradNorm",
      "grpo.optimizer.maxGradNorm must be null or finite and > 0, got 0",
    ],
    [
      "demo",
      "sft.optimizer.warmupFraction=1",
      "sft.optimizer.warmupFraction",
      "sft.optimizer.warmupFraction must be in [0, 1), got 1",
    ],
    ["demo", 'sft.optimizer.schedule="cosine"', "sft.optimizer.schedule", "must be one of"],
    [
      "demo",
      "sft.microBatchSize=0",
      "sft.microBatchSize",
      "sft.microBatchSize must be >= 1, got 0",
    ],
    ["demo", "sft.steps=1.5", "sft.steps", "sft.steps must be an integer, got 1.5"],
    ["demo", "sft.maxPromptLength=128", "sft.maxPromptLength", "must be <= 127, got 128"],
    ["demo", 'sft.enabled="yes"', "sft.enabled", 'sft.enabled must be true or false, got "yes"'],
    ["demo", "eval.numQuestions=0", "eval.numQuestions", "eval.numQuestions must be >= 1, got 0"],
    ["demo", "eval.temperature=-1", "eval.temperature", "eval.temperature must be >= 0"],
    ["demo", "checkpoint.keep=0", "checkpoint.keep", "checkpoint.keep must be >= 1, got 0"],
    ["demo", "run.seed=-1", "run.seed", "run.seed must be >= 0, got -1"],
    ["demo", "run.outDir=null", "run.outDir", "run.outDir must be a non-empty string, got null"],
    ["demo", "model.demo.headDim=15", "model.demo.headDim", "model.demo.headDim must be even"],
    [
      "demo",
      "model.demo.numKvHeads=3",
      "model.demo.numHeads",
      "model.demo.numHeads must be a multiple of numKvHeads",
    ],
    ["demo", 'demoData.difficulty="insane"', "demoData.difficulty", "must be one of"],
    ["demo", "grpo.bogus=1", "grpo.bogus", "grpo.bogus is not a known field (known: enabled"],
    ["demo", "lora.rank=4", "lora.alpha", "lora.alpha is missing"],
    [
      "demo",
      'lora={"rank":4,"alpha":4,"targets":["q_proj"]}',
      "lora",
      'lora must be null when model.path is "demo"',
    ],
    ["demo", 'sft.data="/x/ot"', "sft.data", 'sft.data must be "demo" when model.path is "demo"'],
    [
      "demo",
      "grpo.maxNewTokens=64",
      "grpo.maxNewTokens",
      "grpo.maxPromptLength + grpo.maxNewTokens must be <= model.demo.maxPositionEmbeddings " +
      "(128), got 160",
    ],
    ["demo", "model.demo=null", "model.demo", "model.demo must hold the demo model's sizes"],
    ["gemma3-1b-gsm8k", "lora.rank=0", "lora.rank", "lora.rank must be an integer >= 1, got 0"],
    ["gemma3-1b-gsm8k", 'lora.targets=["qkv"]', "lora.targets", "lora.targets must be among"],
    ["gemma3-1b-gsm8k", "model.path=3", "model.path", "model.path must be a non-empty string"],
  ];
  for (const [preset, set, field, message] of cases) {
    const e = errorOf(() => resolveTrainConfig({ preset, sets: [set] }));
    assert.equal(e.field, field, set);
    assert.ok(e.message.includes(message), `${set}: ${e.message}`);
    assert.ok(e.message.includes(field), `${set}: message names the field: ${e.message}`);
  }
});

Deno.test("createTrainConfig() names a missing field and an unknown preset", () => {
  const input = presetInput("demo");
  delete (input.sft as Record<string, unknown>).epochs;
  const e = errorOf(() => createTrainConfig(input));
  assert.equal(e.field, "sft.epochs");
  assert.equal(e.message, "sft.epochs is missing");
  const p = errorOf(() => resolveTrainConfig({ preset: "gemma-7b" }));
  assert.equal(p.field, "preset");
  assert.match(p.message, /"gemma3-1b-gsm8k", "demo", got "gemma-7b"/);
});

Deno.test("resolveTrainConfig() precedence: preset < file < flags < --set", () => {
  const c = resolveTrainConfig({
    preset: "demo",
    file: { grpo: { beta: 0.1, numBatches: 12 }, run: { seed: 5 }, sft: { steps: 10 } },
    flags: { run: { seed: 7, outDir: "/tmp/out" }, grpo: { numBatches: 20 } },
    sets: ["grpo.beta=0.04", "grpo.numBatches=25"],
  });
  assert.equal(c.sft.steps, 10); // file over preset
  assert.equal(c.run.seed, 7); // flags over file
  assert.equal(c.run.outDir, "/tmp/out");
  assert.equal(c.grpo.beta, 0.04); // --set over file
  assert.equal(c.grpo.numBatches, 25); // --set over flags
  const demo = presetConfig("demo");
  assert.equal(c.grpo.numGenerations, demo.grpo.numGenerations); // untouched: preset
  assert.deepEqual(c.model, demo.model);
  assert.equal(c.preset, "demo");
});

Deno.test("resolveTrainConfig() keeps epsilonHigh equal to epsilon unless it is set", () => {
  assert.equal(
    resolveTrainConfig({ preset: "demo", sets: ["grpo.epsilon=0.3"] }).grpo
      .epsilonHigh,
    0.3,
  );
  const both = resolveTrainConfig({
    preset: "demo",
    sets: ["grpo.epsilon=0.3", "grpo.epsilonHigh=0.28"],
  });
  assert.deepEqual([both.grpo.epsilon, both.grpo.epsilonHigh], [0.3, 0.28]);
});

Deno.test("parseSetOverride() reads JSON values, else plain strings", () => {
  assert.deepEqual(parseSetOverride("grpo.beta=0.04"), { grpo: { beta: 0.04 } });
  assert.deepEqual(parseSetOverride("lora=null"), { lora: null });
  assert.deepEqual(parseSetOverride('lora.targets=["q_proj"]'), { lora: { targets: ["q_proj"] } });
  assert.deepEqual(parseSetOverride("run.outDir=runs/x=y"), { run: { outDir: "runs/x=y" } });
  assert.deepEqual(parseSetOverride("sft.enabled=false"), { sft: { enabled: false } });
  for (const bad of ["grpo.beta", "=1", "grpo..beta=1", "1grpo=2"]) {
    assert.equal(errorOf(() => parseSetOverride(bad)).field, "--set", bad);
  }
});

Deno.test("mergeConfigInput() merges objects, replaces arrays and leaves inputs untouched", () => {
  const base = { a: { b: 1, list: [1, 2] }, c: 1 };
  const patch = { a: { list: [3] }, c: undefined, d: null };
  const merged = mergeConfigInput(base, patch);
  assert.deepEqual(merged, { a: { b: 1, list: [3] }, c: 1, d: null });
  assert.deepEqual(base, { a: { b: 1, list: [1, 2] }, c: 1 });
  (merged.a as { list: number[] }).list.push(9);
  assert.deepEqual(patch.a.list, [3]);
});

Deno.test("sftTotalSteps() uses steps, else epochs over micro-batch × accumulation", () => {
  const sft = presetConfig("demo").sft;
  assert.equal(sftTotalSteps(sft, 2000), 500);
  const byEpochs = { ...sft, steps: null, epochs: 2, microBatchSize: 4, gradientAccumulation: 2 };
  assert.equal(sftTotalSteps(byEpochs, 100), 25); // ceil(2·100 / 8)
  assert.equal(sftTotalSteps(byEpochs, 0), 1);
});

Deno.test("optimizerSchedule() is the recipe's warmup + cosine over the phase", () => {
  const c: TrainConfig = presetConfig("gemma3-1b-gsm8k");
  const lr = optimizerSchedule(c.grpo.optimizer, grpoTotalSteps(c.grpo));
  assert.equal(lr(0), 0);
  assert.ok(Math.abs(lr(186.9) - 1.5e-6) < 1e-12); // halfway through the 373.8-step warmup
  assert.ok(Math.abs(lr(373.8) - 3e-6) < 1e-15);
  assert.ok(Math.abs(lr(373.8 + (3738 - 373.8) / 2) - 1.5e-6) < 1e-12);
  assert.equal(lr(3738), 0);
  const constant = optimizerSchedule({ ...c.grpo.optimizer, schedule: "constant" }, 10);
  assert.equal(constant(7), 3e-6);
  // A one-step phase has no room for a warmup and still yields a schedule.
  assert.equal(optimizerSchedule(c.sft.optimizer, 1)(0), 3e-6);
});

Deno.test("requireInputs() names the unset input and how to provide it", () => {
  const base = presetInput("gemma3-1b-gsm8k");
  const noModel = errorOf(() => requireInputs(createTrainConfig(base)));
  assert.equal(noModel.field, "model.path");
  assert.match(noModel.message, /--model DIR/);
  const withModel = mergeConfigInput(base, { model: { path: "/m" } });
  const noSft = errorOf(() => requireInputs(createTrainConfig(withModel)));
  assert.equal(noSft.field, "sft.data");
  assert.match(noSft.message, /--sft-data PATH/);
  const noGrpo = errorOf(() =>
    requireInputs(createTrainConfig(mergeConfigInput(withModel, { sft: { data: "/ot" } })))
  );
  assert.equal(noGrpo.field, "grpo.data");
  assert.match(noGrpo.message, /--data PATH/);
  const sftOnly = mergeConfigInput(withModel, {
    sft: { data: "/ot" },
    grpo: { enabled: false },
    eval: { base: false, afterSft: false },
  });
  // SFT samples are greedy answers to the first eval questions: they need eval data too.
  const samples = errorOf(() => requireInputs(createTrainConfig(sftOnly)));
  assert.equal(samples.field, "eval.data");
  const noSamples = mergeConfigInput(sftOnly, { run: { sampleEvery: 0 } });
  assert.doesNotThrow(() => requireInputs(createTrainConfig(noSamples)));
});

Deno.test("createTrainConfig() refuses several greedy eval passes and more demo questions than exist", () => {
  const passes = errorOf(() => resolveTrainConfig({ preset: "demo", sets: ["eval.passes=2"] }));
  assert.equal(passes.field, "eval.passes");
  assert.equal(passes.got, 2);
  assert.match(passes.message, /eval\.passes must be 1 with greedy decoding/);
  const sampled = resolveTrainConfig({
    preset: "demo",
    sets: ["eval.passes=2", "eval.temperature=0.6"],
  });
  assert.equal(sampled.eval.passes, 2);

  const many = errorOf(() =>
    resolveTrainConfig({ preset: "demo", sets: ["eval.numQuestions=201"] })
  );
  assert.equal(many.field, "eval.numQuestions");
  assert.match(many.message, /must be <= demoData\.testSize \(200\)/);
  const bigger = resolveTrainConfig({
    preset: "demo",
    sets: ["eval.numQuestions=300", "demoData.testSize=300"],
  });
  assert.equal(bigger.eval.numQuestions, 300);
});

Deno.test("checkContextLengths() names the field whose length exceeds the model's context", () => {
  const c = presetConfig("gemma3-1b-gsm8k"); // sft 1024, grpo 256 + 768, eval 256 + 768
  checkContextLengths(c, 1024, "config.json");
  const e = errorOf(() =>
    checkContextLengths({ ...c, sft: { ...c.sft, maxLength: 512 } }, 1000, "x")
  );
  assert.equal(e.field, "grpo.maxNewTokens");
  assert.equal(
    e.message,
    "grpo.maxPromptLength + grpo.maxNewTokens must be <= x (1000), got 1024",
  );
  assert.equal(errorOf(() => checkContextLengths(c, 1000, "x")).field, "sft.maxLength");
});

Deno.test("usesEvalQuestions() counts the evaluations, the periodic one and SFT samples", () => {
  const off = { base: false, afterSft: false, afterGrpo: false };
  const none = resolveTrainConfig({ preset: "demo", file: { eval: off, run: { sampleEvery: 0 } } });
  assert.equal(usesEvalQuestions(none), false);
  const samples = resolveTrainConfig({ preset: "demo", file: { eval: off } });
  assert.equal(usesEvalQuestions(samples), true);
  assert.equal(usesEvalQuestions(presetConfig("demo")), true);
});

Deno.test("resolveTrainConfig() sets every GRPO-family field with --set; the defaults are today's GRPO", () => {
  const demo = presetConfig("demo").grpo;
  assert.deepEqual(
    [demo.lossType, demo.importanceSampling, demo.klEstimator, demo.delta],
    ["grpo", "token", "k3", null],
  );
  assert.deepEqual(
    [demo.topEntropyQuantile, demo.entropyCoef, demo.advantageScale, demo.advantageBaseline],
    [1, 0, "group", "mean"],
  );
  assert.deepEqual([demo.sapoTemperaturePos, demo.sapoTemperatureNeg], [1, 1.05]);
  assert.deepEqual(
    [demo.maskTruncatedCompletions, demo.dynamicSampling, demo.maxResampleRounds],
    [false, false, 3],
  );
  // The overlong penalty's lengths follow maxNewTokens (32) unless set: a fifth is the ramp.
  assert.deepEqual(demo.overlongPenalty, { enabled: false, maxLength: 32, cacheLength: 6 });
  const c = resolveTrainConfig({
    preset: "demo",
    sets: [
      "grpo.lossType=dr_grpo",
      "grpo.importanceSampling=sequence",
      "grpo.klEstimator=k2",
      "grpo.delta=4",
      "grpo.topEntropyQuantile=0.2",
      "grpo.entropyCoef=0.001",
      "grpo.advantageScale=batch",
      "grpo.advantageBaseline=leave-one-out",
      "grpo.sapoTemperaturePos=0.5",
      "grpo.sapoTemperatureNeg=0.75",
      "grpo.maskTruncatedCompletions=true",
      "grpo.overlongPenalty.enabled=true",
      "grpo.overlongPenalty.cacheLength=8",
      "grpo.dynamicSampling=true",
      "grpo.maxResampleRounds=0",
    ],
  });
  const g = c.grpo;
  assert.deepEqual(
    [g.lossType, g.importanceSampling, g.klEstimator, g.delta, g.topEntropyQuantile],
    ["dr_grpo", "sequence", "k2", 4, 0.2],
  );
  assert.deepEqual(
    [g.entropyCoef, g.advantageScale, g.advantageBaseline, g.sapoTemperaturePos],
    [0.001, "batch", "leave-one-out", 0.5],
  );
  assert.deepEqual(
    [g.sapoTemperatureNeg, g.maskTruncatedCompletions, g.dynamicSampling, g.maxResampleRounds],
    [0.75, true, true, 0],
  );
  assert.deepEqual(g.overlongPenalty, { enabled: true, maxLength: 32, cacheLength: 8 });
  assert.deepEqual(createTrainConfig(JSON.parse(JSON.stringify(c))), c, "config.json round trip");
  // CISPO caps the ratio itself at epsilonHigh, which must then be given.
  const cispo = resolveTrainConfig({
    preset: "demo",
    sets: ["grpo.lossType=cispo", "grpo.epsilonHigh=5"],
  });
  assert.deepEqual([cispo.grpo.lossType, cispo.grpo.epsilonHigh], ["cispo", 5]);
});

/**
 * The `grpo.*` fields added with the GRPO family and the rollout workers (absent from older
 * `config.json` files).
 */
const GRPO_FAMILY_FIELDS = [
  "lossType",
  "importanceSampling",
  "klEstimator",
  "delta",
  "topEntropyQuantile",
  "entropyCoef",
  "advantageScale",
  "advantageBaseline",
  "sapoTemperaturePos",
  "sapoTemperatureNeg",
  "maskTruncatedCompletions",
  "overlongPenalty",
  "dynamicSampling",
  "maxResampleRounds",
  "maxStaleness",
];

Deno.test("createTrainConfig() keeps grpo.aggregation working: the older name of grpo/bnpo", () => {
  const bnpo = resolveTrainConfig({ preset: "demo", sets: ['grpo.aggregation="token-mean"'] });
  assert.deepEqual([bnpo.grpo.lossType, bnpo.grpo.aggregation], ["bnpo", "token-mean"]);
  // lossType wins, and the aggregation follows it for grpo and bnpo.
  const set = resolveTrainConfig({ preset: "demo", sets: ["grpo.lossType=bnpo"] });
  assert.deepEqual([set.grpo.lossType, set.grpo.aggregation], ["bnpo", "token-mean"]);
  const back = resolveTrainConfig({
    preset: "gemma3-1b-gsm8k",
    sets: ['grpo.aggregation="token-mean"', "grpo.lossType=grpo"],
  });
  assert.deepEqual(
    [back.grpo.lossType, back.grpo.aggregation],
    ["grpo", "sequence-mean-token-mean"],
  );
  // A config.json written before the GRPO family's fields loads as the same run.
  for (
    const [name, aggregation, lossType] of [
      ["demo", "sequence-mean-token-mean", "grpo"],
      ["gemma3-1b-gsm8k", "token-mean", "bnpo"],
    ]
  ) {
    const now = resolveTrainConfig({
      preset: name,
      sets: [`grpo.aggregation="${aggregation}"`],
    });
    const old = JSON.parse(JSON.stringify(now));
    for (const key of GRPO_FAMILY_FIELDS) delete old.grpo[key];
    const loaded = createTrainConfig(old);
    assert.equal(loaded.grpo.lossType, lossType);
    assert.deepEqual(loaded, now, name);
  }
});

Deno.test("createTrainConfig() names the GRPO-family field that is wrong", () => {
  const cases: [string[], string, string][] = [
    [['grpo.lossType="ppo"'], "grpo.lossType", "grpo.lossType must be one of grpo, bnpo"],
    [['grpo.importanceSampling="row"'], "grpo.importanceSampling", "must be one of token"],
    [['grpo.klEstimator="k4"'], "grpo.klEstimator", "grpo.klEstimator must be one of k1"],
    [["grpo.delta=1"], "grpo.delta", "grpo.delta must be > 1 or null, got 1"],
    [["grpo.topEntropyQuantile=0"], "grpo.topEntropyQuantile", "must be in (0, 1]"],
    [["grpo.topEntropyQuantile=1.5"], "grpo.topEntropyQuantile", "must be in (0, 1]"],
    [["grpo.entropyCoef=-0.1"], "grpo.entropyCoef", "grpo.entropyCoef must be >= 0"],
    [['grpo.advantageScale="max"'], "grpo.advantageScale", "must be one of group"],
    [['grpo.advantageBaseline="median"'], "grpo.advantageBaseline", "must be one of mean"],
    [["grpo.sapoTemperatureNeg=0"], "grpo.sapoTemperatureNeg", "must be > 0, got 0"],
    [['grpo.maskTruncatedCompletions="yes"'], "grpo.maskTruncatedCompletions", "true or false"],
    [["grpo.dynamicSampling=1"], "grpo.dynamicSampling", "true or false"],
    [["grpo.maxResampleRounds=-1"], "grpo.maxResampleRounds", "must be >= 0, got -1"],
    [["grpo.maxStaleness=1.5"], "grpo.maxStaleness", "must be an integer"],
    [
      ["grpo.maxStaleness=1", "grpo.dynamicSampling=true"],
      "grpo.maxStaleness",
      "must be 0 with dynamicSampling",
    ],
    [["grpo.lossType=cispo"], "grpo.epsilonHigh", 'when lossType is "cispo", got none'],
    [["grpo.lossType=cispo", "grpo.epsilonHigh=0.28"], "grpo.epsilonHigh", "got 0.28"],
    [
      ["grpo.overlongPenalty.cacheLength=40"],
      "grpo.overlongPenalty.cacheLength",
      "grpo.overlongPenalty.cacheLength must be <= overlongPenalty.maxLength (32), got 40",
    ],
    [
      ["grpo.overlongPenalty.enabled=true", "grpo.overlongPenalty.maxLength=48"],
      "grpo.overlongPenalty.maxLength",
      "or the penalty never applies",
    ],
    [["grpo.overlongPenalty.length=8"], "grpo.overlongPenalty.length", "not a known field"],
    [["grpo.overlongPenalty=true"], "grpo.overlongPenalty", "must be an object"],
  ];
  for (const [sets, field, message] of cases) {
    const e = errorOf(() => resolveTrainConfig({ preset: "demo", sets }));
    assert.equal(e.field, field, sets.join(" "));
    assert.ok(e.message.includes(message), `${sets.join(" ")}: ${e.message}`);
  }
});
