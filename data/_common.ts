/**
 * Types and errors shared by the dataset readers (GSM8K, OpenThoughts, demo set, batching).
 *
 * @module
 */

/** A data file could not be parsed: bad JSON on a line, an unreadable parquet file, a bad row. */
export class DatasetFormatError extends Error {
  /** The file (or source name) that failed. */
  readonly file: string;
  /** 1-based line (jsonl) or row (parquet) number, when the failure is tied to one. */
  readonly line: number | undefined;

  /**
   * @param message What was expected and what was found.
   * @param file The file or source name.
   * @param line 1-based line or row number, if known.
   */
  constructor(message: string, file: string, line?: number) {
    super(`${file}${line === undefined ? "" : `:${line}`}: ${message}`);
    this.name = "DatasetFormatError";
    this.file = file;
    this.line = line;
  }
}

/** A dataset path did not lead to any data file of the expected kind. */
export class DatasetNotFoundError extends Error {
  /**
   * @param message What was looked for, and where.
   */
  constructor(message: string) {
    super(message);
    this.name = "DatasetNotFoundError";
  }
}

/** An options object for a data function or class is invalid; the message names the field. */
export class DataOptionsError extends Error {
  /** The offending field. */
  readonly field: string;

  /**
   * @param field The field name.
   * @param message What was expected and what was given.
   */
  constructor(field: string, message: string) {
    super(`${field} ${message}`);
    this.name = "DataOptionsError";
    this.field = field;
  }
}

/** One record that a loader skipped, and why. */
export interface SkipReport {
  /** The file (or source name) holding the record. */
  readonly file: string;
  /** 1-based line number for jsonl, 1-based row number for parquet. */
  readonly line: number;
  /** Why it was skipped. */
  readonly reason: string;
}

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
    throw new DataOptionsError(field, `must be a positive integer, got ${value}`);
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
    throw new DataOptionsError(field, `must be a non-negative integer, got ${value}`);
  }
  return value;
}
