/**
 * GRPO (Tunix formulation, January 2026): per prompt, G completions sampled on the GPU; rewards
 * from the seed's reward functions; group-normalised advantages; per-token log-probs of the
 * policy (LoRA on), the reference (same weights, LoRA off) and the old policy; the clipped
 * surrogate plus β·KL loss from `grpo_loss.ts`, whose `d loss / d logp` seeds the model's
 * backward pass.
 *
 * @module
 */

import { Tensor } from "../kernels/tensor.ts";
import { disposeTokenBatch, makeTokenBatch, type TokenBatch } from "../model/batch.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import { trainForward, type TrainPass } from "../model/train_pass.ts";
import type { Trainable } from "../model/trainable.ts";
import type { GrpoConfig } from "./grpo_config.ts";
import { grpoLoss } from "./grpo_loss.ts";
import {
  completionLengthStats,
  completionMask,
  groupAdvantages,
  rewardMetrics,
} from "./grpo_math.ts";
import type { TokenGrid } from "./grpo_math.ts";
import type { AdamW } from "./optimizer.ts";
import { combineRewards, type CombineRewardsOptions } from "./rewards.ts";

/** One prompt of a GRPO batch. */
export interface GrpoPrompt {
  /** Prompt token ids (with `<bos>`). */
  readonly ids: readonly number[];
  /** Gold answer for the reward functions. */
  readonly answer: string;
}

/** Turns completion ids into text for the reward functions. */
export interface CompletionDecoder {
  /** @returns The text (special tokens skipped). */
  decode(ids: readonly number[]): string;
}

/** Options of {@linkcode GrpoTrainer}. */
export interface GrpoTrainerOptions {
  /** Parameters and gradients (LoRA, or full: then the reference is `reference`, or the
   * policy itself, which makes the KL term 0). */
  readonly trainable: Trainable;
  /** AdamW over `trainable.params`. */
  readonly optimizer: AdamW;
  /** GRPO hyperparameters. */
  readonly config: GrpoConfig;
  /** Completion ids → text for the reward functions. */
  readonly decoder: CompletionDecoder;
  /** End-of-sequence ids (Gemma: 1 and 106). */
  readonly eosIds: readonly number[];
  /** Padding id (Gemma: 0). */
  readonly padId: number;
  /** Reward functions and weights (default: the seed's four, unweighted). */
  readonly rewards?: CombineRewardsOptions;
  /** Base seed of the sampler; step s samples with `seed + s`. */
  readonly seed?: number;
  /** Frozen reference model for full fine-tuning (LoRA training uses `model.withLora(null)`). */
  readonly reference?: Gemma3 | null;
  /** Completions per forward/backward pass (default: all rows of a step in one pass). */
  readonly microBatchRows?: number;
}

/** Everything one GRPO step measured. */
export interface GrpoStepResult {
  /** Loss of the last inner iteration. */
  readonly loss: number;
  /** Per-step metrics (flat, for the metrics log). */
  readonly metrics: Record<string, number>;
  /** The decoded completions, prompt-major (prompt p, generation g at p·G + g). */
  readonly completions: readonly string[];
  /** Total reward per completion. */
  readonly rewards: readonly number[];
  /** Each reward function's (unweighted) score per completion, by function name. */
  readonly rewardsPerFunction: Readonly<Record<string, readonly number[]>>;
}

/** Where completion token j of row b is predicted: the row `b·S + promptLen + j − 1`. */
interface RowLayout {
  readonly batch: TokenBatch;
  readonly targets: Tensor;
  readonly promptLengths: readonly number[];
  readonly width: number;
}

/** Runs GRPO steps on a model. */
export class GrpoTrainer {
  readonly #model: Gemma3;
  readonly #trainable: Trainable;
  readonly #optimizer: AdamW;
  readonly #config: GrpoConfig;
  readonly #decoder: CompletionDecoder;
  readonly #options: GrpoTrainerOptions;

  /**
   * @param model Policy model (its LoRA adapter is the policy; `model.withLora(null)` is the
   *   reference).
   * @param options Trainable parameters, optimizer, config, decoder, EOS/pad ids, rewards,
   *   seed, reference, micro-batch rows.
   */
  constructor(model: Gemma3, options: GrpoTrainerOptions) {
    this.#model = model;
    this.#trainable = options.trainable;
    this.#optimizer = options.optimizer;
    this.#config = options.config;
    this.#decoder = options.decoder;
    this.#options = options;
  }

  /**
   * Samples G completions per prompt and runs `numIterations` optimizer steps on them.
   *
   * @param prompts The prompts of this step.
   * @param step Step index (seeds the sampler).
   * @returns Loss, metrics, completions and rewards.
   */
  async step(prompts: readonly GrpoPrompt[], step: number): Promise<GrpoStepResult> {
    const c = this.#config, model = this.#model, G = c.numGenerations;
    const t0 = performance.now();
    const expanded: number[][] = [];
    const answers: string[] = [];
    for (const p of prompts) {
      const ids = p.ids.slice(-c.maxPromptLength);
      for (let g = 0; g < G; g++) {
        expanded.push(ids);
        answers.push(p.answer);
      }
    }
    const generated = await model.generate(expanded, {
      maxNewTokens: c.maxNewTokens,
      temperature: c.temperature,
      topK: c.topK,
      topP: c.topP,
      seed: (this.#options.seed ?? 0) + step,
      eosIds: [...this.#options.eosIds],
    });
    const rolloutSeconds = (performance.now() - t0) / 1000;
    const completions = generated.map((ids) => this.#decoder.decode(ids));
    const rewards = combineRewards(completions, answers, this.#options.rewards);
    const advantages = groupAdvantages(rewards.total, G, { epsilon: c.advantageEpsilon });

    // Completions as a grid right-padded with pad; the mask stops after the first EOS.
    const width = Math.max(1, ...generated.map((g) => g.length));
    const ids = new Float64Array(generated.length * width).fill(this.#options.padId);
    generated.forEach((g, b) => ids.set(g, b * width));
    const idGrid: TokenGrid = { data: ids, shape: [generated.length, width] };
    const eosPad = { eosIds: this.#options.eosIds, padId: this.#options.padId };
    const mask = completionMask(idGrid, eosPad);

    const t1 = performance.now();
    let oldLogps: TokenGrid | undefined;
    let last = { loss: NaN, metrics: {} as Record<string, number> };
    const rows = expanded.length;
    const perPass = Math.min(rows, this.#options.microBatchRows ?? rows);
    let totalTokens = 0;
    for (const m of mask.data) totalTokens += m;
    for (let iteration = 0; iteration < c.numIterations; iteration++) {
      this.#trainable.zeroGrads();
      let loss = 0, kl = 0, clip = 0;
      const logpParts: TokenGrid[] = [];
      // Rows are split into passes of `microBatchRows`; each pass's loss and gradient are
      // weighted by its share of the aggregation (rows, or tokens for token-mean).
      for (let r0 = 0; r0 < rows; r0 += perPass) {
        const r1 = Math.min(rows, r0 + perPass);
        const sub = (g: TokenGrid): TokenGrid => ({
          data: Array.prototype.slice.call(g.data, r0 * width, r1 * width),
          shape: [r1 - r0, width],
        });
        const subMask = sub(mask);
        let subTokens = 0;
        for (const m of subMask.data as number[]) subTokens += m;
        const weight = c.aggregation === "token-mean"
          ? subTokens / Math.max(1, totalTokens)
          : (r1 - r0) / rows;
        const r = await grpoGradients(model, {
          prompts: expanded.slice(r0, r1),
          completions: generated.slice(r0, r1),
          mask: subMask,
          advantages: advantages.slice(r0, r1),
          oldLogps: oldLogps && sub(oldLogps),
        }, {
          trainable: this.#trainable,
          config: c,
          padId: this.#options.padId,
          reference: this.#options.reference ?? null,
          scale: weight,
        });
        logpParts.push(r.logps);
        const tokenShare = subTokens / Math.max(1, totalTokens);
        loss += weight * r.result.loss;
        kl += tokenShare * r.result.metrics.klMean;
        clip += tokenShare * r.result.metrics.clipFraction;
      }
      // μ > 1: later iterations use the log-probs of the rollout policy as the old policy.
      if (c.numIterations > 1) {
        oldLogps ??= {
          data: Float64Array.from(logpParts.flatMap((g) => Array.from(g.data))),
          shape: [rows, width],
        };
      }
      this.#optimizer.step(this.#trainable.grads);
      const stats = await this.#optimizer.finishStep();
      last = {
        loss,
        metrics: {
          loss,
          kl_mean: kl,
          clip_fraction: clip,
          grad_norm: stats.gradNorm,
          lr: stats.learningRate,
          applied: stats.applied ? 1 : 0,
        },
      };
    }
    const trainSeconds = (performance.now() - t1) / 1000;
    const tokens = expanded.reduce((s, p, b) => s + p.length + generated[b].length, 0);

    const rm = rewardMetrics(rewards.total, rewards.perFunction, G);
    const lengths = completionLengthStats(idGrid, eosPad);
    const metrics: Record<string, number> = {
      ...last.metrics,
      reward_mean: rm.total.mean,
      reward_std: rm.total.std,
      zero_std_group_fraction: rm.zeroStdGroupFraction,
      completion_length_mean: lengths.mean,
      completion_length_min: lengths.min,
      completion_length_max: lengths.max,
      truncated_fraction: lengths.truncatedFraction,
      rollout_seconds: rolloutSeconds,
      train_seconds: trainSeconds,
      tokens_per_second: tokens / Math.max(1e-9, rolloutSeconds + trainSeconds),
    };
    for (const [name, ms] of Object.entries(rm.perFunction)) metrics[`reward/${name}`] = ms.mean;
    return {
      loss: last.loss,
      metrics,
      completions,
      rewards: rewards.total,
      rewardsPerFunction: rewards.perFunction,
    };
  }
}

/** Prompt + completion rows, right-padded, with next-token targets. */
function rowLayout(
  model: Gemma3,
  prompts: readonly (readonly number[])[],
  completions: readonly (readonly number[])[],
  width: number,
  padId: number,
): RowLayout {
  const rows = prompts.map((p, b) => [...p, ...completions[b]]);
  const seq = Math.max(...rows.map((r) => r.length));
  const batch = makeTokenBatch(model.gpu, rows, { seq, padId });
  const targets = new Int32Array(rows.length * seq);
  rows.forEach((r, b) => {
    for (let t = 0; t + 1 < r.length; t++) targets[b * seq + t] = r[t + 1];
  });
  return {
    batch,
    targets: Tensor.fromArray(model.gpu, targets, [targets.length], "i32"),
    promptLengths: prompts.map((p) => p.length),
    width,
  };
}

/** Reads a pass's log-probs back as a completion grid `[B, width]` (0 beyond each row). */
async function gatherLogps(pass: TrainPass, layout: RowLayout): Promise<TokenGrid> {
  const all = (await pass.logprobs.read()) as Float32Array;
  const { batch, promptLengths, width } = layout;
  const out = new Float64Array(batch.batch * width);
  for (let b = 0; b < batch.batch; b++) {
    const n = batch.hostRanges[b][1] - promptLengths[b];
    for (let j = 0; j < n; j++) {
      out[b * width + j] = all[b * batch.seq + promptLengths[b] + j - 1];
    }
  }
  return { data: out, shape: [batch.batch, width] };
}

/** `d loss / d logp` on the completion grid → the per-row gradient `[B·S]` of the pass. */
function scatterGrad(model: Gemma3, dLossDLogp: ArrayLike<number>, layout: RowLayout): Tensor {
  const { batch, promptLengths, width } = layout;
  const g = new Float32Array(batch.batch * batch.seq);
  for (let b = 0; b < batch.batch; b++) {
    const n = batch.hostRanges[b][1] - promptLengths[b];
    for (let j = 0; j < n; j++) {
      g[b * batch.seq + promptLengths[b] + j - 1] = dLossDLogp[b * width + j];
    }
  }
  return Tensor.fromArray(model.gpu, g, [g.length]);
}

/** Inputs of {@linkcode grpoGradients}: one row per completion. */
export interface GrpoBatch {
  /** Prompt ids per row. */
  readonly prompts: readonly (readonly number[])[];
  /** Completion ids per row (tokens past the mask are allowed; they never count). */
  readonly completions: readonly (readonly number[])[];
  /** Completion mask `[B, width]`. */
  readonly mask: TokenGrid;
  /** Advantage per row. */
  readonly advantages: ArrayLike<number>;
  /** Old-policy log-probs `[B, width]` (absent: the detached current policy, μ = 1). */
  readonly oldLogps?: TokenGrid;
}

/** Result of {@linkcode grpoGradients}. */
export interface GrpoGradients {
  /** Loss, per-token loss, d loss / d logp, KL and metrics. */
  readonly result: ReturnType<typeof grpoLoss>;
  /** Policy log-probs `[B, width]`. */
  readonly logps: TokenGrid;
  /** Reference log-probs `[B, width]` (the policy's when β = 0 or no adapter). */
  readonly refLogps: TokenGrid;
}

/** Options of {@linkcode grpoGradients}. */
export interface GrpoGradientsOptions {
  /** Gradient accumulators. */
  readonly trainable: Trainable;
  /** β, ε, ε_high and the aggregation. */
  readonly config: Pick<GrpoConfig, "beta" | "epsilon" | "epsilonHigh" | "aggregation">;
  /** Padding id. */
  readonly padId: number;
  /** Frozen reference model (full fine-tuning); null or absent: `model.withLora(null)` (or,
   * without an adapter, the policy itself, which makes the KL term 0). */
  readonly reference?: Gemma3 | null;
  /** Multiplies the gradient (a micro-batch's share of the step's loss; default 1). */
  readonly scale?: number;
}

/**
 * Per-token log-probs of policy and reference, the GRPO loss, and its gradient accumulated into
 * `trainable` (`+=`, so zero them first for a fresh step).
 *
 * @param model Policy model (`model.withLora(null)` is the reference when training LoRA).
 * @param input Rows, mask, advantages and optional old log-probs.
 * @param options Trainable parameters, config, pad id, reference, gradient scale.
 * @returns Loss result and the log-probs.
 */
export async function grpoGradients(
  model: Gemma3,
  input: GrpoBatch,
  options: GrpoGradientsOptions,
): Promise<GrpoGradients> {
  const { trainable, config, padId } = options;
  const reference = options.reference ?? null, scale = options.scale ?? 1;
  const width = input.mask.shape[1];
  const lengths = input.completions.map((c, b) => {
    let n = 0;
    for (let j = 0; j < width; j++) if (input.mask.data[b * width + j]) n = j + 1;
    return Math.min(n, c.length);
  });
  const completions = input.completions.map((c, b) => c.slice(0, lengths[b]));
  const layout = rowLayout(model, input.prompts, completions, width, padId);
  let refLogps: TokenGrid | null = null;
  if (config.beta > 0 && reference) {
    const refPass = trainForward(reference, layout.batch, layout.targets);
    refLogps = await gatherLogps(refPass, layout);
    refPass.dispose();
  } else if (config.beta > 0 && model.lora && trainable.mode === "lora") {
    const refPass = trainForward(model.withLora(null), layout.batch, layout.targets);
    refLogps = await gatherLogps(refPass, layout);
    refPass.dispose();
  }
  const pass = trainForward(model, layout.batch, layout.targets);
  const logps = await gatherLogps(pass, layout);
  const result = grpoLoss(
    {
      logps,
      refLogps: refLogps ?? logps,
      oldLogps: input.oldLogps,
      advantages: input.advantages,
      mask: input.mask,
    },
    {
      beta: config.beta,
      epsilon: config.epsilon,
      epsilonHigh: config.epsilonHigh,
      aggregation: config.aggregation,
    },
  );
  const dLossDLogp = scale === 1 ? result.dLossDLogp : result.dLossDLogp.map((g) => g * scale);
  const grad = scatterGrad(model, dLossDLogp, layout);
  pass.backward(grad, trainable.gradientSet);
  grad.dispose();
  pass.dispose();
  layout.targets.dispose();
  disposeTokenBatch(layout.batch);
  return { result, logps, refLogps: refLogps ?? logps };
}
