/**
 * Mistakes found before a run starts: each error that used to come only after the run folder was
 * made and the model loaded (a `--data` folder without GSM8K, `eval.passes > 1` with greedy
 * decoding, a tokenizer whose ids do not fit the model, more eval questions than the set holds,
 * prompt + answer longer than the model's context) is refused with the field named while the
 * output folder stays empty; `--resume` on a finished run says so and does nothing;
 * `--print-config` prints the resolved config and starts nothing; `train()` itself validates
 * before it makes a folder.
 *
 * @module
 */

import assert from "node:assert/strict";
import { gemma3Config } from "../model/config.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import type { PhaseSet } from "../rl/pipeline.ts";
import { RUN_FILES } from "../rl/pipeline_fs.ts";
import { resolveTrainConfig } from "../rl/presets.ts";
import { MemoryRunStore } from "../rl/run_store.ts";
import { staticInputSources } from "../rl/run_inputs.ts";
import { TokenizerMismatchError, validateRun } from "../rl/run_validation.ts";
import { train } from "../rl/train.ts";
import { TrainConfigError } from "../rl/train_config.ts";
import { train as trainInFolder } from "../rl/train_fs.ts";
import { type CliRun, runTrainMain } from "./_train_worker.ts";

const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url).pathname;

/** Phases that must never be built: the run must be refused before it starts. */
const never = (): PhaseSet => {
  throw new Error("the run was started");
};

function runCli(args: string[], phases: () => PhaseSet = never): Promise<CliRun> {
  return runTrainMain(args, () => phases());
}

/** Runs `fn` with a temporary folder; the output folder is `<dir>/runs`. */
async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "webtune_validation_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The fixture model's `config.json`. */
async function fixtureConfig(): Promise<Record<string, number>> {
  return JSON.parse(await Deno.readTextFile(`${FIXTURE}/config.json`));
}

/** A GSM8K jsonl file of `n` questions. */
async function gsm8kFile(dir: string, n: number): Promise<string> {
  const path = `${dir}/gsm8k.jsonl`;
  const lines = Array.from(
    { length: n },
    (_, i) =>
      JSON.stringify({
        question: `What is ${i} + 1?`,
        answer: `${i} + 1 = ${i + 1}\n#### ${i + 1}`,
      }),
  );
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/** Asserts exit code 2, a message matching `pattern`, and no run folder. */
async function assertRefused(dir: string, r: CliRun, pattern: RegExp): Promise<void> {
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, pattern);
  const made = await Deno.stat(`${dir}/runs`).then(() => true, () => false);
  assert.ok(!made, `no output folder for a refused run (${r.err})`);
}

/** The fixture model (a real model folder) with SFT off, GRPO and evaluation on `data`. */
function fixtureArgs(dir: string, data: string, ...sets: string[]): string[] {
  const args = ["--model", FIXTURE, "--data", data, "--out", `${dir}/runs`];
  for (const set of ["sft.enabled=false", ...sets]) args.push("--set", set);
  return args;
}

Deno.test("trainMain() refuses a --data folder without GSM8K for a real model before a run folder", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/empty`);
    const empty = await runCli(fixtureArgs(dir, `${dir}/empty`));
    await assertRefused(dir, empty, /grpo\.data: no train data files .* in .*\/empty/);
    const missing = await runCli(fixtureArgs(dir, `${dir}/nope`));
    await assertRefused(dir, missing, /grpo\.data: .*\/nope does not exist; pass --data PATH/);
  });
});

Deno.test("trainMain() refuses eval.passes > 1 with greedy decoding before a run folder", async () => {
  await withDir(async (dir) => {
    const r = await runCli(["--out", `${dir}/runs`, "--set", "eval.passes=4"]);
    await assertRefused(dir, r, /eval\.passes must be 1 with greedy decoding .* got 4/);
    // Sampled decoding may take several passes.
    const sampled = resolveTrainConfig({
      preset: "demo",
      sets: ["eval.passes=4", "eval.temperature=0.7"],
    });
    assert.equal(sampled.eval.passes, 4);
  });
});

Deno.test("trainMain() refuses a tokenizer whose ids do not fit the model, naming both files", async () => {
  await withDir(async (dir) => {
    // The fixture's weights without a tokenizer.json: Gemma 3's own (262145 ids) is used.
    const model = `${dir}/model`;
    await Deno.mkdir(model);
    for (const file of ["config.json", "model.safetensors"]) {
      await Deno.symlink(`${FIXTURE}/${file}`, `${model}/${file}`);
    }
    const vocab = (await fixtureConfig()).vocab_size;
    assert.ok(vocab < 262144, "a tiny fixture model");
    const data = await gsm8kFile(dir, 10);
    const args = fixtureArgs(dir, data, "eval.numQuestions=10");
    args[args.indexOf(FIXTURE)] = model;
    const r = await runCli(args);
    await assertRefused(dir, r, /built-in tokenizer .* do not fit the model/);
    assert.ok(r.err.includes(`${model}/config.json`), r.err);
    assert.ok(r.err.includes(`vocab_size is ${vocab}`), r.err);
    assert.doesNotMatch(r.err, /RangeError/);
  });
});

Deno.test("trainMain() refuses eval.numQuestions above the questions available, not cutting it", async () => {
  await withDir(async (dir) => {
    const demo = await runCli(["--out", `${dir}/runs`, "--set", "eval.numQuestions=100000"]);
    await assertRefused(
      dir,
      demo,
      /eval\.numQuestions must be <= demoData\.testSize \(200\), .* got 100000/,
    );
    const data = await gsm8kFile(dir, 10);
    const gsm8k = await runCli(fixtureArgs(dir, data, "eval.numQuestions=11"));
    await assertRefused(dir, gsm8k, /eval\.numQuestions must be <= 10, the test questions in/);
  });
});

Deno.test("trainMain() refuses prompt + answer lengths beyond the model's context", async () => {
  await withDir(async (dir) => {
    const data = await gsm8kFile(dir, 10);
    const limit = (await fixtureConfig()).max_position_embeddings;
    const r = await runCli(
      fixtureArgs(dir, data, "eval.numQuestions=10", `grpo.maxNewTokens=${limit}`),
    );
    await assertRefused(
      dir,
      r,
      new RegExp(
        "grpo\\.maxPromptLength \\+ grpo\\.maxNewTokens must be <= max_position_embeddings " +
          `of .*config\\.json \\(${limit}\\), got ${256 + limit}`,
      ),
    );
    const demo = await runCli(["--out", `${dir}/runs`, "--set", "sft.maxLength=129"]);
    await assertRefused(dir, demo, /sft\.maxLength must be <= model\.demo\.maxPositionEmbeddings/);
  });
});

Deno.test("train() validates before it makes the run folder or writes the store", async () => {
  await withDir(async (dir) => {
    const config = resolveTrainConfig({ preset: "demo" });
    // A config changed by hand after resolveTrainConfig() is checked too.
    const greedyPasses = { ...config, eval: { ...config.eval, passes: 3 } };
    const e = await trainInFolder(greedyPasses, { runDir: `${dir}/run` }).catch((e) => e);
    assert.ok(e instanceof TrainConfigError, String(e));
    assert.equal(e.field, "eval.passes");
    assert.ok(!(await Deno.stat(`${dir}/run`).then(() => true, () => false)), "no folder");

    const store = new MemoryRunStore();
    const tooMany = { ...config, eval: { ...config.eval, numQuestions: 201 } };
    const e2 = await train(tooMany, { store }).catch((e) => e);
    assert.ok(e2 instanceof TrainConfigError, String(e2));
    assert.equal(e2.field, "eval.numQuestions");
    assert.equal(store.state, null, "nothing written");
  });
});

Deno.test("validateRun() with a custom tokenizer source names it in a TokenizerMismatchError", async () => {
  const config = resolveTrainConfig({
    preset: "gemma3-1b-gsm8k",
    flags: { model: { path: "m" } },
    sets: ["sft.data=demo", "grpo.data=demo", "eval.data=demo"],
  });
  const tokenizer = { encode: () => [2, 600] } as unknown as Tokenizer;
  const sources = {
    ...staticInputSources({ tokenizer }),
    modelConfig: () => Promise.resolve(gemma3Config({ vocabSize: 512 })),
    tokenizerLabel: () => Promise.resolve("m/tokenizer.json"),
  };
  const e = await validateRun(config, { sources }).catch((e) => e);
  assert.ok(e instanceof TokenizerMismatchError, String(e));
  assert.equal(e.field, "model.path");
  assert.equal(e.tokenizer, "m/tokenizer.json");
  assert.equal(e.model, "m/config.json");
  assert.equal(e.got, 600);
});

Deno.test("trainMain() --resume on a finished run says so and does nothing", async () => {
  await withDir(async (dir) => {
    const fake: PhaseSet = {};
    const done = await runCli([
      "--out",
      `${dir}/runs`,
      "--set",
      "eval.base=false",
      "--set",
      "sft.enabled=false",
      "--set",
      "grpo.enabled=false",
    ], () => fake);
    assert.equal(done.code, 0, done.err);
    const runDir = `${dir}/runs/2026-01-02T03-04-05`;
    const before = await Deno.readTextFile(`${runDir}/${RUN_FILES.pipeline}`);
    const r = await runCli(["--resume", runDir]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`${runDir} is already complete .*nothing to resume`));
    assert.equal(await Deno.readTextFile(`${runDir}/${RUN_FILES.pipeline}`), before);
  });
});

Deno.test("trainMain() --print-config prints the resolved config and starts nothing", async () => {
  await withDir(async (dir) => {
    const r = await runCli([
      "--out",
      `${dir}/runs`,
      "--set",
      "grpo.beta=0.04",
      "--print-config",
    ]);
    assert.equal(r.code, 0, r.err);
    const printed = JSON.parse(r.out);
    assert.deepEqual(
      printed,
      JSON.parse(JSON.stringify(resolveTrainConfig({
        preset: "demo",
        flags: { run: { outDir: `${dir}/runs` } },
        sets: ["grpo.beta=0.04"],
      }))),
    );
    assert.ok(!(await Deno.stat(`${dir}/runs`).then(() => true, () => false)), "no run folder");
  });
});

Deno.test("trainMain() flags: --help lists every flag, mistakes exit 2 with the usage", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0, help.err);
  const flags = ["preset", "config", "model", "sft-data", "data", "out", "seed", "set", "resume"];
  for (const flag of [...flags, "print-config"]) {
    assert.match(help.out, new RegExp(`\n  --${flag} `));
  }
  const mistakes: [string[], RegExp][] = [
    [["--bogus"], /Unknown option '--bogus'/],
    [["--seed", "x"], /--seed must be a non-negative integer, got "x"/],
    [["--resume", "runs/x", "--set", "run.seed=1"], /--resume continues a run exactly/],
  ];
  for (const [args, pattern] of mistakes) {
    const r = await runCli(args);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, pattern);
    assert.match(r.err, /\n\nusage: deno task train/);
  }
});
