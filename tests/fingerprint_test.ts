import assert from "node:assert/strict";
import { gemma3Config } from "../model/config.ts";
import { loadGemma3ConfigFrom } from "../model/config_hf.ts";
import { memorySource } from "../model/file_source.ts";
import { dirSource } from "../model/file_source_fs.ts";
import { canonicalJson, demoModelFingerprint, modelFingerprint } from "../model/fingerprint.ts";
import { openCheckpointFrom } from "../model/safetensors_index.ts";
import { encodeSafetensors, type TensorToWrite } from "../model/safetensors_writer.ts";
import { FIXTURE, TINY_CONFIG } from "./_helpers.ts";

const hex = (b: ArrayBuffer) =>
  Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
const sha = async (data: Uint8Array | string) =>
  hex(
    await crypto.subtle.digest(
      "SHA-256",
      (typeof data === "string" ? new TextEncoder().encode(data) : data) as Uint8Array<ArrayBuffer>,
    ),
  );

async function fingerprintOf(tensors: TensorToWrite[], config = gemma3Config()): Promise<string> {
  const ckpt = await openCheckpointFrom(
    memorySource({ "model.safetensors": encodeSafetensors(tensors) }),
  );
  try {
    return await modelFingerprint(config, ckpt);
  } finally {
    ckpt.close();
  }
}

Deno.test("modelFingerprint() hashes the config line and one name/dtype/shape/digest line per tensor", async () => {
  const a = new Float32Array([1, 2]);
  const b = new Uint8Array([7, 8, 9]);
  const got = await fingerprintOf([
    { name: "z", dtype: "U8", shape: [3], data: b },
    { name: "a", dtype: "F32", shape: [2, 1], data: a },
  ]);
  const config = gemma3Config();
  const expected = await sha(
    `webtune.fingerprint.v1\n${canonicalJson(config)}\n` +
      `a F32 [2,1] ${await sha(new Uint8Array(a.buffer))}\nz U8 [3] ${await sha(b)}\n`,
  );
  assert.equal(got, expected);
});

Deno.test("modelFingerprint() of the fixture ignores sharding and changes with any byte or config field", async () => {
  const source = dirSource(FIXTURE);
  const config = await loadGemma3ConfigFrom(source);
  const ckpt = await openCheckpointFrom(source);
  const tensors: TensorToWrite[] = [];
  for (const [name, info] of ckpt.tensors) {
    tensors.push({ name, dtype: info.dtype, shape: info.shape, data: await ckpt.read(name) });
  }
  const base = await modelFingerprint(config, ckpt);
  ckpt.close();
  assert.match(base, /^[0-9a-f]{64}$/);
  // The same tensors in two shards, in another order.
  const half = Math.floor(tensors.length / 2);
  const shards = [tensors.slice(half).reverse(), tensors.slice(0, half)];
  const weightMap = Object.fromEntries(
    shards.flatMap((s, i) => s.map((t) => [t.name, `s${i}.safetensors`])),
  );
  const sharded = await openCheckpointFrom(memorySource({
    "model.safetensors.index.json": JSON.stringify({ weight_map: weightMap }),
    "s0.safetensors": encodeSafetensors(shards[0]),
    "s1.safetensors": encodeSafetensors(shards[1]),
  }));
  assert.equal(await modelFingerprint(config, sharded), base);
  sharded.close();
  // One byte of the last tensor.
  const last = tensors.at(-1)!;
  const bytes = new Uint8Array(last.data as Uint8Array);
  bytes[bytes.length - 1] ^= 1;
  assert.notEqual(
    await fingerprintOf([...tensors.slice(0, -1), { ...last, data: bytes }], config),
    base,
  );
  assert.equal(await fingerprintOf(tensors, config), base);
  assert.notEqual(
    await fingerprintOf(tensors, { ...config, rmsNormEps: config.rmsNormEps * 2 }),
    base,
  );
});

Deno.test("modelFingerprint() hashes a tensor over 64 MiB chunk by chunk, every chunk counting", async () => {
  const n = 16 * 1024 * 1024 + 4; // 64 MiB + 16 bytes of F32
  const data = new Uint8Array(n * 4);
  const one = await fingerprintOf([{ name: "big", dtype: "F32", shape: [n], data }]);
  data[data.length - 1] = 0x3f; // in the second chunk
  assert.notEqual(await fingerprintOf([{ name: "big", dtype: "F32", shape: [n], data }]), one);
});

Deno.test("demoModelFingerprint() follows the config and the vocabulary map", async () => {
  const config = TINY_CONFIG;
  const vocab = {
    format: "webtune.vocab_map",
    version: 1,
    realVocabSize: 262144,
    ids: [0, 1, 2],
  } as const;
  const base = await demoModelFingerprint(config, vocab);
  assert.equal(await demoModelFingerprint({ ...config }, { ...vocab, ids: [0, 1, 2] }), base);
  assert.notEqual(await demoModelFingerprint(config, { ...vocab, ids: [0, 1, 3] }), base);
  assert.notEqual(await demoModelFingerprint({ ...config, ropeTheta: 1 }, vocab), base);
});
