/**
 * A run's report from its store, at any moment: {@linkcode renderRunReport} reads the state,
 * metrics and samples of a `RunStore` and renders the HTML `train()` writes to `report.html`
 * (`report.ts`), e.g. to show it live in a browser page after each `TrainEvent`.
 *
 * @module
 */

import type { MetricsRecord } from "./metrics.ts";
import type { PipelineState } from "./pipeline_state.ts";
import {
  renderReport,
  REPORT_SAMPLES_PER_PHASE,
  type ReportInput,
  type ReportSample,
} from "./report.ts";
import type { RunStore } from "./run_store.ts";
import type { TrainConfig } from "./train_config.ts";

/** What a run's report shows besides its state (see {@linkcode runReportInput}). */
export interface RunReportContents {
  /** Page title. */
  readonly title: string;
  /** The run's config (shown pretty-printed). */
  readonly config: TrainConfig;
  /** Every metrics record so far. */
  readonly metrics: readonly MetricsRecord[];
  /** The samples kept so far. */
  readonly samples: readonly ReportSample[];
}

/**
 * The report input of a run: its evaluations and times from `pipeline.json` (the finish time
 * once it completed), plus title, config, metrics and samples.
 *
 * @param state The run's state, or null before it started.
 * @param contents Title, config, metrics, samples.
 * @returns The input of `renderReport`.
 * @example
 * ```ts
 * import { runReportInput } from "./run_report.ts";
 * import { resolveTrainConfig } from "./presets.ts";
 * const input = runReportInput(null, {
 *   title: "run",
 *   config: resolveTrainConfig({ preset: "demo" }),
 *   metrics: [],
 *   samples: [],
 * });
 * console.log(input.evals, input.finishedAt); // {} undefined
 * ```
 */
export function runReportInput(
  state: PipelineState | null,
  contents: RunReportContents,
): ReportInput {
  return {
    ...contents,
    evals: state?.evals ?? {},
    samplesPerPhase: REPORT_SAMPLES_PER_PHASE,
    startedAt: state?.startedAt,
    finishedAt: state?.status === "completed" ? state.updatedAt : undefined,
  };
}

/** Options of {@linkcode renderRunReport}. */
export interface RunReportOptions {
  /** The run's config. */
  readonly config: TrainConfig;
  /** Page title (default `train()`'s: `webtune <preset> run <runDir>`). */
  readonly title?: string;
}

/**
 * Renders a run's report from what its store holds now (state, every metrics row and sample
 * written so far): the HTML `train()` writes to `report.html`, but current at any moment, e.g.
 * after each `TrainEvent` of a run in progress. Reads only; any runtime.
 *
 * @param store The run's store.
 * @param options The run's config and the title.
 * @returns The self-contained HTML page.
 * @example
 * ```ts
 * import { renderRunReport } from "./run_report.ts";
 * import { MemoryRunStore } from "./run_store.ts";
 * import { resolveTrainConfig } from "./presets.ts";
 * const store = new MemoryRunStore();
 * store.metrics.append('{"phase":"sft","step":1,"loss":2.5}');
 * const html = await renderRunReport(store, { config: resolveTrainConfig({ preset: "demo" }) });
 * console.log(html.includes("<title>webtune demo run memory</title>")); // true
 * ```
 */
export async function renderRunReport(store: RunStore, options: RunReportOptions): Promise<string> {
  const [state, metrics, samples] = await Promise.all([
    store.readState(),
    store.readMetrics(),
    store.readSamples(),
  ]);
  return renderReport(runReportInput(state, {
    title: options.title ?? `webtune ${options.config.preset} run ${store.runDir}`,
    config: options.config,
    metrics,
    samples,
  }));
}
