/**
 * The layer fusions (`model/layer_fusion.ts`) fused vs separate, at Gemma 3 1B's sizes (hidden
 * 1152, intermediate 6912 with a bf16 up-projection, 4 query heads and 1 KV head of 256), for
 * decode (T = 1, 4) and prefill (T = 256) — the very scratch launches the tuner times:
 *
 * - `norm_rope` (q and k): `rmsNorm(x, q_norm, { rope })` vs `rmsNorm`, then `rope` in place;
 * - `norm_chain`: the post-attention residual norm with `next` vs it and `rmsNorm(h, pre_ffw)`;
 * - `geglu_up`: `matmul(x₂, W_up, { gate })` vs the up-projection, then `geglu`.
 *
 * Each iteration records enough launches for ~0.3 s of GPU work (calibrated once) and waits once.
 * Both forms of a pair count the same work — the bytes the fused launch must move (GB/s), or the
 * product's FLOPs for the prefill up-projection (GFLOP/s) — so the ratio of their rates is the
 * fused form's speedup; the summary ends with it per pair.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import type { TuningBench } from "../kernels/tuning.ts";
import { gegluUpBench, normChainBench, normRopeBench } from "../model/layer_fusion.ts";
import { benchRates, median, type RateCase, rateCase, type RateUnit } from "./_measure.ts";

const gpu = await Gpu.create();
const D = 1152, I = 6912, HEAD_DIM = 256;

/** A fused/separate pair of one fusion's scratch launches. */
function pair(what: string, bench: TuningBench, work: number, unit: RateUnit): RateCase[] {
  return (["separate", "fused"] as const).map((id) =>
    rateCase(`${what} ${id}`, work, unit, () => bench.launch(id))
  );
}

const cases: RateCase[] = [1, 4, 256].flatMap((t) => [
  ...[["q", 4], ["k", 1]].flatMap(([name, heads]) => {
    const n = t * (heads as number) * HEAD_DIM;
    const bench = normRopeBench(gpu, {
      tokens: t,
      heads: heads as number,
      headDim: HEAD_DIM,
      wDtype: "bf16",
      base: 1e6,
    });
    // x in, y and rstd out, the weight, a cos/sin row and a position per token.
    const bytes = 2 * 4 * n + 4 * t * (heads as number) + 2 * HEAD_DIM + 4 * t * (HEAD_DIM + 1);
    return pair(`norm_rope ${name} T=${t} ${t}x${heads}x${HEAD_DIM}`, bench, bytes, "GB/s");
  }),
  // o and h in, h and x₂ out, two rstd rows, two weights.
  ...pair(
    `norm_chain T=${t} ${t}x${D}`,
    normChainBench(gpu, { tokens: t, d: D, wDtype: "bf16" }),
    4 * 4 * t * D + 2 * 4 * t + 2 * 2 * D,
    "GB/s",
  ),
  // W, x, gate and act (decode); the product's FLOPs (prefill).
  ...pair(
    `geglu_up T=${t} ${I}x${D} bf16`,
    gegluUpBench(gpu, { tokens: t, n: I, k: D, wDtype: "bf16" }),
    t <= 4 ? 2 * I * D + 4 * (t * D + 2 * t * I) : 2 * t * I * D,
    t <= 4 ? "GB/s" : "GFLOP/s",
  ),
]);

benchRates(gpu, cases, {
  bench: (c) => ({
    n: 5,
    warmup: 1,
    group: c.name.replace(/ (separate|fused)$/, ""),
    calibrate: { compileLaunches: 2, firstLaunches: 4 },
  }),
  line: { nameWidth: 48, numberWidth: 8, ms: true },
  title: "layer fusions, fused vs separate, Gemma 3 1B sizes",
});

// Registered after benchRates' summary, so it prints below it.
globalThis.addEventListener("unload", () => {
  for (let i = 0; i < cases.length; i += 2) {
    const [separate, fused] = [cases[i], cases[i + 1]];
    if (separate.ms.length === 0 || fused.ms.length === 0) continue;
    const speedup = median(separate.ms) / median(fused.ms);
    console.log(`${fused.name.replace(/ fused$/, "")}: fused ${speedup.toFixed(2)}× as fast`);
  }
});
