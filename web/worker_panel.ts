/// <reference lib="dom" />
/**
 * The demo page's third panel: this tab as a GRPO rollout worker of a learner's run, over the
 * NATS server's WebSocket listener (`wsconnect`). Demo runs only: the base model comes from the
 * run itself; the learner sends the weights of each version and checks every result.
 *
 * URL parameters fill it in: `worker=ws://host:port`, `user`, `password`, `run`, and
 * `autojoin=1` joins at once.
 *
 * @module
 */

import { wsconnect } from "@nats-io/nats-core";
import {
  connectRolloutBroker,
  demoRolloutBase,
  type Gpu,
  runRolloutWorker,
  type Tokenizer,
} from "../web.ts";

/** What the panel needs from the page. */
export interface WorkerPanelOptions {
  /** The page's device. */
  readonly gpu: Gpu;
  /** Gemma 3's tokenizer (decodes the demo's completions for the rewards). */
  readonly tokenizer: Tokenizer;
  /** The page's URL parameters. */
  readonly params: URLSearchParams;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return el as T;
};

/**
 * Wires the panel; `document.body.dataset.worker` says where it stands (`joined`, `done`,
 * `failed`).
 *
 * @param options Device, tokenizer, URL parameters.
 */
export function setupWorkerPanel(options: WorkerPanelOptions): void {
  const url = $<HTMLInputElement>("worker-url"), user = $<HTMLInputElement>("worker-user");
  const password = $<HTMLInputElement>("worker-password"), run = $<HTMLInputElement>("worker-run");
  const join = $<HTMLButtonElement>("worker-join"), leave = $<HTMLButtonElement>("worker-leave");
  const status = $("worker-status");
  const p = options.params;
  url.value = p.get("worker") ?? "";
  user.value = p.get("user") ?? "";
  password.value = p.get("password") ?? "";
  run.value = p.get("run") ?? "";
  join.disabled = false;
  let controller: AbortController | null = null;

  const start = async () => {
    controller = new AbortController();
    join.disabled = true;
    leave.disabled = false;
    document.body.dataset.worker = "joined";
    try {
      status.textContent = `connecting to ${url.value}…`;
      const connection = await connectRolloutBroker(wsconnect, url.value, {
        name: "webtune-browser-worker",
        ...(user.value ? { user: user.value } : {}),
        ...(password.value ? { pass: password.value } : {}),
      });
      try {
        status.textContent = "waiting for a run…";
        const summary = await runRolloutWorker({
          connection,
          ...(run.value ? { runId: run.value } : {}),
          loadBase: (info) => {
            status.textContent = `joined run ${info.runId}`;
            return demoRolloutBase(info, { gpu: options.gpu, tokenizer: options.tokenizer });
          },
          signal: controller.signal,
          log: (line) => console.log(line),
          onProgress: (s) => {
            status.textContent = `run ${s.runId}: ${s.tasksDone} tasks, ${s.tokens} tokens, ` +
              `${s.tokensPerSecond.toFixed(0)} tok/s`;
          },
        });
        status.textContent = `left run ${summary.runId} (${summary.reason}): ` +
          `${summary.tasksDone} tasks, ${summary.tokens} tokens`;
        document.body.dataset.worker = "done";
      } finally {
        await connection.close().catch(() => {});
      }
    } catch (e) {
      status.textContent = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      document.body.dataset.worker = "failed";
    } finally {
      join.disabled = false;
      leave.disabled = true;
      controller = null;
    }
  };
  join.addEventListener("click", () => void start());
  leave.addEventListener("click", () => controller?.abort());
  if (p.get("autojoin") === "1" && url.value) void start();
}
