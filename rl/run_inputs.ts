/**
 * The inputs of a training run, each loaded once, on first use: the tokenizer (compact ids for
 * the demo model, through a vocabulary saved in the run's store), the SFT, GRPO and evaluation
 * examples. Whatever reads files — a model folder's tokenizer, the datasets, the model itself —
 * comes from an injected {@linkcode InputSources}; `run_inputs_fs.ts` has the Deno one, and
 * {@linkcode staticInputSources} serves runs that read nothing (the demo given a tokenizer).
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { generateDemoSet } from "../data/demo_set.ts";
import {
  type GrpoExample,
  type SftExample,
  toGrpoExample,
  toSftExample,
} from "../data/examples.ts";
import type { Gsm8kOptions, Gsm8kRecord } from "../data/gsm8k.ts";
import type { OpenThoughtsOptions, OpenThoughtsRecord } from "../data/open_thoughts.ts";
import type { Gpu } from "../kernels/gpu.ts";
import type { Gemma3Config } from "../model/config.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import { compactCodec, type IdCodec, type VocabMap } from "../model/vocab_map.ts";
import type { ExportFile } from "./export_files.ts";
import { demoVocabMap } from "./presets.ts";
import type { RunStore } from "./run_store.ts";
import { DEMO_SOURCE, evalDataSource, type TrainConfig } from "./train_config.ts";

/** Where a run's files come from (injectable: disk in Deno, anything elsewhere). */
export interface InputSources {
  /**
   * The real tokenizer of a run.
   *
   * @param modelPath `model.path`: a model folder (its `tokenizer.json`), or `"demo"`.
   * @returns The tokenizer (Gemma 3's own when the folder has none, and for the demo).
   */
  tokenizer(modelPath: string | null): Promise<Tokenizer>;
  /**
   * Loads a Gemma 3 folder onto the GPU.
   *
   * @param path The folder (`config.json` + `*.safetensors`).
   * @param gpu The device.
   * @returns The model.
   */
  loadModel(path: string, gpu: Gpu): Promise<Gemma3>;
  /**
   * Reads OpenThoughts-114k records (SFT).
   *
   * @param path `sft.data`.
   * @param options Length limit, token counter, record limit.
   * @returns The records.
   */
  loadOpenThoughts(
    path: string,
    options: OpenThoughtsOptions,
  ): Promise<readonly OpenThoughtsRecord[]>;
  /**
   * Reads GSM8K records (GRPO prompts, evaluation questions).
   *
   * @param path `grpo.data` or `eval.data`.
   * @param options Split and limit.
   * @returns The records.
   */
  loadGsm8k(path: string, options: Gsm8kOptions): Promise<readonly Gsm8kRecord[]>;
  /**
   * The tokenizer files an export carries (`tokenizer.json`, `tokenizer_config.json`, … of the
   * model folder; Gemma 3's own for the demo). Optional: without it exports have none, and
   * loaders fall back to Gemma 3's built-in tokenizer.
   *
   * @param modelPath `model.path`: a model folder, or `"demo"`.
   * @returns The files present (read while the export is written).
   */
  tokenizerFiles?(modelPath: string): Promise<readonly ExportFile[]>;
  /**
   * A model folder's config (vocabulary size, context length) without its weights. Optional:
   * without it `validateRun` skips the checks that need the model's sizes.
   *
   * @param path The folder (`model.path`).
   * @returns The config.
   */
  modelConfig?(path: string): Promise<Gemma3Config>;
  /**
   * Names the tokenizer that `tokenizer(modelPath)` returns (its file), for messages.
   *
   * @param modelPath `model.path`.
   * @returns E.g. `models/gemma-3-1b-it/tokenizer.json`.
   */
  tokenizerLabel?(modelPath: string | null): Promise<string>;
}

/** Thrown when a run needs an input its {@linkcode InputSources} cannot provide. */
export class InputSourceError extends FieldError {
  override readonly name: string = "InputSourceError";
}

/**
 * Sources for runs that read no files: the given tokenizer for every model path; loading a
 * model folder or a dataset path throws {@linkcode InputSourceError}. Enough for the demo preset.
 *
 * @param options `tokenizer`: the real Gemma 3 tokenizer (required by every run).
 * @returns The sources.
 * @example
 * ```ts
 * import { staticInputSources } from "./run_inputs.ts";
 * const sources = staticInputSources({});
 * const e = await sources.tokenizer("demo").catch((e) => e);
 * if (e.name !== "InputSourceError") throw new Error();
 * ```
 */
export function staticInputSources(options: { readonly tokenizer?: Tokenizer }): InputSources {
  const unavailable = (field: string, what: string) =>
    Promise.reject(
      new InputSourceError(
        field,
        `${field}: ${what} needs file access; use train() from mod.ts (Deno) or pass ` +
          "options.sources",
      ),
    );
  return {
    tokenizer: () =>
      options.tokenizer ? Promise.resolve(options.tokenizer) : Promise.reject(
        new InputSourceError(
          "tokenizer",
          "tokenizer: no tokenizer was given; pass options.tokenizer (e.g. " +
            "Tokenizer.fromJSON(...)) or use train() from mod.ts (Deno)",
        ),
      ),
    loadModel: (path) => unavailable("model.path", `loading the model folder ${path}`),
    loadOpenThoughts: (path) => unavailable("sft.data", `reading ${path}`),
    loadGsm8k: (path) => unavailable("grpo.data", `reading ${path}`),
  };
}

/**
 * Wraps input sources so that each tokenizer, model config and GSM8K split is read once: what
 * `validateRun` reads before a run starts is what the run then uses. Other calls (and optional
 * methods) go to `sources` unchanged.
 *
 * @param sources The sources to wrap.
 * @returns The caching sources.
 * @example
 * ```ts
 * import { cachedInputSources, staticInputSources } from "./run_inputs.ts";
 * import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
 * const tokenizer = await loadDefaultTokenizer();
 * const sources = cachedInputSources(staticInputSources({ tokenizer }));
 * if (await sources.tokenizer("demo") !== tokenizer) throw new Error();
 * ```
 */
export function cachedInputSources(sources: InputSources): InputSources {
  const memo = new Map<string, Promise<unknown>>();
  const once = <T>(key: string, load: () => Promise<T>): Promise<T> => {
    let value = memo.get(key) as Promise<T> | undefined;
    if (value === undefined) {
      value = load();
      memo.set(key, value);
      // A failed read is tried again next time.
      value.catch(() => memo.delete(key));
    }
    return value;
  };
  const cached: Partial<InputSources> = {
    tokenizer: (modelPath) => once(`tokenizer\0${modelPath}`, () => sources.tokenizer(modelPath)),
    loadGsm8k: (path, options) =>
      options.onSkip !== undefined ? sources.loadGsm8k(path, options) : once(
        `gsm8k\0${path}\0${options.split}\0${options.config}\0${options.limit}`,
        () => sources.loadGsm8k(path, options),
      ),
  };
  const modelConfig = sources.modelConfig;
  if (modelConfig) {
    cached.modelConfig = (path) => once(`config\0${path}`, () => modelConfig.call(sources, path));
  }
  // subtle: inherit the rest, so methods of a class instance keep working
  return Object.assign(Object.create(sources), cached) as InputSources;
}

/** A run's inputs, each loaded once, on first use. */
export interface RunInputs {
  /** The run's config. */
  readonly config: TrainConfig;
  /** Where models come from (the sources' `loadModel`). */
  readonly sources: InputSources;
  /** The real tokenizer (the model folder's `tokenizer.json`, else Gemma 3's built-in one). */
  tokenizer(): Promise<Tokenizer>;
  /** The demo model's reduced vocabulary (built and saved, or read back on resume); null for a
   * real checkpoint. */
  vocabMap(): Promise<VocabMap | null>;
  /** What the model reads and writes: compact ids for the demo model, real ids otherwise. */
  codec(): Promise<IdCodec>;
  /** SFT examples (demo train set or OpenThoughts), at most `sft.maxExamples`. */
  sftExamples(): Promise<readonly SftExample[]>;
  /** GRPO prompts (demo train set or GSM8K train). */
  grpoExamples(): Promise<readonly GrpoExample[]>;
  /** Evaluation questions (demo test set or GSM8K test), `eval.numQuestions` of them. */
  evalExamples(): Promise<readonly GrpoExample[]>;
}

function once<T>(load: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | null = null;
  return () => value ??= load();
}

/**
 * Builds the lazily loaded {@linkcode RunInputs} of a run.
 *
 * @param config The run's config (`model.path` resolved to a folder or `"demo"`).
 * @param options `sources` (files) and `store` (keeps the demo vocabulary).
 * @returns The inputs; nothing is loaded before the first call.
 * @example
 * ```ts
 * import { createRunInputs, staticInputSources } from "./run_inputs.ts";
 * import { MemoryRunStore } from "./run_store.ts";
 * import { presetConfig } from "./presets.ts";
 * const inputs = createRunInputs(presetConfig("demo"), {
 *   sources: staticInputSources({}),
 *   store: new MemoryRunStore(),
 * });
 * if ((await inputs.grpoExamples()).length !== 2000) throw new Error();
 * ```
 */
export function createRunInputs(
  config: TrainConfig,
  options: { readonly sources: InputSources; readonly store: RunStore },
): RunInputs {
  const { sources, store } = options;
  const demoSet = once(() =>
    Promise.resolve(generateDemoSet({
      seed: config.demoData.seed,
      trainSize: config.demoData.trainSize,
      testSize: config.demoData.testSize,
      difficulty: config.demoData.difficulty,
    }))
  );
  const tokenizer = once(() => sources.tokenizer(config.model.path));
  const vocabMap = once(async () => {
    if (config.model.path !== DEMO_SOURCE) return null;
    const saved = await store.loadVocabMap();
    if (saved !== null) return saved;
    const map = demoVocabMap(config.demoData, await tokenizer());
    await store.saveVocabMap(map);
    return map;
  });
  const codec = once(async (): Promise<IdCodec> => {
    const map = await vocabMap();
    return map === null ? await tokenizer() : compactCodec(await tokenizer(), map);
  });
  const sftExamples = once(async (): Promise<readonly SftExample[]> => {
    const source = config.sft.data;
    const limit = config.sft.maxExamples ?? undefined;
    if (source === DEMO_SOURCE) {
      return (await demoSet()).train.slice(0, limit).map((r) => toSftExample(r));
    }
    if (source === null) throw new Error("sft.data is not set");
    const tok = await tokenizer();
    const records = await sources.loadOpenThoughts(source, {
      maxTokens: config.sft.maxLength,
      countTokens: (text) => tok.encode(text).length,
      limit,
    });
    return records.map((r) => toSftExample(r));
  });
  const grpoExamples = once(async (): Promise<readonly GrpoExample[]> => {
    const source = config.grpo.data;
    if (source === DEMO_SOURCE) return (await demoSet()).train.map((r) => toGrpoExample(r));
    if (source === null) throw new Error("grpo.data is not set");
    return (await sources.loadGsm8k(source, { split: "train" })).map((r) => toGrpoExample(r));
  });
  const evalExamples = once(async (): Promise<readonly GrpoExample[]> => {
    const source = evalDataSource(config);
    const n = config.eval.numQuestions;
    if (source === DEMO_SOURCE) {
      return (await demoSet()).test.slice(0, n).map((r) => toGrpoExample(r));
    }
    if (source === null) throw new Error("eval.data is not set");
    // The whole split (one read, shared with validateRun through cachedInputSources).
    const records = await sources.loadGsm8k(source, { split: "test" });
    if (records.length < n) {
      throw new InputSourceError(
        "eval.numQuestions",
        `eval.numQuestions must be <= ${records.length}, the test questions in ${source}, got ${n}`,
        { expected: `<= ${records.length}`, got: n },
      );
    }
    return records.slice(0, n).map((r) => toGrpoExample(r));
  });
  return {
    config,
    sources,
    tokenizer,
    vocabMap,
    codec,
    sftExamples,
    grpoExamples,
    evalExamples,
  };
}
