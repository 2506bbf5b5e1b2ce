/**
 * A float64 reference of the GRPO-family loss, written from TRL `GRPOTrainer._compute_loss`
 * (TRL 1.10.0.dev0, commit f2cd577) line by line on the tape autograd of `_autograd.ts`, with
 * `[batch][length]` arrays standing in for torch tensors (a `[batch][1]` tensor broadcasts as
 * one value per row). It shares no code with `rl/grpo_loss.ts`; its gradients come from the
 * tape, not from hand-derived formulas.
 *
 * @module
 */

import { type Scalar, type ScalarLike, Tape } from "./_autograd.ts";

/** Inputs as nested arrays (`[batch][length]`, advantages `[batch]`). */
export interface ReferenceInputs {
  readonly logps: readonly number[][];
  readonly oldLogps?: readonly number[][];
  readonly refLogps?: readonly number[][];
  readonly advantages: readonly number[];
  readonly mask: readonly number[][];
  readonly entropies?: readonly number[][];
}

/** Every hyperparameter spelled out (TRL's names in camelCase). */
export interface ReferenceOptions {
  readonly lossType: "grpo" | "bnpo" | "dr_grpo" | "dapo" | "cispo" | "sapo";
  readonly importanceSamplingLevel: "token" | "sequence";
  readonly klEstimator: "k1" | "k2" | "k3";
  readonly beta: number;
  readonly epsilonLow: number;
  readonly epsilonHigh: number;
  readonly delta: number | null;
  readonly topEntropyQuantile: number;
  readonly entropyCoef: number;
  readonly maxCompletionLength: number;
  readonly numItemsInBatch: number;
  readonly sapoTemperaturePos: number;
  readonly sapoTemperatureNeg: number;
}

/** Loss and its gradients from the tape. */
export interface ReferenceResult {
  readonly loss: number;
  readonly dLogp: number[][];
  readonly dEntropy: number[][];
}

/** `torch.quantile(values, p)` with linear interpolation. */
function quantile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  const pos = p * (s.length - 1);
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo] + (pos - lo) * (s[hi] - s[lo]);
}

/**
 * The loss of TRL's `_compute_loss` for the given inputs, and `d loss / d logps`,
 * `d loss / d entropies` by reverse-mode autograd.
 *
 * @param x Inputs.
 * @param o Hyperparameters.
 * @returns Loss and gradients.
 */
export function referenceGrpoLoss(x: ReferenceInputs, o: ReferenceOptions): ReferenceResult {
  const t = new Tape();
  const B = x.logps.length, T = x.logps[0].length;
  const rows = (f: (b: number) => ScalarLike[]): ScalarLike[][] =>
    Array.from({ length: B }, (_, b) => f(b));
  const mask = x.mask;
  const perTokenLogps = x.logps.map((r) => r.map((v) => t.variable(v)));
  const entropies = (x.entropies ?? x.logps.map((r) => r.map(() => 0))).map((r) =>
    r.map((v) => t.variable(v))
  );

  // get_high_entropy_mask: quantile of the masked entropies, then entropy * mask >= threshold.
  let entropyMask: number[][] | null = null;
  if (o.topEntropyQuantile < 1.0) {
    const local: number[] = [];
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < T; j++) if (mask[b][j]) local.push(entropies[b][j].value);
    }
    const threshold = quantile(local, 1 - o.topEntropyQuantile);
    entropyMask = entropies.map((r, b) =>
      r.map((h, j) => (h.value * mask[b][j] >= threshold && mask[b][j] ? 1 : 0))
    );
  }

  const advantages = x.advantages;
  const old: ScalarLike[][] = x.oldLogps
    ? x.oldLogps.map((r) => [...r])
    : perTokenLogps.map((r) => r.map((v) => t.detach(v)));
  const logRatio = rows((b) => perTokenLogps[b].map((lp, j) => t.sub(lp, old[b][j])));
  // coef_1: [B][T] for "token", one scalar per row (broadcast) for "sequence".
  let coef1: ScalarLike[][];
  if (o.importanceSamplingLevel === "token") {
    coef1 = rows((b) => logRatio[b].map((v) => t.exp(v)));
  } else {
    coef1 = rows((b) => {
      const num = t.sum(logRatio[b].map((v, j) => t.mul(v, mask[b][j])));
      const den = Math.max(1, mask[b].reduce((s, m) => s + m, 0));
      const w = t.exp(t.div(num, den));
      return Array.from({ length: T }, () => w);
    });
  }

  let perTokenKl: ScalarLike[][] | null = null;
  if (o.beta !== 0) {
    const ref = x.refLogps!;
    perTokenKl = rows((b) =>
      perTokenLogps[b].map((lp, j) => {
        const d = t.sub(ref[b][j], lp);
        if (o.klEstimator === "k1") return t.neg(d);
        if (o.klEstimator === "k2") return t.mul(0.5, t.mul(d, d));
        return t.sub(t.sub(t.exp(d), d), 1);
      })
    );
  }

  let perTokenLoss: ScalarLike[][];
  if (o.lossType === "cispo") {
    perTokenLoss = rows((b) =>
      perTokenLogps[b].map((lp, j) => {
        const clamped = t.detach(t.min(coef1[b][j], o.epsilonHigh));
        return t.neg(t.mul(t.mul(clamped, advantages[b]), lp));
      })
    );
  } else if (o.lossType === "sapo") {
    perTokenLoss = rows((b) =>
      coef1[b].map((c) => {
        const temp = advantages[b] > 0 ? o.sapoTemperaturePos : o.sapoTemperatureNeg;
        const soft = t.div(t.mul(t.sigmoid(t.mul(temp, t.sub(c, 1))), 4), temp);
        return t.neg(t.mul(soft, advantages[b]));
      })
    );
  } else {
    perTokenLoss = rows((b) =>
      coef1[b].map((c) => {
        const coef2 = t.clip(c, 1 - o.epsilonLow, 1 + o.epsilonHigh);
        const capped = o.delta !== null ? t.min(c, o.delta) : c;
        return t.neg(t.min(t.mul(capped, advantages[b]), t.mul(coef2, advantages[b])));
      })
    );
  }
  if (entropyMask) {
    const em = entropyMask;
    perTokenLoss = rows((b) => perTokenLoss[b].map((v, j) => t.mul(v, em[b][j])));
  }
  if (perTokenKl) {
    const kl = perTokenKl;
    perTokenLoss = rows((b) => perTokenLoss[b].map((v, j) => t.add(v, t.mul(o.beta, kl[b][j]))));
  }

  const masked = rows((b) => perTokenLoss[b].map((v, j) => t.mul(v, mask[b][j])));
  const maskTotal = mask.flat().reduce((s, m) => s + m, 0);
  let loss: Scalar;
  if (o.lossType === "grpo" || o.lossType === "sapo") {
    const perRow = rows((b) => [
      t.div(t.sum(masked[b]), Math.max(1, mask[b].reduce((s, m) => s + m, 0))),
    ]);
    loss = t.div(t.sum(perRow.map((r) => r[0])), B);
  } else if (o.lossType === "bnpo") {
    loss = t.div(t.sum(masked.flat()), Math.max(1, maskTotal));
  } else if (o.lossType === "dr_grpo") {
    loss = t.div(t.sum(masked.flat()), B * o.maxCompletionLength);
  } else {
    loss = t.div(t.sum(masked.flat()), Math.max(1, o.numItemsInBatch));
  }

  if (o.entropyCoef !== 0) {
    const em = entropyMask;
    const effective = mask.map((r, b) => r.map((m, j) => (em ? m * em[b][j] : m)));
    const weighted = t.sum(entropies.flatMap((r, b) => r.map((h, j) => t.mul(h, effective[b][j]))));
    const entropyLoss = o.lossType === "cispo" || o.lossType === "dapo"
      ? t.div(weighted, Math.max(1, o.numItemsInBatch))
      : t.div(weighted, Math.max(1, effective.flat().reduce((s, m) => s + m, 0)));
    loss = t.sub(loss, t.mul(o.entropyCoef, entropyLoss));
  }

  t.backward(loss);
  return {
    loss: loss.value,
    dLogp: perTokenLogps.map((r) => r.map((v) => t.grad(v))),
    dEntropy: entropies.map((r) => r.map((v) => t.grad(v))),
  };
}
