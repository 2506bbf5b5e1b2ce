/**
 * Bandwidth of the elementwise kernels at a Gemma 3 1B activation shape (T = 128, D = 1152):
 * `add` (residual connections, gradient accumulation) and `scale` in place.
 *
 * Each iteration records enough launches for ~0.3 s of GPU work (calibrated once) and waits
 * once, so Deno's ≥ 10 ms GPU wait stays under 5 %. GB/s counts bytes read plus bytes written.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { add, scale } from "../kernels/elementwise.ts";
import { benchRates, lcgFill, type RateCase, rateCase } from "./_measure.ts";

const gpu = await Gpu.create();
const T = 128, D = 1152;

const a = Tensor.fromArray(gpu, lcgFill(T * D, 1), [T, D]);
const b = Tensor.fromArray(gpu, lcgFill(T * D, 2), [T, D]);
const out = Tensor.empty(gpu, [T, D]);

const cases: RateCase[] = [
  rateCase(`add ${T}x${D}`, 3 * 4 * T * D, "GB/s", () => add(a, b, { out })),
  rateCase(`scale in place ${T}x${D}`, 2 * 4 * T * D, "GB/s", () => scale(out, 1, { out })),
];

benchRates(gpu, cases, {
  bench: { n: 5, warmup: 1, calibrate: { compileLaunches: 2, firstLaunches: 4 } },
  line: { nameWidth: 52, numberWidth: 7 },
});
