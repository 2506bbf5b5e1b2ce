/**
 * The rollout half of a GRPO step without a GPU: `collectRollout()` with a scripted sampler —
 * dynamic sampling drops groups whose rewards are all equal, draws the missing prompts from the
 * stream round by round (each round its own seed), stops at `maxResampleRounds` and then trains
 * on what it has (or on round 0 when nothing is informative); the overlong penalty joins the
 * rewards; `completionLossMask()` masks truncated completions.
 */

import assert from "node:assert/strict";
import { completionLossMask } from "../rl/grpo.ts";
import { createGrpoConfig, type GrpoConfigInput } from "../rl/grpo_config.ts";
import { tokenGrid } from "../rl/grpo_math.ts";
import {
  collectRollout,
  type GrpoPrompt,
  OVERLONG_REWARD_NAME,
  type RolloutModel,
} from "../rl/grpo_rollout.ts";
import { promptSeed } from "../rl/rollout_tasks.ts";

const EOS = 1, G = 2;

/**
 * A sampler whose row b (of each task's G rows) draws `b % G + 1` tokens of 7 (then EOS when
 * `eos`), recording seeds.
 */
function scriptedModel(seeds: number[], eos = true): RolloutModel {
  return {
    generateWithLogprobs(prompts, options) {
      seeds.push(options.seed!);
      const ids = prompts.map((_, b) => [
        ...Array.from({ length: (b % G) + 1 }, () => 7),
        ...(eos ? [EOS] : []),
      ]);
      return Promise.resolve({ ids, logprobs: ids.map((row) => row.map(() => -0.5)) });
    },
  };
}

/** Prompt `name`: "same" groups score 1 on every completion, the others their length. */
const prompt = (name: string): GrpoPrompt => ({ ids: [2, name.length], answer: name });

const rewards = {
  functions: {
    score: (completions: readonly string[], answers: readonly string[]) =>
      completions.map((c, i) => answers[i].startsWith("same") ? 1 : c.length),
  },
};

function options(config: GrpoConfigInput, stream: GrpoPrompt[] = []) {
  return {
    config: createGrpoConfig({ numGenerations: G, maxNewTokens: 4, ...config }),
    decoder: { decode: (ids: readonly number[]) => ids.filter((i) => i !== EOS).join(" ") },
    eosIds: [EOS],
    seed: 100,
    rewards,
    drawPrompts: (count: number) => stream.splice(0, count),
  };
}

Deno.test("collectRollout() without dynamic sampling trains on every group it sampled", async () => {
  const seeds: number[] = [];
  const r = await collectRollout(
    scriptedModel(seeds),
    [prompt("same"), prompt("diff")],
    options({}, [prompt("unused")]),
  );
  // One task per prompt, each with its own seed.
  assert.deepEqual(seeds, [promptSeed(100, 0), promptSeed(100, 1)]);
  assert.equal(r.batch, r.sampled);
  assert.deepEqual(r.batch.prompts.map((p) => p.answer), ["same", "diff"]);
  assert.deepEqual(r.batch.rewards, [1, 1, 1, 3]); // "7" and "7 7"
  assert.equal(r.zeroStdGroups, 1);
  assert.deepEqual([r.resampleDraws, r.resampleRounds], [0, 0]);
  assert.deepEqual(Array.from(r.advantages.slice(0, 2)), [0, 0]);
  assert.ok(r.advantages[2] < 0 && r.advantages[3] > 0);
  assert.deepEqual(r.batch.rolloutLogps[3], [-0.5, -0.5, -0.5]);
});

Deno.test("collectRollout() with dynamic sampling drops equal-reward groups and draws more, round by round", async () => {
  const seeds: number[] = [];
  const stream = [prompt("same1"), prompt("same2"), prompt("diff3"), prompt("diff4")];
  const r = await collectRollout(
    scriptedModel(seeds),
    [prompt("same0"), prompt("diff0")],
    options({ dynamicSampling: true }, stream),
  );
  // Round 0 keeps diff0; rounds 1–3 each draw the one missing prompt, the third is informative.
  assert.deepEqual(r.batch.prompts.map((p) => p.answer), ["diff0", "diff3"]);
  assert.deepEqual(r.sampled.prompts.map((p) => p.answer), [
    "same0",
    "diff0",
    "same1",
    "same2",
    "diff3",
  ]);
  assert.deepEqual([r.resampleDraws, r.resampleRounds, r.zeroStdGroups], [3, 3, 3]);
  assert.deepEqual(stream.map((p) => p.answer), ["diff4"], "the stream moved by the draws");
  const phi = 0x9e3779b9;
  const rounds = [100, (100 + phi) >>> 0, (100 + 2 * phi) >>> 0, (100 + 3 * phi) >>> 0];
  assert.deepEqual(seeds, [
    promptSeed(100, 0),
    promptSeed(100, 1),
    ...rounds.slice(1).map((r) => promptSeed(r, 0)),
  ]);
  assert.equal(r.batch.rows.length, 4);
  assert.ok(r.advantages.every((a) => a !== 0));
});

Deno.test("collectRollout() stops at maxResampleRounds: a smaller batch, or round 0 when nothing is informative", async () => {
  const fewer = await collectRollout(
    scriptedModel([]),
    [prompt("same0"), prompt("diff0")],
    options({ dynamicSampling: true, maxResampleRounds: 1 }, [prompt("same1"), prompt("diff2")]),
  );
  assert.deepEqual(fewer.batch.prompts.map((p) => p.answer), ["diff0"]);
  assert.deepEqual([fewer.resampleDraws, fewer.resampleRounds], [1, 1]);

  const none = await collectRollout(
    scriptedModel([]),
    [prompt("same0"), prompt("same1")],
    options(
      { dynamicSampling: true, maxResampleRounds: 2 },
      ["same2", "same3", "same4", "same5", "diff6"].map(prompt),
    ),
  );
  assert.deepEqual(none.batch.prompts.map((p) => p.answer), ["same0", "same1"]);
  assert.deepEqual([none.resampleDraws, none.resampleRounds, none.zeroStdGroups], [4, 2, 6]);
  assert.ok(none.advantages.every((a) => a === 0));
});

Deno.test("collectRollout() adds the overlong penalty of each completion's masked length", async () => {
  // Lengths with EOS: 2 and 3 tokens; without EOS (cut): 1 and 2. Ramp from 2 to 4 tokens.
  const overlongPenalty = { enabled: true, maxLength: 4, cacheLength: 2 };
  for (const [eos, want] of [[true, [0, -0.5, 0, -0.5]], [false, [0, 0, 0, 0]]] as const) {
    const r = await collectRollout(
      scriptedModel([], eos),
      [prompt("same"), prompt("diff")],
      options({ overlongPenalty }),
    );
    assert.deepEqual(r.batch.rewardsPerFunction[OVERLONG_REWARD_NAME], want);
    assert.deepEqual(r.batch.rewards, r.batch.rewardsPerFunction.score.map((s, i) => s + want[i]));
  }
  const off = await collectRollout(scriptedModel([]), [prompt("diff")], options({}));
  assert.ok(!(OVERLONG_REWARD_NAME in off.batch.rewardsPerFunction));
});

Deno.test("completionLossMask() masks rows without an EOS only when asked", () => {
  const ids = tokenGrid([[5, 1, 0, 0], [5, 6, 7, 8], [1, 0, 0, 0]]);
  const special = { eosIds: [EOS], padId: 0 };
  const keep = completionLossMask(ids, special, { maskTruncated: false });
  assert.deepEqual(Array.from(keep.data), [1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]);
  const masked = completionLossMask(ids, special, { maskTruncated: true });
  assert.deepEqual(Array.from(masked.data), [1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
});
