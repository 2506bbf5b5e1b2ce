/**
 * A rollout worker: joins a learner's run on a NATS JetStream broker (`rollout_protocol.ts`),
 * checks that it holds the same base model, then pulls one task at a time, loads the task's
 * policy version (`weights/v<N>`, cached by version), samples it with `runRolloutTask`, scores
 * it with its own reward functions, publishes the result and only then acks the task. On abort
 * it hands its unfinished task back at once (`nak`).
 *
 * How the base model is built is the caller's (`loadBase`): the CLI loads `--model DIR`, or
 * builds the demo model from `run.json`'s `base`.
 *
 * @module
 */

import { millis, type NatsConnection } from "@nats-io/nats-core";
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
import { FieldError } from "../base/field_error.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import type { Trainable } from "../model/trainable.ts";
import { type HostTensor, restoreParams } from "./checkpoint.ts";
import { pullMessages, retrying, sleep } from "./_rollout_nats.ts";
import {
  encodeRolloutResult,
  parseRolloutRunInfo,
  parseRolloutRunSummary,
  parseRolloutTask,
  ROLLOUT_RUN_FILE,
  ROLLOUT_RUNS_BUCKET,
  ROLLOUT_WORKERS_CONSUMER,
  type RolloutNames,
  rolloutNames,
  RolloutProtocolError,
  type RolloutRunInfo,
  type RolloutRunSummary,
  type RolloutTaskMessage,
} from "./rollout_protocol.ts";
import { type RolloutPolicy, runRolloutTask } from "./rollout_tasks.ts";
import { decodeRolloutWeights } from "./rollout_weights.ts";

/** A worker that cannot serve the run (another base model, other trainable parameters). */
export class RolloutWorkerError extends FieldError {
  override readonly name: string = "RolloutWorkerError";
}

/** What a worker samples with: its base model and what it scores with. */
export interface RolloutWorkerBase {
  /** The policy (with the run's LoRA adapter attached when the run trains LoRA). */
  readonly model: Pick<Gemma3, "generateWithLogprobs">;
  /** The parameters the learner trains (`weights/v<N>` is written into them), or null. */
  readonly trainable: Pick<Trainable, "mode" | "params"> | null;
  /** The base model's fingerprint (`modelFingerprint` / `demoModelFingerprint`). */
  readonly fingerprint: string;
  /** The worker's total reward of each completion (decoded, the run's reward functions). */
  readonly score: RolloutPolicy["score"];
}

/** A worker's progress, after each task. */
export interface RolloutWorkerProgress {
  /** The run. */
  readonly runId: string;
  /** Tasks sampled and published. */
  readonly tasksDone: number;
  /** Completion tokens sampled. */
  readonly tokens: number;
  /** Tokens per second of sampling. */
  readonly tokensPerSecond: number;
}

/** Options of {@linkcode runRolloutWorker}. */
export interface RolloutWorkerOptions {
  /** A connection (`connectRolloutBroker`), reconnecting forever. */
  readonly connection: NatsConnection;
  /** The run to join (default: the newest running one; waits until one is announced). */
  readonly runId?: string;
  /** This worker's id (`[A-Za-z0-9_-]`; default random). */
  readonly workerId?: string;
  /** Builds the base model for the run (`run.json`). */
  readonly loadBase: (runInfo: RolloutRunInfo) => Promise<RolloutWorkerBase>;
  /** Stops the worker (its unfinished task is handed back). */
  readonly signal?: AbortSignal;
  /** Called after each task. */
  readonly onProgress?: (progress: RolloutWorkerProgress) => void;
  /** Problems and waits, one line each. */
  readonly log?: (message: string) => void;
  /** Stop after this many tasks (default: no limit). */
  readonly maxTasks?: number;
}

/** How a worker ended. */
export interface RolloutWorkerSummary extends RolloutWorkerProgress {
  /** The worker's id. */
  readonly workerId: string;
  /** Why it stopped: aborted, the learner finished the run, or `maxTasks` reached. */
  readonly reason: "aborted" | "finished" | "maxTasks";
}

/** How long one pull waits for a task (the broker's minimum); the run's status is looked at
 * after each empty pull. */
const PULL_EXPIRES_MS = 1000;

function randomWorkerId(): string {
  return `w-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * The named run's summary, or the newest running one. The keys come from one stream-info
 * request (`kv.keys()` runs a consumer that can wait out a 30 s heartbeat while a learner
 * updates its entry).
 */
async function findRun(
  kv: KV,
  jsm: JetStreamManager,
  runId: string | undefined,
): Promise<RolloutRunSummary | null> {
  const summary = async (key: string) => {
    const e = await kv.get(key);
    return e && e.operation === "PUT" ? parseRolloutRunSummary(e.value) : null;
  };
  if (runId !== undefined) return await summary(runId);
  const prefix = `$KV.${ROLLOUT_RUNS_BUCKET}.`;
  const info = await jsm.streams.info(`KV_${ROLLOUT_RUNS_BUCKET}`, {
    subjects_filter: `${prefix}>`,
  });
  let newest: RolloutRunSummary | null = null;
  for (const subject of Object.keys(info.state.subjects ?? {})) {
    const s = await summary(subject.slice(prefix.length));
    if (s?.status === "running" && (!newest || s.updatedAt > newest.updatedAt)) newest = s;
  }
  return newest;
}

function checkBase(info: RolloutRunInfo, base: RolloutWorkerBase): void {
  if (base.fingerprint !== info.fingerprint) {
    throw new RolloutWorkerError(
      "fingerprint",
      `this worker's base model (fingerprint ${base.fingerprint}) differs from the learner's ` +
        `(${info.fingerprint}) in run "${info.runId}": load the same model and config`,
      { expected: info.fingerprint, got: base.fingerprint },
    );
  }
  const want = info.trainable ? JSON.stringify(info.trainable) : "null";
  const have = base.trainable
    ? JSON.stringify({
      mode: base.trainable.mode,
      params: [...base.trainable.params].map(([name, t]) => ({ name, shape: t.shape })),
    })
    : "null";
  if (want !== have) {
    throw new RolloutWorkerError(
      "trainable",
      `this worker's trainable parameters differ from run "${info.runId}"'s (mode ` +
        `${info.trainable?.mode ?? "none"}, ${info.trainable?.params.length ?? 0} tensors): ` +
        "attach the run's LoRA adapter (run.json lora) or train the same parameters",
    );
  }
}

/** `work`'s value, or null as soon as `signal` aborts. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T | null> {
  if (!signal) return work;
  if (signal.aborted) return Promise.resolve(null);
  let onAbort = () => {};
  const aborted = new Promise<null>((resolve) => {
    onAbort = () => resolve(null);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener("abort", onAbort));
}

/** One worker's state in a run. */
class Worker {
  readonly #o: RolloutWorkerOptions;
  readonly #js: JetStreamClient;
  readonly #names: RolloutNames;
  readonly #base: RolloutWorkerBase;
  readonly #store: ObjectStore;
  readonly workerId: string;
  #appliedVersion: number | null = null;
  #cache: { version: number; weights: Map<string, HostTensor> } | null = null;
  tasksDone = 0;
  tokens = 0;
  samplingMs = 0;

  constructor(
    options: RolloutWorkerOptions,
    parts: {
      js: JetStreamClient;
      names: RolloutNames;
      base: RolloutWorkerBase;
      store: ObjectStore;
    },
  ) {
    this.#o = options;
    this.#js = parts.js;
    this.#names = parts.names;
    this.#base = parts.base;
    this.#store = parts.store;
    this.workerId = options.workerId ?? randomWorkerId();
  }

  progress(): RolloutWorkerProgress {
    return Object.freeze({
      runId: this.#names.runId,
      tasksDone: this.tasksDone,
      tokens: this.tokens,
      tokensPerSecond: this.samplingMs > 0 ? this.tokens / (this.samplingMs / 1000) : 0,
    });
  }

  /** Loads version `v` into the trainable parameters; false when the learner no longer has it. */
  async #useVersion(version: number): Promise<boolean> {
    const params = this.#base.trainable?.params;
    if (!params || this.#appliedVersion === version) return true;
    if (this.#cache?.version !== version) {
      const name = this.#names.weightsObject(version);
      const bytes = await retrying(`fetching ${name}`, () => this.#store.getBlob(name), {
        signal: this.#o.signal,
        log: this.#o.log,
      });
      if (!bytes) return false;
      this.#cache = { version, weights: await decodeRolloutWeights(name, bytes) };
    }
    restoreParams(params, this.#cache.weights);
    this.#appliedVersion = version;
    return true;
  }

  /** Samples, scores and publishes one task, then acks it; naks it on abort or failure. */
  async serve(m: JsMsg, ackWaitMs: number): Promise<"done" | "aborted"> {
    const signal = this.#o.signal;
    let task: RolloutTaskMessage;
    try {
      task = parseRolloutTask(m.data);
      if (task.runId !== this.#names.runId) {
        throw RolloutProtocolError.mustBe("task.runId", `"${this.#names.runId}"`, task.runId);
      }
    } catch (e) {
      if (!(e instanceof RolloutProtocolError)) throw e;
      this.#o.log?.(`dropping a malformed task: ${e.message}`);
      m.term(e.message);
      return "done";
    }
    const heartbeat = setInterval(() => {
      try {
        m.working();
      } catch { /* reconnecting: the broker redelivers if we stay away too long */ }
    }, Math.max(250, ackWaitMs / 3));
    let sampling: Promise<unknown> | null = null;
    try {
      if (!(await this.#useVersion(task.version))) {
        this.#o.log?.(`task ${task.id}: weights v${task.version} are gone (the learner moved on)`);
        m.term("weights gone");
        return "done";
      }
      const t0 = performance.now();
      const run = runRolloutTask(this.#base.model, task);
      sampling = run;
      const r = await untilAborted(run, signal);
      if (r === null) {
        m.nak();
        return "aborted";
      }
      this.samplingMs += performance.now() - t0;
      const rewards = this.#base.score(task, r.completions);
      const result = encodeRolloutResult({
        runId: task.runId,
        id: task.id,
        version: task.version,
        workerId: this.workerId,
        completions: r.completions,
        rolloutLogps: r.rolloutLogps,
        rewards: [...rewards],
        deliveryCount: m.info.deliveryCount,
      });
      const subject = this.#names.resultsSubject(this.workerId);
      // The message id makes a retried publish (a lost ack) count once at the broker; the task
      // message's stream sequence keeps a task queued again (a resumed learner) a new result.
      const msgID = `${task.id}.${m.info.streamSequence}.${this.workerId}.${m.info.deliveryCount}`;
      await retrying("publishing a result", () => this.#js.publish(subject, result, { msgID }), {
        signal,
        log: this.#o.log,
      });
      m.ack();
      this.tasksDone++;
      this.tokens += r.completions.reduce((n, c) => n + c.length, 0);
      this.#o.onProgress?.(this.progress());
      return "done";
    } catch (e) {
      try {
        m.nak();
      } catch { /* the connection is gone: the broker redelivers after ack_wait */ }
      if (signal?.aborted) return "aborted";
      throw e;
    } finally {
      clearInterval(heartbeat);
      // The model may still be sampling an abandoned task: let it finish before returning.
      await sampling?.catch(() => {});
    }
  }
}

/**
 * Runs a rollout worker until aborted, until the learner marks the run finished, or for
 * `maxTasks` tasks.
 *
 * @param options Connection, run, base-model loader, signal, progress.
 * @returns How many tasks and tokens it did, and why it stopped.
 * @throws {RolloutWorkerError} before taking any task, when its base model or trainable
 *   parameters differ from the learner's.
 * @example
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * const connection = await connectRolloutBroker(connect, "nats://u:p@learner:4222");
 * const summary = await runRolloutWorker({
 *   connection,
 *   loadBase: async (run) => ({ model, trainable, fingerprint, score }),
 *   onProgress: (p) => console.log(`${p.tasksDone} tasks, ${p.tokensPerSecond.toFixed(0)} tok/s`),
 * });
 * ```
 */
export async function runRolloutWorker(
  options: RolloutWorkerOptions,
): Promise<RolloutWorkerSummary> {
  const { signal, log } = options;
  let worker: Worker | null = null;
  let runId = options.runId ?? "";
  const end = (reason: RolloutWorkerSummary["reason"]): RolloutWorkerSummary =>
    Object.freeze({
      ...(worker?.progress() ?? { runId, tasksDone: 0, tokens: 0, tokensPerSecond: 0 }),
      workerId: worker?.workerId ?? options.workerId ?? "",
      reason,
    });
  try {
    const js = jetstream(options.connection);
    const jsm = await jetstreamManager(options.connection);
    const kv = await retrying(
      "opening the run list",
      () => new Kvm(js).create(ROLLOUT_RUNS_BUCKET),
      {
        signal,
        log,
      },
    );
    let summary = await findRun(kv, jsm, options.runId);
    if (!summary) log?.(`waiting for ${options.runId ? `run "${options.runId}"` : "a run"}`);
    while (!summary) {
      await sleep(1000, signal);
      summary = await retrying("looking for a run", () => findRun(kv, jsm, options.runId), {
        signal,
        log,
      });
    }
    runId = summary.runId;
    const names = rolloutNames(runId);
    const store = await new Objm(js).open(names.bucket);
    const runBytes = await store.getBlob(ROLLOUT_RUN_FILE);
    if (!runBytes) {
      throw new RolloutWorkerError("runId", `run "${runId}" has no ${ROLLOUT_RUN_FILE}`);
    }
    const info = parseRolloutRunInfo(runBytes);
    const base = await options.loadBase(info);
    checkBase(info, base);
    worker = new Worker(options, { js, names, base, store });
    const consumer: Consumer = await js.consumers.get(names.tasksStream, ROLLOUT_WORKERS_CONSUMER);
    const ackWaitMs = millis((await consumer.info(true)).config.ack_wait ?? 30e9);
    for (;;) {
      if (signal?.aborted) return end("aborted");
      if (options.maxTasks !== undefined && worker.tasksDone >= options.maxTasks) {
        return end("maxTasks");
      }
      const next = async () => {
        for await (const m of pullMessages(consumer, 1, PULL_EXPIRES_MS)) return m;
        return null;
      };
      const m = await retrying("pulling a task", next, { signal, log });
      if (m === null) {
        const now = await findRun(kv, jsm, runId).catch(() => summary);
        if (now?.status === "finished") return end("finished");
        continue;
      }
      if (signal?.aborted) {
        m.nak();
        return end("aborted");
      }
      if ((await worker.serve(m, ackWaitMs)) === "aborted") return end("aborted");
    }
  } catch (e) {
    if (signal?.aborted && !(e instanceof RolloutWorkerError)) return end("aborted");
    throw e;
  }
}
