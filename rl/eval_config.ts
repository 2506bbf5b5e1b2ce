/**
 * Settings of the recipe's evaluation (see `evaluate.ts`): greedy decoding with 768 new tokens
 * that stops at `<eos>` / `<end_of_turn>`, one pass; sampled decoding and several passes on
 * request. Validated once, frozen.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { SYSTEM_PROMPT } from "../data/prompt.ts";

/** Thrown for an invalid evaluation option or input; `field` (= `path`) names it. */
export class EvalError extends FieldError {
  override readonly name: string = "EvalError";
}

/** Decoding and batching settings of an evaluation. */
export interface EvalConfig {
  /** Tokens generated per completion at most (recipe: 768). */
  readonly maxNewTokens: number;
  /** Prompts per `generate` call. */
  readonly batchSize: number;
  /** Completions per question; any pass counts. > 1 needs `temperature > 0`. */
  readonly passes: number;
  /** 0 = greedy (the recipe's evaluation); > 0 samples. */
  readonly temperature: number;
  /** Keep the k most likely tokens (0 = off). */
  readonly topK: number;
  /** Nucleus mass (1 = off). */
  readonly topP: number;
  /** Seed of pass 0 (u32); pass p uses `seed + p`. */
  readonly seed: number;
  /** A completion ends at the first of these ids (recipe: `<eos>` 1, `<end_of_turn>` 106). */
  readonly eosIds: readonly number[];
  /** System prompt of the recipe's prompt. */
  readonly systemPrompt: string;
}

/** The recipe's evaluation settings (greedy, 768 new tokens, stop at ids 1 and 106). */
export const RECIPE_EVAL_CONFIG: EvalConfig = Object.freeze({
  maxNewTokens: 768,
  batchSize: 8,
  passes: 1,
  temperature: 0,
  topK: 0,
  topP: 1,
  seed: 0,
  eosIds: Object.freeze([1, 106]),
  systemPrompt: SYSTEM_PROMPT,
});

function check(field: string, value: number, ok: boolean, expected: string): void {
  if (typeof value !== "number" || !Number.isFinite(value) || !ok) {
    throw EvalError.mustBe(field, expected, value, String);
  }
}

/**
 * Fills unset fields with {@linkcode RECIPE_EVAL_CONFIG} and validates.
 *
 * @param options Any subset of the settings.
 * @returns A frozen config.
 * @throws {EvalError} Naming the first invalid field.
 * @example
 * ```ts
 * import { evalConfig } from "./eval_config.ts";
 * const c = evalConfig({ passes: 4, temperature: 0.7, topK: 50, topP: 0.95 });
 * if (c.maxNewTokens !== 768 || c.seed !== 0) throw new Error("unexpected");
 * ```
 */
export function evalConfig(options: Partial<EvalConfig> = {}): EvalConfig {
  const c = { ...RECIPE_EVAL_CONFIG };
  for (const key of Object.keys(RECIPE_EVAL_CONFIG) as (keyof EvalConfig)[]) {
    if (options[key] !== undefined) Object.assign(c, { [key]: options[key] });
  }
  const isInt = Number.isInteger;
  check(
    "maxNewTokens",
    c.maxNewTokens,
    isInt(c.maxNewTokens) && c.maxNewTokens >= 1,
    "an integer >= 1",
  );
  check("batchSize", c.batchSize, isInt(c.batchSize) && c.batchSize >= 1, "an integer >= 1");
  check("passes", c.passes, isInt(c.passes) && c.passes >= 1, "an integer >= 1");
  check("temperature", c.temperature, c.temperature >= 0, ">= 0");
  check("topK", c.topK, isInt(c.topK) && c.topK >= 0, "an integer >= 0");
  check("topP", c.topP, c.topP > 0 && c.topP <= 1, "in (0, 1]");
  check(
    "seed",
    c.seed,
    isInt(c.seed) && c.seed >= 0 && c.seed < 2 ** 32,
    "an integer in [0, 2^32)",
  );
  if (c.passes > 1 && c.temperature === 0) {
    throw new EvalError(
      "temperature",
      `passes = ${c.passes} needs sampled decoding (temperature > 0): greedy passes are all identical`,
    );
  }
  if (!Array.isArray(c.eosIds) || c.eosIds.some((id) => !isInt(id) || id < 0)) {
    throw EvalError.mustBe("eosIds", "an array of token ids", c.eosIds, String);
  }
  if (typeof c.systemPrompt !== "string") {
    throw new EvalError("systemPrompt", "systemPrompt must be a string");
  }
  return Object.freeze({ ...c, eosIds: Object.freeze([...c.eosIds]) });
}

/**
 * Number of `generate` calls (progress steps) an evaluation makes.
 *
 * @param numQuestions Questions to evaluate.
 * @param config Batch size and passes.
 * @returns `ceil(numQuestions / batchSize) * passes`.
 */
export function evalStepCount(
  numQuestions: number,
  config: Pick<EvalConfig, "batchSize" | "passes">,
): number {
  return Math.ceil(numQuestions / config.batchSize) * config.passes;
}
