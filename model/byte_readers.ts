/**
 * Random-access byte sources for the safetensors reader: the interface, and readers over
 * in-memory bytes and `Blob`s (browser file pickers). The Deno file reader is in
 * `safetensors_fs.ts`.
 *
 * @module
 */

/** Random access to the bytes of one file (a `Deno.FsFile`, a `Blob`, an in-memory array). */
export interface ByteRangeReader {
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Fills `target` with the bytes starting at `offset`.
   *
   * @returns The number of bytes read (less than `target.length` only at end of file).
   */
  readInto(offset: number, target: Uint8Array): Promise<number>;
  /** Releases the underlying resource. */
  close(): void;
}

/**
 * A reader over bytes already in memory (tests, small files, `fetch` results).
 *
 * @param bytes The whole file.
 * @returns A reader; `close()` does nothing.
 */
export function bytesReader(bytes: Uint8Array): ByteRangeReader {
  return {
    size: bytes.length,
    readInto(offset: number, target: Uint8Array): Promise<number> {
      const part = bytes.subarray(offset, offset + target.length);
      target.set(part);
      return Promise.resolve(part.length);
    },
    close() {},
  };
}

/**
 * A reader over a `Blob`/`File` (browser file pickers): reads slices on demand.
 *
 * @param blob The file.
 * @returns A reader; `close()` does nothing.
 */
export function blobReader(blob: Blob): ByteRangeReader {
  return {
    size: blob.size,
    async readInto(offset: number, target: Uint8Array): Promise<number> {
      const part = new Uint8Array(
        await blob.slice(offset, offset + target.length).arrayBuffer(),
      );
      target.set(part);
      return part.length;
    },
    close() {},
  };
}
