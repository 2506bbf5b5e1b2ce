/**
 * The files of a run's export (`export/<phase>/`) as data any runtime can write: each
 * {@linkcode ExportFile} is a name inside the export folder and a stream of bytes, produced only
 * when the file is written (a model's weights are read back from the GPU one tensor at a time),
 * so a 1B model's merged checkpoint never sits in memory whole. `RunStore.writeExport` writes
 * them: a run folder (`FsRunStore` on disk, `DirectoryRunStore` in a browser directory), or
 * memory (`MemoryRunStore`).
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";
import { type MergeableModel, mergedModelTensors, type ModelExportDtype } from "../model/peft.ts";
import { encodeTensor, planSafetensors } from "../model/safetensors_writer.ts";

/** One file of an export. */
export interface ExportFile {
  /** Path inside the export folder: a file name, or one sub-folder and a name (`merged/config.json`). */
  readonly name: string;
  /**
   * The file's bytes in order; called once per write.
   *
   * @returns The chunks.
   */
  chunks(): AsyncIterable<Uint8Array>;
}

/** An {@linkcode ExportFile} whose size is known before it is written (safetensors, bytes). */
export type SizedExportFile = ExportFile & {
  /** Its size in bytes. */
  readonly size: number;
};

/** An export file name that is not a plain relative path. */
export class ExportError extends FieldError {
  override readonly name: string = "ExportError";
}

const NAME_PART = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/**
 * Checks an export file name: one or two plain parts (`config.json`, `merged/model.safetensors`),
 * no `..`, no absolute path.
 *
 * @param name The name.
 * @returns The name.
 * @throws {ExportError} Naming it.
 * @example
 * ```ts
 * import { checkExportFileName } from "./export_files.ts";
 * checkExportFileName("merged/config.json");
 * ```
 */
export function checkExportFileName(name: string): string {
  const parts = typeof name === "string" ? name.split("/") : [];
  if (parts.length < 1 || parts.length > 2 || !parts.every((p) => NAME_PART.test(p))) {
    throw new ExportError(
      "name",
      `an export file name must be "file" or "folder/file" of plain names, got ${
        JSON.stringify(name)
      }`,
    );
  }
  return name;
}

/**
 * A file holding text (UTF-8).
 *
 * @param name Path inside the export folder.
 * @param text Contents.
 * @returns The file.
 * @example
 * ```ts
 * import { textExportFile } from "./export_files.ts";
 * const file = textExportFile("a.json", "{}\n");
 * for await (const chunk of file.chunks()) console.log(chunk.length); // 3
 * ```
 */
export function textExportFile(name: string, text: string): SizedExportFile {
  return bytesExportFile(name, new TextEncoder().encode(text));
}

/**
 * A file holding JSON (pretty-printed, with a final newline, like the run's other JSON files).
 *
 * @param name Path inside the export folder.
 * @param value JSON-serialisable value.
 * @returns The file.
 */
export function jsonExportFile(name: string, value: unknown): ExportFile {
  return textExportFile(name, jsonFileText(value));
}

/**
 * The text of a run's JSON files (`pipeline.json`, `eval.json`, exports' JSON): two-space
 * indent and a final newline.
 *
 * @param value JSON-serialisable value.
 * @returns The text.
 * @example
 * ```ts
 * import { jsonFileText } from "./export_files.ts";
 * console.log(jsonFileText({ a: 1 })); // '{\n  "a": 1\n}\n'
 * ```
 */
export function jsonFileText(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

/**
 * A file holding bytes already in memory.
 *
 * @param name Path inside the export folder.
 * @param bytes Contents.
 * @returns The file.
 */
export function bytesExportFile(name: string, bytes: Uint8Array): SizedExportFile {
  checkExportFileName(name);
  return {
    name,
    size: bytes.length,
    async *chunks() {
      yield bytes;
    },
  };
}

/** A tensor of a {@linkcode safetensorsExportFile}: header entry and its values on demand. */
export interface ExportTensor {
  /** Tensor name. */
  readonly name: string;
  /** Stored dtype. */
  readonly dtype: "F32" | "BF16";
  /** Dimensions. */
  readonly shape: readonly number[];
  /**
   * @returns Float32 values (`F32`) or bf16 bit patterns (`BF16`).
   */
  read(): Promise<Float32Array | Uint16Array>;
}

/**
 * A safetensors file whose tensors are read only while it is written, one at a time, in the
 * order given (also the header order; pass them sorted by name for the reference layout).
 *
 * @param name Path inside the export folder.
 * @param tensors The tensors.
 * @param metadata `__metadata__` (default `{ format: "pt" }`, what transformers expects).
 * @returns The file, with its size.
 * @throws {SafetensorsError} From the layout (bad names, shapes) right away.
 * @throws {ExportError} While the file is written, for a tensor whose values do not match its
 *   shape.
 * @example
 * ```ts
 * import { safetensorsExportFile } from "./export_files.ts";
 * const file = safetensorsExportFile("w.safetensors", [
 *   { name: "w", dtype: "F32", shape: [2], read: () => Promise.resolve(new Float32Array([1, 2])) },
 * ]);
 * let bytes = 0;
 * for await (const chunk of file.chunks()) bytes += chunk.length;
 * console.log(bytes === file.size); // true: 8-byte length + padded header + 8 data bytes
 * ```
 */
export function safetensorsExportFile(
  name: string,
  tensors: readonly ExportTensor[],
  metadata: Readonly<Record<string, string>> = { format: "pt" },
): SizedExportFile {
  checkExportFileName(name);
  const placeholders = tensors.map((t) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    data: { length: t.shape.reduce((a, b) => a * b, 1) } as ArrayLike<number>,
  }));
  const layout = planSafetensors(name, placeholders, metadata);
  return {
    name,
    size: layout.totalBytes,
    async *chunks() {
      yield layout.header;
      for (const [i, t] of tensors.entries()) {
        const data = await t.read();
        if (data.length !== placeholders[i].data.length) {
          throw new ExportError(
            `${name}:${t.name}`,
            `${name}: ${t.name}: shape [${t.shape.join(", ")}] needs ` +
              `${placeholders[i].data.length} values, got ${data.length}`,
          );
        }
        yield encodeTensor(name, { ...placeholders[i], data });
      }
    },
  };
}

/**
 * The Hugging Face checkpoint of a model as one export file (`model.safetensors`): its weights
 * with the LoRA update merged in when it has one (see `mergedModelTensors`).
 *
 * @param name Path inside the export folder.
 * @param model The model.
 * @param dtype Stored dtype.
 * @returns The file.
 */
export function modelSafetensorsExportFile(
  name: string,
  model: MergeableModel,
  dtype: ModelExportDtype,
): ExportFile {
  return safetensorsExportFile(name, mergedModelTensors(model, dtype));
}

/**
 * Reads a whole export file into memory (tests, `MemoryRunStore`).
 *
 * @param file The file.
 * @returns Its bytes.
 * @example
 * ```ts
 * import { readExportFile, textExportFile } from "./export_files.ts";
 * const bytes = await readExportFile(textExportFile("a.txt", "hi"));
 * console.log(new TextDecoder().decode(bytes)); // "hi"
 * ```
 */
export async function readExportFile(file: ExportFile): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of file.chunks()) {
    chunks.push(chunk.slice());
    total += chunk.length;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
