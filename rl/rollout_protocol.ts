/**
 * The wire protocol between a GRPO learner and its rollout workers over NATS JetStream: names,
 * message schemas and their field-by-field validation. Every message is JSON.
 *
 * Per run (`runId`, `[A-Za-z0-9_-]{1,64}`, made by the learner):
 * - `webtune.<runId>.tasks`: stream `webtune_<runId>_tasks` (work-queue retention) with the
 *   durable pull consumer `workers` (explicit ack): one {@linkcode RolloutTaskMessage} per task,
 *   published with the task id as JetStream message id (a re-publish is deduplicated).
 * - `webtune.<runId>.results.<workerId>`: stream `webtune_<runId>_results` (limits retention)
 *   that the learner reads with its durable consumer `learner`: one
 *   {@linkcode RolloutResultMessage} per sampled task.
 * - object store `webtune_<runId>`: `run.json` ({@linkcode RolloutRunInfo}) and `weights/v<N>`
 *   (safetensors, F32: the trainable parameters of policy version N).
 * - KV bucket `webtune_runs`: runId → {@linkcode RolloutRunSummary}, for discovery.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { LORA_TARGETS } from "../model/gemma3_weights.ts";
import type { LoraConfig } from "../model/lora.ts";
import type { Trainable } from "../model/trainable.ts";
import type { JsonValue } from "./checkpoint.ts";
import type { RolloutSampling, RolloutTask } from "./rollout_tasks.ts";

/** The protocol version in `run.json`. */
export const ROLLOUT_PROTOCOL_VERSION = 1;
/** The discovery KV bucket. */
export const ROLLOUT_RUNS_BUCKET = "webtune_runs";
/** The workers' durable consumer on the tasks stream. */
export const ROLLOUT_WORKERS_CONSUMER = "workers";
/** The learner's durable consumer on the results stream. */
export const ROLLOUT_LEARNER_CONSUMER = "learner";
/** The run description in the run's object store. */
export const ROLLOUT_RUN_FILE = "run.json";

/** A protocol message or `run.json` that does not follow the schema; `path` names the field. */
export class RolloutProtocolError extends FieldError {
  override readonly name: string = "RolloutProtocolError";
}

/** The NATS names of one run. */
export interface RolloutNames {
  /** The run id. */
  readonly runId: string;
  /** Subject of the tasks. */
  readonly tasksSubject: string;
  /** Stream of the tasks (work queue). */
  readonly tasksStream: string;
  /** Filter of every worker's results. */
  readonly resultsFilter: string;
  /** Stream of the results. */
  readonly resultsStream: string;
  /** The object store bucket (run.json, weights). */
  readonly bucket: string;
  /** @returns The subject a worker publishes its results on. */
  resultsSubject(workerId: string): string;
  /** @returns The object holding the trainable parameters of a policy version. */
  weightsObject(version: number): string;
}

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Checks a run or worker id: 1–64 of `A-Z a-z 0-9 _ -` (one NATS subject token).
 *
 * @param path The field's name for the error.
 * @param value The id.
 * @returns The id.
 * @throws {RolloutProtocolError} naming `path`.
 * @example
 * ```ts
 * import { checkRolloutId } from "./rollout_protocol.ts";
 * console.log(checkRolloutId("runId", "grpo-demo_1")); // "grpo-demo_1"
 * ```
 */
export function checkRolloutId(path: string, value: unknown): string {
  if (typeof value !== "string" || !ID_PATTERN.test(value)) {
    throw RolloutProtocolError.mustBe(path, "1-64 characters of A-Z a-z 0-9 _ -", value);
  }
  return value;
}

/**
 * A run id made from any text (e.g. a run folder's name): characters outside
 * `A-Z a-z 0-9 _ -` become `-`, cut to 64.
 *
 * @param text The text.
 * @returns A valid run id (`"run"` for empty text).
 * @example
 * ```ts
 * import { rolloutRunIdFrom } from "./rollout_protocol.ts";
 * console.log(rolloutRunIdFrom("runs/grpo 1b.v2")); // "runs-grpo-1b-v2"
 * ```
 */
export function rolloutRunIdFrom(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 64) || "run";
}

/**
 * The NATS names of a run.
 *
 * @param runId The run id.
 * @returns Subjects, streams and bucket.
 * @throws {RolloutProtocolError} for an invalid id.
 * @example
 * ```ts
 * import { rolloutNames } from "./rollout_protocol.ts";
 * const n = rolloutNames("r1");
 * console.log(n.tasksSubject, n.resultsSubject("w1"), n.weightsObject(3));
 * // webtune.r1.tasks webtune.r1.results.w1 weights/v3
 * ```
 */
export function rolloutNames(runId: string): RolloutNames {
  checkRolloutId("runId", runId);
  return Object.freeze({
    runId,
    tasksSubject: `webtune.${runId}.tasks`,
    tasksStream: `webtune_${runId}_tasks`,
    resultsFilter: `webtune.${runId}.results.>`,
    resultsStream: `webtune_${runId}_results`,
    bucket: `webtune_${runId}`,
    resultsSubject: (workerId: string) =>
      `webtune.${runId}.results.${checkRolloutId("workerId", workerId)}`,
    weightsObject: (version: number) => `weights/v${version}`,
  });
}

// ---- field checks -------------------------------------------------------------------------

type Obj = Record<string, unknown>;

function object(path: string, v: unknown): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw RolloutProtocolError.mustBe(path, "an object", v);
  }
  return v as Obj;
}

function int(path: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw RolloutProtocolError.mustBe(path, `an integer ${range}`, v);
  }
  return v as number;
}

function finite(path: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw RolloutProtocolError.mustBe(path, "a finite number", v);
  }
  return v;
}

function str(path: string, v: unknown): string {
  if (typeof v !== "string" || v === "") throw RolloutProtocolError.mustBe(path, "a string", v);
  return v;
}

function text(path: string, v: unknown): string {
  if (typeof v !== "string") throw RolloutProtocolError.mustBe(path, "a string", v);
  return v;
}

function list(path: string, v: unknown, length?: number): unknown[] {
  if (!Array.isArray(v)) throw RolloutProtocolError.mustBe(path, "an array", v);
  if (length !== undefined && v.length !== length) {
    throw new RolloutProtocolError(
      path,
      `${path} must hold ${length} entries, got ${v.length}`,
      { expected: `${length} entries`, got: v.length },
    );
  }
  return v;
}

function ints(path: string, v: unknown, min: number, max?: number): number[] {
  return list(path, v).map((x, i) => int(`${path}[${i}]`, x, min, max));
}

function parseJson(what: string, data: Uint8Array | string): unknown {
  try {
    return JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
  } catch (e) {
    throw new RolloutProtocolError(what, `${what} is not JSON: ${(e as Error).message}`);
  }
}

function encode(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

// ---- tasks --------------------------------------------------------------------------------

/** A task on the wire: the task and its run. */
export interface RolloutTaskMessage extends RolloutTask {
  /** The run the task belongs to. */
  readonly runId: string;
}

/**
 * Encodes a task message.
 *
 * @param runId The run.
 * @param task The task.
 * @returns JSON bytes.
 * @example
 * ```ts
 * import { encodeRolloutTask, parseRolloutTask } from "./rollout_protocol.ts";
 * const task = { id: "s0-r0-p0", promptIds: [2, 5], answer: "7", numGenerations: 2, seed: 1,
 *   version: 0, sampling: { maxNewTokens: 4, temperature: 1, topK: 0, topP: 1, eosIds: [1] } };
 * console.log(parseRolloutTask(encodeRolloutTask("r1", task)).runId); // "r1"
 * ```
 */
export function encodeRolloutTask(runId: string, task: RolloutTask): Uint8Array {
  return encode({ runId, ...task });
}

function parseSampling(path: string, v: unknown): RolloutSampling {
  const s = object(path, v);
  const topP = finite(`${path}.topP`, s.topP);
  if (!(topP > 0 && topP <= 1)) {
    throw RolloutProtocolError.mustBe(`${path}.topP`, "in (0, 1]", topP);
  }
  const temperature = finite(`${path}.temperature`, s.temperature);
  if (temperature < 0) {
    throw RolloutProtocolError.mustBe(`${path}.temperature`, ">= 0", temperature);
  }
  return Object.freeze({
    maxNewTokens: int(`${path}.maxNewTokens`, s.maxNewTokens, 1),
    temperature,
    topK: int(`${path}.topK`, s.topK, 0),
    topP,
    eosIds: Object.freeze(ints(`${path}.eosIds`, s.eosIds, 0)),
  });
}

/**
 * Parses and validates a task message.
 *
 * @param data The message's bytes (or text).
 * @returns The task with its run id (frozen).
 * @throws {RolloutProtocolError} naming the first bad field (`task.sampling.topP`, …).
 * @example
 * ```ts
 * import { parseRolloutTask, RolloutProtocolError } from "./rollout_protocol.ts";
 * try {
 *   parseRolloutTask('{"runId": "r1", "id": "t"}');
 * } catch (e) {
 *   console.log((e as RolloutProtocolError).path); // "task.promptIds"
 * }
 * ```
 */
export function parseRolloutTask(data: Uint8Array | string): RolloutTaskMessage {
  const t = object("task", parseJson("task", data));
  const runId = checkRolloutId("task.runId", t.runId);
  const id = str("task.id", t.id);
  const promptIds = ints("task.promptIds", t.promptIds, 0);
  if (promptIds.length === 0) throw RolloutProtocolError.mustBe("task.promptIds", "non-empty", []);
  return Object.freeze({
    runId,
    id,
    promptIds: Object.freeze(promptIds),
    answer: text("task.answer", t.answer),
    numGenerations: int("task.numGenerations", t.numGenerations, 1),
    sampling: parseSampling("task.sampling", t.sampling),
    seed: int("task.seed", t.seed, 0, 0xffffffff),
    version: int("task.version", t.version, 0),
  });
}

// ---- results ------------------------------------------------------------------------------

/** A worker's completions of one task. */
export interface RolloutResultMessage {
  /** The run. */
  readonly runId: string;
  /** The task's id. */
  readonly id: string;
  /** The policy version the worker sampled with. */
  readonly version: number;
  /** The worker. */
  readonly workerId: string;
  /** G completions (ids). */
  readonly completions: readonly (readonly number[])[];
  /** The sampler's log-prob of each completion token. */
  readonly rolloutLogps: readonly (readonly number[])[];
  /** The worker's total reward of each completion (the learner checks them). */
  readonly rewards: readonly number[];
  /** How many times the broker had delivered the task (1: first time). */
  readonly deliveryCount: number;
}

/**
 * Encodes a result message.
 *
 * @param result The result.
 * @returns JSON bytes.
 * @example
 * ```ts
 * import { encodeRolloutResult, parseRolloutResult } from "./rollout_protocol.ts";
 * const bytes = encodeRolloutResult({ runId: "r1", id: "t", version: 0, workerId: "w",
 *   completions: [[5, 1]], rolloutLogps: [[-0.5, -0.1]], rewards: [1], deliveryCount: 1 });
 * console.log(parseRolloutResult(bytes, 8).completions); // [[5, 1]]
 * ```
 */
export function encodeRolloutResult(result: RolloutResultMessage): Uint8Array {
  return encode(result);
}

/**
 * Parses and validates a result message: ids in `[0, vocabSize)`, log-probs finite and ≤ 0 with
 * one per token, one finite reward per completion.
 *
 * @param data The message's bytes (or text).
 * @param vocabSize The model's vocabulary size.
 * @returns The result (frozen).
 * @throws {RolloutProtocolError} naming the first bad field (`result.completions[1][3]`, …).
 * @example
 * ```ts
 * import { parseRolloutResult, RolloutProtocolError } from "./rollout_protocol.ts";
 * try {
 *   parseRolloutResult('{"runId": "r1", "id": "t", "version": 0, "workerId": "w", ' +
 *     '"completions": [[9]], "rolloutLogps": [[-1]], "rewards": [0], "deliveryCount": 1}', 8);
 * } catch (e) {
 *   console.log((e as RolloutProtocolError).path); // "result.completions[0][0]"
 * }
 * ```
 */
export function parseRolloutResult(
  data: Uint8Array | string,
  vocabSize: number,
): RolloutResultMessage {
  const r = object("result", parseJson("result", data));
  const runId = checkRolloutId("result.runId", r.runId);
  const id = str("result.id", r.id);
  const version = int("result.version", r.version, 0);
  const workerId = checkRolloutId("result.workerId", r.workerId);
  const completions = list("result.completions", r.completions).map((row, i) =>
    Object.freeze(ints(`result.completions[${i}]`, row, 0, vocabSize - 1))
  );
  const rolloutLogps = list("result.rolloutLogps", r.rolloutLogps, completions.length).map(
    (row, i) =>
      Object.freeze(
        list(`result.rolloutLogps[${i}]`, row, completions[i].length).map((x, j) => {
          const path = `result.rolloutLogps[${i}][${j}]`;
          if (finite(path, x) > 0) throw RolloutProtocolError.mustBe(path, "<= 0", x);
          return x as number;
        }),
      ),
  );
  const rewards = list("result.rewards", r.rewards, completions.length).map((x, i) =>
    finite(`result.rewards[${i}]`, x)
  );
  return Object.freeze({
    runId,
    id,
    version,
    workerId,
    completions: Object.freeze(completions),
    rolloutLogps: Object.freeze(rolloutLogps),
    rewards: Object.freeze(rewards),
    deliveryCount: int("result.deliveryCount", r.deliveryCount, 1),
  });
}

// ---- run.json -----------------------------------------------------------------------------

/** A trainable parameter's name and shape. */
export interface RolloutParamShape {
  /** Parameter name (PEFT names for LoRA, HF names for full fine-tuning). */
  readonly name: string;
  /** Its shape. */
  readonly shape: readonly number[];
}

/** `run.json`: everything a worker needs to join a run. */
export interface RolloutRunInfo {
  /** Always `"webtune.rollout_run"`. */
  readonly format: "webtune.rollout_run";
  /** {@linkcode ROLLOUT_PROTOCOL_VERSION}. */
  readonly protocol: number;
  /** The run id. */
  readonly runId: string;
  /** The base model's fingerprint (`modelFingerprint` / `demoModelFingerprint`). */
  readonly fingerprint: string;
  /** The model's vocabulary size (completion ids lie in `[0, vocabSize)`). */
  readonly vocabSize: number;
  /** What the learner trains (the weights published per version), or null. */
  readonly trainable: {
    readonly mode: "lora" | "full";
    readonly params: readonly RolloutParamShape[];
  } | null;
  /** The LoRA adapter's settings when the run trains LoRA, else null. */
  readonly lora: LoraConfig | null;
  /** How to build the base model, for the CLI's loader (the demo: model config + vocab map). */
  readonly base: JsonValue;
  /** ISO time the run was announced. */
  readonly createdAt: string;
}

/** What {@linkcode rolloutRunInfo} takes. */
export interface RolloutRunInfoInput {
  /** The run id. */
  readonly runId: string;
  /** The base model's fingerprint. */
  readonly fingerprint: string;
  /** The model's vocabulary size. */
  readonly vocabSize: number;
  /** The trained parameters (names and shapes are recorded), or null. */
  readonly trainable: Pick<Trainable, "mode" | "params"> | null;
  /** LoRA settings (LoRA runs). */
  readonly lora?: LoraConfig | null;
  /** The CLI's description of the base model (default null). */
  readonly base?: JsonValue;
}

/**
 * Builds and validates a run's `run.json`.
 *
 * @param input Run id, fingerprint, vocabulary size, trainable parameters, LoRA, base.
 * @returns The frozen run info.
 * @throws {RolloutProtocolError} naming the bad field.
 * @example
 * ```ts
 * import { rolloutRunInfo } from "./rollout_protocol.ts";
 * const info = rolloutRunInfo({ runId: "r1", fingerprint: "ab".repeat(32), vocabSize: 8,
 *   trainable: null, base: { model: "demo" } });
 * console.log(info.format, info.protocol); // "webtune.rollout_run" 1
 * ```
 */
export function rolloutRunInfo(input: RolloutRunInfoInput): RolloutRunInfo {
  const t = input.trainable;
  return parseRolloutRunInfo(JSON.stringify({
    format: "webtune.rollout_run",
    protocol: ROLLOUT_PROTOCOL_VERSION,
    runId: input.runId,
    fingerprint: input.fingerprint,
    vocabSize: input.vocabSize,
    trainable: t && {
      mode: t.mode,
      params: [...t.params].map(([name, tensor]) => ({ name, shape: tensor.shape })),
    },
    lora: input.lora ?? null,
    base: input.base ?? null,
    createdAt: new Date().toISOString(),
  }));
}

function parseLora(v: unknown): LoraConfig | null {
  if (v === null) return null;
  const l = object("run.lora", v);
  const rank = int("run.lora.rank", l.rank, 1);
  const alpha = finite("run.lora.alpha", l.alpha);
  if (alpha <= 0) throw RolloutProtocolError.mustBe("run.lora.alpha", "> 0", alpha);
  const targets = list("run.lora.targets", l.targets).map((x, i) => {
    if (!(LORA_TARGETS as readonly unknown[]).includes(x)) {
      throw RolloutProtocolError.mustBe(`run.lora.targets[${i}]`, LORA_TARGETS.join(" | "), x);
    }
    return x as LoraConfig["targets"][number];
  });
  return Object.freeze({ rank, alpha, targets: Object.freeze(targets) });
}

/**
 * Parses and validates `run.json`.
 *
 * @param data Its bytes (or text).
 * @returns The run info (frozen).
 * @throws {RolloutProtocolError} naming the bad field (`run.trainable.params[3].shape`, …).
 * @example
 * ```ts
 * import { parseRolloutRunInfo, RolloutProtocolError } from "./rollout_protocol.ts";
 * try {
 *   parseRolloutRunInfo('{"format": "webtune.rollout_run", "protocol": 2}');
 * } catch (e) {
 *   console.log((e as RolloutProtocolError).path); // "run.protocol"
 * }
 * ```
 */
export function parseRolloutRunInfo(data: Uint8Array | string): RolloutRunInfo {
  const r = object("run", parseJson(ROLLOUT_RUN_FILE, data));
  if (r.format !== "webtune.rollout_run") {
    throw RolloutProtocolError.mustBe("run.format", '"webtune.rollout_run"', r.format);
  }
  if (r.protocol !== ROLLOUT_PROTOCOL_VERSION) {
    throw RolloutProtocolError.mustBe("run.protocol", String(ROLLOUT_PROTOCOL_VERSION), r.protocol);
  }
  const fingerprint = str("run.fingerprint", r.fingerprint);
  let trainable: RolloutRunInfo["trainable"] = null;
  if (r.trainable !== null) {
    const t = object("run.trainable", r.trainable);
    if (t.mode !== "lora" && t.mode !== "full") {
      throw RolloutProtocolError.mustBe("run.trainable.mode", '"lora" or "full"', t.mode);
    }
    const params = list("run.trainable.params", t.params).map((p, i) => {
      const o = object(`run.trainable.params[${i}]`, p);
      return Object.freeze({
        name: str(`run.trainable.params[${i}].name`, o.name),
        shape: Object.freeze(ints(`run.trainable.params[${i}].shape`, o.shape, 0)),
      });
    });
    trainable = Object.freeze({ mode: t.mode, params: Object.freeze(params) });
  }
  return Object.freeze({
    format: "webtune.rollout_run",
    protocol: ROLLOUT_PROTOCOL_VERSION,
    runId: checkRolloutId("run.runId", r.runId),
    fingerprint,
    vocabSize: int("run.vocabSize", r.vocabSize, 1),
    trainable,
    lora: parseLora(r.lora ?? null),
    base: (r.base ?? null) as JsonValue,
    createdAt: str("run.createdAt", r.createdAt),
  });
}

/**
 * Encodes `run.json`.
 *
 * @param info The run info.
 * @returns JSON bytes (indented).
 * @example
 * ```ts
 * import { encodeRolloutRunInfo, parseRolloutRunInfo, rolloutRunInfo } from "./rollout_protocol.ts";
 * const info = rolloutRunInfo({ runId: "r1", fingerprint: "f", vocabSize: 8, trainable: null });
 * console.log(parseRolloutRunInfo(encodeRolloutRunInfo(info)).runId); // "r1"
 * ```
 */
export function encodeRolloutRunInfo(info: RolloutRunInfo): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(info, null, 2) + "\n");
}

// ---- discovery ----------------------------------------------------------------------------

/** A run's entry in the discovery bucket. */
export interface RolloutRunSummary {
  /** The run id. */
  readonly runId: string;
  /** The base model's fingerprint. */
  readonly fingerprint: string;
  /** `running`, or `finished` (workers of the run stop). */
  readonly status: "running" | "finished";
  /** The newest policy version the learner asked for. */
  readonly version: number;
  /** ISO time of the announcement. */
  readonly createdAt: string;
  /** ISO time of the learner's latest update. */
  readonly updatedAt: string;
}

/**
 * Parses a discovery entry.
 *
 * @param data Its bytes (or text).
 * @returns The summary (frozen).
 * @throws {RolloutProtocolError} naming the bad field.
 * @example
 * ```ts
 * import { parseRolloutRunSummary } from "./rollout_protocol.ts";
 * const s = parseRolloutRunSummary(JSON.stringify({ runId: "r1", fingerprint: "f",
 *   status: "running", version: 3, createdAt: "2025-01-01T00:00:00Z",
 *   updatedAt: "2025-01-01T00:01:00Z" }));
 * console.log(s.version); // 3
 * ```
 */
export function parseRolloutRunSummary(data: Uint8Array | string): RolloutRunSummary {
  const s = object("runSummary", parseJson("runSummary", data));
  if (s.status !== "running" && s.status !== "finished") {
    throw RolloutProtocolError.mustBe("runSummary.status", '"running" or "finished"', s.status);
  }
  return Object.freeze({
    runId: checkRolloutId("runSummary.runId", s.runId),
    fingerprint: str("runSummary.fingerprint", s.fingerprint),
    status: s.status,
    version: int("runSummary.version", s.version, 0),
    createdAt: str("runSummary.createdAt", s.createdAt),
    updatedAt: str("runSummary.updatedAt", s.updatedAt),
  });
}

/**
 * Encodes a discovery entry.
 *
 * @param summary The summary.
 * @returns JSON bytes.
 * @example
 * ```ts
 * import { encodeRolloutRunSummary } from "./rollout_protocol.ts";
 * const bytes = encodeRolloutRunSummary({ runId: "r1", fingerprint: "f", status: "running",
 *   version: 0, createdAt: "t0", updatedAt: "t1" });
 * console.log(bytes.length > 0); // true
 * ```
 */
export function encodeRolloutRunSummary(summary: RolloutRunSummary): Uint8Array {
  return encode(summary);
}
