/**
 * Command-line plumbing shared by the `deno task` scripts: strict flag parsing (numbers
 * checked), the exits: usage error 2, `--help` 0, failure 1, and the `--tuning` flag of the
 * scripts that run kernels.
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import type { GpuOptions } from "../kernels/gpu.ts";
import {
  TUNING_MODES,
  tuningForAdapter,
  type TuningMode,
  type TuningStore,
} from "../kernels/tuning.ts";
import { fileTuningStore } from "../kernels/tuning_fs.ts";

/** A command-line mistake: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override readonly name: string = "UsageError";
}

/** A flag's kind: text (`strings`: repeatable), switch, or a number >= 0 (`int`: an integer). */
export type FlagKind = "string" | "strings" | "boolean" | "int" | "number";

/** One flag: its kind, its argument in the usage (`""` for a switch), its help (`\n` wraps). */
export type FlagSpec = readonly [kind: FlagKind, arg: string, help: string];

type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}`
  : S;

/** The values of a flag table under camelCase names (`max-new-tokens` → `maxNewTokens`). */
export type FlagValues<T extends Record<string, FlagSpec>> = {
  -readonly [K in keyof T & string as Camel<K>]?: T[K][0] extends "string" ? string
    : T[K][0] extends "strings" ? string[]
    : T[K][0] extends "boolean" ? boolean
    : number;
};

/**
 * A usage text: the head line(s), then one aligned line per flag.
 *
 * @param head `usage: deno task …`.
 * @param table Flag name (without dashes) → spec.
 * @returns The text.
 * @example
 * ```ts
 * import { usageText } from "./_cli.ts";
 * const text = usageText("usage: x", { limit: ["int", "N", "first N only"] });
 * if (!text.endsWith("  --limit N             first N only")) throw new Error(text);
 * ```
 */
export function usageText(head: string, table: Record<string, FlagSpec>): string {
  const lines = Object.entries(table).map(([name, [, arg, help]]) =>
    `  ${`--${name}${arg ? ` ${arg}` : ""}`.padEnd(22)}${
      help.replaceAll("\n", `\n${" ".repeat(24)}`)
    }`
  );
  return `${head}\n\n${lines.join("\n")}`;
}

/**
 * Parses `args` against a flag table (plus `--help`/`-h`); number flags must be >= 0. The
 * values come under camelCase names.
 *
 * @param args Arguments after the script name.
 * @param table Flag name (without dashes) → spec.
 * @returns The values, or null when `--help` was given.
 * @throws {UsageError} For an unknown flag or a bad number, naming the flag.
 * @example
 * ```ts
 * import { parseFlagTable } from "./_cli.ts";
 * const v = parseFlagTable(["--top-k", "5"], { "top-k": ["int", "K", ""], out: ["string", "DIR", ""] });
 * if (v?.topK !== 5 || v.out !== undefined) throw new Error();
 * ```
 */
export function parseFlagTable<T extends Record<string, FlagSpec>>(
  args: readonly string[],
  table: T,
): FlagValues<T> | null {
  const options: ParseArgsOptionsConfig = { help: { type: "boolean", short: "h" } };
  for (const [name, [kind]] of Object.entries(table)) {
    options[name] = {
      type: kind === "boolean" ? "boolean" : "string",
      multiple: kind === "strings",
    };
  }
  let raw: Record<string, unknown>;
  try {
    raw = parseArgs({ args: [...args], strict: true, allowPositionals: false, options }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (raw.help) return null;
  const values: Record<string, unknown> = {};
  for (const [name, [kind]] of Object.entries(table)) {
    let value = raw[name];
    if ((kind === "int" || kind === "number") && typeof value === "string") {
      const n = value.trim() === "" ? NaN : Number(value);
      if (!(n >= 0 && n < Infinity) || (kind === "int" && !Number.isInteger(n))) {
        const expected = kind === "int" ? "non-negative integer" : "number >= 0";
        throw new UsageError(`--${name} must be a ${expected}, got "${value}"`);
      }
      value = n;
    }
    if (value !== undefined) values[name.replace(/-(.)/g, (_, c) => c.toUpperCase())] = value;
  }
  return values as FlagValues<T>;
}

/** What {@linkcode runCommand} runs. */
export interface Command<T> {
  /** The usage text (printed for `--help` and after a usage error). */
  readonly usage: string;
  /** Parses the arguments; null means `--help`; throws {@linkcode UsageError}. */
  readonly parse: (args: readonly string[]) => T | null;
  /** Does the work; a number it returns is the exit code (default 0). */
  readonly run: (parsed: T) => Promise<number | void>;
  /** Errors printed without their class name (input problems the user can fix). */
  readonly plainErrors?: readonly (abstract new (...args: never[]) => Error)[];
  /** Writes a line to stdout (default `console.log`). */
  readonly out?: (line: string) => void;
  /** Writes a line to stderr (default `console.error`). */
  readonly err?: (line: string) => void;
}

/**
 * Runs a script: a usage error prints it with the usage (exit code 2), `--help` prints the
 * usage (0), a failure prints `error: Name: message` (1; a plain error without its name),
 * success returns what `run` returned, or 0.
 *
 * @param args Arguments after the script name.
 * @param command Usage, parser and work.
 * @returns The exit code.
 * @example
 * ```ts
 * import { runCommand } from "./_cli.ts";
 * const code = await runCommand(["-h"], { usage: "usage: x", parse: () => null, run: async () => {} });
 * if (code !== 0) throw new Error();
 * ```
 */
export async function runCommand<T>(args: readonly string[], command: Command<T>): Promise<number> {
  const { out = console.log, err = console.error } = command;
  let parsed: T | null;
  try {
    parsed = command.parse(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(`error: ${e.message}\n\n${command.usage}`);
    return 2;
  }
  if (parsed === null) {
    out(command.usage);
    return 0;
  }
  try {
    return (await command.run(parsed)) ?? 0;
  } catch (e) {
    // Typed library errors (ConfigError, SafetensorsError, …) carry the whole story.
    const error = e as Error;
    const plain = command.plainErrors?.some((c) => e instanceof c) ?? false;
    err(`error: ${plain ? "" : `${error.name}: `}${error.message}`);
    return 1;
  }
}

/** The `--tuning` flag of the scripts that run kernels (train, eval, generate, worker). */
export const TUNING_FLAG = {
  tuning: [
    "string",
    "MODE",
    "kernel autotuning: off | cached | full (default cached on a GPU,\n" +
    "off on a software adapter; choices kept in the user's cache folder)",
  ],
} as const satisfies Record<string, FlagSpec>;

/**
 * Checks a `--tuning` value.
 *
 * @param value The flag's value, or undefined when not given.
 * @returns The mode, or null for the default (`tuningForAdapter`: cached on a GPU, off on a
 *   software adapter).
 * @throws {UsageError} For another value.
 * @example
 * ```ts
 * import { parseTuning } from "./_cli.ts";
 * console.log(parseTuning("full"), parseTuning(undefined)); // full null
 * ```
 */
export function parseTuning(value: string | undefined): TuningMode | null {
  if (value === undefined) return null;
  if (!(TUNING_MODES as readonly string[]).includes(value)) {
    throw new UsageError(`--tuning must be off, cached or full, got "${value}"`);
  }
  return value as TuningMode;
}

/**
 * The `Gpu.create` options of a script: its `--tuning` (or `tuningForAdapter`: cached on a
 * GPU, off on a software adapter) and the tuning cache file under the user's cache folder
 * (`fileTuningStore`).
 *
 * @param mode `--tuning`, or null.
 * @param options `warn` prints a warning line (a damaged cache file); `store` replaces the file
 *   store (tests).
 * @returns The options.
 * @example
 * ```ts
 * import { cliGpuOptions } from "./_cli.ts";
 * console.log(cliGpuOptions("full", { warn: console.error }).tuning); // full
 * ```
 */
export function cliGpuOptions(
  mode: TuningMode | null,
  options: { readonly warn: (line: string) => void; readonly store?: TuningStore },
): GpuOptions {
  return {
    tuning: mode ?? tuningForAdapter,
    tuningStore: options.store ??
      fileTuningStore(undefined, { onWarning: (m) => options.warn(`warning: ${m}`) }),
  };
}
