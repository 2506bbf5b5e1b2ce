/**
 * Evaluation on disk (Deno only): {@linkcode evaluateModelDir} runs the recipe's evaluation of a
 * Gemma 3 folder (optionally with a LoRA adapter), a run's export or a run folder (see
 * `export_source_fs.ts`) on GSM8K or the demo set and writes the results; the writers store `<name>_summary.json` (the summary plus caller metadata),
 * `<name>_records.jsonl` (one question per line) and the run's `eval.json`
 * (`{ "base": E, "sft": E, "grpo": E }`, one entry per phase). Every file is written to a
 * temporary file and renamed over the old one, so readers never see a partial file.
 *
 * @module
 */

import { joinPath, pathExists, writeTextAtomic } from "../base/atomic_fs.ts";
import { defaultHubCacheDir, type HubCacheEnv } from "../data/dataset_fs.ts";
import { type DemoSetOptions, generateDemoSet } from "../data/demo_set.ts";
import { loadGsm8k } from "../data/gsm8k_fs.ts";
import { buildPrompt } from "../data/prompt.ts";
import { loadGemma3Config } from "../model/config_fs.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { disposeGemma3Weights } from "../model/gemma3_weights.ts";
import { checkTokenIds, loadModelCodec } from "../model/model_dir_fs.ts";
import {
  type EvalConfig,
  evalConfig,
  EvalError,
  type EvalPhaseEntry,
  evalPhaseEntry,
  type EvalProgressSink,
  type EvalQuestion,
  type EvalQuestionRecord,
  type EvalResult,
  type EvalResultSummary,
  evalStepCount,
  evaluate,
} from "./evaluate.ts";
import { resolveModelSource, runEvalSettings } from "./export_source_fs.ts";
import type { EvalSummary } from "./scoring.ts";

/** An evaluation input the user can fix: a missing data or adapter folder, no questions. */
export class EvalInputError extends Error {
  override readonly name: string = "EvalInputError";
}

/** Where {@linkcode loadEvalQuestions} reads questions. */
export interface EvalQuestionsOptions {
  /** A GSM8K file or folder, `"demo"` (the built-in arithmetic set), or null: the hub cache. */
  readonly data?: string | null;
  /** Split (default `"test"`). */
  readonly split?: "train" | "test";
  /** The first N questions (default all). */
  readonly limit?: number | null;
  /** Decides the hub cache folder when `data` is null (e.g. `Deno.env.toObject()`). */
  readonly env?: HubCacheEnv;
  /** The demo set's generator settings for `data: "demo"` (default the built-in set's). */
  readonly demoData?: DemoSetOptions;
}

/** Questions and where they came from. */
export interface EvalQuestions {
  /** The questions. */
  readonly questions: EvalQuestion[];
  /** The path read, or `"demo <split> set"`. */
  readonly source: string;
}

/**
 * Loads evaluation questions from GSM8K (a file, folder or the hub cache) or the demo set.
 *
 * @param options Source, split and limit.
 * @returns The questions and their source.
 * @throws {EvalInputError} When the data path (or the hub cache) does not exist.
 * @example
 * ```ts
 * import { loadEvalQuestions } from "./evaluate_fs.ts";
 * const { questions, source } = await loadEvalQuestions({ data: "demo", limit: 3 });
 * if (questions.length !== 3 || source !== "demo test set") throw new Error(source);
 * ```
 */
export async function loadEvalQuestions(
  options: EvalQuestionsOptions = {},
): Promise<EvalQuestions> {
  const split = options.split ?? "test";
  const limit = options.limit ?? undefined;
  if (options.data === "demo") {
    const { test, train } = generateDemoSet(options.demoData);
    const all = split === "test" ? test : train;
    return { questions: all.slice(0, limit ?? all.length), source: `demo ${split} set` };
  }
  const path = options.data ?? defaultHubCacheDir(options.env ?? {});
  if (!(await pathExists(path))) {
    throw new EvalInputError(
      options.data == null
        ? `no --data given and the Hugging Face hub cache ${path} does not exist: pass ` +
          "--data PATH (a GSM8K jsonl/parquet file or folder) or --data demo"
        : `data file or folder not found: ${path}`,
    );
  }
  return { questions: await loadGsm8k(path, { split, limit }), source: path };
}

/**
 * Options of {@linkcode evaluateModelDir}: the questions, decoding settings and outputs. For a
 * run folder or a run's export, unset questions and decoding settings are the run's own
 * (`eval.*`, `run.seed`, the model's end ids), so the evaluation repeats the run's.
 */
export interface EvaluateModelDirOptions extends EvalQuestionsOptions, Partial<EvalConfig> {
  /** PEFT LoRA adapter folder to apply to a model folder, or null. */
  readonly adapter?: string | null;
  /** Output folder (default `runs/eval-<timestamp>`). */
  readonly out?: string | null;
  /**
   * Name in `eval.json` (default: a run export's phase, else `"base"`, or `"adapter"` with an
   * adapter). For a run folder also the training phase whose export is evaluated (`sft` or
   * `grpo`; default the last finished one).
   */
  readonly phase?: string;
  /** Makes the progress sink once the number of `generate` calls is known. */
  readonly progress?: (total: number) => EvalProgressSink;
  /** Receives one line before the model loads (`evaluating M on N questions of S`). */
  readonly onStart?: (line: string) => void;
  /** Load the model on this device (kept open afterwards; default: a new one, destroyed). */
  readonly gpu?: Gpu;
}

/** What {@linkcode evaluateModelDir} did. */
export interface EvaluateModelDirResult {
  /** The evaluation. */
  readonly result: EvalResult;
  /** The summary and records files. */
  readonly files: EvalFiles;
  /** The updated `eval.json`. */
  readonly evalJson: string;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
}

/** `options` with undefined fields removed (so they do not hide the run's settings). */
function defined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

/**
 * The recipe's evaluation of a model: checks the inputs, loads the questions, the folder's
 * tokenizer (compact for a model with `vocab_map.json`; checking its ids fit the model) and the
 * model, evaluates, writes `<out>/eval_<phase>_summary.json`, `<out>/eval_<phase>_records.jsonl`
 * and sets the phase in `<out>/eval.json`. `model` may be a run folder (its export of `phase`,
 * default the last finished training phase) or a run's export folder: then the run's own
 * evaluation settings apply where `options` leaves them unset, and the accuracy equals the run's
 * `eval.json` entry for that phase.
 *
 * @param model A Hugging Face model folder (`config.json`, `*.safetensors`, optional
 *   `tokenizer.json`), a run folder or an export folder.
 * @param options Questions, adapter, decoding settings, outputs, progress.
 * @returns The result and the files written.
 * @throws {ModelDirError} For a missing model folder or export, or a tokenizer that does not fit.
 * @throws {EvalInputError} For a missing adapter or data path, or no questions.
 * @example
 * ```ts ignore
 * import { evaluateModelDir } from "./evaluate_fs.ts";
 * const { result } = await evaluateModelDir("models/gemma-3-1b-it", { data: "demo", limit: 8 });
 * console.log(result.summary.accuracy);
 * const again = await evaluateModelDir("runs/2026-05-01T12-00-00"); // the run's grpo export
 * ```
 */
export async function evaluateModelDir(
  model: string,
  options: EvaluateModelDirOptions = {},
): Promise<EvaluateModelDirResult> {
  const given = options.adapter ?? null;
  if (given !== null && !(await Deno.stat(given).catch(() => null))?.isDirectory) {
    throw new EvalInputError(`adapter directory not found: ${given}`);
  }
  const source = await resolveModelSource(model, { phase: options.phase, adapter: given });
  const adapter = source.adapter;
  const fromRun = source.run ? runEvalSettings(source.run.config) : {};
  const settings: EvaluateModelDirOptions = { ...fromRun, ...defined(options) };
  const { questions, source: from } = await loadEvalQuestions(settings);
  if (questions.length === 0) throw new EvalInputError(`no questions in ${from}`);
  const { codec, vocabMap } = await loadModelCodec(source.model);
  const modelConfig = await loadGemma3Config(source.model);
  const vocabSize = modelConfig.vocabSize;
  for (const [i, q] of questions.entries()) {
    const ids = codec.encode(buildPrompt(q.question));
    checkTokenIds(ids, { vocabSize, what: `question ${i}`, dir: source.model });
  }
  options.onStart?.(`evaluating ${source.label} on ${questions.length} questions of ${from}`);
  // subtle: a run (and a compact-vocabulary model) stops at its own end ids, not Gemma 3's.
  const eosIds = settings.eosIds ??
    (source.run || vocabMap ? [...modelConfig.eosTokenIds] : undefined);
  const config = evalConfig({ ...settings, eosIds });
  const gemma = await loadGemma3(source.model, { adapter: adapter ?? undefined, gpu: options.gpu });
  try {
    const progress = options.progress?.(evalStepCount(questions.length, config));
    const result = await evaluate(gemma, questions, { ...config, tokenizer: codec, progress });
    const out = options.out ?? `runs/eval-${timestamp()}`;
    const phase = options.phase ?? source.run?.phase ?? (adapter ? "adapter" : "base");
    const files = await writeEvalResult(out, result, {
      name: `eval_${phase}`,
      metadata: {
        model: source.model,
        adapter,
        run: source.run?.dir ?? null,
        data: from,
        split: settings.split ?? "test",
      },
    });
    const evalJson = joinPath(out, "eval.json");
    await mergeEvalPhase(evalJson, phase, result.summary);
    return { result, files, evalJson };
  } finally {
    gemma.lora?.dispose();
    if (options.gpu) disposeGemma3Weights(gemma.weights);
    else gemma.gpu.destroy();
  }
}

/** Options of {@linkcode writeEvalResult}. */
export interface WriteEvalOptions {
  /** File name stem (default `"eval"`): `<name>_summary.json`, `<name>_records.jsonl`. */
  readonly name?: string;
  /** JSON-ready fields stored beside the summary (model, adapter, data, …). */
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/** Paths {@linkcode writeEvalResult} wrote. */
export interface EvalFiles {
  /** `<dir>/<name>_summary.json`. */
  readonly summary: string;
  /** `<dir>/<name>_records.jsonl`. */
  readonly records: string;
}

/** Contents of a `<name>_summary.json`. */
export interface EvalSummaryFile {
  /** The evaluation summary. */
  readonly summary: EvalResultSummary;
  /** The caller's metadata (`{}` when none). */
  readonly metadata: Record<string, unknown>;
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    throw new EvalError("name", `name must be a plain file name stem, got ${JSON.stringify(name)}`);
  }
}

/**
 * Writes an evaluation's summary and records into a folder (created if missing). The records
 * are written first, so a summary on disk always has its records beside it.
 *
 * @param dir Output folder.
 * @param result What `evaluate()` returned.
 * @param options File name stem and metadata.
 * @returns The two paths.
 * @example
 * ```ts ignore
 * const result = await evaluate(model, questions, { tokenizer });
 * await writeEvalResult("runs/x", result, { name: "eval_sft", metadata: { model: "m" } });
 * ```
 */
export async function writeEvalResult(
  dir: string,
  result: EvalResult,
  options: WriteEvalOptions = {},
): Promise<EvalFiles> {
  const name = options.name ?? "eval";
  checkName(name);
  await Deno.mkdir(dir, { recursive: true });
  const files = {
    summary: joinPath(dir, `${name}_summary.json`),
    records: joinPath(dir, `${name}_records.jsonl`),
  };
  const lines = result.records.map((r) => JSON.stringify(r) + "\n").join("");
  await writeTextAtomic(files.records, lines);
  const body: EvalSummaryFile = { summary: result.summary, metadata: { ...options.metadata } };
  await writeTextAtomic(files.summary, JSON.stringify(body, null, 2) + "\n");
  return files;
}

/**
 * Reads what {@linkcode writeEvalResult} wrote.
 *
 * @param dir The folder.
 * @param name The file name stem (default `"eval"`).
 * @returns The summary file's contents and the records.
 */
export async function readEvalResult(
  dir: string,
  name = "eval",
): Promise<EvalSummaryFile & { records: EvalQuestionRecord[] }> {
  checkName(name);
  const file = JSON.parse(
    await Deno.readTextFile(joinPath(dir, `${name}_summary.json`)),
  ) as EvalSummaryFile;
  const text = await Deno.readTextFile(joinPath(dir, `${name}_records.jsonl`));
  const records = text.split("\n").filter((l) => l !== "").map((l) =>
    JSON.parse(l) as EvalQuestionRecord
  );
  return { ...file, records };
}

/**
 * Sets one phase of a run's `eval.json` (`{ "base": E, "sft": E, "grpo": E }`), keeping the
 * other phases, and writes it atomically.
 *
 * @param path The `eval.json` path (created if missing).
 * @param phase Phase name, e.g. `"sft"`.
 * @param summary The phase's evaluation summary.
 * @returns The whole file's new contents.
 * @throws {EvalError} When the existing file is not a JSON object.
 */
export async function mergeEvalPhase(
  path: string,
  phase: string,
  summary: EvalSummary,
): Promise<Record<string, EvalPhaseEntry>> {
  if (phase === "") throw new EvalError("phase", "phase must be a non-empty string");
  let current: Record<string, EvalPhaseEntry> = {};
  let text: string | null = null;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (text !== null) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new EvalError("eval.json", `${path} is not a JSON object of phases`);
    }
    current = parsed as Record<string, EvalPhaseEntry>;
  }
  const next = { ...current, [phase]: evalPhaseEntry(summary) };
  await writeTextAtomic(path, JSON.stringify(next, null, 2) + "\n");
  return next;
}
