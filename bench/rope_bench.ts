/**
 * Bandwidth of RoPE at the Gemma 3 1B prefill shape (128 tokens, 4 query heads of 256): the
 * forward into a separate output and the backward (rotation by −angle) in place. GB/s counts the
 * read and write of q (positions and table reads ignored).
 *
 * Each iteration records enough launches for ~0.3 s of GPU work (calibrated once) and waits
 * once, so Deno's ≥ 10 ms GPU wait stays under 5 %.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { rope, RopeTable } from "../kernels/rope.ts";
import { ropeBackward } from "../kernels/rope_backward.ts";
import { benchRates, lcgFill, type RateCase, rateCase } from "./_measure.ts";

const gpu = await Gpu.create();
const S = 128, HEADS = 4, HEAD_DIM = 256;

const q = Tensor.fromArray(gpu, lcgFill(S * HEADS * HEAD_DIM, 1), [1, S, HEADS, HEAD_DIM]);
const out = Tensor.empty(gpu, q.shape);
const dq = Tensor.fromArray(gpu, lcgFill(S * HEADS * HEAD_DIM, 2), [1, S, HEADS, HEAD_DIM]);
const table = RopeTable.create(gpu, { base: 1e6, headDim: HEAD_DIM, maxPositions: 1024 });
const positions = Tensor.fromArray(gpu, Int32Array.from({ length: S }, (_, i) => i));

const bytes = 2 * q.numel * 4;
const cases: RateCase[] = [
  rateCase(`rope q S=${S} H=${HEADS} D=${HEAD_DIM}`, bytes, "GB/s", () => {
    rope(q, positions, { table, out });
  }),
  rateCase(`ropeBackward dq in place S=${S} H=${HEADS} D=${HEAD_DIM}`, bytes, "GB/s", () => {
    ropeBackward(dq, positions, { table, out: dq });
  }),
];

benchRates(gpu, cases, {
  bench: { n: 5, warmup: 1, calibrate: { compileLaunches: 2, firstLaunches: 4 } },
  line: { nameWidth: 52, numberWidth: 7 },
});
