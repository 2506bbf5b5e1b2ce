/**
 * GRPO rollouts through NATS JetStream (`rl/rollout_broker.ts`, `rl/rollout_worker.ts`) against
 * a real `nats-server -js` (`tests/_nats.ts`), with a stand-in sampler: its ids follow the task
 * seed and the value of a trainable GPU parameter, so a worker that did not load the learner's
 * `weights/v<N>` samples other ids than `localRollout`.
 */

import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, wsconnect } from "@nats-io/nats-core";
import type { Tensor } from "../kernels/tensor.ts";
import type { GenerateOptions } from "../model/generate.ts";
import type { Trainable } from "../model/trainable.ts";
import { BrokerRollout, type BrokerRolloutStats } from "../rl/rollout_broker.ts";
import { connectRolloutBroker, RolloutBrokerError } from "../rl/rollout_connect.ts";
import {
  encodeRolloutResult,
  parseRolloutResult,
  parseRolloutTask,
  ROLLOUT_WORKERS_CONSUMER,
  rolloutNames,
  RolloutProtocolError,
  rolloutRunInfo,
} from "../rl/rollout_protocol.ts";
import {
  localRollout,
  promptSeed,
  type RolloutPolicy,
  type RolloutTask,
  type RolloutTaskResult,
  runRolloutTask,
} from "../rl/rollout_tasks.ts";
import {
  type RolloutWorkerBase,
  RolloutWorkerError,
  type RolloutWorkerOptions,
  runRolloutWorker,
} from "../rl/rollout_worker.ts";
import { TestNatsServer } from "./_nats.ts";

const VOCAB = 50;
const FINGERPRINT = "f".repeat(64);
const RUN = "run-1";
const PARAM = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";

type Model = RolloutPolicy["model"];

/**
 * A host stand-in for an f32 trainable GPU tensor: what the broker reads (`parts`, `gpu.readMany`)
 * and the worker writes (`restoreParams`). The GPU path of the weights is tested in
 * `rollout_weights_test.ts`; this file keeps WebGPU out of a process full of sockets (Mesa's
 * exit handlers race the networking threads' at process exit).
 */
class HostParam {
  readonly dtype = "f32";
  readonly shape: readonly number[] = [2, 3];
  readonly numel = 6;
  readonly parts: readonly { buffer: HostParam; bytes: number }[] = [{ buffer: this, bytes: 24 }];
  readonly gpu = {
    readMany: (ranges: readonly { buffer: unknown }[]) =>
      Promise.resolve(ranges.map((r) => (r.buffer as HostParam).data.slice().buffer)),
  };
  data: Float32Array;
  constructor(first: number) {
    this.data = new Float32Array([first, 1, 2, 3, 4, 5]);
  }
  write(values: ArrayLike<number>): void {
    this.data = Float32Array.from(values);
  }
}

/** Ids from the seed, the row and the parameter's first value. */
function standInModel(param: HostParam, delayMs = 0): Model {
  return {
    async generateWithLogprobs(rows: readonly (readonly number[])[], o: GenerateOptions) {
      const bias = Math.round(param.data[0]);
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      const seed = o.seed ?? 0;
      const ids = rows.map((prompt, r) =>
        Array.from(
          { length: 1 + ((seed + r) % o.maxNewTokens) },
          (_, j) => (seed * 7 + r * 13 + j * 3 + prompt.length + bias) % VOCAB,
        )
      );
      return { ids, logprobs: ids.map((row) => row.map((id) => -((id % 7) + 1) / 8)) };
    },
  };
}

const score: RolloutPolicy["score"] = (_task, completions) =>
  completions.map((c) => c.reduce((a, b) => a + b, 0) % 5);

function trainable(p: HostParam): Trainable {
  // The broker and worker use only `mode` and `params`.
  const params = new Map([[PARAM, p as unknown as Tensor]]);
  return { mode: "lora", params } as unknown as Trainable;
}

/** The learner: its parameter holds the policy version. */
function learnerPolicy(version: number): RolloutPolicy {
  const p = new HostParam(version);
  return { model: standInModel(p), version, trainable: trainable(p), score };
}

function tasks(count: number, version: number): RolloutTask[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `s${version}-r0-p${i}`,
    promptIds: [2, 3 + i],
    answer: String(i),
    numGenerations: 2,
    sampling: { maxNewTokens: 6, temperature: 1, topK: 0, topP: 1, eosIds: [1] },
    seed: promptSeed(1234 + version, i),
    version,
  }));
}

function withoutRemote(rs: readonly RolloutTaskResult[]) {
  return rs.map(({ remote: _, ...r }) => ({ ...r, completions: r.completions.map((c) => [...c]) }))
    .map((r) => ({ ...r, rolloutLogps: r.rolloutLogps.map((l) => [...l]) }));
}

/** A worker's base: a fresh parameter (zeros until it loads the learner's weights). */
function workerBase(options: { fingerprint?: string; delayMs?: number } = {}) {
  const p = new HostParam(0);
  const base: RolloutWorkerBase = {
    model: standInModel(p, options.delayMs),
    trainable: trainable(p),
    fingerprint: options.fingerprint ?? FINGERPRINT,
    score,
  };
  return base;
}

function worker(
  connection: NatsConnection,
  base: RolloutWorkerBase,
  extra: Partial<RolloutWorkerOptions> = {},
) {
  return runRolloutWorker({ connection, loadBase: () => Promise.resolve(base), ...extra });
}

async function learner(
  server: TestNatsServer,
  options: { resultTimeoutMs?: number; ackWaitMs?: number } = {},
): Promise<BrokerRollout> {
  const p = new HostParam(0);
  return await BrokerRollout.create({
    connection: await server.connect("learner"),
    runInfo: rolloutRunInfo({
      runId: RUN,
      fingerprint: FINGERPRINT,
      vocabSize: VOCAB,
      trainable: trainable(p),
      lora: { rank: 2, alpha: 4, targets: ["q_proj"] },
    }),
    resultTimeoutMs: options.resultTimeoutMs ?? 20_000,
    ackWaitMs: options.ackWaitMs ?? 1000,
  });
}

function rejectedTotal(s: BrokerRolloutStats): number {
  return Object.values(s.rejected).reduce((a, b) => a + b, 0);
}

const natsTest = (name: string, fn: () => Promise<void>) => Deno.test({ name, fn });

natsTest(
  "BrokerRollout.run() round-trips tasks through 2 workers and equals localRollout",
  async () => {
    await using server = await TestNatsServer.start();
    // The workers start first and wait for the run to be announced.
    const w1 = worker(await server.connect("w1"), workerBase(), { workerId: "w1" });
    const w2 = worker(await server.connect("w2"), workerBase(), { workerId: "w2" });
    const broker = await learner(server);
    for (const version of [3, 4]) {
      const policy = learnerPolicy(version);
      const ts = tasks(6, version);
      const got = await broker.run(ts, policy);
      assert.deepEqual(withoutRemote(got), withoutRemote(await localRollout.run(ts, policy)));
      assert.ok(got.every((r) => r.remote));
      const s = broker.lastRunStats();
      assert.deepEqual([s.remoteTasks, s.localTasks, s.remoteCompletions, rejectedTotal(s)], [
        6,
        0,
        12,
        0,
      ]);
    }
    await broker.finish();
    const [a, b] = await Promise.all([w1, w2]);
    assert.deepEqual([a.reason, b.reason], ["finished", "finished"]);
    assert.equal(a.tasksDone + b.tasksDone, 12);
    assert.equal(broker.stats().remoteTasks, 12);
  },
);

natsTest(
  "BrokerRollout counts each task once when a worker dies mid-task without acking",
  async () => {
    await using server = await TestNatsServer.start();
    const broker = await learner(server, { ackWaitMs: 1000 });
    const policy = learnerPolicy(1);
    const ts = tasks(4, 1);
    const running = broker.run(ts, policy);
    // Worker A takes a task and hangs in the sampler until its connection is gone.
    let started!: () => void;
    const isStarted = new Promise<void>((r) => started = r);
    let release!: (e: Error) => void;
    const hung = new Promise<never>((_, reject) => release = reject);
    const baseA = workerBase();
    const connA = await server.connect("a");
    const a = worker(connA, {
      ...baseA,
      model: {
        generateWithLogprobs: () => {
          started();
          return hung;
        },
      },
    }, { workerId: "a" });
    await isStarted;
    await connA.close();
    release(new Error("worker a died"));
    await assert.rejects(a);
    const ac = new AbortController();
    const b = worker(await server.connect("b"), workerBase(), {
      workerId: "b",
      signal: ac.signal,
    });
    const got = await running;
    ac.abort();
    assert.equal((await b).reason, "aborted");
    assert.deepEqual(withoutRemote(got), withoutRemote(await localRollout.run(ts, policy)));
    const s = broker.lastRunStats();
    assert.deepEqual([s.remoteTasks, s.localTasks, s.redeliveries, rejectedTotal(s)], [4, 0, 1, 0]);
  },
);

natsTest("runRolloutWorker() hands its unfinished task back at once when aborted", async () => {
  await using server = await TestNatsServer.start();
  // A long ack wait: only the nak can bring the task back within the test.
  const broker = await learner(server, { ackWaitMs: 30_000 });
  const policy = learnerPolicy(1);
  const ts = tasks(1, 1);
  const t0 = performance.now();
  const running = broker.run(ts, policy);
  let started!: () => void;
  const isStarted = new Promise<void>((r) => started = r);
  let finish!: () => void;
  const slow = new Promise<void>((r) => finish = r);
  const baseA = workerBase();
  const ac = new AbortController();
  const a = worker(await server.connect("a"), {
    ...baseA,
    model: {
      generateWithLogprobs: async (rows, o) => {
        started();
        await slow;
        return await baseA.model.generateWithLogprobs(rows, o);
      },
    },
  }, { signal: ac.signal, workerId: "a" });
  await isStarted;
  ac.abort();
  finish();
  const summary = await a;
  assert.deepEqual([summary.reason, summary.tasksDone], ["aborted", 0]);
  const bc = new AbortController();
  const b = worker(await server.connect("b"), workerBase(), { signal: bc.signal });
  const got = await running;
  bc.abort();
  await b;
  assert.ok(performance.now() - t0 < 10_000, "handed back before the 30 s ack wait");
  assert.deepEqual(withoutRemote(got), withoutRemote(await localRollout.run(ts, policy)));
  const s = broker.lastRunStats();
  assert.deepEqual([s.remoteTasks, s.redeliveries, rejectedTotal(s)], [1, 1, 0]);
});

natsTest(
  "BrokerRollout rejects foreign, malformed, stale, tampered, unknown and duplicate results",
  async () => {
    await using server = await TestNatsServer.start();
    const broker = await learner(server);
    const policy = learnerPolicy(2);
    const ts = tasks(3, 2);
    const running = broker.run(ts, policy);
    // A rogue client takes two tasks from the queue and answers them badly.
    const nc = await server.connect("rogue");
    const js = jetstream(nc);
    const names = rolloutNames(RUN);
    const consumer = await js.consumers.get(names.tasksStream, ROLLOUT_WORKERS_CONSUMER);
    const subject = names.resultsSubject("rogue");
    const answer = async (m: Awaited<ReturnType<typeof consumer.next>>) => {
      const task = parseRolloutTask(m!.data);
      const r = await runRolloutTask(policy.model, task);
      return {
        runId: RUN,
        id: task.id,
        version: task.version,
        workerId: "rogue",
        ...r,
        rewards: [...score(task, r.completions)],
        deliveryCount: 1,
      };
    };
    const t = await consumer.next({ expires: 5000 });
    const good = await answer(t);
    for (
      const bad of [
        { ...good, runId: "other-run" },
        { ...good, version: 3 },
        { ...good, rewards: good.rewards.map((x) => x + 1) },
        { ...good, id: "s9-r0-p9" },
      ]
    ) {
      await js.publish(subject, encodeRolloutResult(bad));
    }
    await js.publish(subject, new TextEncoder().encode("{not json"));
    await js.publish(subject, encodeRolloutResult({ ...good, completions: [[VOCAB], [1]] }));
    t!.nak(); // handed back: an honest worker samples it
    const u = await consumer.next({ expires: 5000 });
    const twice = await answer(u);
    await js.publish(subject, encodeRolloutResult(twice));
    await js.publish(subject, encodeRolloutResult(twice));
    u!.ack();
    const ac = new AbortController();
    const w = worker(await server.connect("w"), workerBase(), { signal: ac.signal });
    const got = await running;
    ac.abort();
    await w;
    assert.deepEqual(withoutRemote(got), withoutRemote(await localRollout.run(ts, policy)));
    const s = broker.lastRunStats();
    assert.deepEqual(s.rejected, {
      malformed: 2,
      foreignRun: 1,
      unknownTask: 1,
      duplicate: 1,
      wrongVersion: 1,
      tampered: 1,
      late: 0,
    });
    assert.deepEqual([s.remoteTasks, s.localTasks], [3, 0]);
  },
);

natsTest(
  "BrokerRollout samples locally after resultTimeoutMs without workers; late results are dropped",
  async () => {
    await using server = await TestNatsServer.start();
    const broker = await learner(server, { resultTimeoutMs: 1200 });
    const policy = learnerPolicy(0);
    const ts = tasks(2, 0);
    const t0 = performance.now();
    const got = await broker.run(ts, policy);
    assert.ok(performance.now() - t0 >= 1200);
    assert.deepEqual(got, await localRollout.run(ts, policy));
    const s = broker.lastRunStats();
    assert.deepEqual([s.remoteTasks, s.localTasks, s.localCompletions], [0, 2, 4]);
    // The tasks left the queue, so no worker starts them now.
    const nc = await server.connect("check");
    const names = rolloutNames(RUN);
    assert.equal(
      (await (await jetstreamManager(nc)).streams.info(names.tasksStream)).state.messages,
      0,
    );
    // A result that arrives after the learner sampled the task itself is late.
    const r = got[0];
    await jetstream(nc).publish(
      names.resultsSubject("slow"),
      encodeRolloutResult({
        runId: RUN,
        id: r.id,
        version: 0,
        workerId: "slow",
        completions: r.completions,
        rolloutLogps: r.rolloutLogps,
        rewards: [...score(ts[0], r.completions)],
        deliveryCount: 1,
      }),
    );
    const next = learnerPolicy(1);
    await broker.run(tasks(1, 1), next);
    assert.equal(broker.lastRunStats().rejected.late, 1);
  },
);

natsTest("runRolloutWorker() with another base model refuses before taking a task", async () => {
  await using server = await TestNatsServer.start();
  const broker = await learner(server, { resultTimeoutMs: 1500 });
  const policy = learnerPolicy(0);
  const running = broker.run(tasks(2, 0), policy);
  const nc = await server.connect("w");
  const base = workerBase({ fingerprint: "0".repeat(64) });
  await assert.rejects(worker(nc, base), (e: unknown) => {
    assert.ok(e instanceof RolloutWorkerError, String(e));
    assert.match(
      e.message,
      /this worker's base model \(fingerprint 0{64}\) differs from the learner's \(f{64}\)/,
    );
    return true;
  });
  const info = await (await jetstreamManager(nc)).consumers.info(
    rolloutNames(RUN).tasksStream,
    ROLLOUT_WORKERS_CONSUMER,
  );
  assert.equal(info.delivered.consumer_seq, 0);
  await running;
  assert.equal(broker.lastRunStats().localTasks, 2);
});

natsTest("BrokerRollout and a worker ride out a broker restart mid-run", async () => {
  await using server = await TestNatsServer.start();
  const broker = await learner(server);
  const policy = learnerPolicy(5);
  const ts = tasks(6, 5);
  const running = broker.run(ts, policy);
  const ac = new AbortController();
  let restarted: Promise<void> | null = null;
  const w = worker(await server.connect("w"), workerBase({ delayMs: 150 }), {
    signal: ac.signal,
    onProgress: (p) => {
      if (p.tasksDone === 1) {
        restarted = (async () => {
          await server.stop();
          await new Promise((r) => setTimeout(r, 500));
          await server.restart();
        })();
      }
    },
  });
  const got = await running;
  await restarted;
  ac.abort();
  assert.equal((await w).reason, "aborted");
  assert.ok(restarted !== null, "the broker was restarted");
  assert.deepEqual(withoutRemote(got), withoutRemote(await localRollout.run(ts, policy)));
  const s = broker.lastRunStats();
  assert.deepEqual([s.remoteTasks, s.localTasks], [6, 0]);
});

natsTest(
  "runRolloutWorker() over WebSocket (wsconnect, as in a browser) serves a learner",
  async () => {
    await using server = await TestNatsServer.start();
    const broker = await learner(server);
    const policy = learnerPolicy(2);
    const ts = tasks(3, 2);
    const running = broker.run(ts, policy);
    const ws = await connectRolloutBroker(wsconnect, server.wsUrl, {
      user: server.user,
      pass: server.pass,
    });
    const ac = new AbortController();
    const w = worker(ws, workerBase(), { signal: ac.signal });
    const got = await running;
    ac.abort();
    assert.equal((await w).tasksDone, 3);
    await ws.close();
    assert.deepEqual(withoutRemote(got), withoutRemote(await localRollout.run(ts, policy)));
    assert.equal(broker.lastRunStats().remoteTasks, 3);
  },
);

natsTest("connectRolloutBroker() names the broker when it refuses the password", async () => {
  await using server = await TestNatsServer.start();
  await assert.rejects(
    connectRolloutBroker(connect, server.url, { user: server.user, pass: "wrong-password" }),
    (e: unknown) => {
      assert.ok(e instanceof RolloutBrokerError, String(e));
      assert.match(
        e.message,
        new RegExp(
          `the broker nats://127\\.0\\.0\\.1:${server.port} refused the credentials ` +
            `of user "webtune"`,
        ),
      );
      assert.ok(!e.message.includes("wrong-password"));
      return true;
    },
  );
  const nc = await connectRolloutBroker(
    connect,
    `nats://${server.user}:${server.pass}@127.0.0.1:${server.port}`,
  );
  await nc.close();
});

Deno.test("parseRolloutResult() names the field of an id outside the vocabulary", () => {
  const r = {
    runId: RUN,
    id: "s0-r0-p0",
    version: 0,
    workerId: "w",
    completions: [[3, 4], [5]],
    rolloutLogps: [[-1, -2], [-0.5]],
    rewards: [1, 0],
    deliveryCount: 1,
  };
  assert.deepEqual(parseRolloutResult(encodeRolloutResult(r), VOCAB), r);
  const bad = (patch: object) => {
    try {
      parseRolloutResult(JSON.stringify({ ...r, ...patch }), VOCAB);
    } catch (e) {
      if (e instanceof RolloutProtocolError) return e.path;
      throw e;
    }
    return "accepted";
  };
  assert.equal(bad({ completions: [[3, 4], [VOCAB]] }), "result.completions[1][0]");
  assert.equal(bad({ rolloutLogps: [[-1, -2], []] }), "result.rolloutLogps[1]");
  assert.equal(bad({ rolloutLogps: [[-1, 0.5], [-1]] }), "result.rolloutLogps[0][1]");
  assert.equal(bad({ rewards: [1, null] }), "result.rewards[1]");
  assert.equal(bad({ runId: "a.b" }), "result.runId");
  assert.equal(bad({ deliveryCount: 0 }), "result.deliveryCount");
});
