/**
 * Safetensors reader, writer, sharded checkpoints and dtype conversion; malformed files are
 * crafted in a temp dir with the writer plus byte surgery.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { blobReader, bytesReader } from "../model/byte_readers.ts";
import { loadGemma3Config } from "../model/config_fs.ts";
import {
  MAX_HEADER_BYTES,
  openSafetensorsFrom,
  type SafetensorsDtype,
  SafetensorsError,
  type SafetensorsErrorCode,
} from "../model/safetensors.ts";
import {
  checkFinite,
  decodeFloat32,
  decodeTensor,
  f16BitsToNumber,
  findNonFinite,
  numberToF16Bits,
} from "../model/safetensors_dtype.ts";
import { openCheckpoint, openSafetensors, writeSafetensors } from "../model/safetensors_fs.ts";
import { encodeSafetensors, type TensorToWrite } from "../model/safetensors_writer.ts";
import { expectedWeightShapes } from "../model/weights.ts";

const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  fileURLToPath(new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url));

const SMALL: TensorToWrite[] = [
  { name: "a", dtype: "F32", shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
  { name: "b", dtype: "BF16", shape: [3], data: [1, -2, 0.5] },
  { name: "c", dtype: "I32", shape: [2], data: [7, -8] },
];

/** A file from a raw header string and data, with an optional length-field override. */
function craft(header: string, data: Uint8Array, lengthField?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

async function expectError(
  run: () => Promise<unknown>,
  code: SafetensorsErrorCode,
  tensor: string | null,
  file: string,
): Promise<SafetensorsError> {
  try {
    await run();
  } catch (e) {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.tensor, tensor, e.message);
    assert.ok(e.message.includes(file), `message names the file: ${e.message}`);
    if (tensor !== null) assert.ok(e.message.includes(tensor), e.message);
    return e;
  }
  throw new Error(`expected SafetensorsError ${code}, nothing was thrown`);
}

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "webtune_st_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("openSafetensors() reads the fixture model: all weights, BF16, shapes from config.json", async () => {
  const config = await loadGemma3Config(FIXTURE);
  const st = await openSafetensors(`${FIXTURE}/model.safetensors`);
  try {
    const expected = expectedWeightShapes(config);
    assert.equal(st.tensors.size, expected.size);
    assert.equal(st.dataStart % 8, 0);
    assert.deepEqual(st.metadata, { format: "pt" });
    for (const [name, shape] of expected) {
      const t = st.info(name);
      assert.equal(t.dtype, "BF16", name);
      assert.deepEqual(t.shape, shape, name);
      assert.equal(t.byteLength, shape.reduce((a, b) => a * b, 1) * 2);
    }
    assert.equal(st.tensors.has("lm_head.weight"), false);
    // Streaming read of one tensor: bf16 widens exactly, values are finite and not all zero.
    const norm = decodeFloat32("BF16", await st.read("model.norm.weight"));
    assert.equal(norm.length, config.hiddenSize);
    assert.ok(norm.every(Number.isFinite) && norm.some((x) => x !== 0));
    const raw = await st.read("model.embed_tokens.weight");
    const bits = new Uint16Array(raw.buffer, raw.byteOffset, 8);
    const wide = decodeFloat32("BF16", raw.subarray(0, 16));
    for (let i = 0; i < 8; i++) {
      assert.equal(new Uint32Array(wide.buffer)[i], (bits[i] << 16) >>> 0);
    }
  } finally {
    st.close();
  }
});

Deno.test("openSafetensors() reads forward.safetensors F32 logits matching forward.json", async () => {
  const config = await loadGemma3Config(FIXTURE);
  const meta = JSON.parse(await Deno.readTextFile(`${FIXTURE}/forward.json`));
  const f32 = await openSafetensors(`${FIXTURE}/forward.safetensors`);
  const f64 = await openSafetensors(`${FIXTURE}/forward_f64.safetensors`);
  try {
    const rows0: Float32Array[] = [];
    for (const seq of meta.sequences) {
      const t = f32.info(seq.logits_tensor);
      assert.equal(t.dtype, "F32");
      assert.deepEqual(t.shape, [seq.length, config.vocabSize]);
      assert.deepEqual(t.shape, seq.logits_shape);
      const logits = decodeTensor("F32", await f32.read(t.name)) as Float32Array;
      const ref = decodeTensor("F64", await f64.read(t.name));
      assert.ok(ref instanceof Float64Array);
      let maxAbs = 0;
      let maxDiff = 0;
      for (let i = 0; i < logits.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(logits[i]));
        maxDiff = Math.max(maxDiff, Math.abs(logits[i] - ref[i]));
      }
      assert.ok(Math.abs(maxAbs - seq.max_abs_logit) <= 1e-4 * Math.max(1, maxAbs));
      assert.ok(maxDiff <= seq.max_abs_diff_f32_vs_f64 * (1 + 1e-6) + 1e-12, `${maxDiff}`);
      rows0.push(logits.subarray(0, config.vocabSize));
    }
    // All sequences start with the same token, so row 0 agrees (causality; float32 noise only).
    for (const row of rows0) {
      for (let i = 0; i < row.length; i++) assert.ok(Math.abs(row[i] - rows0[0][i]) <= 1e-4);
    }
    const hs = f32.info("hidden_states");
    const seq = meta.sequences[meta.hidden_states_for_sequence];
    assert.deepEqual(hs.shape, [config.numLayers + 1, seq.length, config.hiddenSize]);
  } finally {
    f32.close();
    f64.close();
  }
});

Deno.test("encodeSafetensors() reproduces every fixture file byte for byte", async () => {
  for (const entry of Deno.readDirSync(FIXTURE)) {
    if (!entry.name.endsWith(".safetensors")) continue;
    const path = `${FIXTURE}/${entry.name}`;
    const st = await openSafetensors(path);
    const tensors: TensorToWrite[] = [];
    for (const t of st.tensors.values()) {
      tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await st.read(t.name) });
    }
    st.close();
    assert.deepEqual(encodeSafetensors(tensors, st.metadata), await Deno.readFile(path), path);
  }
});

Deno.test("writeSafetensors() round-trips F32/BF16/F16/I32/F64/I64/U8, scalars and empty tensors", async () => {
  await withTempDir(async (dir) => {
    const tensors: TensorToWrite[] = [
      { name: "f32", dtype: "F32", shape: [2, 2], data: new Float32Array([1.5, -2, 3e-8, 1e30]) },
      { name: "bf16", dtype: "BF16", shape: [3], data: [1.00390625, 1.01171875, -0] },
      { name: "f16", dtype: "F16", shape: [4], data: [0.1, 65504, 65520, 3 * 2 ** -25] },
      { name: "i32", dtype: "I32", shape: [3], data: [-(2 ** 31), 0, 2 ** 31 - 1] },
      { name: "f64", dtype: "F64", shape: [2], data: [Math.PI, -1e-300] },
      { name: "i64", dtype: "I64", shape: [2], data: new BigInt64Array([-5n, 2n ** 62n]) },
      { name: "u8", dtype: "U8", shape: [1, 3], data: [0, 128, 255] },
      { name: "scalar", dtype: "F32", shape: [], data: [42] },
      { name: "empty", dtype: "F32", shape: [0, 4], data: [] },
    ];
    const path = `${dir}/all.safetensors`;
    const size = await writeSafetensors(path, tensors, { format: "pt", note: "héllo" });
    const bytes = await Deno.readFile(path);
    assert.equal(bytes.length, size);
    assert.deepEqual(bytes, encodeSafetensors(tensors, { format: "pt", note: "héllo" }));
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0);
    assert.notEqual(bytes[8 + n - 1], 0); // padding is spaces, not NULs
    const st = await openSafetensors(path);
    try {
      assert.deepEqual(st.metadata, { format: "pt", note: "héllo" });
      assert.deepEqual([...st.tensors.keys()], tensors.map((t) => t.name));
      const get = async (name: string) => decodeTensor(st.info(name).dtype, await st.read(name));
      assert.deepEqual(await get("f32"), new Float32Array([1.5, -2, 3e-8, 1e30]));
      // bf16 ties to even: 1 + 2^-8 → 1, 1 + 3·2^-8 → 1 + 2^-6; -0 keeps its sign.
      const bf = await get("bf16") as Float32Array;
      assert.deepEqual([...bf], [1, 1.015625, -0]);
      assert.ok(Object.is(bf[2], -0));
      assert.deepEqual([...await get("f16") as Float32Array], [
        0.0999755859375,
        65504,
        Infinity,
        2 ** -23,
      ]);
      assert.deepEqual(await get("i32"), new Int32Array([-(2 ** 31), 0, 2 ** 31 - 1]));
      assert.deepEqual(await get("f64"), new Float64Array([Math.PI, -1e-300]));
      assert.deepEqual(await get("i64"), new BigInt64Array([-5n, 2n ** 62n]));
      assert.deepEqual(await get("u8"), new Uint8Array([0, 128, 255]));
      assert.deepEqual(await get("scalar"), new Float32Array([42]));
      assert.equal(st.info("empty").byteLength, 0);
      assert.equal((await st.read("empty")).length, 0);
    } finally {
      st.close();
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["all.safetensors"]);
  });
});

Deno.test("writeSafetensors() replaces atomically and leaves the old file on bad input", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/w.safetensors`;
    await writeSafetensors(path, SMALL);
    const before = await Deno.readFile(path);
    await expectError(
      () => writeSafetensors(path, [{ name: "x", dtype: "F32", shape: [3], data: [1, 2] }]),
      "invalid_tensor",
      "x",
      path,
    );
    await expectError(
      () => writeSafetensors(path, [{ name: "x", dtype: "I32", shape: [1], data: [0.5] }]),
      "invalid_tensor",
      "x",
      path,
    );
    await expectError(
      () => writeSafetensors(path, [SMALL[0], SMALL[0]]),
      "invalid_tensor",
      "a",
      path,
    );
    assert.deepEqual(await Deno.readFile(path), before);
    await writeSafetensors(path, [SMALL[2]]);
    const st = await openSafetensors(path);
    assert.deepEqual([...st.tensors.keys()], ["c"]);
    st.close();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["w.safetensors"]);
  });
});

Deno.test("openSafetensors() serves concurrent reads correctly; bytes and Blob readers agree", async () => {
  await withTempDir(async (dir) => {
    const tensors: TensorToWrite[] = Array.from({ length: 16 }, (_, i) => ({
      name: `t${i}`,
      dtype: "F32" as SafetensorsDtype,
      shape: [1000 + i],
      data: Float32Array.from({ length: 1000 + i }, (_, j) => i * 10000 + j),
    }));
    const path = `${dir}/c.safetensors`;
    await writeSafetensors(path, tensors);
    const bytes = await Deno.readFile(path);
    const sources = [
      await openSafetensors(path),
      await openSafetensorsFrom("mem", bytesReader(bytes)),
      await openSafetensorsFrom("blob", blobReader(new Blob([bytes]))),
    ];
    for (const st of sources) {
      const all = await Promise.all(tensors.map((t) => st.read(t.name)));
      all.forEach((b, i) => assert.deepEqual(decodeTensor("F32", b), tensors[i].data));
      const target = new Uint8Array(5000);
      const view = await st.readInto("t1", target);
      assert.equal(view.buffer, target.buffer);
      assert.deepEqual(decodeTensor("F32", view), tensors[1].data);
      await expectError(
        () => st.readInto("t1", new Uint8Array(10)),
        "invalid_tensor",
        "t1",
        st.path,
      );
      const slice = await st.readRange("t3", 4 * 10, new Uint8Array(8));
      assert.deepEqual(decodeTensor("F32", slice), new Float32Array([30010, 30011]));
      await expectError(
        () => st.readRange("t3", 4 * 1002, new Uint8Array(8)),
        "invalid_tensor",
        "t3",
        st.path,
      );
      st.close();
    }
  });
});

Deno.test("openSafetensors() rejects malformed files with typed errors", async () => {
  await withTempDir(async (dir) => {
    const good = encodeSafetensors(SMALL);
    const n = Number(new DataView(good.buffer).getBigUint64(0, true));
    const cases: [string, Uint8Array, SafetensorsErrorCode, string | null][] = [
      ["short", good.subarray(0, 5), "truncated", null],
      ["empty", new Uint8Array(0), "truncated", null],
      ["cut_in_header", good.subarray(0, 8 + n - 3), "header_out_of_bounds", null],
      ["cut_in_data", good.subarray(0, good.length - 1), "out_of_bounds", "c"],
      ["len_past_eof", craft("{}", new Uint8Array(0), 1000n), "header_out_of_bounds", null],
      [
        "len_huge",
        craft("{}", new Uint8Array(0), BigInt(MAX_HEADER_BYTES + 1)),
        "header_too_large",
        null,
      ],
      ["len_2_63", craft("{}", new Uint8Array(0), 2n ** 63n), "header_too_large", null],
      ["bad_json", craft('{"a": {"dtype": "F32",', new Uint8Array(0)), "invalid_json", null],
      ["bad_utf8", craft("{}", new Uint8Array(0)).fill(0xff, 8, 9), "invalid_json", null],
      ["not_object", craft("[1, 2]", new Uint8Array(0)), "invalid_header", null],
      [
        "unknown_dtype",
        craft('{"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 1]}}', new Uint8Array(1)),
        "unknown_dtype",
        "w",
      ],
      [
        "shape_mismatch",
        craft(
          '{"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}',
          new Uint8Array(24),
        ),
        "shape_mismatch",
        "w",
      ],
      [
        "overlap",
        craft(
          '{"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},' +
            '"y": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}',
          new Uint8Array(24),
        ),
        "overlap",
        "y",
      ],
      [
        "past_end",
        craft('{"w": {"dtype": "U8", "shape": [9], "data_offsets": [4, 13]}}', new Uint8Array(8)),
        "out_of_bounds",
        "w",
      ],
      [
        "bad_offsets",
        craft('{"w": {"dtype": "U8", "shape": [2], "data_offsets": [3, 1]}}', new Uint8Array(8)),
        "invalid_header",
        "w",
      ],
      [
        "bad_shape",
        craft('{"w": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}', new Uint8Array(8)),
        "invalid_header",
        "w",
      ],
      [
        "bad_metadata",
        craft('{"__metadata__": {"format": 1}}', new Uint8Array(0)),
        "invalid_header",
        null,
      ],
    ];
    for (const [name, bytes, code, tensor] of cases) {
      const path = `${dir}/${name}.safetensors`;
      await Deno.writeFile(path, bytes);
      const e = await expectError(() => openSafetensors(path), code, tensor, path);
      assert.ok(e.message.length > path.length + 10, `${name}: says what was expected`);
    }
    // The shape/byte-length message says what the shape needs.
    const mismatch = `${dir}/shape_mismatch.safetensors`;
    const e = await expectError(() => openSafetensors(mismatch), "shape_mismatch", "w", mismatch);
    assert.match(e.message, /F32 \[2, 3\] needs 24 bytes.*span 20/);
    await expectError(
      () => openSafetensors(`${dir}/nope.safetensors`),
      "missing_file",
      null,
      "nope",
    );
  });
});

/** `craft()` with the header space-padded to a multiple of 8, as writers do. */
function craftPadded(header: string, data: Uint8Array, lengthDelta = 0): Uint8Array {
  const padded = header + " ".repeat(8 + ((8 - (header.length % 8)) % 8));
  return craft(padded, data, BigInt(padded.length + lengthDelta));
}

const entry = (dtype: string, shape: number[], begin: number, end: number) =>
  `{"dtype": "${dtype}", "shape": [${shape.join(", ")}], "data_offsets": [${begin}, ${end}]}`;

Deno.test("openSafetensors() refuses a data section its tensors do not cover exactly, like the reference library", async () => {
  await withTempDir(async (dir) => {
    const cases: [string, Uint8Array, SafetensorsErrorCode, string, RegExp][] = [
      [
        "gap_before_first",
        craft(`{"x": ${entry("F32", [2], 4, 12)}}`, new Uint8Array(12)),
        "gap",
        "x",
        /bytes \[0, 4\) .*expected it to start at 0/,
      ],
      [
        "gap_between",
        craft(
          `{"x": ${entry("U8", [4], 0, 4)}, "y": ${entry("U8", [4], 6, 10)}}`,
          new Uint8Array(10),
        ),
        "gap",
        "y",
        /bytes \[4, 6\).*where "x" ends/,
      ],
      [
        "overlap_sorted",
        craft(
          `{"y": ${entry("U8", [4], 2, 6)}, "x": ${entry("U8", [4], 0, 4)}}`,
          new Uint8Array(6),
        ),
        "overlap",
        "y",
        /overlap tensor "x"/,
      ],
      [
        "trailing_bytes",
        craft(`{"x": ${entry("F32", [2], 0, 8)}}`, new Uint8Array(9)),
        "trailing_data",
        "x",
        /9 bytes.*"x", ends at 8/,
      ],
      [
        "empty_with_data",
        craft(`{"__metadata__": {"format": "pt"}}`, new Uint8Array(4)),
        "trailing_data",
        "",
        /4 bytes, but no tensor/,
      ],
      [
        "empty_tensor_past_end",
        craft(
          `{"x": ${entry("U8", [2], 0, 2)}, "e": ${entry("F32", [0], 4, 4)}}`,
          new Uint8Array(4),
        ),
        "gap",
        "e",
        /bytes \[2, 4\)/,
      ],
      [
        "leading_space",
        craft(` {"x": ${entry("U8", [1], 0, 1)}}`, new Uint8Array(1)),
        "invalid_header",
        "",
        /starting with "\{"/,
      ],
    ];
    for (const [name, bytes, code, tensor, detail] of cases) {
      const path = `${dir}/${name}.safetensors`;
      await Deno.writeFile(path, bytes);
      const e = await expectError(() => openSafetensors(path), code, tensor || null, path);
      assert.match(e.message, detail, name);
    }
    // Header order is free (the reference sorts by offset): out-of-order entries that tile the
    // data section, zero-size tensors included, are read at their own offsets.
    const shuffled = craft(
      `{"b": ${entry("U8", [2], 2, 4)}, "z": ${entry("F32", [0], 4, 4)}, "a": ${
        entry("U8", [2], 0, 2)
      }, "z0": ${entry("I32", [0, 3], 0, 0)}}`,
      new Uint8Array([1, 2, 3, 4]),
    );
    const st = await openSafetensorsFrom("shuffled", bytesReader(shuffled));
    assert.deepEqual([...st.tensors.keys()], ["b", "z", "a", "z0"]);
    assert.deepEqual(await st.read("a"), new Uint8Array([1, 2]));
    assert.deepEqual(await st.read("b"), new Uint8Array([3, 4]));
    st.close();
  });
});

Deno.test("a header length off by one byte is refused, naming the file and tensor (model, adapter, shard)", async () => {
  await withTempDir(async (dir) => {
    const header = `{"a": ${entry("U8", [2], 0, 2)}, "w": ${entry("F32", [2], 2, 10)}}`;
    const data = new Uint8Array([0x20, 7, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]);
    const write = async (name: string, bytes: Uint8Array) => {
      await Deno.writeFile(`${dir}/${name}`, bytes);
      return `${dir}/${name}`;
    };
    const good = await openSafetensors(await write("good.safetensors", craftPadded(header, data)));
    assert.deepEqual(decodeTensor("F32", await good.read("w")), new Float32Array([1, 2]));
    good.close();
    // −1: the JSON still parses (its padding loses a space), every tensor moves one byte
    // earlier, one byte is left over at the end.
    const minus = await write("minus.safetensors", craftPadded(header, data, -1));
    const e = await expectError(() => openSafetensors(minus), "trailing_data", "w", minus);
    assert.match(e.message, /11 bytes.*ends at 10/);
    // +1: the header swallows the first data byte: a space keeps the JSON valid, and the data
    // section is a byte short; any other byte breaks the JSON.
    const plus = await write("plus.safetensors", craftPadded(header, data, +1));
    await expectError(() => openSafetensors(plus), "out_of_bounds", "w", plus);
    const plusJson = await write("plus_json.safetensors", craftPadded(header, data.with(0, 7), +1));
    await expectError(() => openSafetensors(plusJson), "invalid_json", null, plusJson);
    // The fixture model with its length field one byte short (it loaded before, every weight
    // read one byte off) and one byte long.
    const fixture = await Deno.readFile(`${FIXTURE}/model.safetensors`);
    const n = new DataView(fixture.buffer).getBigUint64(0, true);
    const st = await openSafetensors(`${FIXTURE}/model.safetensors`);
    const last = [...st.tensors.values()].reduce((a, b) => (b.byteOffset > a.byteOffset ? b : a));
    st.close();
    for (const [delta, code] of [[-1n, "trailing_data"], [1n, "invalid_json"]] as const) {
      const model = `${dir}/model${delta}`;
      await Deno.mkdir(model);
      const bytes = fixture.slice();
      new DataView(bytes.buffer).setBigUint64(0, n + delta, true);
      await Deno.writeFile(`${model}/model.safetensors`, bytes);
      const err = await expectError(
        () => openCheckpoint(model),
        code,
        code === "trailing_data" ? last.name : null,
        `${model}/model.safetensors`,
      );
      assert.ok(err.message.length > 80, err.message);
    }
    // Each shard of a sharded checkpoint is checked.
    await writeSharded(dir, {
      a: "model-00001-of-00002.safetensors",
      b: "model-00001-of-00002.safetensors",
      c: "model-00002-of-00002.safetensors",
    });
    const shard2 = `${dir}/model-00002-of-00002.safetensors`;
    const shardBytes = await Deno.readFile(shard2);
    const shardN = new DataView(shardBytes.buffer).getBigUint64(0, true);
    new DataView(shardBytes.buffer).setBigUint64(0, shardN - 1n, true);
    await Deno.writeFile(shard2, shardBytes);
    await expectError(() => openCheckpoint(dir), "trailing_data", "c", shard2);
  });
});

Deno.test("findNonFinite(), checkFinite() and decodeFloat32({ finite }) name the file, tensor and element of NaN/±Inf", () => {
  const where = { file: "m.safetensors", tensor: "layer.w" };
  const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);
  const half = (bits: number[]) => new Uint8Array(new Uint16Array(bits).buffer);
  // [dtype, bytes, index of the first non-finite value, its value]
  const cases: [SafetensorsDtype, Uint8Array, number, number][] = [
    ["F32", f32([1, -2, NaN, 4]), 2, NaN],
    ["F32", f32([3.4e38, Infinity]), 1, Infinity],
    ["F32", f32([-Infinity]), 0, -Infinity],
    ["BF16", half([0x3f80, 0x7fc0, 0]), 1, NaN],
    ["BF16", half([0x7f80, 0x3f80]), 0, Infinity],
    ["BF16", half([0x3f80, 0x4000, 0xff80]), 2, -Infinity], // the odd tail after whole words
    ["F16", half([0x3c00, 0x7c00]), 1, Infinity],
    ["F16", half([0xfe00]), 0, NaN],
  ];
  for (const [dtype, bytes, index, value] of cases) {
    const label = `${dtype} ${index} ${value}`;
    assert.deepEqual(findNonFinite(dtype, bytes), { index, value }, label);
    // Unaligned bytes (a subarray at an odd offset) are checked all the same.
    const odd = new Uint8Array(bytes.length + 1);
    odd.set(bytes, 1);
    assert.deepEqual(findNonFinite(dtype, odd.subarray(1)), { index, value }, label);
    for (
      const run of [
        () => checkFinite(dtype, bytes, { ...where, elementOffset: 100 }),
        () => decodeFloat32(dtype, bytes, { finite: { ...where, elementOffset: 100 } }),
      ]
    ) {
      assert.throws(run, (e: unknown) => {
        assert.ok(e instanceof SafetensorsError, `${label}: ${e}`);
        assert.equal(e.code, "non_finite");
        assert.equal(e.file, "m.safetensors");
        assert.equal(e.tensor, "layer.w");
        assert.ok(e.message.includes(`element ${100 + index} is ${value}`), e.message);
        return true;
      });
    }
    // Without `finite`, decoding keeps non-finite values (logits, test data).
    assert.ok(Object.is(decodeFloat32(dtype, bytes)[index], value), label);
  }
  // Finite extremes pass: max/min normals, subnormals, −0; integers are never checked.
  assert.equal(findNonFinite("F32", f32([3.4028234e38, -3.4028234e38, 1e-45, -0])), null);
  assert.equal(findNonFinite("BF16", half([0x7f7f, 0xff7f, 0x0001, 0x8000, 0x3f80])), null);
  assert.equal(findNonFinite("F16", half([0x7bff, 0xfbff, 0x0001])), null);
  assert.equal(findNonFinite("F64", new Uint8Array(new Float64Array([1e308]).buffer)), null);
  assert.deepEqual(
    findNonFinite("F64", new Uint8Array(new Float64Array([1, NaN]).buffer)),
    { index: 1, value: NaN },
  );
  assert.equal(findNonFinite("I32", new Uint8Array([0xff, 0xff, 0xff, 0x7f])), null);
});

Deno.test("SafetensorsFile.read() of an absent tensor throws missing_tensor", async () => {
  const st = await openSafetensorsFrom("mem.safetensors", bytesReader(encodeSafetensors(SMALL)));
  await expectError(() => st.read("zzz"), "missing_tensor", "zzz", "mem.safetensors");
  assert.throws(() => st.info("zzz"), SafetensorsError);
  st.close();
});

async function writeSharded(dir: string, index: Record<string, string>): Promise<void> {
  await writeSafetensors(`${dir}/model-00001-of-00002.safetensors`, [SMALL[0], SMALL[1]]);
  await writeSafetensors(`${dir}/model-00002-of-00002.safetensors`, [SMALL[2]]);
  await Deno.writeTextFile(
    `${dir}/model.safetensors.index.json`,
    JSON.stringify({ metadata: { total_size: 44 }, weight_map: index }),
  );
}

Deno.test("openCheckpoint() presents a sharded checkpoint as one view", async () => {
  await withTempDir(async (dir) => {
    await writeSharded(dir, {
      a: "model-00001-of-00002.safetensors",
      b: "model-00001-of-00002.safetensors",
      c: "model-00002-of-00002.safetensors",
    });
    const ckpt = await openCheckpoint(dir);
    try {
      assert.equal(ckpt.files.length, 2);
      assert.deepEqual([...ckpt.tensors.keys()], ["a", "b", "c"]);
      assert.ok(ckpt.info("c").file.endsWith("model-00002-of-00002.safetensors"));
      assert.deepEqual(decodeTensor("I32", await ckpt.read("c")), new Int32Array([7, -8]));
      assert.deepEqual(
        decodeTensor("F32", await ckpt.read("a")),
        new Float32Array([1, 2, 3, 4, 5, 6]),
      );
      await expectError(() => ckpt.read("d"), "missing_tensor", "d", "index.json");
      assert.deepEqual(
        decodeTensor("I32", await ckpt.readRange("c", 4, new Uint8Array(4))),
        new Int32Array([-8]),
      );
    } finally {
      ckpt.close();
    }
  });
});

Deno.test("openCheckpoint() rejects a missing shard and an index naming a tensor not in its shard", async () => {
  await withTempDir(async (dir) => {
    await writeSharded(dir, {
      a: "model-00001-of-00002.safetensors",
      c: "model-00001-of-00002.safetensors",
    });
    const index = `${dir}/model.safetensors.index.json`;
    const e = await expectError(() => openCheckpoint(dir), "index_mismatch", "c", index);
    assert.ok(e.message.includes("model-00001-of-00002.safetensors"));
    await writeSharded(dir, {
      a: "model-00001-of-00002.safetensors",
      c: "model-00003.safetensors",
    });
    const m = await expectError(() => openCheckpoint(dir), "missing_shard", "c", index);
    assert.ok(m.message.includes("model-00003.safetensors"));
    await writeSharded(dir, { a: "../escape.safetensors" });
    await expectError(() => openCheckpoint(dir), "invalid_header", "a", index);
    await Deno.writeTextFile(index, "{ not json");
    await expectError(() => openCheckpoint(dir), "invalid_json", null, index);
    await Deno.remove(index);
    await expectError(() => openCheckpoint(dir), "missing_file", null, dir);
  });
});

Deno.test("openCheckpoint() reads the fixture folder, also resharded, with identical bytes", async () => {
  const single = await openCheckpoint(FIXTURE);
  await withTempDir(async (dir) => {
    const names = [...single.tensors.keys()];
    const half = Math.floor(names.length / 2);
    const weightMap: Record<string, string> = {};
    const shards = [names.slice(0, half), names.slice(half)];
    for (const [s, part] of shards.entries()) {
      const file = `model-0000${s + 1}-of-00002.safetensors`;
      const tensors: TensorToWrite[] = [];
      for (const name of part.toReversed()) {
        const t = single.info(name);
        tensors.push({ name, dtype: t.dtype, shape: t.shape, data: await single.read(name) });
        weightMap[name] = file;
      }
      await writeSafetensors(`${dir}/${file}`, tensors, { format: "pt" });
    }
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({ weight_map: weightMap }),
    );
    const sharded = await openCheckpoint(dir);
    try {
      assert.equal(sharded.tensors.size, single.tensors.size);
      for (const name of names) {
        assert.deepEqual(sharded.info(name).shape, single.info(name).shape);
        assert.deepEqual(await sharded.read(name), await single.read(name), name);
      }
    } finally {
      sharded.close();
      single.close();
    }
  });
});

Deno.test("numberToF16Bits() inverts f16BitsToNumber() on all 65536 patterns and rounds to even", () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const x = f16BitsToNumber(bits);
    if (Number.isNaN(x)) continue;
    assert.equal(numberToF16Bits(x), bits, `bits ${bits.toString(16)}`);
    // Halfway to the next pattern (same sign, finite) rounds to the even one.
    const next = f16BitsToNumber(bits + 1);
    if ((bits & 0x7fff) < 0x7bff && bits !== 0x8000) {
      const even = (bits & 1) === 0 ? bits : bits + 1;
      assert.equal(numberToF16Bits((x + next) / 2), even, `tie after ${bits.toString(16)}`);
    }
  }
  assert.ok(Number.isNaN(f16BitsToNumber(numberToF16Bits(NaN))));
  assert.equal(numberToF16Bits(1e-9), 0);
  assert.equal(numberToF16Bits(-1e6), 0xfc00);
});
