/**
 * Bandwidth of the optimizer kernels over the LoRA parameters of Gemma 3 1B at rank 32 on the
 * default targets (q, k, v, o, gate, up, down): per layer Σ r·(in + out) =
 * 32·(2176 + 1408 + 1408 + 2176 + 8064 + 8064 + 8064) = 32·31360 = 1,003,520; ×26 layers =
 * 26,091,520 f32 parameters in 364 tensors (A `[r, in]`, B `[out, r]`).
 *
 * Cases: the global-norm reduction (reads g: 4 B/param), the AdamW update (reads p, g, m, v and
 * writes p, m, v: 28 B/param), the whole step (norm + update: 32 B/param), and the update over
 * one flat tensor of the same size (no per-tensor launch overhead). Each iteration records
 * enough work for ~0.3 s (calibrated once) and waits once, so the ≥ 10 ms GPU wait stays < 5 %.
 */

import {
  adamwUpdate,
  type AdamWUpdateParams,
  gradGlobalNorm,
  gradNormPartialCount,
} from "../kernels/adamw.ts";
import { adamwConfig } from "../rl/adamw_config.ts";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import {
  adapterLines,
  adapterPeak,
  benchRate,
  lcgFill,
  type RateCase,
  rateCase,
  rateLine,
} from "./_measure.ts";

const gpu = await Gpu.create();
const RANK = 32, LAYERS = 26, HIDDEN = 1152, Q_OUT = 4 * 256, KV_OUT = 256, MLP = 6912;
const MODULES: [string, number, number][] = [
  ["q_proj", HIDDEN, Q_OUT],
  ["k_proj", HIDDEN, KV_OUT],
  ["v_proj", HIDDEN, KV_OUT],
  ["o_proj", Q_OUT, HIDDEN],
  ["gate_proj", HIDDEN, MLP],
  ["up_proj", HIDDEN, MLP],
  ["down_proj", MLP, HIDDEN],
];

interface Slot {
  readonly p: Tensor;
  readonly g: Tensor;
  readonly m: Tensor;
  readonly v: Tensor;
}

function slot(shape: number[], seed: number): Slot {
  const n = shape[0] * shape[1];
  return {
    p: Tensor.fromArray(gpu, lcgFill(n, seed, 0.02), shape),
    g: Tensor.fromArray(gpu, lcgFill(n, seed + 1, 1e-3), shape),
    m: Tensor.zeros(gpu, shape),
    v: Tensor.zeros(gpu, shape),
  };
}

const lora: Slot[] = [];
for (let layer = 0; layer < LAYERS; layer++) {
  for (const [, inDim, outDim] of MODULES) {
    lora.push(slot([RANK, inDim], lora.length * 2));
    lora.push(slot([outDim, RANK], lora.length * 2));
  }
}
const N = lora.reduce((s, t) => s + t.p.numel, 0);
if (N !== 26_091_520) throw new Error(`LoRA parameter count ${N}, expected 26,091,520`);
const flat = slot([N / RANK, RANK], 99);
const grads = lora.map((s) => s.g);
const partials = Tensor.empty(gpu, [gradNormPartialCount(grads)]);
const stats = Tensor.empty(gpu, [4]);
// The GRPO recipe's AdamW (rl/presets.ts) at its first update.
const recipe = adamwConfig({ learningRate: 3e-6, b2: 0.99, weightDecay: 0.1, maxGradNorm: 0.1 });
const hyper: AdamWUpdateParams = { ...recipe, learningRate: 3e-6, step: 1 };
gradGlobalNorm(grads, { out: stats, partials });

const update = () => {
  for (const s of lora) adamwUpdate(s.p, { grad: s.g, m: s.m, v: s.v, stats }, hyper);
};
const mb = (N * 4 / 1e6).toFixed(0);
const cases: RateCase[] = [
  rateCase(
    `gradGlobalNorm ${N} params, 364 tensors`,
    4 * N,
    "GB/s",
    () => gradGlobalNorm(grads, { out: stats, partials }),
  ),
  rateCase(
    `adamwUpdate ${N} params, 364 tensors`,
    28 * N,
    "GB/s",
    update,
  ),
  rateCase(
    `norm + update (one AdamW step), 364 tensors`,
    32 * N,
    "GB/s",
    () => {
      gradGlobalNorm(grads, { out: stats, partials });
      update();
    },
  ),
  rateCase(
    `adamwUpdate one flat ${mb} MB tensor (${flat.p.parts.length} part(s))`,
    28 * N,
    "GB/s",
    () => adamwUpdate(flat.p, { grad: flat.g, m: flat.m, v: flat.v, stats }, hyper),
  ),
];

for (const c of cases) benchRate(gpu, c, { n: 4, warmup: 1 });

globalThis.addEventListener("unload", () => {
  console.log(adapterLines(gpu, `${N} LoRA params (Gemma 3 1B, r=32)`));
  const line = { nameWidth: 52, numberWidth: 7, ms: true, peak: adapterPeak(gpu) };
  for (const c of cases) if (c.rates.length > 0) console.log(rateLine(c, line));
});
