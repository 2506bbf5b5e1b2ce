/**
 * GSM8K records: the gold answer is the text after the solution's last `####` (the seed's
 * `extract_hash_answer`), plus a numeric form with thousands separators removed. This module is
 * pure (no file IO); `gsm8k_fs.ts` finds and reads the files.
 *
 * @module
 */

import { checkPositiveInt, describeSkips, type RawRow } from "./_common.ts";
import { DataOptionsError, type SkipReport } from "./errors.ts";

/** One GSM8K problem. */
export interface Gsm8kRecord {
  /** The word problem. */
  readonly question: string;
  /** The gold answer: the text after the solution's last `####`, trimmed (e.g. `"1,080"`). */
  readonly answer: string;
  /** The full solution text, `<<calc>>` annotations and the `#### N` line included. */
  readonly solution: string;
  /** `answer` as a number (commas removed), or `null` if it is not a plain number. */
  readonly answerNumber: number | null;
}

/** Options shared by the GSM8K loaders. */
export interface Gsm8kOptions {
  /** Split to take from a folder (ignored for a single file). Default `"train"`. */
  readonly split?: "train" | "test";
  /** Hub config sub-folder to look in. Default `"main"` (the other is `"socratic"`). */
  readonly config?: string;
  /** Stop after this many records are kept. */
  readonly limit?: number;
  /**
   * Called for each skipped record. Without it, skips are summarized in one `console.warn`,
   * so they are never silent.
   */
  readonly onSkip?: (skip: SkipReport) => void;
}

/** What a GSM8K load read, kept and skipped. */
export interface Gsm8kSummary {
  /** Files read, in order. */
  readonly files: readonly string[];
  /** Rows seen (kept + skipped). */
  readonly read: number;
  /** Records returned. */
  readonly kept: number;
  /** Records skipped (no `####`, empty answer, missing fields). */
  readonly skipped: number;
  /** One report per skipped record. */
  readonly skips: readonly SkipReport[];
}

/** Records and summary of a load. */
export interface Gsm8kLoadResult {
  /** The records, in file order. */
  readonly records: Gsm8kRecord[];
  /** Counts and skip reports. */
  readonly summary: Gsm8kSummary;
}

/**
 * The gold answer of a GSM8K solution: the text after its last `####`, trimmed.
 *
 * @param solution A GSM8K `answer` field.
 * @returns The answer text, or `null` when there is no `####`.
 * @example
 * ```ts
 * import { extractHashAnswer } from "./gsm8k.ts";
 * if (extractHashAnswer("2 + 2 = 4\n#### 4") !== "4") throw new Error();
 * ```
 */
export function extractHashAnswer(solution: string): string | null {
  const at = solution.lastIndexOf("####");
  return at < 0 ? null : solution.slice(at + 4).trim();
}

/**
 * Parses an answer written as a plain number: thousands separators (`,`), `$`, spaces and a
 * trailing `.` are dropped, `−` (U+2212) reads as a minus sign.
 *
 * @param text The answer text, e.g. `"1,080"` or `"-3"`.
 * @returns The number, or `null` when the text is not a plain number.
 * @example
 * ```ts
 * import { parseNumericAnswer } from "./gsm8k.ts";
 * if (parseNumericAnswer("109,200,000") !== 109200000) throw new Error();
 * if (parseNumericAnswer("twelve") !== null) throw new Error();
 * ```
 */
export function parseNumericAnswer(text: string): number | null {
  const cleaned = text.replace(/[,\s$\u00a0]/g, "").replace(/\u2212/g, "-").replace(/\.$/, "");
  if (!/^[-+]?(\d+(\.\d*)?|\.\d+)$/.test(cleaned)) return null;
  const value = Number(cleaned);
  return Number.isFinite(value) ? value : null;
}

/**
 * Turns one decoded row (`{ question, answer }`) into a record.
 *
 * @param value A JSON object or parquet row.
 * @returns The record, or the reason it cannot be one.
 */
export function gsm8kRecordFromRow(value: unknown): Gsm8kRecord | { skip: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { skip: "row is not an object" };
  }
  const row = value as Record<string, unknown>;
  if (typeof row.question !== "string") return { skip: "missing string field 'question'" };
  if (typeof row.answer !== "string") return { skip: "missing string field 'answer'" };
  const answer = extractHashAnswer(row.answer);
  if (answer === null) return { skip: "answer has no '####' line" };
  if (answer.length === 0) return { skip: "nothing after '####'" };
  return Object.freeze({
    question: row.question,
    answer,
    solution: row.answer,
    answerNumber: parseNumericAnswer(answer),
  });
}

/**
 * Validates GSM8K options (unknown values fail with the field named).
 *
 * @param options The options.
 * @returns A frozen copy with defaults filled in.
 */
export function resolveGsm8kOptions(
  options: Gsm8kOptions = {},
): Readonly<Required<Omit<Gsm8kOptions, "limit" | "onSkip">> & Gsm8kOptions> {
  const split = options.split ?? "train";
  if (split !== "train" && split !== "test") {
    throw new DataOptionsError("split", `must be "train" or "test", got ${JSON.stringify(split)}`);
  }
  const config = options.config ?? "main";
  if (typeof config !== "string" || config.length === 0) {
    throw new DataOptionsError("config", `must be a non-empty string, got ${String(config)}`);
  }
  checkPositiveInt("limit", options.limit);
  if (options.onSkip !== undefined && typeof options.onSkip !== "function") {
    throw new DataOptionsError("onSkip", "must be a function");
  }
  return Object.freeze({ ...options, split, config });
}

/**
 * Builds GSM8K records from decoded rows (from `readParquetRows`, `parseJsonlText`, or
 * `dataset_fs.ts`). Rows without `####` are skipped and reported.
 *
 * @param rows Decoded rows with their positions.
 * @param options `limit` and `onSkip` are used here.
 * @param files File names for the summary.
 * @returns Records and summary.
 * @example
 * ```ts
 * import { collectGsm8k } from "./gsm8k.ts";
 * import { parseJsonlText } from "./jsonl.ts";
 * const text = '{"question":"1+1?","answer":"1+1=2\\n#### 2"}\n';
 * const { records } = await collectGsm8k(parseJsonlText(text, "mem.jsonl"));
 * if (records[0].answerNumber !== 2) throw new Error();
 * ```
 */
export async function collectGsm8k(
  rows: AsyncIterable<RawRow> | Iterable<RawRow>,
  options: Gsm8kOptions = {},
  files: readonly string[] = [],
): Promise<Gsm8kLoadResult> {
  const opts = resolveGsm8kOptions(options);
  const records: Gsm8kRecord[] = [];
  const skips: SkipReport[] = [];
  let read = 0;
  for await (const row of rows) {
    if (opts.limit !== undefined && records.length >= opts.limit) break;
    read++;
    const result = gsm8kRecordFromRow(row.value);
    if ("skip" in result) {
      const report: SkipReport = Object.freeze({
        file: row.file,
        line: row.line,
        reason: result.skip,
      });
      skips.push(report);
      opts.onSkip?.(report);
    } else {
      records.push(result);
    }
  }
  if (skips.length > 0 && !opts.onSkip) console.warn(describeSkips(skips, "GSM8K"));
  const summary: Gsm8kSummary = Object.freeze({
    files: Object.freeze([...files]),
    read,
    kept: records.length,
    skipped: skips.length,
    skips: Object.freeze(skips),
  });
  return { records, summary };
}
