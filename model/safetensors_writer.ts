/**
 * Writing safetensors, browser-clean: lays out the header (space-padded to 8 bytes like the
 * reference implementation) and encodes tensors. `writeSafetensors` in `safetensors_fs.ts`
 * writes the layout to disk atomically, one tensor at a time.
 *
 * Tensors are stored in the order given (no reordering), so re-encoding the tensors of a file
 * in its header order with its metadata reproduces the file byte for byte.
 *
 * @module
 */

import {
  MAX_HEADER_BYTES,
  SAFETENSORS_DTYPE_BYTES,
  type SafetensorsDtype,
  SafetensorsError,
} from "./safetensors.ts";
import { encodeTensorData, type TensorData, tensorDataLength } from "./safetensors_dtype.ts";

/** One tensor to write. */
export interface TensorToWrite {
  /** Tensor name (not `__metadata__`, unique in the file). */
  readonly name: string;
  /** Stored element type. */
  readonly dtype: SafetensorsDtype;
  /** Dimensions, row-major. */
  readonly shape: readonly number[];
  /** Values or raw bytes (see {@linkcode TensorData}); product(shape) elements. */
  readonly data: TensorData;
}

/** Where each tensor goes in the file. */
export interface SafetensorsLayout {
  /** The first 8 + N bytes: length field and padded JSON header. */
  readonly header: Uint8Array;
  /** Tensors in file order with their absolute byte ranges. */
  readonly entries: readonly {
    readonly tensor: TensorToWrite;
    readonly byteOffset: number;
    readonly byteLength: number;
  }[];
  /** Total file size. */
  readonly totalBytes: number;
}

/**
 * Validates the tensors and lays out the file.
 *
 * @param file File name for messages.
 * @param tensors Tensors in the order they are to be stored.
 * @param metadata `__metadata__` (string → string); omitted from the header when empty.
 * @returns The header bytes and each tensor's byte range.
 * @throws {SafetensorsError} `invalid_tensor` (bad name, shape, dtype or element count) or
 *   `invalid_header` (non-string metadata, header over 100 MB).
 */
export function planSafetensors(
  file: string,
  tensors: readonly TensorToWrite[],
  metadata: Readonly<Record<string, string>> = {},
): SafetensorsLayout {
  const parts: string[] = [];
  const metaEntries = Object.entries(metadata);
  for (const [key, value] of metaEntries) {
    if (typeof value !== "string") {
      throw new SafetensorsError(
        "invalid_header",
        file,
        null,
        `metadata["${key}"] must be a string, got ${typeof value}`,
      );
    }
  }
  if (metaEntries.length > 0) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  const seen = new Set<string>();
  const entries: { tensor: TensorToWrite; byteOffset: number; byteLength: number }[] = [];
  let offset = 0;
  for (const t of tensors) {
    const bad = (detail: string) => new SafetensorsError("invalid_tensor", file, t.name, detail);
    if (typeof t.name !== "string" || t.name === "" || t.name === "__metadata__") {
      throw bad("name must be a non-empty string other than __metadata__");
    }
    if (seen.has(t.name)) throw bad("duplicate tensor name");
    seen.add(t.name);
    if (!Object.hasOwn(SAFETENSORS_DTYPE_BYTES, t.dtype)) {
      throw bad(`unknown dtype "${t.dtype}"`);
    }
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`shape must hold non-negative integers, got [${t.shape.join(", ")}]`);
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const have = tensorDataLength(t.dtype, t.data);
    if (have !== numel) {
      throw bad(
        `shape [${t.shape.join(", ")}] needs ${numel} ${t.dtype} elements, data holds ` +
          (have < 0 ? `${t.data.length} bytes (not whole elements)` : `${have}`),
      );
    }
    const byteLength = numel * SAFETENSORS_DTYPE_BYTES[t.dtype];
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(",")}],` +
        `"data_offsets":[${offset},${offset + byteLength}]}`,
    );
    entries.push({ tensor: t, byteOffset: offset, byteLength });
    offset += byteLength;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) {
    throw new SafetensorsError("invalid_header", file, null, `header of ${padded} bytes > 100 MB`);
  }
  const header = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  const dataStart = header.length;
  return Object.freeze({
    header,
    entries: Object.freeze(
      entries.map((e) => Object.freeze({ ...e, byteOffset: e.byteOffset + dataStart })),
    ),
    totalBytes: dataStart + offset,
  });
}

/**
 * Encodes one tensor of a layout.
 *
 * @param file File name for messages.
 * @param tensor The tensor.
 * @returns Its raw bytes.
 * @throws {SafetensorsError} `invalid_tensor` for values that do not fit the dtype.
 */
export function encodeTensor(file: string, tensor: TensorToWrite): Uint8Array {
  try {
    return encodeTensorData(tensor.dtype, tensor.data);
  } catch (e) {
    if (e instanceof SafetensorsError) {
      throw new SafetensorsError("invalid_tensor", file, tensor.name, e.message);
    }
    throw e;
  }
}

/**
 * Encodes a whole safetensors file in memory.
 *
 * @param tensors Tensors in storage order.
 * @param metadata `__metadata__` (string → string), e.g. `{ format: "pt" }`.
 * @returns The file's bytes.
 * @throws {SafetensorsError} `invalid_tensor` / `invalid_header` on bad input.
 * @example
 * ```ts
 * import { encodeSafetensors } from "./safetensors_writer.ts";
 * const bytes = encodeSafetensors(
 *   [{ name: "w", dtype: "BF16", shape: [2, 2], data: [1, 2, 3, 4] }],
 *   { format: "pt" },
 * );
 * console.log(bytes.length); // 8 + 88 (header) + 8 (data)
 * ```
 */
export function encodeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const layout = planSafetensors("<memory>", tensors, metadata);
  const out = new Uint8Array(layout.totalBytes);
  out.set(layout.header, 0);
  for (const e of layout.entries) out.set(encodeTensor("<memory>", e.tensor), e.byteOffset);
  return out;
}
