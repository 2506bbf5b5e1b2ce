/**
 * Everything a training run can check before it starts, in one place: the config's own rules
 * (ranges and combinations, `createTrainConfig`), the inputs it names, the datasets (readable,
 * enough evaluation questions: `eval.numQuestions` is refused, never cut, when the set is
 * smaller), the lengths against the model's context, and the tokenizer against the model's
 * vocabulary. `train()` runs {@linkcode validateRun} before it makes a run folder, so a mistake
 * is reported with the field that causes it and what was expected, before anything is written;
 * the disk checks (paths exist) are added by `validateRunFs` in `run_validation_fs.ts`.
 *
 * @module
 */

import { FieldError, type FieldErrorDetails } from "../base/field_error.ts";
import { DatasetNotFoundError } from "../data/errors.ts";
import { toSftExample } from "../data/examples.ts";
import type { Gemma3Config } from "../model/config.ts";
import {
  cachedInputSources,
  createRunInputs,
  InputSourceError,
  type InputSources,
} from "./run_inputs.ts";
import { MemoryRunStore } from "./run_store.ts";
import {
  checkContextLengths,
  createTrainConfig,
  DEMO_SOURCE,
  evalDataSource,
  INPUT_HINTS,
  requireInputs,
  type TrainConfig,
  TrainConfigError,
  usesEvalQuestions,
} from "./train_config.ts";

/** A tokenizer whose ids do not fit the model's vocabulary (a tokenizer of another model). */
export class TokenizerMismatchError extends FieldError {
  override readonly name: string = "TokenizerMismatchError";
  /** The tokenizer (its file, or which built-in one). */
  readonly tokenizer: string;
  /** The model's `config.json`. */
  readonly model: string;

  /**
   * @param message What does not fit, naming both files.
   * @param files `tokenizer` and `model`: the two files.
   * @param details The id found (`got`) and the vocabulary (`expected`).
   */
  constructor(
    message: string,
    files: { readonly tokenizer: string; readonly model: string },
    details: FieldErrorDetails = {},
  ) {
    super("model.path", message, details);
    this.tokenizer = files.tokenizer;
    this.model = files.model;
  }
}

/** What {@linkcode validateRun} hands to `train()`. */
export interface ValidatedRun {
  /** The config that was checked (`train()` uses the result only for this very object). */
  readonly config: TrainConfig;
  /** The sources, holding what the checks read (tokenizer, datasets), so nothing is read twice. */
  readonly sources: InputSources;
}

/** Options of {@linkcode validateRun}. */
export interface ValidateRunOptions {
  /** Where the model folder's config, the tokenizer and the datasets come from. */
  readonly sources: InputSources;
}

/** Ids of every text a real model reads, with what the text is (for the message). */
async function modelTexts(
  config: TrainConfig,
  sources: InputSources,
): Promise<[string, string][]> {
  // A probe of the recipe's template, so a run with only OpenThoughts SFT is checked too.
  const probe = toSftExample({ question: "What is 12 + 30?", reasoning: "12 + 30", answer: "42" });
  const texts: [string, string][] = [
    ["the prompt template", probe.prompt],
    ["the answer template", `${probe.target}<end_of_turn>`],
  ];
  // subtle: the store is only touched for the demo model's vocabulary, never here
  const inputs = createRunInputs(config, { sources, store: new MemoryRunStore("validation") });
  if (config.grpo.enabled) {
    (await inputs.grpoExamples()).forEach((e, i) => texts.push([`GRPO prompt ${i}`, e.prompt]));
  }
  if (usesEvalQuestions(config)) {
    (await inputs.evalExamples()).forEach((e, i) => texts.push([`eval question ${i}`, e.prompt]));
  }
  if (config.sft.enabled && config.sft.data === DEMO_SOURCE) {
    (await inputs.sftExamples()).forEach((e, i) =>
      texts.push([`SFT example ${i}`, `${e.prompt}${e.target}`])
    );
  }
  return texts;
}

/** Checks that every id the tokenizer gives for the run's texts is below `vocabSize`. */
async function checkTokenizerFits(
  config: TrainConfig,
  sources: InputSources,
  model: Gemma3Config,
): Promise<void> {
  const path = config.model.path!;
  const tokenizer = await sources.tokenizer(path);
  const vocabSize = model.vocabSize;
  for (const [what, text] of await modelTexts(config, sources)) {
    const id = tokenizer.encode(text, { addSpecialTokens: true }).find((i) => i >= vocabSize);
    if (id === undefined) continue;
    const label = await sources.tokenizerLabel?.(path) ?? `the tokenizer of ${path}`;
    const modelFile = `${path.replace(/[/\\]+$/, "")}/config.json`;
    throw new TokenizerMismatchError(
      `the ids of ${label} do not fit the model ${modelFile}: it gives id ${id} for ${what}, ` +
        `but vocab_size is ${vocabSize}; the tokenizer is not this model's (put the model's ` +
        `own tokenizer.json next to its config.json)`,
      { tokenizer: label, model: modelFile },
      { expected: `token ids < ${vocabSize}`, got: id },
    );
  }
}

/** Reads a GSM8K split, naming the config field when it is not there. */
async function readGsm8k(
  sources: InputSources,
  field: string,
  path: string,
  split: "train" | "test",
): Promise<number> {
  try {
    return (await sources.loadGsm8k(path, { split })).length;
  } catch (e) {
    if (!(e instanceof DatasetNotFoundError)) throw e;
    const hint = field === "grpo.data" ? INPUT_HINTS.grpo : INPUT_HINTS.eval;
    throw new InputSourceError(field, `${field}: ${e.message}; ${hint}`);
  }
}

/**
 * Checks a run before it starts: the config tree and its combinations (also for a config
 * built by hand), the inputs it needs, the GSM8K splits (readable; at least
 * `eval.numQuestions` test questions), and for a model folder: `sft.maxLength`, the GRPO and
 * evaluation prompt + answer lengths against its `max_position_embeddings`, and the ids the
 * tokenizer gives for the prompts against its `vocab_size`. What it reads stays in the returned
 * sources for the run.
 *
 * @param config The run's config.
 * @param options `sources`: where the model config, tokenizer and datasets come from.
 * @returns The config and the sources to run with (pass both to `train()` as `validated`).
 * @throws {TrainConfigError} Naming the field and what was expected (a bad value or
 *   combination, `eval.numQuestions` above the questions available, a length above the
 *   model's context).
 * @throws {InputSourceError} When a dataset has no file of the split a phase reads.
 * @throws {TokenizerMismatchError} Naming the tokenizer and the model's `config.json`.
 * @example
 * ```ts
 * import { validateRun } from "./run_validation.ts";
 * import { staticInputSources } from "./run_inputs.ts";
 * import { resolveTrainConfig } from "./presets.ts";
 * const config = resolveTrainConfig({ preset: "demo" });
 * const bad = { ...config, eval: { ...config.eval, numQuestions: 100000 } };
 * const e = await validateRun(bad, { sources: staticInputSources({}) }).catch((e) => e);
 * if (e.field !== "eval.numQuestions") throw new Error(e.message); // at most 200
 * ```
 */
export async function validateRun(
  config: TrainConfig,
  options: ValidateRunOptions,
): Promise<ValidatedRun> {
  createTrainConfig(JSON.parse(JSON.stringify(config)));
  requireInputs(config);
  const sources = cachedInputSources(options.sources);
  if (config.grpo.enabled && config.grpo.data !== DEMO_SOURCE) {
    const n = await readGsm8k(sources, "grpo.data", config.grpo.data!, "train");
    if (n === 0) {
      throw new InputSourceError(
        "grpo.data",
        `grpo.data: ${config.grpo.data} holds no GSM8K record`,
      );
    }
  }
  const evalSource = evalDataSource(config);
  if (usesEvalQuestions(config) && evalSource !== DEMO_SOURCE) {
    const available = await readGsm8k(sources, "eval.data", evalSource!, "test");
    const n = config.eval.numQuestions;
    if (n > available) {
      throw new TrainConfigError(
        "eval.numQuestions",
        `eval.numQuestions must be <= ${available}, the test questions in ${evalSource}, got ${n}`,
        { expected: `<= ${available}`, got: n },
      );
    }
  }
  const path = config.model.path;
  if (path !== null && path !== DEMO_SOURCE && sources.modelConfig) {
    const model = await sources.modelConfig(path);
    checkContextLengths(
      config,
      model.maxPositionEmbeddings,
      `max_position_embeddings of ${path.replace(/[/\\]+$/, "")}/config.json`,
    );
    await checkTokenizerFits(config, sources, model);
  }
  return { config, sources };
}
