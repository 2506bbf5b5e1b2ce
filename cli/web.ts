/**
 * `deno task web`: serves the demo page on 127.0.0.1 — the built-in demo (tiny Gemma 3,
 * SFT → GRPO → evaluation) trained in the browser tab, and text generation with a model folder
 * the user picks (or the one given with `--model`, served under `/model/`). Runs until Ctrl-C.
 *
 * @module
 */

import { parseFlagTable, runCommand, UsageError, usageText } from "./_cli.ts";
import { startWebServer } from "./web_server.ts";

const FLAGS = {
  port: ["int", "N", "port on 127.0.0.1 (default 8000; 0 = any free port)"],
  host: ["string", "ADDR", "interface to listen on (default 127.0.0.1)"],
  model: ["string", "DIR", "a Gemma 3 model or export folder to serve under /model/"],
} as const;
const USAGE = usageText("usage: deno task web [--port N] [--model DIR]", FLAGS);

/** Parsed command line of `deno task web`. */
export interface WebArgs {
  /** Port (0: any free one). */
  readonly port: number;
  /** Interface. */
  readonly host: string;
  /** A model folder to serve under `/model/`, or null. */
  readonly model: string | null;
}

/**
 * Parses the command line.
 *
 * @param args Arguments after the script name.
 * @returns The options, or null when `--help` was given.
 * @throws {UsageError} on unknown or malformed options.
 * @example
 * ```ts
 * import { parseWebArgs } from "./web.ts";
 * console.log(parseWebArgs(["--port", "9000"])?.port); // 9000
 * ```
 */
export function parseWebArgs(args: readonly string[]): WebArgs | null {
  const v = parseFlagTable(args, FLAGS);
  if (v === null) return null;
  if (v.port !== undefined && v.port > 65535) {
    throw new UsageError(`--port must be at most 65535, got ${v.port}`);
  }
  return Object.freeze({
    port: v.port ?? 8000,
    host: v.host ?? "127.0.0.1",
    model: v.model ?? null,
  });
}

async function run(a: WebArgs): Promise<number> {
  if (a.model !== null && !(await Deno.stat(a.model).catch(() => null))?.isDirectory) {
    throw new UsageError(`--model: ${a.model} is not a folder`);
  }
  const server = await startWebServer({
    hostname: a.host,
    port: a.port,
    mounts: a.model === null ? {} : { "/model/": a.model },
  });
  const kb = (server.bundleBytes.app / 1024).toFixed(0);
  console.log(`webtune demo page: ${server.url}  (bundle ${kb} KiB; Ctrl-C stops)`);
  if (a.model !== null) console.log(`model folder ${a.model}: ${server.url}?model=/model/`);
  const stopped = new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, resolve);
  });
  await stopped;
  await server.close();
  return 0;
}

const command = { usage: USAGE, parse: parseWebArgs, run, plainErrors: [UsageError] };
if (import.meta.main) Deno.exit(await runCommand(Deno.args, command));
