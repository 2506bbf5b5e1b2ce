import assert from "node:assert/strict";
import {
  checkAnswer,
  checkNumbers,
  combineRewards,
  extractAnswerNumber,
  extractFormattedAnswer,
  matchFormatApproximately,
  matchFormatExactly,
  parsePythonFloat,
  pythonStrip,
  REWARD_FUNCTIONS,
  RewardError,
} from "../rl/rewards.ts";

const R = "<reasoning>r</reasoning>";

/**
 * [completion, answer, [matchFormatExactly, matchFormatApproximately, checkAnswer, checkNumbers]].
 * Worked by hand from the recipe's definitions; every row was also run through the recipe's
 * Python functions (CPython 3.11 `re` / `float`) and agrees.
 */
const CASES: [string, string, [number, number, number, number]][] = [
  // well-formed
  [`${R}\n<answer>72</answer>`, "72", [3, 2.5, 3, 1.5]],
  // multi-line reasoning and answer: the guess is "\n72\n", equal only after strip()
  ["<reasoning>\nStep 1: 6*12\nStep 2: =72\n</reasoning>\n\n<answer>\n72\n</answer>\n", "72", [
    3,
    2.5,
    1.5,
    1.5,
  ]],
  // text on an earlier line: MULTILINE ^ matches after "\n"; but the index-0 check fails
  [`Sure, let me solve it.\n${R}<answer>72</answer>`, "72", [3, 1.5, 3, 1.5]],
  // text before <reasoning> on the same line: no match
  [`Sure! ${R}<answer>72</answer>`, "72", [0, 1.5, 0, 1.5]],
  // text after </answer> on the same line: no match; on the next line: match
  [`${R}<answer>72</answer> done`, "72", [0, 2.5, 0, 1.5]],
  [`${R}<answer>72</answer>\nThanks!`, "72", [3, 2.5, 3, 1.5]],
  // missing tags
  ["<reasoning>r<answer>72</answer>", "72", [0, 1.5, 0, 1.5]],
  [`${R}<answer>72`, "72", [0, 1.5, 0, 1.5]],
  ["<reasoning></reasoning><answer>72</answer>", "72", [0, 2.5, 0, 1.5]], // .+? needs a char
  ["<answer>1000</answer>", "1,000", [0, -0.5, 0, 0]],
  ["", "72", [0, -2.5, 0, 0]],
  // duplicated tags: the lazy group stretches to the last </answer> to reach the line end
  ["<reasoning>a</reasoning><reasoning>b</reasoning><answer>72</answer><answer>73</answer>", "72", [
    3,
    -1.5,
    -0.5,
    1.5,
  ]],
  // commas: float("1,000") fails; match_numbers stops at the comma ("1")
  [`${R}<answer>1,000</answer>`, "1000", [3, 2.5, -0.5, 0]],
  // zero answers: string equality first, then ZeroDivisionError → −0.5
  [`${R}<answer>5</answer>`, "0", [3, 2.5, -0.5, 0]],
  [`${R}<answer>0</answer>`, "0", [3, 2.5, 3, 1.5]],
  [`${R}<answer>0.0</answer>`, "0", [3, 2.5, -0.5, 1.5]],
  // negative numbers: match_numbers drops the sign
  [`${R}<answer>-5</answer>`, "-5", [3, 2.5, 3, 0]],
  [`${R}<answer>5</answer>`, "-5", [3, 2.5, -1, 0]],
  // whitespace
  [`${R}\n<answer>72</answer>  \n\n  `, "72", [3, 2.5, 3, 1.5]],
  [`${R}<answer> 72 </answer>`, "72", [3, 2.5, 1.5, 1.5]],
  [`${R}<answer>72</answer>`, " 72", [3, 2.5, 1.5, 1.5]],
  [`${R}<answer>72</answer>\r\n`, "72", [3, 2.5, 3, 1.5]],
  // ratio bands (75/72 = 1.04, 80/72 = 1.11, 60/72 = 0.83, 50/72 = 0.69)
  [`${R}<answer>75</answer>`, "72", [3, 2.5, 0.5, 0]],
  [`${R}<answer>80</answer>`, "72", [3, 2.5, 0.25, 0]],
  [`${R}<answer>60</answer>`, "72", [3, 2.5, 0.25, 0]],
  [`${R}<answer>50</answer>`, "72", [3, 2.5, -1, 0]],
  [`${R}<answer>seventy-two</answer>`, "72", [3, 2.5, -0.5, 0]],
  // Python line and space rules: "\r" and U+2028 do not start a line; "\x1c" is \s; U+FEFF is not
  [`x\r${R}<answer>72</answer>`, "72", [0, 1.5, 0, 1.5]],
  [`x\u2028${R}<answer>72</answer>`, "72", [0, 1.5, 0, 1.5]],
  [`\x1c${R}<answer>72</answer>`, "72", [3, 1.5, 3, 1.5]],
  [`\ufeff${R}<answer>72</answer>`, "72", [0, 1.5, 0, 1.5]],
  // Unicode digits are \d and float() reads them; "1_000" is a float but "_" is not [\d.]
  [`${R}<answer>\u0667\u0662</answer>`, "72", [3, 2.5, 0.5, 1.5]],
  [`${R}<answer>1_000</answer>`, "1000", [3, 2.5, 0.5, 0]],
  // match_numbers needs no closing tag; the number run may end in a dot or be only dots
  ["<answer>7.2.1", "7.2", [0, -1.5, 0, 0]],
  ["<answer>3.", "3", [0, -1.5, 0, 1.5]],
  ["<answer>the end.", "3", [0, -1.5, 0, 0]],
];

Deno.test("matchFormatExactly(), matchFormatApproximately(), checkAnswer(), checkNumbers() match the recipe on hand-worked cases", () => {
  for (const [completion, answer, expected] of CASES) {
    const got = [
      matchFormatExactly([completion], [answer])[0],
      matchFormatApproximately([completion], [answer])[0],
      checkAnswer([completion], [answer])[0],
      checkNumbers([completion], [answer])[0],
    ];
    assert.deepEqual(got, expected, JSON.stringify([completion, answer]));
  }
});

Deno.test("checkAnswer() and checkNumbers() score whole batches element-wise and check lengths", () => {
  const completions = CASES.map((c) => c[0]);
  const answers = CASES.map((c) => c[1]);
  assert.deepEqual(checkAnswer(completions, answers), CASES.map((c) => c[2][2]));
  assert.deepEqual(checkNumbers(completions, answers), CASES.map((c) => c[2][3]));
  assert.throws(() => checkAnswer(["a", "b"], ["1"]), RewardError);
});

Deno.test("matchFormatApproximately() four-check variant drops the starts-with check", () => {
  const c = [`Sure.\n${R}<answer>1</answer>`, `${R}<answer>1</answer>`, "x"];
  assert.deepEqual(matchFormatApproximately(c, ["1", "1", "1"]), [1.5, 2.5, -2.5]);
  assert.deepEqual(
    matchFormatApproximately(c, ["1", "1", "1"], { checkStartsWithReasoning: false }),
    [2, 2, -2],
  );
});

Deno.test("extractFormattedAnswer() and extractAnswerNumber() return the regex groups", () => {
  assert.equal(extractFormattedAnswer(`${R}<answer> 42 </answer>`), " 42 ");
  assert.equal(extractFormattedAnswer("<answer>42</answer>"), null);
  assert.equal(extractAnswerNumber("<answer>about $1,200.50 total"), "1");
  assert.equal(extractAnswerNumber("<answer>\n\n3.50</answer>"), "3.50");
  assert.equal(extractAnswerNumber("no tag 42"), null);
  assert.equal(extractAnswerNumber("<answer>x</answer> then 9"), "9"); // .*? crosses the tag
});

Deno.test("parsePythonFloat() mirrors Python float()", () => {
  const ok: [string, number][] = [
    ["72", 72],
    [" 7.5\n", 7.5],
    ["-5", -5],
    ["+3", 3],
    [".5", 0.5],
    ["5.", 5],
    ["1e3", 1000],
    ["1.5E-2", 0.015],
    ["1_000", 1000],
    ["1e1_0", 1e10],
    ["007", 7],
    ["\u2003 12 \x85", 12],
    ["\u0661\u0662\u0663", 123],
    ["\uff11\uff12", 12],
    ["\u{1D7D5}", 7],
    ["-Infinity", -Infinity],
    ["iNf", Infinity],
    ["1e400", Infinity],
  ];
  for (const [text, value] of ok) assert.equal(parsePythonFloat(text), value, JSON.stringify(text));
  assert.ok(Number.isNaN(parsePythonFloat("nan")));
  assert.ok(Number.isNaN(parsePythonFloat("-NaN")));
  const bad = [
    "",
    " ",
    "1,000",
    "1__0",
    "_1",
    "1_",
    "1_.5",
    "1._5",
    "1_e5",
    ".",
    "e5",
    "1e",
    "0x10",
    "\u22125",
    "+-1",
    "in f",
    "infinit",
    "1 2",
    "\x1c1",
    "1\x1c",
    "\ufeff1",
    "$5",
    "5%",
  ];
  for (const text of bad) assert.equal(parsePythonFloat(text), null, JSON.stringify(text));
});

Deno.test("pythonStrip() strips Python whitespace, not U+FEFF", () => {
  assert.equal(pythonStrip(" \t\n\x1c\x85\u00a0\u3000x y\r\v\f\u2028"), "x y");
  assert.equal(pythonStrip("\ufeffx\ufeff"), "\ufeffx\ufeff");
});

Deno.test("combineRewards() sums unweighted by default, applies weights and validates them", () => {
  const completions = [`${R}\n<answer>72</answer>`, "<answer>70"];
  const answers = ["72", "72"];
  const r = combineRewards(completions, answers);
  assert.deepEqual(Object.keys(r.perFunction), Object.keys(REWARD_FUNCTIONS));
  assert.deepEqual(r.perFunction.checkAnswer, [3, 0]);
  assert.deepEqual(r.total, [3 + 2.5 + 3 + 1.5, 0 - 1.5 + 0 + 0]);
  const w = combineRewards(completions, answers, {
    weights: { checkAnswer: 2, matchFormatApproximately: 0 },
  });
  assert.deepEqual(w.total, [3 + 0 + 6 + 1.5, 0]);
  assert.deepEqual(w.perFunction.matchFormatApproximately, [2.5, -1.5]); // logged unweighted
  assert.throws(
    () => combineRewards(completions, answers, { weights: { checkAnswr: 1 } }),
    /weights\.checkAnswr names no/,
  );
  assert.throws(
    () => combineRewards(completions, answers, { weights: { checkAnswer: NaN } }),
    /finite/,
  );
  const custom = combineRewards(completions, answers, {
    functions: { len: (c) => c.map((s) => s.length) },
  });
  assert.deepEqual(custom.total, completions.map((s) => s.length));
  assert.throws(
    () => combineRewards(["a"], ["1"], { functions: { bad: () => [] } }),
    /returned 0 scores/,
  );
});
