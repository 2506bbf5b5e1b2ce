/**
 * The one base of webtune's validation errors: every typed error about a bad field, option,
 * file line or tensor (`ConfigError`, `TrainConfigError`, `GrpoConfigError`, `DataOptionsError`,
 * `DatasetFormatError`, `CheckpointError`, …) extends {@linkcode FieldError}, so a caller can
 * catch them all with one `instanceof` and read where (`path`), what was expected (`expected`)
 * and what was found (`got`) without parsing the message.
 *
 * @module
 */

/** What a {@linkcode FieldError} knows beyond its message. */
export interface FieldErrorDetails {
  /** What was expected, in words (`"an integer >= 1"`). */
  readonly expected?: string;
  /** The value found. */
  readonly got?: unknown;
}

/**
 * An invalid field: where it is, what was expected, what was found. Subclasses name the module
 * (`class ConfigError extends FieldError { override readonly name = "ConfigError"; }`).
 *
 * @example
 * ```ts
 * import { FieldError } from "./field_error.ts";
 * try {
 *   throw new FieldError("grpo.beta", "grpo.beta must be >= 0, got -1", { expected: ">= 0", got: -1 });
 * } catch (e) {
 *   if (!(e instanceof FieldError) || e.path !== "grpo.beta" || e.got !== -1) throw e;
 * }
 * ```
 */
export class FieldError extends Error {
  override readonly name: string = "FieldError";
  /** Where: a dotted field path (`grpo.beta`), a field name, or `file:line`. */
  readonly path: string;
  /** What was expected, in words; `""` when only the message says it. */
  readonly expected: string;
  /** The value found (undefined when none was given or it does not apply). */
  readonly got: unknown;

  /**
   * @param path Where the problem is.
   * @param message The whole message (what was expected and what was found).
   * @param details `expected` and `got`, when the thrower has them apart.
   */
  constructor(path: string, message: string, details: FieldErrorDetails = {}) {
    super(message);
    this.path = path;
    this.expected = details.expected ?? "";
    this.got = details.got;
  }

  /**
   * The usual error: `"<path> must be <expected>, got <got>"`, with `expected` and `got` set.
   * Called on a subclass, it makes that subclass.
   *
   * @param path Where the problem is.
   * @param expected What was expected, in words.
   * @param got The value found.
   * @param render How `got` is written in the message (default {@linkcode describeValue}).
   * @returns The error (to throw).
   * @example
   * ```ts
   * import { FieldError } from "./field_error.ts";
   * const e = FieldError.mustBe("topK", "an integer >= 0", -1);
   * if (e.message !== "topK must be an integer >= 0, got -1") throw new Error(e.message);
   * ```
   */
  static mustBe<T extends FieldError>(
    this: new (path: string, message: string, details?: FieldErrorDetails) => T,
    path: string,
    expected: string,
    got: unknown,
    render: (value: unknown) => string = describeValue,
  ): T {
    return new this(path, `${path} must be ${expected}, got ${render(got)}`, { expected, got });
  }

  /** The same as {@linkcode FieldError.path}: the name the config errors have always used. */
  get field(): string {
    return this.path;
  }
}

/**
 * A short rendering of a value for messages: strings quoted, objects as JSON cut at 60
 * characters.
 *
 * @param v Any value.
 * @returns E.g. `"x"`, `3`, `null`, `{"a":1}`.
 * @example
 * ```ts
 * import { describeValue } from "./field_error.ts";
 * if (describeValue("x") !== '"x"' || describeValue(undefined) !== "undefined") throw new Error();
 * ```
 */
export function describeValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || v === null || v === undefined) {
    return String(v);
  }
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
