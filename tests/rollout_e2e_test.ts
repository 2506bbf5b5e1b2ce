/**
 * `deno task train --broker` with `deno task worker` processes on a real nats-server (JetStream,
 * user/password): the demo's GRPO steps sampled by two workers give the metrics and eval.json of
 * the same run without workers — also when a worker is killed with SIGKILL mid-run and when the
 * broker restarts mid-run; a worker with another base model is refused before any task.
 *
 * @module
 */

import assert from "node:assert/strict";
import { TestNatsServer } from "./_nats.ts";
import {
  learnerAndWorkers,
  remoteCompletions,
  runResult,
  spawn,
  withoutWorkers,
} from "./_rollout_runs.ts";
import { FIXTURE } from "./_helpers.ts";

Deno.test("deno task train --broker with 2 deno task worker processes: the run without workers' metrics and eval.json; a worker with another base model is refused", async () => {
  await using server = await TestNatsServer.start();
  const { out, learner, workers } = await learnerAndWorkers(server, 2);
  // A third worker brings the fixture model to the demo run: refused before any task.
  await learner.waitFor(/announced/);
  const foreign = spawn("cli/worker.ts", ["--broker", server.url, "--model", FIXTURE], {
    WEBTUNE_BROKER_USER: server.user,
    WEBTUNE_BROKER_PASSWORD: server.pass,
  });
  const refused = await foreign.done;
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /base model/i);
  assert.doesNotMatch(refused.stderr, /\d+ tasks, \d+ tokens/);

  const l = await learner.done;
  assert.equal(l.code, 0, l.stderr);
  for (const w of workers) assert.equal((await w.done).code, 0, w.stderr());
  assert.deepEqual(await runResult(out), await withoutWorkers());
  const remote = await remoteCompletions(out);
  assert.equal(remote.reduce((a, b) => a + b, 0), 3 * 2 * 4, `remote completions ${remote}`);
  assert.match(l.stderr, /6 tasks sampled by workers, 0 locally; results rejected: none/);
});

Deno.test("a worker killed with SIGKILL mid-GRPO: its task is redelivered, counted once, and the run's results do not change", async () => {
  await using server = await TestNatsServer.start();
  const { out, learner, workers } = await learnerAndWorkers(server, 2);
  await workers[0].waitFor(/joining run/);
  await workers[0].waitFor(/1 tasks/);
  workers[0].child.kill("SIGKILL");
  const l = await learner.done;
  assert.equal(l.code, 0, l.stderr);
  assert.notEqual((await workers[0].done).code, 0);
  assert.equal((await workers[1].done).code, 0, workers[1].stderr());
  assert.deepEqual(await runResult(out), await withoutWorkers());
  // Every task counted exactly once (6 = 3 steps × 2 prompts), none lost to the killed worker.
  const counted = l.stderr.match(/(\d+) tasks sampled by workers, (\d+) locally/);
  assert.ok(counted, l.stderr);
  assert.equal(Number(counted[1]) + Number(counted[2]), 6, l.stderr);
});

Deno.test("the broker restarted mid-run: learner and worker reconnect and the run's results do not change", async () => {
  await using server = await TestNatsServer.start();
  const { out, learner, workers } = await learnerAndWorkers(server, 1);
  await workers[0].waitFor(/1 tasks/);
  await server.stop();
  await new Promise((r) => setTimeout(r, 1000));
  await server.restart();
  const l = await learner.done;
  assert.equal(l.code, 0, l.stderr);
  assert.equal((await workers[0].done).code, 0, workers[0].stderr());
  assert.deepEqual(await runResult(out), await withoutWorkers());
});

Deno.test("a learner killed with SIGKILL mid-GRPO resumes with --resume and the broker's state to the run without workers' results", async () => {
  await using server = await TestNatsServer.start();
  const { out, learner, workers } = await learnerAndWorkers(server, 2);
  await learner.waitFor(/grpo \[#+-*\]\s+1\/3/);
  learner.child.kill("SIGKILL");
  await learner.done;
  const [runDir] = [...Deno.readDirSync(out)].map((e) => `${out}/${e.name}`);
  const env = { WEBTUNE_BROKER_USER: server.user, WEBTUNE_BROKER_PASSWORD: server.pass };
  const resumed = spawn("cli/train.ts", [
    "--resume",
    runDir,
    "--broker",
    server.url,
    "--rollout-ack-wait",
    "2",
  ], env);
  const r = await resumed.done;
  assert.equal(r.code, 0, r.stderr);
  // The tasks queued again reach the workers: nothing waits for the local fallback.
  assert.match(r.stderr, /tasks sampled by workers, 0 locally; results rejected: /);
  for (const w of workers) assert.equal((await w.done).code, 0, w.stderr());
  assert.deepEqual(await runResult(out), await withoutWorkers());
});

Deno.test("grpo.maxStaleness 2: later steps' prompts go to the workers early and come back up to 2 versions old, logged per step", async () => {
  await using server = await TestNatsServer.start();
  const { out, learner, workers } = await learnerAndWorkers(server, 2, [
    "--set",
    "grpo.maxStaleness=2",
    "--set",
    "grpo.numBatches=5",
  ]);
  const l = await learner.done;
  assert.equal(l.code, 0, l.stderr);
  for (const w of workers) assert.equal((await w.done).code, 0, w.stderr());
  const [runDir] = [...Deno.readDirSync(out)].map((e) => `${out}/${e.name}`);
  const grpo = (await Deno.readTextFile(`${runDir}/metrics.jsonl`)).trim().split("\n")
    .map((line) => JSON.parse(line)).filter((row) => row.phase === "grpo");
  assert.deepEqual(grpo.map((row) => row.rollout_staleness), [0, 1, 2, 2, 2]);
  assert.deepEqual(grpo.map((row) => row.remote_completions), [8, 8, 8, 8, 8]);
  assert.ok(grpo.every((row) => Number.isFinite(row.loss)));
  assert.match(l.stderr, /10 tasks sampled by workers, 0 locally; results rejected: none/);
});
