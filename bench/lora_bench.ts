/**
 * Throughput of the fused LoRA linear `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` at Gemma 3 1B projection shapes
 * (T = 128 tokens, bf16 base weights, rank 32): q_proj (1152 → 1024), o_proj (1024 → 1152) and
 * the MLP's up_proj (1152 → 6912), in GFLOP/s over the base product plus the low-rank path
 * (`2·T·(out·in + r·in + out·r)`).
 *
 * Each iteration records enough launches for ~0.3 s of GPU work (calibrated once) and waits
 * once, so the ≥ 10 ms GPU wait stays < 5 %.
 *
 * @module
 */

import { toBf16 } from "../kernels/dtype.ts";
import { Gpu } from "../kernels/gpu.ts";
import { loraLinear } from "../kernels/lora.ts";
import { Tensor } from "../kernels/tensor.ts";
import { benchRates, lcgFill, type RateCase, rateCase } from "./_measure.ts";

const gpu = await Gpu.create();
const T = 128, RANK = 32;

/** One projection `[inDim] → [outDim]` with its adapter, and its outputs. */
function projection(name: string, inDim: number, outDim: number, seed: number): RateCase {
  const x = Tensor.fromArray(gpu, lcgFill(T * inDim, seed), [T, inDim]);
  const w = Tensor.fromArray(gpu, toBf16(lcgFill(outDim * inDim, seed + 1, 0.05)), [
    outDim,
    inDim,
  ], "bf16");
  const a = Tensor.fromArray(gpu, lcgFill(RANK * inDim, seed + 2, 0.05), [RANK, inDim]);
  const b = Tensor.fromArray(gpu, lcgFill(outDim * RANK, seed + 3, 0.05), [outDim, RANK]);
  const out = Tensor.empty(gpu, [T, outDim]), xaOut = Tensor.empty(gpu, [T, RANK]);
  const flops = 2 * T * (outDim * inDim + RANK * inDim + outDim * RANK);
  return rateCase(`loraLinear ${name} ${T}x${inDim}→${outDim} r=${RANK}`, flops, "GFLOP/s", () => {
    loraLinear(x, { w, a, b }, { scale: 2, out, xaOut });
  });
}

const cases: RateCase[] = [
  projection("q_proj", 1152, 1024, 1),
  projection("o_proj", 1024, 1152, 5),
  projection("up_proj", 1152, 6912, 9),
];

benchRates(gpu, cases, {
  bench: { n: 4, warmup: 1 },
  line: { nameWidth: 52, numberWidth: 7, ms: true },
  title: "Gemma 3 1B projections",
});
