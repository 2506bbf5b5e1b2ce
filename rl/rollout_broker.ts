/**
 * The learner's side of distributed GRPO rollouts: a {@linkcode RolloutExecutor} that hands a
 * step's tasks to rollout workers through NATS JetStream (names and schemas in
 * `rollout_protocol.ts`) and samples itself whatever they do not return in time.
 *
 * Each task counts exactly once: a result is accepted only if it is well-formed, of this run,
 * of a task the learner is waiting for, of the requested policy version, and its rewards equal
 * the learner's own scores of its completions; anything else is counted by reason and dropped.
 * Workers may die (the broker redelivers unacked tasks after `ackWaitMs`), answer twice, or
 * cheat; the learner's results stay those of `localRollout` with the same weights.
 *
 * @module
 */

import type { NatsConnection } from "@nats-io/nats-core";
import {
  type Consumer,
  jetstream,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";
import { ensureRolloutStreams, pullMessages, retrying, sleep } from "./_rollout_nats.ts";
import { RolloutBrokerError } from "./rollout_connect.ts";
import {
  encodeRolloutRunInfo,
  encodeRolloutRunSummary,
  encodeRolloutTask,
  parseRolloutResult,
  parseRolloutRunInfo,
  ROLLOUT_LEARNER_CONSUMER,
  ROLLOUT_RUN_FILE,
  ROLLOUT_RUNS_BUCKET,
  type RolloutNames,
  rolloutNames,
  type RolloutParamShape,
  RolloutProtocolError,
  type RolloutResultMessage,
  type RolloutRunInfo,
} from "./rollout_protocol.ts";
import {
  type RolloutExecutor,
  type RolloutPolicy,
  type RolloutTask,
  type RolloutTaskResult,
  runRolloutTask,
} from "./rollout_tasks.ts";
import { encodeRolloutWeights } from "./rollout_weights.ts";

/** Why a result was dropped. `late`: its task was already sampled by the learner. */
export type RolloutRejectReason =
  | "malformed"
  | "foreignRun"
  | "unknownTask"
  | "duplicate"
  | "wrongVersion"
  | "tampered"
  | "late";

/** Every {@linkcode RolloutRejectReason}. */
export const ROLLOUT_REJECT_REASONS: readonly RolloutRejectReason[] = Object.freeze([
  "malformed",
  "foreignRun",
  "unknownTask",
  "duplicate",
  "wrongVersion",
  "tampered",
  "late",
]);

/** What a {@linkcode BrokerRollout} counted (in total, or over one `run`). */
export interface BrokerRolloutStats {
  /** Tasks whose results came from workers. */
  readonly remoteTasks: number;
  /** Tasks the learner sampled itself. */
  readonly localTasks: number;
  /** Completions from workers. */
  readonly remoteCompletions: number;
  /** Completions the learner sampled. */
  readonly localCompletions: number;
  /** Dropped results by reason. */
  readonly rejected: Readonly<Record<RolloutRejectReason, number>>;
  /** Accepted results whose task the broker had delivered more than once. */
  readonly redeliveries: number;
}

/** Options of {@linkcode BrokerRollout.create}. */
export interface BrokerRolloutOptions {
  /** A connection (`connectRolloutBroker`), reconnecting forever. */
  readonly connection: NatsConnection;
  /** The run (`rolloutRunInfo(...)`): id, base fingerprint, trainable names and shapes. */
  readonly runInfo: RolloutRunInfo;
  /** How long `run` waits with no new result before sampling the missing tasks itself
   * (default 60 000 ms). */
  readonly resultTimeoutMs?: number;
  /** How long a worker may hold a task without acking or `working()` before the broker hands it
   * to another (default 60 000 ms, ≥ 1000). */
  readonly ackWaitMs?: number;
  /** Weight versions kept in the object store (default 2, at least `maxStaleness` + 2). */
  readonly keepWeights?: number;
  /**
   * `grpo.maxStaleness`: results of tasks handed out early by {@linkcode BrokerRollout.prefetch}
   * are used when at most this many versions behind the policy (default 0).
   */
  readonly maxStaleness?: number;
  /** Progress and problems, one line each. */
  readonly log?: (message: string) => void;
  /** Stops a `run` (it rejects with the signal's reason; published tasks stay queued). */
  readonly signal?: AbortSignal;
}

interface Counts {
  remoteTasks: number;
  localTasks: number;
  remoteCompletions: number;
  localCompletions: number;
  rejected: Record<RolloutRejectReason, number>;
  redeliveries: number;
}

function zeroCounts(): Counts {
  const rejected = Object.fromEntries(ROLLOUT_REJECT_REASONS.map((r) => [r, 0]));
  return {
    remoteTasks: 0,
    localTasks: 0,
    remoteCompletions: 0,
    localCompletions: 0,
    rejected: rejected as Record<RolloutRejectReason, number>,
    redeliveries: 0,
  };
}

function frozen(c: Counts): BrokerRolloutStats {
  return Object.freeze({ ...c, rejected: Object.freeze({ ...c.rejected }) });
}

interface Waiting {
  readonly task: RolloutTask;
  readonly index: number;
  seq: number | null;
}

function positiveInt(field: string, v: number, min: number): number {
  if (!Number.isSafeInteger(v) || v < min) {
    throw RolloutBrokerError.mustBe(field, `an integer >= ${min}`, v);
  }
  return v;
}

/**
 * Rollouts on workers through a NATS JetStream broker, with local sampling as the fallback.
 *
 * @example
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * const connection = await connectRolloutBroker(connect, "nats://u:p@127.0.0.1:4222");
 * const broker = await BrokerRollout.create({
 *   connection,
 *   runInfo: rolloutRunInfo({ runId: "grpo-1", fingerprint, vocabSize, trainable, lora }),
 * });
 * const results = await broker.run(tasks, policy); // as localRollout.run, sampled by workers
 * console.log(broker.lastRunStats());
 * await broker.finish();
 * ```
 */
export class BrokerRollout implements RolloutExecutor {
  /** The run's `run.json`. */
  readonly runInfo: RolloutRunInfo;
  /** The run's NATS names. */
  readonly names: RolloutNames;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #results: Consumer;
  readonly #store: ObjectStore;
  readonly #runs: KV;
  readonly #resultTimeoutMs: number;
  readonly #keepWeights: number;
  readonly #log: (message: string) => void;
  readonly #signal: AbortSignal | undefined;
  readonly #total = zeroCounts();
  #last = zeroCounts();
  /** Tasks counted (remote or local), for duplicates. */
  readonly #counted = new Set<string>();
  /** Tasks the learner sampled itself after the timeout, for late results. */
  readonly #abandoned = new Set<string>();
  readonly #weightsPublished = new Set<number>();
  readonly #maxStaleness: number;
  /** Tasks handed out ahead of their step, by id: the version they name, their sequence. */
  readonly #prefetched = new Map<string, { task: RolloutTask; seq: number }>();
  /** Checked results of tasks handed out early, kept until their step's `run`. */
  readonly #early = new Map<string, RolloutTaskResult>();

  private constructor(
    options: BrokerRolloutOptions,
    parts: {
      js: JetStreamClient;
      jsm: JetStreamManager;
      results: Consumer;
      store: ObjectStore;
      runs: KV;
      runInfo: RolloutRunInfo;
    },
  ) {
    this.runInfo = parts.runInfo;
    this.names = rolloutNames(parts.runInfo.runId);
    this.#js = parts.js;
    this.#jsm = parts.jsm;
    this.#results = parts.results;
    this.#store = parts.store;
    this.#runs = parts.runs;
    this.#resultTimeoutMs = options.resultTimeoutMs ?? 60_000;
    this.#maxStaleness = options.maxStaleness ?? 0;
    this.#keepWeights = Math.max(options.keepWeights ?? 2, this.#maxStaleness + 2);
    this.#log = options.log ?? (() => {});
    this.#signal = options.signal;
  }

  /**
   * Makes (or reopens, for a resumed run) the run's streams, consumers, object store and
   * `run.json`, and announces the run in the discovery bucket.
   *
   * @param options Connection, run info, timeouts, log, signal.
   * @returns The executor.
   * @throws {RolloutBrokerError} for bad options, or when the broker already holds this run id
   *   for another base model or other trainable parameters.
   */
  static async create(options: BrokerRolloutOptions): Promise<BrokerRollout> {
    positiveInt("resultTimeoutMs", options.resultTimeoutMs ?? 60_000, 1);
    const ackWaitMs = positiveInt("ackWaitMs", options.ackWaitMs ?? 60_000, 1000);
    positiveInt("keepWeights", options.keepWeights ?? 2, 1);
    if (
      options.maxStaleness !== undefined &&
      !(Number.isSafeInteger(options.maxStaleness) && options.maxStaleness >= 0)
    ) {
      throw RolloutBrokerError.mustBe("maxStaleness", "an integer >= 0", options.maxStaleness);
    }
    const info = options.runInfo;
    const names = rolloutNames(info.runId);
    const nc = options.connection;
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await ensureRolloutStreams(jsm, names, ackWaitMs);
    const store = await new Objm(js).create(names.bucket);
    const existing = await store.getBlob(ROLLOUT_RUN_FILE);
    let runInfo = info;
    if (existing) {
      runInfo = parseRolloutRunInfo(existing);
      const same = (r: RolloutRunInfo) =>
        JSON.stringify([r.fingerprint, r.vocabSize, r.trainable, r.lora]);
      if (same(runInfo) !== same(info)) {
        throw new RolloutBrokerError(
          "runId",
          `the broker already holds run "${info.runId}" for another base model or other ` +
            `trainable parameters (fingerprint ${runInfo.fingerprint.slice(0, 12)}…, this ` +
            `learner's ${info.fingerprint.slice(0, 12)}…): use another run id`,
        );
      }
    } else {
      await store.putBlob({ name: ROLLOUT_RUN_FILE }, encodeRolloutRunInfo(info));
    }
    const runs = await new Kvm(js).create(ROLLOUT_RUNS_BUCKET, { history: 1 });
    const results = await js.consumers.get(names.resultsStream, ROLLOUT_LEARNER_CONSUMER);
    const broker = new BrokerRollout(options, { js, jsm, results, store, runs, runInfo });
    await broker.#announce("running", 0);
    return broker;
  }

  /** @returns What was counted since `create`. */
  stats(): BrokerRolloutStats {
    return frozen(this.#total);
  }

  /** @returns What the latest `run` counted. */
  lastRunStats(): BrokerRolloutStats {
    return frozen(this.#last);
  }

  /** Marks the run finished in the discovery bucket: its workers stop when idle. */
  async finish(): Promise<void> {
    await this.#announce("finished", null);
  }

  /**
   * Hands out tasks of later steps now (`grpo.maxStaleness` > 0): they are sampled with the
   * policy's current version, and `run` with the same ids takes their results while at most
   * `maxStaleness` versions old (older ones are handed out again).
   *
   * @param tasks Tasks of later steps, naming `policy.version`.
   * @param policy The learner's policy now.
   */
  async prefetch(tasks: readonly RolloutTask[], policy: RolloutPolicy): Promise<void> {
    if (this.#maxStaleness === 0) return;
    const retry = { signal: this.#signal, deadline: performance.now() + this.#resultTimeoutMs };
    try {
      await retrying("publishing weights", () => this.#publishWeights(policy), retry);
      for (const task of tasks) {
        if (this.#prefetched.has(task.id) || this.#counted.has(task.id)) continue;
        const seq = await retrying("publishing a task", () => this.#publishTask(task), retry);
        this.#prefetched.set(task.id, { task, seq });
      }
    } catch (e) {
      if (this.#signal?.aborted) throw e;
      this.#log(`rollout broker unreachable (${(e as Error).message}); nothing handed out early`);
    }
  }

  /**
   * Samples every task on workers (publishing the policy's weights once per version), and
   * samples itself the tasks still missing after `resultTimeoutMs` without a new result (or
   * while the broker cannot be reached).
   *
   * @param tasks The tasks (all of `policy.version`, ids unique in the run).
   * @param policy The learner's policy (model, version, trainable parameters, scores).
   * @returns One result per task, in task order (`remote` says who sampled it).
   */
  async run(tasks: readonly RolloutTask[], policy: RolloutPolicy): Promise<RolloutTaskResult[]> {
    this.#last = zeroCounts();
    tasks.forEach((t, i) => {
      if (t.version !== policy.version) {
        throw RolloutBrokerError.mustBe(`tasks[${i}].version`, `${policy.version}`, t.version);
      }
    });
    this.#checkTrainable(policy);
    const results: RolloutTaskResult[] = new Array(tasks.length);
    // A task handed out early stands for this one while its version is recent enough.
    const early = (t: RolloutTask) => {
      const p = this.#prefetched.get(t.id);
      this.#prefetched.delete(t.id);
      return p && policy.version - p.task.version <= this.#maxStaleness ? p : null;
    };
    const waiting = new Map<string, Waiting>(
      tasks.map((task, index) => {
        const p = early(task);
        return [task.id, p ? { task: p.task, index, seq: p.seq } : { task, index, seq: null }];
      }),
    );
    for (const [id, w] of waiting) {
      const r = this.#early.get(id);
      this.#early.delete(id); // one too old is of a task handed out again
      if (r === undefined || r.version !== w.task.version) continue;
      results[w.index] = r;
      waiting.delete(id);
      this.#counted.add(id);
      this.#count((c) => {
        c.remoteTasks++;
        c.remoteCompletions += r.completions.length;
      });
    }
    const retry = { signal: this.#signal, deadline: performance.now() + this.#resultTimeoutMs };
    let reachable = true;
    try {
      await retrying("publishing weights", () => this.#publishWeights(policy), retry);
      await this.#announce("running", policy.version).catch(() => {});
      for (const w of waiting.values()) {
        if (w.seq !== null) continue; // handed out early
        w.seq = await retrying("publishing a task", () => this.#publishTask(w.task), retry);
      }
    } catch (e) {
      if (this.#signal?.aborted) throw e;
      this.#log(`rollout broker unreachable (${(e as Error).message})`);
      reachable = false;
    }
    if (reachable) await this.#collect(waiting, results, policy);
    if (waiting.size > 0) await this.#sampleLocally(waiting, results, policy, tasks.length);
    return results;
  }

  async #collect(
    waiting: Map<string, Waiting>,
    results: RolloutTaskResult[],
    policy: RolloutPolicy,
  ): Promise<void> {
    let deadline = performance.now() + this.#resultTimeoutMs;
    let failing = false;
    while (waiting.size > 0 && performance.now() < deadline) {
      this.#signal?.throwIfAborted();
      const expires = Math.min(2000, Math.max(1000, deadline - performance.now()));
      try {
        for await (const m of pullMessages(this.#results, waiting.size, expires)) {
          if (this.#take(m, waiting, results, policy)) {
            deadline = performance.now() + this.#resultTimeoutMs;
          }
        }
        failing = false;
      } catch (e) {
        if (this.#signal?.aborted) throw this.#signal.reason;
        if (!failing) this.#log(`reading rollout results failed (${(e as Error).message})`);
        failing = true;
        await sleep(250, this.#signal);
      }
    }
  }

  /** Counts one result message; true when it completed a task. */
  #take(
    m: JsMsg,
    waiting: Map<string, Waiting>,
    results: RolloutTaskResult[],
    policy: RolloutPolicy,
  ): boolean {
    m.ack();
    let r: RolloutResultMessage;
    try {
      r = parseRolloutResult(m.data, this.runInfo.vocabSize);
      if (m.subject !== `webtune.${this.runInfo.runId}.results.${r.workerId}`) {
        throw RolloutProtocolError.mustBe(
          "result.workerId",
          `the subject's (${m.subject})`,
          r.workerId,
        );
      }
    } catch (e) {
      if (!(e instanceof RolloutProtocolError)) throw e;
      return this.#reject("malformed", `${m.subject}: ${e.message}`);
    }
    const from = `result of ${r.id} from worker ${r.workerId}`;
    if (r.runId !== this.runInfo.runId) {
      return this.#reject("foreignRun", `${from}: run ${r.runId}`);
    }
    const early = this.#prefetched.get(r.id);
    const w = waiting.get(r.id) ??
      (early && !this.#early.has(r.id)
        ? { task: early.task, index: -1, seq: early.seq }
        : undefined);
    if (!w) {
      const reason = this.#abandoned.has(r.id)
        ? "late"
        : this.#counted.has(r.id)
        ? "duplicate"
        : "unknownTask";
      return this.#reject(reason, from);
    }
    const task = w.task;
    if (r.version !== task.version) {
      return this.#reject("wrongVersion", `${from}: version ${r.version}, not ${task.version}`);
    }
    if (
      r.completions.length !== task.numGenerations ||
      r.completions.some((c) => c.length > task.sampling.maxNewTokens)
    ) {
      return this.#reject(
        "malformed",
        `${from}: not ${task.numGenerations} completions of ` +
          `at most ${task.sampling.maxNewTokens} tokens`,
      );
    }
    const scores = policy.score(task, r.completions);
    if (scores.length !== r.rewards.length || scores.some((s, i) => s !== r.rewards[i])) {
      return this.#reject("tampered", `${from}: rewards [${r.rewards}] are not [${scores}]`);
    }
    const result = Object.freeze({
      id: task.id,
      completions: r.completions,
      rolloutLogps: r.rolloutLogps,
      version: r.version,
      remote: true,
    });
    if (w.index < 0) {
      // A task of a later step, handed out early: kept for that step's run.
      this.#early.set(task.id, result);
      return false;
    }
    results[w.index] = result;
    waiting.delete(task.id);
    this.#counted.add(task.id);
    this.#count((c) => {
      c.remoteTasks++;
      c.remoteCompletions += r.completions.length;
      if (r.deliveryCount > 1) c.redeliveries++;
    });
    return true;
  }

  #reject(reason: RolloutRejectReason, detail: string): false {
    this.#count((c) => c.rejected[reason]++);
    this.#log(`rollout result dropped (${reason}): ${detail}`);
    return false;
  }

  #count(update: (c: Counts) => void): void {
    update(this.#total);
    update(this.#last);
  }

  async #sampleLocally(
    waiting: Map<string, Waiting>,
    results: RolloutTaskResult[],
    policy: RolloutPolicy,
    total: number,
  ): Promise<void> {
    this.#log(
      `${waiting.size} of ${total} rollout tasks without a result after ` +
        `${this.#resultTimeoutMs / 1000} s: sampling them on the learner`,
    );
    const missing = [...waiting.values()];
    for (const w of missing) this.#abandoned.add(w.task.id);
    // Take them off the queue so no worker starts them now; results still in flight are late.
    await Promise.allSettled(
      missing.filter((w) => w.seq !== null).map((w) =>
        this.#jsm.streams.deleteMessage(this.names.tasksStream, w.seq!)
      ),
    );
    for (const w of missing) {
      this.#signal?.throwIfAborted();
      const r = await runRolloutTask(policy.model, w.task);
      results[w.index] = Object.freeze({
        id: w.task.id,
        ...r,
        version: policy.version,
        remote: false,
      });
      waiting.delete(w.task.id);
      this.#counted.add(w.task.id);
      this.#count((c) => {
        c.localTasks++;
        c.localCompletions += r.completions.length;
      });
    }
  }

  /** Publishes a task (deduplicated by id); returns its stream sequence. */
  async #publishTask(task: RolloutTask): Promise<number> {
    const data = encodeRolloutTask(this.runInfo.runId, task);
    const msgID = `${task.id}@v${task.version}`;
    const ack = await this.#js.publish(this.names.tasksSubject, data, { msgID });
    if (!ack.duplicate) return ack.seq;
    // Published before a learner restart: keep it if still queued, else queue it again.
    const queued = await this.#jsm.streams.getMessage(this.names.tasksStream, { seq: ack.seq })
      .catch(() => null);
    if (queued) return ack.seq;
    const again = await this.#js.publish(this.names.tasksSubject, data, {
      msgID: `${msgID}~${Date.now()}`,
    });
    return again.seq;
  }

  /** The policy must train exactly the parameters run.json announced. */
  #checkTrainable(policy: RolloutPolicy): void {
    const params = policy.trainable?.params;
    const expected = this.runInfo.trainable;
    const shapes = (p: readonly RolloutParamShape[] | undefined) =>
      JSON.stringify(p?.map(({ name, shape }) => ({ name, shape })) ?? null);
    const given = params && [...params].map(([name, t]) => ({ name, shape: t.shape }));
    if (shapes(given) !== shapes(expected?.params)) {
      throw new RolloutBrokerError(
        "policy.trainable",
        `the policy's trainable parameters differ from run.json's (${
          expected?.params.length ?? "none"
        } announced, ${params?.size ?? "none"} given)`,
      );
    }
  }

  async #publishWeights(policy: RolloutPolicy): Promise<void> {
    const params = policy.trainable?.params;
    if (!params || this.#weightsPublished.has(policy.version)) return;
    const name = this.names.weightsObject(policy.version);
    const info = await this.#store.info(name);
    if (!info || info.deleted) {
      const bytes = await encodeRolloutWeights(params, policy.version);
      await this.#store.putBlob({ name }, bytes);
      this.#log(`published ${name} (${(bytes.length / 1e6).toFixed(1)} MB)`);
    }
    this.#weightsPublished.add(policy.version);
    const old = (await this.#store.list())
      .map((o) => /^weights\/v(\d+)$/.exec(o.name))
      .filter((m) => m !== null && Number(m[1]) <= policy.version - this.#keepWeights);
    await Promise.allSettled(old.map((m) => this.#store.delete(m![0])));
  }

  async #announce(status: "running" | "finished", version: number | null): Promise<void> {
    const prev = await this.#runs.get(this.runInfo.runId).catch(() => null);
    let lastVersion = version ?? 0;
    if (version === null && prev?.operation === "PUT") {
      lastVersion = (prev.json() as { version?: number }).version ?? 0;
    }
    const now = new Date().toISOString();
    await this.#runs.put(
      this.runInfo.runId,
      encodeRolloutRunSummary({
        runId: this.runInfo.runId,
        fingerprint: this.runInfo.fingerprint,
        status,
        version: lastVersion,
        createdAt: this.runInfo.createdAt,
        updatedAt: now,
      }),
    );
  }
}
