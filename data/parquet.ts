/**
 * Parquet reading on top of `hyparquet`, one row group at a time so that a `limit` stops early
 * and a large shard never has to be decoded whole. Works on any byte source (an ArrayBuffer, or
 * a lazy file reader from `dataset_fs.ts`), so it runs in browsers too.
 *
 * @module
 */

import {
  type Compressors,
  parquetMetadataAsync,
  parquetReadObjects,
  parquetSchema,
} from "hyparquet";
import type { RawRow } from "./_common.ts";
import { DatasetFormatError } from "./errors.ts";

/** A random-access byte source (hyparquet's AsyncBuffer); an `ArrayBuffer` is one. */
export interface ParquetByteSource {
  /** Total size in bytes. */
  readonly byteLength: number;
  /**
   * Reads a byte range.
   *
   * @param start First byte.
   * @param end One past the last byte.
   * @returns The bytes.
   */
  slice(start: number, end?: number): ArrayBuffer | Promise<ArrayBuffer>;
}

/** Options for {@linkcode readParquetRows}. */
export interface ReadParquetOptions {
  /**
   * Top-level columns to read; names absent from the file are ignored. All columns when
   * undefined.
   */
  readonly columns?: readonly string[];
  /**
   * Extra decompressors (e.g. from `hyparquet-compressors`) for codecs other than snappy and
   * uncompressed, which hyparquet handles itself.
   */
  readonly compressors?: Compressors;
}

function wrap(err: unknown, file: string): DatasetFormatError {
  if (err instanceof DatasetFormatError) return err;
  const why = err instanceof Error ? err.message : String(err);
  const hint = /compression|codec/i.test(why)
    ? " (pass `compressors` from hyparquet-compressors for ZSTD/GZIP/BROTLI files)"
    : "";
  return new DatasetFormatError(`cannot read parquet: ${why}${hint}`, file);
}

/**
 * Lists a parquet file's top-level column names.
 *
 * @param source The file bytes.
 * @param file The file name used in errors.
 * @returns Column names in schema order.
 * @throws {DatasetFormatError} If the bytes are not a parquet file.
 */
export async function parquetColumnNames(
  source: ParquetByteSource,
  file: string,
): Promise<string[]> {
  try {
    const metadata = await parquetMetadataAsync(source);
    return parquetSchema(metadata).children.map((c) => c.element.name);
  } catch (err) {
    throw wrap(err, file);
  }
}

/**
 * Reads a parquet file's rows as objects, row group by row group.
 *
 * @param source The file bytes.
 * @param file The file name used in errors and row positions.
 * @param options Columns to read and extra decompressors.
 * @returns One {@linkcode RawRow} per row, `line` being the 1-based row number.
 * @throws {DatasetFormatError} If the file cannot be decoded.
 * @example
 * ```ts
 * import { parquetWriteBuffer } from "hyparquet-writer";
 * import { readParquetRows } from "./parquet.ts";
 * const buf = parquetWriteBuffer({ columnData: [{ name: "q", data: ["a", "b"], type: "STRING" }] });
 * const rows = [];
 * for await (const row of readParquetRows(buf, "mem.parquet")) rows.push(row.value);
 * if (rows.length !== 2) throw new Error("expected two rows");
 * ```
 */
export async function* readParquetRows(
  source: ParquetByteSource,
  file: string,
  options: ReadParquetOptions = {},
): AsyncGenerator<RawRow> {
  let metadata;
  let columns: string[] | undefined;
  try {
    metadata = await parquetMetadataAsync(source);
    if (options.columns) {
      const present = new Set(parquetSchema(metadata).children.map((c) => c.element.name));
      columns = options.columns.filter((c) => present.has(c));
    }
  } catch (err) {
    throw wrap(err, file);
  }
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({
        file: source,
        metadata,
        columns,
        rowStart,
        rowEnd,
        compressors: options.compressors,
      });
    } catch (err) {
      throw wrap(err, file);
    }
    for (let i = 0; i < rows.length; i++) {
      yield { value: rows[i], file, line: rowStart + i + 1 };
    }
    rowStart = rowEnd;
  }
}
