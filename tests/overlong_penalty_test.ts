import assert from "node:assert/strict";
import { FieldError } from "../base/field_error.ts";
import {
  combineRewards,
  overlongPenalty,
  overlongReward,
  RewardOptionsError,
} from "../rl/rewards.ts";

Deno.test("overlongPenalty() is 0 up to maxLength − cacheLength, linear to −1 at maxLength, −1 beyond", () => {
  const p = (n: number) => overlongPenalty(n, 100, 20);
  assert.equal(p(0), 0);
  assert.equal(p(80), 0); // the last length without penalty
  assert.equal(p(81), -1 / 20); // the first penalised length
  assert.equal(p(90), -0.5);
  assert.equal(p(99), -19 / 20);
  assert.equal(p(100), -1); // exactly maxLength
  assert.equal(p(101), -1);
  assert.equal(p(10_000), -1);
  // cacheLength = maxLength: the ramp starts at 0 tokens; cacheLength 0: a step after maxLength.
  assert.equal(overlongPenalty(0, 4, 4), 0);
  assert.equal(overlongPenalty(1, 4, 4), -0.25);
  assert.equal(overlongPenalty(4, 4, 0), 0);
  assert.equal(overlongPenalty(5, 4, 0), -1);
  assert.equal(overlongPenalty(1, 1, 1), -1);
});

Deno.test("overlongPenalty() rejects bad arguments with a RewardOptionsError naming them", () => {
  const cases: [() => number, string, RegExp][] = [
    [() => overlongPenalty(-1, 10, 2), "length", /^length must be an integer >= 0, got -1$/],
    [() => overlongPenalty(1.5, 10, 2), "length", /got 1\.5$/],
    [() => overlongPenalty(NaN, 10, 2), "length", /got NaN$/],
    [() => overlongPenalty(1, 0, 0), "maxLength", /^maxLength must be an integer >= 1, got 0$/],
    [() => overlongPenalty(1, 2.5, 1), "maxLength", /got 2\.5$/],
    [
      () => overlongPenalty(1, 10, 11),
      "cacheLength",
      /^cacheLength must be an integer in \[0, maxLength = 10\], got 11$/,
    ],
    [() => overlongPenalty(1, 10, -1), "cacheLength", /got -1$/],
  ];
  for (const [call, path, message] of cases) {
    assert.throws(
      call,
      (e: unknown) =>
        e instanceof RewardOptionsError && e instanceof FieldError && e.path === path &&
        message.test(e.message),
      path,
    );
  }
});

Deno.test("overlongReward() is a reward function for combineRewards()", () => {
  const reward = overlongReward({ maxLength: 6, cacheLength: 2, countTokens: (c) => c.length });
  const r = combineRewards(["abcd", "abcde", "abcdef", "abcdefgh"], ["", "", "", ""], {
    functions: { overlong: reward },
  });
  assert.deepEqual(r.total, [0, -0.5, -1, -1]);
  assert.throws(
    () => overlongReward({ maxLength: 6, cacheLength: 7, countTokens: (c) => c.length }),
    RewardOptionsError,
  );
});
