/**
 * The errors the dataset readers throw (GSM8K, OpenThoughts, demo set, batching), and the
 * report of a record a loader skipped.
 *
 * @module
 */

import { FieldError, type FieldErrorDetails } from "../base/field_error.ts";

/**
 * A data file could not be parsed: bad JSON on a line, an unreadable parquet file, a bad row.
 * `path` is `file:line` (or `file` when the failure is not tied to one line).
 *
 * @example
 * ```ts
 * import { DatasetFormatError } from "./errors.ts";
 * const e = new DatasetFormatError("expected a JSON object", "train.jsonl", 3);
 * if (e.message !== "train.jsonl:3: expected a JSON object" || e.line !== 3) throw new Error();
 * ```
 */
export class DatasetFormatError extends FieldError {
  override readonly name: string = "DatasetFormatError";
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
    const path = line === undefined ? file : `${file}:${line}`;
    super(path, `${path}: ${message}`);
    this.file = file;
    this.line = line;
  }
}

/** A dataset path did not lead to any data file of the expected kind. */
export class DatasetNotFoundError extends Error {
  override readonly name: string = "DatasetNotFoundError";
}

/**
 * An options object for a data function or class is invalid; `field` (= `path`) names the
 * field and the message starts with it.
 *
 * @example
 * ```ts
 * import { DataOptionsError } from "./errors.ts";
 * const e = new DataOptionsError("limit", "must be a positive integer, got 0");
 * if (e.message !== "limit must be a positive integer, got 0") throw new Error();
 * ```
 */
export class DataOptionsError extends FieldError {
  override readonly name: string = "DataOptionsError";

  /**
   * @param field The field name.
   * @param message What was expected and what was given (without the field name).
   * @param details `expected` and `got`, when the thrower has them apart.
   */
  constructor(field: string, message: string, details?: FieldErrorDetails) {
    super(field, `${field} ${message}`, details);
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
