/**
 * The configuration of a `deno task train` run as one frozen, validated, JSON-serialisable tree:
 * model, LoRA, demo data, SFT, GRPO, evaluation, checkpointing, run settings and exports.
 * Built by {@linkcode createTrainConfig} from a complete tree (a preset merged with a config
 * file and command-line overrides, see `presets.ts`); every error names the field's dotted path,
 * e.g. `grpo.numGenerations must be >= 2, got 1`.
 *
 * The tree holds only data (no functions), so the resolved config is saved as `config.json`
 * in the run folder and a resumed run reads it back through the same validation.
 *
 * @module
 */

import { type AdamWConfig, adamwConfig } from "./adamw_config.ts";
import type { EvalConfig } from "./eval_config.ts";
import { type Fields, int, openSection, str, TrainConfigError } from "./_config_fields.ts";
import { demoData, evalSection, exportSection, grpo, lora, sft } from "./_train_config_sections.ts";
import type {
  DemoDataSection,
  EvalSection,
  ExportSection,
  GrpoSection,
  LoraSection,
  OptimizerSection,
  SftSection,
} from "./_train_config_sections.ts";
import { type ModelSection, validateModelSection } from "./_train_config_model.ts";
import { constantSchedule, type Schedule, warmupCosineDecaySchedule } from "./schedule.ts";

export { TrainConfigError };
export type { DemoModelSection, ModelSection } from "./_train_config_model.ts";

/** The data source value that selects the built-in arithmetic set (`data/demo_set.ts`). */
export const DEMO_SOURCE = "demo";

export type {
  DemoDataSection,
  DemoDifficultyName,
  EvalSection,
  ExportSection,
  GrpoSection,
  LoraSection,
  OptimizerSection,
  ScheduleKind,
  SftSection,
} from "./_train_config_sections.ts";

/** Periodic checkpoints of the training phases. */
export interface CheckpointSection {
  /** Save every this many optimizer steps (0: only when stopped and at the end). */
  readonly everySteps: number;
  /** Checkpoints kept per phase (≥ 1). */
  readonly keep: number;
}

/** Run-level settings. */
export interface RunSection {
  /** Folder that receives `runs/<timestamp>/`-style run folders. */
  readonly outDir: string;
  /** Seed of initialisation, shuffling and sampling (integer in [0, 2³²)). */
  readonly seed: number;
  /** Keep sample completions every this many steps of a training phase (0: never). */
  readonly sampleEvery: number;
  /** Completions kept per sampling point and per evaluation. */
  readonly samplesPerPoint: number;
}

/** The complete, validated configuration of a training run (frozen). */
export interface TrainConfig {
  /** The preset it started from. */
  readonly preset: string;
  /** Model to train. */
  readonly model: ModelSection;
  /** LoRA adapter, or null for full-parameter training. */
  readonly lora: LoraSection | null;
  /** The built-in arithmetic set (for `"demo"` data sources). */
  readonly demoData: DemoDataSection;
  /** Supervised fine-tuning. */
  readonly sft: SftSection;
  /** GRPO. */
  readonly grpo: GrpoSection;
  /** Evaluation. */
  readonly eval: EvalSection;
  /** Checkpointing. */
  readonly checkpoint: CheckpointSection;
  /** Run settings. */
  readonly run: RunSection;
  /** What each finished training phase exports (`export/<phase>/`). */
  readonly export: ExportSection;
}

const ROOT_KEYS = [
  "preset",
  "model",
  "lora",
  "demoData",
  "sft",
  "grpo",
  "eval",
  "checkpoint",
  "run",
  "export",
];
function checkCrossFields(c: TrainConfig): void {
  const demo = c.model.demo;
  if (c.export.merged && c.lora === null) {
    throw new TrainConfigError(
      "export.merged",
      "export.merged must be false when lora is null: a full fine-tune's export already is " +
        "the whole model folder (nothing to merge)",
    );
  }
  if (c.model.path === DEMO_SOURCE) {
    if (c.lora !== null) {
      throw new TrainConfigError(
        "lora",
        `lora must be null when model.path is "demo": a model trained from scratch has no ` +
          `base weights to adapt (full-parameter training)`,
      );
    }
    for (const [field, value] of [["sft.data", c.sft.data], ["grpo.data", c.grpo.data]]) {
      if (value !== null && value !== DEMO_SOURCE) {
        throw new TrainConfigError(
          field as string,
          `${field} must be "demo" when model.path is "demo" (the demo model's reduced ` +
            `vocabulary covers only the built-in set), got ${JSON.stringify(value)}`,
        );
      }
    }
  }
  if (demo !== null && c.model.path === DEMO_SOURCE) {
    checkContextLengths(c, demo.maxPositionEmbeddings, "model.demo.maxPositionEmbeddings");
  }
  const e = c.eval;
  if (e.passes > 1 && e.temperature === 0) {
    throw new TrainConfigError(
      "eval.passes",
      `eval.passes must be 1 with greedy decoding (eval.temperature 0: every pass gives the ` +
        `same answer); set eval.temperature > 0 for several passes, got ${e.passes}`,
      { expected: "1 when eval.temperature is 0", got: e.passes },
    );
  }
  const testSize = c.demoData.testSize;
  if (evalDataSource(c) === DEMO_SOURCE && usesEvalQuestions(c) && e.numQuestions > testSize) {
    throw new TrainConfigError(
      "eval.numQuestions",
      `eval.numQuestions must be <= demoData.testSize (${testSize}), the questions of the demo ` +
        `test set, got ${e.numQuestions}`,
      { expected: `<= ${testSize}`, got: e.numQuestions },
    );
  }
}

/**
 * Checks that the sequences a run builds fit the model's context: `sft.maxLength`,
 * `grpo.maxPromptLength + grpo.maxNewTokens` and `eval.maxPromptLength + eval.maxNewTokens`.
 *
 * @param config The config.
 * @param limit The model's `maxPositionEmbeddings`.
 * @param limitName Where the limit comes from, for the message (e.g. a `config.json`).
 * @throws {TrainConfigError} Naming the field that overflows, the limit and the length.
 * @example
 * ```ts
 * import { checkContextLengths, TrainConfigError } from "./train_config.ts";
 * import { presetConfig } from "./presets.ts";
 * const config = presetConfig("gemma3-1b-gsm8k");
 * checkContextLengths(config, 32768, "config.json");
 * try {
 *   checkContextLengths(config, 512, "config.json");
 *   throw new Error("accepted");
 * } catch (e) {
 *   if (!(e instanceof TrainConfigError) || e.field !== "sft.maxLength") throw e;
 * }
 * ```
 */
export function checkContextLengths(config: TrainConfig, limit: number, limitName: string): void {
  const c = config;
  const fits: [string, string, number][] = [
    ["sft.maxLength", "sft.maxLength", c.sft.maxLength],
    [
      "grpo.maxNewTokens",
      "grpo.maxPromptLength + grpo.maxNewTokens",
      c.grpo.maxPromptLength + c.grpo.maxNewTokens,
    ],
    [
      "eval.maxNewTokens",
      "eval.maxPromptLength + eval.maxNewTokens",
      c.eval.maxPromptLength + c.eval.maxNewTokens,
    ],
  ];
  for (const [field, what, n] of fits) {
    if (n > limit) {
      throw new TrainConfigError(field, `${what} must be <= ${limitName} (${limit}), got ${n}`, {
        expected: `<= ${limit}`,
        got: n,
      });
    }
  }
}

/**
 * Validates a complete config tree and freezes it (deeply).
 *
 * @param input Every section and field (see {@linkcode TrainConfig}); `grpo.epsilonHigh` may be
 *   null (then it equals `grpo.epsilon`).
 * @returns The frozen config.
 * @throws {TrainConfigError} Naming the field's dotted path, for a missing, unknown, mistyped or
 *   out-of-range field or an inconsistent combination.
 * @example
 * ```ts
 * import { createTrainConfig, TrainConfigError } from "./train_config.ts";
 * import { presetInput } from "./presets.ts";
 * const input = presetInput("demo");
 * (input.grpo as { numGenerations: number }).numGenerations = 1;
 * try {
 *   createTrainConfig(input);
 * } catch (e) {
 *   if (!(e instanceof TrainConfigError) || e.field !== "grpo.numGenerations") throw e;
 * }
 * ```
 */
export function createTrainConfig(input: unknown): TrainConfig {
  // subtle: `export` is optional, so the config.json of runs made before it existed still loads
  const o = openSection(input, "", ROOT_KEYS, ["export"]);
  const config: TrainConfig = Object.freeze({
    preset: str("preset", o.preset),
    model: validateModelSection(o.model),
    lora: lora(o.lora),
    demoData: demoData(o.demoData),
    sft: sft(o.sft),
    grpo: grpo(o.grpo),
    eval: evalSection(o.eval),
    checkpoint: Object.freeze(((s: Fields) => ({
      everySteps: int("checkpoint.everySteps", s.everySteps, 0),
      keep: int("checkpoint.keep", s.keep, 1),
    }))(openSection(o.checkpoint, "checkpoint", ["everySteps", "keep"]))),
    run: Object.freeze(((s: Fields) => ({
      outDir: str("run.outDir", s.outDir),
      seed: int("run.seed", s.seed, 0, 2 ** 32 - 1),
      sampleEvery: int("run.sampleEvery", s.sampleEvery, 0),
      samplesPerPoint: int("run.samplesPerPoint", s.samplesPerPoint, 1),
    }))(openSection(o.run, "run", ["outDir", "seed", "sampleEvery", "samplesPerPoint"]))),
    export: exportSection(o.export),
  });
  checkCrossFields(config);
  return config;
}

/**
 * Optimizer steps of the SFT phase: `steps` when set, else `epochs` passes over the examples.
 *
 * @param sft The SFT section.
 * @param numExamples Training examples available (after filtering).
 * @returns Steps (≥ 1).
 * @example
 * ```ts
 * import { sftTotalSteps } from "./train_config.ts";
 * import { presetConfig } from "./presets.ts";
 * const sft = { ...presetConfig("demo").sft, steps: null, epochs: 2 };
 * sftTotalSteps(sft, 100); // ceil(2 · 100 / (8 · 1)) = 25
 * ```
 */
export function sftTotalSteps(sft: SftSection, numExamples: number): number {
  if (sft.steps !== null) return sft.steps;
  const perStep = sft.microBatchSize * sft.gradientAccumulation;
  return Math.max(1, Math.ceil((sft.epochs * numExamples) / perStep));
}

/**
 * Optimizer steps of the GRPO phase (the recipe's `MAX_STEPS = NUM_BATCHES · NUM_ITERATIONS`).
 *
 * @param grpo The GRPO section.
 * @returns Steps.
 */
export function grpoTotalSteps(grpo: GrpoSection): number {
  return grpo.numBatches * grpo.numIterations;
}

/**
 * The learning-rate schedule of a phase (optax semantics): constant, or a linear warmup from 0
 * over `warmupFraction · totalSteps` updates then a cosine decay to `endLearningRate` at
 * `totalSteps` (the recipe's `warmup_cosine_decay_schedule(0, LR, 0.1·MAX_STEPS, MAX_STEPS)`).
 *
 * @param optimizer The phase's optimizer section.
 * @param totalSteps The phase's optimizer steps (≥ 1).
 * @returns The schedule.
 */
export function optimizerSchedule(optimizer: OptimizerSection, totalSteps: number): Schedule {
  if (optimizer.schedule === "constant") return constantSchedule(optimizer.learningRate);
  const warmupSteps = optimizer.warmupFraction * totalSteps;
  // subtle: optax needs decaySteps > warmupSteps; a one-step phase has no room for a warmup.
  return warmupCosineDecaySchedule({
    initValue: 0,
    peakValue: optimizer.learningRate,
    warmupSteps: totalSteps - warmupSteps >= 1 ? warmupSteps : 0,
    decaySteps: Math.max(1, totalSteps),
    endValue: optimizer.endLearningRate,
  });
}

/**
 * The AdamW config of a phase, with its schedule.
 *
 * @param optimizer The phase's optimizer section.
 * @param totalSteps The phase's optimizer steps.
 * @returns The AdamW config.
 */
export function phaseAdamW(optimizer: OptimizerSection, totalSteps: number): AdamWConfig {
  return adamwConfig({
    learningRate: optimizerSchedule(optimizer, totalSteps),
    b1: optimizer.b1,
    b2: optimizer.b2,
    eps: optimizer.eps,
    weightDecay: optimizer.weightDecay,
    maxGradNorm: optimizer.maxGradNorm,
  });
}

/**
 * The evaluation data source: `eval.data`, else `grpo.data`.
 *
 * @param config The config.
 * @returns `"demo"`, a path, or null when neither is set.
 */
export function evalDataSource(config: TrainConfig): string | null {
  return config.eval.data ?? config.grpo.data;
}

/** How a run decodes its evaluations: the `eval.*` decoding fields and the run seed. */
export type EvalDecoding = Omit<EvalConfig, "eosIds" | "systemPrompt">;

/**
 * The decoding settings of a run's evaluations — shared by its eval phases, periodic evals and
 * `deno task eval` on the run's export, so all three give the same numbers.
 *
 * @param config The run's config.
 * @returns The settings.
 * @example
 * ```ts
 * import { evalDecoding } from "./train_config.ts";
 * import { presetConfig } from "./presets.ts";
 * console.log(evalDecoding(presetConfig("demo")).temperature); // 0
 * ```
 */
export function evalDecoding(config: TrainConfig): EvalDecoding {
  const { maxNewTokens, batchSize, passes, temperature, topK, topP } = config.eval;
  return { maxNewTokens, batchSize, passes, temperature, topK, topP, seed: config.run.seed };
}

/**
 * Whether a run reads the evaluation questions: an evaluation phase, the periodic evaluation
 * (`eval.everySteps`), or SFT samples (`run.sampleEvery`: greedy answers to the first eval
 * questions).
 *
 * @param config The config.
 * @returns True when `eval.data` (or `grpo.data`) must provide the questions.
 * @example
 * ```ts
 * import { usesEvalQuestions } from "./train_config.ts";
 * import { presetConfig } from "./presets.ts";
 * if (!usesEvalQuestions(presetConfig("demo"))) throw new Error();
 * ```
 */
export function usesEvalQuestions(config: TrainConfig): boolean {
  const { eval: e, sft, grpo } = config;
  return e.base || (sft.enabled && e.afterSft) || (grpo.enabled && e.afterGrpo) ||
    e.everySteps > 0 || (sft.enabled && config.run.sampleEvery > 0);
}

/** Where to get each kind of input, for error messages. */
export const INPUT_HINTS: Readonly<Record<"model" | "sft" | "grpo" | "eval", string>> = Object
  .freeze({
    model: "pass --model DIR (a Hugging Face Gemma 3 folder, e.g. from " +
      "`huggingface-cli download google/gemma-3-1b-it`)",
    sft: "pass --sft-data PATH (OpenThoughts-114k, e.g. from " +
      "`huggingface-cli download --repo-type dataset open-thoughts/OpenThoughts-114k`) or " +
      "--set sft.enabled=false",
    grpo: "pass --data PATH (GSM8K, e.g. from " +
      "`huggingface-cli download --repo-type dataset openai/gsm8k`) or --set grpo.enabled=false",
    eval: "pass --data PATH (GSM8K with its test split) or --set eval.data=PATH",
  });

/**
 * Checks that every input an enabled phase needs is named (whether the paths exist is checked
 * by the file-system layer).
 *
 * @param config The config.
 * @throws {TrainConfigError} Naming the first missing field and how to provide it.
 */
export function requireInputs(config: TrainConfig): void {
  if (config.model.path === null) {
    throw new TrainConfigError("model.path", `model.path is not set: ${INPUT_HINTS.model}`);
  }
  if (config.sft.enabled && config.sft.data === null) {
    throw new TrainConfigError("sft.data", `sft.data is not set: ${INPUT_HINTS.sft}`);
  }
  if (config.grpo.enabled && config.grpo.data === null) {
    throw new TrainConfigError("grpo.data", `grpo.data is not set: ${INPUT_HINTS.grpo}`);
  }
  if (usesEvalQuestions(config) && evalDataSource(config) === null) {
    throw new TrainConfigError("eval.data", `eval.data is not set: ${INPUT_HINTS.eval}`);
  }
}
