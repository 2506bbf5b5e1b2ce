import assert from "node:assert/strict";
import { buildPrompt } from "../data/prompt.ts";
import type { GenerateOptions } from "../model/generate.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
import {
  evalConfig,
  EvalError,
  type EvalModel,
  evalStepCount,
  evaluate,
  RECIPE_EVAL_CONFIG,
  truncateAtEos,
} from "../rl/evaluate.ts";
import { mergeEvalPhase, readEvalResult, writeEvalResult } from "../rl/evaluate_fs.ts";
import { summarizeEval } from "../rl/scoring.ts";
import { testGpu } from "./_helpers.ts";
import { smallGemmaTokenizer } from "./_small_tokenizer.ts";

const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url).pathname;

let tokenizerPromise: Promise<Tokenizer> | null = null;
const tokenizer = (): Promise<Tokenizer> => (tokenizerPromise ??= loadDefaultTokenizer());

const R = "<reasoning>2 + 2 = 4</reasoning>\n";

interface Call {
  prompts: number[][];
  options: GenerateOptions;
}

/** A model whose `generate` answers each prompt with `reply(prompt text, call options)`. */
function scriptedModel(
  tok: Tokenizer,
  reply: (prompt: string, options: GenerateOptions) => number[],
): EvalModel & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    generate(prompts, options) {
      calls.push({ prompts: prompts.map((p) => [...p]), options });
      return Promise.resolve(prompts.map((p) => reply(tok.decode(p), options)));
    },
  };
}

/** Ids of `text` followed by `<end_of_turn>`. */
async function ids(text: string, eos = 106): Promise<number[]> {
  return [...(await tokenizer()).encode(text, { addSpecialTokens: false }), eos];
}

Deno.test("evaluate() summary counts correct, partial and formatted per question", async () => {
  const tok = await tokenizer();
  const questions = [
    { question: "Q0: 2 + 2?", answer: "4" }, // correct, partial, formatted
    { question: "Q1: 50 + 50?", answer: "100" }, // 105: partial only, no reasoning tags
    { question: "Q2: 3 + 3?", answer: "6" }, // nothing
    { question: "Q3: 5 + 5?", answer: "10" }, // formatted but wrong (20)
  ];
  const replies: Record<string, number[]> = {
    Q0: await ids(`${R}<answer>4</answer>`),
    Q1: await ids("<answer>105</answer>"),
    Q2: await ids("I do not know."),
    Q3: await ids(`${R}<answer>20</answer>`),
  };
  const model = scriptedModel(tok, (p) => replies[p.match(/Q\d/)![0]]);
  const { summary, records } = await evaluate(model, questions, { tokenizer: tok });
  assert.equal(summary.n, 4);
  assert.equal(summary.passes, 1);
  assert.equal(summary.accuracy, 0.25);
  assert.equal(summary.partialAccuracy, 0.5);
  assert.equal(summary.formatAccuracy, 0.5);
  assert.deepEqual([summary.numCorrect, summary.numPartial, summary.numFormatted], [1, 2, 2]);
  assert.deepEqual(records.map((r) => r.extracted), [["4"], ["105"], [null], ["20"]]);
  assert.deepEqual(records.map((r) => [r.correct, r.partial, r.formatted]), [
    [true, true, true],
    [false, true, false],
    [false, false, false],
    [false, false, true],
  ]);
  assert.equal(records[0].completions[0], `${R}<answer>4</answer>`);
  assert.equal(records[2].question, "Q2: 3 + 3?");
  assert.equal(records[2].prompt, buildPrompt("Q2: 3 + 3?"));
  // One call with the recipe's settings; each prompt starts with exactly one <bos>.
  assert.equal(model.calls.length, 1);
  const { prompts, options } = model.calls[0];
  assert.deepEqual(prompts[3], tok.encode(buildPrompt("Q3: 5 + 5?"), { addSpecialTokens: true }));
  for (const p of prompts) assert.deepEqual([p[0], p[1] === tok.bosId], [tok.bosId, false]);
  assert.deepEqual(
    [options.maxNewTokens, options.temperature, options.seed, options.eosIds],
    [768, 0, 0, [1, 106]],
  );
  assert.equal(summary.generatedTokens, Object.values(replies).reduce((t, r) => t + r.length, 0));
  assert.equal(summary.truncated, 0);
});

Deno.test("evaluate() sends batchSize prompts per generate call, in order", async () => {
  const tok = await tokenizer();
  const questions = [0, 1, 2, 3, 4].map((i) => ({ question: `Q${i}`, answer: String(i) }));
  const replyIds = await Promise.all(questions.map((_, i) => ids(`${R}<answer>${i}</answer>`)));
  const model = scriptedModel(tok, (p) => replyIds[Number(p.match(/Q(\d)/)![1])]);
  const steps: [number, number | undefined][] = [];
  const progress = { update: (s: number, v: { tokens?: number }) => steps.push([s, v.tokens]) };
  const result = await evaluate(model, questions, { tokenizer: tok, batchSize: 2, progress });
  assert.deepEqual(model.calls.map((c) => c.prompts.length), [2, 2, 1]);
  assert.equal(evalStepCount(5, { batchSize: 2, passes: 1 }), 3);
  assert.deepEqual(result.records.map((r) => r.index), [0, 1, 2, 3, 4]);
  assert.equal(result.summary.accuracy, 1);
  assert.deepEqual(steps, [
    [1, replyIds[0].length + replyIds[1].length],
    [2, replyIds[2].length + replyIds[3].length],
    [3, replyIds[4].length],
  ]);
  // Batch size does not change the records of a deterministic model.
  const one = await evaluate(model, questions, { tokenizer: tok, batchSize: 1 });
  assert.deepEqual(one.records, result.records);
});

Deno.test("evaluate() with passes: any pass counts and pass p samples with seed + p", async () => {
  const tok = await tokenizer();
  const good = await ids(`${R}<answer>4</answer>`);
  const bad = await ids(`${R}<answer>5</answer>`);
  // Q0 is right only in the pass seeded 12; Q1 never.
  const model = scriptedModel(tok, (p, o) => (p.includes("Q0") && o.seed === 12 ? good : bad));
  const questions = [{ question: "Q0", answer: "4" }, { question: "Q1", answer: "4" }];
  const result = await evaluate(model, questions, {
    tokenizer: tok,
    passes: 3,
    temperature: 0.7,
    topK: 50,
    topP: 0.95,
    seed: 10,
  });
  assert.deepEqual(model.calls.map((c) => c.options.seed), [10, 11, 12]);
  assert.deepEqual(
    model.calls.map((c) => [c.options.temperature, c.options.topK, c.options.topP]),
    [[0.7, 50, 0.95], [0.7, 50, 0.95], [0.7, 50, 0.95]],
  );
  assert.equal(result.summary.passes, 3);
  assert.equal(result.summary.accuracy, 0.5);
  assert.equal(result.summary.partialAccuracy, 0.5); // 5/4 = 1.25 is not within 10 %
  assert.equal(result.summary.formatAccuracy, 1);
  assert.deepEqual(result.records[0].extracted, ["5", "5", "4"]);
  assert.deepEqual(result.records[1].completions.length, 3);
  assert.equal(result.records[0].correct, true);
  assert.equal(result.records[1].correct, false);
});

Deno.test("evaluate() ends completions at EOS ids 1 and 106 and drops special tokens", async () => {
  const tok = await tokenizer();
  const text = `${R}<answer>4</answer>`;
  const body = tok.encode(text, { addSpecialTokens: false });
  const junk = tok.encode(" <answer>5", { addSpecialTokens: false });
  const replies: Record<string, number[]> = {
    Q0: [...body, 106, ...junk], // tokens past <end_of_turn> are ignored
    Q1: [...body, 1, ...junk], // <eos>
    Q2: [tok.bosId, ...body.slice(0, -1), 106], // special tokens are dropped from the text
    Q3: [...body, ...junk], // no EOS: cut at maxNewTokens
  };
  const model = scriptedModel(tok, (p) => replies[p.match(/Q\d/)![0]]);
  const questions = ["Q0", "Q1", "Q2", "Q3"].map((q) => ({ question: q, answer: "4" }));
  const maxNewTokens = body.length + 1;
  const { records, summary } = await evaluate(model, questions, { tokenizer: tok, maxNewTokens });
  assert.deepEqual(records.map((r) => r.completions[0]), [
    text,
    text,
    tok.decode(body.slice(0, -1)),
    tok.decode([...body, junk[0]]),
  ]);
  assert.deepEqual(records.map((r) => r.finished[0]), [true, true, true, false]);
  assert.deepEqual(records.map((r) => r.completionTokens[0]), Array(4).fill(maxNewTokens));
  assert.equal(summary.truncated, 1);
  assert.equal(summary.meanCompletionTokens, maxNewTokens);
  assert.deepEqual(truncateAtEos([5, 6, 106, 7], [1, 106]), { ids: [5, 6, 106], finished: true });
  assert.deepEqual(truncateAtEos([5, 6], [1, 106]), { ids: [5, 6], finished: false });
});

Deno.test("evalConfig() rejects invalid settings naming the field", () => {
  assert.equal(evalConfig().maxNewTokens, 768);
  assert.deepEqual(evalConfig().eosIds, [1, 106]);
  assert.ok(Object.isFrozen(RECIPE_EVAL_CONFIG) && Object.isFrozen(evalConfig({ passes: 1 })));
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ passes: 2 }, "temperature", /passes = 2 needs sampled decoding \(temperature > 0\)/],
    [{ batchSize: 0 }, "batchSize", /batchSize must be an integer >= 1, got 0/],
    [{ maxNewTokens: 1.5 }, "maxNewTokens", /maxNewTokens must be an integer >= 1, got 1.5/],
    [{ topP: 0 }, "topP", /topP must be in \(0, 1\], got 0/],
    [{ temperature: -1 }, "temperature", /temperature must be >= 0/],
    [{ seed: -1 }, "seed", /seed must be an integer in \[0, 2\^32\)/],
    [{ topK: 2.5 }, "topK", /topK must be an integer >= 0/],
    [{ eosIds: [1, -3] }, "eosIds", /eosIds must be an array of token ids/],
  ];
  for (const [options, field, message] of cases) {
    assert.throws(
      () => evalConfig(options),
      (e) => e instanceof EvalError && e.field === field && message.test(e.message),
      JSON.stringify(options),
    );
  }
});

Deno.test("evaluate() rejects a bad model reply, bad questions and honours abort", async () => {
  const tok = await tokenizer();
  const q = [{ question: "Q", answer: "1" }];
  const wrongCount: EvalModel = { generate: () => Promise.resolve([[5], [6]]) };
  await assert.rejects(
    evaluate(wrongCount, q, { tokenizer: tok }),
    (e) => e instanceof EvalError && /returned 2 sequences for 1 prompts/.test(e.message),
  );
  const model = scriptedModel(tok, () => [106]);
  await assert.rejects(
    evaluate(model, [{ question: "Q" } as never], { tokenizer: tok }),
    (e) => e instanceof EvalError && e.field === "questions" && /questions\[0\]/.test(e.message),
  );
  await assert.rejects(
    evaluate(model, q, { tokenizer: tok, passes: 2 }),
    (e) => e instanceof EvalError && e.field === "temperature",
  );
  const abort = new AbortController();
  abort.abort(new Error("stopped by user"));
  await assert.rejects(
    evaluate(model, q, { tokenizer: tok, signal: abort.signal }),
    /stopped by user/,
  );
  const empty = await evaluate(model, [], { tokenizer: tok });
  assert.deepEqual([empty.summary.n, empty.summary.accuracy, empty.records.length], [0, 0, 0]);
});

Deno.test("writeEvalResult() round-trips; mergeEvalPhase() keeps other phases", async () => {
  const tok = await tokenizer();
  const reply = await ids(`${R}<answer>4</answer>`);
  const model = scriptedModel(tok, () => reply);
  const questions = [{ question: "Q0", answer: "4" }, { question: "Q1", answer: "5" }];
  const result = await evaluate(model, questions, { tokenizer: tok });
  const dir = await Deno.makeTempDir({ prefix: "webtune_eval_" });
  try {
    const files = await writeEvalResult(`${dir}/run`, result, {
      name: "eval_sft",
      metadata: { model: "m" },
    });
    assert.equal(files.summary, `${dir}/run/eval_sft_summary.json`);
    const back = await readEvalResult(`${dir}/run`, "eval_sft");
    assert.deepEqual(back.summary, result.summary);
    assert.deepEqual(back.records, result.records);
    assert.deepEqual(back.metadata, { model: "m" });
    const names = [...Deno.readDirSync(`${dir}/run`)].map((e) => e.name).sort();
    assert.deepEqual(names, ["eval_sft_records.jsonl", "eval_sft_summary.json"]); // no temp files
    const evalJson = `${dir}/run/eval.json`;
    await mergeEvalPhase(evalJson, "base", summarizeEval([]));
    const merged = await mergeEvalPhase(evalJson, "sft", result.summary);
    const onDisk = JSON.parse(await Deno.readTextFile(evalJson));
    assert.deepEqual(onDisk, merged);
    assert.deepEqual(onDisk, {
      base: { accuracy: 0, partialAccuracy: 0, formatAccuracy: 0, n: 0 },
      sft: { accuracy: 0.5, partialAccuracy: 0.5, formatAccuracy: 1, n: 2 },
    });
    await Deno.writeTextFile(evalJson, "[1]");
    await assert.rejects(mergeEvalPhase(evalJson, "grpo", result.summary), /not a JSON object/);
    await assert.rejects(writeEvalResult(dir, result, { name: "../x" }), EvalError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

let fixtureModel: Promise<Gemma3> | null = null;

Deno.test("evaluate() runs the fixture model on the GPU end to end", async () => {
  fixtureModel ??= testGpu().then((gpu) => loadGemma3(FIXTURE, { gpu }));
  const model = await fixtureModel;
  const tok = await smallGemmaTokenizer(model.config.vocabSize);
  const questions = [
    { question: "What is 2 + 3?", answer: "5" },
    { question: "Tom has 4 apples and eats 1. How many are left?", answer: "3" },
    { question: "7 * 6 = ?", answer: "42" },
  ];
  const maxNewTokens = 5;
  const batched = await evaluate(model, questions, { tokenizer: tok, batchSize: 2, maxNewTokens });
  assert.equal(batched.summary.n, 3);
  for (const r of batched.records) {
    assert.equal(r.completions.length, 1);
    assert.ok(r.completionTokens[0] >= 1 && r.completionTokens[0] <= maxNewTokens);
    assert.equal(r.finished[0], r.completionTokens[0] < maxNewTokens);
  }
  // The records are the decoded greedy ids of a direct generate() call on the same prompts.
  const prompts = questions.map((q) => tok.encode(buildPrompt(q.question)));
  const direct = await model.generate(prompts, { maxNewTokens, temperature: 0, eosIds: [1, 106] });
  assert.deepEqual(
    batched.records.map((r) => r.completions[0]),
    direct.map((g) => tok.decode(g, { skipSpecialTokens: true })),
  );
  assert.equal(batched.summary.generatedTokens, direct.reduce((t, g) => t + g.length, 0));
  // Greedy results do not depend on the batch size.
  const single = await evaluate(model, questions, { tokenizer: tok, batchSize: 1, maxNewTokens });
  assert.deepEqual(single.records, batched.records);
  // Sampled passes run too and are reproducible with a seed.
  const sampled = () =>
    evaluate(model, questions.slice(0, 2), {
      tokenizer: tok,
      passes: 2,
      temperature: 1,
      seed: 3,
      maxNewTokens,
    });
  const [a, b] = [await sampled(), await sampled()];
  assert.deepEqual(a.records, b.records);
  assert.equal(a.records[0].completions.length, 2);
});
