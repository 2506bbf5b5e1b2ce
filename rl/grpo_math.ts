/**
 * GRPO's model-free pieces (Tunix formulation of 2026-01-30: `np_make_completion_mask`,
 * `compute_advantages`) and the rollout metrics logged per step. Per-token data travels as a
 * {@linkcode TokenGrid}: a row-major `[batch, length]` array, so GPU read-backs
 * (`Float32Array`) can be passed without copying.
 *
 * @module
 */

import type { AdvantageBaseline, AdvantageScale } from "./grpo_config.ts";

/** Thrown when GRPO math inputs have the wrong shape or invalid values. */
export class GrpoMathError extends Error {
  /** @param message What was expected and what was received. */
  constructor(message: string) {
    super(message);
    this.name = "GrpoMathError";
  }
}

/** Row-major per-token values: `data[b * shape[1] + j]` belongs to row b, token j. */
export interface TokenGrid<T extends ArrayLike<number> = ArrayLike<number>> {
  /** `[batch * length]` values. */
  readonly data: T;
  /** `[batch, length]`. */
  readonly shape: readonly [number, number];
}

/**
 * Packs equal-length rows into a {@linkcode TokenGrid} (a copy).
 *
 * @param rows `[batch][length]` numbers.
 * @returns The grid with `Float64Array` data.
 * @example
 * ```ts
 * import { tokenGrid } from "./grpo_math.ts";
 * const g = tokenGrid([[1, 2], [3, 4]]);
 * if (g.data[2] !== 3 || g.shape[1] !== 2) throw new Error("unexpected");
 * ```
 */
export function tokenGrid(rows: readonly (readonly number[])[]): TokenGrid<Float64Array> {
  const length = rows[0]?.length ?? 0;
  const data = new Float64Array(rows.length * length);
  rows.forEach((row, b) => {
    if (row.length !== length) {
      throw new GrpoMathError(`row ${b} has ${row.length} entries, row 0 has ${length}`);
    }
    data.set(row, b * length);
  });
  return { data, shape: [rows.length, length] };
}

/**
 * Checks that a grid's data length matches its shape (and, if given, an expected shape).
 *
 * @param name Used in the error message.
 * @param grid The grid.
 * @param expected Optional `[batch, length]` the grid must have.
 */
export function assertGridShape(
  name: string,
  grid: TokenGrid,
  expected?: readonly [number, number],
): void {
  const [b, l] = grid.shape;
  if (!Number.isInteger(b) || !Number.isInteger(l) || b < 0 || l < 0) {
    throw new GrpoMathError(`${name}.shape must be two non-negative integers, got [${b}, ${l}]`);
  }
  if (grid.data.length !== b * l) {
    throw new GrpoMathError(`${name} has ${grid.data.length} values for shape [${b}, ${l}]`);
  }
  if (expected && (b !== expected[0] || l !== expected[1])) {
    throw new GrpoMathError(`${name} must have shape [${expected.join(", ")}], got [${b}, ${l}]`);
  }
}

/** Token ids that end a completion and the padding id. */
export interface EosPadIds {
  /** End-of-sequence ids (Gemma 3 IT: 1 `<eos>` and 106 `<end_of_turn>`). */
  readonly eosIds: number | readonly number[];
  /** Padding id (Gemma: 0). */
  readonly padId: number;
}

function eosSet(eosIds: number | readonly number[]): ReadonlySet<number> {
  return new Set(typeof eosIds === "number" ? [eosIds] : eosIds);
}

/**
 * Loss mask of right-padded completions: 1 up to and including the first EOS (every token when
 * there is none), 0 after it, and 0 on padding anywhere (Tunix
 * `np_make_completion_mask(ids, eos) * (ids != pad)`).
 *
 * @param ids `[batch, length]` completion token ids.
 * @param special See {@linkcode EosPadIds}.
 * @returns `[batch, length]` mask of 0/1.
 * @example
 * ```ts
 * import { completionMask, tokenGrid } from "./grpo_math.ts";
 * const m = completionMask(tokenGrid([[5, 1, 7, 0]]), { eosIds: [1, 106], padId: 0 });
 * if (Array.from(m.data).join() !== "1,1,0,0") throw new Error("unexpected");
 * ```
 */
export function completionMask(ids: TokenGrid, special: EosPadIds): TokenGrid<Int32Array> {
  assertGridShape("ids", ids);
  const [batch, length] = ids.shape;
  const eos = eosSet(special.eosIds);
  const mask = new Int32Array(batch * length);
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < length; j++) {
      const id = ids.data[b * length + j];
      mask[b * length + j] = id === special.padId ? 0 : 1;
      if (eos.has(id)) break;
    }
  }
  return { data: mask, shape: [batch, length] };
}

/** Options of {@linkcode groupAdvantages}. */
export interface GroupAdvantageOptions {
  /** Added to the std (default 1e-4, as Tunix and TRL). */
  readonly epsilon?: number;
  /**
   * What divides the centred rewards (TRL `scale_rewards`): `"group"` the group's std (default),
   * `"batch"` the std of all rewards of the call, `"none"` nothing (Dr. GRPO). Both stds are
   * ddof 1 and get `epsilon` added.
   */
  readonly scale?: AdvantageScale;
  /**
   * What is subtracted from each reward: `"mean"` its group's mean (default), `"leave-one-out"`
   * the mean of the other G − 1 rewards of its group (RLOO).
   */
  readonly baseline?: AdvantageBaseline;
  /** The older switch: false = `scale: "none"`. `scale` wins when both are given. */
  readonly scaleByStd?: boolean;
}

const ADVANTAGE_SCALES: readonly AdvantageScale[] = ["group", "batch", "none"];
const ADVANTAGE_BASELINES: readonly AdvantageBaseline[] = ["mean", "leave-one-out"];

/** Sample standard deviation (ddof 1) of `values[start, end)`. */
function sampleStd(values: ArrayLike<number>, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i++) sum += values[i];
  const mean = sum / (end - start);
  let ss = 0;
  for (let i = start; i < end; i++) ss += (values[i] - mean) ** 2;
  return Math.sqrt(ss / (end - start - 1));
}

/**
 * Group-relative advantages, one group per consecutive `groupSize` rewards. The default is Tunix
 * `compute_advantages` (= TRL `scale_rewards="group"`): `(r − mean) / (std(ddof=1) + 1e-4)`.
 * `scale` picks the divisor (group std, batch std as TRL `scale_rewards="batch"`, or none),
 * `baseline` the subtracted value (group mean, or RLOO's mean of the other G − 1 rewards,
 * `r − (Σ − r)/(G − 1)`).
 *
 * @param rewards `[numPrompts * groupSize]` total rewards, grouped consecutively.
 * @param groupSize G (≥ 2).
 * @param options See {@linkcode GroupAdvantageOptions}.
 * @returns `[numPrompts * groupSize]` advantages (0 for groups with equal rewards, up to
 *   rounding of their mean).
 * @example
 * ```ts
 * import { groupAdvantages } from "./grpo_math.ts";
 * const a = groupAdvantages([1, 0, 0, 0.5, 0.25, 0.25, 0.25, 0.25], 4);
 * if (Math.abs(a[0] - 1.3053097) > 1e-6 || a[4] !== 0) throw new Error("unexpected");
 * // Leave-one-out without scaling: 1 − (0 + 0 + 0.5)/3.
 * const l = groupAdvantages([1, 0, 0, 0.5], 4, { scale: "none", baseline: "leave-one-out" });
 * if (Math.abs(l[0] - 5 / 6) > 1e-15) throw new Error("unexpected");
 * ```
 */
export function groupAdvantages(
  rewards: ArrayLike<number>,
  groupSize: number,
  options: GroupAdvantageOptions = {},
): Float64Array {
  const eps = options.epsilon ?? 1e-4;
  const scale = options.scale ?? (options.scaleByStd === false ? "none" : "group");
  const baseline = options.baseline ?? "mean";
  if (!Number.isInteger(groupSize) || groupSize < 2) {
    throw new GrpoMathError(`groupSize must be an integer >= 2, got ${groupSize}`);
  }
  if (rewards.length % groupSize !== 0) {
    throw new GrpoMathError(`rewards.length ${rewards.length} is not a multiple of ${groupSize}`);
  }
  if (!(Number.isFinite(eps) && eps >= 0)) {
    throw new GrpoMathError(`epsilon must be a finite number >= 0, got ${eps}`);
  }
  if (!ADVANTAGE_SCALES.includes(scale)) {
    throw new GrpoMathError(`scale must be one of ${ADVANTAGE_SCALES.join(", ")}, got ${scale}`);
  }
  if (!ADVANTAGE_BASELINES.includes(baseline)) {
    throw new GrpoMathError(
      `baseline must be one of ${ADVANTAGE_BASELINES.join(", ")}, got ${baseline}`,
    );
  }
  for (let i = 0; i < rewards.length; i++) {
    if (!Number.isFinite(rewards[i])) {
      throw new GrpoMathError(`rewards[${i}] must be finite, got ${rewards[i]}`);
    }
  }
  const batchDenom = scale === "batch" ? sampleStd(rewards, 0, rewards.length) + eps : 1;
  const out = new Float64Array(rewards.length);
  for (let start = 0; start < rewards.length; start += groupSize) {
    let sum = 0;
    for (let i = start; i < start + groupSize; i++) sum += rewards[i];
    const mean = sum / groupSize;
    let denom = batchDenom;
    if (scale === "group") {
      // subtle: the same operations as before `scale` existed, so the default stays bit-identical.
      let ss = 0;
      for (let i = start; i < start + groupSize; i++) ss += (rewards[i] - mean) ** 2;
      denom = Math.sqrt(ss / (groupSize - 1)) + eps;
    }
    for (let i = start; i < start + groupSize; i++) {
      const base = baseline === "mean" ? mean : (sum - rewards[i]) / (groupSize - 1);
      out[i] = (rewards[i] - base) / denom;
    }
  }
  return out;
}

/** Mean and standard deviation (ddof 0) over a batch. */
export interface MeanStd {
  /** Mean. */
  readonly mean: number;
  /** Population standard deviation. */
  readonly std: number;
}

function meanStd(values: ArrayLike<number>): MeanStd {
  const n = values.length;
  if (n === 0) return { mean: 0, std: 0 };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i];
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i] - mean) ** 2;
  return { mean, std: Math.sqrt(ss / n) };
}

/** Reward statistics of one rollout batch. */
export interface RewardMetrics {
  /** Mean and std (ddof 0) of the total reward over all completions. */
  readonly total: MeanStd;
  /** The same per reward function. */
  readonly perFunction: Readonly<Record<string, MeanStd>>;
  /** Share of groups whose total rewards are all equal (their advantages are all 0). */
  readonly zeroStdGroupFraction: number;
}

/**
 * Reward statistics for logging.
 *
 * @param total `[numPrompts * groupSize]` total rewards, grouped consecutively.
 * @param perFunction Unweighted scores per reward function (same layout).
 * @param groupSize G.
 * @returns See {@linkcode RewardMetrics}.
 */
export function rewardMetrics(
  total: ArrayLike<number>,
  perFunction: Readonly<Record<string, ArrayLike<number>>>,
  groupSize: number,
): RewardMetrics {
  if (!Number.isInteger(groupSize) || groupSize < 1 || total.length % groupSize !== 0) {
    throw new GrpoMathError(
      `total.length ${total.length} is not a multiple of groupSize ${groupSize}`,
    );
  }
  const per: Record<string, MeanStd> = {};
  for (const [name, values] of Object.entries(perFunction)) {
    if (values.length !== total.length) {
      throw new GrpoMathError(
        `perFunction.${name} has ${values.length} values, total has ${total.length}`,
      );
    }
    per[name] = meanStd(values);
  }
  const groups = total.length / groupSize;
  let flat = 0;
  for (let g = 0; g < groups; g++) {
    let same = true;
    for (let i = 1; i < groupSize; i++) same &&= total[g * groupSize + i] === total[g * groupSize];
    if (same) flat++;
  }
  return {
    total: meanStd(total),
    perFunction: per,
    zeroStdGroupFraction: groups === 0 ? 0 : flat / groups,
  };
}

/** Completion length statistics of one rollout batch. */
export interface CompletionLengthStats {
  /** Mean masked length (tokens counted by the loss, EOS included). */
  readonly mean: number;
  /** Shortest masked length. */
  readonly min: number;
  /** Longest masked length. */
  readonly max: number;
  /** Share of completions without any EOS (stopped by the token limit). */
  readonly truncatedFraction: number;
}

/**
 * Completion lengths as Tunix logs them (`completion_mask.sum(-1)`) plus the truncated share.
 *
 * @param ids `[batch, length]` completion ids, right-padded.
 * @param special See {@linkcode EosPadIds}.
 * @returns See {@linkcode CompletionLengthStats} (all 0 for an empty batch).
 */
export function completionLengthStats(ids: TokenGrid, special: EosPadIds): CompletionLengthStats {
  const mask = completionMask(ids, special);
  const [batch, length] = ids.shape;
  if (batch === 0) return { mean: 0, min: 0, max: 0, truncatedFraction: 0 };
  const eos = eosSet(special.eosIds);
  let sum = 0, min = Infinity, max = -Infinity, truncated = 0;
  for (let b = 0; b < batch; b++) {
    let n = 0, sawEos = false;
    for (let j = 0; j < length; j++) {
      n += mask.data[b * length + j];
      sawEos ||= eos.has(ids.data[b * length + j]);
    }
    sum += n;
    min = Math.min(min, n);
    max = Math.max(max, n);
    if (!sawEos) truncated++;
  }
  return { mean: sum / batch, min, max, truncatedFraction: truncated / batch };
}
