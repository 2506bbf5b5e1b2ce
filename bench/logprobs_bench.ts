/**
 * Throughput of the vocabulary-head kernels at Gemma 3 1B shapes (D = 1152, V = 262144, tied
 * bf16 embedding of 604 MB, split into parts along V):
 * - `tokenLogprobs` of T = 256 tokens (GFLOP/s, 2·T·V·D flops; one launch is seconds of work);
 * - `vocabLogits` of B = 4 rows (the generation head, GFLOP/s);
 * - `sample` over B = 4 rows of V = 262144 logits: greedy, temperature 1, and top-k 50 +
 *   top-p 0.95 (rows/s).
 * Each iteration records enough launches for ≥ 0.3 s (calibrated once) and waits once, so the
 * ≥ 10 ms GPU wait stays < 5 %. Medians are printed at the end.
 */

import { f32ToBf16Bits } from "../kernels/dtype.ts";
import { Gpu } from "../kernels/gpu.ts";
import { tokenLogprobs, vocabLogits } from "../kernels/logprobs.ts";
import { sample, type SampleOptions } from "../kernels/sampling.ts";
import { Tensor } from "../kernels/tensor.ts";
import { benchRate, lcgFill, type RateCase, rateCase, rateLine } from "./_measure.ts";

const gpu = await Gpu.create();
const T = 256, D = 1152, V = 262144, B = 4;

/** bf16 bits of V·D small values: a random 1 Mi block tiled (generating 302 M values is slow). */
function embeddingBits(): Uint16Array {
  const block = Uint16Array.from(lcgFill(1 << 20, 7, 0.05), f32ToBf16Bits);
  const out = new Uint16Array(V * D);
  for (let at = 0; at < out.length; at += block.length) {
    out.set(block.subarray(0, Math.min(block.length, out.length - at)), at);
  }
  return out;
}

const embedding = Tensor.fromArray(gpu, embeddingBits(), [V, D], "bf16");
const h = Tensor.fromArray(gpu, lcgFill(T * D, 1, 1), [T, D]);
const targets = Tensor.fromArray(gpu, Uint32Array.from({ length: T }, (_, i) => (i * 7919) % V));
const hLast = Tensor.fromArray(gpu, lcgFill(B * D, 2, 1), [B, D]);
const logits = Tensor.fromArray(gpu, lcgFill(B * V, 3, 8), [B, V]);
const ids = Tensor.empty(gpu, [64 * B], "u32");

let step = 0;
const sampling = (name: string, options: SampleOptions): RateCase =>
  rateCase(`sample B=${B} V=${V} ${name}`, B, "rows/s", () => {
    const slot = step++ % 64;
    sample(logits, { ...options, seed: 1, step, out: ids, outOffset: slot * B });
  });

const cases: RateCase[] = [
  rateCase(
    `tokenLogprobs T=${T} D=${D} V=${V} bf16 (${embedding.parts.length} parts)`,
    2 * T * V * D,
    "GFLOP/s",
    () => {
      const r = tokenLogprobs(h, embedding, targets);
      r.logprobs.dispose();
      r.lse.dispose();
    },
  ),
  rateCase(
    `vocabLogits B=${B} D=${D} V=${V} bf16`,
    2 * B * V * D,
    "GFLOP/s",
    () => vocabLogits(hLast, embedding).dispose(),
  ),
  sampling("greedy", { temperature: 0 }),
  sampling("temperature 1", { temperature: 1 }),
  sampling("top-k 50 top-p 0.95", { temperature: 1, topK: 50, topP: 0.95 }),
];

for (const c of cases) {
  // One log-prob launch is seconds of work on llvmpipe: keep its iteration count low.
  benchRate(gpu, c, { n: c.unit === "GFLOP/s" && c.work > 1e10 ? 2 : 4, warmup: 1 });
}

globalThis.addEventListener("unload", () => {
  console.log(`\nadapter: ${gpu.adapter.description}; Gemma 3 1B head shapes`);
  for (const c of cases) {
    if (c.rates.length > 0) console.log(rateLine(c, { nameWidth: 52, numberWidth: 8, ms: true }));
  }
});
