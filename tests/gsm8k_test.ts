import assert from "node:assert/strict";
import { parquetWriteBuffer } from "hyparquet-writer";
import { DatasetFormatError, DatasetNotFoundError, type SkipReport } from "../data/errors.ts";
import { parseJsonlText } from "../data/jsonl.ts";
import { readParquetRows } from "../data/parquet.ts";
import {
  collectGsm8k,
  extractHashAnswer,
  type Gsm8kRecord,
  parseNumericAnswer,
} from "../data/gsm8k.ts";
import { loadGsm8k, loadGsm8kWithSummary } from "../data/gsm8k_fs.ts";
import { defaultHubCacheDir } from "../data/dataset_fs.ts";
import { toGrpoExample } from "../data/examples.ts";
import { SYSTEM_PROMPT } from "../data/prompt.ts";

const GSM8K_DIR = Deno.env.get("WEBTUNE_GSM8K_DIR") ??
  new URL("../../shared/data/gsm8k", import.meta.url).pathname;

function parquetOf(rows: { question: string; answer: string }[]): Uint8Array<ArrayBuffer> {
  return new Uint8Array(parquetWriteBuffer({
    columnData: [
      { name: "question", data: rows.map((r) => r.question), type: "STRING" },
      { name: "answer", data: rows.map((r) => r.answer), type: "STRING" },
    ],
  }));
}

Deno.test("loadGsm8k() loads all 7473 train records with numeric gold answers", async () => {
  const { records, summary } = await loadGsm8kWithSummary(GSM8K_DIR, { split: "train" });
  assert.equal(records.length, 7473);
  assert.equal(summary.skipped, 0);
  assert.equal(summary.files.length, 1);
  assert.ok(summary.files[0].endsWith("train.jsonl"));
  for (const r of records) {
    assert.equal(typeof r.answerNumber, "number", `not numeric: ${r.answer}`);
    assert.ok(Number.isInteger(r.answerNumber), `not an integer: ${r.answer}`);
    assert.equal(r.answerNumber, Number(r.answer.replaceAll(",", "")));
    assert.ok(r.solution.endsWith(`#### ${r.answer}`));
  }
  assert.equal(records.filter((r) => r.answer.includes(",")).length, 79);
  assert.equal(records.filter((r) => r.answerNumber! < 0).length, 3);
  // First record of the file, known by heart.
  assert.ok(records[0].question.startsWith("Natalia sold clips to 48 of her friends"));
  assert.equal(records[0].answer, "72");
});

Deno.test("loadGsm8k() loads all 1319 test records; commas and negatives parse", async () => {
  const records = await loadGsm8k(GSM8K_DIR, { split: "test" });
  assert.equal(records.length, 1319);
  assert.ok(records.every((r) => Number.isInteger(r.answerNumber)));
  assert.equal(records.filter((r) => r.answer.includes(",")).length, 14);
  assert.equal(records.filter((r) => r.answerNumber! < 0).length, 2);
  assert.equal(records[0].answer, "18");
  const withCommas = records.find((r) => r.answer.includes(","))!;
  assert.equal(withCommas.answerNumber, Number(withCommas.answer.replaceAll(",", "")));
});

Deno.test("loadGsm8k() reads a single jsonl file and honours limit", async () => {
  const records = await loadGsm8k(`${GSM8K_DIR}/test.jsonl`, { limit: 5 });
  assert.equal(records.length, 5);
});

Deno.test("extractHashAnswer() takes the text after the last ####", () => {
  assert.equal(extractHashAnswer("a\n#### 1,080"), "1,080");
  assert.equal(extractHashAnswer("x #### 3 then\n#### 7 "), "7");
  assert.equal(extractHashAnswer("no marker"), null);
});

Deno.test("parseNumericAnswer() handles commas, negatives, decimals, unicode minus", () => {
  assert.equal(parseNumericAnswer("1,080"), 1080);
  assert.equal(parseNumericAnswer("109,200,000"), 109200000);
  assert.equal(parseNumericAnswer("-3"), -3);
  assert.equal(parseNumericAnswer("\u22125"), -5);
  assert.equal(parseNumericAnswer("$12.50"), 12.5);
  assert.equal(parseNumericAnswer("7."), 7);
  assert.equal(parseNumericAnswer("3/4"), null);
  assert.equal(parseNumericAnswer(""), null);
});

Deno.test("collectGsm8k() keeps the final answer when the question has a stray ####", async () => {
  const text = [
    JSON.stringify({ question: "Tag #### 5 says what? Add 2 and 3.", answer: "2+3=5\n#### 5" }),
    JSON.stringify({ question: "q", answer: "first #### 1\nthen\n#### -2" }),
  ].join("\n");
  const { records } = await collectGsm8k(parseJsonlText(text, "mem.jsonl"));
  assert.deepEqual(records.map((r) => [r.answer, r.answerNumber]), [["5", 5], ["-2", -2]]);
});

Deno.test("collectGsm8k() skips and reports records without ####, with file and line", async () => {
  const text = [
    JSON.stringify({ question: "ok", answer: "1\n#### 1" }),
    "",
    JSON.stringify({ question: "bad", answer: "no marker here" }),
    JSON.stringify({ question: "empty", answer: "#### " }),
    JSON.stringify({ question: 3, answer: "#### 3" }),
    JSON.stringify({ question: "ok2", answer: "#### 2" }),
  ].join("\n");
  const seen: SkipReport[] = [];
  const { records, summary } = await collectGsm8k(parseJsonlText(text, "f.jsonl"), {
    onSkip: (s) => seen.push(s),
  });
  assert.deepEqual(records.map((r) => r.question), ["ok", "ok2"]);
  assert.equal(summary.skipped, 3);
  assert.equal(summary.read, 5);
  assert.deepEqual(seen.map((s) => [s.file, s.line]), [["f.jsonl", 3], ["f.jsonl", 4], [
    "f.jsonl",
    5,
  ]]);
  assert.match(seen[0].reason, /####/);
});

Deno.test("collectGsm8k() without onSkip warns once instead of staying silent", async () => {
  const warnings: unknown[] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => warnings.push(args.join(" "));
  try {
    await collectGsm8k(parseJsonlText('{"question":"q","answer":"none"}', "w.jsonl"));
  } finally {
    console.warn = original;
  }
  assert.equal(warnings.length, 1);
  assert.match(String(warnings[0]), /w\.jsonl:1/);
});

Deno.test("loadGsm8k() names file and line for a bad JSON line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/train.jsonl`,
      '{"question":"a","answer":"#### 1"}\n{"question": oops}\n',
    );
    await assert.rejects(() => loadGsm8k(dir), (err: unknown) => {
      assert.ok(err instanceof DatasetFormatError);
      assert.equal(err.line, 2);
      assert.ok(err.file.endsWith("train.jsonl"));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadGsm8k() round-trips a parquet file written by hyparquet-writer", async () => {
  const source = (await loadGsm8k(GSM8K_DIR, { split: "test", limit: 50 }))
    .map((r) => ({ question: r.question, answer: r.solution }));
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/test-00000-of-00001.parquet`;
    await Deno.writeFile(file, parquetOf(source));
    const records = await loadGsm8k(file);
    assert.equal(records.length, 50);
    assert.deepEqual(records.map((r) => r.solution), source.map((s) => s.answer));
    assert.deepEqual(records.map((r) => r.question), source.map((s) => s.question));
    // In-memory reading gives the same rows (the browser path).
    const { records: mem } = await collectGsm8k(readParquetRows(parquetOf(source).buffer, "m"));
    assert.deepEqual(mem, records);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function makeFakeHubCache(root: string, repoDir: string): Promise<string> {
  // Same shape as huggingface_hub: blobs/<sha>, snapshots/<rev>/main/* -> ../../../blobs/<sha>.
  const dataset = `${root}/${repoDir}`;
  const rev = "0123456789abcdef0123456789abcdef01234567";
  const old = "fedcba9876543210fedcba9876543210fedcba98";
  await Deno.mkdir(`${dataset}/blobs`, { recursive: true });
  await Deno.mkdir(`${dataset}/refs`, { recursive: true });
  await Deno.mkdir(`${dataset}/snapshots/${rev}/main`, { recursive: true });
  await Deno.mkdir(`${dataset}/snapshots/${old}/main`, { recursive: true });
  await Deno.writeTextFile(`${dataset}/refs/main`, rev);
  const splits: Record<string, { question: string; answer: string }[]> = {
    train: [{ question: "T1", answer: "#### 1" }, { question: "T2", answer: "#### 2,000" }],
    test: [{ question: "E1", answer: "x\n#### -4" }],
  };
  for (const [split, rows] of Object.entries(splits)) {
    await Deno.writeFile(`${dataset}/blobs/${split}blob`, parquetOf(rows));
    await Deno.symlink(
      `../../../blobs/${split}blob`,
      `${dataset}/snapshots/${rev}/main/${split}-00000-of-00001.parquet`,
    );
  }
  // A stale snapshot that refs/main does not point at must be ignored.
  await Deno.writeFile(
    `${dataset}/snapshots/${old}/main/train-00000-of-00001.parquet`,
    parquetOf([{ question: "stale", answer: "#### 0" }]),
  );
  return `${dataset}/snapshots/${rev}`;
}

Deno.test("loadGsm8k() reads a fake HF hub cache at root, dataset and snapshot level", async () => {
  const root = await Deno.makeTempDir();
  try {
    const snapshot = await makeFakeHubCache(root, "datasets--openai--gsm8k");
    for (const path of [root, `${root}/datasets--openai--gsm8k`, snapshot]) {
      const train = await loadGsm8k(path);
      assert.deepEqual(train.map((r: Gsm8kRecord) => [r.question, r.answerNumber]), [
        ["T1", 1],
        ["T2", 2000],
      ], path);
      const test = await loadGsm8k(path, { split: "test" });
      assert.deepEqual(test.map((r) => r.answerNumber), [-4]);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("loadGsm8k() finds the legacy datasets--gsm8k cache folder", async () => {
  const root = await Deno.makeTempDir();
  try {
    await makeFakeHubCache(root, "datasets--gsm8k");
    assert.equal((await loadGsm8k(root, { split: "test" }))[0].answer, "-4");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("loadGsm8k() fails clearly on missing paths and bad options", async () => {
  await assert.rejects(() => loadGsm8k("/nonexistent/gsm8k"), DatasetNotFoundError);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/train.jsonl`, '{"question":"a","answer":"#### 1"}\n');
    await assert.rejects(() => loadGsm8k(dir, { split: "test" }), DatasetNotFoundError);
    // deno-lint-ignore no-explicit-any
    await assert.rejects(() => loadGsm8k(dir, { split: "dev" as any }), /split/);
    await assert.rejects(() => loadGsm8k(dir, { limit: 0 }), /limit/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("defaultHubCacheDir() follows huggingface_hub's precedence", () => {
  assert.equal(defaultHubCacheDir({ HOME: "/home/u" }), "/home/u/.cache/huggingface/hub");
  assert.equal(defaultHubCacheDir({ HOME: "/h", XDG_CACHE_HOME: "/x" }), "/x/huggingface/hub");
  assert.equal(defaultHubCacheDir({ HOME: "/h", HF_HOME: "/hf" }), "/hf/hub");
  assert.equal(defaultHubCacheDir({ HF_HOME: "/hf", HF_HUB_CACHE: "/c" }), "/c");
});

Deno.test("toGrpoExample() wraps a GSM8K record in the recipe prompt", async () => {
  const [record] = await loadGsm8k(GSM8K_DIR, { split: "test", limit: 1 });
  const ex = toGrpoExample(record);
  assert.equal(ex.answer, "18");
  assert.equal(ex.question, record.question);
  assert.ok(ex.prompt.startsWith(`<start_of_turn>user\n${SYSTEM_PROMPT}\n\n${record.question}`));
  assert.ok(ex.prompt.endsWith("<end_of_turn>\n<start_of_turn>model\n"));
});
