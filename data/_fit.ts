/**
 * Fitting an SFT example under a token budget by shortening its reasoning.
 *
 * @module
 */

/** How {@linkcode fitReasoning} measures and whether it may cut. */
export interface FitOptions<R> {
  /** Cut the reasoning's tail (true) or give up (false) when the example is too long. */
  readonly truncate: boolean;
  /** The text whose tokens are counted, for a record with a given reasoning. */
  readonly toText: (record: R) => string;
}

/**
 * Returns the reasoning to use so that `countTokens(toText(record)) <= maxTokens`: the whole
 * reasoning if it fits; else, when truncating, the longest prefix that fits (binary search on
 * characters, then cut back to a word boundary); else `null` (drop).
 *
 * @param record The record (anything with `reasoning`).
 * @param maxTokens The budget.
 * @param countTokens Token counter.
 * @param options Truncate or not, and what text to measure.
 * @returns The reasoning to keep, or `null` to drop the record.
 * @example
 * ```ts
 * import { fitReasoning } from "./_fit.ts";
 * const r = { reasoning: "one two three four" };
 * const kept = fitReasoning(r, 9, (t) => t.length, { truncate: true, toText: (x) => x.reasoning });
 * if (kept !== "one two") throw new Error(String(kept));
 * ```
 */
export function fitReasoning<R extends { readonly reasoning: string }>(
  record: R,
  maxTokens: number,
  countTokens: (text: string) => number,
  options: FitOptions<R>,
): string | null {
  const fits = (reasoning: string) =>
    countTokens(options.toText({ ...record, reasoning })) <= maxTokens;
  const full = record.reasoning;
  if (fits(full)) return full;
  if (!options.truncate || !fits("")) return null;
  let lo = 0; // longest prefix length known to fit
  let hi = full.length - 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(full.slice(0, mid))) lo = mid;
    else hi = mid - 1;
  }
  // subtle: never split a UTF-16 surrogate pair.
  if (lo > 0 && /[\ud800-\udbff]/.test(full[lo - 1])) lo--;
  const prefix = full.slice(0, lo);
  const boundary = prefix.search(/\s+\S*$/);
  const atWord = (boundary > 0 ? prefix.slice(0, boundary) : prefix).trimEnd();
  // Token counts are not strictly monotonic in prefix length; keep the checked prefix if the
  // word-boundary cut somehow does not fit.
  return fits(atWord) ? atWord : prefix;
}
