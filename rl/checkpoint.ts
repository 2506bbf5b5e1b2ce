/**
 * Training checkpoints, browser-clean part: the folder layout, the `state.json` format, and
 * restoring saved parameters into live GPU tensors. Reading and writing folders is in
 * `checkpoint_fs.ts`.
 *
 * A checkpoint is a folder `step-<N>/` holding
 * - `params.safetensors`: trainable parameters, F32, named as the trainer's parameter map;
 * - `optimizer.safetensors` (when an optimizer state was given): AdamW moments `m/<name>`,
 *   `v/<name>`, F32, each shaped like its parameter;
 * - `state.json`: step, optimizer step count, RNG state, data position, config snapshot,
 *   metrics summary, free-form trainer state, and the size of each tensor file.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { shapeString, type Tensor } from "../kernels/tensor.ts";
import type { AdamWState } from "./optimizer.ts";

/** `state.json` of a checkpoint folder. */
export const CHECKPOINT_STATE_FILE = "state.json";
/** Parameters of a checkpoint folder. */
export const CHECKPOINT_PARAMS_FILE = "params.safetensors";
/** Optimizer moments of a checkpoint folder. */
export const CHECKPOINT_OPTIMIZER_FILE = "optimizer.safetensors";
/** `format` field of `state.json`. */
export const CHECKPOINT_FORMAT = "webtune.checkpoint";
/** `version` field of `state.json` this code writes and reads. */
export const CHECKPOINT_VERSION = 1;

/** Kind of checkpoint problem. */
export type CheckpointErrorCode =
  | "invalid_input"
  | "corrupt"
  | "missing"
  | "mismatch"
  | "non_finite"
  | "io";

/** A checkpoint that cannot be written, read or restored; names the file or tensor. */
export class CheckpointError extends FieldError {
  override readonly name: string = "CheckpointError";
  /** Kind of problem. */
  readonly code: CheckpointErrorCode;
  /**
   * @param code Kind of problem.
   * @param path The file, folder or tensor concerned (`path`).
   * @param detail What was expected and what was found.
   */
  constructor(code: CheckpointErrorCode, path: string, detail: string) {
    super(path, `${path}: ${detail}`);
    this.code = code;
  }
}

/** A JSON value (no NaN/Infinity, no typed arrays, no class instances). */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/** The host-side, JSON part of a checkpoint. */
export interface CheckpointMeta {
  /** Training step the checkpoint was taken after. */
  readonly step: number;
  /** AdamW update count, or null without optimizer state. */
  readonly optimizerStepCount: number | null;
  /** The trainer's RNG state (e.g. sampler seed and counter). */
  readonly rng: JsonValue;
  /** Data position, e.g. `BatchIterator.state()`. */
  readonly dataPosition: JsonValue;
  /** Snapshot of the run's config. */
  readonly config: JsonValue;
  /** Metrics summary (last loss, tokens seen, …). */
  readonly metrics: JsonValue;
  /** Anything else the trainer needs to resume. */
  readonly trainerState: JsonValue;
}

/** Parsed `state.json`. */
export interface CheckpointStateJson extends CheckpointMeta {
  /** Parameter names and shapes, in save order. */
  readonly params: readonly { readonly name: string; readonly shape: readonly number[] }[];
  /** Byte size of each tensor file, for truncation checks. */
  readonly files: Readonly<Record<string, number>>;
  /** ISO time of writing (informational). */
  readonly savedAt: string;
}

/** Trainer-side fields of a checkpoint; all optional (null when absent). */
export interface CheckpointExtras {
  /** The trainer's RNG state. */
  readonly rng?: JsonValue;
  /** Data position (`BatchIterator.state()`). */
  readonly dataPosition?: JsonValue;
  /** Config snapshot. */
  readonly config?: JsonValue;
  /** Metrics summary. */
  readonly metrics?: JsonValue;
  /** Anything else, JSON only. */
  readonly trainerState?: JsonValue;
}

/** What a checkpoint save (`saveCheckpoint` in `checkpoint_fs.ts`, a `RunStore`) writes. */
export interface CheckpointInput extends CheckpointExtras {
  /** Training step (integer ≥ 0); the folder is `step-<step>`. */
  readonly step: number;
  /** Trainable parameters by name (f32), e.g. `LoraAdapter.parameters()`. */
  readonly params: ReadonlyMap<string, Tensor>;
  /** `AdamW.state()`, or null/absent. */
  readonly optimizerState?: AdamWState | null;
}

/** Options of a checkpoint save. */
export interface SaveCheckpointOptions {
  /** Complete checkpoints to keep, newest by step, the new one always included (default 3;
   * `Infinity` keeps all). */
  readonly keep?: number;
}

/**
 * Checks a checkpoint save before anything is written: step, `keep`, f32 parameters, JSON-only
 * trainer fields, optimizer moments matching the parameters.
 *
 * @param input What is about to be saved.
 * @param keep How many checkpoints the save keeps.
 * @throws {CheckpointError} `invalid_input` naming the offending field.
 * @example
 * ```ts
 * import { checkCheckpointInput } from "./checkpoint.ts";
 * try {
 *   checkCheckpointInput({ step: -1, params: new Map() }, 3);
 *   throw new Error("accepted");
 * } catch (e) {
 *   if ((e as Error).message !== "step: must be an integer >= 0, got -1") throw e;
 * }
 * ```
 */
export function checkCheckpointInput(input: CheckpointInput, keep: number): void {
  const bad = (field: string, detail: string) =>
    new CheckpointError("invalid_input", field, detail);
  if (!Number.isSafeInteger(input.step) || input.step < 0) {
    throw bad("step", `must be an integer >= 0, got ${input.step}`);
  }
  if (!(keep === Infinity || (Number.isSafeInteger(keep) && keep >= 1))) {
    throw bad("keep", `must be an integer >= 1 or Infinity, got ${keep}`);
  }
  if (input.params.size === 0) throw bad("params", "must hold at least one tensor");
  for (const [name, t] of input.params) {
    if (t.dtype !== "f32") throw bad(`params ${name}`, `must be f32, got ${t.dtype}`);
  }
  for (const field of ["rng", "dataPosition", "config", "metrics", "trainerState"] as const) {
    assertJsonValue(input[field] ?? null, field);
  }
  const opt = input.optimizerState;
  if (!opt) return;
  if (!Number.isSafeInteger(opt.stepCount) || opt.stepCount < 0) {
    throw bad("optimizerState.stepCount", `must be an integer >= 0, got ${opt.stepCount}`);
  }
  for (const [name, { m, v }] of opt.moments) {
    const p = input.params.get(name);
    if (!p) throw bad(`optimizerState ${name}`, "has moments but no parameter of that name");
    if (m.length !== p.numel || v.length !== p.numel) {
      throw bad(
        `optimizerState ${name}`,
        `moments must hold ${p.numel} values, got ${m.length} / ${v.length}`,
      );
    }
  }
}

/** What {@linkcode loadCheckpoint} (in `checkpoint_fs.ts`) returns. */
export interface LoadedCheckpoint extends CheckpointMeta {
  /** The checkpoint folder. */
  readonly path: string;
  /** Parameters by name, in save order: shape and f32 values. */
  readonly params: ReadonlyMap<string, HostTensor>;
  /** AdamW count and moments (for `AdamW.loadState`), or null when none was saved. */
  readonly optimizerState: AdamWState | null;
}

/** A tensor on the host. */
export interface HostTensor {
  /** Dimensions. */
  readonly shape: readonly number[];
  /** Values, row-major. */
  readonly data: Float32Array;
}

/**
 * Folder name of the checkpoint of a step.
 *
 * @param step Step (integer ≥ 0).
 * @returns `step-<N>`.
 */
export function checkpointDirName(step: number): string {
  return `step-${step}`;
}

/**
 * The step of a complete checkpoint folder name; null for anything else, temporary folders
 * (`step-<N>.tmp-…`, `step-<N>.old-…`) included.
 *
 * @param name A folder name.
 * @returns The step, or null.
 * @example
 * ```ts
 * import { parseCheckpointDirName } from "./checkpoint.ts";
 * console.log(parseCheckpointDirName("step-12"), parseCheckpointDirName("step-12.tmp-ab")); // 12 null
 * ```
 */
export function parseCheckpointDirName(name: string): number | null {
  const m = /^step-(0|[1-9]\d*)$/.exec(name);
  if (m === null) return null;
  const step = Number(m[1]);
  return Number.isSafeInteger(step) ? step : null;
}

/**
 * Which checkpoints pruning keeps: the newest `keep` steps, with `protect` (when saved) always
 * among them in place of the oldest kept one.
 *
 * @param steps The saved steps, ascending.
 * @param keep How many to keep (≥ 1).
 * @param protect A step never pruned (the one just saved), or null.
 * @returns The steps to keep.
 * @example
 * ```ts
 * import { checkpointStepsToKeep } from "./checkpoint.ts";
 * console.log([...checkpointStepsToKeep([1, 2, 3, 4], 2, 1)].sort()); // [1, 4]
 * ```
 */
export function checkpointStepsToKeep(
  steps: readonly number[],
  keep: number,
  protect: number | null = null,
): Set<number> {
  const kept = new Set(steps.slice(Math.max(0, steps.length - keep)));
  if (protect !== null && !kept.has(protect) && steps.includes(protect)) {
    kept.delete(Math.min(...kept));
    kept.add(protect);
  }
  return kept;
}

/**
 * Whether a folder name is a leftover of an interrupted save or replace.
 *
 * @param name A folder name.
 * @returns True for `step-<N>.tmp-<id>` and `step-<N>.old-<id>`.
 */
export function isTemporaryCheckpointDirName(name: string): boolean {
  return /^step-\d+\.(tmp|old)-[A-Za-z0-9-]+$/.test(name);
}

/**
 * Name of a moment tensor in `optimizer.safetensors`.
 *
 * @param which `m` (first moment) or `v` (second moment).
 * @param param Parameter name.
 * @returns `m/<name>` or `v/<name>`.
 */
export function momentTensorName(which: "m" | "v", param: string): string {
  return `${which}/${param}`;
}

/**
 * Throws unless a value survives `JSON.stringify` → `JSON.parse` unchanged: plain objects,
 * arrays, strings, booleans, null and finite numbers only.
 *
 * @param value The value.
 * @param path Where it sits, for the message (e.g. `rng`).
 * @throws {CheckpointError} `invalid_input` naming the offending path.
 */
export function assertJsonValue(value: unknown, path: string): asserts value is JsonValue {
  const bad = (what: string) =>
    new CheckpointError("invalid_input", path, `${what} cannot be stored in state.json`);
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw bad(`the number ${value}`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => assertJsonValue(v, `${path}[${i}]`));
    return;
  }
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw bad(`a ${value.constructor?.name ?? "class"} instance (use plain objects/arrays)`);
    }
    for (const [k, v] of Object.entries(value)) assertJsonValue(v, `${path}.${k}`);
    return;
  }
  throw bad(`a ${typeof value}`);
}

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/**
 * Parses and validates `state.json`.
 *
 * @param text The file's text.
 * @param file Its path, for messages.
 * @returns The parsed state.
 * @throws {CheckpointError} `corrupt` naming the file and the bad field.
 */
export function parseCheckpointState(text: string, file: string): CheckpointStateJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(
      "corrupt",
      file,
      `not valid JSON (${(e as Error).message}); the checkpoint is damaged`,
    );
  }
  const bad = (field: string, detail: string) =>
    new CheckpointError("corrupt", file, `field "${field}": ${detail}`);
  if (!isObject(json)) throw new CheckpointError("corrupt", file, "expected a JSON object");
  if (json.format !== CHECKPOINT_FORMAT) {
    throw bad("format", `expected "${CHECKPOINT_FORMAT}", got ${JSON.stringify(json.format)}`);
  }
  if (json.version !== CHECKPOINT_VERSION) {
    throw bad("version", `expected ${CHECKPOINT_VERSION}, got ${JSON.stringify(json.version)}`);
  }
  if (!isCount(json.step)) throw bad("step", `expected an integer >= 0, got ${json.step}`);
  const count = json.optimizerStepCount;
  if (count !== null && !isCount(count)) {
    throw bad("optimizerStepCount", `expected null or an integer >= 0, got ${count}`);
  }
  if (!Array.isArray(json.params)) throw bad("params", "expected a list of {name, shape}");
  const params = json.params.map((p, i) => {
    if (
      !isObject(p) || typeof p.name !== "string" || !Array.isArray(p.shape) ||
      !p.shape.every(isCount)
    ) {
      throw bad(`params[${i}]`, `expected {name, shape}, got ${JSON.stringify(p)}`);
    }
    return Object.freeze({ name: p.name, shape: Object.freeze([...p.shape as number[]]) });
  });
  if (!isObject(json.files) || !Object.values(json.files).every(isCount)) {
    throw bad("files", "expected an object of file name → byte size");
  }
  return Object.freeze({
    step: json.step,
    optimizerStepCount: count as number | null,
    rng: (json.rng ?? null) as JsonValue,
    dataPosition: (json.dataPosition ?? null) as JsonValue,
    config: (json.config ?? null) as JsonValue,
    metrics: (json.metrics ?? null) as JsonValue,
    trainerState: (json.trainerState ?? null) as JsonValue,
    params: Object.freeze(params),
    files: Object.freeze({ ...json.files as Record<string, number> }),
    savedAt: typeof json.savedAt === "string" ? json.savedAt : "",
  });
}

/**
 * Serialises `state.json` (fields in a fixed order, two-space indent).
 *
 * @param state The state.
 * @returns The file's text.
 */
export function formatCheckpointState(state: CheckpointStateJson): string {
  return JSON.stringify(
    {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      step: state.step,
      optimizerStepCount: state.optimizerStepCount,
      savedAt: state.savedAt,
      files: state.files,
      params: state.params,
      rng: state.rng,
      dataPosition: state.dataPosition,
      config: state.config,
      metrics: state.metrics,
      trainerState: state.trainerState,
    },
    null,
    2,
  ) + "\n";
}

/**
 * Uploads saved parameters into the live parameter tensors, all or nothing: every name must
 * be present on both sides with the same shape, and the targets must be f32.
 *
 * @param params The trainer's parameters (e.g. `LoraAdapter.parameters()`).
 * @param loaded A loaded checkpoint or its `params` map.
 * @throws {CheckpointError} `mismatch` naming the first missing, extra or mis-shaped tensor;
 *   nothing is written then.
 * @example
 * ```ts ignore
 * const ckpt = await loadCheckpoint((await latestCheckpoint("runs/sft"))!);
 * restoreParams(model.lora!.parameters(), ckpt);
 * optimizer.loadState(ckpt.optimizerState!);
 * ```
 */
export function restoreParams(
  params: ReadonlyMap<string, Tensor>,
  loaded: LoadedCheckpoint | ReadonlyMap<string, HostTensor>,
): void {
  const saved = loaded instanceof Map ? loaded : (loaded as LoadedCheckpoint).params;
  const where = loaded instanceof Map ? "checkpoint" : (loaded as LoadedCheckpoint).path;
  for (const [name, t] of params) {
    const s = saved.get(name);
    if (s === undefined) {
      throw new CheckpointError("mismatch", name, `parameter is not in the ${where}`);
    }
    if (t.dtype !== "f32") {
      throw new CheckpointError("mismatch", name, `target tensor must be f32, got ${t.dtype}`);
    }
    if (shapeString(s.shape) !== shapeString(t.shape) || s.data.length !== t.numel) {
      throw new CheckpointError(
        "mismatch",
        name,
        `saved shape ${shapeString(s.shape)} does not match the parameter's ${
          shapeString(t.shape)
        }`,
      );
    }
  }
  for (const name of saved.keys()) {
    if (!params.has(name)) {
      throw new CheckpointError(
        "mismatch",
        name,
        `the ${where} holds this tensor but the model has no such parameter`,
      );
    }
  }
  for (const [name, t] of params) t.write(saved.get(name)!.data);
}
