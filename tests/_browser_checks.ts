/**
 * Checks that run unchanged in a browser page and in Deno (no Deno API, no `node:` imports; the
 * page gets them from `deno bundle --platform browser tests/_browser_checks.ts`):
 *
 * - {@linkcode kernelChecks}: every kernel family against its float64 reference
 *   (`_browser_kernel_checks.ts`); {@linkcode subgroupKernelChecks}: every subgroup variant
 *   forced the same way (fails where the adapter offers no subgroups), and matmul's
 *   (`matmulSubgroupChecks` of `_matmul_variant_checks.ts`, which throws without subgroups);
 * - {@linkcode fixtureForwardCheck}: the tiny Gemma 3 fixture's logits against its reference,
 *   the folder loaded by `loadGemma3From` (over HTTP range requests in a page, from disk in
 *   Deno);
 * - {@linkcode grpoStepCheck}: the fixture's LoRA GRPO loss, one AdamW update, the loss again;
 * - {@linkcode trainingStepsCheck}: a few SFT and GRPO steps on a small model, losses finite and
 *   falling.
 *
 * `tests/browser_checks_test.ts` runs them all on Deno's adapter.
 *
 * @module
 */

import { SeededRandom } from "../base/random.ts";
import { collate, type TokenizedExample } from "../data/batching.ts";
import { scale } from "../kernels/elementwise.ts";
import { KernelError } from "../kernels/errors.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { type Gemma3Config, gemma3Config } from "../model/config.ts";
import type { FileSource } from "../model/file_source.ts";
import { urlSource } from "../model/file_source_http.ts";
import { Gemma3 } from "../model/gemma3.ts";
import { loadGemma3From } from "../model/gemma3_load.ts";
import { disposeGemma3Weights, initGemma3Weights } from "../model/gemma3_weights.ts";
import { LoraAdapter, loraConfig } from "../model/lora.ts";
import { openSafetensorsIn, type SafetensorsFile } from "../model/safetensors.ts";
import { decodeFloat32 } from "../model/safetensors_dtype.ts";
import { trainableParameters } from "../model/trainable.ts";
import { type GrpoBatch, grpoGradients, type GrpoLossConfig } from "../rl/grpo_gradients.ts";
import { completionMask, groupAdvantages, type TokenGrid, tokenGrid } from "../rl/grpo_math.ts";
import { AdamW } from "../rl/optimizer.ts";
import { SftTrainer } from "../rl/sft.ts";
import { type CheckOptions, type CheckResult, compareValues } from "./_browser_kernel_checks.ts";

/** The runtime, so a page needs this one bundle only. */
export { Gpu } from "../kernels/gpu.ts";
export {
  type CheckOptions,
  type CheckResult,
  compareValues,
  kernelChecks,
  randomArray,
  subgroupKernelChecks,
  subgroupVariantIds,
} from "./_browser_kernel_checks.ts";
export { matmulSubgroupChecks } from "./_matmul_variant_checks.ts";

/** The fixture folder: a `FileSource`, or its URL (read with HTTP range requests). */
export type FixtureFolder = FileSource | string | URL;

function fixtureSource(folder: FixtureFolder): FileSource {
  return typeof folder === "string" || folder instanceof URL ? urlSource(folder) : folder;
}

async function readJson(source: FileSource, file: string): Promise<unknown> {
  return JSON.parse(await source.readText(file));
}

function disposeModel(model: Gemma3): void {
  model.lora?.dispose();
  disposeGemma3Weights(model.weights);
}

async function readFloats(st: SafetensorsFile, name: string): Promise<Float32Array> {
  return decodeFloat32(st.info(name).dtype, await st.read(name));
}

/** The part of the fixture's `forward.json` the checks read. */
interface ForwardFixture {
  readonly sequences: readonly {
    readonly index: number;
    readonly input_ids: number[];
    readonly logits_tensor: string;
  }[];
}

/**
 * `model.logits(ids)` of every sequence of the fixture's `forward.json` against
 * `forward.safetensors`, within 1e-4 (as `gemma3_forward_test.ts`).
 *
 * @param gpu The runtime.
 * @param fixture The fixture folder (its URL in a page, `dirSource(dir)` in Deno).
 * @param options Tolerance scale.
 * @returns One result per sequence.
 * @example
 * ```ts ignore
 * const results = await fixtureForwardCheck(gpu, "http://127.0.0.1:8000/fixture/");
 * ```
 */
export async function fixtureForwardCheck(
  gpu: Gpu,
  fixture: FixtureFolder,
  options: CheckOptions = {},
): Promise<CheckResult[]> {
  const source = fixtureSource(fixture);
  const model = await loadGemma3From(source, { gpu });
  const forward = await readJson(source, "forward.json") as ForwardFixture;
  const ref = await openSafetensorsIn(source, "forward.safetensors");
  try {
    const results: CheckResult[] = [];
    for (const s of forward.sequences) {
      results.push(compareValues(
        `fixture logits of sequence ${s.index} (${s.input_ids.length} tokens)`,
        await model.logits(s.input_ids),
        await readFloats(ref, s.logits_tensor),
        1e-4 * (options.toleranceScale ?? 1),
      ));
    }
    return results;
  } finally {
    ref.close();
    disposeModel(model);
  }
}

/** The part of the fixture's `grpo.json` the checks read. */
interface GrpoFixture {
  readonly hyperparameters: {
    readonly num_generations: number;
    readonly beta: number;
    readonly epsilon: number;
    readonly epsilon_high: number;
    readonly eos_id: number;
    readonly pad_id: number;
  };
  readonly prompts: number[][];
  readonly prompt_index_per_row: number[];
  readonly completion_ids: number[][];
  readonly rewards: number[];
  readonly loss_variants: Readonly<Record<string, { readonly loss: number }>>;
}

/** What {@linkcode grpoStepCheck} measured. */
export interface GrpoStepCheckResult {
  /** The loss before and after one AdamW update of the LoRA parameters (same batch). */
  readonly losses: readonly [number, number];
  /** The update's global gradient norm (before clipping). */
  readonly gradNorm: number;
  /** The first loss and log-probs against the fixture's reference values. */
  readonly results: readonly CheckResult[];
}

/** Learning rate of {@linkcode grpoStepCheck}'s update. */
const GRPO_STEP_LR = 1e-3;

/**
 * The fixture's LoRA GRPO case as `grpo_test.ts` runs it (fixture adapter, `grpo.json`,
 * aggregation `sequence-mean-token-mean`): the loss (checked against the fixture's within 1e-5,
 * and the masked policy log-probs against `grpo.safetensors` within 1e-4, as that test), then one
 * AdamW update of the LoRA parameters (lr 1e-3) and the loss of the same batch again, with the
 * first pass's log-probs as the old policy (GRPO's second iteration, μ = 2).
 *
 * @param gpu The runtime.
 * @param fixture The fixture folder (its URL in a page, `dirSource(dir)` in Deno).
 * @param options Tolerance scale.
 * @returns Both losses, the gradient norm and the checks.
 * @example
 * ```ts ignore
 * const { losses } = await grpoStepCheck(gpu, "http://127.0.0.1:8000/fixture/");
 * ```
 */
export async function grpoStepCheck(
  gpu: Gpu,
  fixture: FixtureFolder,
  options: CheckOptions = {},
): Promise<GrpoStepCheckResult> {
  const toleranceScale = options.toleranceScale ?? 1;
  const source = fixtureSource(fixture);
  const model = await loadGemma3From(source, { gpu, adapter: "" });
  const fx = await readJson(source, "grpo.json") as GrpoFixture;
  const ref = await openSafetensorsIn(source, "grpo.safetensors");
  const trainable = trainableParameters(model, "lora");
  const optimizer = new AdamW(gpu, trainable.params, { learningRate: GRPO_STEP_LR });
  try {
    const hp = fx.hyperparameters;
    const mask = completionMask(tokenGrid(fx.completion_ids), {
      eosIds: hp.eos_id,
      padId: hp.pad_id,
    });
    const batch: GrpoBatch = {
      prompts: fx.prompt_index_per_row.map((p) => fx.prompts[p]),
      completions: fx.completion_ids,
      mask,
      advantages: groupAdvantages(fx.rewards, hp.num_generations),
    };
    const config: GrpoLossConfig = {
      beta: hp.beta,
      epsilon: hp.epsilon,
      epsilonHigh: hp.epsilon_high,
      aggregation: "sequence-mean-token-mean",
    };
    const run = { trainable, config, padId: hp.pad_id };
    const first = await grpoGradients(model, batch, run);
    optimizer.step(trainable.grads);
    const { gradNorm } = await optimizer.finishStep();
    trainable.zeroGrads();
    const second = await grpoGradients(model, { ...batch, oldLogps: first.logps }, run);
    const l0 = first.result.loss;
    const want = fx.loss_variants["sequence-mean-token-mean"].loss;
    const masked = Array.from(first.logps.data, (v, i) => (mask.data[i] ? v : 0));
    const results = [
      compareValues("fixture GRPO loss", [l0], [want], 1e-5 * toleranceScale, {
        errorScale: "absolute",
      }),
      compareValues(
        "fixture GRPO per-token log-probs",
        masked,
        await readFloats(ref, "per_token_logps"),
        1e-4 * toleranceScale,
        { errorScale: "absolute" },
      ),
    ];
    return { losses: [l0, second.result.loss], gradNorm, results };
  } finally {
    ref.close();
    optimizer.dispose();
    trainable.dispose();
    disposeModel(model);
  }
}

/** Options of {@linkcode trainingStepsCheck}. */
export interface TrainingStepsOptions {
  /** SFT steps (default 6). */
  readonly sftSteps?: number;
  /** GRPO iterations on the fixed rollouts (default 6). */
  readonly grpoSteps?: number;
}

/** What {@linkcode trainingStepsCheck} measured. */
export interface TrainingStepsResult {
  /** SFT loss of each step (before its update). */
  readonly sftLosses: readonly number[];
  /** GRPO loss of each iteration (before its update). */
  readonly grpoLosses: readonly number[];
  /** Finite and falling losses. */
  readonly results: readonly CheckResult[];
}

/** The small model of {@linkcode trainingStepsCheck} and `train_overfit_test.ts`. */
export const SMALL: Gemma3Config = gemma3Config({
  vocabSize: 64,
  hiddenSize: 32,
  intermediateSize: 64,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 1,
  headDim: 16,
  slidingWindow: 4,
  layerTypes: ["sliding_attention", "full_attention"],
  queryPreAttnScalar: 16,
  bosTokenId: 2,
  eosTokenIds: [1],
  padTokenId: 0,
});

/** {@linkcode SMALL}'s padding id. */
const PAD = 0;

/** 8 sequences `<bos> key random… <eos>` (prompt `<bos> key`), as the overfit test's. */
function sftSequences(): TokenizedExample[] {
  const random = SeededRandom.fromState(2024); // `rng(2024)` of _helpers.ts
  return Array.from({ length: 8 }, (_, i) => {
    const body = Array.from(
      { length: 6 + i },
      () => 3 + Math.floor(random.next() * (SMALL.vocabSize - 3)),
    );
    return { inputIds: [2, 3 + i, ...body, 1], promptLength: 2 };
  });
}

/** `rows` right-padded with `padId` into a grid. */
function paddedGrid(rows: readonly (readonly number[])[], padId: number): TokenGrid<Float64Array> {
  const width = Math.max(1, ...rows.map((r) => r.length));
  return tokenGrid(rows.map((r) => [...r, ...new Array(width - r.length).fill(padId)]));
}

/** Finite, and the last value at least `minDrop` below the first. */
function fallingChecks(what: string, losses: readonly number[], minDrop: number): CheckResult[] {
  const detail = `losses ${losses.map((l) => l.toFixed(4)).join(", ")}`;
  const nonFinite = losses.filter((l) => !Number.isFinite(l)).length;
  const change = losses.at(-1)! - losses[0];
  return [
    {
      name: `${what} losses are finite`,
      maxError: nonFinite,
      tolerance: 0,
      ok: nonFinite === 0,
      detail,
    },
    {
      name: `${what} loss falls by ≥ ${minDrop} (last − first)`,
      maxError: change,
      tolerance: -minDrop,
      ok: change <= -minDrop,
      detail,
    },
  ];
}

/**
 * A few training steps on a small model (that of `train_overfit_test.ts`, from scratch): SFT of
 * every parameter on 8 fixed sequences (AdamW lr 1e-2), then GRPO with a LoRA adapter on the
 * SFT'd model: 8 rollouts (2 prompts × 4) sampled once, a reward that prefers high ids, and
 * repeated updates on that batch with the first iteration's log-probs as the old policy (GRPO's
 * μ iterations). The checks: every loss finite, SFT's falls by ≥ 0.25 nats, GRPO's by ≥ 0.05.
 *
 * @param gpu The runtime.
 * @param options Step counts.
 * @returns The losses and the checks.
 * @example
 * ```ts ignore
 * const { sftLosses, grpoLosses, results } = await trainingStepsCheck(gpu);
 * ```
 */
export async function trainingStepsCheck(
  gpu: Gpu,
  options: TrainingStepsOptions = {},
): Promise<TrainingStepsResult> {
  const { sftSteps = 6, grpoSteps = 6 } = options;
  const model = new Gemma3(gpu, SMALL, initGemma3Weights(gpu, SMALL, { seed: 1 }));
  const adapter = LoraAdapter.init(gpu, SMALL, loraConfig({ rank: 4, alpha: 8 }), 1);
  try {
    const full = trainableParameters(model, "full");
    const sftOptimizer = new AdamW(gpu, full.params, {
      learningRate: 1e-2,
      weightDecay: 0,
      maxGradNorm: 1,
    });
    const sft = new SftTrainer(model, full, sftOptimizer);
    const batch = collate(sftSequences(), { padId: PAD });
    const sftLosses: number[] = [];
    for (let s = 0; s < sftSteps; s++) sftLosses.push((await sft.step([batch])).loss);
    sftOptimizer.dispose();
    full.dispose();

    const policy = model.withLora(adapter);
    const G = 4;
    const prompts = [[2, 3], [2, 4]].flatMap((p) => new Array(G).fill(p));
    const completions = await policy.generate(prompts, {
      maxNewTokens: 8,
      temperature: 1,
      seed: 7,
    });
    const padId = PAD;
    const mask = completionMask(paddedGrid(completions, padId), {
      eosIds: SMALL.eosTokenIds,
      padId,
    });
    const rewards = completions.map((c) =>
      c.reduce((s, id) => s + id, 0) / (c.length * SMALL.vocabSize)
    );
    const grpoBatch: GrpoBatch = {
      prompts,
      completions,
      mask,
      advantages: groupAdvantages(rewards, G),
    };
    const lora = trainableParameters(policy, "lora");
    const optimizer = new AdamW(gpu, lora.params, { learningRate: 2e-2, weightDecay: 0 });
    const config: GrpoLossConfig = {
      beta: 0.04,
      epsilon: 0.2,
      epsilonHigh: 0.2,
      aggregation: "sequence-mean-token-mean",
    };
    const grpoLosses: number[] = [];
    let oldLogps: TokenGrid | undefined;
    for (let s = 0; s < grpoSteps; s++) {
      lora.zeroGrads();
      const r = await grpoGradients(policy, { ...grpoBatch, oldLogps }, {
        trainable: lora,
        config,
        padId,
      });
      oldLogps ??= r.logps;
      grpoLosses.push(r.result.loss);
      optimizer.step(lora.grads);
      await optimizer.finishStep();
    }
    optimizer.dispose();
    lora.dispose();
    return {
      sftLosses,
      grpoLosses,
      results: [
        ...fallingChecks("SFT", sftLosses, 0.25),
        ...fallingChecks("GRPO", grpoLosses, 0.05),
      ],
    };
  } finally {
    adapter.dispose();
    disposeGemma3Weights(model.weights);
  }
}

/** A one-buffer kernel whose line 4 assigns a u32 to an f32: every WGSL compiler rejects it. */
const BROKEN_WGSL = `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(1)
fn main() {
  let y: f32 = 1u;
  x[0] = y;
}`;

/**
 * A kernel the compiler rejects, dispatched between valid ones: the next flush raises one
 * `KernelError` naming that kernel only, no error escapes the runtime's scopes, and the device
 * then runs the next kernel correctly.
 *
 * @param gpu The runtime (its device is left usable).
 * @returns One result per property.
 * @example
 * ```ts ignore
 * const results = await rejectedKernelCheck(gpu);
 * ```
 */
export async function rejectedKernelCheck(gpu: Gpu): Promise<CheckResult[]> {
  const uncaptured: string[] = [];
  const listener: Parameters<GPUDevice["addEventListener"]>[1] = (e) => {
    uncaptured.push((e as unknown as GPUUncapturedErrorEvent).error.message);
  };
  gpu.device.addEventListener("uncapturederror", listener);
  const x = Tensor.fromArray(gpu, new Float32Array([1, 2, 3]), [3]);
  scale(x, 2).dispose();
  gpu.dispatch({
    pipeline: gpu.pipelines.get("broken_kernel", {}, () => BROKEN_WGSL),
    shapes: "x[3]",
    buffers: [x.binding()],
    workgroups: [1],
  });
  scale(x, 3).dispose();
  let message = "(no error)";
  try {
    await gpu.sync();
  } catch (e) {
    message = e instanceof KernelError ? e.message : `not a KernelError: ${e}`;
  }
  const named = message.startsWith("WebGPU rejected kernel broken_kernel{}: ") &&
    !/scale/.test(message);
  const next = await scale(x, 4).read();
  x.dispose();
  gpu.device.removeEventListener("uncapturederror", listener);
  const result = (name: string, ok: boolean, detail: string): CheckResult => ({
    name,
    maxError: ok ? 0 : Infinity,
    tolerance: 0,
    ok,
    detail,
  });
  return [
    result("rejected kernel: one KernelError naming it only", named, message),
    compareValues("rejected kernel: the next kernel runs", next, [4, 8, 12], 0),
    result("rejected kernel: no uncaptured error", uncaptured.length === 0, uncaptured.join("; ")),
  ];
}
