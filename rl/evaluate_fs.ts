/**
 * Writing evaluation results (Deno only): `<name>_summary.json` (the summary plus caller
 * metadata), `<name>_records.jsonl` (one question per line) and the run's `eval.json`
 * (`{ "base": E, "sft": E, "grpo": E }`, one entry per phase). Every file is written to a
 * temporary file and renamed over the old one, so readers never see a partial file.
 *
 * @module
 */

import { joinPath, writeTextAtomic } from "../base/atomic_fs.ts";
import {
  EvalError,
  type EvalPhaseEntry,
  evalPhaseEntry,
  type EvalQuestionRecord,
  type EvalResult,
  type EvalResultSummary,
} from "./evaluate.ts";
import type { EvalSummary } from "./scoring.ts";

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
