/**
 * Throughput of `sample` over B = 4 rows of the Gemma 3 vocabulary (V = 262144 logits): greedy,
 * temperature 1, and top-k 50 + top-p 0.95, in GB/s (memory bound: one read of the `[B, V]`
 * f32 logits per launch counts, passes beyond the first do not) and rows/s, each launch writing
 * its ids into a slot
 * of a `[64, B]` buffer as a generation loop does; each also with `logprobsOut` (the sampled
 * tokens' temperature-1 log-probs into a `[64, B]` f32 buffer, as `generateWithLogprobs` does).
 *
 * Each iteration records enough launches for ~0.3 s of GPU work (calibrated once) and waits
 * once, so the ≥ 10 ms GPU wait stays < 5 %. Medians are printed at the end.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { sample, type SampleOptions } from "../kernels/sampling.ts";
import { Tensor } from "../kernels/tensor.ts";
import { benchRates, lcgFill, type RateCase, rateCase } from "./_measure.ts";

const gpu = await Gpu.create();
const V = 262144, B = 4;

const logits = Tensor.fromArray(gpu, lcgFill(B * V, 3, 8), [B, V]);
const ids = Tensor.empty(gpu, [64 * B], "u32");
const logprobs = Tensor.empty(gpu, [64 * B], "f32");

let step = 0;
const sampling = (name: string, options: SampleOptions): RateCase =>
  rateCase(`sample B=${B} V=${V} ${name}`, 4 * B * V, "GB/s", () => {
    const slot = step++ % 64;
    sample(logits, { ...options, seed: 1, step, out: ids, outOffset: slot * B });
  }, { perLaunch: B, unit: "rows/s" });

const modes: [string, SampleOptions][] = [
  ["greedy", { temperature: 0 }],
  ["temperature 1", { temperature: 1 }],
  ["top-k 50 top-p 0.95", { temperature: 1, topK: 50, topP: 0.95 }],
];
const cases: RateCase[] = modes.flatMap(([name, options]) => [
  sampling(name, options),
  sampling(`${name} +logprobs`, { ...options, logprobsOut: logprobs }),
]);

benchRates(gpu, cases, {
  bench: { n: 4, warmup: 1 },
  line: { nameWidth: 52, numberWidth: 8, ms: true },
  title: "Gemma 3 1B vocabulary",
});
