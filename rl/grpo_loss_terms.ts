/**
 * The per-token pieces of {@linkcode grpoLoss}: the three policy objectives (hard clip, CISPO,
 * SAPO), the KL estimators and the entropy quantile, each as a value and its slope so the loss
 * can chain them by hand. Formulas of TRL `GRPOTrainer._compute_loss` (TRL 1.10.0.dev0, commit
 * f2cd577, 2026-07-24) and Tunix `compute_kl_divergence`.
 *
 * Gradients follow JAX's conventions (Tunix's loss is differentiated by JAX; PyTorch's
 * `torch.minimum` agrees): where the two arguments of a `min` are equal each receives half, and
 * `clip(x, lo, hi)` (= `min(max(x, lo), hi)`) passes half the gradient at its edges.
 *
 * @module
 */

import type { KlEstimator } from "./grpo_config.ts";
import { assertGridShape, GrpoMathError, type TokenGrid } from "./grpo_math.ts";

/** A term's value and its derivative with respect to the named input. */
export interface TermSlope {
  /** The term. */
  readonly value: number;
  /** Its derivative (see each function for "with respect to what"). */
  readonly slope: number;
}

/** Bounds of {@linkcode clippedObjective}. */
export interface ClipBounds {
  /** `1 − ε`. */
  readonly lo: number;
  /** `1 + ε_high`. */
  readonly hi: number;
  /** Two-sided clip δ: the unclipped ratio is capped at δ (INTELLECT-2); null or absent: off. */
  readonly delta?: number | null;
}

/** Derivative of `clip(rho, lo, hi)` as JAX defines it (`jnp.clip` = max then min). */
function clipSlope(rho: number, lo: number, hi: number): number {
  if (rho > lo && rho < hi) return 1;
  // subtle: lax.max/lax.min split the gradient evenly at ties, so the edges get 1/2.
  if (rho === lo || rho === hi) return 0.5;
  return 0;
}

/**
 * The PPO-style policy term of `grpo`, `bnpo`, `dr_grpo` and `dapo`:
 * `−min(min(ρ, δ)·A, clip(ρ, lo, hi)·A)` (without δ: `−min(ρ·A, clip(ρ)·A)`).
 *
 * @param rho Importance ratio ρ (token or sequence).
 * @param advantage A.
 * @param bounds See {@linkcode ClipBounds}.
 * @returns The term and `d term / d ρ`.
 * @example
 * ```ts
 * import { clippedObjective } from "./grpo_loss_terms.ts";
 * // A > 0 above the clip: the clipped branch wins, no gradient.
 * const t = clippedObjective(1.5, 1, { lo: 0.8, hi: 1.2 });
 * if (t.value !== -1.2 || t.slope !== 0) throw new Error();
 * // A < 0 far above the clip: δ = 3 caps the unclipped branch at −3·A.
 * const d = clippedObjective(10, -1, { lo: 0.8, hi: 1.2, delta: 3 });
 * if (d.value !== 3 || d.slope !== 0) throw new Error();
 * ```
 */
export function clippedObjective(rho: number, advantage: number, bounds: ClipBounds): TermSlope {
  const { lo, hi } = bounds;
  const delta = bounds.delta ?? null;
  const a = advantage;
  const clipped = Math.min(Math.max(rho, lo), hi);
  const slope = clipSlope(rho, lo, hi);
  if (delta === null) {
    // subtle: the exact operations of the pre-δ loss, so the default stays bit-identical.
    const unclippedTerm = rho * a;
    const clippedTerm = clipped * a;
    const dMinDRho = unclippedTerm < clippedTerm
      ? a
      : unclippedTerm > clippedTerm
      ? slope * a
      : 0.5 * a + 0.5 * slope * a;
    return { value: -Math.min(unclippedTerm, clippedTerm), slope: -dMinDRho };
  }
  const capped = Math.min(rho, delta);
  const capSlope = rho < delta ? 1 : rho === delta ? 0.5 : 0;
  const unclippedTerm = capped * a;
  const clippedTerm = clipped * a;
  const d1 = capSlope * a, d2 = slope * a;
  const dMinDRho = unclippedTerm < clippedTerm
    ? d1
    : unclippedTerm > clippedTerm
    ? d2
    : 0.5 * d1 + 0.5 * d2;
  return { value: -Math.min(unclippedTerm, clippedTerm), slope: -dMinDRho };
}

/**
 * CISPO's policy term (MiniMax-M1): `−min(ρ, ratioCap)·A·logp` with the capped ratio held
 * constant, so the gradient is the REINFORCE one weighted by the capped importance ratio.
 *
 * @param rho Importance ratio ρ (token or sequence).
 * @param advantage A.
 * @param logp The token's policy log-prob.
 * @param ratioCap ε_max (TRL passes `epsilon_high`; 5.0 is its recommended value for CISPO).
 * @returns The term and `d term / d logp`.
 * @example
 * ```ts
 * import { cispoObjective } from "./grpo_loss_terms.ts";
 * const t = cispoObjective(2, 0.5, -1, 5);
 * if (t.value !== 1 || t.slope !== -1) throw new Error();
 * ```
 */
export function cispoObjective(
  rho: number,
  advantage: number,
  logp: number,
  ratioCap: number,
): TermSlope {
  const weight = Math.min(rho, ratioCap) * advantage;
  return { value: -weight * logp, slope: -weight };
}

/**
 * SAPO's soft-gated policy term: `−sigmoid(τ·(ρ − 1))·4/τ·A`. Its slope `−4·σ·(1 − σ)·A` is
 * `−A` at ρ = 1 and fades smoothly off-policy instead of dropping to 0 at a clip edge.
 *
 * @param rho Importance ratio ρ (token or sequence).
 * @param advantage A.
 * @param temperature τ > 0 (TRL: `sapo_temperature_pos` when A > 0, else `…_neg`).
 * @returns The term and `d term / d ρ`.
 * @example
 * ```ts
 * import { sapoObjective } from "./grpo_loss_terms.ts";
 * const t = sapoObjective(1, 2, 1); // σ(0) = 1/2: value −1/2·4·2, slope −A
 * if (t.value !== -4 || t.slope !== -2) throw new Error();
 * ```
 */
export function sapoObjective(rho: number, advantage: number, temperature: number): TermSlope {
  const gate = 1 / (1 + Math.exp(-temperature * (rho - 1)));
  return {
    value: -gate * 4 / temperature * advantage,
    slope: -4 * gate * (1 - gate) * advantage,
  };
}

/**
 * A per-token KL estimate of `KL(π ‖ π_ref)` with `d = ref − logp` (Schulman's estimators;
 * Tunix `kl` / `mse_kl` / `low_var_kl`): k1 `−d`, k2 `d²/2`, k3 `e^d − d − 1`.
 *
 * @param logp Policy log-prob of the token.
 * @param refLogp Reference log-prob of the token.
 * @param estimator `"k1"`, `"k2"` or `"k3"`.
 * @returns The estimate and `d estimate / d logp` (the reference held constant).
 * @example
 * ```ts
 * import { klEstimate } from "./grpo_loss_terms.ts";
 * const k3 = klEstimate(-1, -1, "k3");
 * if (k3.value !== 0 || k3.slope !== 0) throw new Error();
 * if (klEstimate(-1, -3, "k2").value !== 2 || klEstimate(-1, -3, "k1").slope !== 1) throw new Error();
 * ```
 */
export function klEstimate(logp: number, refLogp: number, estimator: KlEstimator): TermSlope {
  const diff = refLogp - logp;
  switch (estimator) {
    case "k1":
      return { value: -diff, slope: 1 };
    case "k2":
      return { value: diff * diff / 2, slope: -diff };
    case "k3":
      return { value: Math.exp(diff) - diff - 1, slope: 1 - Math.exp(diff) };
    default:
      throw new GrpoMathError(`klEstimator must be k1, k2 or k3, got ${estimator}`);
  }
}

/**
 * The `quantile` quantile of the entropies of the masked tokens (mask ≠ 0), interpolated
 * linearly between order statistics exactly like `torch.quantile` (including its two-sided
 * `lerp`). TRL keeps in the policy loss the tokens whose entropy is ≥ the quantile `1 − q` of
 * `top_entropy_quantile` q.
 *
 * @param entropies `[batch, length]` per-token entropies.
 * @param mask `[batch, length]` loss mask.
 * @param quantile In [0, 1].
 * @returns The threshold, or null when no token is masked in.
 * @example
 * ```ts
 * import { entropyQuantile } from "./grpo_loss_terms.ts";
 * import { tokenGrid } from "./grpo_math.ts";
 * // Masked entropies 1, 2, 4 (9 is masked out): the 0.75 quantile lies between 2 and 4.
 * const t = entropyQuantile(tokenGrid([[4, 1, 2, 9]]), tokenGrid([[1, 1, 1, 0]]), 0.75);
 * if (t !== 3) throw new Error(String(t));
 * ```
 */
export function entropyQuantile(
  entropies: TokenGrid,
  mask: TokenGrid,
  quantile: number,
): number | null {
  assertGridShape("entropies", entropies);
  assertGridShape("mask", mask, entropies.shape);
  if (!(quantile >= 0 && quantile <= 1)) {
    throw new GrpoMathError(`quantile must be in [0, 1], got ${quantile}`);
  }
  const values: number[] = [];
  for (let k = 0; k < mask.data.length; k++) if (mask.data[k] !== 0) values.push(entropies.data[k]);
  if (values.length === 0) return null;
  values.sort((x, y) => x - y);
  const rank = quantile * (values.length - 1);
  const below = Math.floor(rank), above = Math.ceil(rank);
  const start = values[below], end = values[above], weight = rank - below;
  // torch.lerp: start + w·(end − start) for w < 1/2, end − (end − start)·(1 − w) otherwise.
  return weight < 0.5 ? start + weight * (end - start) : end - (end - start) * (1 - weight);
}
