/**
 * GeGLU fused into the up projection's epilogue vs the unfused sequence, at Gemma 3 1B's MLP
 * shapes (hidden K = 1152, intermediate N = 6912, bf16 `up_proj` weight `[N, K]`), for decode
 * (T = 1 and 4 tokens) and prefill (T = 256):
 *
 * - `unfused`: `up = matmul(x, W)`, then `act = geglu(gate, up)` (two launches, `up` written
 *   and read back);
 * - `fused`: `act = matmul(x, W, { gate })` (one launch).
 *
 * Both run webtune's default variant (tuning off: the deterministic table's). Each iteration
 * records enough launches for ~0.3 s of GPU work (calibrated once) and waits once, so Deno's
 * ≥ 10 ms GPU wait stays under 5 %. Both cases of a T count the same work, so their rates
 * compare directly: decode (memory bound) in GB/s of the fused launch's minimal traffic (W, x,
 * gate and act), prefill (compute bound) in GFLOP/s of the product; the summary ends with the
 * fused / unfused speedup per T.
 *
 * @module
 */

import { toBf16 } from "../kernels/dtype.ts";
import { geglu } from "../kernels/geglu.ts";
import { Gpu } from "../kernels/gpu.ts";
import { matmul } from "../kernels/matmul.ts";
import { Tensor } from "../kernels/tensor.ts";
import { benchRates, lcgFill, median, type RateCase, rateCase } from "./_measure.ts";

const gpu = await Gpu.create();
const K = 1152, N = 6912;
const w = Tensor.fromArray(gpu, toBf16(lcgFill(N * K, 1, 0.05)), [N, K], "bf16");

const cases: RateCase[] = [];
const pairs: [t: number, unfused: RateCase, fused: RateCase][] = [];
for (const t of [1, 4, 256]) {
  const x = Tensor.fromArray(gpu, lcgFill(t * K, 2), [t, K]);
  const gate = Tensor.fromArray(gpu, lcgFill(t * N, 3, 4), [t, N]);
  const up = Tensor.empty(gpu, [t, N]), act = Tensor.empty(gpu, [t, N]);
  const decode = t <= 4;
  const work = decode ? 2 * N * K + 4 * (t * K + 2 * t * N) : 2 * t * N * K;
  const unit = decode ? "GB/s" : "GFLOP/s";
  const unfused = rateCase(`up_proj + geglu T=${t} ${N}x${K} bf16 unfused`, work, unit, () => {
    matmul(x, w, { out: up });
    geglu(gate, up, { out: act });
  });
  const fused = rateCase(`up_proj + geglu T=${t} ${N}x${K} bf16 fused`, work, unit, () => {
    matmul(x, w, { out: act, gate });
  });
  cases.push(unfused, fused);
  pairs.push([t, unfused, fused]);
}

benchRates(gpu, cases, {
  bench: (c) => ({
    n: 5,
    warmup: 1,
    group: c.name.replace(/ (un)?fused$/, ""),
    calibrate: { compileLaunches: 2, firstLaunches: 4 },
  }),
  line: { nameWidth: 52, numberWidth: 8, ms: true },
  title: `Gemma 3 1B up_proj ${N}x${K} bf16 with GeGLU`,
});

// Registered after benchRates' summary, so it prints below it.
globalThis.addEventListener("unload", () => {
  for (const [t, unfused, fused] of pairs) {
    if (unfused.ms.length === 0 || fused.ms.length === 0) continue;
    const speedup = median(unfused.ms) / median(fused.ms);
    console.log(`T=${t}: fused ${speedup.toFixed(2)}× the speed of unfused (median ms/launch)`);
  }
});
