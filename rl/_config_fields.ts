/**
 * Field readers for nested configs: each takes the dotted path of the field it reads, so every
 * error names it (`grpo.numGenerations must be >= 2, got 1`). Private to `train_config.ts`.
 *
 * @module
 */

import { describeValue as describe, FieldError } from "../base/field_error.ts";

/** Thrown for an invalid training config; `field` (= `path`) is the dotted path, e.g. `grpo.beta`. */
export class TrainConfigError extends FieldError {
  override readonly name: string = "TrainConfigError";
}

/** A JSON object read field by field; unknown keys are rejected when it is opened. */
export type Fields = Readonly<Record<string, unknown>>;

/**
 * Checks that `value` is a plain object holding exactly `keys` (each present, none extra).
 *
 * @param value The section.
 * @param path Its dotted path (`""` for the root).
 * @param keys Allowed keys.
 * @param optional Keys that may be absent (read as undefined).
 * @returns The object.
 */
export function openSection(
  value: unknown,
  path: string,
  keys: readonly string[],
  optional: readonly string[] = [],
): Fields {
  const name = path === "" ? "the config" : path;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    const message = `${name} must be an object, got ${describe(value)}`;
    throw new TrainConfigError(path, message, { expected: "an object", got: value });
  }
  const obj = value as Fields;
  for (const key of Object.keys(obj)) {
    if (!keys.includes(key)) {
      const field = join(path, key);
      throw new TrainConfigError(
        field,
        `${field} is not a known field (known: ${keys.join(", ")})`,
      );
    }
  }
  for (const key of keys) {
    if (!(key in obj) && !optional.includes(key)) {
      const field = join(path, key);
      throw new TrainConfigError(field, `${field} is missing`);
    }
  }
  return obj;
}

/**
 * @param path Section path.
 * @param key Field name.
 * @returns `path.key` (or `key` at the root).
 */
export function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function fail(path: string, expected: string, got: unknown): never {
  throw TrainConfigError.mustBe(path, expected, got);
}

/**
 * @param path Field path.
 * @param v Value.
 * @param min Smallest allowed value.
 * @param max Largest allowed value (default unbounded).
 * @returns The integer.
 */
export function int(path: string, v: unknown, min: number, max = Infinity): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) fail(path, "an integer", v);
  if (v < min) fail(path, `>= ${min}`, v);
  if (v > max) fail(path, `<= ${max}`, v);
  return v;
}

/**
 * @param path Field path.
 * @param v Value.
 * @param ok Range check.
 * @param expected Range, in words (`"> 0"`, `"in [0, 1)"`).
 * @returns The finite number.
 */
export function num(
  path: string,
  v: unknown,
  ok: (x: number) => boolean,
  expected: string,
): number {
  if (typeof v !== "number" || !Number.isFinite(v)) fail(path, "a finite number", v);
  if (!ok(v)) fail(path, expected, v);
  return v;
}

/**
 * @param path Field path.
 * @param v Value.
 * @returns The boolean.
 */
export function bool(path: string, v: unknown): boolean {
  if (typeof v !== "boolean") fail(path, "true or false", v);
  return v;
}

/**
 * @param path Field path.
 * @param v Value.
 * @returns The non-empty string.
 */
export function str(path: string, v: unknown): string {
  if (typeof v !== "string" || v.length === 0) fail(path, "a non-empty string", v);
  return v;
}

/**
 * @param path Field path.
 * @param v Value.
 * @returns The non-empty string, or null.
 */
export function strOrNull(path: string, v: unknown): string | null {
  if (v === null) return null;
  if (typeof v !== "string" || v.length === 0) fail(path, "a non-empty string or null", v);
  return v;
}

/**
 * @param path Field path.
 * @param v Value.
 * @param allowed The allowed strings.
 * @returns The value, typed.
 */
export function oneOf<T extends string>(path: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    fail(path, `one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`, v);
  }
  return v as T;
}

/**
 * Runs a validator from another module and re-throws its field error under `path`.
 *
 * @param path Section path to prefix, e.g. `grpo`.
 * @param build The validator; a {@linkcode FieldError} it throws is re-thrown under `path`.
 * @returns What the validator returns.
 */
export function nested<T>(path: string, build: () => T): T {
  try {
    return build();
  } catch (e) {
    if (e instanceof FieldError) {
      const full = join(path, e.path);
      const message = e.message.startsWith(e.path)
        ? full + e.message.slice(e.path.length)
        : `${full}: ${e.message}`;
      throw new TrainConfigError(full, message, { expected: e.expected, got: e.got });
    }
    throw e;
  }
}
