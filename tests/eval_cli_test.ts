import assert from "node:assert/strict";
import { parseEvalArgs } from "../cli/eval.ts";
import { loadGemma3Config } from "../model/config_fs.ts";
import { readEvalResult } from "../rl/evaluate_fs.ts";
import { writeSmallModelDir } from "./_small_tokenizer.ts";

const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url).pathname;
const CLI = new URL("../cli/eval.ts", import.meta.url).pathname;

const GSM8K_LINES = [
  { question: "Ann has 3 pens and buys 2 more. How many pens?", answer: "3 + 2 = 5\n#### 5" },
  { question: "A box holds 4 eggs. How many eggs in 2 boxes?", answer: "4 * 2 = 8\n#### 8" },
  { question: "Tim had 10 cents and spent 7. What is left?", answer: "10 - 7 = 3\n#### 3" },
];

async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "webtune_eval_cli_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeGsm8k(dir: string): Promise<string> {
  const path = `${dir}/test.jsonl`;
  await Deno.writeTextFile(path, GSM8K_LINES.map((l) => JSON.stringify(l) + "\n").join(""));
  return path;
}

Deno.test("parseEvalArgs() fills the recipe's defaults and names bad flags", () => {
  const a = parseEvalArgs(["--model", "m", "--adapter", "a", "--limit", "3"])!;
  assert.deepEqual(
    [a.maxNewTokens, a.batchSize, a.passes, a.temperature, a.split, a.limit, a.phase],
    [768, 8, 1, 0, "test", 3, "adapter"],
  );
  assert.equal(parseEvalArgs(["--help"]), null);
  const bad: [string[], RegExp][] = [
    [[], /--model DIR is required/],
    [["--model", "m", "--passes", "2"], /--temperature: passes = 2 needs sampled decoding/],
    [["--model", "m", "--batch-size", "0"], /--batch-size: batchSize must be an integer >= 1/],
    [["--model", "m", "--top-p", "1.5"], /--top-p: topP must be in \(0, 1\]/],
    [["--model", "m", "--limit", "x"], /--limit must be a non-negative integer, got "x"/],
    [["--model", "m", "--split", "dev"], /--split must be train or test/],
    [["--model", "m", "--bogus"], /bogus/],
  ];
  for (const [args, message] of bad) assert.throws(() => parseEvalArgs(args), message);
});

Deno.test("deno task eval: exits with a clear message for missing inputs", async () => {
  await withTempDir(async (dir) => {
    const data = await writeGsm8k(dir);
    const noModel = await runCli(["--model", `${dir}/nope`, "--data", data]);
    assert.equal(noModel.code, 1);
    assert.match(noModel.stderr, new RegExp(`model directory not found: ${dir}/nope`));
    const noData = await runCli(["--model", FIXTURE, "--data", `${dir}/missing.jsonl`]);
    assert.equal(noData.code, 1);
    assert.match(noData.stderr, new RegExp(`data file or folder not found: ${dir}/missing.jsonl`));
    const noAdapter = await runCli(["--model", FIXTURE, "--adapter", `${dir}/ad`, "--data", data]);
    assert.equal(noAdapter.code, 1);
    assert.match(noAdapter.stderr, new RegExp(`adapter directory not found: ${dir}/ad`));
    const usage = await runCli(["--model", FIXTURE, "--passes", "2"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /needs sampled decoding[\s\S]*usage: deno task eval/);
  });
});

Deno.test("deno task eval: refuses a tokenizer whose ids do not fit the model", async () => {
  await withTempDir(async (dir) => {
    // The fixture folder has no tokenizer.json, so Gemma 3's full one is used: too large.
    const { vocabSize } = await loadGemma3Config(FIXTURE);
    const r = await runCli(["--model", FIXTURE, "--data", await writeGsm8k(dir)]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`outside the model's vocabulary of ${vocabSize}: the tokenizer does not match`),
    );
  });
});

Deno.test("deno task eval: evaluates a model folder on a GSM8K slice and writes results", async () => {
  await withTempDir(async (dir) => {
    const model = `${dir}/model`;
    await writeSmallModelDir(FIXTURE, model);
    const out = `${dir}/run`;
    const args = ["--model", model, "--data", await writeGsm8k(dir), "--max-new-tokens", "4"];
    const r = await runCli([...args, "--batch-size", "2", "--limit", "2", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /accuracy 0\.0% \(0\/2\) \| partial 0\.0% \| format 0\.0% \| passes 1/);
    const result = await readEvalResult(out, "eval_base");
    assert.equal(result.summary.n, 2);
    assert.equal(result.summary.maxNewTokens, 4);
    assert.equal(result.summary.batchSize, 2);
    assert.deepEqual(result.records.map((x) => x.answer), ["5", "8"]);
    assert.deepEqual(
      result.records.map((x) => x.question),
      GSM8K_LINES.slice(0, 2).map((l) => l.question),
    );
    for (const x of result.records) {
      assert.ok(x.completionTokens[0] >= 1 && x.completionTokens[0] <= 4);
    }
    assert.deepEqual(result.metadata.split, "test");
    const evalJson = JSON.parse(await Deno.readTextFile(`${out}/eval.json`));
    assert.deepEqual(evalJson, {
      base: { accuracy: 0, partialAccuracy: 0, formatAccuracy: 0, n: 2 },
    });
    // A second phase (sampled passes, with the fixture's LoRA adapter) keeps the first.
    const s = await runCli([
      ...args,
      ...["--adapter", FIXTURE, "--out", out, "--phase", "sft", "--passes", "2"],
      ...["--temperature", "1"],
    ]);
    assert.equal(s.code, 0, s.stderr);
    const both = JSON.parse(await Deno.readTextFile(`${out}/eval.json`));
    assert.deepEqual(Object.keys(both), ["base", "sft"]);
    assert.equal(both.sft.n, 3);
    const sft = await readEvalResult(out, "eval_sft");
    assert.equal(sft.records[2].completions.length, 2);
    assert.deepEqual([sft.metadata.adapter, sft.summary.temperature], [FIXTURE, 1]);
  });
});
