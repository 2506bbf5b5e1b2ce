/**
 * The rollout broker for the command line: `--broker` flags (credentials also from
 * `WEBTUNE_BROKER_USER` / `WEBTUNE_BROKER_PASSWORD`, never saved with a run), the learner's
 * executor for `deno task train --broker` and the base model a `deno task worker` builds from
 * the run's `run.json` — the demo's model config and vocabulary, or its own `--model` folder.
 *
 * @module
 */

import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Gpu } from "../kernels/gpu.ts";
import { loadGemma3Config } from "../model/config_fs.ts";
import { demoModelFingerprint, modelFingerprint } from "../model/fingerprint.ts";

import { loadGemma3 } from "../model/gemma3_fs.ts";

import { loraConfig } from "../model/lora.ts";
import { loadModelCodec } from "../model/model_dir_fs.ts";
import { openCheckpoint } from "../model/safetensors_fs.ts";

import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";

import { BrokerRollout } from "../rl/rollout_broker.ts";
import { connectRolloutBroker } from "../rl/rollout_connect.ts";
import { type RolloutRunInfo, rolloutRunInfo } from "../rl/rollout_protocol.ts";
import type {
  RolloutExecutor,
  RolloutPolicy,
  RolloutTask,
  RolloutTaskResult,
} from "../rl/rollout_tasks.ts";
import { type RolloutWorkerBase, RolloutWorkerError } from "../rl/rollout_worker.ts";
import { demoModelConfig, demoVocabMap } from "../rl/presets.ts";
import {
  demoRolloutBase,
  type RolloutBaseDescription,
  rolloutBaseDescription,
  rolloutWorkerBase,
} from "../rl/rollout_base.ts";

import { DEMO_SOURCE, type TrainConfig } from "../rl/train_config.ts";
import { UsageError } from "./_cli.ts";

/** Flags shared by the learner and the worker. */
export const BROKER_FLAGS = {
  broker: ["string", "URL", "NATS server with JetStream, e.g. nats://127.0.0.1:4222"],
  "broker-user": ["string", "NAME", "NATS user (or WEBTUNE_BROKER_USER)"],
  "broker-password": ["string", "TEXT", "NATS password (or WEBTUNE_BROKER_PASSWORD)"],
} as const;

/** The environment variables the broker credentials may come from. */
export interface BrokerEnv {
  /** The NATS user. */
  readonly WEBTUNE_BROKER_USER?: string;
  /** The NATS password. */
  readonly WEBTUNE_BROKER_PASSWORD?: string;
}

/** Where and how to reach the broker. */
export interface BrokerAddress {
  /** `nats://host:port`. */
  readonly url: string;
  /** User, or null. */
  readonly user: string | null;
  /** Password, or null. */
  readonly password: string | null;
}

/**
 * The broker address from the flags, credentials falling back to the environment.
 *
 * @param flags `broker`, `brokerUser`, `brokerPassword`.
 * @param env Environment variables.
 * @returns The address, or null without `--broker`.
 * @throws {UsageError} For a malformed URL, or credentials without `--broker`.
 */
export function brokerAddress(
  flags: { broker?: string; brokerUser?: string; brokerPassword?: string },
  env: BrokerEnv,
): BrokerAddress | null {
  if (flags.broker === undefined) {
    if (flags.brokerUser !== undefined || flags.brokerPassword !== undefined) {
      throw new UsageError("--broker-user / --broker-password need --broker URL");
    }
    return null;
  }
  if (!/^(nats|tls):\/\/[^/\s]+$/.test(flags.broker)) {
    throw new UsageError(`--broker must look like nats://host:port, got ${flags.broker}`);
  }
  return Object.freeze({
    url: flags.broker,
    user: flags.brokerUser ?? env.WEBTUNE_BROKER_USER ?? null,
    password: flags.brokerPassword ?? env.WEBTUNE_BROKER_PASSWORD ?? null,
  });
}

/**
 * Connects over TCP; the connection reconnects without limit (a restarted broker is picked up).
 *
 * @param address The broker.
 * @param name The client's name in the server's monitoring.
 * @returns The connection.
 */
export async function connectBroker(address: BrokerAddress, name: string): Promise<NatsConnection> {
  // transport-node drops its socket listeners when a connection closes, so a `read ECONNRESET`
  // its socket reports a moment later (a broker going away) would be an uncaught error here;
  // the client has already handled the close and reconnects on its own.
  globalThis.addEventListener("error", (e) => {
    if ((e.error as { code?: unknown } | null)?.code === "ECONNRESET") e.preventDefault();
  });
  return await connectRolloutBroker(connect, address.url, {
    name,
    ...(address.user !== null ? { user: address.user } : {}),
    ...(address.password !== null ? { pass: address.password } : {}),
  });
}

/** The learner's description of its base model, and its fingerprint. */
async function learnerBase(
  config: TrainConfig,
): Promise<{ base: RolloutBaseDescription; fingerprint: string; vocabSize: number }> {
  if (config.model.path === DEMO_SOURCE) {
    const vocab = demoVocabMap(config.demoData, await loadDefaultTokenizer());
    const modelConfig = demoModelConfig(config.model.demo!, vocab);
    return {
      base: rolloutBaseDescription(config, vocab),
      fingerprint: await demoModelFingerprint(modelConfig, vocab.toJSON()),
      vocabSize: modelConfig.vocabSize,
    };
  }
  const dir = config.model.path!;
  return {
    base: rolloutBaseDescription(config, null),
    fingerprint: await folderFingerprint(dir),
    vocabSize: (await loadGemma3Config(dir)).vocabSize,
  };
}

async function folderFingerprint(dir: string): Promise<string> {
  const checkpoint = await openCheckpoint(dir);
  try {
    return await modelFingerprint(await loadGemma3Config(dir), checkpoint);
  } finally {
    checkpoint.close();
  }
}

/** Options of {@linkcode learnerRollout}. */
export interface LearnerRolloutOptions {
  /** The broker connection. */
  readonly connection: NatsConnection;
  /** The run's config. */
  readonly config: TrainConfig;
  /** The run id (subjects, buckets): e.g. the run folder's name. */
  readonly runId: string;
  /** How long to wait for results before sampling the missing tasks locally (ms). */
  readonly resultTimeoutMs: number;
  /** How long a worker may hold a task silently before it is handed to another (ms). */
  readonly ackWaitMs?: number;
  /** Problems and waits, one line each. */
  readonly log: (line: string) => void;
}

/** The learner's executor: announces the run at the first GRPO step, when the trained
 * parameters exist, then hands each step's tasks to the workers. */
export interface LearnerRollout extends RolloutExecutor {
  /** Stops announcing the run (its workers finish) and closes the connection. */
  close(): Promise<void>;
}

/**
 * The executor of `deno task train --broker`.
 *
 * @param options Connection, config, run id, timeouts, log.
 * @returns The executor.
 */
export function learnerRollout(options: LearnerRolloutOptions): LearnerRollout {
  let broker: Promise<BrokerRollout> | null = null;
  const open = async (policy: RolloutPolicy): Promise<BrokerRollout> => {
    const { base, fingerprint, vocabSize } = await learnerBase(options.config);
    const info = rolloutRunInfo({
      runId: options.runId,
      fingerprint,
      vocabSize,
      trainable: policy.trainable,
      lora: options.config.lora ? loraConfig(options.config.lora) : null,
      base: JSON.parse(JSON.stringify(base)),
    });
    options.log(`rollout broker: run ${options.runId} announced; waiting for workers`);
    return await BrokerRollout.create({
      connection: options.connection,
      runInfo: info,
      resultTimeoutMs: options.resultTimeoutMs,
      ackWaitMs: options.ackWaitMs,
      maxStaleness: options.config.grpo.maxStaleness,
      log: options.log,
    });
  };
  return {
    async run(tasks: readonly RolloutTask[], policy: RolloutPolicy): Promise<RolloutTaskResult[]> {
      broker ??= open(policy);
      return await (await broker).run(tasks, policy);
    },
    async prefetch(tasks: readonly RolloutTask[], policy: RolloutPolicy): Promise<void> {
      broker ??= open(policy);
      await (await broker).prefetch(tasks, policy);
    },
    async close() {
      if (broker) {
        const b = await broker.catch(() => null);
        if (b) {
          await b.finish().catch(() => {});
          const s = b.stats();
          const rejected = Object.entries(s.rejected).filter(([, n]) => n > 0)
            .map(([why, n]) => `${why} ${n}`).join(", ") || "none";
          options.log(
            `rollout broker: ${s.remoteTasks} tasks sampled by workers, ${s.localTasks} locally; ` +
              `results rejected: ${rejected}; redeliveries ${s.redeliveries}`,
          );
        }
      }
      await options.connection.close();
    },
  };
}

/**
 * The base model a worker serves a run with: the demo's (from `run.json`), or `--model DIR`
 * (its fingerprint must be the learner's), with the run's LoRA adapter attached, and the
 * run's scoring.
 *
 * @param info The run's `run.json`.
 * @param options `model`: the worker's model folder (required unless the run is the demo);
 *   `gpu`.
 * @returns The base for `runRolloutWorker`.
 * @throws {UsageError} When a non-demo run has no `--model`.
 */
export async function workerBase(
  info: RolloutRunInfo,
  options: { readonly model: string | null; readonly gpu: Gpu },
): Promise<RolloutWorkerBase> {
  const base = info.base as unknown as RolloutBaseDescription;
  if (options.model === null) {
    if (base.model !== "demo") {
      throw new UsageError(
        `run ${info.runId} trains a model folder: start the worker with --model DIR (the same ` +
          "base model as the learner's)",
      );
    }
    return await demoRolloutBase(info, {
      gpu: options.gpu,
      tokenizer: await loadDefaultTokenizer(),
    });
  }
  const fingerprint = await folderFingerprint(options.model);
  // Before the model is loaded: a foreign model is refused at once.
  if (fingerprint !== info.fingerprint) {
    throw new RolloutWorkerError(
      "model",
      `this worker's base model ${options.model} (fingerprint ${fingerprint.slice(0, 12)}…) ` +
        `differs from the learner's (${info.fingerprint.slice(0, 12)}…${
          base.model === "demo" ? ", the demo model: start the worker without --model" : ""
        }); give --model the learner's base model folder`,
    );
  }
  const model = await loadGemma3(options.model, { gpu: options.gpu });
  const { codec } = await loadModelCodec(options.model);
  return rolloutWorkerBase(info, model, codec, fingerprint);
}
