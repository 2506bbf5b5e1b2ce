import assert from "node:assert/strict";
import {
  type EvalRecord,
  scoreQuestion,
  scoreResponse,
  ScoringError,
  summarizeEval,
} from "../rl/scoring.ts";

const R = "<reasoning>r</reasoning>";

/**
 * [response, answer, [correct, partial, formatted], extracted]. Worked by hand from the
 * recipe's evaluate(); each row also agrees with the recipe's Python code (CPython 3.11).
 */
const CASES: [string, string, [boolean, boolean, boolean], string | null][] = [
  [`${R}\n<answer>72</answer>`, "72", [true, true, true], "72"],
  ["<answer>75</answer>", "72", [false, true, false], "75"], // 75/72 = 1.04, no reasoning tags
  [`${R}<answer>65</answer>`, "72", [false, true, true], "65"], // 65/72 = 0.903
  [`${R}<answer>80</answer>`, "72", [false, false, true], "80"], // 80/72 = 1.11
  ["The answer is 72.", "72", [false, false, false], null], // no <answer>: nothing extracted
  ["<answer>The total is 72 dollars", "72", [true, true, false], "72"], // no closing tag needed
  [`${R}<answer>0</answer>`, "0", [true, false, true], "0"], // 0/0 raises after equality counted
  [`${R}<answer>1,000</answer>`, "1000", [false, false, true], "1"], // stops at the comma
  [`${R}<answer>-5</answer>`, "-5", [false, false, true], "5"], // the sign is not extracted
  [`${R}<answer>72</answer>`, "x", [false, false, true], "72"], // answer does not parse
  ["<answer>7.2.1</answer>", "7.2", [false, false, false], "7.2.1"], // guess does not parse
  [`Sure!\n${R}\n<answer>\n72\n</answer>\n`, "72.0", [true, true, true], "72"],
  // subtle: the recipe compares its "-1000000" stand-in when nothing is extracted
  ["no number", "-1000000", [true, true, false], null],
];

Deno.test("scoreResponse() matches the recipe's evaluate() on hand-worked cases", () => {
  for (const [response, answer, [correct, partial, formatted], extracted] of CASES) {
    assert.deepEqual(
      scoreResponse(response, answer),
      { correct, partial, formatted, extracted },
      JSON.stringify([response, answer]),
    );
  }
});

function record(index: number, answer: string, completions: string[]): EvalRecord {
  return scoreQuestion({ index, prompt: `q${index}`, answer, completions });
}

Deno.test("scoreQuestion() flags a question when any pass holds", () => {
  const r = record(3, "72", ["<answer>75</answer>", `${R}<answer>70</answer>`, "<answer>72"]);
  assert.deepEqual(r.scores.map((s) => [s.correct, s.partial, s.formatted]), [
    [false, true, false],
    [false, true, true],
    [true, true, false],
  ]);
  assert.deepEqual([r.correct, r.partial, r.formatted], [true, true, true]);
  assert.deepEqual([r.index, r.prompt, r.answer, r.completions.length], [3, "q3", "72", 3]);
  assert.deepEqual(r.scores.map((s) => s.extracted), ["75", "70", "72"]);
  assert.throws(() => record(0, "1", []), ScoringError);
});

Deno.test("summarizeEval() gives fractions over questions, any pass counting, and honours passes", () => {
  const good = `${R}\n<answer>4</answer>`;
  const records = [
    record(0, "4", ["<answer>5</answer>", good]), // pass 2 correct + formatted
    record(1, "4", [`${R}<answer>9</answer>`, "nothing"]), // formatted only
    record(2, "10", ["<answer>10.5", "<answer>3"]), // partial only (10.5/10)
    record(3, "4", ["nothing", "nothing"]), // nothing
  ];
  const all = summarizeEval(records);
  assert.deepEqual(all, {
    n: 4,
    passes: 2,
    numCorrect: 1,
    numPartial: 2,
    numFormatted: 2,
    accuracy: 0.25,
    partialAccuracy: 0.5,
    formatAccuracy: 0.5,
  });
  const first = summarizeEval(records, { passes: 1 });
  assert.deepEqual(
    [first.passes, first.numCorrect, first.numPartial, first.numFormatted],
    [1, 0, 1, 1], // record 0's first pass is 5/4 = 1.25: not partial
  );
  assert.throws(() => summarizeEval(records, { passes: 3 }), /only 2 passes/);
  assert.throws(() => summarizeEval(records, { passes: 0 }), /passes must be an integer >= 1/);
  const empty = summarizeEval([]);
  assert.deepEqual([empty.n, empty.accuracy, empty.partialAccuracy, empty.formatAccuracy], [
    0,
    0,
    0,
    0,
  ]);
  assert.equal(JSON.parse(JSON.stringify(all)).accuracy, 0.25); // JSON-ready
});
