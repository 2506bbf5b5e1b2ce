/**
 * Base-model fingerprints: a SHA-256 (WebCrypto, any runtime) that names a model's config and
 * weights, so a rollout worker can prove it samples from the same base model as the learner
 * before it takes any task.
 *
 * A fingerprint hashes the text
 * ```
 * webtune.fingerprint.v1
 * <config as canonical JSON (sorted keys)>
 * <name> <dtype> [<shape>] <sha256 of the tensor's bytes>     (one line per tensor, by name)
 * ```
 * A tensor over 64 MiB is hashed as the SHA-256 of its 64 MiB chunks' digests, so no more than
 * one chunk is in memory. The demo model (trained from scratch, every weight trained, so a worker
 * receives all of them) is named by its config and vocabulary map instead
 * ({@linkcode demoModelFingerprint}).
 *
 * @module
 */

import type { Gemma3Config } from "./config.ts";
import type { TensorStore } from "./safetensors.ts";
import type { VocabMapJson } from "./vocab_map.ts";

/** Bytes hashed at once; larger tensors are hashed chunk by chunk. */
const CHUNK_BYTES = 64 * 1024 * 1024;

async function sha256(bytes: Uint8Array | string): Promise<Uint8Array> {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * JSON with object keys sorted at every level (arrays keep their order), so equal values give
 * equal text whatever order their keys were built in.
 *
 * @param value A JSON value.
 * @returns Its canonical JSON text.
 * @example
 * ```ts
 * import { canonicalJson } from "./fingerprint.ts";
 * console.log(canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] })); // {"a":[2,{"c":4,"d":3}],"b":1}
 * ```
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

async function tensorDigest(tensors: TensorStore, name: string): Promise<string> {
  const info = tensors.info(name);
  if (info.byteLength <= CHUNK_BYTES) return hex(await sha256(await tensors.read(name)));
  const digests: Uint8Array[] = [];
  for (let start = 0; start < info.byteLength; start += CHUNK_BYTES) {
    const chunk = new Uint8Array(Math.min(CHUNK_BYTES, info.byteLength - start));
    digests.push(await sha256(await tensors.readRange(name, start, chunk)));
  }
  const all = new Uint8Array(digests.length * 32);
  digests.forEach((d, i) => all.set(d, i * 32));
  return hex(await sha256(all));
}

/**
 * The fingerprint of a model: its config and every tensor's name, dtype, shape and bytes, read
 * one tensor at a time.
 *
 * @param config The model's config.
 * @param tensors Its weights (a safetensors file or a sharded checkpoint).
 * @returns 64 hex digits.
 * @example
 * ```ts
 * import { bytesReader } from "./byte_readers.ts";
 * import { gemma3_1b } from "./config.ts";
 * import { modelFingerprint } from "./fingerprint.ts";
 * import { openSafetensorsFrom } from "./safetensors.ts";
 * import { encodeSafetensors } from "./safetensors_writer.ts";
 * const bytes = encodeSafetensors([{ name: "w", dtype: "F32", shape: [2], data: [1, 2] }]);
 * const file = await openSafetensorsFrom("w.safetensors", bytesReader(bytes));
 * console.log((await modelFingerprint(gemma3_1b(), file)).length); // 64
 * file.close();
 * ```
 */
export async function modelFingerprint(
  config: Gemma3Config,
  tensors: TensorStore,
): Promise<string> {
  const lines = ["webtune.fingerprint.v1", canonicalJson(config)];
  for (const name of [...tensors.tensors.keys()].sort()) {
    const info = tensors.info(name);
    lines.push(
      `${name} ${info.dtype} [${info.shape.join(",")}] ${await tensorDigest(tensors, name)}`,
    );
  }
  return hex(await sha256(lines.join("\n") + "\n"));
}

/**
 * The fingerprint of the demo model: its config and vocabulary map (its weights are all trained,
 * so a worker receives every one of them from the learner).
 *
 * @param config The demo model's config.
 * @param vocabMap Its vocabulary map (`VocabMap.toJson()`).
 * @returns 64 hex digits.
 * @example
 * ```ts
 * import { gemma3_1b } from "./config.ts";
 * import { demoModelFingerprint } from "./fingerprint.ts";
 * const config = gemma3_1b();
 * const vocab = { format: "webtune.vocab_map", version: 1, realVocabSize: null, ids: [0, 1] } as const;
 * console.log(await demoModelFingerprint(config, vocab) === await demoModelFingerprint(config, vocab)); // true
 * ```
 */
export async function demoModelFingerprint(
  config: Gemma3Config,
  vocabMap: VocabMapJson,
): Promise<string> {
  const text = ["webtune.fingerprint.demo.v1", canonicalJson(config), canonicalJson(vocabMap)];
  return hex(await sha256(text.join("\n") + "\n"));
}
