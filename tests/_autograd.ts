/**
 * A tiny float64 reverse-mode autograd for reference implementations in tests: every operation
 * records its inputs and local partial derivatives on a tape, `backward` walks the tape in
 * reverse. Ties follow JAX (and `torch.minimum`): `min`/`max` of equal arguments give each half
 * the gradient, so `clip = min(max(x, lo), hi)` passes half at its edges.
 *
 * @module
 */

/** A scalar on a {@linkcode Tape}: its value and, after `backward`, its gradient. */
export interface Scalar {
  readonly value: number;
  readonly index: number;
}

interface Node {
  readonly parents: readonly number[];
  readonly partials: readonly number[];
}

/** A number or a recorded scalar; plain numbers are constants. */
export type ScalarLike = Scalar | number;

/** Records operations and differentiates them. */
export class Tape {
  readonly #nodes: Node[] = [];
  readonly #values: number[] = [];
  #grads: Float64Array = new Float64Array(0);

  #push(value: number, parents: readonly ScalarLike[], partials: readonly number[]): Scalar {
    const index = this.#nodes.length;
    const ps: number[] = [], ds: number[] = [];
    parents.forEach((p, i) => {
      if (typeof p === "number") return;
      ps.push(p.index);
      ds.push(partials[i]);
    });
    this.#nodes.push({ parents: ps, partials: ds });
    this.#values.push(value);
    return { value, index };
  }

  /** @returns A new input whose gradient `backward` fills in. */
  variable(value: number): Scalar {
    return this.#push(value, [], []);
  }

  /** @returns The same value with no gradient path (`stop_gradient`, `.detach()`). */
  detach(x: ScalarLike): number {
    return val(x);
  }

  add(a: ScalarLike, b: ScalarLike): Scalar {
    return this.#push(val(a) + val(b), [a, b], [1, 1]);
  }

  sub(a: ScalarLike, b: ScalarLike): Scalar {
    return this.#push(val(a) - val(b), [a, b], [1, -1]);
  }

  mul(a: ScalarLike, b: ScalarLike): Scalar {
    return this.#push(val(a) * val(b), [a, b], [val(b), val(a)]);
  }

  div(a: ScalarLike, b: ScalarLike): Scalar {
    const q = val(a) / val(b);
    return this.#push(q, [a, b], [1 / val(b), -q / val(b)]);
  }

  neg(a: ScalarLike): Scalar {
    return this.#push(-val(a), [a], [-1]);
  }

  exp(a: ScalarLike): Scalar {
    const e = Math.exp(val(a));
    return this.#push(e, [a], [e]);
  }

  sigmoid(a: ScalarLike): Scalar {
    const s = 1 / (1 + Math.exp(-val(a)));
    return this.#push(s, [a], [s * (1 - s)]);
  }

  min(a: ScalarLike, b: ScalarLike): Scalar {
    const x = val(a), y = val(b);
    const da = x < y ? 1 : x > y ? 0 : 0.5;
    return this.#push(Math.min(x, y), [a, b], [da, 1 - da]);
  }

  max(a: ScalarLike, b: ScalarLike): Scalar {
    const x = val(a), y = val(b);
    const da = x > y ? 1 : x < y ? 0 : 0.5;
    return this.#push(Math.max(x, y), [a, b], [da, 1 - da]);
  }

  /** `min(max(x, lo), hi)` (`jnp.clip`). */
  clip(x: ScalarLike, lo: number, hi: number): Scalar {
    return this.min(this.max(x, lo), hi);
  }

  /** Σ of the terms, left to right (a recorded 0 for none). */
  sum(terms: readonly ScalarLike[]): Scalar {
    let acc: ScalarLike = 0;
    for (const t of terms) acc = this.add(acc, t);
    return typeof acc === "number" ? this.#push(acc, [], []) : acc;
  }

  /** Back-propagates `d output / d ·` to every recorded scalar. */
  backward(output: Scalar): void {
    this.#grads = new Float64Array(this.#nodes.length);
    this.#grads[output.index] = 1;
    for (let i = output.index; i >= 0; i--) {
      const g = this.#grads[i];
      if (g === 0) continue;
      const { parents, partials } = this.#nodes[i];
      for (let p = 0; p < parents.length; p++) this.#grads[parents[p]] += g * partials[p];
    }
  }

  /** @returns The gradient of the last `backward` output with respect to `x`. */
  grad(x: Scalar): number {
    return this.#grads[x.index] ?? 0;
  }
}

/** @returns The value of a scalar or number. */
export function val(x: ScalarLike): number {
  return typeof x === "number" ? x : x.value;
}
