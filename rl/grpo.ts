/**
 * GRPO (Tunix formulation, January 2026) and its family (TRL's loss types, GSPO, δ, entropy
 * masking and bonus, DAPO's overlong penalty, truncation masking and dynamic sampling): per
 * prompt, G completions sampled on the GPU (`grpo_rollout.ts`); rewards from the seed's reward
 * functions; group-relative advantages; per-token log-probs of the policy (LoRA on), the
 * reference (same weights, LoRA off) and the old policy; the loss of `grpo_loss.ts`, whose
 * `d loss / d logp` seeds the model's backward pass (`grpo_gradients.ts`).
 *
 * @module
 */

import type { Gemma3 } from "../model/gemma3.ts";
import type { Trainable } from "../model/trainable.ts";
import type { GrpoConfig } from "./grpo_config.ts";
import { grpoBatchGradients } from "./grpo_gradients.ts";
import {
  completionLengthStats,
  completionMask,
  type EosPadIds,
  rewardMetrics,
  type TokenGrid,
} from "./grpo_math.ts";
import {
  collectRollout,
  type CompletionDecoder,
  type GrpoPrompt,
  type PromptStream,
  rolloutScorer,
  rolloutTasks,
} from "./grpo_rollout.ts";
import type { AdamW } from "./optimizer.ts";
import type { CombineRewardsOptions } from "./rewards.ts";
import type { RolloutExecutor } from "./rollout_tasks.ts";

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
  /**
   * Runs the rollout's per-prompt tasks elsewhere, e.g. on rollout workers through a broker
   * (default: the trainer samples them itself). Steps then log `remote_completions` and
   * `rollout_staleness`.
   */
  readonly rollout?: RolloutExecutor;
  /** Base seed of the sampler; step s samples with `seed + s`. */
  readonly seed?: number;
  /** Frozen reference model for full fine-tuning (LoRA training uses `model.withLora(null)`). */
  readonly reference?: Gemma3 | null;
  /** Completions per forward/backward pass (default: all rows of a step in one pass). */
  readonly microBatchRows?: number;
}

/** Options of {@linkcode GrpoTrainer.step}. */
export interface GrpoStepOptions {
  /** The prompt stream that dynamic sampling draws its extra prompts from (without it, no
   * extra rounds run). */
  readonly drawPrompts?: PromptStream;
  /**
   * The prompts of the next steps, in order (`grpo.maxStaleness` > 0 with a rollout executor
   * that prefetches: the first `maxStaleness` of them are handed to the workers now).
   */
  readonly upcoming?: readonly (readonly GrpoPrompt[])[];
}

/** Everything one GRPO step measured. */
export interface GrpoStepResult {
  /** Loss of the last inner iteration. */
  readonly loss: number;
  /** Per-step metrics (flat, for the metrics log). */
  readonly metrics: Record<string, number>;
  /** The prompts trained on, one per group (the step's own, or dynamic sampling's choice). */
  readonly prompts: readonly GrpoPrompt[];
  /** The decoded completions, prompt-major (prompt p, generation g at p·G + g). */
  readonly completions: readonly string[];
  /** Total reward per completion. */
  readonly rewards: readonly number[];
  /** Each reward function's (unweighted) score per completion, by function name. */
  readonly rewardsPerFunction: Readonly<Record<string, readonly number[]>>;
}

/** `grpoLoss` metric → metrics-log name; the others are logged only for their loss type. */
const LOSS_METRICS: readonly [string, string][] = [
  ["klMean", "kl_mean"],
  ["clipFraction", "clip_fraction"],
  ["clipLowFraction", "clip_low_fraction"],
  ["clipHighFraction", "clip_high_fraction"],
  ["ratioOutsideFraction", "ratio_outside_fraction"],
  ["ratioMin", "ratio_min"],
  ["ratioMean", "ratio_mean"],
  ["ratioMax", "ratio_max"],
];

/** The step's loss metrics for the metrics log (see {@linkcode LOSS_METRICS}). */
function lossMetrics(
  m: Readonly<Record<string, number>>,
  config: GrpoConfig,
  hasEntropy: boolean,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [from, to] of LOSS_METRICS) if (from in m) out[to] = m[from];
  if (hasEntropy && "entropyMean" in m) out.entropy_mean = m.entropyMean;
  if (config.topEntropyQuantile < 1) out.entropy_masked_fraction = m.entropyMaskedFraction;
  if (config.entropyCoef !== 0) out.entropy_bonus = m.entropyBonus;
  if (config.lossType === "cispo") out.cispo_clip_fraction = m.cispoClipFraction;
  if (config.lossType === "sapo") out.sapo_gate_mean = m.sapoGateMean;
  return out;
}

/** Completion ids as a grid right-padded with pad. */
function idGrid(completions: readonly (readonly number[])[], padId: number): TokenGrid {
  const width = Math.max(1, ...completions.map((g) => g.length));
  const ids = new Float64Array(completions.length * width).fill(padId);
  completions.forEach((g, b) => ids.set(g, b * width));
  return { data: ids, shape: [completions.length, width] };
}

/** Options of {@linkcode completionLossMask}. */
export interface CompletionLossMaskOptions {
  /** Rows that end without an EOS (cut at `maxNewTokens`) carry no loss (DAPO, TRL
   * `mask_truncated_completions`). */
  readonly maskTruncated: boolean;
}

/**
 * The loss mask of a GRPO step: {@linkcode completionMask} (up to and including the first EOS),
 * and with `maskTruncated`, all 0 on rows without an EOS.
 *
 * @param ids `[batch, length]` completion ids, right-padded.
 * @param special EOS and padding ids.
 * @param options Whether truncated rows are masked out.
 * @returns `[batch, length]` mask of 0/1.
 * @example
 * ```ts
 * import { completionLossMask } from "./grpo.ts";
 * import { tokenGrid } from "./grpo_math.ts";
 * const ids = tokenGrid([[5, 1, 0], [5, 6, 7]]); // the second row was cut, no EOS
 * const m = completionLossMask(ids, { eosIds: [1], padId: 0 }, { maskTruncated: true });
 * if (Array.from(m.data).join() !== "1,1,0,0,0,0") throw new Error();
 * ```
 */
export function completionLossMask(
  ids: TokenGrid,
  special: EosPadIds,
  options: CompletionLossMaskOptions,
): TokenGrid<Int32Array> {
  const mask = completionMask(ids, special);
  if (!options.maskTruncated) return mask;
  const eos = new Set(typeof special.eosIds === "number" ? [special.eosIds] : special.eosIds);
  const [rows, width] = ids.shape;
  for (let b = 0; b < rows; b++) {
    let ended = false;
    for (let j = 0; j < width && !ended; j++) ended = eos.has(ids.data[b * width + j]);
    if (!ended) mask.data.fill(0, b * width, (b + 1) * width);
  }
  return mask;
}

/** Rollout log-probs as a `[rows, width]` grid (0 past each completion's end). */
function rolloutLogpGrid(
  rows: readonly (readonly number[])[],
  shape: readonly [number, number],
): TokenGrid<Float64Array> {
  const data = new Float64Array(shape[0] * shape[1]);
  rows.forEach((row, b) => data.set(row.slice(0, shape[1]), b * shape[1]));
  return { data, shape };
}

/** max |a − b| over the masked tokens of rows whose rollout log-probs are known. */
function maxAbsDiff(
  rollout: readonly (readonly number[])[],
  training: TokenGrid,
  mask: TokenGrid,
): number {
  const width = mask.shape[1];
  let worst = 0;
  rollout.forEach((row, b) => {
    for (let j = 0; j < Math.min(width, row.length); j++) {
      if (mask.data[b * width + j] === 0) continue;
      worst = Math.max(worst, Math.abs(row[j] - training.data[b * width + j]));
    }
  });
  return worst;
}

/** Runs GRPO steps on a model. */
export class GrpoTrainer {
  readonly #model: Gemma3;
  readonly #trainable: Trainable;
  readonly #optimizer: AdamW;
  readonly #config: GrpoConfig;
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
    this.#options = options;
  }

  /**
   * Samples G completions per prompt (with dynamic sampling, more prompts from `drawPrompts`
   * until the batch holds `prompts.length` groups whose rewards differ) and runs
   * `numIterations` optimizer steps on them.
   *
   * @param prompts The prompts of this step.
   * @param step Step index (seeds the sampler).
   * @param options The prompt stream of dynamic sampling.
   * @returns Loss, metrics, the prompts trained on, completions and rewards.
   */
  async step(
    prompts: readonly GrpoPrompt[],
    step: number,
    options: GrpoStepOptions = {},
  ): Promise<GrpoStepResult> {
    const c = this.#config, model = this.#model, G = c.numGenerations;
    const t0 = performance.now();
    const executor = this.#options.rollout;
    // grpo.maxStaleness k > 0: the next k steps' prompts go to the workers now, sampled with
    // this version; their completions come back up to k versions old.
    const upcoming = options.upcoming ?? [];
    if (executor?.prefetch && c.maxStaleness > 0 && upcoming.length > 0) {
      const tasks = upcoming.slice(0, c.maxStaleness).flatMap((later, j) =>
        rolloutTasks(later, {
          config: c,
          eosIds: this.#options.eosIds,
          seed: (this.#options.seed ?? 0) + step + 1 + j,
          version: this.#optimizer.stepCount,
          taskPrefix: `s${step + 1 + j}-r0`,
        })
      );
      await executor.prefetch(tasks, {
        model,
        version: this.#optimizer.stepCount,
        trainable: this.#trainable,
        score: rolloutScorer({
          config: c,
          decoder: this.#options.decoder,
          eosIds: this.#options.eosIds,
          rewards: this.#options.rewards,
        }),
      });
    }
    const rollout = await collectRollout(model, prompts, {
      config: c,
      decoder: this.#options.decoder,
      eosIds: this.#options.eosIds,
      seed: (this.#options.seed ?? 0) + step,
      rewards: this.#options.rewards,
      drawPrompts: options.drawPrompts,
      executor,
      version: this.#optimizer.stepCount,
      taskPrefix: `s${step}`,
      trainable: this.#trainable,
    });
    const rolloutSeconds = (performance.now() - t0) / 1000;
    const { batch, advantages, sampled } = rollout;
    const eosPad = { eosIds: this.#options.eosIds, padId: this.#options.padId };
    const ids = idGrid(batch.completions, this.#options.padId);
    const mask = completionLossMask(ids, eosPad, { maskTruncated: c.maskTruncatedCompletions });

    const t1 = performance.now();
    // Completions possibly sampled by an older policy (maxStaleness > 0): their rollout
    // log-probs are the old policy of the importance ratio from the first iteration on.
    let oldLogps: TokenGrid | undefined = c.maxStaleness > 0
      ? rolloutLogpGrid(batch.rolloutLogps, ids.shape)
      : undefined;
    let last = { loss: NaN, metrics: {} as Record<string, number> };
    let rolloutDrift = 0;
    for (let iteration = 0; iteration < c.numIterations; iteration++) {
      this.#trainable.zeroGrads();
      const r = await grpoBatchGradients(model, {
        prompts: batch.rows,
        completions: batch.completions,
        mask,
        advantages,
        oldLogps,
      }, {
        trainable: this.#trainable,
        config: c,
        padId: this.#options.padId,
        reference: this.#options.reference ?? null,
        maxCompletionLength: c.maxNewTokens,
        microBatchRows: this.#options.microBatchRows,
        entropy: true,
      });
      // The sampler's log-probs against the training forward's, before any update.
      if (iteration === 0) rolloutDrift = maxAbsDiff(batch.rolloutLogps, r.logps, mask);
      // μ > 1: later iterations use the log-probs of the rollout policy as the old policy.
      // subtle: not the sampler's own log-probs: the KV-cache decode and the training forward
      // differ by ~1e-6 (rollout_logp_max_abs_diff), and μ = 1 needs a ratio of exactly 1.
      if (c.numIterations > 1) oldLogps ??= r.logps;
      this.#optimizer.step(this.#trainable.grads);
      const stats = await this.#optimizer.finishStep();
      const { kl_mean, clip_fraction, ...more } = lossMetrics(
        r.metrics,
        c,
        r.entropies !== undefined,
      );
      last = {
        loss: r.loss,
        metrics: {
          loss: r.loss,
          kl_mean,
          clip_fraction,
          grad_norm: stats.gradNorm,
          lr: stats.learningRate,
          applied: stats.applied ? 1 : 0,
          ...more,
        },
      };
    }
    const trainSeconds = (performance.now() - t1) / 1000;
    const tokens = sampled.rows.reduce(
      (s, p, b) => s + p.length + sampled.completions[b].length,
      0,
    );

    // Rewards and lengths of everything sampled (equal to the batch without dynamic sampling).
    const rm = rewardMetrics(sampled.rewards, sampled.rewardsPerFunction, G);
    const lengths = completionLengthStats(idGrid(sampled.completions, eosPad.padId), eosPad);
    const metrics: Record<string, number> = {
      ...last.metrics,
      reward_mean: rm.total.mean,
      reward_std: rm.total.std,
      zero_std_group_fraction: rm.zeroStdGroupFraction,
      completion_length_mean: lengths.mean,
      completion_length_min: lengths.min,
      completion_length_max: lengths.max,
      truncated_fraction: lengths.truncatedFraction,
      rollout_logp_max_abs_diff: rolloutDrift,
      rollout_seconds: rolloutSeconds,
      train_seconds: trainSeconds,
      tokens_per_second: tokens / Math.max(1e-9, rolloutSeconds + trainSeconds),
    };
    if (this.#options.rollout) {
      metrics.remote_completions = sampled.remote.filter((r) => r).length;
      metrics.rollout_staleness = sampled.staleness;
    }
    if (c.dynamicSampling) {
      metrics.resample_draws = rollout.resampleDraws;
      metrics.resample_rounds = rollout.resampleRounds;
      metrics.groups_trained = batch.prompts.length;
    }
    for (const [name, ms] of Object.entries(rm.perFunction)) metrics[`reward/${name}`] = ms.mean;
    return {
      loss: last.loss,
      metrics,
      prompts: batch.prompts,
      completions: batch.texts,
      rewards: batch.rewards,
      rewardsPerFunction: batch.rewardsPerFunction,
    };
  }
}
