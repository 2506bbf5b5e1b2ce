/**
 * DAPO's soft overlong punishment (Yu et al. 2025, eq. 13; TRL
 * `get_soft_overlong_punishment`): a length-only reward that is 0 for completions of at most
 * `maxLength − cacheLength` tokens, falls linearly to −1 at `maxLength` and stays −1 beyond, so
 * a truncated completion is punished smoothly instead of by its (noisy) answer reward alone.
 * `rewards.ts` re-exports it beside the recipe's reward functions.
 *
 * @module
 */

import { FieldError } from "../base/field_error.ts";

/** Thrown when a length-reward argument is invalid; `path` names it. */
export class RewardOptionsError extends FieldError {
  override readonly name: string = "RewardOptionsError";
}

function checkLengths(maxLength: number, cacheLength: number): void {
  if (!(Number.isInteger(maxLength) && maxLength >= 1)) {
    throw RewardOptionsError.mustBe("maxLength", "an integer >= 1", maxLength);
  }
  if (!(Number.isInteger(cacheLength) && cacheLength >= 0 && cacheLength <= maxLength)) {
    throw RewardOptionsError.mustBe(
      "cacheLength",
      `an integer in [0, maxLength = ${maxLength}]`,
      cacheLength,
    );
  }
}

/**
 * The soft overlong penalty of one completion:
 * `0` if `length ≤ maxLength − cacheLength`, `(maxLength − cacheLength − length) / cacheLength`
 * up to `maxLength`, `−1` beyond (with `cacheLength` 0: a step from 0 to −1 after `maxLength`).
 *
 * @param length Completion length in tokens (integer ≥ 0).
 * @param maxLength Length where the penalty reaches −1 (integer ≥ 1).
 * @param cacheLength Length of the linear ramp before `maxLength` (integer in [0, maxLength]).
 * @returns The penalty in [−1, 0].
 * @throws {RewardOptionsError} Naming the invalid argument.
 * @example
 * ```ts
 * import { overlongPenalty } from "./overlong_penalty.ts";
 * // DAPO: 20k tokens at most, the last 4k punished linearly.
 * const p = [16000, 18000, 20000, 20001].map((n) => overlongPenalty(n, 20000, 4000));
 * if (p.join() !== "0,-0.5,-1,-1") throw new Error(p.join());
 * ```
 */
export function overlongPenalty(length: number, maxLength: number, cacheLength: number): number {
  if (!(Number.isInteger(length) && length >= 0)) {
    throw RewardOptionsError.mustBe("length", "an integer >= 0", length);
  }
  checkLengths(maxLength, cacheLength);
  const start = maxLength - cacheLength;
  if (length <= start) return 0;
  if (length <= maxLength) return (start - length) / cacheLength;
  return -1;
}

/** Options of {@linkcode overlongReward}. */
export interface OverlongRewardOptions {
  /** Length where the penalty reaches −1 (integer ≥ 1). */
  readonly maxLength: number;
  /** Length of the linear ramp before `maxLength` (integer in [0, maxLength]). */
  readonly cacheLength: number;
  /** Tokens of a completion (e.g. `(c) => tokenizer.encode(c).length`). */
  readonly countTokens: (completion: string) => number;
}

/**
 * {@linkcode overlongPenalty} as a reward function (`RewardFunction` of `rewards.ts`), for
 * `combineRewards({ functions })`. The arguments are checked here, once.
 *
 * @param options See {@linkcode OverlongRewardOptions}.
 * @returns `(completions, answers) => penalties` (answers unused).
 * @throws {RewardOptionsError} Naming the invalid option.
 * @example
 * ```ts
 * import { overlongReward } from "./overlong_penalty.ts";
 * const byChars = overlongReward({ maxLength: 8, cacheLength: 4, countTokens: (c) => c.length });
 * const p = byChars(["abc", "abcdef", "abcdefghij"], ["", "", ""]);
 * if (p.join() !== "0,-0.5,-1") throw new Error(p.join());
 * ```
 */
export function overlongReward(
  options: OverlongRewardOptions,
): (completions: readonly string[], answers: readonly string[]) => number[] {
  const { maxLength, cacheLength, countTokens } = options;
  checkLengths(maxLength, cacheLength);
  if (typeof countTokens !== "function") {
    throw RewardOptionsError.mustBe("countTokens", "a function", countTokens);
  }
  return (completions) =>
    completions.map((c) => overlongPenalty(countTokens(c), maxLength, cacheLength));
}
