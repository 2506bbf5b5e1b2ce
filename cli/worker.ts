/**
 * `deno task worker --broker nats://host:port [--model DIR]`: a GRPO rollout worker. It joins
 * the newest run the broker announces (or `--run ID`), builds the learner's base model — the
 * demo's from the run itself, or its own `--model` folder, refused before any task when its
 * fingerprint differs —, then samples tasks with the adapter or weights version each names,
 * scores them with the run's reward functions and sends the results back. Progress (tasks,
 * tokens/s) goes to stderr; Ctrl-C or SIGTERM hands the unfinished task back and exits. With
 * kernel tuning on (`--tuning`), shape classes met by a task are timed after it (one progress
 * line), so later tasks use the fastest variants.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import type { TuningMode } from "../kernels/tuning.ts";
import { consoleProgress } from "../rl/metrics_fs.ts";
import { RolloutBrokerError } from "../rl/rollout_connect.ts";
import {
  type RolloutWorkerBase,
  RolloutWorkerError,
  runRolloutWorker,
} from "../rl/rollout_worker.ts";
import { progressLines, tuneKernels } from "../rl/train_events.ts";
import {
  BROKER_FLAGS,
  type BrokerAddress,
  brokerAddress,
  type BrokerEnv,
  connectBroker,
  workerBase,
} from "./_broker.ts";
import {
  cliGpuOptions,
  parseFlagTable,
  parseTuning,
  runCommand,
  TUNING_FLAG,
  UsageError,
  usageText,
} from "./_cli.ts";

const FLAGS = {
  ...BROKER_FLAGS,
  model: ["string", "DIR", "the base model folder (not needed for the demo)"],
  run: ["string", "ID", "the run to join (default: the newest announced one)"],
  id: ["string", "NAME", "this worker's id (default random)"],
  "max-tasks": ["int", "N", "stop after N tasks (default: until the run ends)"],
  ...TUNING_FLAG,
} as const;
const USAGE = usageText(
  "usage: deno task worker --broker nats://host:port [--model DIR] [--run ID]\n" +
    "       [--tuning off|cached|full]",
  FLAGS,
) + `

Credentials may also come from WEBTUNE_BROKER_USER / WEBTUNE_BROKER_PASSWORD. The worker ends
when the learner finishes its run, or on Ctrl-C / SIGTERM (its unfinished task is handed back).`;

/** Parsed command line of `deno task worker`. */
export interface WorkerArgs {
  /** The broker. */
  readonly broker: BrokerAddress;
  /** `--model`, or null. */
  readonly model: string | null;
  /** `--run`, or null. */
  readonly run: string | null;
  /** `--id`, or null. */
  readonly id: string | null;
  /** `--max-tasks`, or null. */
  readonly maxTasks: number | null;
  /** `--tuning`, or null: the default for the adapter. */
  readonly tuning: TuningMode | null;
}

/**
 * Parses the command line.
 *
 * @param args Arguments after the script name.
 * @param env Environment (broker credentials).
 * @returns The options, or null for `--help`.
 * @throws {UsageError} For unknown or malformed options, or a missing `--broker`.
 * @example
 * ```ts
 * import { parseWorkerArgs } from "./worker.ts";
 * console.log(parseWorkerArgs(["--broker", "nats://127.0.0.1:4222"], {})?.broker.url);
 * // "nats://127.0.0.1:4222"
 * ```
 */
export function parseWorkerArgs(
  args: readonly string[],
  env: BrokerEnv,
): WorkerArgs | null {
  const v = parseFlagTable(args, FLAGS);
  if (v === null) return null;
  const broker = brokerAddress(v, env);
  if (broker === null) throw new UsageError("--broker URL is required");
  return Object.freeze({
    broker,
    model: v.model ?? null,
    run: v.run ?? null,
    id: v.id ?? null,
    maxTasks: v.maxTasks ?? null,
    tuning: parseTuning(v.tuning),
  });
}

/** The base with kernel tuning after each sampling call (which met the shape classes). */
function tuningAfterSampling(base: RolloutWorkerBase, gpu: Gpu): RolloutWorkerBase {
  const model = base.model, bars = progressLines(consoleProgress());
  return {
    ...base,
    model: {
      async generateWithLogprobs(...args) {
        const out = await model.generateWithLogprobs(...args);
        await tuneKernels(gpu, bars);
        return out;
      },
    },
  };
}

async function run(a: WorkerArgs): Promise<number> {
  const controller = new AbortController();
  const stop = () => {
    console.error("stopping: handing the unfinished task back");
    controller.abort();
  };
  for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, stop);
  const connection = await connectBroker(a.broker, `webtune-worker${a.id ? `-${a.id}` : ""}`);
  const gpu = await Gpu.create(cliGpuOptions(a.tuning, { warn: console.error }));
  try {
    const summary = await runRolloutWorker({
      connection,
      ...(a.run !== null ? { runId: a.run } : {}),
      ...(a.id !== null ? { workerId: a.id } : {}),
      ...(a.maxTasks !== null ? { maxTasks: a.maxTasks } : {}),
      loadBase: async (info) => {
        console.error(`joining run ${info.runId}`);
        return tuningAfterSampling(await workerBase(info, { model: a.model, gpu }), gpu);
      },
      signal: controller.signal,
      log: (line) => console.error(line),
      onProgress: (p) =>
        console.error(
          `run ${p.runId}: ${p.tasksDone} tasks, ${p.tokens} tokens, ` +
            `${p.tokensPerSecond.toFixed(0)} tok/s`,
        ),
    });
    console.error(
      `worker ${summary.workerId} done (${summary.reason}): ${summary.tasksDone} tasks, ` +
        `${summary.tokens} tokens`,
    );
    return 0;
  } finally {
    for (const s of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(s, stop);
    await connection.close().catch(() => {});
    gpu.destroy();
  }
}

const plainErrors = [RolloutWorkerError, RolloutBrokerError, UsageError];
if (import.meta.main) {
  const env = Deno.env.toObject();
  const parse = (args: readonly string[]) => parseWorkerArgs(args, env);
  Deno.exit(await runCommand(Deno.args, { usage: USAGE, parse, run, plainErrors }));
}
