/**
 * Command-line plumbing shared by the `deno task` scripts: strict flag parsing, non-negative
 * number flags, and the usage-error / `--help` exits.
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** Constructor of a script's usage-error class (printed with the usage, exit code 2). */
export type UsageErrorClass = new (message: string) => Error;

/**
 * Parses `args` strictly (no positionals, no unknown flags) against `options`.
 *
 * @param args Arguments after the script name.
 * @param options node:util `parseArgs` option table.
 * @param usageError Class thrown on a parse error, with node's message.
 * @returns The parsed flag values.
 * @example
 * ```ts
 * import { parseFlags } from "./_cli.ts";
 * const v = parseFlags(["--model", "m"], { model: { type: "string" } }, Error);
 * if (v.model !== "m") throw new Error();
 * ```
 */
export function parseFlags<T extends ParseArgsOptionsConfig>(
  args: readonly string[],
  options: T,
  usageError: UsageErrorClass,
): ReturnType<
  typeof parseArgs<{ args: string[]; strict: true; allowPositionals: false; options: T }>
>["values"] {
  try {
    return parseArgs({ args: [...args], strict: true, allowPositionals: false, options }).values;
  } catch (err) {
    throw new usageError((err as Error).message);
  }
}

/**
 * A non-negative number flag.
 *
 * @param name Flag name without dashes.
 * @param value Its raw value, or undefined when absent.
 * @param integer Whether it must be an integer.
 * @param usageError Class thrown for an empty, non-finite, negative or (if `integer`) fractional value.
 * @returns The number, or undefined when absent.
 * @example
 * ```ts
 * import { numberFlag } from "./_cli.ts";
 * if (numberFlag("limit", "5", true, Error) !== 5) throw new Error();
 * ```
 */
export function numberFlag(
  name: string,
  value: string | undefined,
  integer: boolean,
  usageError: UsageErrorClass,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < 0) {
    throw new usageError(
      `--${name} must be a ${integer ? "non-negative integer" : "number >= 0"}, got "${value}"`,
    );
  }
  return n;
}

/**
 * Runs a script's argument parser: on a usage error prints it with the usage (exit code 2), on
 * `--help` prints the usage (exit code 0).
 *
 * @param args Arguments after the script name.
 * @param parse The script's parser; null means `--help`.
 * @param usageError The script's usage-error class (other errors propagate).
 * @param usage The usage text.
 * @returns The parsed arguments, or the exit code when the script should stop.
 * @example
 * ```ts
 * import { parseCommandLine } from "./_cli.ts";
 * const r = parseCommandLine(["-h"], () => null, Error, "usage: x");
 * if (r !== 0) throw new Error();
 * ```
 */
export function parseCommandLine<T extends object>(
  args: readonly string[],
  parse: (args: readonly string[]) => T | null,
  usageError: UsageErrorClass,
  usage: string,
): T | number {
  let parsed: T | null;
  try {
    parsed = parse(args);
  } catch (err) {
    if (!(err instanceof usageError)) throw err;
    console.error(`error: ${err.message}\n\n${usage}`);
    return 2;
  }
  if (!parsed) {
    console.log(usage);
    return 0;
  }
  return parsed;
}
