/**
 * JetStream plumbing shared by the rollout broker (learner) and worker: the run's streams and
 * consumers made idempotently, retries across broker outages, abortable sleeps.
 *
 * @module
 */

import { ClosedConnectionError, nanos } from "@nats-io/nats-core";
import {
  AckPolicy,
  type Consumer,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type JsMsg,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import type { RolloutNames } from "./rollout_protocol.ts";
import { ROLLOUT_LEARNER_CONSUMER, ROLLOUT_WORKERS_CONSUMER } from "./rollout_protocol.ts";

/** Deliveries of one task before the broker stops handing it out (the learner then samples it). */
const MAX_TASK_DELIVERIES = 10;

/**
 * Waits `ms` or until `signal` aborts (then rejects with its reason).
 *
 * @param ms Milliseconds.
 * @param signal Optional abort signal.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Pulls up to `max` messages, waiting at most `expires` ms (≥ 1000) for them. Should the
 * client never end the pull (a lost heartbeat), it is cut off 5 s after it expired.
 *
 * @param consumer A pull consumer.
 * @param max Messages at most.
 * @param expires How long the server holds the request.
 */
export async function* pullMessages(
  consumer: Consumer,
  max: number,
  expires: number,
): AsyncGenerator<JsMsg> {
  // subtle: whole milliseconds: the client derives idle_heartbeat (ns) from it, and the server
  // refuses a fractional duration ("cannot unmarshal number … into … time.duration").
  const batch = await consumer.fetch({ max_messages: max, expires: Math.round(expires) });
  const watchdog = setTimeout(() => batch.stop(), expires + 5000);
  try {
    yield* batch;
  } finally {
    clearTimeout(watchdog);
    batch.stop();
  }
}

/** Options of {@linkcode retrying}. */
export interface RetryOptions {
  /** Stops retrying (rejecting with its reason). */
  readonly signal?: AbortSignal;
  /** `performance.now()` after which the last error is thrown (default: retry forever). */
  readonly deadline?: number;
  /** Told about each failure once per outage. */
  readonly log?: (message: string) => void;
}

/**
 * Runs a broker operation, retrying transient failures (timeouts, a broker restarting) every
 * 250 ms to 2 s. A closed connection and an abort end the retries at once.
 *
 * @param what The operation, for the log.
 * @param op The operation.
 * @param options Signal, deadline, log.
 * @returns What `op` returned.
 */
export async function retrying<T>(
  what: string,
  op: () => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  let wait = 250;
  let logged = false;
  for (;;) {
    if (options.signal?.aborted) throw options.signal.reason;
    try {
      const out = await op();
      if (logged) options.log?.(`${what}: broker reachable again`);
      return out;
    } catch (e) {
      if (e instanceof ClosedConnectionError || options.signal?.aborted) throw e;
      if (options.deadline !== undefined && performance.now() + wait > options.deadline) throw e;
      if (!logged) options.log?.(`${what} failed (${(e as Error).message}); retrying`);
      logged = true;
      await sleep(wait, options.signal);
      wait = Math.min(2 * wait, 2000);
    }
  }
}

/**
 * Makes the run's two streams and their durable consumers, or updates the workers' ack wait
 * of existing ones (a resumed run).
 *
 * @param jsm The JetStream manager.
 * @param names The run's names.
 * @param ackWaitMs How long a worker may hold a task without acking or `working()`.
 */
export async function ensureRolloutStreams(
  jsm: JetStreamManager,
  names: RolloutNames,
  ackWaitMs: number,
): Promise<void> {
  await ensureStream(jsm, names.tasksStream, {
    subjects: [names.tasksSubject],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
  });
  await ensureStream(jsm, names.resultsStream, {
    subjects: [names.resultsFilter],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(7 * 24 * 3600 * 1000),
  });
  await ensureConsumer(jsm, names.tasksStream, ROLLOUT_WORKERS_CONSUMER, {
    ack_wait: nanos(ackWaitMs),
    max_deliver: MAX_TASK_DELIVERIES,
  });
  // The learner acks each result as it reads it: a short ack wait only matters after a learner
  // was killed between fetching and acking, when the resumed one gets those results again.
  await ensureConsumer(jsm, names.resultsStream, ROLLOUT_LEARNER_CONSUMER, {
    ack_wait: nanos(3_000),
    max_deliver: -1,
  });
}

/**
 * Whether a JetStream API call failed with an error code.
 *
 * @param e What it threw.
 * @param code A `JetStreamApiCodes` value.
 * @returns True for that code.
 */
export function isApiError(e: unknown, code: number): boolean {
  return e instanceof JetStreamApiError && e.code === code;
}

async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  config: Partial<StreamConfig>,
): Promise<void> {
  try {
    await jsm.streams.info(name);
  } catch (e) {
    if (!isApiError(e, JetStreamApiCodes.StreamNotFound)) throw e;
    await jsm.streams.add({ name, ...config });
  }
}

async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  config: { ack_wait: number; max_deliver: number },
): Promise<void> {
  try {
    const info = await jsm.consumers.info(stream, durable);
    if (
      info.config.ack_wait !== config.ack_wait || info.config.max_deliver !== config.max_deliver
    ) {
      await jsm.consumers.update(stream, durable, config);
    }
  } catch (e) {
    if (!isApiError(e, JetStreamApiCodes.ConsumerNotFound)) throw e;
    await jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ...config,
    });
  }
}
