/**
 * Validators of the training config's sections (`sft`, `grpo`, `eval`, …). Private to
 * `train_config.ts`.
 *
 * @module
 */

import { loraConfig } from "../model/lora.ts";
import { adamwConfig } from "./adamw_config.ts";
import { createGrpoConfig, type GrpoConfig } from "./grpo_config.ts";
import {
  bool,
  type Fields,
  int,
  nested,
  num,
  oneOf,
  openSection,
  strOrNull,
  TrainConfigError,
} from "./_config_fields.ts";
import type {
  DemoDataSection,
  EvalSection,
  GrpoSection,
  LoraSection,
  OptimizerSection,
  SftSection,
} from "./train_config.ts";

const OPTIMIZER_KEYS = [
  "learningRate",
  "schedule",
  "warmupFraction",
  "endLearningRate",
  "b1",
  "b2",
  "eps",
  "weightDecay",
  "maxGradNorm",
];
const GRPO_ALGORITHM_KEYS = [
  "numGenerations",
  "numIterations",
  "beta",
  "epsilon",
  "epsilonHigh",
  "temperature",
  "topK",
  "topP",
  "maxPromptLength",
  "maxNewTokens",
  "aggregation",
  "advantageEpsilon",
];

/** Validates an optimizer section at `path`. */
export function optimizer(v: unknown, path: string): OptimizerSection {
  const o = openSection(v, path, OPTIMIZER_KEYS);
  const adamw = nested(path, () =>
    adamwConfig({
      learningRate: o.learningRate as number,
      b1: o.b1 as number,
      b2: o.b2 as number,
      eps: o.eps as number,
      weightDecay: o.weightDecay as number,
      maxGradNorm: o.maxGradNorm as number | null,
    }));
  return Object.freeze({
    learningRate: num(`${path}.learningRate`, o.learningRate, (x) => x >= 0, ">= 0"),
    schedule: oneOf(`${path}.schedule`, o.schedule, ["constant", "warmup-cosine"] as const),
    warmupFraction: num(
      `${path}.warmupFraction`,
      o.warmupFraction,
      (x) => x >= 0 && x < 1,
      "in [0, 1)",
    ),
    endLearningRate: num(`${path}.endLearningRate`, o.endLearningRate, (x) => x >= 0, ">= 0"),
    b1: adamw.b1,
    b2: adamw.b2,
    eps: adamw.eps,
    weightDecay: adamw.weightDecay,
    maxGradNorm: adamw.maxGradNorm,
  });
}

/** Validates the `lora` section (null: full-parameter). */
export function lora(v: unknown): LoraSection | null {
  if (v === null) return null;
  const o = openSection(v, "lora", ["rank", "alpha", "targets"]);
  if (!Array.isArray(o.targets)) {
    throw new TrainConfigError("lora.targets", "lora.targets must be a list of projection names");
  }
  return nested("lora", () =>
    loraConfig({
      rank: o.rank as number,
      alpha: o.alpha as number,
      targets: o.targets as string[],
    }));
}

/** Validates the `demoData` section. */
export function demoData(v: unknown): DemoDataSection {
  const o = openSection(v, "demoData", ["seed", "trainSize", "testSize", "difficulty"]);
  return Object.freeze({
    seed: int("demoData.seed", o.seed, 0),
    trainSize: int("demoData.trainSize", o.trainSize, 1),
    testSize: int("demoData.testSize", o.testSize, 1),
    difficulty: oneOf(
      "demoData.difficulty",
      o.difficulty,
      ["easy", "medium", "hard", "expert"] as const,
    ),
  });
}

/** Validates the `sft` section. */
export function sft(v: unknown): SftSection {
  const o = openSection(v, "sft", [
    "enabled",
    "data",
    "maxExamples",
    "steps",
    "epochs",
    "microBatchSize",
    "gradientAccumulation",
    "maxPromptLength",
    "maxLength",
    "optimizer",
  ]);
  const maxLength = int("sft.maxLength", o.maxLength, 2);
  return Object.freeze({
    enabled: bool("sft.enabled", o.enabled),
    data: strOrNull("sft.data", o.data),
    maxExamples: o.maxExamples === null ? null : int("sft.maxExamples", o.maxExamples, 1),
    steps: o.steps === null ? null : int("sft.steps", o.steps, 1),
    epochs: int("sft.epochs", o.epochs, 1),
    microBatchSize: int("sft.microBatchSize", o.microBatchSize, 1),
    gradientAccumulation: int("sft.gradientAccumulation", o.gradientAccumulation, 1),
    maxPromptLength: int("sft.maxPromptLength", o.maxPromptLength, 1, maxLength - 1),
    maxLength,
    optimizer: optimizer(o.optimizer, "sft.optimizer"),
  });
}

/** Validates the `grpo` section. */
export function grpo(v: unknown): GrpoSection {
  const o = openSection(v, "grpo", [
    "enabled",
    "data",
    "batchSize",
    "numBatches",
    "microBatchSize",
    "optimizer",
    ...GRPO_ALGORITHM_KEYS,
  ]);
  const algorithm: Fields = Object.fromEntries(
    GRPO_ALGORITHM_KEYS.filter((k) => !(k === "epsilonHigh" && o[k] === null)).map((
      k,
    ) => [k, o[k]]),
  );
  const core = nested("grpo", () => createGrpoConfig(algorithm as Partial<GrpoConfig>));
  return Object.freeze({
    enabled: bool("grpo.enabled", o.enabled),
    data: strOrNull("grpo.data", o.data),
    batchSize: int("grpo.batchSize", o.batchSize, 1),
    numBatches: int("grpo.numBatches", o.numBatches, 1),
    microBatchSize: int("grpo.microBatchSize", o.microBatchSize, 1),
    optimizer: optimizer(o.optimizer, "grpo.optimizer"),
    ...core,
  });
}

/** Validates the `eval` section. */
export function evalSection(v: unknown): EvalSection {
  const o = openSection(v, "eval", [
    "base",
    "afterSft",
    "afterGrpo",
    "data",
    "numQuestions",
    "batchSize",
    "maxPromptLength",
    "maxNewTokens",
    "temperature",
    "topK",
    "topP",
    "passes",
  ]);
  return Object.freeze({
    base: bool("eval.base", o.base),
    afterSft: bool("eval.afterSft", o.afterSft),
    afterGrpo: bool("eval.afterGrpo", o.afterGrpo),
    data: strOrNull("eval.data", o.data),
    numQuestions: int("eval.numQuestions", o.numQuestions, 1),
    batchSize: int("eval.batchSize", o.batchSize, 1),
    maxPromptLength: int("eval.maxPromptLength", o.maxPromptLength, 1),
    maxNewTokens: int("eval.maxNewTokens", o.maxNewTokens, 1),
    temperature: num("eval.temperature", o.temperature, (x) => x >= 0, ">= 0 (0 is greedy)"),
    topK: int("eval.topK", o.topK, 0),
    topP: num("eval.topP", o.topP, (x) => x > 0 && x <= 1, "in (0, 1]"),
    passes: int("eval.passes", o.passes, 1),
  });
}
