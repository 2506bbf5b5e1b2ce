/**
 * Runs of `deno task train --broker` and `deno task worker` as processes, for the rollout
 * tests: the short demo they train, the run without workers to compare with, and the
 * comparison (metrics.jsonl without timing and provenance fields, eval.json).
 *
 * @module
 */

import assert from "node:assert/strict";
import type { TestNatsServer } from "./_nats.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** A short demo whose GRPO phase has 3 steps of 2 prompts × 4 completions. */
export const SETS: string[] = [
  "sft.steps=6",
  "sft.microBatchSize=8",
  "grpo.numBatches=3",
  "grpo.batchSize=2",
  "grpo.numGenerations=4",
  "grpo.maxNewTokens=16",
  "eval.numQuestions=8",
  "eval.maxNewTokens=16",
  "checkpoint.everySteps=3",
].flatMap((s) => ["--set", s]);

/**
 * Fields that measure time, the learner's own GPU memory (it samples less itself) or where
 * completions came from — not what was learned.
 */
const NOT_COMPARED = new Set([
  "time",
  "gpu_bytes_allocated",
  "gpu_bytes_peak",
  "step_seconds",
  "rollout_seconds",
  "train_seconds",
  "tokens_per_second",
  "remote_completions",
  "rollout_staleness",
]);

export interface Proc {
  readonly child: Deno.ChildProcess;
  /** Everything it wrote to stderr so far. */
  readonly stderr: () => string;
  /** Resolves when stderr matches. */
  readonly waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<void>;
  /** Exit code and stderr. */
  readonly done: Promise<{ code: number; stderr: string }>;
}

export function spawn(script: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      for (const w of waiters.splice(0)) {
        if (w.pattern.test(text)) w.resolve();
        else waiters.push(w);
      }
    }
  })();
  return {
    child,
    stderr: () => text,
    waitFor: (pattern, timeoutMs = 120_000) =>
      pattern.test(text) ? Promise.resolve() : new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${pattern} in:\n${text}`)),
          timeoutMs,
        );
        waiters.push({ pattern, resolve: () => (clearTimeout(timer), resolve()) });
      }),
    done: (async () => {
      const status = await child.status;
      await reading;
      return { code: status.code, stderr: text };
    })(),
  };
}

/** metrics.jsonl without the fields that may differ, and eval.json, of the run in `out`. */
export async function runResult(out: string): Promise<{ metrics: unknown[]; evals: unknown }> {
  const [run] = [...Deno.readDirSync(out)].map((e) => `${out}/${e.name}`);
  const metrics = (await Deno.readTextFile(`${run}/metrics.jsonl`)).trim().split("\n").map((l) =>
    Object.fromEntries(Object.entries(JSON.parse(l)).filter(([k]) => !NOT_COMPARED.has(k)))
  );
  return { metrics, evals: JSON.parse(await Deno.readTextFile(`${run}/eval.json`)) };
}

export async function remoteCompletions(out: string): Promise<number[]> {
  const [run] = [...Deno.readDirSync(out)].map((e) => `${out}/${e.name}`);
  return (await Deno.readTextFile(`${run}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  ).filter((r) => r.phase === "grpo").map((r) => r.remote_completions);
}

let baseline: Promise<{ metrics: unknown[]; evals: unknown }> | null = null;

/** The same run without a broker (once per test file). */
export function withoutWorkers(): Promise<{ metrics: unknown[]; evals: unknown }> {
  baseline ??= (async () => {
    const out = await Deno.makeTempDir();
    const run = spawn("cli/train.ts", ["--out", out, ...SETS]);
    const { code, stderr } = await run.done;
    assert.equal(code, 0, stderr);
    return await runResult(out);
  })();
  return baseline;
}

/** Starts the learner on `server` with `workers` worker processes. */
export async function learnerAndWorkers(
  server: TestNatsServer,
  workers: number,
  extra: string[] = [],
) {
  const env = { WEBTUNE_BROKER_USER: server.user, WEBTUNE_BROKER_PASSWORD: server.pass };
  const out = await Deno.makeTempDir();
  const procs = Array.from(
    { length: workers },
    (_, i) => spawn("cli/worker.ts", ["--broker", server.url, "--id", `w${i + 1}`], env),
  );
  const learner = spawn("cli/train.ts", [
    "--out",
    out,
    ...SETS,
    "--broker",
    server.url,
    "--rollout-timeout",
    "60",
    "--rollout-ack-wait",
    "2",
    ...extra,
  ], env);
  return { out, learner, workers: procs };
}
