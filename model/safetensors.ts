/**
 * Safetensors reading, browser-clean: header parsing and validation, a per-file tensor view
 * over any `ByteRangeReader` (`byte_readers.ts`) or a file of a `FileSource`
 * (`file_source.ts`). Sharded checkpoints are in `safetensors_index.ts`, file access in
 * `safetensors_fs.ts`.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * (`{"__metadata__": {..}, name: {dtype, shape, data_offsets: [begin, end]}, ..}`, offsets
 * relative to the data section that starts at 8 + N), then raw little-endian row-major data.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import type { ByteRangeReader } from "./byte_readers.ts";
import { type FileSource, FileSourceError } from "./file_source.ts";

/** Element types webtune understands in a safetensors header (the standard set without F8/F4). */
export type SafetensorsDtype =
  | "BOOL"
  | "U8"
  | "I8"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "F64"
  | "I64"
  | "U64";

/** Bytes per element of every {@linkcode SafetensorsDtype}. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
});

/** Largest header webtune accepts (the reference implementation's limit, 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * @param dtype A dtype string from a header.
 * @returns Whether webtune knows it.
 */
export function isSafetensorsDtype(dtype: string): dtype is SafetensorsDtype {
  return Object.hasOwn(SAFETENSORS_DTYPE_BYTES, dtype);
}

/** What went wrong, for programmatic checks (the message says it for people). */
export type SafetensorsErrorCode =
  | "truncated"
  | "header_too_large"
  | "header_out_of_bounds"
  | "invalid_json"
  | "invalid_header"
  | "unknown_dtype"
  | "shape_mismatch"
  | "out_of_bounds"
  | "overlap"
  | "gap"
  | "trailing_data"
  | "non_finite"
  | "missing_tensor"
  | "missing_file"
  | "missing_shard"
  | "index_mismatch"
  | "invalid_tensor"
  | "io";

/**
 * Any problem with a safetensors file, index or tensor; names the file and the tensor (`path`
 * is `file` or `file:tensor`).
 */
export class SafetensorsError extends FieldError {
  override readonly name: string = "SafetensorsError";
  /** Machine-readable kind of problem. */
  readonly code: SafetensorsErrorCode;
  /** The file (or folder) concerned. */
  readonly file: string;
  /** The tensor concerned, or null when the problem is not about one tensor. */
  readonly tensor: string | null;
  /**
   * @param code Kind of problem.
   * @param file The file concerned.
   * @param tensor The tensor concerned, or null.
   * @param detail What was expected and what was found.
   */
  constructor(code: SafetensorsErrorCode, file: string, tensor: string | null, detail: string) {
    super(
      tensor === null ? file : `${file}:${tensor}`,
      `${file}: ${tensor === null ? "" : `tensor "${tensor}": `}${detail}`,
    );
    this.code = code;
    this.file = file;
    this.tensor = tensor;
  }
}

/** Where one tensor lives. */
export interface TensorInfo {
  /** Tensor name. */
  readonly name: string;
  /** Element type. */
  readonly dtype: SafetensorsDtype;
  /** Dimensions, row-major (`[]` for a scalar). */
  readonly shape: readonly number[];
  /** Absolute byte offset in {@linkcode TensorInfo.file}. */
  readonly byteOffset: number;
  /** Byte length (= product(shape) × dtype size). */
  readonly byteLength: number;
  /** The file holding the bytes. */
  readonly file: string;
}

/** Read access by tensor name; a single file and a sharded checkpoint both provide it. */
export interface TensorStore {
  /** Every tensor by name, in header order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /**
   * @param name Tensor name.
   * @returns Its info.
   * @throws {SafetensorsError} `missing_tensor` when absent.
   */
  info(name: string): TensorInfo;
  /** Reads one tensor's bytes (a fresh array of exactly `byteLength` bytes). */
  read(name: string): Promise<Uint8Array>;
  /**
   * Reads one tensor's bytes into `target` (at least `byteLength` long).
   *
   * @returns `target.subarray(0, byteLength)`.
   */
  readInto(name: string, target: Uint8Array): Promise<Uint8Array>;
  /**
   * Reads part of one tensor: `target.length` bytes starting `start` bytes into it (for
   * uploading a huge tensor, e.g. a 262144-row embedding, in slices of rows).
   *
   * @returns `target`.
   * @throws {SafetensorsError} `invalid_tensor` when the range leaves the tensor.
   */
  readRange(name: string, start: number, target: Uint8Array): Promise<Uint8Array>;
  /** Closes every underlying file. */
  close(): void;
}

/** One open safetensors file. */
export interface SafetensorsFile extends TensorStore {
  /** The file's path (or name). */
  readonly path: string;
  /** `__metadata__` (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  /** N, the JSON header's byte length (padding included). */
  readonly headerLength: number;
  /** Absolute offset of the data section (8 + N). */
  readonly dataStart: number;
}

/** A parsed, validated header. */
export interface SafetensorsHeader {
  /** N, the JSON header's byte length. */
  readonly headerLength: number;
  /** Absolute offset of the data section (8 + N). */
  readonly dataStart: number;
  /** Tensors in header order, with absolute offsets. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** `__metadata__` (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * Reads and checks the 8-byte header length.
 *
 * @param file File name for messages.
 * @param prefix The file's first bytes (at least 8 unless the file is shorter).
 * @param fileSize Total file size.
 * @returns N, the JSON header length.
 * @throws {SafetensorsError} `truncated`, `header_too_large` or `header_out_of_bounds`.
 */
export function readHeaderLength(file: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new SafetensorsError(
      "truncated",
      file,
      null,
      `file is ${fileSize} bytes, expected at least 8 (the header length)`,
    );
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      "header_too_large",
      file,
      null,
      `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  const length = Number(n);
  if (length > fileSize - 8) {
    throw new SafetensorsError(
      "header_out_of_bounds",
      file,
      null,
      `header length ${length} runs past the end of the file (${fileSize - 8} bytes after the ` +
        "length field); the file is truncated or not safetensors",
    );
  }
  return length;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function parseMetadata(file: string, raw: unknown): Record<string, string> {
  if (!isPlainObject(raw)) {
    throw new SafetensorsError("invalid_header", file, null, "__metadata__ must be an object");
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== "string") {
      throw new SafetensorsError(
        "invalid_header",
        file,
        null,
        `__metadata__["${key}"] must be a string, got ${JSON.stringify(value)}`,
      );
    }
    out[key] = value;
  }
  return Object.freeze(out);
}

function parseEntry(
  file: string,
  name: string,
  raw: unknown,
  dataStart: number,
  dataSize: number,
): TensorInfo {
  const bad = (detail: string) => new SafetensorsError("invalid_header", file, name, detail);
  if (!isPlainObject(raw)) throw bad("entry must be an object with dtype, shape, data_offsets");
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== "string") throw bad(`dtype must be a string, got ${JSON.stringify(dtype)}`);
  if (!isSafetensorsDtype(dtype)) {
    throw new SafetensorsError(
      "unknown_dtype",
      file,
      name,
      `unknown dtype "${dtype}", expected one of ${
        Object.keys(SAFETENSORS_DTYPE_BYTES).join(", ")
      }`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw bad(`shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) ||
    offsets[0] > offsets[1]
  ) {
    throw bad(
      `data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`,
    );
  }
  const [begin, end] = offsets as [number, number];
  const numel = (shape as number[]).reduce((a, b) => a * b, 1);
  const expected = numel * SAFETENSORS_DTYPE_BYTES[dtype];
  if (!Number.isSafeInteger(expected) || expected !== end - begin) {
    throw new SafetensorsError(
      "shape_mismatch",
      file,
      name,
      `${dtype} [${
        shape.join(", ")
      }] needs ${expected} bytes, but data_offsets [${begin}, ${end}] ` +
        `span ${end - begin}`,
    );
  }
  if (end > dataSize) {
    throw new SafetensorsError(
      "out_of_bounds",
      file,
      name,
      `data_offsets [${begin}, ${end}] end past the data section (${dataSize} bytes)`,
    );
  }
  return Object.freeze({
    name,
    dtype,
    shape: Object.freeze([...shape as number[]]),
    byteOffset: dataStart + begin,
    byteLength: end - begin,
    file,
  });
}

/**
 * The reference library's coverage rule: sorted by offsets, the tensors tile the data section
 * exactly — the first starts at 0, each starts where the previous ends, the last ends where the
 * file ends. A header length that is off (the JSON still parsing thanks to its space padding)
 * shifts every tensor and leaves a byte over, so it is refused here rather than read skewed.
 */
function checkCoverage(file: string, tensors: readonly TensorInfo[], header: {
  readonly dataStart: number;
  readonly dataSize: number;
}): void {
  const { dataStart, dataSize } = header;
  const begin = (t: TensorInfo) => t.byteOffset - dataStart;
  const end = (t: TensorInfo) => begin(t) + t.byteLength;
  const range = (t: TensorInfo) => `[${begin(t)}, ${end(t)}]`;
  const sorted = [...tensors].sort((a, b) => begin(a) - begin(b) || end(a) - end(b));
  let covered = 0;
  let prev: TensorInfo | null = null;
  for (const t of sorted) {
    if (begin(t) < covered) {
      throw new SafetensorsError(
        "overlap",
        file,
        t.name,
        `data_offsets ${range(t)} overlap tensor "${prev!.name}" at ${range(prev!)}; ` +
          `expected it to start at ${covered}, where "${prev!.name}" ends`,
      );
    }
    if (begin(t) > covered) {
      throw new SafetensorsError(
        "gap",
        file,
        t.name,
        `data_offsets ${range(t)} leave bytes [${covered}, ${begin(t)}) of the data section ` +
          `to no tensor; expected it to start at ${covered}` +
          (prev === null ? " (the data section's start)" : `, where "${prev.name}" ends`),
      );
    }
    covered = end(t);
    prev = t;
  }
  if (covered !== dataSize) {
    const last = prev === null
      ? "no tensor"
      : `the last tensor, "${prev.name}", ends at ${covered}`;
    throw new SafetensorsError(
      "trailing_data",
      file,
      prev?.name ?? null,
      `the data section (after the ${dataStart - 8}-byte header) is ${dataSize} bytes, but ` +
        `${last}; expected the tensors to cover it exactly (is the header length field off, ` +
        "or were bytes appended?)",
    );
  }
}

/**
 * Parses and validates the JSON header.
 *
 * @param file File name for messages.
 * @param json The N header bytes (UTF-8 JSON, possibly space-padded).
 * @param fileSize Total file size (bounds the data section).
 * @returns The validated header, offsets made absolute.
 * Validation follows the reference implementation: the header is UTF-8 JSON starting with `{`;
 * each tensor's byte span matches its dtype and shape; sorted by offsets, the tensors cover
 * the data section exactly, without gaps, overlaps or trailing bytes (header order is free).
 *
 * @throws {SafetensorsError} `invalid_json`, `invalid_header`, `unknown_dtype`,
 *   `shape_mismatch`, `out_of_bounds`, `overlap`, `gap` or `trailing_data`.
 * @example
 * ```ts
 * import { parseHeader } from "./safetensors.ts";
 * const json = new TextEncoder().encode('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}');
 * const header = parseHeader("x.safetensors", json, 8 + json.length + 8);
 * console.log(header.tensors.get("x")?.byteOffset); // 8 + json.length
 * ```
 */
export function parseHeader(file: string, json: Uint8Array, fileSize: number): SafetensorsHeader {
  const headerLength = json.length;
  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  let text: string;
  let raw: unknown;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(json);
  } catch (e) {
    throw new SafetensorsError(
      "invalid_json",
      file,
      null,
      `header is not valid UTF-8 (${(e as Error).message})`,
    );
  }
  if (!text.startsWith("{")) {
    throw new SafetensorsError(
      "invalid_header",
      file,
      null,
      `header must be a JSON object starting with "{", got ${JSON.stringify(text.slice(0, 16))}`,
    );
  }
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(
      "invalid_json",
      file,
      null,
      `header is not valid JSON (${(e as Error).message})`,
    );
  }
  if (!isPlainObject(raw)) {
    throw new SafetensorsError("invalid_header", file, null, "header must be a JSON object");
  }
  let metadata: Record<string, string> = Object.freeze({});
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(raw)) {
    if (name === "__metadata__") metadata = parseMetadata(file, entry);
    else tensors.set(name, parseEntry(file, name, entry, dataStart, dataSize));
  }
  checkCoverage(file, [...tensors.values()], { dataStart, dataSize });
  return Object.freeze({ headerLength, dataStart, tensors, metadata });
}

/**
 * Opens a safetensors file through a reader: reads and validates the header; tensor bytes are
 * read later, one tensor at a time.
 *
 * @param file File name (for messages and {@linkcode TensorInfo.file}).
 * @param reader Byte access to the file; closed by the returned view's `close()` (and on error).
 * @returns The open file.
 * @throws {SafetensorsError} On any header problem.
 * @example
 * ```ts
 * import { bytesReader } from "./byte_readers.ts";
 * import { openSafetensorsFrom } from "./safetensors.ts";
 * import { encodeSafetensors } from "./safetensors_writer.ts";
 * const bytes = encodeSafetensors([{ name: "w", dtype: "F32", shape: [2], data: [1, 2] }]);
 * const st = await openSafetensorsFrom("mem", bytesReader(bytes));
 * console.log(new Float32Array((await st.read("w")).buffer)); // Float32Array [1, 2]
 * ```
 */
export async function openSafetensorsFrom(
  file: string,
  reader: ByteRangeReader,
): Promise<SafetensorsFile> {
  try {
    const prefix = new Uint8Array(Math.min(8, reader.size));
    await reader.readInto(0, prefix);
    const n = readHeaderLength(file, prefix, reader.size);
    const json = new Uint8Array(n);
    const got = await reader.readInto(8, json);
    if (got !== n) {
      throw new SafetensorsError("truncated", file, null, `header: read ${got} of ${n} bytes`);
    }
    const header = parseHeader(file, json, reader.size);
    return makeFileView(file, header, reader);
  } catch (e) {
    reader.close();
    throw safetensorsErrorOf(e);
  }
}

/**
 * A {@linkcode FileSourceError} as a {@linkcode SafetensorsError} of the same file:
 * `not_found` becomes `missing_file`, anything else `io` (the source error is the `cause`).
 *
 * @param e What a source threw.
 * @param tensor The tensor being read, or null.
 * @returns The error to throw (`e` itself when it is not a source error).
 * @example
 * ```ts
 * import { FileSourceError } from "./file_source.ts";
 * import { SafetensorsError, safetensorsErrorOf } from "./safetensors.ts";
 * const e = safetensorsErrorOf(new FileSourceError("not_found", "w.safetensors", "no such file"));
 * console.log(e instanceof SafetensorsError && e.code); // "missing_file"
 * ```
 */
export function safetensorsErrorOf(e: unknown, tensor: string | null = null): unknown {
  if (!(e instanceof FileSourceError)) return e;
  const error = new SafetensorsError(
    e.code === "not_found" ? "missing_file" : "io",
    e.file,
    tensor,
    e.detail,
  );
  error.cause = e;
  return error;
}

/**
 * Opens one safetensors file of a file source (a folder on disk, a URL, picked files): reads
 * and validates its header; tensors are read later by byte ranges.
 *
 * @param source The folder.
 * @param name The file's name in it.
 * @returns The open file; its `path` is `source.path(name)`.
 * @throws {SafetensorsError} `missing_file` when absent, `io` when it cannot be read (the
 *   source's {@linkcode FileSourceError} is the `cause`), or any header problem.
 * @example
 * ```ts
 * import { memorySource } from "./file_source.ts";
 * import { openSafetensorsIn } from "./safetensors.ts";
 * import { encodeSafetensors } from "./safetensors_writer.ts";
 * const bytes = encodeSafetensors([{ name: "w", dtype: "F32", shape: [2], data: [1, 2] }]);
 * const st = await openSafetensorsIn(memorySource({ "w.safetensors": bytes }), "w.safetensors");
 * console.log(st.path, st.info("w").shape); // "memory/w.safetensors" [2]
 * st.close();
 * ```
 */
export async function openSafetensorsIn(
  source: FileSource,
  name: string,
): Promise<SafetensorsFile> {
  let reader: ByteRangeReader;
  try {
    reader = await source.openReader(name);
  } catch (e) {
    throw safetensorsErrorOf(e);
  }
  return await openSafetensorsFrom(source.path(name), reader);
}

function missing(file: string, name: string, names: Iterable<string>): SafetensorsError {
  const all = [...names];
  const near = all.filter((n) => n.endsWith(name) || name.endsWith(n)).slice(0, 3);
  const hint = near.length > 0 ? `; similar: ${near.join(", ")}` : "";
  return new SafetensorsError(
    "missing_tensor",
    file,
    name,
    `no such tensor among ${all.length}${hint}`,
  );
}

function makeFileView(
  path: string,
  header: SafetensorsHeader,
  reader: ByteRangeReader,
): SafetensorsFile {
  const info = (name: string): TensorInfo => {
    const t = header.tensors.get(name);
    if (t === undefined) throw missing(path, name, header.tensors.keys());
    return t;
  };
  const readRange = async (name: string, start: number, target: Uint8Array) => {
    const t = info(name);
    if (!Number.isSafeInteger(start) || start < 0 || start + target.length > t.byteLength) {
      throw new SafetensorsError(
        "invalid_tensor",
        path,
        name,
        `byte range [${start}, ${start + target.length}) is outside the tensor's ` +
          `${t.byteLength} bytes`,
      );
    }
    let got: number;
    try {
      got = await reader.readInto(t.byteOffset + start, target);
    } catch (e) {
      throw safetensorsErrorOf(e, name);
    }
    if (got !== target.length) {
      throw new SafetensorsError(
        "truncated",
        path,
        name,
        `read ${got} of ${target.length} bytes at offset ${t.byteOffset + start} (file changed?)`,
      );
    }
    return target;
  };
  const readInto = (name: string, target: Uint8Array): Promise<Uint8Array> => {
    const t = info(name);
    if (target.length < t.byteLength) {
      throw new SafetensorsError(
        "invalid_tensor",
        path,
        name,
        `target holds ${target.length} bytes, expected at least ${t.byteLength}`,
      );
    }
    return readRange(name, 0, target.subarray(0, t.byteLength));
  };
  return Object.freeze({
    path,
    tensors: header.tensors,
    metadata: header.metadata,
    headerLength: header.headerLength,
    dataStart: header.dataStart,
    info,
    readInto: (name: string, target: Uint8Array) =>
      Promise.resolve().then(() => readInto(name, target)),
    readRange: (name: string, start: number, target: Uint8Array) =>
      Promise.resolve().then(() => readRange(name, start, target)),
    read: (name: string) =>
      Promise.resolve().then(() => readInto(name, new Uint8Array(info(name).byteLength))),
    close: () => reader.close(),
  });
}
