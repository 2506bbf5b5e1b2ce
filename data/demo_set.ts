/**
 * The built-in demo set: seeded grade-school arithmetic word problems in GSM8K's shape
 * (`question`, worked `solution` ending in `#### N`, gold `answer`), with a short `reasoning`
 * for SFT. Every operation has an exact integer result; train and test never share a question.
 *
 * Difficulty levels:
 * - 0 `easy`: one step, operands 1–9 (×, ÷ up to 5), e.g. "Tom has 3 apples and buys 4 more.
 *   How many apples does he have?" → reasoning `3 + 4 = 7`. Meant for a tiny model trained
 *   from scratch in minutes.
 * - 1 `medium`: 1–2 steps, operands up to 20.
 * - 2 `hard`: 1–3 steps, operands up to 100.
 * - 3 `expert`: 2–3 steps, operands up to 1000.
 *
 * @module
 */

import { checkNonNegativeInt } from "./_common.ts";
import { DataOptionsError } from "./errors.ts";
import { SeededRandom } from "../base/random.ts";
import {
  type DemoOp,
  ITEMS,
  ONE_STEP_TEMPLATES,
  OPENINGS,
  PEOPLE,
  PRODUCT_OPENING,
  QUESTIONS,
  STEP_TEMPLATES,
  type TemplateContext,
} from "./demo_templates.ts";

/** Names of the difficulty levels 0–3. */
export const DEMO_DIFFICULTY_NAMES: readonly ["easy", "medium", "hard", "expert"] = Object
  .freeze(["easy", "medium", "hard", "expert"] as const);

/** A difficulty level, by number or name. */
export type DemoDifficulty = 0 | 1 | 2 | 3 | "easy" | "medium" | "hard" | "expert";

/** One demo problem; usable wherever a GSM8K record is (same fields plus `reasoning`). */
export interface DemoRecord {
  /** The word problem. */
  readonly question: string;
  /** Worked solution, one equation per line, then `#### N`. */
  readonly solution: string;
  /** The gold answer as text. */
  readonly answer: string;
  /** The gold answer. */
  readonly answerNumber: number;
  /** The equations only (no `####` line), for SFT targets. */
  readonly reasoning: string;
  /** Number of arithmetic steps (1–3). */
  readonly steps: number;
  /** Difficulty level 0–3. */
  readonly difficulty: number;
}

/** Options for {@linkcode generateDemoSet}. */
export interface DemoSetOptions {
  /** PRNG seed. Default 0. */
  readonly seed?: number;
  /** Training problems. Default 2000. */
  readonly trainSize?: number;
  /** Test problems. Default 200. */
  readonly testSize?: number;
  /** Difficulty. Default 0 (`"easy"`). */
  readonly difficulty?: DemoDifficulty;
}

/** A generated demo set. */
export interface DemoSet {
  /** Training problems. */
  readonly train: readonly DemoRecord[];
  /** Test problems, none of whose questions appear in `train`. */
  readonly test: readonly DemoRecord[];
  /** The options used, defaults filled in (`difficulty` as a number). */
  readonly options: Readonly<Required<Omit<DemoSetOptions, "difficulty">> & { difficulty: number }>;
}

interface Level {
  readonly minSteps: number;
  readonly maxSteps: number;
  readonly addMin: number;
  readonly addMax: number;
  readonly mulMax: number;
  readonly quotMin: number;
  readonly quotMax: number;
  readonly divisorMax: number;
  /** Largest running amount in a multi-step problem. */
  readonly cap: number;
}

const LEVELS: readonly Level[] = Object.freeze([
  {
    minSteps: 1,
    maxSteps: 1,
    addMin: 1,
    addMax: 9,
    mulMax: 5,
    quotMin: 1,
    quotMax: 5,
    divisorMax: 5,
    cap: 25,
  },
  {
    minSteps: 1,
    maxSteps: 2,
    addMin: 1,
    addMax: 20,
    mulMax: 9,
    quotMin: 2,
    quotMax: 10,
    divisorMax: 9,
    cap: 100,
  },
  {
    minSteps: 1,
    maxSteps: 3,
    addMin: 2,
    addMax: 100,
    mulMax: 12,
    quotMin: 2,
    quotMax: 20,
    divisorMax: 12,
    cap: 1000,
  },
  {
    minSteps: 2,
    maxSteps: 3,
    addMin: 10,
    addMax: 1000,
    mulMax: 25,
    quotMin: 2,
    quotMax: 50,
    divisorMax: 25,
    cap: 20000,
  },
]);

/**
 * Normalizes a difficulty to its level number.
 *
 * @param difficulty 0–3 or a name.
 * @returns The level 0–3.
 * @throws {DataOptionsError} On anything else.
 */
export function demoDifficultyLevel(difficulty: DemoDifficulty): number {
  const named = (DEMO_DIFFICULTY_NAMES as readonly unknown[]).indexOf(difficulty);
  if (named >= 0) return named;
  if (
    typeof difficulty === "number" && Number.isInteger(difficulty) && difficulty >= 0 &&
    difficulty <= 3
  ) {
    return difficulty;
  }
  throw new DataOptionsError(
    "difficulty",
    `must be 0-3 or one of ${DEMO_DIFFICULTY_NAMES.join(", ")}, got ${JSON.stringify(difficulty)}`,
  );
}

function apply(a: number, op: DemoOp, b: number): number {
  switch (op) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      return a * b;
    case "/":
      return a / b;
  }
}

function context(rng: SeededRandom): TemplateContext {
  const person = rng.pick(PEOPLE);
  let friend = rng.pick(PEOPLE);
  while (friend === person) friend = rng.pick(PEOPLE);
  const item = rng.pick(ITEMS);
  return { person, friend, item, count: (n) => `${n} ${n === 1 ? item.one : item.many}` };
}

/** Operands `a op b` for a one-step problem. */
function operands(rng: SeededRandom, op: DemoOp, lv: Level): [number, number] {
  switch (op) {
    case "+":
      return [rng.int(lv.addMin, lv.addMax), rng.int(lv.addMin, lv.addMax)];
    case "-": {
      const a = rng.int(lv.addMin + 1, lv.addMax);
      return [a, rng.int(Math.min(lv.addMin, a - 1), a - 1)];
    }
    case "*":
      return [rng.int(2, lv.mulMax), rng.int(2, lv.mulMax)];
    case "/": {
      const d = rng.int(2, lv.divisorMax);
      return [d * rng.int(lv.quotMin, lv.quotMax), d];
    }
  }
}

/** Picks a feasible `op b` for the running amount `v`, or null when none fits. */
function nextStep(rng: SeededRandom, v: number, lv: Level): [DemoOp, number] {
  const options: [DemoOp, () => number][] = [];
  if (v + lv.addMin <= lv.cap) {
    options.push(["+", () => rng.int(lv.addMin, Math.min(lv.addMax, lv.cap - v))]);
  }
  if (v >= 2) {
    const hi = Math.min(lv.addMax, v - 1);
    options.push(["-", () => rng.int(Math.min(lv.addMin, hi), hi)]);
  }
  if (v * 2 <= lv.cap) {
    options.push(["*", () => rng.int(2, Math.min(lv.mulMax, Math.floor(lv.cap / v)))]);
  }
  const divisors: number[] = [];
  for (let d = 2; d <= lv.divisorMax; d++) if (v % d === 0 && v / d >= 2) divisors.push(d);
  if (divisors.length > 0) options.push(["/", () => rng.pick(divisors)]);
  const [op, pick] = rng.pick(options); // "+" or "-" is always feasible (cap > addMin)
  return [op, pick()];
}

function record(question: string, lines: string[], value: number, level: number): DemoRecord {
  const reasoning = lines.join("\n");
  return Object.freeze({
    question,
    solution: `${reasoning}\n#### ${value}`,
    answer: String(value),
    answerNumber: value,
    reasoning,
    steps: lines.length,
    difficulty: level,
  });
}

/**
 * Generates one problem.
 *
 * @param rng The random stream (advanced by this call).
 * @param difficulty Level 0–3 or its name.
 * @returns A problem with question, solution, answer and reasoning.
 * @example
 * ```ts
 * import { generateDemoProblem } from "./demo_set.ts";
 * import { SeededRandom } from "../base/random.ts";
 * const p = generateDemoProblem(new SeededRandom(1), "easy");
 * if (!p.solution.endsWith(`#### ${p.answer}`)) throw new Error();
 * ```
 */
export function generateDemoProblem(rng: SeededRandom, difficulty: DemoDifficulty): DemoRecord {
  const level = demoDifficultyLevel(difficulty);
  const lv = LEVELS[level];
  const c = context(rng);
  const steps = rng.int(lv.minSteps, lv.maxSteps);
  if (steps === 1 && (level === 0 || rng.next() < 0.5)) {
    const t = rng.pick(ONE_STEP_TEMPLATES);
    const [a, b] = operands(rng, t.op, lv);
    const r = apply(a, t.op, b);
    return record(t.text(c, a, b), [`${a} ${t.op} ${b} = ${r}`], r, level);
  }
  const sentences: string[] = [];
  const lines: string[] = [];
  let v: number;
  if (steps >= 2 && rng.next() < 0.3) {
    const a = rng.int(2, lv.mulMax);
    const b = rng.int(2, lv.mulMax);
    sentences.push(PRODUCT_OPENING(c, a, b));
    v = a * b;
    lines.push(`${a} * ${b} = ${v}`);
  } else {
    v = rng.int(lv.addMin + 1, lv.addMax);
    sentences.push(rng.pick(OPENINGS)(c, v));
  }
  while (lines.length < steps) {
    const [op, b] = nextStep(rng, v, lv);
    const t = rng.pick(STEP_TEMPLATES.filter((s) => s.op === op));
    sentences.push(t.text(c, b));
    const r = apply(v, op, b);
    lines.push(`${v} ${op} ${b} = ${r}`);
    v = r;
  }
  sentences.push(rng.pick(QUESTIONS)(c));
  return record(sentences.join(" "), lines, v, level);
}

/**
 * Generates the demo set: `testSize` unique problems first, then `trainSize` more whose
 * questions differ from every test question (so the test set for a seed does not depend on
 * `trainSize`). Deterministic for given options.
 *
 * @param options Seed, sizes, difficulty.
 * @returns Train and test problems.
 * @throws {DataOptionsError} On invalid options, or when the level cannot yield that many
 *   distinct questions.
 * @example
 * ```ts
 * import { generateDemoSet } from "./demo_set.ts";
 * const { train, test } = generateDemoSet({ seed: 7, trainSize: 100, testSize: 10 });
 * const seen = new Set(train.map((r) => r.question));
 * if (test.some((r) => seen.has(r.question))) throw new Error("splits overlap");
 * ```
 */
export function generateDemoSet(options: DemoSetOptions = {}): DemoSet {
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) {
    throw new DataOptionsError("seed", `must be an integer, got ${seed}`);
  }
  const trainSize = checkNonNegativeInt("trainSize", options.trainSize) ?? 2000;
  const testSize = checkNonNegativeInt("testSize", options.testSize) ?? 200;
  const difficulty = demoDifficultyLevel(options.difficulty ?? 0);
  const rng = new SeededRandom(seed);
  const seen = new Set<string>();
  const draw = (n: number): DemoRecord[] => {
    const out: DemoRecord[] = [];
    let attempts = 0;
    const maxAttempts = 50 * n + 1000;
    while (out.length < n) {
      if (++attempts > maxAttempts) {
        throw new DataOptionsError(
          "trainSize",
          `+ testSize (${trainSize + testSize}) is more distinct problems than difficulty ` +
            `${difficulty} yields easily; lower the sizes or raise the difficulty`,
        );
      }
      const p = generateDemoProblem(rng, difficulty as DemoDifficulty);
      if (seen.has(p.question)) continue;
      seen.add(p.question);
      out.push(p);
    }
    return out;
  };
  const test = draw(testSize);
  const train = draw(trainSize);
  return Object.freeze({
    train: Object.freeze(train),
    test: Object.freeze(test),
    options: Object.freeze({ seed, trainSize, testSize, difficulty }),
  });
}
