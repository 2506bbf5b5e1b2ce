/**
 * Bandwidth of GeGLU at the Gemma 3 1B MLP width (I = 6912): the forward at T = 128 and the
 * backward at T = 256.
 *
 * Each iteration records enough launches for ~0.3 s of GPU work (calibrated once) and waits
 * once, so Deno's ≥ 10 ms GPU wait stays under 5 %. GB/s counts bytes read plus bytes written.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { geglu } from "../kernels/geglu.ts";
import { gegluBackward } from "../kernels/geglu_backward.ts";
import { benchRates, lcgFill, type RateCase, rateCase } from "./_measure.ts";

const gpu = await Gpu.create();
const I = 6912, F = 128, T = 256;

const fGate = Tensor.fromArray(gpu, lcgFill(F * I, 4), [F, I]);
const fUp = Tensor.fromArray(gpu, lcgFill(F * I, 5), [F, I]);
const out = Tensor.empty(gpu, [F, I]);

const gate = Tensor.fromArray(gpu, lcgFill(T * I, 9, 4), [T, I]);
const up = Tensor.fromArray(gpu, lcgFill(T * I, 10), [T, I]);
const dy = Tensor.fromArray(gpu, lcgFill(T * I, 11), [T, I]);
const dGate = Tensor.empty(gpu, [T, I]), dUp = Tensor.empty(gpu, [T, I]);

const cases: RateCase[] = [
  rateCase(`geglu ${F}x${I}`, 3 * 4 * F * I, "GB/s", () => geglu(fGate, fUp, { out })),
  rateCase(
    `gegluBackward ${T}x${I}`,
    5 * 4 * T * I,
    "GB/s",
    () => gegluBackward(dy, { gate, up }, { dGate, dUp }),
  ),
];

benchRates(gpu, cases, {
  bench: { n: 5, warmup: 1, calibrate: { compileLaunches: 2, firstLaunches: 4 } },
  line: { nameWidth: 52, numberWidth: 7 },
});
