/**
 * Writes a run's `report.html` for the pipeline (`pipeline.ts`): after each phase, and live
 * while a phase runs, throttled to one render per `everyMs`. The metrics come from the store
 * only at a sync (pipeline start, each phase end); in between, from the logger's in-memory
 * records, so a live render reads no file. Private to `rl/`.
 *
 * @module
 */

import type { MetricsLogger, MetricsRecord } from "./metrics.ts";
import type { RunStore } from "./run_store.ts";

/** Options of {@linkcode ReportWriter}. */
export interface ReportWriterOptions {
  /** Where the report and the metrics are. */
  readonly store: RunStore;
  /** The run's logger (its `records()` are the metrics logged since the last sync). */
  readonly logger: MetricsLogger;
  /**
   * Renders the report.
   *
   * @param metrics Every metrics record so far.
   * @returns The HTML.
   */
  readonly render: (metrics: readonly MetricsRecord[]) => string;
  /** Least milliseconds between two live renders (0: every call). */
  readonly everyMs: number;
  /** Milliseconds of a monotonic clock. */
  readonly clock: () => number;
  /**
   * Told (once) that a live write failed; the run goes on.
   *
   * @param error The write's error.
   */
  readonly onLiveError: (error: unknown) => void;
}

/**
 * Renders and writes `report.html`, every write in call order.
 *
 * @example
 * ```ts
 * import { ReportWriter } from "./_report_writer.ts";
 * import { MetricsLogger } from "./metrics.ts";
 * import { MemoryRunStore } from "./run_store.ts";
 * const store = new MemoryRunStore();
 * const logger = new MetricsLogger(store.metricsSink);
 * const reports = new ReportWriter({
 *   store,
 *   logger,
 *   render: (metrics) => `${metrics.length} rows`,
 *   everyMs: 30_000,
 *   clock: () => 0,
 *   onLiveError: () => {},
 * });
 * await reports.sync();
 * await logger.log("sft", 1, { loss: 1 });
 * reports.refresh(); // the first live render; the next one 30 s later at the earliest
 * await reports.write();
 * if (store.report !== "1 rows") throw new Error(String(store.report));
 * ```
 */
export class ReportWriter {
  readonly #o: ReportWriterOptions;
  #stored: MetricsRecord[] = [];
  #loggedAtSync = 0;
  #writes: Promise<void> = Promise.resolve();
  #lastLive = -Infinity;
  #liveFailed = false;

  /** @param options Store, logger, renderer, interval, clock, error sink. */
  constructor(options: ReportWriterOptions) {
    this.#o = options;
  }

  /** Reads the store's metrics (after flushing the logger); later renders add what is logged. */
  async sync(): Promise<void> {
    await this.#o.logger.flush().catch(() => {});
    this.#stored = await this.#o.store.readMetrics();
    this.#loggedAtSync = this.#o.logger.records().length;
  }

  #metrics(): MetricsRecord[] {
    return this.#stored.concat(this.#o.logger.records().slice(this.#loggedAtSync));
  }

  /**
   * Syncs the metrics, renders and writes the report (after any pending live write).
   *
   * @returns Resolves when written; rejects with the store's error.
   */
  async write(): Promise<void> {
    await this.sync();
    const html = this.#o.render(this.#metrics());
    const write = this.#writes.then(() => this.#o.store.writeReport(html));
    this.#writes = write.catch(() => {});
    await write;
  }

  /** Renders and writes in the background when `everyMs` passed since the last live render. */
  refresh(): void {
    const t = this.#o.clock();
    if (t - this.#lastLive < this.#o.everyMs) return;
    this.#lastLive = t;
    const html = this.#o.render(this.#metrics());
    this.#writes = this.#writes.then(() => this.#o.store.writeReport(html)).catch((e) => {
      if (!this.#liveFailed) this.#o.onLiveError(e);
      this.#liveFailed = true;
    });
  }
}
