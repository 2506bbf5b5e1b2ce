/**
 * A model folder served over HTTP as a {@linkcode FileSource}: small files are fetched whole,
 * weights by HTTP range requests (`Range: bytes=a-b`, answered `206 Partial Content`), so a
 * multi-GB checkpoint is read one tensor at a time and never sits in memory as a whole. Works
 * with any static server that supports ranges (most do), a CDN, or the Hugging Face Hub
 * (`https://huggingface.co/<repo>/resolve/main/`; gated repos need an `Authorization` header).
 *
 * @module
 */

import type { ByteRangeReader } from "./byte_readers.ts";
import { bytesReader } from "./byte_readers.ts";
import { type FileSource, FileSourceError } from "./file_source.ts";

/** The `fetch` {@linkcode urlSource} calls (the global one by default). */
export type FetchLike = (input: URL | Request | string, init?: RequestInit) => Promise<Response>;

/** Options of {@linkcode urlSource}. */
export interface UrlSourceOptions {
  /** Headers sent with every request (e.g. `{ Authorization: "Bearer hf_…" }`). */
  readonly headers?: HeadersInit;
  /** The fetch function (default `globalThis.fetch`). */
  readonly fetch?: FetchLike;
  /**
   * The largest file read whole when the server ignores `Range` (answers 200 with the whole
   * file); a larger one is refused with `range_unsupported`. Default 1 MiB.
   */
  readonly wholeFileLimit?: number;
}

/** Default of {@linkcode UrlSourceOptions.wholeFileLimit}. */
export const DEFAULT_WHOLE_FILE_LIMIT = 1 << 20;

/**
 * Resolves a URL the way a page does (relative to the page; absolute elsewhere).
 *
 * @param url An absolute URL, or one relative to the page.
 * @returns The absolute URL.
 * @throws {FileSourceError} `io` for a relative URL outside a page.
 * @example
 * ```ts
 * import { resolveUrl } from "./file_source_http.ts";
 * console.log(resolveUrl("https://example.com/models/tiny/").pathname); // "/models/tiny/"
 * ```
 */
export function resolveUrl(url: string | URL): URL {
  let base: string | undefined;
  try {
    base = (globalThis as { location?: { href?: string } }).location?.href;
  } catch {
    base = undefined; // Deno without --location throws on `location`
  }
  try {
    return new URL(String(url), base);
  } catch {
    throw new FileSourceError("io", String(url), "not an absolute URL (and no page to resolve it)");
  }
}

function statusText(response: Response): string {
  return `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`;
}

function httpError(url: string, response: Response, what: string): FileSourceError {
  const missing = response.status === 404 || response.status === 410;
  return new FileSourceError(
    missing ? "not_found" : "http",
    url,
    `${what}: ${statusText(response)}`,
    response.status,
  );
}

/** Reads a response body into `target`; a body longer than `target` throws `tooLong()`. */
async function readBodyInto(
  url: string,
  response: Response,
  target: Uint8Array,
  tooLong: () => FileSourceError,
): Promise<number> {
  if (response.body === null) return 0;
  const reader = response.body.getReader();
  let done = 0;
  try {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) return done;
      if (done + chunk.value.length > target.length) {
        await reader.cancel();
        throw tooLong();
      }
      target.set(chunk.value, done);
      done += chunk.value.length;
    }
  } catch (e) {
    if (e instanceof FileSourceError) throw e;
    throw new FileSourceError("io", url, `reading the response failed: ${(e as Error).message}`);
  } finally {
    reader.releaseLock();
  }
}

/** `bytes a-b/total` or `bytes *\/total` → total (null when absent or `*`). */
function contentRangeTotal(response: Response): number | null {
  const m = /\/(\d+)\s*$/.exec(response.headers.get("content-range") ?? "");
  return m ? Number(m[1]) : null;
}

function contentRangeStart(response: Response): number | null {
  const m = /^\s*bytes\s+(\d+)-/.exec(response.headers.get("content-range") ?? "");
  return m ? Number(m[1]) : null;
}

/**
 * A model folder served over HTTP.
 *
 * - `readText` GETs a whole file (`config.json`, `tokenizer.json`, a sharded index);
 * - `exists` sends HEAD (a server that refuses HEAD gets a one-byte ranged GET);
 * - `openReader` first asks for byte 0 (`Range: bytes=0-0`) to learn the size from
 *   `Content-Range` (or a HEAD's `Content-Length`) and that ranges work; then every read is one
 *   ranged GET that must be answered 206. A server that ignores ranges (200, the whole file) is
 *   refused with `range_unsupported` unless the file is at most `wholeFileLimit` bytes, which
 *   is then read whole once.
 *
 * Errors are {@linkcode FileSourceError}s naming the URL and the HTTP status. Cross-origin
 * servers must allow the `Range` header's response (`Access-Control-Expose-Headers:
 * Content-Range`, or a `Content-Length` on HEAD).
 *
 * @param baseUrl The folder's URL (a trailing `/` is added); relative URLs resolve against the
 *   page.
 * @param options Headers, fetch, and the whole-file limit.
 * @returns The source; its `label` is the folder URL.
 * @example
 * ```ts ignore
 * import { urlSource } from "./file_source_http.ts";
 * const source = urlSource("https://huggingface.co/google/gemma-3-1b-it/resolve/main/", {
 *   headers: { Authorization: "Bearer hf_..." },
 * });
 * const config = JSON.parse(await source.readText("config.json"));
 * ```
 */
export function urlSource(baseUrl: string | URL, options: UrlSourceOptions = {}): FileSource {
  const base = resolveUrl(baseUrl);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  const doFetch: FetchLike = options.fetch ?? ((input, init) => fetch(input, init));
  const wholeFileLimit = options.wholeFileLimit ?? DEFAULT_WHOLE_FILE_LIMIT;
  const fileUrl = (name: string) =>
    new URL(name.split("/").map(encodeURIComponent).join("/"), base).href;

  const request = async (
    url: string,
    init: { method?: string; range?: string },
  ): Promise<Response> => {
    const headers = new Headers(options.headers);
    if (init.range !== undefined) headers.set("Range", init.range);
    try {
      return await doFetch(url, { method: init.method ?? "GET", headers });
    } catch (e) {
      throw new FileSourceError("io", url, `request failed: ${(e as Error).message}`);
    }
  };

  const exists = async (name: string): Promise<boolean> => {
    const url = fileUrl(name);
    let response = await request(url, { method: "HEAD" });
    if (response.status === 405 || response.status === 501) {
      response = await request(url, { range: "bytes=0-0" });
      await response.body?.cancel();
    }
    if (response.ok) return true;
    if (response.status === 404 || response.status === 410) return false;
    if (response.status === 416) return true; // an empty file
    throw httpError(url, response, "checking whether the file exists");
  };

  const readText = async (name: string): Promise<string> => {
    const url = fileUrl(name);
    const response = await request(url, {});
    if (!response.ok) {
      await response.body?.cancel();
      throw httpError(url, response, "GET");
    }
    try {
      return await response.text();
    } catch (e) {
      throw new FileSourceError("io", url, `reading the response failed: ${(e as Error).message}`);
    }
  };

  const ignoredRange = (url: string, size: number | null) =>
    new FileSourceError(
      "range_unsupported",
      url,
      `the server ignored the Range header (answered 200 with the whole ` +
        `${size === null ? "file" : `${size}-byte file`} instead of 206 Partial Content); ` +
        `webtune reads weights by byte ranges, so serve the folder with a server that supports ` +
        `HTTP range requests (files up to ${wholeFileLimit} bytes are read whole)`,
      200,
    );

  /** Reads a whole file answered 200 to a ranged request, when it is small enough. */
  const readWhole = async (url: string, response: Response): Promise<ByteRangeReader> => {
    const length = response.headers.get("content-length");
    const declared = length === null ? null : Number(length);
    if (declared !== null && declared > wholeFileLimit) {
      await response.body?.cancel();
      throw ignoredRange(url, declared);
    }
    const buffer = new Uint8Array(declared ?? wholeFileLimit);
    const got = await readBodyInto(url, response, buffer, () => ignoredRange(url, null));
    return bytesReader(buffer.subarray(0, got));
  };

  const openReader = async (name: string): Promise<ByteRangeReader> => {
    const url = fileUrl(name);
    const probe = await request(url, { range: "bytes=0-0" });
    if (probe.status === 200) return await readWhole(url, probe);
    await probe.body?.cancel();
    let size: number | null;
    if (probe.status === 206 || probe.status === 416) {
      size = contentRangeTotal(probe);
      if (size === null) {
        // subtle: a cross-origin server may hide Content-Range; HEAD's Content-Length says it too.
        const head = await request(url, { method: "HEAD" });
        const length = head.ok ? head.headers.get("content-length") : null;
        size = length === null ? null : Number(length);
      }
      if (size === null || !Number.isSafeInteger(size)) {
        throw new FileSourceError(
          "http",
          url,
          "cannot tell the file's size: expected a Content-Range header on 206 (expose it " +
            "with Access-Control-Expose-Headers) or a Content-Length on HEAD",
          probe.status,
        );
      }
    } else {
      throw httpError(url, probe, "GET bytes=0-0");
    }
    const fileSize = size;
    let closed = false;
    return {
      size: fileSize,
      async readInto(offset: number, target: Uint8Array): Promise<number> {
        if (closed) throw new FileSourceError("io", url, "read after close()");
        const end = Math.min(offset + target.length, fileSize);
        if (end <= offset) return 0;
        const range = `bytes=${offset}-${end - 1}`;
        const response = await request(url, { range });
        const whole = offset === 0 && end === fileSize;
        if (response.status === 206) {
          const start = contentRangeStart(response);
          if (start !== null && start !== offset) {
            await response.body?.cancel();
            throw new FileSourceError(
              "http",
              url,
              `asked for ${range}, the server sent bytes from ${start}`,
              206,
            );
          }
        } else if (!(response.status === 200 && whole)) {
          await response.body?.cancel();
          if (response.status === 200) throw ignoredRange(url, fileSize);
          throw httpError(url, response, `GET ${range}`);
        }
        const got = await readBodyInto(
          url,
          response,
          target.subarray(0, end - offset),
          () =>
            new FileSourceError(
              "http",
              url,
              `${range}: the response holds more than the ${end - offset} bytes asked for`,
              response.status,
            ),
        );
        if (got !== end - offset) {
          throw new FileSourceError(
            "io",
            url,
            `${range}: got ${got} of ${end - offset} bytes (connection cut, or the file changed)`,
            response.status,
          );
        }
        return got;
      },
      close() {
        closed = true;
      },
    };
  };

  return Object.freeze({
    label: base.href,
    path: fileUrl,
    exists,
    readText,
    openReader,
  });
}
