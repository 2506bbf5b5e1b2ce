/**
 * RMSNorm's fused epilogues against the unfused launch sequences, at Gemma 3 1B shapes
 * (4 query heads and 1 KV head of 256, hidden 1152), for decode (T = 1, 4) and prefill
 * (T = 256):
 * - `q`/`k` norm + RoPE: `rmsNorm(q, q_norm)` then `rope(q, …, { out: q })` vs
 *   `rmsNorm(q, q_norm, { rope, out: q })`;
 * - the sandwich chain: `rmsNorm(o, post_attention_norm, { residual: h, out: h })` then
 *   `rmsNorm(h, pre_feedforward_norm)` vs one launch with `next`.
 *
 * Each iteration records enough launches for ~0.3 s of GPU work (calibrated once) and waits
 * once. GB/s counts the bytes the fused launch must move (for both forms of a pair, so the
 * ratio of their rates is the fused form's speedup); the unfused pair moves more.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { rmsNorm } from "../kernels/rms_norm.ts";
import { rope, RopeTable } from "../kernels/rope.ts";
import { Tensor } from "../kernels/tensor.ts";
import { benchRates, lcgFill, type RateCase, rateCase } from "./_measure.ts";

const gpu = await Gpu.create();
const D = 1152, HEAD_DIM = 256;
const table = RopeTable.create(gpu, { base: 1e6, headDim: HEAD_DIM, maxPositions: 1024 });
const qNorm = Tensor.fromArray(gpu, lcgFill(HEAD_DIM, 1, 0.5), [HEAD_DIM], "bf16");
const postAttn = Tensor.fromArray(gpu, lcgFill(D, 2, 0.5), [D], "bf16");
const preFfw = Tensor.fromArray(gpu, lcgFill(D, 3, 0.5), [D], "bf16");

/** The unfused and fused per-head norm + RoPE of `heads` heads over `tokens` tokens. */
function headCases(tokens: number, heads: number, name: string): RateCase[] {
  const n = tokens * heads * HEAD_DIM;
  const x = Tensor.fromArray(gpu, lcgFill(n, 4 + tokens + heads), [tokens, heads, HEAD_DIM]);
  const out = Tensor.empty(gpu, [tokens, heads, HEAD_DIM]);
  const positions = Tensor.fromArray(gpu, Int32Array.from({ length: tokens }, (_, t) => 300 + t));
  // x in, y out, the weight, a cos/sin row and a position per token.
  const bytes = 2 * 4 * n + 2 * HEAD_DIM + 4 * tokens * (HEAD_DIM + 1);
  const what = `${name} norm+rope T=${tokens} ${tokens}x${heads}x${HEAD_DIM}`;
  return [
    rateCase(`${what} unfused`, bytes, "GB/s", () => {
      rmsNorm(x, qNorm, { out });
      rope(out, positions, { table, out });
    }),
    rateCase(`${what} fused`, bytes, "GB/s", () => {
      rmsNorm(x, qNorm, { out, rope: { table, positions } });
    }),
  ];
}

/** The unfused and fused post-attention residual norm + pre-feedforward norm. */
function sandwichCases(tokens: number): RateCase[] {
  const o = Tensor.fromArray(gpu, lcgFill(tokens * D, 5 + tokens), [tokens, D]);
  const h = Tensor.fromArray(gpu, lcgFill(tokens * D, 6 + tokens, 20), [tokens, D]);
  const x2 = Tensor.empty(gpu, [tokens, D]);
  // o and h in, h and x2 out, two weights.
  const bytes = 4 * 4 * tokens * D + 2 * 2 * D;
  const what = `post-attn+pre-ffw norm T=${tokens} ${tokens}x${D}`;
  return [
    rateCase(`${what} unfused`, bytes, "GB/s", () => {
      rmsNorm(o, postAttn, { residual: h, out: h });
      rmsNorm(h, preFfw, { out: x2 });
    }),
    rateCase(`${what} fused`, bytes, "GB/s", () => {
      rmsNorm(o, postAttn, { residual: h, out: h, next: { w: preFfw, out: x2 } });
    }),
  ];
}

const cases: RateCase[] = [1, 4, 256].flatMap((tokens) => [
  ...headCases(tokens, 4, "q"),
  ...headCases(tokens, 1, "k"),
  ...sandwichCases(tokens),
]);

benchRates(gpu, cases, {
  bench: (c) => ({
    n: 5,
    warmup: 1,
    group: c.name.replace(/ (un)?fused$/, ""),
    calibrate: { compileLaunches: 2, firstLaunches: 4 },
  }),
  line: { nameWidth: 56, numberWidth: 7, ms: true },
  title: "fused vs unfused RMSNorm epilogues, Gemma 3 1B shapes",
});
