/**
 * Bandwidth of RMSNorm at Gemma 3 1B shapes (D = 1152, 4 query heads of 256): the forward
 * (T = 128, alone and fused with the residual add) and the backward (T = 256: dx only, as with
 * frozen LoRA weights, dx + dw, and the per-head q-norm).
 *
 * Each iteration records enough launches for ~0.3 s of GPU work (calibrated once) and waits
 * once, so Deno's ≥ 10 ms GPU wait stays under 5 %. GB/s counts the bytes a kernel must read
 * plus write (the dw stage's small partials included).
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { rmsNorm } from "../kernels/rms_norm.ts";
import { rmsNormBackward } from "../kernels/rms_norm_backward.ts";
import { benchRates, lcgFill, type RateCase, rateCase } from "./_measure.ts";

const gpu = await Gpu.create();
const D = 1152, HEADS = 4, HEAD_DIM = 256;

// Forward: T = 128.
const F = 128;
const fx = Tensor.fromArray(gpu, lcgFill(F * D, 1), [F, D]);
const res = Tensor.fromArray(gpu, lcgFill(F * D, 2), [F, D]);
const fw = Tensor.fromArray(gpu, lcgFill(D, 3), [D], "bf16");
const normOut = Tensor.empty(gpu, [F, D]);

// Backward: T = 256; rstd of a unit-variance input is ~1.
const T = 256;
const x = Tensor.fromArray(gpu, lcgFill(T * D, 1), [T, D]);
const dy = Tensor.fromArray(gpu, lcgFill(T * D, 2), [T, D]);
const w = Tensor.fromArray(gpu, lcgFill(D, 3, 0.5), [D], "bf16");
const rstd = Tensor.fromArray(gpu, lcgFill(T, 4).map((v) => 1.5 + v), [T]);
const dx = Tensor.empty(gpu, [T, D]);
const dw = Tensor.zeros(gpu, [D]);
const q = Tensor.fromArray(gpu, lcgFill(T * HEADS * HEAD_DIM, 5), [T, HEADS, HEAD_DIM]);
const dq = Tensor.fromArray(gpu, lcgFill(T * HEADS * HEAD_DIM, 6), [T, HEADS, HEAD_DIM]);
const qw = Tensor.fromArray(gpu, lcgFill(HEAD_DIM, 7, 0.5), [HEAD_DIM], "bf16");
const qRstd = Tensor.fromArray(gpu, lcgFill(T * HEADS, 8).map((v) => 1.5 + v), [T * HEADS]);
const dqOut = Tensor.empty(gpu, [T, HEADS, HEAD_DIM]);
const dqw = Tensor.zeros(gpu, [HEAD_DIM]);

/** Bytes of the two-stage dw reduction over `rows` × `d` (see rms_norm_backward.ts). */
function dwBytes(rows: number, d: number): number {
  const blocks = Math.ceil(rows / Math.max(16, Math.ceil(rows / 64)));
  return 4 * (2 * rows * d + rows) + (blocks > 1 ? 2 * 4 * blocks * d : 0) + 2 * 4 * d;
}
const dxBytes = (rows: number, d: number) => 3 * 4 * rows * d + 4 * rows + 2 * d;

const cases: RateCase[] = [
  rateCase(
    `rmsNorm ${F}x${D} (bf16 w)`,
    2 * 4 * F * D + 2 * D,
    "GB/s",
    () => rmsNorm(fx, fw, { out: normOut }),
  ),
  rateCase(
    `rmsNorm+residual ${F}x${D}`,
    3 * 4 * F * D + 2 * D,
    "GB/s",
    () => rmsNorm(fx, fw, { residual: res, out: normOut }),
  ),
  rateCase(
    `rmsNormBackward dx ${T}x${D} (bf16 w)`,
    dxBytes(T, D),
    "GB/s",
    () => rmsNormBackward(dy, { x, w, rstd }, { out: dx }),
  ),
  rateCase(
    `rmsNormBackward dx+dw ${T}x${D}`,
    dxBytes(T, D) + dwBytes(T, D),
    "GB/s",
    () => rmsNormBackward(dy, { x, w, rstd }, { out: dx, dw }),
  ),
  rateCase(
    `rmsNormBackward q-norm dx+dw ${T}x${HEADS}x${HEAD_DIM}`,
    dxBytes(T * HEADS, HEAD_DIM) + dwBytes(T * HEADS, HEAD_DIM),
    "GB/s",
    () => rmsNormBackward(dq, { x: q, w: qw, rstd: qRstd }, { out: dqOut, dw: dqw }),
  ),
];

benchRates(gpu, cases, {
  bench: { n: 5, warmup: 1, calibrate: { compileLaunches: 2, firstLaunches: 4 } },
  line: { nameWidth: 60, numberWidth: 7 },
});
