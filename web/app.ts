/// <reference lib="dom" />
/**
 * The demo page (`deno task web`): trains the built-in demo in the tab with live progress, plots,
 * samples and the final accuracy table, and generates text with a model folder the user picks.
 * Everything comes from the web entry (`web.ts`); all files are fetched once at load, so the
 * page keeps working offline.
 *
 * URL parameters: `set=key=value` (repeatable, like `--set`), `autorun=1` (start the demo at
 * once), `store=opfs` (keep the run in the origin's private file system), `model=URL` (load a
 * model folder served over HTTP, e.g. `/model/` from `deno task web --model DIR`).
 *
 * @module
 */

import {
  type EvalFile,
  generateDemoSet,
  Gpu,
  linePlotSvg,
  loadTokenizerFromUrl,
  MemoryRunStore,
  type MetricsRecord,
  renderRunReport,
  reportPlots,
  type ReportSample,
  resolveTrainConfig,
  type RunStore,
  type Tokenizer,
  type TokenizerConfig,
  train,
  type TrainConfig,
  type TrainEvent,
  type TrainResult,
} from "../web.ts";
import { type ModelPanel, setupModelPanel } from "./model_panel.ts";
import { openOpfsRunStore, trainedModelSource } from "./stores.ts";
import { setupWorkerPanel } from "./worker_panel.ts";

/** What the page exposes on `globalThis.webtune` (tests and the console read it). */
export interface DemoPageHandle {
  /** `loading`, `ready`, `running`, `done`, `interrupted` or `failed`. */
  state: string;
  /** The last run's result. */
  result: TrainResult | null;
  /** The last error's message. */
  error: string | null;
  /** Starts the demo (as the button does). */
  run(): Promise<void>;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return el as T;
};
const params = new URLSearchParams(location.search);
/** The title of the run's report (the page's store, as `report.html` in a run folder). */
const REPORT_TITLE = "webtune demo run (browser)";
const handle: DemoPageHandle = { state: "loading", result: null, error: null, run: runDemo };
(globalThis as { webtune?: DemoPageHandle }).webtune = handle;

function setState(state: string): void {
  handle.state = state;
  document.body.dataset.state = state;
}

function showError(e: unknown): void {
  const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  handle.error = message;
  $("error").textContent = message;
}

let gpu: Gpu | null = null;
let tokenizer: Tokenizer | null = null;
let tokenizerConfig: TokenizerConfig | null = null;
let panel: ModelPanel | null = null;

async function fetchJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return await response.json() as T;
}
let controller: AbortController | null = null;
let store: RunStore | null = null;
let storeKey = "";

async function init(): Promise<void> {
  setState("loading");
  // The service worker caches the page and the tokenizer: later visits work offline.
  await navigator.serviceWorker?.register("./sw.js").catch((e) => console.warn(e));
  try {
    gpu = await Gpu.create();
    const a = gpu.adapter;
    // Browsers may hide the adapter's name (privacy): say what is known.
    const name = a.description === "unknown adapter" ? "WebGPU" : a.description;
    $("adapter").textContent = `${name}${a.isFallbackAdapter ? " (software fallback)" : ""}`;
  } catch (e) {
    $("adapter").textContent = "none";
    showError(e);
    setState("failed");
    return;
  }
  try {
    // Fetched once now, so nothing later needs the server (the page works offline).
    [tokenizer, tokenizerConfig] = await Promise.all([
      loadTokenizerFromUrl("./tokenizer/tokenizer.json"),
      fetchJson<TokenizerConfig>("./tokenizer/tokenizer_config.json"),
    ]);
    $("tokenizer").textContent = "Gemma 3 (262,144 tokens)";
  } catch (e) {
    $("tokenizer").textContent = "failed";
    showError(e);
    setState("failed");
    return;
  }
  $("sets").textContent = params.getAll("set").join("\n");
  $<HTMLInputElement>("opfs").checked = params.get("store") === "opfs";
  $<HTMLButtonElement>("run").disabled = false;
  $("run").addEventListener("click", () => void runDemo());
  $("stop").addEventListener("click", () => controller?.abort());
  $("status").textContent = "Ready.";
  panel = setupModelPanel({ gpu, tokenizer, tokenizerConfig, modelUrl: params.get("model") });
  setupWorkerPanel({ gpu, tokenizer, params });
  setState("ready");
  if (params.get("autorun") === "1") await runDemo();
}

function demoConfig(): TrainConfig {
  const sets = $<HTMLTextAreaElement>("sets").value.split("\n").map((s) => s.trim()).filter(
    (s) => s.length > 0,
  );
  return resolveTrainConfig({ preset: "demo", sets });
}

/** Live view of one run: progress bar, status line, plots, samples. */
class RunView {
  readonly #metrics: MetricsRecord[] = [];
  readonly #samples: ReportSample[] = [];
  #phaseStart = 0;
  #startStep = 0;
  #plotTimer: ReturnType<typeof setTimeout> | null = null;

  onEvent = (e: TrainEvent): void => {
    const bar = $<HTMLProgressElement>("bar");
    if (e.type === "progress-start") {
      bar.max = Math.max(1, e.total);
      bar.value = e.startStep;
      this.#phaseStart = performance.now();
      this.#startStep = e.startStep;
      $("status").textContent = `${e.phase}: starting…`;
    } else if (e.type === "step") {
      bar.max = Math.max(1, e.total);
      bar.value = e.step;
      $("status").textContent = this.#statusLine(e);
    } else if (e.type === "metrics") {
      this.#metrics.push(e.record);
      this.#schedulePlots();
    } else if (e.type === "sample") {
      this.#samples.push(e.sample);
      this.#renderSamples();
    } else if (e.type === "message") {
      $("status").textContent = e.text;
    }
  };

  /** Metrics and samples of an earlier part of the run (a resumed OPFS run). */
  async load(from: RunStore): Promise<void> {
    this.#metrics.push(...await from.readMetrics());
    this.#samples.push(...await from.readSamples());
    this.#renderPlots();
    this.#renderSamples();
  }

  #statusLine(e: Extract<TrainEvent, { type: "step" }>): string {
    const v = e.values;
    const parts = [`${e.phase} ${e.step}/${e.total}`];
    const seconds = (performance.now() - this.#phaseStart) / 1000;
    const done = e.step - this.#startStep;
    if (done > 0) {
      const eta = (seconds / done) * (e.total - e.step);
      parts.push(`ETA ${eta.toFixed(0)} s`);
    }
    if (v.loss != null) parts.push(`loss ${v.loss.toFixed(4)}`);
    if (v.rewardMean != null) parts.push(`reward ${v.rewardMean.toFixed(3)}`);
    if (v.kl != null) parts.push(`KL ${v.kl.toExponential(2)}`);
    if (v.tokensPerSecond != null) parts.push(`${v.tokensPerSecond.toFixed(0)} tok/s`);
    return parts.join(" · ");
  }

  #schedulePlots(): void {
    if (this.#plotTimer !== null) return;
    this.#plotTimer = setTimeout(() => {
      this.#plotTimer = null;
      this.#renderPlots();
    }, 500);
  }

  #renderPlots(): void {
    const plots = reportPlots(this.#metrics).filter((p) => /loss|reward/i.test(p.title));
    $("plots").innerHTML = plots.map((p) =>
      linePlotSvg({
        title: `${p.phase}: ${p.title}`,
        series: p.series,
        smoothing: p.smoothing,
        width: 520,
        height: 180,
      })
    ).join("");
  }

  #renderSamples(): void {
    const latest = this.#samples.slice(-4).reverse();
    const el = $("samples");
    el.replaceChildren(...latest.map((s) => {
      const div = document.createElement("div");
      div.className = `sample${s.correct ? " correct" : ""}`;
      const reward = s.reward != null ? ` · reward ${s.reward.toFixed(2)}` : "";
      div.textContent = `[${s.phase} step ${s.step}${reward}${
        s.answer != null ? ` · answer ${s.answer}` : ""
      }]\n${s.completion}`;
      return div;
    }));
  }
}

function renderAccuracy(evals: EvalFile): void {
  const rows = (["base", "sft", "grpo"] as const).flatMap((key) => {
    const e = evals[key];
    if (!e) return [];
    const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
    return [
      `<tr data-eval="${key}"><td>${key === "base" ? "base" : key.toUpperCase()}</td>` +
      `<td>${pct(e.accuracy)}</td><td>${pct(e.partialAccuracy)}</td>` +
      `<td>${pct(e.formatAccuracy)}</td><td>${e.n}</td></tr>`,
    ];
  });
  $("accuracy").innerHTML = rows.length === 0 ? "" : `<h3>Evaluation</h3><table id="accuracy-table">
<tr><th>model</th><th>accuracy</th><th>partial</th><th>format</th><th>n</th></tr>
${rows.join("\n")}</table>`;
}

async function runDemo(): Promise<void> {
  if (!gpu || !tokenizer || handle.state === "running") return;
  const runButton = $<HTMLButtonElement>("run"), stopButton = $<HTMLButtonElement>("stop");
  $("error").textContent = "";
  handle.error = null;
  let config: TrainConfig;
  try {
    config = demoConfig();
  } catch (e) {
    showError(e);
    return;
  }
  setState("running");
  runButton.disabled = true;
  stopButton.disabled = false;
  controller = new AbortController();
  const view = new RunView();
  try {
    const useOpfs = $<HTMLInputElement>("opfs").checked;
    const key = `${useOpfs ? "opfs" : "memory"}\0${JSON.stringify(config)}`;
    if (store === null || key !== storeKey) {
      // A changed config starts a new run; the same one resumes where Stop left it.
      (store as { close?: () => void } | null)?.close?.();
      store = useOpfs ? await openOpfsRunStore(config) : new MemoryRunStore("browser");
      storeKey = key;
    }
    await view.load(store);
    const result = await train(config, {
      store,
      tokenizer,
      gpu,
      signal: controller.signal,
      onEvent: view.onEvent,
      title: REPORT_TITLE,
    });
    handle.result = result;
    renderAccuracy(result.eval);
    const link = $<HTMLAnchorElement>("download-report");
    link.href = URL.createObjectURL(
      new Blob([await renderRunReport(store, { config, title: REPORT_TITLE })], {
        type: "text/html",
      }),
    );
    link.hidden = false;
    const trained = await trainedModelSource(store);
    const useTrained = $<HTMLButtonElement>("use-trained");
    useTrained.hidden = trained === null;
    useTrained.onclick = () => {
      if (!trained) return;
      panel?.use(trained);
      // The demo model reads only its own vocabulary: ask it a held-out demo question.
      const demo = config.demoData;
      const question = demo && generateDemoSet({ ...demo, testSize: 1 }).test[0]?.question;
      if (question) $<HTMLTextAreaElement>("prompt").value = question;
    };
    $("status").textContent = result.status === "completed"
      ? "Done."
      : "Stopped with a checkpoint: Run continues it.";
    setState(result.status === "completed" ? "done" : "interrupted");
  } catch (e) {
    showError(e);
    setState("failed");
  } finally {
    runButton.disabled = false;
    stopButton.disabled = true;
    controller = null;
  }
}

await init();
