/**
 * Throughput of the token log-prob kernels, forward and backward, with and without entropy, at
 * two sizes:
 * - Gemma 3 1B head: T = 256 tokens, D = 1152, V = 262144 (tied bf16 embedding of 604 MB and,
 *   for full fine-tuning, its f32 gradient of 1.2 GB, both split into parts along V);
 * - the llvmpipe demo model: T = 256, D = 128, V = 2048, bf16.
 * For each: `tokenLogprobs` (2·T·V·D flops), `tokenLogprobsBackward` for dh only (LoRA training,
 * 4·T·V·D: logits recomputed, then dz·E) and with `dEmbedding` (6·T·V·D: plus dzᵀ·h), all in
 * GFLOP/s. A third of the grads are zero (masked prompt tokens are typical in GRPO; the flop
 * counts do not discount them). Each has an entropy variant in the same run: the forward with
 * `entropy: true` and the backwards with a `gradEntropy` (non-zero on other tokens than the
 * logp grad, as GRPO's entropy bonus over the completion), rated on the same nominal flops and
 * printed as a ratio to the plain launch.
 *
 * Each iteration records enough launches for ≥ 0.3 s (calibrated once; one Gemma-size launch is
 * seconds of work on llvmpipe) and waits once, so the ≥ 10 ms GPU wait stays < 5 %. Medians and
 * the backward/forward throughput ratios are printed at the end.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { tokenLogprobs } from "../kernels/logprobs.ts";
import { tokenLogprobsBackward } from "../kernels/logprobs_backward.ts";
import { Tensor } from "../kernels/tensor.ts";
import { peakNote } from "./peaks.ts";
import {
  adapterLines,
  adapterPeak,
  benchRate,
  lcgFill,
  median,
  type RateCase,
  rateCase,
} from "./_measure.ts";

const gpu = await Gpu.create();

/** `[V, D]` values: a random 1 Mi block tiled (generating 302 M values is slow). */
function tiled(n: number, seed: number, scale: number): Float32Array {
  const block = lcgFill(Math.min(n, 1 << 20), seed, scale);
  const out = new Float32Array(n);
  for (let at = 0; at < n; at += block.length) {
    out.set(block.subarray(0, Math.min(block.length, n - at)), at);
  }
  return out;
}

interface Case extends RateCase {
  readonly group: string;
  /** Compiles the same pipelines on a small vocabulary (saves a seconds-long launch). */
  readonly warm: () => void;
  /** Name of the same launch without entropy (entropy variants only). */
  readonly plain?: string;
}

/** The launch names, plain and with entropy, and the flops of each per `T·V·D`. */
const KINDS = [
  ["tokenLogprobs", 2],
  ["tokenLogprobs +entropy", 2],
  ["backward dh", 4],
  ["backward dh +gradEntropy", 4],
  ["backward dh+dE", 6],
  ["backward dh+dE +gradEntropy", 6],
] as const;

type Launches = (() => void)[];

/** The launches of {@linkcode KINDS} on `[T, D]` hidden states and a `[V, D]` bf16 embedding. */
function launches(tokens: number, dim: number, vocab: number): Launches {
  const embedding = Tensor.fromArray(gpu, tiled(vocab * dim, 7, 0.05), [vocab, dim], "bf16");
  const h = Tensor.fromArray(gpu, lcgFill(tokens * dim, 1, 1), [tokens, dim]);
  const targets = Tensor.fromArray(
    gpu,
    Uint32Array.from({ length: tokens }, (_, i) => (i * 7919) % vocab),
  );
  const grad = Tensor.fromArray(gpu, lcgFill(tokens, 3, 1).map((g, t) => (t % 3 === 0 ? 0 : g)));
  const gradEntropy = Tensor.fromArray(
    gpu,
    lcgFill(tokens, 5, 0.01).map((g, t) => (t % 3 === 1 ? 0 : g)),
  );
  const dEmbedding = Tensor.zeros(gpu, [vocab, dim]);
  const inputs = { h, embedding, targets };
  const { logprobs, lse, entropy } = tokenLogprobs(inputs, { entropy: true });
  logprobs.dispose();
  const forward = (withEntropy: boolean) => () => {
    const r = tokenLogprobs(inputs, { entropy: withEntropy });
    for (const t of [r.logprobs, r.lse, r.entropy]) t?.dispose();
  };
  const head = { ...inputs, lse, entropy };
  return [
    forward(false),
    forward(true),
    () => tokenLogprobsBackward(grad, head).dispose(),
    () => tokenLogprobsBackward(grad, head, { gradEntropy }).dispose(),
    () => tokenLogprobsBackward(grad, head, { dEmbedding }).dispose(),
    () => tokenLogprobsBackward(grad, head, { dEmbedding, gradEntropy }).dispose(),
  ];
}

const cases: Case[] = [];

function addSize(group: string, tokens: number, dim: number, vocab: number): void {
  const big = launches(tokens, dim, vocab);
  // Same T and D, so the same tiles and pipelines; V = 4096 keeps the scratch strides aligned.
  const small = vocab > 4096 ? launches(tokens, dim, 4096) : big;
  const label = (name: string) => `${name} T=${tokens} D=${dim} V=${vocab}`;
  KINDS.forEach(([name, flops], i) =>
    cases.push({
      ...rateCase(label(name), flops * tokens * vocab * dim, "GFLOP/s", big[i]),
      group,
      warm: small[i],
      plain: name.includes(" +") ? label(name.slice(0, name.indexOf(" +"))) : undefined,
    })
  );
}

addSize("demo", 256, 128, 2048);
addSize("gemma3-1b", 256, 1152, 262144);

for (const c of cases) {
  const big = c.group === "gemma3-1b";
  benchRate(gpu, c, {
    group: c.group,
    // A Gemma-size launch is seconds of work on llvmpipe: one timed iteration after calibration.
    n: big ? 1 : 5,
    warmup: big ? 0 : 1,
    calibrate: { warm: c.warm },
  });
}

globalThis.addEventListener("unload", () => {
  console.log(adapterLines(gpu));
  const peak = adapterPeak(gpu);
  for (const c of cases) {
    if (c.rates.length === 0) continue;
    const forward = cases.find((f) => f.group === c.group && f.name.startsWith("tokenLogprobs "));
    const ratio = forward && forward.rates.length ? median(c.rates) / median(forward.rates) : NaN;
    const plain = cases.find((f) => f.name === c.plain);
    const vsPlain = plain?.ms.length
      ? `, ${(median(c.ms) / median(plain.ms)).toFixed(3)}× the time without entropy`
      : "";
    const rate = median(c.rates);
    console.log(
      `${c.name.padEnd(56)} ${rate.toFixed(2).padStart(7)} GFLOP/s median${
        peakNote(rate, "GFLOP/s", peak)
      }, ${median(c.ms).toFixed(1).padStart(9)} ms/launch (${c.reps} launches/iter), ${
        ratio.toFixed(2)
      }× the forward's GFLOP/s${vsPlain}`,
    );
  }
});
