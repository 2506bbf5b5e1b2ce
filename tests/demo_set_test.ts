import assert from "node:assert/strict";
import { DataOptionsError } from "../data/errors.ts";
import { ITEMS, PEOPLE } from "../data/demo_templates.ts";
import { parseJsonlText } from "../data/jsonl.ts";
import { type DemoRecord, generateDemoSet } from "../data/demo_set.ts";
import { toGrpoExample, toSftExample } from "../data/examples.ts";
import { collectGsm8k } from "../data/gsm8k.ts";

function checkArithmetic(r: DemoRecord): void {
  const lines = r.reasoning.split("\n");
  assert.equal(lines.length, r.steps);
  let prev: number | null = null;
  for (const line of lines) {
    const m = line.match(/^(\d+) ([-+*/]) (\d+) = (\d+)$/);
    assert.ok(m, `bad reasoning line ${JSON.stringify(line)}`);
    const [a, op, b, c] = [Number(m[1]), m[2], Number(m[3]), Number(m[4])];
    if (prev !== null) assert.equal(a, prev, `step does not continue: ${r.reasoning}`);
    const expect = op === "+" ? a + b : op === "-" ? a - b : op === "*" ? a * b : a / b;
    assert.equal(c, expect, line);
    assert.ok(Number.isInteger(c) && c >= 0, line);
    prev = c;
  }
  assert.equal(prev, r.answerNumber);
  assert.equal(r.answer, String(r.answerNumber));
  assert.equal(r.solution, `${r.reasoning}\n#### ${r.answer}`);
}

function skeleton(question: string): string {
  let s = question.replace(/\d+/g, "#");
  for (const p of PEOPLE) s = s.replaceAll(p.name, "P");
  for (const i of [...ITEMS].sort((a, b) => b.many.length - a.many.length)) {
    s = s.replaceAll(i.many, "I").replaceAll(i.one, "I");
  }
  return s.replace(/\b(he|she|him|her)\b/g, "x").replace(/\bfriends?\b/g, "friend");
}

Deno.test("generateDemoSet() is deterministic for a seed and varies across seeds", () => {
  const a = generateDemoSet({ seed: 5, trainSize: 300, testSize: 50, difficulty: 2 });
  const b = generateDemoSet({ seed: 5, trainSize: 300, testSize: 50, difficulty: "hard" });
  const c = generateDemoSet({ seed: 6, trainSize: 300, testSize: 50, difficulty: 2 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.train.map((r) => r.question), c.train.map((r) => r.question));
});

Deno.test("generateDemoSet() splits are disjoint and free of duplicates", () => {
  for (const difficulty of [0, 1, 2, 3] as const) {
    const { train, test } = generateDemoSet({
      seed: 1,
      trainSize: 2000,
      testSize: 200,
      difficulty,
    });
    assert.equal(train.length, 2000);
    assert.equal(test.length, 200);
    const questions = new Set([...train, ...test].map((r) => r.question));
    assert.equal(questions.size, 2200, `duplicates at difficulty ${difficulty}`);
  }
});

Deno.test("generateDemoSet() test split does not depend on trainSize", () => {
  const small = generateDemoSet({ seed: 3, trainSize: 10, testSize: 40 });
  const large = generateDemoSet({ seed: 3, trainSize: 1000, testSize: 40 });
  assert.deepEqual(small.test, large.test);
});

Deno.test("generateDemoSet() worked solutions are exact integer arithmetic", () => {
  for (const difficulty of [0, 1, 2, 3] as const) {
    const { train, test } = generateDemoSet({
      seed: 9,
      trainSize: 1000,
      testSize: 100,
      difficulty,
    });
    for (const r of [...train, ...test]) checkArithmetic(r);
  }
});

Deno.test("generateDemoSet() levels control steps, operations and number sizes", () => {
  const stepsSeen = (rs: readonly DemoRecord[]) => [...new Set(rs.map((r) => r.steps))].sort();
  const opsSeen = (rs: readonly DemoRecord[]) =>
    [...new Set(rs.flatMap((r) => r.reasoning.match(/ [-+*/] /g) ?? []))].map((s) => s.trim())
      .sort();
  const sets = [0, 1, 2, 3].map((d) =>
    generateDemoSet({ seed: 2, trainSize: 1000, testSize: 0, difficulty: d as 0 | 1 | 2 | 3 })
      .train
  );
  assert.deepEqual(stepsSeen(sets[0]), [1]);
  assert.deepEqual(stepsSeen(sets[1]), [1, 2]);
  assert.deepEqual(stepsSeen(sets[2]), [1, 2, 3]);
  assert.deepEqual(stepsSeen(sets[3]), [2, 3]);
  for (const s of sets) assert.deepEqual(opsSeen(s), ["*", "+", "-", "/"]);
  const maxAnswer = sets.map((s) => Math.max(...s.map((r) => r.answerNumber)));
  assert.ok(maxAnswer[0] <= 25, `easy answers stay small, got ${maxAnswer[0]}`);
  assert.ok(maxAnswer[0] < maxAnswer[1] && maxAnswer[1] < maxAnswer[2]);
  assert.ok(maxAnswer[2] < maxAnswer[3]);
});

Deno.test("generateDemoSet() easy level keeps texts short", () => {
  const { train } = generateDemoSet({ seed: 4, trainSize: 2000, testSize: 0, difficulty: "easy" });
  for (const r of train) {
    assert.ok(r.question.length <= 100, r.question);
    assert.ok(r.reasoning.length <= 12, r.reasoning);
    assert.match(r.reasoning, /^\d \S \d = \d+$|^\d+ \/ \d = \d$/);
  }
});

Deno.test("generateDemoSet() uses at least 10 templates per level", () => {
  for (const difficulty of [0, 1] as const) {
    const { train } = generateDemoSet({ seed: 8, trainSize: 2000, testSize: 0, difficulty });
    const shapes = new Set(train.map((r) => skeleton(r.question)));
    assert.ok(shapes.size >= 10, `only ${shapes.size} shapes at ${difficulty}`);
  }
  const easy = generateDemoSet({ seed: 8, trainSize: 2000, testSize: 0 }).train;
  const names = new Set(easy.map((r) => r.question.split(" ")[0]));
  assert.ok(names.size >= 15, `only ${names.size} opening words`);
});

Deno.test("generateDemoSet() records parse as GSM8K and convert to SFT and GRPO examples", async () => {
  const { train } = generateDemoSet({ seed: 11, trainSize: 200, testSize: 0, difficulty: 1 });
  const text = train.map((r) => JSON.stringify({ question: r.question, answer: r.solution }))
    .join("\n");
  const { records, summary } = await collectGsm8k(parseJsonlText(text, "demo.jsonl"));
  assert.equal(summary.skipped, 0);
  assert.deepEqual(records.map((r) => r.answerNumber), train.map((r) => r.answerNumber));
  const sft = toSftExample(train[0]);
  assert.equal(
    sft.target,
    `<reasoning>${train[0].reasoning}</reasoning>\n<answer>${train[0].answer}</answer>`,
  );
  assert.equal(toGrpoExample(train[0]).answer, train[0].answer);
});

Deno.test("generateDemoSet() rejects bad options, naming the field", () => {
  // deno-lint-ignore no-explicit-any
  assert.throws(() => generateDemoSet({ difficulty: 4 as any }), /difficulty/);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => generateDemoSet({ difficulty: "trivial" as any }), DataOptionsError);
  assert.throws(() => generateDemoSet({ trainSize: -1 }), /trainSize/);
  assert.throws(() => generateDemoSet({ testSize: 1.5 }), /testSize/);
  assert.throws(() => generateDemoSet({ seed: 0.5 }), /seed/);
});
