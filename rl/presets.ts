/**
 * Named training presets and config resolution: a preset, overridden by a JSON config file,
 * overridden by command-line flags and `--set a.b=value` overrides, validated into one
 * {@linkcode TrainConfig}.
 *
 * - `gemma3-1b-gsm8k` — the seed recipe (Google Tunix `examples/grpo_gemma.ipynb`): Gemma 3
 *   1B-IT with LoRA rank 32 / alpha 32 on all seven projections; SFT on OpenThoughts-114k; GRPO
 *   on GSM8K train with G 4, μ 1, β 0.08, ε 0.2, T 0.9, top-k 50, top-p 1, prompts ≤ 256 and
 *   ≤ 768 new tokens, 3738 batches of 1 prompt, micro-batch 2; AdamW 3e-6 (b1 0.9, b2 0.99,
 *   wd 0.1, clip 0.1) with 10 % warmup and cosine decay; evaluation on 100 test questions;
 *   checkpoints every 500 steps, 4 kept.
 * - `demo` — a tiny Gemma 3-architecture model over a reduced vocabulary (see `vocab_map.ts`),
 *   trained from scratch on CPU: full-parameter SFT on the built-in easy arithmetic set, then
 *   GRPO with the recipe's rewards, then evaluation. Sizes, steps, lengths and learning rates
 *   are fields here, not constants in code. Measured on 2 CPU cores with Mesa's llvmpipe: about
 *   5.5 minutes (4 of them SFT); accuracy on the 200 test problems 0 % → 73.5 % after SFT →
 *   79 % after GRPO, format 0 % → 100 % → 100 %.
 *
 * @module
 */

import { describeValue } from "../base/field_error.ts";
import type { Gemma3Config } from "../model/config.ts";
import { LORA_TARGETS } from "../model/gemma3_weights.ts";
import { type IdEncoder, VocabMap } from "../model/vocab_map.ts";
import { generateDemoSet } from "../data/demo_set.ts";
import { toSftExample } from "../data/examples.ts";
import { demoGemma3Config } from "./_train_config_model.ts";
import { RECIPE_EVAL_CONFIG } from "./eval_config.ts";
import { GRPO_RECIPE_DEFAULTS } from "./grpo_config.ts";
import {
  createTrainConfig,
  type DemoDataSection,
  type DemoModelSection,
  type TrainConfig,
  TrainConfigError,
} from "./train_config.ts";

/** The preset names. */
export const PRESET_NAMES: readonly ["gemma3-1b-gsm8k", "demo"] = Object.freeze(
  ["gemma3-1b-gsm8k", "demo"] as const,
);

/** A preset name. */
export type PresetName = typeof PRESET_NAMES[number];

/** A JSON config tree, complete or partial (a config file, flag overrides). */
export type TrainConfigInput = { [key: string]: unknown };

/** The Hugging Face hub repo of the recipe's checkpoint. */
export const GEMMA3_1B_IT_REPO = "google/gemma-3-1b-it";

/** The GRPO fields whose null means "follow another field" (see `createGrpoConfig`). */
function grpoInputNulls(): TrainConfigInput {
  return {
    lossType: null,
    overlongPenalty: { enabled: false, maxLength: null, cacheLength: null },
  };
}

function recipeOptimizer(): TrainConfigInput {
  return {
    learningRate: 3e-6,
    schedule: "warmup-cosine",
    warmupFraction: 0.1,
    endLearningRate: 0,
    b1: 0.9,
    b2: 0.99,
    eps: 1e-8,
    weightDecay: 0.1,
    maxGradNorm: 0.1,
  };
}

/** The recipe's evaluation decoding (greedy, one pass), as preset fields. */
function recipeEvalDecoding(): TrainConfigInput {
  const { temperature, topK, topP, passes } = RECIPE_EVAL_CONFIG;
  return { temperature, topK, topP, passes };
}

function gemma3_1bGsm8k(): TrainConfigInput {
  return {
    preset: "gemma3-1b-gsm8k",
    model: { path: null, hubRepoId: GEMMA3_1B_IT_REPO, demo: null },
    lora: { rank: 32, alpha: 32, targets: [...LORA_TARGETS] },
    demoData: { seed: 0, trainSize: 2000, testSize: 200, difficulty: "easy" },
    sft: {
      enabled: true,
      data: null,
      maxExamples: null,
      steps: null,
      epochs: 1,
      microBatchSize: 2,
      gradientAccumulation: 1,
      maxPromptLength: 256,
      maxLength: 1024,
      optimizer: recipeOptimizer(),
    },
    grpo: {
      enabled: true,
      data: null,
      batchSize: 1,
      numBatches: 3738,
      microBatchSize: 2,
      ...GRPO_RECIPE_DEFAULTS,
      epsilonHigh: null,
      ...grpoInputNulls(),
      optimizer: recipeOptimizer(),
    },
    eval: {
      base: true,
      afterSft: true,
      afterGrpo: true,
      data: null,
      numQuestions: 100,
      batchSize: 4,
      maxPromptLength: 256,
      maxNewTokens: 768,
      ...recipeEvalDecoding(),
    },
    checkpoint: { everySteps: 500, keep: 4 },
    run: { outDir: "runs", seed: 42, sampleEvery: 100, samplesPerPoint: 2 },
    export: { merged: false },
  };
}

function demo(): TrainConfigInput {
  const optimizer = (learningRate: number): TrainConfigInput => ({
    learningRate,
    schedule: "warmup-cosine",
    warmupFraction: 0.1,
    endLearningRate: learningRate / 10,
    b1: 0.9,
    b2: 0.99,
    eps: 1e-8,
    weightDecay: 0.01,
    maxGradNorm: 1.0,
  });
  return {
    preset: "demo",
    model: {
      path: "demo",
      hubRepoId: GEMMA3_1B_IT_REPO,
      demo: {
        hiddenSize: 64,
        intermediateSize: 192,
        numLayers: 4,
        numHeads: 4,
        numKvHeads: 1,
        headDim: 16,
        slidingWindow: 32,
        // Alternating local/global layers: the answer needs numbers from the question, which
        // may sit further back than the window.
        slidingWindowPattern: 2,
        maxPositionEmbeddings: 128,
      },
    },
    lora: null,
    demoData: { seed: 0, trainSize: 2000, testSize: 200, difficulty: "easy" },
    sft: {
      enabled: true,
      data: "demo",
      maxExamples: null,
      // 500 × 16 = 8000 examples (4 epochs of the 2000 problems): the format within ~100 steps,
      // then the arithmetic facts, mostly during the cosine decay (~3/4 of the test set).
      steps: 500,
      epochs: 1,
      microBatchSize: 16,
      gradientAccumulation: 1,
      maxPromptLength: 96,
      maxLength: 128,
      optimizer: optimizer(3e-3),
    },
    grpo: {
      enabled: true,
      data: "demo",
      // 50 × 4 prompts × 8 completions. Full-parameter updates of a tiny model: 3e-4 undid part
      // of SFT in our runs, 1e-4 (and 5e-5) gained a few points of accuracy.
      batchSize: 4,
      numBatches: 50,
      microBatchSize: 32,
      ...GRPO_RECIPE_DEFAULTS,
      numGenerations: 8,
      epsilonHigh: null,
      ...grpoInputNulls(),
      maxPromptLength: 96,
      maxNewTokens: 32,
      optimizer: optimizer(1e-4),
    },
    eval: {
      base: true,
      afterSft: true,
      afterGrpo: true,
      data: "demo",
      // The whole test set: each evaluation takes seconds.
      numQuestions: 200,
      batchSize: 25,
      maxPromptLength: 96,
      maxNewTokens: 32,
      ...recipeEvalDecoding(),
    },
    checkpoint: { everySteps: 100, keep: 2 },
    run: { outDir: "runs", seed: 0, sampleEvery: 20, samplesPerPoint: 2 },
    export: { merged: false },
  };
}

function checkPresetName(name: string): PresetName {
  if (!(PRESET_NAMES as readonly string[]).includes(name)) {
    throw new TrainConfigError(
      "preset",
      `preset must be one of ${PRESET_NAMES.map((n) => JSON.stringify(n)).join(", ")}, got ` +
        describeValue(name),
    );
  }
  return name as PresetName;
}

/**
 * A preset as a fresh, mutable JSON tree (to merge overrides into).
 *
 * @param name Preset name.
 * @returns The complete input tree of the preset.
 * @throws {TrainConfigError} For an unknown name (field `preset`).
 */
export function presetInput(name: string): TrainConfigInput {
  return checkPresetName(name) === "demo" ? demo() : gemma3_1bGsm8k();
}

/**
 * A preset, validated.
 *
 * @param name Preset name.
 * @returns The frozen config.
 * @example
 * ```ts
 * import { presetConfig } from "./presets.ts";
 * const c = presetConfig("gemma3-1b-gsm8k");
 * if (c.grpo.beta !== 0.08 || c.lora?.rank !== 32 || c.grpo.epsilonHigh !== 0.2) throw new Error();
 * ```
 */
export function presetConfig(name: string): TrainConfig {
  return createTrainConfig(presetInput(name));
}

function isPlainObject(v: unknown): v is TrainConfigInput {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Deep-merges `patch` into a copy of `base`: objects merge key by key; arrays, null and scalars
 * replace; `undefined` leaves the base value.
 *
 * @param base The lower-precedence tree.
 * @param patch The higher-precedence tree.
 * @returns A new tree (inputs untouched).
 * @example
 * ```ts
 * import { mergeConfigInput } from "./presets.ts";
 * const m = mergeConfigInput({ a: { b: 1, c: 2 } }, { a: { c: 3 } });
 * if (JSON.stringify(m) !== '{"a":{"b":1,"c":3}}') throw new Error();
 * ```
 */
export function mergeConfigInput(
  base: TrainConfigInput,
  patch: TrainConfigInput,
): TrainConfigInput {
  const out: TrainConfigInput = structuredClone(base);
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    out[key] = isPlainObject(value) && isPlainObject(out[key])
      ? mergeConfigInput(out[key] as TrainConfigInput, value)
      : structuredClone(value);
  }
  return out;
}

/**
 * Parses one `--set path=value` override. The value is read as JSON when it parses (`0.04`,
 * `true`, `null`, `["q_proj"]`, `"text"`), else taken as a plain string (`runs/x`).
 *
 * @param text `dotted.path=value`.
 * @returns A tree holding only that value.
 * @throws {TrainConfigError} When there is no `=` or the path is malformed (field `--set`).
 * @example
 * ```ts
 * import { parseSetOverride } from "./presets.ts";
 * const o = parseSetOverride("grpo.beta=0.04");
 * if (JSON.stringify(o) !== '{"grpo":{"beta":0.04}}') throw new Error();
 * ```
 */
export function parseSetOverride(text: string): TrainConfigInput {
  const eq = text.indexOf("=");
  const path = eq < 0 ? "" : text.slice(0, eq).trim();
  if (eq < 0 || !/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(path)) {
    throw new TrainConfigError(
      "--set",
      `--set expects dotted.path=value (e.g. grpo.beta=0.04), got ${JSON.stringify(text)}`,
    );
  }
  const raw = text.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  const keys = path.split(".");
  let tree: unknown = value;
  for (let i = keys.length - 1; i >= 0; i--) tree = { [keys[i]]: tree };
  return tree as TrainConfigInput;
}

/** Inputs of {@linkcode resolveTrainConfig}, lowest precedence first. */
export interface ResolveTrainConfigOptions {
  /** The preset to start from. */
  readonly preset: string;
  /** A config file's contents (partial tree; its `preset` key, if any, is ignored here). */
  readonly file?: TrainConfigInput | null;
  /** Overrides from dedicated flags (`--model`, `--data`, …) as a partial tree. */
  readonly flags?: TrainConfigInput | null;
  /** `--set path=value` texts, applied last, in order. */
  readonly sets?: readonly string[];
}

/**
 * Resolves the run's config: preset < file < flags < `--set`, then validates.
 *
 * @param options Preset, file, flags and `--set` overrides.
 * @returns The frozen config (its `preset` is the chosen preset).
 * @throws {TrainConfigError} Naming the first invalid field.
 * @example
 * ```ts
 * import { resolveTrainConfig } from "./presets.ts";
 * const c = resolveTrainConfig({
 *   preset: "demo", file: { grpo: { beta: 0.1 } }, sets: ["grpo.beta=0.04"],
 * });
 * if (c.grpo.beta !== 0.04) throw new Error();
 * ```
 */
export function resolveTrainConfig(options: ResolveTrainConfigOptions): TrainConfig {
  let tree = presetInput(options.preset);
  if (options.file) {
    if (!isPlainObject(options.file)) {
      throw new TrainConfigError("", `the config file must hold a JSON object`);
    }
    tree = mergeConfigInput(tree, options.file);
  }
  if (options.flags) tree = mergeConfigInput(tree, options.flags);
  for (const set of options.sets ?? []) tree = mergeConfigInput(tree, parseSetOverride(set));
  tree.preset = options.preset;
  return createTrainConfig(tree);
}

/**
 * The texts of the demo corpus the demo vocabulary must cover: every train and test problem's
 * prompt (recipe template, system prompt included) and SFT target.
 *
 * @param demoData The demo set's settings.
 * @returns Prompts and targets, in set order.
 */
export function demoCorpusTexts(demoData: DemoDataSection): string[] {
  const set = generateDemoSet({
    seed: demoData.seed,
    trainSize: demoData.trainSize,
    testSize: demoData.testSize,
    difficulty: demoData.difficulty,
  });
  const texts: string[] = [];
  for (const r of [...set.train, ...set.test]) {
    const ex = toSftExample(r);
    texts.push(ex.prompt, ex.target);
  }
  return texts;
}

/**
 * The demo model's reduced vocabulary: the real tokenizer's ids of the demo corpus plus
 * Gemma 3's special ids and the digits (see `vocab_map.ts`). Deterministic for a given
 * `demoData` and tokenizer.
 *
 * @param demoData The demo set's settings.
 * @param tokenizer The real Gemma 3 tokenizer.
 * @param realVocabSize Size of the real vocabulary (Gemma 3: 262144), or null.
 * @returns The map.
 */
export function demoVocabMap(
  demoData: DemoDataSection,
  tokenizer: IdEncoder,
  realVocabSize: number | null = 262144,
): VocabMap {
  return VocabMap.fromTexts(demoCorpusTexts(demoData), tokenizer, { realVocabSize });
}

/**
 * The demo model's Gemma 3 config over a vocab map: compact `<bos>` / `<pad>`, and compact
 * `<eos>` and `<end_of_turn>` as end ids.
 *
 * @param demo The demo model's sizes (`config.model.demo`).
 * @param vocab The vocab map.
 * @returns The validated config.
 */
export function demoModelConfig(demo: DemoModelSection, vocab: VocabMap): Gemma3Config {
  return demoGemma3Config(demo, {
    size: vocab.size,
    bosId: vocab.toCompact(2),
    padId: vocab.toCompact(0),
    eosIds: [vocab.toCompact(1), vocab.toCompact(106)],
  });
}
