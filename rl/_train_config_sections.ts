/**
 * Validators of the training config's sections (`sft`, `grpo`, `eval`, …). Private to
 * `train_config.ts`.
 *
 * @module
 */

import type { LoraTarget } from "../model/gemma3_weights.ts";
import { loraConfig } from "../model/lora.ts";
import { adamwConfig } from "./adamw_config.ts";
import { createGrpoConfig, type GrpoConfig, type GrpoConfigInput } from "./grpo_config.ts";
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

/** Learning-rate schedule kinds. */
export type ScheduleKind = "constant" | "warmup-cosine";

/** AdamW and its learning-rate schedule (optax semantics, see `adamw_config.ts`). */
export interface OptimizerSection {
  /** Peak learning rate (≥ 0). */
  readonly learningRate: number;
  /** `"warmup-cosine"`: linear warmup from 0, then cosine decay to `endLearningRate`. */
  readonly schedule: ScheduleKind;
  /** Warmup length as a fraction of the phase's steps, in [0, 1) (recipe 0.1). */
  readonly warmupFraction: number;
  /** Learning rate at the end of the cosine (≥ 0; recipe 0). */
  readonly endLearningRate: number;
  /** First-moment decay in [0, 1). */
  readonly b1: number;
  /** Second-moment decay in [0, 1). */
  readonly b2: number;
  /** Added to `√v̂` (≥ 0). */
  readonly eps: number;
  /** Decoupled weight decay (≥ 0). */
  readonly weightDecay: number;
  /** Global-norm clip (> 0), or null for none. */
  readonly maxGradNorm: number | null;
}

/** LoRA adapter settings (the whole section is null for full-parameter training). */
export interface LoraSection {
  /** Rank r (≥ 1). */
  readonly rank: number;
  /** Alpha (> 0); updates are scaled by alpha / r. */
  readonly alpha: number;
  /** Adapted projections. */
  readonly targets: readonly LoraTarget[];
}

/** Difficulty names of the built-in arithmetic set. */
export type DemoDifficultyName = "easy" | "medium" | "hard" | "expert";

/** The built-in arithmetic set, used where a data source is `"demo"`. */
export interface DemoDataSection {
  /** Generator seed (integer ≥ 0). */
  readonly seed: number;
  /** Training problems (≥ 1). */
  readonly trainSize: number;
  /** Test problems (≥ 1). */
  readonly testSize: number;
  /** Difficulty level. */
  readonly difficulty: DemoDifficultyName;
}

/** Supervised fine-tuning. */
export interface SftSection {
  /** Run the phase. */
  readonly enabled: boolean;
  /** `"demo"`, or an OpenThoughts file/folder/hub cache path; null until given. */
  readonly data: string | null;
  /** Use at most this many examples (null: all). */
  readonly maxExamples: number | null;
  /** Optimizer steps; null: `epochs` passes over the data (see {@linkcode sftTotalSteps}). */
  readonly steps: number | null;
  /** Passes over the data when `steps` is null (≥ 1). */
  readonly epochs: number;
  /** Sequences per micro-batch (≥ 1). */
  readonly microBatchSize: number;
  /** Micro-batches per optimizer step (≥ 1). */
  readonly gradientAccumulation: number;
  /** Longest prompt in tokens (≥ 1, < maxLength). */
  readonly maxPromptLength: number;
  /** Longest prompt + target in tokens; longer examples are dropped. */
  readonly maxLength: number;
  /** Optimizer. */
  readonly optimizer: OptimizerSection;
}

/** GRPO: the algorithm's fields (a {@linkcode GrpoConfig}) plus data, steps and optimizer. */
export interface GrpoSection extends GrpoConfig {
  /** Run the phase. */
  readonly enabled: boolean;
  /** `"demo"`, or a GSM8K file/folder/hub cache path (train split); null until given. */
  readonly data: string | null;
  /** Prompts per batch (recipe BATCH_SIZE 1); each gets `numGenerations` completions. */
  readonly batchSize: number;
  /** Rollout batches (recipe NUM_BATCHES 3738); steps = numBatches × numIterations. */
  readonly numBatches: number;
  /** Completions per forward/backward micro-batch (recipe 2). */
  readonly microBatchSize: number;
  /** Optimizer. */
  readonly optimizer: OptimizerSection;
}

/** Evaluation before and after the training phases (greedy by default, as the recipe). */
export interface EvalSection {
  /** Evaluate the model before training (`base`). */
  readonly base: boolean;
  /** Evaluate after SFT (`sft`; only when SFT runs). */
  readonly afterSft: boolean;
  /** Evaluate after GRPO (`grpo`; only when GRPO runs). */
  readonly afterGrpo: boolean;
  /** `"demo"` or a GSM8K path (test split); null: `grpo.data`. */
  readonly data: string | null;
  /** Questions evaluated (recipe: 100 test batches of 1). */
  readonly numQuestions: number;
  /** Questions generated together. */
  readonly batchSize: number;
  /** Longest prompt in tokens. */
  readonly maxPromptLength: number;
  /** Most new tokens per answer. */
  readonly maxNewTokens: number;
  /** Sampling temperature; 0 is greedy. */
  readonly temperature: number;
  /** Top-k (0: off). */
  readonly topK: number;
  /** Top-p in (0, 1]. */
  readonly topP: number;
  /** Completions per question (a question counts as correct when any pass is). */
  readonly passes: number;
  /**
   * Periodic evaluation during SFT and GRPO: every this many steps (0: off, the default), the
   * current weights are evaluated on all `numQuestions` eval questions with the settings above
   * (greedy unless `temperature` is set), and the step's `metrics.jsonl` row gets
   * `eval_accuracy`, `eval_partial_accuracy` and `eval_format_accuracy` (the report plots
   * them). It changes neither the weights nor any training random stream, so the training
   * numbers are the same as without it; each one costs as much as a phase evaluation.
   */
  readonly everySteps: number;
}

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
/** The GRPO family's fields (issue 17): optional, so configs written before them still load. */
const GRPO_VARIANT_KEYS = [
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
    ...GRPO_VARIANT_KEYS,
  ], GRPO_VARIANT_KEYS);
  // subtle: null epsilonHigh / lossType mean "follow epsilon / aggregation"; absent (a config
  // written before the field existed) means the default
  const algorithm: Fields = Object.fromEntries(
    [...GRPO_ALGORITHM_KEYS, ...GRPO_VARIANT_KEYS]
      .filter((k) =>
        o[k] !== undefined && !((k === "epsilonHigh" || k === "lossType") && o[k] === null)
      )
      .map((k) => [k, o[k]]),
  );
  if (o.overlongPenalty !== undefined) {
    openSection(o.overlongPenalty, "grpo.overlongPenalty", ["enabled", "maxLength", "cacheLength"]);
  }
  const core = nested("grpo", () => createGrpoConfig(algorithm as GrpoConfigInput));
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
    "everySteps",
  ], ["everySteps"]);
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
    // subtle: optional, so the config.json of runs made before the field existed still loads
    everySteps: o.everySteps === undefined ? 0 : int("eval.everySteps", o.everySteps, 0),
  });
}

/** What a finished training phase writes to `export/<phase>/` (see `export.ts`). */
export interface ExportSection {
  /**
   * LoRA runs: besides the PEFT adapter, also write `export/<phase>/merged/`, the base model
   * with the adapter merged in (a Hugging Face folder, bf16 like the base, with the base
   * folder's tokenizer files). Default false. Full fine-tuning always exports the model folder,
   * so there it must stay false.
   */
  readonly merged: boolean;
}

/**
 * @param v The `export` section, or undefined (absent from runs made before it existed).
 * @returns The validated section (`{ merged: false }` when absent).
 */
export function exportSection(v: unknown): ExportSection {
  if (v === undefined) return Object.freeze({ merged: false });
  const o = openSection(v, "export", ["merged"]);
  return Object.freeze({ merged: bool("export.merged", o.merged) });
}
