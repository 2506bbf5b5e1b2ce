/**
 * OpenThoughts-114k records for SFT. Both published schemas are accepted, row by row:
 *
 * - default config: `system`, `conversations: [{from: "user"|"assistant", value}]`, the
 *   assistant value being `<|begin_of_thought|> … <|end_of_thought|>` then
 *   `<|begin_of_solution|> … <|end_of_solution|>`;
 * - `metadata` config: `problem`, `deepseek_reasoning`, `deepseek_solution`,
 *   `ground_truth_solution`, `domain`, `source`.
 *
 * The answer is the solution's last `\boxed{…}` (nested braces handled), else the solution text.
 * Pure module; `open_thoughts_fs.ts` reads files.
 *
 * @module
 */

import { checkPositiveInt, describeSkips, type RawRow } from "./_common.ts";
import { DataOptionsError, type SkipReport } from "./errors.ts";
import { parseNumericAnswer } from "./gsm8k.ts";
import { toSftExample } from "./examples.ts";
import { SYSTEM_PROMPT } from "./prompt.ts";
import { fitReasoning } from "./_fit.ts";

/** One OpenThoughts example. */
export interface OpenThoughtsRecord {
  /** The user's problem. */
  readonly question: string;
  /** The thinking (may have been truncated, see `overLength`). */
  readonly reasoning: string;
  /**
   * The last `\boxed{…}` value of the solution — as a plain number string (`"1080"`) when it
   * is numeric — or the whole solution text when there is no box.
   */
  readonly answer: string;
  /** `answer` as a number, or `null`. */
  readonly answerNumber: number | null;
  /** The full solution text. */
  readonly solution: string;
  /** `math`, `code`, `science`, `puzzle` (metadata config only). */
  readonly domain?: string;
  /** Upstream source dataset (metadata config only). */
  readonly source?: string;
}

/** What to do with an example longer than `maxTokens`. */
export type OverLengthPolicy = "drop" | "truncate-thought";

/** Options for the OpenThoughts loaders. */
export interface OpenThoughtsOptions {
  /** Keep only records whose boxed answer is a plain number (the GSM8K recipe). */
  readonly numericOnly?: boolean;
  /** Keep only these domains; records without a domain are then dropped. */
  readonly domains?: readonly string[];
  /** Longest allowed SFT example, counted by `countTokens` on prompt + target text. */
  readonly maxTokens?: number;
  /** Token counter (required with `maxTokens`), e.g. `(t) => tok.encode(t).length`. */
  readonly countTokens?: (text: string) => number;
  /** `"drop"` the example, or `"truncate-thought"`: cut the reasoning's tail until it fits. */
  readonly overLength?: OverLengthPolicy;
  /** System prompt used when measuring length. Default: the recipe's. */
  readonly systemPrompt?: string;
  /** Stop after this many records are kept. */
  readonly limit?: number;
  /** Called per malformed (skipped) row; without it one `console.warn` summarizes them. */
  readonly onSkip?: (skip: SkipReport) => void;
}

/** The defaults, explicit: numeric answers only (the GSM8K recipe), over-long examples dropped. */
export const OPEN_THOUGHTS_DEFAULTS: Readonly<{
  numericOnly: boolean;
  overLength: OverLengthPolicy;
}> = Object.freeze({ numericOnly: true, overLength: "drop" as OverLengthPolicy });

/** What an OpenThoughts load read, kept and left out. */
export interface OpenThoughtsSummary {
  /** Files read. */
  readonly files: readonly string[];
  /** Rows seen. */
  readonly read: number;
  /** Records returned. */
  readonly kept: number;
  /** Rows that are not a valid record (also in `skips`). */
  readonly malformed: number;
  /** Left out by `domains`. */
  readonly wrongDomain: number;
  /** Left out by `numericOnly`. */
  readonly notNumeric: number;
  /** Left out for length (policy `drop`, or still too long with no reasoning at all). */
  readonly droppedTooLong: number;
  /** Kept with a shortened reasoning (policy `truncate-thought`). */
  readonly truncatedThought: number;
  /** One report per malformed row. */
  readonly skips: readonly SkipReport[];
}

/** Records and summary of a load. */
export interface OpenThoughtsLoadResult {
  /** The records, in file order. */
  readonly records: OpenThoughtsRecord[];
  /** Counts. */
  readonly summary: OpenThoughtsSummary;
}

const BEGIN_THOUGHT = "<|begin_of_thought|>";
const END_THOUGHT = "<|end_of_thought|>";
const BEGIN_SOLUTION = "<|begin_of_solution|>";
const END_SOLUTION = "<|end_of_solution|>";

/**
 * The content of the last `\boxed{…}` (or `\fbox{…}`) in a text, nested braces included.
 *
 * @param text A solution text.
 * @returns The trimmed content, or `null` when there is no complete box.
 * @example
 * ```ts
 * import { extractBoxed } from "./open_thoughts.ts";
 * if (extractBoxed("so \\boxed{\\frac{1}{2}}.") !== "\\frac{1}{2}") throw new Error();
 * ```
 */
export function extractBoxed(text: string): string | null {
  const re = /\\(?:boxed|fbox)\s*\{/g;
  let last: number | null = null;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) last = m.index + m[0].length;
  for (let start = last; start !== null;) {
    let depth = 1;
    for (let i = start; i < text.length; i++) {
      const c = text[i];
      if (c === "\\") i++; // subtle: `\{` and `\}` are literal braces, not grouping.
      else if (c === "{") depth++;
      else if (c === "}" && --depth === 0) return text.slice(start, i).trim();
    }
    // Unbalanced last box: look for an earlier complete one.
    const before = text.slice(0, start - 1);
    const prev = [...before.matchAll(/\\(?:boxed|fbox)\s*\{/g)].pop();
    start = prev ? prev.index + prev[0].length : null;
  }
  return null;
}

/**
 * Reads a boxed LaTeX value as a plain number: `1{,}000`, `\$5`, `-\,3`, `50\%`, `{7}` pass;
 * `\frac{1}{2}`, `x=3` or units do not.
 *
 * @param boxed Box content.
 * @returns The number and its plain string form, or `null`.
 */
export function parseLatexNumber(boxed: string): { value: number; text: string } | null {
  let s = boxed.trim();
  while (s.startsWith("{") && s.endsWith("}")) s = s.slice(1, -1).trim();
  s = s.replace(/\{,\}/g, ",").replace(/\\[,!;: ]/g, "").replace(/\\\$|\$/g, "")
    .replace(/\\%|%$/g, "").replace(/\^\s*\{?\\circ\}?$/, "").replace(/\\text\{\s*\}/g, "").trim();
  const value = parseNumericAnswer(s);
  if (value === null) return null;
  const text = s.replace(/[,\s\u00a0]/g, "").replace(/\u2212/g, "-").replace(/\.$/, "")
    .replace(/^\+/, "");
  return { value, text };
}

function turnsOf(raw: unknown): unknown[] | null {
  if (typeof raw === "string") {
    try {
      raw = JSON.parse(raw); // some exports store the list as a JSON string
    } catch {
      return null;
    }
  }
  return Array.isArray(raw) ? raw : null;
}

function turnText(turn: unknown, roles: readonly string[]): string | null {
  if (typeof turn !== "object" || turn === null) return null;
  const t = turn as Record<string, unknown>;
  const role = t.from ?? t.role;
  const value = t.value ?? t.content;
  return typeof role === "string" && roles.includes(role) && typeof value === "string"
    ? value
    : null;
}

function splitAssistant(value: string): { reasoning: string; solution: string } | string {
  const b = value.indexOf(BEGIN_THOUGHT);
  const e = value.indexOf(END_THOUGHT);
  if (b < 0) return `assistant turn has no ${BEGIN_THOUGHT} section`;
  if (e < b) return `assistant turn has no ${END_THOUGHT} after ${BEGIN_THOUGHT}`;
  const reasoning = value.slice(b + BEGIN_THOUGHT.length, e).trim();
  let rest = value.slice(e + END_THOUGHT.length);
  const bs = rest.indexOf(BEGIN_SOLUTION);
  if (bs >= 0) rest = rest.slice(bs + BEGIN_SOLUTION.length);
  const es = rest.lastIndexOf(END_SOLUTION);
  return { reasoning, solution: (es >= 0 ? rest.slice(0, es) : rest).trim() };
}

function buildRecord(
  question: string,
  reasoning: string,
  solution: string,
  extra: { domain?: string; source?: string },
): OpenThoughtsRecord {
  const boxed = extractBoxed(solution);
  const numeric = boxed === null ? null : parseLatexNumber(boxed);
  const record: OpenThoughtsRecord = {
    question: question.trim(),
    reasoning,
    answer: numeric ? numeric.text : boxed ?? solution,
    answerNumber: numeric ? numeric.value : null,
    solution,
    ...(extra.domain !== undefined ? { domain: extra.domain } : {}),
    ...(extra.source !== undefined ? { source: extra.source } : {}),
  };
  return Object.freeze(record);
}

/**
 * Turns one decoded row of either schema into a record.
 *
 * @param value A JSON object or parquet row.
 * @returns The record, or the reason it cannot be one.
 */
export function openThoughtsRecordFromRow(value: unknown): OpenThoughtsRecord | { skip: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { skip: "row is not an object" };
  }
  const row = value as Record<string, unknown>;
  const optional = (k: string) => (typeof row[k] === "string" ? row[k] as string : undefined);
  if ("conversations" in row) {
    const turns = turnsOf(row.conversations);
    if (!turns) return { skip: "'conversations' is not a list" };
    const question = turns.map((t) => turnText(t, ["user", "human"])).find((t) => t !== null);
    const answer = turns.map((t) => turnText(t, ["assistant", "gpt"])).find((t) => t !== null);
    if (question == null) return { skip: "no user turn" };
    if (answer == null) return { skip: "no assistant turn" };
    const parts = splitAssistant(answer);
    if (typeof parts === "string") return { skip: parts };
    return buildRecord(question, parts.reasoning, parts.solution, {
      domain: optional("domain"),
      source: optional("source"),
    });
  }
  if ("problem" in row) {
    for (const k of ["problem", "deepseek_reasoning", "deepseek_solution"]) {
      if (typeof row[k] !== "string") return { skip: `missing string field '${k}'` };
    }
    return buildRecord(
      row.problem as string,
      (row.deepseek_reasoning as string).trim(),
      (row.deepseek_solution as string).trim(),
      { domain: optional("domain"), source: optional("source") },
    );
  }
  return { skip: "row has neither 'conversations' nor 'problem'" };
}

/** Options after validation, defaults filled in. */
export type ResolvedOpenThoughtsOptions =
  & Readonly<Omit<OpenThoughtsOptions, "numericOnly" | "overLength" | "systemPrompt">>
  & Readonly<{ numericOnly: boolean; overLength: OverLengthPolicy; systemPrompt: string }>;

/**
 * Validates OpenThoughts options; errors name the field.
 *
 * @param options The options.
 * @returns A frozen copy with {@linkcode OPEN_THOUGHTS_DEFAULTS} filled in.
 */
export function resolveOpenThoughtsOptions(
  options: OpenThoughtsOptions = {},
): ResolvedOpenThoughtsOptions {
  const numericOnly = options.numericOnly ?? OPEN_THOUGHTS_DEFAULTS.numericOnly;
  if (typeof numericOnly !== "boolean") {
    throw new DataOptionsError("numericOnly", `must be a boolean, got ${numericOnly}`);
  }
  const overLength = options.overLength ?? OPEN_THOUGHTS_DEFAULTS.overLength;
  if (overLength !== "drop" && overLength !== "truncate-thought") {
    throw new DataOptionsError(
      "overLength",
      `must be "drop" or "truncate-thought", got ${overLength}`,
    );
  }
  checkPositiveInt("maxTokens", options.maxTokens);
  checkPositiveInt("limit", options.limit);
  if (options.maxTokens !== undefined && typeof options.countTokens !== "function") {
    throw new DataOptionsError("countTokens", "must be a function when maxTokens is set");
  }
  if (options.domains !== undefined) {
    if (!Array.isArray(options.domains) || options.domains.some((d) => typeof d !== "string")) {
      throw new DataOptionsError("domains", "must be an array of strings");
    }
  }
  return Object.freeze({
    ...options,
    numericOnly,
    overLength,
    systemPrompt: options.systemPrompt ?? SYSTEM_PROMPT,
    ...(options.domains ? { domains: Object.freeze([...options.domains]) } : {}),
  });
}

/**
 * Builds OpenThoughts records from decoded rows, applying the filters in order: malformed →
 * domain → numeric → length → limit.
 *
 * @param rows Decoded rows (from `readParquetRows`, `parseJsonlText` or `dataset_fs.ts`).
 * @param options Filters and length policy.
 * @param files File names for the summary.
 * @returns Records and counts.
 */
export async function collectOpenThoughts(
  rows: AsyncIterable<RawRow> | Iterable<RawRow>,
  options: OpenThoughtsOptions = {},
  files: readonly string[] = [],
): Promise<OpenThoughtsLoadResult> {
  const opts = resolveOpenThoughtsOptions(options);
  const domains = opts.domains ? new Set(opts.domains) : null;
  const records: OpenThoughtsRecord[] = [];
  const skips: SkipReport[] = [];
  const counts = { read: 0, wrongDomain: 0, notNumeric: 0, droppedTooLong: 0, truncated: 0 };
  for await (const row of rows) {
    if (opts.limit !== undefined && records.length >= opts.limit) break;
    counts.read++;
    const result = openThoughtsRecordFromRow(row.value);
    if ("skip" in result) {
      const report = Object.freeze({ file: row.file, line: row.line, reason: result.skip });
      skips.push(report);
      opts.onSkip?.(report);
      continue;
    }
    if (domains && (result.domain === undefined || !domains.has(result.domain))) {
      counts.wrongDomain++;
      continue;
    }
    if (opts.numericOnly && result.answerNumber === null) {
      counts.notNumeric++;
      continue;
    }
    let record: OpenThoughtsRecord = result;
    if (opts.maxTokens !== undefined) {
      const fit = fitReasoning(record, opts.maxTokens, opts.countTokens!, {
        truncate: opts.overLength === "truncate-thought",
        toText: (r) => {
          const ex = toSftExample(r, opts.systemPrompt);
          return ex.prompt + ex.target;
        },
      });
      if (fit === null) {
        counts.droppedTooLong++;
        continue;
      }
      if (fit !== record.reasoning) {
        counts.truncated++;
        record = Object.freeze({ ...record, reasoning: fit });
      }
    }
    records.push(record);
  }
  if (skips.length > 0 && !opts.onSkip) console.warn(describeSkips(skips, "OpenThoughts"));
  const summary: OpenThoughtsSummary = Object.freeze({
    files: Object.freeze([...files]),
    read: counts.read,
    kept: records.length,
    malformed: skips.length,
    wrongDomain: counts.wrongDomain,
    notNumeric: counts.notNumeric,
    droppedTooLong: counts.droppedTooLong,
    truncatedThought: counts.truncated,
    skips: Object.freeze(skips),
  });
  return { records, summary };
}
