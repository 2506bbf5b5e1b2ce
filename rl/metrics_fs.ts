/**
 * Deno file IO for metrics and progress: a JSONL {@linkcode LineSink} that appends to a file,
 * reading a metrics file back, and a console writer for {@linkcode ProgressReporter}. The only
 * module of the metrics layer that uses `Deno.*`.
 *
 * @module
 */

import { type LineSink, type MetricsRecord, parseMetricsJsonl } from "./metrics.ts";
import { ProgressReporter, type ProgressReporterOptions, type TextWriter } from "./progress.ts";

/** Options of {@linkcode FileLineSink.open}. */
export interface FileLineSinkOptions {
  /** Start with an empty file instead of appending to an existing one (default false). */
  readonly truncate?: boolean;
  /** `fdatasync` after every line, so a power loss keeps every logged step (default false). */
  readonly sync?: boolean;
}

/**
 * Appends JSON lines to a file. Each line is written with one unbuffered write call, so it
 * reaches the operating system before {@linkcode FileLineSink.append} resolves: a crashed or
 * killed process keeps every completed line (at most the last one is cut short, which
 * {@linkcode readMetricsFile} tolerates). Resuming a run appends to the same file.
 *
 * @example
 * ```ts
 * import { FileLineSink, readMetricsFile } from "./metrics_fs.ts";
 * import { MetricsLogger } from "./metrics.ts";
 * const path = await Deno.makeTempFile({ suffix: ".jsonl" });
 * const sink = await FileLineSink.open(path);
 * const logger = new MetricsLogger(sink);
 * await logger.log("sft", 1, { loss: 1.25 });
 * sink.close();
 * if ((await readMetricsFile(path))[0].loss !== 1.25) throw new Error("bad");
 * ```
 */
export class FileLineSink implements LineSink {
  readonly #file: Deno.FsFile;
  readonly #sync: boolean;
  readonly #encoder = new TextEncoder();
  #closed = false;

  private constructor(file: Deno.FsFile, sync: boolean) {
    this.#file = file;
    this.#sync = sync;
  }

  /**
   * Opens (creating if needed) a JSONL file for appending.
   *
   * @param path File path; its directory must exist.
   * @param options See {@linkcode FileLineSinkOptions}.
   * @returns The sink; call {@linkcode FileLineSink.close} when done.
   */
  static async open(path: string | URL, options: FileLineSinkOptions = {}): Promise<FileLineSink> {
    const truncate = options.truncate ?? false;
    const file = await Deno.open(path, {
      create: true,
      write: true,
      append: !truncate,
      truncate,
    });
    return new FileLineSink(file, options.sync ?? false);
  }

  /**
   * Appends `line` and a newline.
   *
   * @param line JSON text without a newline.
   * @returns Resolves once the bytes are written (and synced when `sync` is set).
   */
  async append(line: string): Promise<void> {
    if (this.#closed) throw new Error("FileLineSink.append after close()");
    const bytes = this.#encoder.encode(line + "\n");
    let off = 0;
    while (off < bytes.length) off += await this.#file.write(bytes.subarray(off));
    if (this.#sync) await this.#file.syncData();
  }

  /** Closes the file; later appends throw. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}

/**
 * Reads a metrics JSONL file, skipping a truncated last line.
 *
 * @param path File path.
 * @returns The records in file order.
 * @throws {MetricsError} For a malformed line other than the last.
 */
export async function readMetricsFile(path: string | URL): Promise<MetricsRecord[]> {
  return parseMetricsJsonl(await Deno.readTextFile(path));
}

/** A console destination for {@linkcode ProgressReporter}. */
export interface ConsoleProgressTarget {
  /** Writes synchronously to the stream. */
  readonly writer: TextWriter;
  /** Whether the stream is a terminal (use `\r` updates) or a pipe/file (plain lines). */
  readonly interactive: boolean;
}

/**
 * Wraps stderr (default) or stdout for progress output.
 *
 * @param stream Which stream to write to.
 * @returns The writer and whether the stream is a TTY.
 * @example
 * ```ts
 * import { consoleProgressTarget } from "./metrics_fs.ts";
 * import { ProgressReporter } from "./progress.ts";
 * const { writer, interactive } = consoleProgressTarget();
 * const bar = new ProgressReporter(writer, { phase: "sft", total: 10, interactive });
 * bar.update(1, { loss: 2.1 });
 * bar.finish();
 * ```
 */
export function consoleProgressTarget(
  stream: "stderr" | "stdout" = "stderr",
): ConsoleProgressTarget {
  const target = stream === "stdout" ? Deno.stdout : Deno.stderr;
  const encoder = new TextEncoder();
  return {
    writer: {
      write(text: string): void {
        const bytes = encoder.encode(text);
        let off = 0;
        while (off < bytes.length) off += target.writeSync(bytes.subarray(off));
      },
    },
    interactive: target.isTerminal(),
  };
}

/**
 * Progress bars on the console: a factory of {@linkcode ProgressReporter}s writing to stderr
 * (default) or stdout, with `\r` updates when the stream is a terminal.
 *
 * @param stream Which stream to write to.
 * @returns Builds one reporter per phase (`interactive` is the stream's).
 * @example
 * ```ts
 * import { consoleProgress } from "./metrics_fs.ts";
 * const bar = consoleProgress()({ phase: "sft", total: 2 });
 * bar.update(1, { loss: 2.1 });
 * bar.finish();
 * ```
 */
export function consoleProgress(
  stream: "stderr" | "stdout" = "stderr",
): (options: ProgressReporterOptions) => ProgressReporter {
  const { writer, interactive } = consoleProgressTarget(stream);
  return (options) => new ProgressReporter(writer, { interactive, ...options });
}
