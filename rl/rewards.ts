/**
 * The seed recipe's four reward functions (Google Tunix `examples/grpo_gemma.ipynb`), with the
 * exact semantics of the Python originals: `re` patterns compiled with MULTILINE | DOTALL,
 * `str.strip()`, `str.count()` and `float()`.
 *
 * Regex translation notes (Python `re` on `str` → JavaScript):
 * - Python `\s` is `str.isspace()`: `[ \t\n\v\f\r]`, `\x1c`–`\x1f`, `\x85`, U+00A0 and the Unicode
 *   space separators. JS `\s` lacks `\x1c`–`\x1f` and `\x85` and adds U+FEFF, so an explicit
 *   class ({@linkcode PYTHON_WHITESPACE}) is used.
 * - Python MULTILINE `^`/`$` break lines only at `\n`; JS `m` also breaks at `\r`, U+2028 and
 *   U+2029. So no `m` flag: `^` becomes `(?<=^|\n)` and `$` becomes `(?=\n|$)`.
 * - Python `\d` is any Unicode decimal digit (category Nd, e.g. `٣`, `３`); JS uses `\p{Nd}`.
 *   Python `float()` accepts those digits too, so {@linkcode parsePythonFloat} does as well.
 * - DOTALL is the `s` flag; `u` makes `.` step over whole code points like Python does.
 *
 * @module
 */

import { ANSWER_END, ANSWER_START, REASONING_END, REASONING_START } from "../data/prompt.ts";

export {
  overlongPenalty,
  overlongReward,
  type OverlongRewardOptions,
  RewardOptionsError,
} from "./overlong_penalty.ts";

/** Thrown when reward inputs or options are invalid (mismatched lengths, unknown names). */
export class RewardError extends Error {
  /** @param message What was expected and what was received. */
  constructor(message: string) {
    super(message);
    this.name = "RewardError";
  }
}

/** A reward function: one score per completion, `answers[i]` belongs to `completions[i]`. */
export type RewardFunction = (
  completions: readonly string[],
  answers: readonly string[],
) => number[];

/** Characters Python's `str.isspace()` and `re` `\s` accept (checked against CPython 3.11). */
export const PYTHON_WHITESPACE: string =
  "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

const WS = `[${PYTHON_WHITESPACE}]`;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/**
 * A fresh RegExp equivalent to the recipe's `match_format`
 * (`^[\s]{0,}<reasoning>.+?</reasoning>.*?<answer>(.+?)</answer>[\s]{0,}$`, MULTILINE | DOTALL),
 * to be used with `exec` (Python `search`). Group 1 is the answer text.
 *
 * @returns A non-global RegExp.
 * @example
 * ```ts
 * import { matchFormatRegExp } from "./rewards.ts";
 * const m = matchFormatRegExp().exec("<reasoning>r</reasoning>\n<answer>4</answer>");
 * if (m?.[1] !== "4") throw new Error("no match");
 * ```
 */
export function matchFormatRegExp(): RegExp {
  const [rs, re, as, ae] = [REASONING_START, REASONING_END, ANSWER_START, ANSWER_END].map(
    escapeRegExp,
  );
  return new RegExp(`(?<=^|\\n)${WS}*${rs}.+?${re}.*?${as}(.+?)${ae}${WS}*(?=\\n|$)`, "su");
}

/**
 * A fresh RegExp equivalent to the recipe's `match_numbers` (`<answer>.*?([\d\.]{1,})`,
 * MULTILINE | DOTALL): the first run of digits and dots after the first `<answer>` that has one.
 * No closing tag is needed.
 *
 * @returns A non-global RegExp; group 1 is the number text.
 */
export function matchNumbersRegExp(): RegExp {
  return new RegExp(`${escapeRegExp(ANSWER_START)}.*?([\\p{Nd}.]+)`, "su");
}

/**
 * The answer text of a completion in the exact format (group 1 of `match_format`), or null.
 *
 * @param completion Model output.
 * @returns The text between `<answer>` and `</answer>`, or null when the format does not match.
 */
export function extractFormattedAnswer(completion: string): string | null {
  return matchFormatRegExp().exec(completion)?.[1] ?? null;
}

/**
 * The number text the recipe extracts from a completion (group 1 of `match_numbers`), or null.
 *
 * @param completion Model output.
 * @returns E.g. `"1"` for `"<answer>1,000"` and `"5"` for `"<answer>-5"`; null without a match.
 */
export function extractAnswerNumber(completion: string): string | null {
  return matchNumbersRegExp().exec(completion)?.[1] ?? null;
}

const PY_WS_CHAR = new RegExp(`^${WS}$`, "u");
const isPythonSpace = (ch: string): boolean => PY_WS_CHAR.test(ch);

/**
 * Python's `str.strip()` without arguments (strips {@linkcode PYTHON_WHITESPACE}).
 *
 * @param text Any string.
 * @returns `text` without leading and trailing Python whitespace.
 */
export function pythonStrip(text: string): string {
  return text.replace(new RegExp(`^${WS}+|${WS}+$`, "gu"), "");
}

const ND = /^\p{Nd}$/u;

/** Value 0-9 of a Unicode Nd digit: Nd digits come in aligned runs of ten, "0" first. */
function decimalValue(codePoint: number): number {
  let offset = 0;
  while (ND.test(String.fromCodePoint(codePoint - offset - 1))) offset++;
  return offset % 10;
}

const PY_FLOAT_BODY = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$/i;

/**
 * Mirrors Python's `float(text)` for `str` input. Steps, as CPython does them: non-ASCII
 * whitespace becomes a space and non-ASCII decimal digits become ASCII digits (any other
 * non-ASCII character fails); ASCII whitespace `[ \t\n\v\f\r]` is stripped (subtle: `\x1c`-`\x1f`
 * are *not*, so `float("1\x1c")` fails although `"1\x1c".strip()` works); single underscores
 * between digits are dropped; then sign, digits with an optional point and exponent, or
 * `inf`/`infinity`/`nan` in any case. Commas, hex and U+2212 minus are rejected.
 *
 * @param text The string Python would pass to `float()`.
 * @returns The value, or null where Python raises `ValueError`.
 * @example
 * ```ts
 * import { parsePythonFloat } from "./rewards.ts";
 * if (parsePythonFloat(" 1_000 ") !== 1000 || parsePythonFloat("1,000") !== null) {
 *   throw new Error("unexpected");
 * }
 * ```
 */
export function parsePythonFloat(text: string): number | null {
  let ascii = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp < 128) ascii += ch;
    else if (isPythonSpace(ch)) ascii += " ";
    else if (ND.test(ch)) ascii += String(decimalValue(cp));
    else return null;
  }
  ascii = ascii.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, "");
  if (ascii.includes("_")) {
    if (/(?<!\d)_|_(?!\d)/.test(ascii)) return null;
    ascii = ascii.replaceAll("_", "");
  }
  if (!PY_FLOAT_BODY.test(ascii)) return null;
  const sign = ascii.startsWith("-") ? -1 : 1;
  const body = ascii.replace(/^[+-]/, "").toLowerCase();
  if (body === "nan") return NaN;
  if (body === "inf" || body === "infinity") return sign * Infinity;
  return Number(ascii);
}

/** Python `float / float`: null where Python raises ZeroDivisionError (divisor ±0). */
function pythonDivide(a: number, b: number): number | null {
  return b === 0 ? null : a / b;
}

function checkLengths(completions: readonly string[], answers: readonly string[]): void {
  if (completions.length !== answers.length) {
    throw new RewardError(
      `answers must have one entry per completion: got ${completions.length} completions ` +
        `and ${answers.length} answers`,
    );
  }
}

/** Python `str.count` for a non-empty needle (non-overlapping occurrences). */
function countOccurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

/**
 * 3.0 for each completion in which `match_format` is found (anywhere a line starts), else 0.
 *
 * @param completions Model outputs.
 * @param answers Reference answers (unused; kept for the common signature).
 * @returns One score per completion.
 * @example
 * ```ts
 * import { matchFormatExactly } from "./rewards.ts";
 * const s = matchFormatExactly(["<reasoning>x</reasoning><answer>2</answer>", "2"], ["2", "2"]);
 * if (s[0] !== 3 || s[1] !== 0) throw new Error("unexpected");
 * ```
 */
export function matchFormatExactly(
  completions: readonly string[],
  answers: readonly string[],
): number[] {
  checkLengths(completions, answers);
  const re = matchFormatRegExp();
  return completions.map((c) => (re.exec(c) === null ? 0 : 3.0));
}

/** Options of {@linkcode matchFormatApproximately}. */
export interface MatchFormatApproximatelyOptions {
  /**
   * Include the check "the completion starts with `<reasoning>`" (the recipe notebook: true,
   * range −2.5…2.5). False gives the four-check variant of Unsloth and Tunix's CLI (−2…2).
   */
  readonly checkStartsWithReasoning?: boolean;
}

/**
 * Sum of ±0.5 per check: `<reasoning>` occurs exactly once; the completion starts with it;
 * `</reasoning>`, `<answer>` and `</answer>` each occur exactly once.
 *
 * @param completions Model outputs.
 * @param answers Reference answers (unused; kept for the common signature).
 * @param options See {@linkcode MatchFormatApproximatelyOptions}.
 * @returns One score per completion, in −2.5…2.5 (four checks: −2…2).
 */
export function matchFormatApproximately(
  completions: readonly string[],
  answers: readonly string[],
  options: MatchFormatApproximatelyOptions = {},
): number[] {
  checkLengths(completions, answers);
  const checkStart = options.checkStartsWithReasoning ?? true;
  const once = (c: string, tag: string): number => (countOccurrences(c, tag) === 1 ? 0.5 : -0.5);
  return completions.map((c) => {
    let score = once(c, REASONING_START);
    if (checkStart) score += c.startsWith(REASONING_START) ? 0.5 : -0.5;
    score += once(c, REASONING_END) + once(c, ANSWER_START) + once(c, ANSWER_END);
    return score;
  });
}

/**
 * Scores the formatted answer (group 1 of `match_format`): no match 0; identical to the answer
 * 3.0; identical after `strip()` 1.5; otherwise by `ratio = float(guess) / float(answer)`:
 * within [0.9, 1.1] 0.5, within [0.8, 1.2] 0.25, else −1.0 (also for NaN ratios); −0.5 where
 * either side does not parse or the answer is zero.
 *
 * @param completions Model outputs.
 * @param answers Reference answers, e.g. `"72"`.
 * @returns One score per completion.
 * @example
 * ```ts
 * import { checkAnswer } from "./rewards.ts";
 * const c = (a: string) => `<reasoning>r</reasoning><answer>${a}</answer>`;
 * const s = checkAnswer([c("72"), c(" 72"), c("75"), c("1,000")], ["72", "72", "72", "1000"]);
 * if (s.join() !== "3,1.5,0.5,-0.5") throw new Error(s.join());
 * ```
 */
export function checkAnswer(completions: readonly string[], answers: readonly string[]): number[] {
  checkLengths(completions, answers);
  const re = matchFormatRegExp();
  return completions.map((c, i) => {
    const guess = re.exec(c)?.[1];
    const answer = answers[i];
    if (guess === undefined) return 0;
    if (guess === answer) return 3.0;
    if (pythonStrip(guess) === pythonStrip(answer)) return 1.5;
    // subtle: the recipe calls float() on the unstripped strings here (float strips ASCII space).
    const g = parsePythonFloat(guess);
    const a = parsePythonFloat(answer);
    const ratio = g === null || a === null ? null : pythonDivide(g, a);
    if (ratio === null) return -0.5;
    if (ratio >= 0.9 && ratio <= 1.1) return 0.5;
    if (ratio >= 0.8 && ratio <= 1.2) return 0.25;
    return -1.0;
  });
}

/**
 * 1.5 where the number extracted by `match_numbers` equals the answer as floats, else 0 (also
 * when nothing is extracted or either side does not parse).
 *
 * @param completions Model outputs.
 * @param answers Reference answers.
 * @returns One score per completion.
 */
export function checkNumbers(completions: readonly string[], answers: readonly string[]): number[] {
  checkLengths(completions, answers);
  const re = matchNumbersRegExp();
  return completions.map((c, i) => {
    const guess = re.exec(c)?.[1];
    if (guess === undefined) return 0;
    const a = parsePythonFloat(pythonStrip(answers[i]));
    const g = parsePythonFloat(pythonStrip(guess));
    return a !== null && g !== null && g === a ? 1.5 : 0;
  });
}

/** Names of the recipe's reward functions, in the recipe's order. */
export type RewardName =
  | "matchFormatExactly"
  | "matchFormatApproximately"
  | "checkAnswer"
  | "checkNumbers";

/** The recipe's reward functions by name (the order in which the recipe passes them). */
export const REWARD_FUNCTIONS: Readonly<Record<RewardName, RewardFunction>> = Object.freeze({
  matchFormatExactly,
  matchFormatApproximately: (c: readonly string[], a: readonly string[]) =>
    matchFormatApproximately(c, a),
  checkAnswer,
  checkNumbers,
});

/** Options of {@linkcode combineRewards}. */
export interface CombineRewardsOptions {
  /** Reward functions by name; default {@linkcode REWARD_FUNCTIONS}. */
  readonly functions?: Readonly<Record<string, RewardFunction>>;
  /** Weight per function name (each finite); missing names weigh 1. */
  readonly weights?: Readonly<Record<string, number>>;
}

/** Result of {@linkcode combineRewards}. */
export interface CombinedRewards {
  /** Weighted sum per completion. */
  readonly total: number[];
  /** Unweighted scores per function name, for logging. */
  readonly perFunction: Readonly<Record<string, number[]>>;
}

/**
 * Runs every reward function and sums the scores per completion (unweighted by default, as the
 * recipe does).
 *
 * @param completions Model outputs.
 * @param answers Reference answers, one per completion.
 * @param options Functions and weights; see {@linkcode CombineRewardsOptions}.
 * @returns Totals and the per-function scores.
 * @example
 * ```ts
 * import { combineRewards } from "./rewards.ts";
 * const r = combineRewards(["<reasoning>r</reasoning>\n<answer>4</answer>"], ["4"]);
 * if (r.total[0] !== 3 + 2.5 + 3 + 1.5) throw new Error(String(r.total[0]));
 * ```
 */
export function combineRewards(
  completions: readonly string[],
  answers: readonly string[],
  options: CombineRewardsOptions = {},
): CombinedRewards {
  checkLengths(completions, answers);
  const functions: Readonly<Record<string, RewardFunction>> = options.functions ?? REWARD_FUNCTIONS;
  const names = Object.keys(functions);
  if (names.length === 0) throw new RewardError("functions must name at least one reward function");
  const weights = options.weights ?? {};
  for (const [name, w] of Object.entries(weights)) {
    if (!(name in functions)) {
      throw new RewardError(
        `weights.${name} names no reward function (known: ${names.join(", ")})`,
      );
    }
    if (typeof w !== "number" || !Number.isFinite(w)) {
      throw new RewardError(`weights.${name} must be a finite number, got ${w}`);
    }
  }
  const total = new Array<number>(completions.length).fill(0);
  const perFunction: Record<string, number[]> = {};
  for (const name of names) {
    const scores = functions[name](completions, answers);
    if (scores.length !== completions.length) {
      throw new RewardError(
        `reward function ${name} returned ${scores.length} scores for ${completions.length} completions`,
      );
    }
    const w = weights[name] ?? 1;
    scores.forEach((s, i) => (total[i] += w * s));
    perFunction[name] = scores;
  }
  return { total, perFunction };
}
