/**
 * GRPO's rollout as independent tasks: one task per prompt (G completions with that prompt's
 * own seed), so the completions of a prompt do not depend on which process sampled them — the
 * learner itself ({@linkcode localRollout}) or a rollout worker elsewhere (a
 * {@linkcode RolloutExecutor} over a broker). Both run {@linkcode runRolloutTask}.
 *
 * @module
 */

import type { Gemma3 } from "../model/gemma3.ts";
import type { Trainable } from "../model/trainable.ts";

/** The sampler settings of a task. */
export interface RolloutSampling {
  /** Completion length cap. */
  readonly maxNewTokens: number;
  /** Softmax temperature (0: greedy). */
  readonly temperature: number;
  /** Top-k (0: off). */
  readonly topK: number;
  /** Nucleus mass (1: off). */
  readonly topP: number;
  /** End-of-sequence ids. */
  readonly eosIds: readonly number[];
}

/** One prompt to sample G completions for. */
export interface RolloutTask {
  /** Unique within the run: `s<step>-r<round>-p<index>`. */
  readonly id: string;
  /** Prompt ids (already cut to `maxPromptLength`). */
  readonly promptIds: readonly number[];
  /** The gold answer (for the rewards). */
  readonly answer: string;
  /** G. */
  readonly numGenerations: number;
  /** Sampler settings. */
  readonly sampling: RolloutSampling;
  /** The prompt's own sampler seed (u32). */
  readonly seed: number;
  /** The policy version to sample with: the number of optimizer updates done. */
  readonly version: number;
}

/** The completions of one task. */
export interface RolloutTaskResult {
  /** The task's id. */
  readonly id: string;
  /** G completions (ids, EOS included when sampled). */
  readonly completions: readonly (readonly number[])[];
  /** The sampler's temperature-1 log-prob of each completion token. */
  readonly rolloutLogps: readonly (readonly number[])[];
  /** The policy version that sampled them. */
  readonly version: number;
  /** Whether a rollout worker (not the learner) sampled them. */
  readonly remote: boolean;
}

/** What the learner's model offers a rollout: sampling, and the parameters it trains. */
export interface RolloutPolicy {
  /** The policy (samples locally). */
  readonly model: Pick<Gemma3, "generateWithLogprobs">;
  /** Its current version (optimizer updates done). */
  readonly version: number;
  /** The trained parameters (what a worker needs on top of the base model), or null. */
  readonly trainable: Trainable | null;
  /**
   * The learner's total reward of each completion of a task (decoded and scored with its own
   * reward functions): a worker's claimed rewards must equal these.
   */
  readonly score: (
    task: RolloutTask,
    completions: readonly (readonly number[])[],
  ) => readonly number[];
}

/** Runs a step's tasks: locally, or on rollout workers. */
export interface RolloutExecutor {
  /**
   * Samples every task.
   *
   * @param tasks The tasks (all of `policy.version`).
   * @param policy The learner's policy.
   * @returns One result per task, in task order.
   */
  run(tasks: readonly RolloutTask[], policy: RolloutPolicy): Promise<RolloutTaskResult[]>;
  /**
   * Hands out tasks of later steps now, to be sampled with the current policy
   * (`grpo.maxStaleness` > 0); `run` with the same task ids later takes their results when at
   * most `maxStaleness` versions old. Executors without workers have none.
   *
   * @param tasks Tasks of later steps (their `version`: the current one).
   * @param policy The learner's policy now.
   */
  prefetch?(tasks: readonly RolloutTask[], policy: RolloutPolicy): Promise<void>;
}

/**
 * The seed of prompt `index` of a sampling round: a splitmix32 mix of the round's seed and the
 * index, so each prompt's completions depend only on its own seed.
 *
 * @param roundSeed The round's seed (u32).
 * @param index The prompt's index in the round.
 * @returns A u32 seed.
 * @example
 * ```ts
 * import { promptSeed } from "./rollout_tasks.ts";
 * if (promptSeed(7, 0) === promptSeed(7, 1)) throw new Error("prompts share a seed");
 * ```
 */
export function promptSeed(roundSeed: number, index: number): number {
  let z = (roundSeed + Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Samples one task: its G rows in one batch, with the task's seed. Learner and workers both run
 * this, so a task's completions are the same wherever it runs (same weights, same kernels).
 *
 * @param model The policy.
 * @param task The task.
 * @returns Completions and their rollout log-probs.
 * @example
 * ```ts
 * import { runRolloutTask } from "./rollout_tasks.ts";
 * const model = {
 *   generateWithLogprobs: (rows: number[][]) =>
 *     Promise.resolve({ ids: rows.map(() => [7, 1]), logprobs: rows.map(() => [-0.1, -0.2]) }),
 * };
 * const r = await runRolloutTask(model, {
 *   id: "s0-r0-p0", promptIds: [2, 5], answer: "7", numGenerations: 2, seed: 1, version: 0,
 *   sampling: { maxNewTokens: 4, temperature: 1, topK: 0, topP: 1, eosIds: [1] },
 * });
 * console.log(r.completions.length); // 2
 * ```
 */
export async function runRolloutTask(
  model: Pick<Gemma3, "generateWithLogprobs">,
  task: RolloutTask,
): Promise<Pick<RolloutTaskResult, "completions" | "rolloutLogps">> {
  const rows = Array.from({ length: task.numGenerations }, () => [...task.promptIds]);
  const s = task.sampling;
  const { ids, logprobs } = await model.generateWithLogprobs(rows, {
    maxNewTokens: s.maxNewTokens,
    temperature: s.temperature,
    topK: s.topK,
    topP: s.topP,
    seed: task.seed,
    eosIds: [...s.eosIds],
  });
  return { completions: ids, rolloutLogps: logprobs };
}

/**
 * The learner samples every task itself, one after another.
 *
 * @example
 * ```ts
 * import { localRollout } from "./rollout_tasks.ts";
 * console.log(typeof localRollout.run); // "function"
 * ```
 */
export const localRollout: RolloutExecutor = Object.freeze({
  async run(tasks: readonly RolloutTask[], policy: RolloutPolicy): Promise<RolloutTaskResult[]> {
    const out: RolloutTaskResult[] = [];
    for (const task of tasks) {
      const r = await runRolloutTask(policy.model, task);
      out.push({ id: task.id, ...r, version: policy.version, remote: false });
    }
    return out;
  },
});
