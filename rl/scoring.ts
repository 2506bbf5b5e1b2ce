/**
 * Evaluation scoring with the semantics of the seed recipe's `evaluate()` (Google Tunix
 * `examples/grpo_gemma.ipynb`): per response an exact-answer flag, a within-10% flag and a
 * format flag; per question "any pass counts"; a summary with fractions over the questions.
 * Decoding itself (greedy or sampled) lives with the sampler; this module only scores text.
 *
 * @module
 */

import {
  extractAnswerNumber,
  matchFormatRegExp,
  parsePythonFloat,
  pythonStrip,
} from "./rewards.ts";

/** Thrown for invalid evaluation records or options. */
export class ScoringError extends Error {
  /** @param message What was expected and what was received. */
  constructor(message: string) {
    super(message);
    this.name = "ScoringError";
  }
}

/** Flags of one scored response. */
export interface ResponseScore {
  /** `float(extracted) == float(answer)`. */
  readonly correct: boolean;
  /** `0.9 <= float(extracted) / float(answer) <= 1.1` (false when the answer is 0). */
  readonly partial: boolean;
  /** The recipe's `match_format` is found. */
  readonly formatted: boolean;
  /** Group 1 of `match_numbers` (first digits/dots run after `<answer>`), or null. */
  readonly extracted: string | null;
}

// subtle: the recipe substitutes this string when match_numbers finds nothing and still runs
// the comparisons, so a (hypothetical) answer of -1000000 would count as correct.
const MISSING_NUMBER = "-1000000";

/**
 * Scores one response like the recipe's `evaluate()`. Either side failing to parse as a Python
 * float makes `correct` and `partial` false; a zero answer makes `partial` false (Python raises
 * ZeroDivisionError after the equality check has already counted).
 *
 * @param response Model output.
 * @param answer Reference answer, e.g. `"72"`.
 * @returns The three flags and the extracted number text.
 * @example
 * ```ts
 * import { scoreResponse } from "./scoring.ts";
 * const s = scoreResponse("<reasoning>6*12</reasoning>\n<answer>72</answer>", "72");
 * if (!s.correct || !s.partial || !s.formatted) throw new Error("unexpected");
 * ```
 */
export function scoreResponse(response: string, answer: string): ResponseScore {
  const extracted = extractAnswerNumber(response);
  const guess = parsePythonFloat(pythonStrip(extracted ?? MISSING_NUMBER));
  const truth = parsePythonFloat(pythonStrip(answer));
  let correct = false;
  let partial = false;
  if (guess !== null && truth !== null) {
    correct = guess === truth;
    if (truth !== 0) {
      const ratio = guess / truth;
      partial = ratio >= 0.9 && ratio <= 1.1;
    }
  }
  const formatted = matchFormatRegExp().exec(response) !== null;
  return { correct, partial, formatted, extracted };
}

/** One evaluated question: its passes and the any-pass flags. */
export interface EvalRecord {
  /** Index of the question in the evaluated set. */
  readonly index: number;
  /** The prompt text given to the model. */
  readonly prompt: string;
  /** The reference answer. */
  readonly answer: string;
  /** One completion per pass, in pass order. */
  readonly completions: readonly string[];
  /** The score of each completion. */
  readonly scores: readonly ResponseScore[];
  /** Some pass is correct. */
  readonly correct: boolean;
  /** Some pass is partially correct. */
  readonly partial: boolean;
  /** Some pass is formatted. */
  readonly formatted: boolean;
}

/**
 * Scores all passes of one question and combines them: a flag holds if it holds for any pass
 * (the recipe stops early once all three hold, which does not change the counts).
 *
 * @param question `index`, `prompt`, `answer` and the `completions` (one per pass, ≥ 1).
 * @returns The record with per-pass scores and any-pass flags.
 */
export function scoreQuestion(question: {
  readonly index: number;
  readonly prompt: string;
  readonly answer: string;
  readonly completions: readonly string[];
}): EvalRecord {
  if (question.completions.length === 0) {
    throw new ScoringError(`completions of question ${question.index} must not be empty`);
  }
  const scores = question.completions.map((c) => scoreResponse(c, question.answer));
  return {
    index: question.index,
    prompt: question.prompt,
    answer: question.answer,
    completions: [...question.completions],
    scores,
    correct: scores.some((s) => s.correct),
    partial: scores.some((s) => s.partial),
    formatted: scores.some((s) => s.formatted),
  };
}

/** Options of {@linkcode summarizeEval}. */
export interface SummarizeEvalOptions {
  /** Count only the first `passes` passes of each record (default: all of them). */
  readonly passes?: number;
}

/** JSON-ready evaluation summary. Fractions are in [0, 1]; all 0 when `n` is 0. */
export interface EvalSummary {
  /** Number of questions. */
  readonly n: number;
  /** Passes counted per question (the smallest record's count when not given). */
  readonly passes: number;
  /** Questions with a correct pass. */
  readonly numCorrect: number;
  /** Questions with a partially correct pass. */
  readonly numPartial: number;
  /** Questions with a formatted pass. */
  readonly numFormatted: number;
  /** `numCorrect / n`. */
  readonly accuracy: number;
  /** `numPartial / n`. */
  readonly partialAccuracy: number;
  /** `numFormatted / n`. */
  readonly formatAccuracy: number;
}

/**
 * Summarises evaluated questions as the recipe reports them (it prints percentages: multiply
 * these fractions by 100).
 *
 * @param records Output of {@linkcode scoreQuestion}.
 * @param options `passes`: how many passes of each record count (each must have that many).
 * @returns Counts and fractions.
 * @example
 * ```ts
 * import { scoreQuestion, summarizeEval } from "./scoring.ts";
 * const good = "<reasoning>r</reasoning>\n<answer>4</answer>";
 * const recs = [scoreQuestion({ index: 0, prompt: "p", answer: "4", completions: ["5", good] })];
 * if (summarizeEval(recs).accuracy !== 1 || summarizeEval(recs, { passes: 1 }).accuracy !== 0) {
 *   throw new Error("unexpected");
 * }
 * ```
 */
export function summarizeEval(
  records: readonly EvalRecord[],
  options: SummarizeEvalOptions = {},
): EvalSummary {
  const minPasses = records.reduce((m, r) => Math.min(m, r.scores.length), Infinity);
  const passes = options.passes ?? (records.length === 0 ? 0 : minPasses);
  if (options.passes !== undefined) {
    if (!Number.isInteger(passes) || passes < 1) {
      throw new ScoringError(`passes must be an integer >= 1, got ${options.passes}`);
    }
    if (records.length > 0 && passes > minPasses) {
      throw new ScoringError(`passes is ${passes} but some record has only ${minPasses} passes`);
    }
  }
  let numCorrect = 0, numPartial = 0, numFormatted = 0;
  for (const r of records) {
    const used = options.passes === undefined ? r.scores : r.scores.slice(0, passes);
    if (used.some((s) => s.correct)) numCorrect++;
    if (used.some((s) => s.partial)) numPartial++;
    if (used.some((s) => s.formatted)) numFormatted++;
  }
  const n = records.length;
  const frac = (k: number): number => (n === 0 ? 0 : k / n);
  return {
    n,
    passes,
    numCorrect,
    numPartial,
    numFormatted,
    accuracy: frac(numCorrect),
    partialAccuracy: frac(numPartial),
    formatAccuracy: frac(numFormatted),
  };
}
