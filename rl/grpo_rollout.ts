/**
 * The rollout half of a GRPO step: G completions per prompt sampled on the GPU (with the
 * sampler's log-prob of every sampled token), the reward functions' scores plus DAPO's optional
 * overlong penalty, and DAPO's dynamic sampling — groups whose rewards are all equal teach
 * nothing (their advantages are 0), so they are dropped and more prompts are drawn from the
 * prompt stream until the batch holds `batchSize` informative groups, for at most
 * `maxResampleRounds` extra rounds.
 *
 * When the rounds run out first, the step trains on the informative groups it has (a smaller
 * batch); when it has none at all, it trains on the first round's groups as if dynamic sampling
 * were off (their advantages are 0, so only the KL term moves the weights). Every draw is
 * deterministic: round 0 samples with `seed + step` (as without dynamic sampling), round r with
 * `seed + step + r · 0x9e3779b9` (mod 2³²), prompt i of a round with `promptSeed(roundSeed, i)`
 * as one task (`rollout_tasks.ts`: the learner or a rollout worker samples it, with the same
 * result), and the prompts come from the caller's stream, whose position the caller
 * checkpoints.
 *
 * @module
 */

import type { Gemma3 } from "../model/gemma3.ts";
import type { Trainable } from "../model/trainable.ts";
import type { GrpoConfig } from "./grpo_config.ts";
import { groupAdvantages } from "./grpo_math.ts";
import { combineRewards, type CombineRewardsOptions, overlongPenalty } from "./rewards.ts";
import {
  localRollout,
  promptSeed,
  type RolloutExecutor,
  type RolloutTask,
} from "./rollout_tasks.ts";

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

/**
 * Draws the next prompts of the stream (dynamic sampling's extra rounds).
 *
 * @param count How many prompts.
 * @returns Exactly `count` prompts.
 */
export type PromptStream = (count: number) => readonly GrpoPrompt[];

/** What the rollout needs of a model: batched sampling with the sampled tokens' log-probs
 * (`Gemma3` has it). */
export type RolloutModel = Pick<Gemma3, "generateWithLogprobs">;

/** Name of the overlong penalty in the per-function rewards (when enabled). */
export const OVERLONG_REWARD_NAME = "overlongPenalty";

/** G completions of each of some prompts, scored. Rows are prompt-major (p·G + g). */
export interface SampledGroups {
  /** The prompts, one per group. */
  readonly prompts: readonly GrpoPrompt[];
  /** Prompt ids per row (cut to `maxPromptLength` from the left). */
  readonly rows: readonly (readonly number[])[];
  /** Gold answer per row. */
  readonly answers: readonly string[];
  /** Completion ids per row (EOS included when sampled). */
  readonly completions: readonly (readonly number[])[];
  /** The sampler's log-prob (temperature 1, of the logits it sampled from) of each completion
   * token, per row. */
  readonly rolloutLogps: readonly (readonly number[])[];
  /** Whether a rollout worker sampled the row. */
  readonly remote: readonly boolean[];
  /** The largest version lag of the tasks' results behind the policy (0: all current). */
  readonly staleness: number;
  /** Decoded completions per row. */
  readonly texts: readonly string[];
  /** Total reward per row (reward functions, weighted, plus the overlong penalty when on). */
  readonly rewards: readonly number[];
  /** Each reward's unweighted score per row, by name (`overlongPenalty` included when on). */
  readonly rewardsPerFunction: Readonly<Record<string, readonly number[]>>;
}

/** The batch a GRPO step trains on, and what was sampled to get it. */
export interface GrpoRollout {
  /** The groups trained on. */
  readonly batch: SampledGroups;
  /** Advantage per row of `batch` (`groupAdvantages` with the config's scale and baseline). */
  readonly advantages: Float64Array;
  /** Every group sampled this step, in draw order (equal to `batch` without dynamic sampling). */
  readonly sampled: SampledGroups;
  /** Groups of `sampled` whose rewards were all equal. */
  readonly zeroStdGroups: number;
  /** Prompts drawn from the stream beyond the step's own `prompts` (dynamic sampling). */
  readonly resampleDraws: number;
  /** Extra sampling rounds run (dynamic sampling). */
  readonly resampleRounds: number;
}

/** Options of {@linkcode sampleGroups}. */
export interface SampleGroupsOptions {
  /** Sampling, lengths, overlong penalty. */
  readonly config: GrpoConfig;
  /** Completion ids → text. */
  readonly decoder: CompletionDecoder;
  /** End-of-sequence ids. */
  readonly eosIds: readonly number[];
  /** Sampler seed (u32). */
  readonly seed: number;
  /** Reward functions and weights (default: the seed's four, unweighted). */
  readonly rewards?: CombineRewardsOptions;
  /** Runs the per-prompt tasks (default {@linkcode localRollout}: the learner samples). */
  readonly executor?: RolloutExecutor;
  /** The policy's version: optimizer updates done (default 0). */
  readonly version?: number;
  /** Task id prefix, e.g. `s3-r0` (default `r0`). */
  readonly taskPrefix?: string;
  /** The trained parameters, which rollout workers load (default null). */
  readonly trainable?: Trainable | null;
}

/** Completion length as the loss mask counts it: up to and including the first EOS. */
function maskedLength(ids: readonly number[], eos: ReadonlySet<number>): number {
  for (let j = 0; j < ids.length; j++) if (eos.has(ids[j])) return j + 1;
  return ids.length;
}

/** Decoded texts and rewards of completions (reward functions, weighted, plus the overlong
 * penalty when on). */
interface ScoredRows {
  readonly texts: string[];
  readonly rewards: readonly number[];
  readonly rewardsPerFunction: Readonly<Record<string, readonly number[]>>;
}

function scoreRows(
  completions: readonly (readonly number[])[],
  answers: readonly string[],
  options: Pick<SampleGroupsOptions, "config" | "decoder" | "eosIds" | "rewards">,
): ScoredRows {
  const texts = completions.map((ids) => options.decoder.decode(ids));
  const scored = combineRewards(texts, answers, options.rewards);
  const o = options.config.overlongPenalty;
  if (!o.enabled) return { texts, rewards: scored.total, rewardsPerFunction: scored.perFunction };
  const eos = new Set(options.eosIds);
  const penalty = completions.map((ids) =>
    overlongPenalty(maskedLength(ids, eos), o.maxLength, o.cacheLength)
  );
  return {
    texts,
    rewards: scored.total.map((r, i) => r + penalty[i]),
    rewardsPerFunction: { ...scored.perFunction, [OVERLONG_REWARD_NAME]: penalty },
  };
}

/**
 * The per-prompt tasks of a sampling round: prompt i (cut to `maxPromptLength` from the left)
 * with seed `promptSeed(seed, i)`, id `<taskPrefix>-p<i>`, the config's sampling.
 *
 * @param prompts The round's prompts.
 * @param options Config, EOS ids, the round's seed, policy version and task id prefix.
 * @returns One task per prompt.
 * @example
 * ```ts
 * import { createGrpoConfig } from "./grpo_config.ts";
 * import { rolloutTasks } from "./grpo_rollout.ts";
 * const [t] = rolloutTasks([{ ids: [2, 5], answer: "7" }], {
 *   config: createGrpoConfig({ numGenerations: 2 }), eosIds: [1], seed: 3, taskPrefix: "s0-r0",
 * });
 * console.log(t.id, t.numGenerations); // "s0-r0-p0" 2
 * ```
 */
export function rolloutTasks(
  prompts: readonly GrpoPrompt[],
  options: Pick<SampleGroupsOptions, "config" | "eosIds" | "seed" | "version" | "taskPrefix">,
): RolloutTask[] {
  const c = options.config;
  const sampling = {
    maxNewTokens: c.maxNewTokens,
    temperature: c.temperature,
    topK: c.topK,
    topP: c.topP,
    eosIds: [...options.eosIds],
  };
  return prompts.map((p, i) => ({
    id: `${options.taskPrefix ?? "r0"}-p${i}`,
    promptIds: p.ids.slice(-c.maxPromptLength),
    answer: p.answer,
    numGenerations: c.numGenerations,
    sampling,
    seed: promptSeed(options.seed, i),
    version: options.version ?? 0,
  }));
}

/**
 * The total reward of a task's completions, as GRPO scores them (decoded, the reward functions
 * weighted, plus the overlong penalty when on): what the learner checks a rollout worker's
 * claimed rewards against, and what a worker computes.
 *
 * @param options The GRPO config, decoder, EOS ids and reward functions.
 * @returns The scorer.
 * @example
 * ```ts
 * import { createGrpoConfig } from "./grpo_config.ts";
 * import { rolloutScorer } from "./grpo_rollout.ts";
 * const score = rolloutScorer({
 *   config: createGrpoConfig({}),
 *   decoder: { decode: () => "<reasoning>x</reasoning><answer>7</answer>" },
 *   eosIds: [1],
 * });
 * console.log(score({ answer: "7" }, [[5, 1]])[0] > 0); // true
 * ```
 */
export function rolloutScorer(
  options: Pick<SampleGroupsOptions, "config" | "decoder" | "eosIds" | "rewards">,
): (task: Pick<RolloutTask, "answer">, completions: readonly (readonly number[])[]) => number[] {
  return (task, completions) => [
    ...scoreRows(completions, completions.map(() => task.answer), options).rewards,
  ];
}

/**
 * Samples G completions per prompt and scores them. Each prompt is one task
 * (`rollout_tasks.ts`) with its own seed (`promptSeed(seed, index)`), run by `executor`: the
 * learner itself, or rollout workers — the completions of a prompt are the same either way.
 *
 * @param model The policy.
 * @param prompts The prompts.
 * @param options Config, decoder, EOS ids, seed, rewards, executor and policy version.
 * @returns The scored groups.
 * @example
 * ```ts
 * import { createGrpoConfig } from "./grpo_config.ts";
 * import { type RolloutModel, sampleGroups } from "./grpo_rollout.ts";
 * // A stand-in sampler: every row draws "7 <eos>" (a Gemma3 samples on the GPU).
 * const model: RolloutModel = {
 *   generateWithLogprobs: (rows) =>
 *     Promise.resolve({ ids: rows.map(() => [7, 1]), logprobs: rows.map(() => [-0.1, -0.2]) }),
 * };
 * const s = await sampleGroups(model, [{ ids: [2, 5], answer: "7" }], {
 *   config: createGrpoConfig({ numGenerations: 2 }),
 *   decoder: { decode: (ids) => ids.filter((i) => i !== 1).join(" ") },
 *   eosIds: [1],
 *   seed: 0,
 * });
 * if (s.rows.length !== 2 || s.texts[0] !== "7") throw new Error();
 * ```
 */
export async function sampleGroups(
  model: RolloutModel,
  prompts: readonly GrpoPrompt[],
  options: SampleGroupsOptions,
): Promise<SampledGroups> {
  const G = options.config.numGenerations;
  const version = options.version ?? 0;
  const tasks = rolloutTasks(prompts, options);
  const score = rolloutScorer(options);
  const results = await (options.executor ?? localRollout).run(tasks, {
    model,
    version,
    trainable: options.trainable ?? null,
    score,
  });
  const rows = tasks.flatMap((t) => Array.from({ length: G }, () => t.promptIds));
  const answers = tasks.flatMap((t) => Array.from({ length: G }, () => t.answer));
  const completions = results.flatMap((r) => r.completions);
  const rolloutLogps = results.flatMap((r) => r.rolloutLogps);
  const remote = results.flatMap((r) => r.completions.map(() => r.remote));
  const staleness = results.map((r) => version - r.version);
  return {
    prompts,
    rows,
    answers,
    completions,
    rolloutLogps,
    remote,
    staleness: staleness.length > 0 ? Math.max(...staleness) : 0,
    ...scoreRows(completions, answers, options),
  };
}

/** Whether all rewards of group `g` are equal. */
function isZeroStdGroup(rewards: readonly number[], g: number, G: number): boolean {
  for (let i = g * G + 1; i < (g + 1) * G; i++) if (rewards[i] !== rewards[g * G]) return false;
  return true;
}

/** The groups `keep` of `s` (indices into `s.prompts`), in order. */
function selectGroups(s: SampledGroups, keep: readonly number[], G: number): SampledGroups {
  const rowsOf = <T>(xs: readonly T[]): T[] => keep.flatMap((g) => xs.slice(g * G, (g + 1) * G));
  return {
    prompts: keep.map((g) => s.prompts[g]),
    rows: rowsOf(s.rows),
    answers: rowsOf(s.answers),
    completions: rowsOf(s.completions),
    rolloutLogps: rowsOf(s.rolloutLogps),
    remote: rowsOf(s.remote),
    staleness: s.staleness,
    texts: rowsOf(s.texts),
    rewards: rowsOf(s.rewards),
    rewardsPerFunction: Object.fromEntries(
      Object.entries(s.rewardsPerFunction).map(([k, v]) => [k, rowsOf(v)]),
    ),
  };
}

/** The groups of several draws as one. */
function concatGroups(parts: readonly SampledGroups[]): SampledGroups {
  const cat = <T>(pick: (s: SampledGroups) => readonly T[]): T[] => parts.flatMap(pick);
  const names = Object.keys(parts[0].rewardsPerFunction);
  return {
    prompts: cat((s) => s.prompts),
    rows: cat((s) => s.rows),
    answers: cat((s) => s.answers),
    completions: cat((s) => s.completions),
    rolloutLogps: cat((s) => s.rolloutLogps),
    remote: cat((s) => s.remote),
    staleness: Math.max(...parts.map((s) => s.staleness)),
    texts: cat((s) => s.texts),
    rewards: cat((s) => s.rewards),
    rewardsPerFunction: Object.fromEntries(
      names.map((k) => [k, cat((s) => s.rewardsPerFunction[k])]),
    ),
  };
}

/** Options of {@linkcode collectRollout}. */
export interface CollectRolloutOptions extends Omit<SampleGroupsOptions, "seed"> {
  /** Seed of round 0 (`seed + step`); later rounds add multiples of 0x9e3779b9. */
  readonly seed: number;
  /** The prompt stream for dynamic sampling's extra rounds (without it, none are run). */
  readonly drawPrompts?: PromptStream;
}

/**
 * Samples and scores a step's groups; with `config.dynamicSampling`, drops the groups whose
 * rewards are all equal and draws more prompts (see the module doc).
 *
 * @param model The policy.
 * @param prompts The step's prompts (`batchSize` of them).
 * @param options Config, decoder, EOS ids, seed, rewards, prompt stream.
 * @returns The batch to train on, its advantages, and what was sampled.
 * @example
 * ```ts
 * import { createGrpoConfig } from "./grpo_config.ts";
 * import { collectRollout, type RolloutModel } from "./grpo_rollout.ts";
 * // A stand-in sampler: row b draws b + 1 tokens (a Gemma3 samples on the GPU).
 * const model: RolloutModel = {
 *   generateWithLogprobs: (rows) => {
 *     const ids = rows.map((_, b) => Array.from({ length: b % 2 + 1 }, () => 7));
 *     return Promise.resolve({ ids, logprobs: ids.map((r) => r.map(() => -0.1)) });
 *   },
 * };
 * // Reward: the completion's length, except for the prompt whose answer is "flat".
 * const rewards = {
 *   functions: {
 *     length: (c: readonly string[], a: readonly string[]) =>
 *       c.map((text, i) => a[i] === "flat" ? 0 : text.length),
 *   },
 * };
 * const stream = [{ ids: [2, 6], answer: "x" }];
 * const r = await collectRollout(model, [{ ids: [2, 5], answer: "flat" }], {
 *   config: createGrpoConfig({ numGenerations: 2, dynamicSampling: true }),
 *   decoder: { decode: (ids) => ids.join(" ") },
 *   eosIds: [1],
 *   seed: 3,
 *   rewards,
 *   drawPrompts: (n) => stream.splice(0, n),
 * });
 * // The "flat" group taught nothing; one more prompt was drawn and trained on instead.
 * if (r.batch.prompts[0].answer !== "x" || r.resampleDraws !== 1) throw new Error();
 * ```
 */
export async function collectRollout(
  model: RolloutModel,
  prompts: readonly GrpoPrompt[],
  options: CollectRolloutOptions,
): Promise<GrpoRollout> {
  const c = options.config, G = c.numGenerations;
  const roundSeed = (r: number) => r === 0 ? options.seed : (options.seed + r * 0x9e3779b9) >>> 0;
  const round = (r: number) => ({
    ...options,
    seed: roundSeed(r),
    taskPrefix: `${options.taskPrefix ?? "s0"}-r${r}`,
  });
  const first = await sampleGroups(model, prompts, round(0));
  const draws: SampledGroups[] = [first];
  const kept: SampledGroups[] = [];
  const informative = (s: SampledGroups): SampledGroups => {
    const keep = s.prompts.map((_, g) => g).filter((g) => !isZeroStdGroup(s.rewards, g, G));
    return selectGroups(s, keep, G);
  };
  let batch = first, rounds = 0, extra = 0;
  if (c.dynamicSampling) {
    kept.push(informative(first));
    let have = kept[0].prompts.length;
    while (have < prompts.length && rounds < c.maxResampleRounds && options.drawPrompts) {
      const more = options.drawPrompts(prompts.length - have);
      if (more.length === 0) break;
      rounds++;
      extra += more.length;
      const s = await sampleGroups(model, more, round(rounds));
      draws.push(s);
      const k = informative(s);
      kept.push(k);
      have += k.prompts.length;
    }
    // subtle: nothing informative at all: train on round 0 (KL only), as without the option
    batch = have === 0 ? first : concatGroups(kept);
  }
  const sampled = draws.length === 1 ? first : concatGroups(draws);
  let zeroStdGroups = 0;
  for (let g = 0; g < sampled.prompts.length; g++) {
    if (isZeroStdGroup(sampled.rewards, g, G)) zeroStdGroups++;
  }
  const advantages = groupAdvantages(batch.rewards, G, {
    epsilon: c.advantageEpsilon,
    scale: c.advantageScale,
    baseline: c.advantageBaseline,
  });
  return {
    batch,
    advantages,
    sampled,
    zeroStdGroups,
    resampleDraws: extra,
    resampleRounds: rounds,
  };
}
