/**
 * The sampling rules of `sample()` written out in plain TS (float64 weights), with the
 * counter-based RNG both sides share. Given the same logits and uniform, the reference and the
 * GPU pick the same token unless float32 rounding moves a cumulative mass across a boundary.
 *
 * The rules, per row of logits `l[0..V)`:
 * - Ranking uses the IEEE total order of the float32 bits (`orderedKey`); NaN ranks as −∞.
 * - `temperature = 0` is greedy: the largest logit, ties → the lowest index.
 * - Otherwise `w_i = exp((l_i − l_max) · fround(1/temperature))`.
 * - top-k (`0 < k < V`): keep `key_i ≥ τ_k`, τ_k the k-th largest key; every token tied with
 *   the k-th value is kept (so more than k may survive).
 * - top-p (`p < 1`): over the kept set with total `S`, keep `key_i ≥ τ_p`, τ_p the largest key
 *   whose mass `Σ_{key ≥ τ_p} w` is `≥ p·S` (the smallest top set reaching p; ties kept).
 * - Draw: `u = samplingUniform(seed, step, row)`, target `u · Σ_kept w`; pick the first kept
 *   index, in index order, where the running sum of kept weights exceeds the target (zero-weight
 *   tokens are never picked); if rounding leaves none, the last kept index with `w > 0`.
 *
 * @module
 */

import { type SamplingParams, samplingParams } from "./sampling.ts";

/** PCG output permutation (O'Neill), the hash behind {@linkcode samplingUniform}. */
function pcgHash(v: number): number {
  const state = (Math.imul(v, 747796405) + 2891336453) >>> 0;
  const word = Math.imul((state >>> ((state >>> 28) + 4)) ^ state, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** Which draw {@linkcode samplingUniform} makes: the RNG counters of one row of one step. */
export interface SamplingDraw {
  /** RNG seed (u32). */
  readonly seed: number;
  /** Step counter (u32). */
  readonly step: number;
  /** Row of the logits batch. */
  readonly row: number;
}

/**
 * The uniform number `sample()` draws for a row: `pcg(pcg(pcg(seed) + step) + row)`, top 24
 * bits scaled to [0, 1). Exactly the value the WGSL computes (a multiple of 2⁻²⁴).
 *
 * @param draw Seed, step and row.
 * @returns A uniform in [0, 1).
 * @example
 * ```ts
 * import { samplingUniform } from "./sampling_ref.ts";
 * const u = samplingUniform({ seed: 1, step: 0, row: 3 });
 * console.log(u >= 0 && u < 1); // true
 * ```
 */
export function samplingUniform(draw: SamplingDraw): number {
  const { seed, step, row } = draw;
  const x = pcgHash((pcgHash((pcgHash(seed >>> 0) + (step >>> 0)) >>> 0) + (row >>> 0)) >>> 0);
  return (x >>> 8) / 16777216;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Maps a float32 value to a u32 whose unsigned order is the IEEE total order (−0 below +0);
 * NaN maps to the key of −∞.
 *
 * @param x A number (taken as float32).
 * @returns The ordered key.
 */
export function orderedKey(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return 0x007fffff;
  return (bits & 0x80000000 ? ~bits : bits | 0x80000000) >>> 0;
}

/**
 * Inverse of {@linkcode orderedKey}.
 *
 * @param key An ordered key.
 * @returns The float32 value.
 */
export function keyValue(key: number): number {
  u32[0] = key >= 0x80000000 ? key & 0x7fffffff : ~key >>> 0;
  return f32[0];
}

function sampleRow(row: ArrayLike<number>, p: SamplingParams, u: number): number {
  const n = row.length;
  const keys = new Uint32Array(n);
  let kmax = 0;
  for (let i = 0; i < n; i++) {
    keys[i] = orderedKey(row[i]);
    if (keys[i] > kmax) kmax = keys[i];
  }
  if (p.temperature === 0) return keys.indexOf(kmax);
  let tk = 0;
  if (p.topK > 0 && p.topK < n) tk = keys.slice().sort().reverse()[p.topK - 1];
  const lmax = keyValue(kmax);
  const invT = Math.fround(1 / p.temperature);
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    w[i] = keys[i] >= tk ? Math.exp((keyValue(keys[i]) - lmax) * invT) : 0;
  }
  // The GPU receives topP as a float32 uniform.
  const topP = Math.fround(p.topP);
  let tp = tk;
  if (topP < 1) {
    const kept = [...keys.keys()].filter((i) => keys[i] >= tk).sort((a, b) => keys[b] - keys[a]);
    const total = kept.reduce((s, i) => s + w[i], 0);
    let mass = 0;
    for (let j = 0; j < kept.length; j++) {
      mass += w[kept[j]];
      const groupEnds = j + 1 === kept.length || keys[kept[j + 1]] !== keys[kept[j]];
      if (groupEnds && mass >= topP * total) {
        tp = keys[kept[j]];
        break;
      }
    }
  }
  let total = 0;
  let last = -1;
  for (let i = 0; i < n; i++) {
    if (keys[i] >= tp) {
      total += w[i];
      if (w[i] > 0) last = i;
    }
  }
  const target = u * total;
  let run = 0;
  for (let i = 0; i < n; i++) {
    if (keys[i] < tp) continue;
    run += w[i];
    if (run > target) return i;
  }
  return last;
}

/**
 * Reference for `sample()`: one token id per row of `[rows, vocab]` logits.
 *
 * @param logits Logits `[rows, vocab]` row-major (taken as float32).
 * @param vocab Row length V.
 * @param params Sampling parameters (see {@linkcode samplingParams}).
 * @returns Token ids `[rows]`.
 * @example
 * ```ts
 * import { sampleRef } from "./sampling_ref.ts";
 * console.log(sampleRef([0, 3, 1], 3, { temperature: 0 })); // Uint32Array [1]
 * ```
 */
export function sampleRef(
  logits: ArrayLike<number>,
  vocab: number,
  params: Partial<SamplingParams> = {},
): Uint32Array {
  const p = samplingParams(params);
  const rows = Math.floor(logits.length / vocab);
  const out = new Uint32Array(rows);
  const data = Float32Array.from(logits);
  for (let r = 0; r < rows; r++) {
    out[r] = sampleRow(
      data.subarray(r * vocab, (r + 1) * vocab),
      p,
      samplingUniform({ seed: p.seed, step: p.step, row: r }),
    );
  }
  return out;
}

/**
 * Reference for `sample()`'s `logprobsOut`: the temperature-1 log-softmax of each row of logits
 * at a given id, `l_id − logsumexp(l)`, in float64 (logits taken as float32).
 *
 * @param logits Logits `[rows, vocab]` row-major.
 * @param vocab Row length V.
 * @param ids One id per row, e.g. what {@linkcode sampleRef} picked.
 * @returns Log-probabilities `[rows]`.
 * @example
 * ```ts
 * import { sampleLogprobsRef } from "./sampling_ref.ts";
 * console.log(sampleLogprobsRef([0, 0], 2, [1])[0]); // -log 2 ≈ -0.6931
 * ```
 */
export function sampleLogprobsRef(
  logits: ArrayLike<number>,
  vocab: number,
  ids: ArrayLike<number>,
): Float64Array {
  const data = Float32Array.from(logits);
  const out = new Float64Array(ids.length);
  for (let r = 0; r < ids.length; r++) {
    const row = data.subarray(r * vocab, (r + 1) * vocab);
    let m = -Infinity;
    for (const x of row) m = Math.max(m, x);
    let s = 0;
    for (const x of row) s += Math.exp(x - m);
    out[r] = row[ids[r]] - m - Math.log(s);
  }
  return out;
}
