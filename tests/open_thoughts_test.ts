import assert from "node:assert/strict";
import { parquetWriteBuffer } from "hyparquet-writer";
import { parquetMetadata } from "hyparquet";
import type { SkipReport } from "../data/errors.ts";
import { parseJsonlText } from "../data/jsonl.ts";
import {
  collectOpenThoughts,
  extractBoxed,
  OPEN_THOUGHTS_DEFAULTS,
  parseLatexNumber,
} from "../data/open_thoughts.ts";
import { loadOpenThoughts, loadOpenThoughtsWithSummary } from "../data/open_thoughts_fs.ts";
import { toSftExample } from "../data/examples.ts";
import { buildPrompt } from "../data/prompt.ts";

interface Turn {
  from: string;
  value: string;
}
interface DefaultRow {
  system: string;
  conversations: Turn[];
}
interface MetadataRow {
  problem: string;
  deepseek_reasoning: string;
  deepseek_solution: string;
  ground_truth_solution: string;
  domain: string;
  source: string;
}

const SYSTEM = "Your role as an assistant involves thoroughly exploring questions...";

function assistant(thought: string, solution: string): string {
  return `<|begin_of_thought|>\n\n${thought}\n\n<|end_of_thought|>\n\n` +
    `<|begin_of_solution|>\n\n${solution}\n\n<|end_of_solution|>`;
}

const DEFAULT_ROWS: DefaultRow[] = [
  {
    system: SYSTEM,
    conversations: [
      { from: "user", value: "What is 12 * 90?" },
      { from: "assistant", value: assistant("12 * 90 = 1080.", "So \\boxed{1{,}080}.") },
    ],
  },
  {
    system: SYSTEM,
    conversations: [
      { from: "user", value: "Simplify 2/4." },
      { from: "assistant", value: assistant("Halve both.", "\\boxed{\\frac{1}{2}}") },
    ],
  },
  {
    system: SYSTEM,
    conversations: [
      { from: "user", value: "Write hello world in Python." },
      { from: "assistant", value: assistant("Use print.", "print('hello world')") },
    ],
  },
  {
    system: SYSTEM,
    conversations: [
      { from: "user", value: "Nested?" },
      { from: "assistant", value: assistant("x", "first \\boxed{1} then \\boxed{{-7}}") },
    ],
  },
];

const METADATA_ROWS: MetadataRow[] = [
  {
    problem: "Compute 3 + 4.",
    deepseek_reasoning: "3 + 4 = 7.",
    deepseek_solution: "The answer is \\boxed{7}.",
    ground_truth_solution: "7",
    domain: "math",
    source: "numina_math",
  },
  {
    problem: "Why is the sky blue?",
    deepseek_reasoning: "Rayleigh scattering.",
    deepseek_solution: "Because of \\boxed{\\text{Rayleigh scattering}}.",
    ground_truth_solution: "",
    domain: "science",
    source: "camelai",
  },
  {
    problem: "Lots of thinking: what is 10 - 4?",
    deepseek_reasoning: "word ".repeat(200).trim(),
    deepseek_solution: "\\boxed{6}",
    ground_truth_solution: "6",
    domain: "math",
    source: "numina_math",
  },
];

const STRING = { type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" } as const;

function defaultParquet(rows: DefaultRow[]): Uint8Array<ArrayBuffer> {
  // Real nested list<struct<from, value>> column, the shape HF `datasets` writes.
  return new Uint8Array(parquetWriteBuffer({
    columnData: [
      { name: "system", data: rows.map((r) => r.system) },
      { name: "conversations", data: rows.map((r) => r.conversations) },
    ],
    schema: [
      { name: "schema", num_children: 2 },
      { name: "system", ...STRING },
      {
        name: "conversations",
        repetition_type: "OPTIONAL",
        converted_type: "LIST",
        num_children: 1,
      },
      { name: "list", repetition_type: "REPEATED", num_children: 1 },
      { name: "element", repetition_type: "OPTIONAL", num_children: 2 },
      { name: "from", ...STRING },
      { name: "value", ...STRING },
    ],
    rowGroupSize: 2, // several row groups, so the reader's row-group loop is exercised
  }));
}

function metadataParquet(rows: MetadataRow[]): Uint8Array<ArrayBuffer> {
  const keys = Object.keys(rows[0]) as (keyof MetadataRow)[];
  return new Uint8Array(parquetWriteBuffer({
    columnData: [
      ...keys.map((k) => ({ name: k, data: rows.map((r) => r[k]), type: "STRING" as const })),
      { name: "test_cases", data: rows.map(() => "{}"), type: "STRING" },
    ],
  }));
}

function jsonl(rows: unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("extractBoxed() takes the last complete box with nested braces", () => {
  assert.equal(extractBoxed("\\boxed{1} and \\boxed{\\frac{a}{b}}"), "\\frac{a}{b}");
  assert.equal(extractBoxed("\\boxed{ 42 }"), "42");
  assert.equal(extractBoxed("\\boxed{\\{1,2\\}}"), "\\{1,2\\}");
  assert.equal(extractBoxed("\\boxed{5} then \\boxed{unclosed"), "5");
  assert.equal(extractBoxed("\\fbox{3}"), "3");
  assert.equal(extractBoxed("no box"), null);
});

Deno.test("parseLatexNumber() accepts plain numbers only", () => {
  assert.deepEqual(parseLatexNumber("1{,}080"), { value: 1080, text: "1080" });
  assert.deepEqual(parseLatexNumber("{-7}"), { value: -7, text: "-7" });
  assert.deepEqual(parseLatexNumber("\\$12.50"), { value: 12.5, text: "12.50" });
  assert.deepEqual(parseLatexNumber("50\\%"), { value: 50, text: "50" });
  assert.deepEqual(parseLatexNumber("90^\\circ"), { value: 90, text: "90" });
  assert.equal(parseLatexNumber("\\frac{1}{2}"), null);
  assert.equal(parseLatexNumber("x = 3"), null);
});

Deno.test("OPEN_THOUGHTS_DEFAULTS keeps numeric answers only", () => {
  assert.equal(OPEN_THOUGHTS_DEFAULTS.numericOnly, true);
  assert.equal(OPEN_THOUGHTS_DEFAULTS.overLength, "drop");
});

Deno.test("loadOpenThoughts() reads default-config parquet with nested conversations", async () => {
  const bytes = defaultParquet(DEFAULT_ROWS);
  // The column really is nested (not a JSON string): its leaves are conversations.list.element.*
  const leaves = parquetMetadata(bytes.buffer).schema.map((s) => s.name);
  assert.deepEqual(leaves.slice(2), ["conversations", "list", "element", "from", "value"]);
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/data`);
    await Deno.writeFile(`${dir}/data/train-00000-of-00001.parquet`, bytes);
    const { records, summary } = await loadOpenThoughtsWithSummary(dir);
    assert.deepEqual(records.map((r) => [r.question, r.answer, r.answerNumber]), [
      ["What is 12 * 90?", "1080", 1080],
      ["Nested?", "-7", -7],
    ]);
    assert.equal(records[0].reasoning, "12 * 90 = 1080.");
    assert.equal(records[0].solution, "So \\boxed{1{,}080}.");
    assert.equal(records[0].domain, undefined);
    assert.equal(summary.read, 4);
    assert.equal(summary.notNumeric, 2);
    assert.equal(summary.malformed, 0);

    const all = await loadOpenThoughts(dir, { numericOnly: false });
    assert.equal(all.length, 4);
    assert.equal(all[1].answer, "\\frac{1}{2}");
    assert.equal(all[2].answer, "print('hello world')"); // no box: the solution text
  });
});

Deno.test("loadOpenThoughts() reads metadata-config parquet, filters domains", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/metadata`);
    await Deno.writeFile(
      `${dir}/metadata/train-00000-of-00001.parquet`,
      metadataParquet(
        METADATA_ROWS,
      ),
    );
    const all = await loadOpenThoughts(dir, { config: "metadata", numericOnly: false });
    assert.deepEqual(all.map((r) => r.domain), ["math", "science", "math"]);
    assert.equal(all[1].answer, "\\text{Rayleigh scattering}");
    assert.equal(all[0].source, "numina_math");
    const { records, summary } = await loadOpenThoughtsWithSummary(dir, {
      config: "metadata",
      numericOnly: false,
      domains: ["science"],
    });
    assert.deepEqual(records.map((r) => r.question), ["Why is the sky blue?"]);
    assert.equal(summary.wrongDomain, 2);
  });
});

Deno.test("loadOpenThoughts() reads jsonl in both schemas from one folder", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/a_default.jsonl`, jsonl(DEFAULT_ROWS));
    await Deno.writeTextFile(`${dir}/b_metadata.jsonl`, jsonl(METADATA_ROWS));
    const { records, summary } = await loadOpenThoughtsWithSummary(dir);
    assert.equal(summary.files.length, 2);
    assert.deepEqual(records.map((r) => r.answer), ["1080", "-7", "7", "6"]);
  });
});

Deno.test("loadOpenThoughts() parquet and jsonl of the same rows agree", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/x.parquet`, defaultParquet(DEFAULT_ROWS));
    await Deno.writeTextFile(`${dir}/x.jsonl`, jsonl(DEFAULT_ROWS));
    const fromParquet = await loadOpenThoughts(`${dir}/x.parquet`, { numericOnly: false });
    const fromJsonl = await loadOpenThoughts(`${dir}/x.jsonl`, { numericOnly: false });
    assert.deepEqual(fromParquet, fromJsonl);
  });
});

Deno.test("collectOpenThoughts() reports malformed rows with file and line", async () => {
  const rows = [
    DEFAULT_ROWS[0],
    { system: SYSTEM, conversations: [{ from: "user", value: "q" }] },
    {
      system: SYSTEM,
      conversations: [{ from: "user", value: "q" }, { from: "assistant", value: "no markers" }],
    },
    { unrelated: 1 },
    { conversations: JSON.stringify(DEFAULT_ROWS[3].conversations) },
  ];
  const skips: SkipReport[] = [];
  const { records, summary } = await collectOpenThoughts(
    parseJsonlText(jsonl(rows), "ot.jsonl"),
    { onSkip: (s) => skips.push(s) },
  );
  assert.deepEqual(records.map((r) => r.answer), ["1080", "-7"]);
  assert.equal(summary.malformed, 3);
  assert.deepEqual(skips.map((s) => s.line), [2, 3, 4]);
  assert.match(skips[0].reason, /assistant/);
  assert.match(skips[1].reason, /begin_of_thought/);
});

Deno.test("collectOpenThoughts() maxTokens drops or truncates the thought, counted", async () => {
  const countTokens = (t: string) => t.split(/\s+/).filter(Boolean).length;
  const rows = [...parseJsonlText(jsonl(METADATA_ROWS), "m.jsonl")];
  const long = toSftExample({
    ...METADATA_ROWS[2],
    question: METADATA_ROWS[2].problem,
    reasoning: "",
    answer: "6",
  });
  const base = countTokens(long.prompt + long.target);
  const maxTokens = base + 50; // room for ~50 reasoning words
  const dropped = await collectOpenThoughts(rows, { maxTokens, countTokens });
  assert.deepEqual(dropped.records.map((r) => r.answer), ["7"]);
  assert.equal(dropped.summary.droppedTooLong, 1);
  assert.equal(dropped.summary.notNumeric, 1);

  const cut = await collectOpenThoughts(rows, {
    maxTokens,
    countTokens,
    overLength: "truncate-thought",
  });
  assert.deepEqual(cut.records.map((r) => r.answer), ["7", "6"]);
  assert.equal(cut.summary.truncatedThought, 1);
  assert.equal(cut.summary.droppedTooLong, 0);
  const ex = toSftExample(cut.records[1]);
  assert.ok(countTokens(ex.prompt + ex.target) <= maxTokens);
  assert.ok(countTokens(ex.prompt + ex.target) >= maxTokens - 1, "cut more than needed");
  assert.ok(METADATA_ROWS[2].deepseek_reasoning.startsWith(cut.records[1].reasoning));

  const impossible = await collectOpenThoughts(rows, {
    maxTokens: 3,
    countTokens,
    overLength: "truncate-thought",
  });
  assert.equal(impossible.records.length, 0);
  assert.equal(impossible.summary.droppedTooLong, 2);
});

Deno.test("collectOpenThoughts() validates options, naming the field", async () => {
  await assert.rejects(() => collectOpenThoughts([], { maxTokens: 10 }), /countTokens/);
  // deno-lint-ignore no-explicit-any
  await assert.rejects(() => collectOpenThoughts([], { overLength: "cut" as any }), /overLength/);
  await assert.rejects(() => collectOpenThoughts([], { maxTokens: -1 }), /maxTokens/);
});

Deno.test("toSftExample() of an OpenThoughts record uses the recipe format", async () => {
  const [record] = await collectOpenThoughts(parseJsonlText(jsonl(DEFAULT_ROWS), "d.jsonl"))
    .then((r) => r.records);
  const ex = toSftExample(record);
  assert.equal(ex.prompt, buildPrompt("What is 12 * 90?"));
  assert.equal(ex.target, "<reasoning>12 * 90 = 1080.</reasoning>\n<answer>1080</answer>");
});

Deno.test("loadOpenThoughts() reads train shards in order from a fake hub cache", async () => {
  await withTempDir(async (root) => {
    const snap = `${root}/datasets--open-thoughts--OpenThoughts-114k/snapshots/abc123`;
    await Deno.mkdir(`${snap}/data`, { recursive: true });
    await Deno.mkdir(`${snap}/metadata`, { recursive: true });
    await Deno.writeFile(
      `${snap}/data/train-00001-of-00002.parquet`,
      defaultParquet(DEFAULT_ROWS.slice(2)),
    );
    await Deno.writeFile(
      `${snap}/data/train-00000-of-00002.parquet`,
      defaultParquet(DEFAULT_ROWS.slice(0, 2)),
    );
    await Deno.writeFile(
      `${snap}/metadata/train-00000-of-00001.parquet`,
      metadataParquet(
        METADATA_ROWS,
      ),
    );
    const { records, summary } = await loadOpenThoughtsWithSummary(root, { numericOnly: false });
    assert.equal(summary.files.length, 2);
    assert.ok(summary.files[0].endsWith("train-00000-of-00002.parquet"));
    assert.deepEqual(
      records.map((r) => r.question),
      DEFAULT_ROWS.map((r) => r.conversations[0].value),
    );
    const meta = await loadOpenThoughts(root, { config: "metadata" });
    assert.deepEqual(meta.map((r) => r.answer), ["7", "6"]);
    const limited = await loadOpenThoughts(root, { numericOnly: false, limit: 3 });
    assert.equal(limited.length, 3);
  });
});
