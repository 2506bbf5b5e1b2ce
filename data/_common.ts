/**
 * Helpers shared by the dataset readers (GSM8K, OpenThoughts, demo set, batching); their errors
 * are in `errors.ts`.
 *
 * @module
 */

import { DataOptionsError, type SkipReport } from "./errors.ts";

/** A raw record read from a file, with its position. */
export interface RawRow {
  /** The decoded JSON object or parquet row. */
  readonly value: unknown;
  /** The file or source name. */
  readonly file: string;
  /** 1-based line (jsonl) or row (parquet) number. */
  readonly line: number;
}

/**
 * Builds a summary line for skipped records (first few locations), for loaders whose caller
 * passed no `onSkip`: skipped records are never silent.
 *
 * @param skips The skip reports.
 * @param what What kind of records, e.g. "GSM8K".
 * @returns A one-line message.
 */
export function describeSkips(skips: readonly SkipReport[], what: string): string {
  const shown = skips.slice(0, 3).map((s) => `${s.file}:${s.line} (${s.reason})`).join("; ");
  const more = skips.length > 3 ? `; and ${skips.length - 3} more` : "";
  return `${what}: skipped ${skips.length} record(s): ${shown}${more}`;
}

/**
 * Checks that an optional option is a positive integer.
 *
 * @param field Field name for the error.
 * @param value The value.
 * @returns The value.
 */
export function checkPositiveInt(field: string, value: number | undefined): number | undefined {
  if (value !== undefined && (!Number.isInteger(value) || value <= 0)) {
    const expected = "a positive integer";
    throw new DataOptionsError(field, `must be ${expected}, got ${value}`, {
      expected,
      got: value,
    });
  }
  return value;
}

/**
 * Checks that an optional option is a non-negative integer.
 *
 * @param field Field name for the error.
 * @param value The value.
 * @returns The value.
 */
export function checkNonNegativeInt(
  field: string,
  value: number | undefined,
): number | undefined {
  if (value !== undefined && (!Number.isInteger(value) || value < 0)) {
    const expected = "a non-negative integer";
    throw new DataOptionsError(field, `must be ${expected}, got ${value}`, {
      expected,
      got: value,
    });
  }
  return value;
}
