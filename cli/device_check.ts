/**
 * `deno task device-check`: what webtune gets out of this machine's GPU, as one JSON summary
 * (stdout, and the file `--out`, default `./device_check.json`, rewritten after every part).
 *
 * Parts, each in a time box (an error or a timeout is recorded in its section and the rest
 * still run; the full check aims at ≤ 8 minutes on one datacentre GPU):
 * - `adapter`: what the adapter says (vendor, architecture, device, description), its features
 *   and limits, what webtune enabled, and its known peaks (`bench/peaks.ts`);
 * - `model`: Gemma 3 1B (`gemma3_1b`) on random bf16 weights, with the `gemma3-1b-gsm8k`
 *   preset's LoRA;
 * - `warmup`: compiles the pipelines and queues the kernels' tuning jobs;
 * - `tuning`: the `Gpu` runs with tuning `"full"`; `gpu.tuner.tune()` times the queued jobs'
 *   candidates (its cost and choices are recorded);
 * - `matmul`: square f32 1024/2048/4096, webtune's tuned default and every candidate variant
 *   forced, and jax-js, in the same run (GFLOP/s, % of f32 peak);
 * - `prefill`: 4 × 256 tokens (tokens/s, GFLOP/s, % of f32 peak and of the best 4096 matmul);
 * - `decode`: batch 1, 64 steps (tokens/s, GB/s of weights, % of memory bandwidth), with one
 *   wait after the last step and with ids read back every 8 steps as `generate()` does;
 * - `grpoStep`: one GRPO step of the preset at real size (4 × (256 + 768) tokens; fewer new
 *   tokens when the rates measured before say it cannot finish in its box): rollout and
 *   training tokens/s, step seconds, peak GPU bytes.
 *
 * The summary ends with `acceptance`: issue 14's GPU targets (matmul ≥ 40 % of f32 peak and
 * faster than jax-js at the largest size, prefill ≥ 60 % of the matmul rate, decode ≥ 50 % of
 * bandwidth), each `{ value, target, pass }` (`pass: null` where not measured).
 *
 * `--quick` runs every part at tiny sizes (a tiny Gemma 3; tests run it on llvmpipe). Exit
 * code 0 when every part passed, 1 otherwise (the summary is written either way), 2 for a usage
 * error.
 *
 * @module
 */

import { findPeak } from "../bench/peaks.ts";
import { WEBTUNE_VERSION } from "../base/version.ts";
import { Gpu } from "../kernels/gpu.ts";
import { parseFlagTable, runCommand, usageText } from "./_cli.ts";
import { checkMatmul } from "./_device_check_matmul.ts";
import {
  buildModel,
  checkDecode,
  checkGrpoStep,
  checkPrefill,
  type ModelUnderTest,
  warmUp,
} from "./_device_check_model.ts";
import {
  acceptance,
  type CheckSizes,
  FULL_CHECK,
  type PartName,
  type PartRecord,
  QUICK_CHECK,
  round,
  runPart,
  writeSummary,
} from "./_device_check_run.ts";

// For tests: the time box and the GRPO step's fit (private files are not importable from tests/).
export { fitGrpoStep } from "./_device_check_model.ts";
export { acceptance, runPart } from "./_device_check_run.ts";

const FLAGS = {
  out: ["string", "PATH", "where the JSON summary goes (default ./device_check.json)"],
  quick: ["boolean", "", "every part at tiny sizes (seconds; for tests)"],
} as const;
const USAGE = usageText("usage: deno task device-check [--out PATH] [--quick]", FLAGS);

/** What the adapter offers, beside what webtune's `Gpu` enabled. */
async function adapterPart(gpu: Gpu, out: Record<string, unknown>): Promise<void> {
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("requestAdapter() returned null");
  const info = adapter.info as GPUAdapterInfo & Record<string, unknown>;
  const limits: Record<string, number> = {};
  for (const key in adapter.limits) {
    limits[key] = (adapter.limits as unknown as Record<string, number>)[key];
  }
  Object.assign(out, {
    info: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      isFallbackAdapter: info.isFallbackAdapter ?? null,
      subgroupMinSize: info.subgroupMinSize ?? null,
      subgroupMaxSize: info.subgroupMaxSize ?? null,
    },
    features: [...adapter.features].sort(),
    limits,
    webtune: { adapter: gpu.adapter, features: gpu.features, limits: gpu.limits },
    peak: findPeak(gpu.adapter),
  });
}

/**
 * Times the queued tuning jobs (`gpu.tuner.tune`), stopping between jobs after half of the
 * part's `seconds` (a job in progress finishes; the rest stay queued and run the table's
 * choice).
 */
async function tuningPart(
  gpu: Gpu,
  out: Record<string, unknown>,
  signal: AbortSignal,
  seconds: number,
): Promise<void> {
  out.mode = gpu.tuner.mode;
  out.queued = gpu.tuner.pending;
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), (seconds / 2) * 1000);
  signal.addEventListener("abort", () => stop.abort());
  const report = await gpu.tuner.tune({ signal: stop.signal });
  clearTimeout(timer);
  Object.assign(out, {
    jobs: report.jobs,
    candidatesTimed: report.candidatesTimed,
    tuneSeconds: round(report.seconds, 3),
    pendingAfter: gpu.tuner.pending,
    stoppedEarly: gpu.tuner.pending > 0,
    choices: report.choices.map((c) => ({
      family: c.family,
      shapeClass: c.shapeClass,
      chosen: c.chosen,
      table: c.table,
      microseconds: Object.fromEntries(
        Object.entries(c.times).map(([id, s]) => [id, round(s * 1e6, 2)]),
      ),
      rejected: c.rejected,
    })),
  });
}

/**
 * Runs the check and writes the summary after each part.
 *
 * @param sizes Full or quick.
 * @param path Where the JSON goes.
 * @param log Progress lines (stderr).
 * @returns The summary.
 */
async function deviceCheck(
  sizes: CheckSizes,
  path: string,
  log: (line: string) => void,
): Promise<Record<string, unknown>> {
  const started = performance.now();
  const deadline = started + sizes.totalSeconds * 1000;
  const summary: Record<string, unknown> = {
    format: "webtune-device-check",
    webtune: WEBTUNE_VERSION,
    check: sizes.name,
    startedAt: new Date().toISOString(),
    seconds: 0,
    runtime: {
      deno: Deno.version.deno,
      os: Deno.build.os,
      arch: Deno.build.arch,
      webgpuBackend: Deno.env.get("DENO_WEBGPU_BACKEND") ?? null,
    },
  };
  let gpu: Gpu | null = null;
  let model: ModelUnderTest | null = null;
  const part = async (
    name: PartName,
    body: (out: Record<string, unknown>, signal: AbortSignal, seconds: number) => Promise<void>,
  ): Promise<PartRecord> => {
    const left = (deadline - performance.now()) / 1000;
    const seconds = Math.min(sizes.budgets[name], left);
    const record: PartRecord = seconds < 1
      ? { status: "timeout", seconds: 0, error: "no time left in the check" }
      : await runPart(seconds, (out, signal) => body(out, signal, seconds));
    summary[name] = record;
    summary.seconds = round((performance.now() - started) / 1000, 3);
    await writeSummary(path, summary);
    log(
      `device-check: ${name} ${record.status} (${record.seconds} s)` +
        (record.error ? `: ${record.error}` : ""),
    );
    return record;
  };
  const needGpu = () => {
    if (!gpu) throw new Error("no device (see the adapter part)");
    return gpu;
  };
  const needModel = () => {
    if (!model) throw new Error("no model (see the model part)");
    return model;
  };
  await part("adapter", async (out) => {
    gpu = await Gpu.create({ tuning: "full", powerPreference: "high-performance" });
    await adapterPart(gpu, out);
    if (gpu.adapter.isFallbackAdapter && sizes.name === "full") {
      out.warning = "a software adapter: the real sizes will run out of time; is the GPU's " +
        "Vulkan driver installed (vulkaninfo --summary)?";
    }
  });
  const peak = gpu ? findPeak((gpu as Gpu).adapter) : null;
  await part("model", async (out) => {
    model = await buildModel(needGpu(), sizes, out);
  });
  await part("warmup", (out) => warmUp(needGpu(), needModel(), sizes, out));
  await part("tuning", (out, signal, seconds) => tuningPart(needGpu(), out, signal, seconds));
  const tuned = (summary.tuning as PartRecord).choices as { shapeClass: string; chosen: string }[];
  const matmul = await part(
    "matmul",
    (out, signal) =>
      checkMatmul(needGpu(), sizes.matmul, out, signal, {
        peak,
        targetSeconds: sizes.name === "full" ? 0.25 : 0.02,
        samples: 2,
        // The matmul launcher's shape class of `x·W` at this size (kernels/matmul.ts).
        tunedVariant: (size) =>
          tuned?.find((c) => c.shapeClass === `nn:f32:m${size}:n${size}:k${size}`)?.chosen ?? null,
      }),
  );
  const best = matmul.best as { size: number; gflops: number } | undefined;
  await part("prefill", (out) =>
    checkPrefill(needModel(), sizes, out, {
      peak,
      matmul: best ? { size: best.size, gflops: best.gflops } : null,
    }));
  await part("decode", (out) => checkDecode(needModel(), sizes, out, peak));
  await part(
    "grpoStep",
    (out, _signal, seconds) => checkGrpoStep(needModel(), sizes, out, { peak, seconds }),
  );
  summary.pendingTuningJobsAtEnd = gpu ? (gpu as Gpu).tuner.pending : null;
  summary.acceptance = acceptance(summary);
  summary.seconds = round((performance.now() - started) / 1000, 3);
  summary.failed = Object.entries(summary)
    .filter(([, v]) => (v as PartRecord | null)?.status && (v as PartRecord).status !== "ok")
    .map(([k]) => k);
  await writeSummary(path, summary);
  return summary;
}

if (import.meta.main) {
  const code = await runCommand(Deno.args, {
    usage: USAGE,
    parse: (args) => parseFlagTable(args, FLAGS),
    async run(flags) {
      const path = flags.out ?? "device_check.json";
      const summary = await deviceCheck(
        flags.quick ? QUICK_CHECK : FULL_CHECK,
        path,
        (line) => console.error(line),
      );
      console.log(JSON.stringify(summary, null, 2));
      console.error(`device-check: summary written to ${path}`);
      return (summary.failed as string[]).length === 0 ? 0 : 1;
    },
  });
  // A part cut short by its box may still have GPU work in flight: end here.
  Deno.exit(code);
}
