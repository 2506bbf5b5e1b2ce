/**
 * JSON Lines reading, from a string or streamed from byte chunks (so multi-GB exports need not
 * fit in one JS string). Blank lines are ignored; a line that is not valid JSON is an error
 * naming the file and line.
 *
 * @module
 */

import type { RawRow } from "./_common.ts";
import { DatasetFormatError } from "./errors.ts";

function parseLine(text: string, file: string, line: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new DatasetFormatError(`invalid JSON (${why})`, file, line);
  }
}

/**
 * Parses JSON Lines text.
 *
 * @param text The whole file's text (a leading BOM and `\r\n` line ends are accepted).
 * @param file The file name used in errors and row positions.
 * @returns One {@linkcode RawRow} per non-blank line, with its 1-based line number.
 * @throws {DatasetFormatError} On a line that is not valid JSON.
 * @example
 * ```ts
 * import { parseJsonlText } from "./jsonl.ts";
 * const rows = [...parseJsonlText('{"a":1}\n\n{"a":2}\n', "x.jsonl")];
 * if (rows[1].line !== 3) throw new Error("line numbers count blank lines");
 * ```
 */
export function* parseJsonlText(text: string, file: string): Generator<RawRow> {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let start = 0;
  let line = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    line++;
    const raw = text.slice(start, end).trim();
    if (raw.length > 0) yield { value: parseLine(raw, file, line), file, line };
    start = end + 1;
  }
}

/**
 * Parses JSON Lines streamed as UTF-8 byte chunks (e.g. a file's readable stream).
 *
 * @param chunks The bytes, in order.
 * @param file The file name used in errors and row positions.
 * @returns One {@linkcode RawRow} per non-blank line.
 * @throws {DatasetFormatError} On a line that is not valid JSON.
 */
export async function* parseJsonlStream(
  chunks: AsyncIterable<Uint8Array>,
  file: string,
): AsyncGenerator<RawRow> {
  const decoder = new TextDecoder("utf-8");
  let pending = "";
  let line = 0;
  let first = true;
  const emit = (raw: string): RawRow | undefined => {
    line++;
    const trimmed = raw.trim();
    return trimmed.length > 0 ? { value: parseLine(trimmed, file, line), file, line } : undefined;
  };
  for await (const chunk of chunks) {
    pending += decoder.decode(chunk, { stream: true });
    if (first && pending.length > 0) {
      if (pending.charCodeAt(0) === 0xfeff) pending = pending.slice(1);
      first = false;
    }
    let start = 0;
    let nl = pending.indexOf("\n");
    while (nl >= 0) {
      const row = emit(pending.slice(start, nl));
      if (row) yield row;
      start = nl + 1;
      nl = pending.indexOf("\n", start);
    }
    pending = pending.slice(start);
  }
  pending += decoder.decode();
  if (first && pending.charCodeAt(0) === 0xfeff) pending = pending.slice(1);
  if (pending.length > 0) {
    const row = emit(pending);
    if (row) yield row;
  }
}
