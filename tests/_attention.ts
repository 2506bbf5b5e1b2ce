/**
 * Shared setup of the attention tests: the case shape, the score scale, the reference options
 * of a case, its seeded f32 inputs on the GPU, the odd-shape sweep, the padded batch, the cases
 * every variant runs, the lse check, a backward run against its reference, and the workload
 * that compiles every GPU-class variant's pipelines.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import {
  attention,
  ATTENTION_DECODE_VARIANTS,
  ATTENTION_VARIANTS,
  attentionDecode,
} from "../kernels/attention.ts";
import { ATTENTION_BACKWARD_VARIANTS, attentionBackward } from "../kernels/attention_backward.ts";
import {
  attentionBackwardRef,
  attentionRef,
  type AttentionRefOptions,
} from "../kernels/attention_ref.ts";
import { assertClose, randomArray } from "./_helpers.ts";

/** The fixture's queryPreAttnScalar^−0.5 (head_dim 32). */
export const SCALE = 24 ** -0.5;

/** One attention problem: `[batch, seq, heads, headDim]` queries over `kvHeads` KV heads. */
export interface AttentionCase {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  window: number;
  /** `[batch, 2]` flattened `[start, end)` of each sequence, if not all full. */
  ranges?: number[];
}

/** @returns The reference options of `c` (scale {@link SCALE}). */
export function refOptions(c: AttentionCase): AttentionRefOptions {
  return {
    batch: c.batch,
    seq: c.seq,
    numHeads: c.heads,
    numKvHeads: c.kvHeads,
    headDim: c.headDim,
    scale: SCALE,
    window: c.window,
    ranges: c.ranges,
  };
}

/** Host and GPU inputs of a case. */
export interface AttentionInputs {
  /** `[batch, seq, heads, headDim]` in [-2, 2). */
  q: Float32Array;
  /** `[batch, seq, kvHeads, headDim]` in [-2, 2). */
  k: Float32Array;
  /** `[batch, seq, kvHeads, headDim]` in [-1, 1). */
  v: Float32Array;
  tq: Tensor;
  tk: Tensor;
  tv: Tensor;
  /** `[batch, 2]` i32, when the case has ranges. */
  tr: Tensor | undefined;
  /** The case's reference options ({@linkcode refOptions}). */
  ref: AttentionRefOptions;
}

/** @returns Seeded q (seed), k (seed + 1), v (seed + 2) of `c`, and their tensors. */
export function attentionInputs(gpu: Gpu, c: AttentionCase, seed: number): AttentionInputs {
  const { batch, seq, heads, kvHeads, headDim } = c;
  const q = randomArray(batch * seq * heads * headDim, seed, 2);
  const k = randomArray(batch * seq * kvHeads * headDim, seed + 1, 2);
  const v = randomArray(batch * seq * kvHeads * headDim, seed + 2);
  return {
    q,
    k,
    v,
    tq: Tensor.fromArray(gpu, q, [batch, seq, heads, headDim]),
    tk: Tensor.fromArray(gpu, k, [batch, seq, kvHeads, headDim]),
    tv: Tensor.fromArray(gpu, v, [batch, seq, kvHeads, headDim]),
    tr: c.ranges ? Tensor.fromArray(gpu, new Int32Array(c.ranges), [batch, 2]) : undefined,
    ref: refOptions(c),
  };
}

/** Sequence length, head counts and head width of one sweep entry. */
export type AttentionShape = Pick<AttentionCase, "seq" | "heads" | "kvHeads" | "headDim">;

/** @returns Every (seq, heads/kvHeads, headDim) of the odd-shape sweep, seq outermost. */
export function* oddAttentionShapes(): Generator<AttentionShape> {
  for (const seq of [1, 3, 7, 33]) {
    for (const [heads, kvHeads] of [[1, 1], [4, 1], [4, 2], [3, 3]]) {
      for (const headDim of [3, 6, 10, 32]) yield { seq, heads, kvHeads, headDim };
    }
  }
}

/** A case of the sweep with the seed of its inputs. */
export interface SeededCase {
  readonly c: AttentionCase;
  readonly seed: number;
}

/**
 * The odd-shape sweep as cases: every shape of {@linkcode oddAttentionShapes} in 2 sequences
 * with the window cycling through 0, 1, 3 and 8, then a 33-token GQA sequence under each window.
 *
 * @returns The cases with their seeds.
 */
export function* oddCases(): Generator<SeededCase> {
  let seed = 10;
  for (const shape of oddAttentionShapes()) {
    const window = [0, 1, 3, 8][seed % 4];
    yield { c: { batch: 2, ...shape, window }, seed: seed += 3 };
  }
  for (const window of [0, 1, 3, 8]) {
    yield { c: { batch: 1, seq: 33, heads: 4, kvHeads: 2, headDim: 6, window }, seed: 99 };
  }
}

/**
 * Four sequences of 13 tokens padded every way — sequence 0 left-padded by 3, 1 right-padded to
 * 5, 2 full, 3 empty — with 4 heads on 1 KV head of width 10.
 *
 * @param window Sliding window (0 = global).
 * @returns The case.
 */
export function paddedCase(window: number): AttentionCase {
  const ranges = [3, 13, 0, 5, 0, 13, 4, 4];
  return { batch: 4, seq: 13, heads: 4, kvHeads: 1, headDim: 10, window, ranges };
}

/**
 * Odd cases every attention variant runs (`tests/attention_variants_test.ts`): sequence lengths
 * that are no multiple of any block or tile, head widths 7 (scalar loads, columns that do not
 * split evenly over lanes) and 32, G = 3 and 1, windows smaller than S, and left- and
 * right-padded ranges (one sequence empty).
 */
export const VARIANT_CASES: readonly AttentionCase[] = Object.freeze([
  { batch: 2, seq: 37, heads: 6, kvHeads: 2, headDim: 7, window: 5 },
  {
    batch: 4,
    seq: 13,
    heads: 2,
    kvHeads: 2,
    headDim: 32,
    window: 0,
    ranges: [3, 13, 0, 5, 0, 13, 4, 4],
  },
  { batch: 2, seq: 21, heads: 3, kvHeads: 1, headDim: 32, window: 6, ranges: [2, 21, 0, 17] },
]);

/**
 * Checks a kernel's lse against the reference: rows that see no key must be −∞ on both sides,
 * the others within 1e-5.
 *
 * @param got The kernel's lse.
 * @param want The reference's.
 * @param what Names the case in messages.
 */
export function assertLse(got: ArrayLike<number>, want: Float64Array, what: string): void {
  const finite: number[] = [], finiteWant: number[] = [];
  for (let i = 0; i < want.length; i++) {
    if (want[i] === -Infinity) assert.equal(got[i], -Infinity, `${what} lse[${i}]`);
    else {
      finite.push(got[i]);
      finiteWant.push(want[i]);
    }
  }
  assertClose(finite, finiteWant, 1e-5, `${what} lse`);
}

/** The backward's tolerance: max |err| / max(1, max |ref|). */
export const BACKWARD_TOLERANCE = 1e-5;

/** The gradients of one backward run. */
export interface BackwardRun {
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
}

/** How a backward case runs: its inputs' seed, where out/lse come from, which variant. */
export interface BackwardRunOptions {
  /** Seed of the case's inputs (dOut: seed + 3). */
  readonly seed: number;
  /** Take out/lse from the forward kernel (default: attentionRef rounded to f32). */
  readonly forwardKernel?: boolean;
  /** Force this backward variant (default: the table's choice). */
  readonly variant?: string;
  /** Force this forward variant when `forwardKernel` (default: the table's choice). */
  readonly forwardVariant?: string;
}

/**
 * Runs attentionBackward on f32 inputs; out/lse come from attentionRef (rounded to f32) or the
 * forward kernel.
 *
 * @param gpu The test GPU.
 * @param c The case.
 * @param run Seed, forward source and variants.
 * @returns The kernel's gradients and the reference's (from the same f32 out/lse).
 */
export async function runBackwardCase(
  gpu: Gpu,
  c: AttentionCase,
  run: BackwardRunOptions,
): Promise<{ got: BackwardRun; want: ReturnType<typeof attentionBackwardRef> }> {
  const { seed, forwardKernel = false } = run;
  const { batch, seq, heads } = c;
  const { q, k, v, tq, tk, tv, tr } = attentionInputs(gpu, c, seed);
  const dOut = randomArray(q.length, seed + 3);
  const tdo = Tensor.fromArray(gpu, dOut, tq.shape);
  const options = { scale: SCALE, window: c.window, ranges: tr };
  let tout: Tensor, tlse: Tensor;
  if (forwardKernel) {
    const fwd = { ...options, returnLse: true, variant: run.forwardVariant };
    const r = attention(tq, { k: tk, v: tv }, fwd);
    [tout, tlse] = [r.out, r.lse!];
  } else {
    const r = attentionRef({ q, k, v }, refOptions(c));
    tout = Tensor.fromArray(gpu, Float32Array.from(r.out), tq.shape);
    tlse = Tensor.fromArray(gpu, Float32Array.from(r.lse), [batch, seq, heads]);
  }
  const { dq, dk, dv } = attentionBackward(
    tdo,
    { q: tq, k: tk, v: tv, out: tout, lse: tlse },
    { ...options, variant: run.variant },
  );
  assert.deepEqual(dq.shape, tq.shape);
  assert.deepEqual(dk.shape, tk.shape);
  assert.deepEqual(dv.shape, tv.shape);
  const [out, lse] = [await tout.read(), await tlse.read()];
  const got = {
    dq: (await dq.read()) as Float32Array,
    dk: (await dk.read()) as Float32Array,
    dv: (await dv.read()) as Float32Array,
  };
  const want = attentionBackwardRef(dOut, { q, k, v, out, lse }, refOptions(c));
  for (const t of [tq, tk, tv, tdo, tr, tout, tlse, dq, dk, dv]) t?.dispose();
  return { got, want };
}

/**
 * Runs a backward case ({@linkcode runBackwardCase}) and checks dq, dk and dv within
 * {@linkcode BACKWARD_TOLERANCE}.
 *
 * @param gpu The test GPU.
 * @param c The case.
 * @param run Seed, forward source and variants.
 * @returns The kernel's gradients.
 */
export async function checkBackward(
  gpu: Gpu,
  c: AttentionCase,
  run: BackwardRunOptions,
): Promise<BackwardRun> {
  const { got, want } = await runBackwardCase(gpu, c, run);
  const what = `attentionBackward ${run.variant ?? ""} ${JSON.stringify(c)}`;
  assertClose(got.dq, want.dq, BACKWARD_TOLERANCE, `${what} dq`);
  assertClose(got.dk, want.dk, BACKWARD_TOLERANCE, `${what} dk`);
  assertClose(got.dv, want.dv, BACKWARD_TOLERANCE, `${what} dv`);
  return got;
}

/**
 * Launches every GPU-class variant of the attention family (flash prefill and backward, split
 * decode) with and without ranges and lse on small odd shapes (G = 3, D = 7), so a test that
 * collects the compiled pipelines (`tests/kernel_variants_test.ts`) sees each of their code
 * paths.
 *
 * @param gpu The runtime.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { attentionVariantWorkload } from "./_attention.ts";
 * const gpu = await Gpu.create();
 * await attentionVariantWorkload(gpu);
 * console.log(gpu.pipelines.compiled.some((p) => p.name === "attentionFlash")); // true
 * gpu.destroy();
 * ```
 */
export async function attentionVariantWorkload(gpu: Gpu): Promise<void> {
  const owned: Tensor[] = [];
  const t = (shape: readonly number[]) => {
    const x = Tensor.zeros(gpu, shape);
    owned.push(x);
    return x;
  };
  const q = t([2, 5, 6, 7]), k = t([2, 5, 2, 7]), v = t([2, 5, 2, 7]);
  const ranges = Tensor.fromArray(gpu, new Int32Array([0, 5, 1, 4]), [2, 2]);
  const gpuClass = (ids: readonly string[]) => ids.filter((id) => id !== "reg");
  for (const r of [undefined, ranges]) {
    for (const variant of gpuClass(ATTENTION_VARIANTS)) {
      for (const returnLse of [false, true]) {
        const { out, lse } = attention(q, { k, v }, { scale: 0.3, ranges: r, returnLse, variant });
        owned.push(out, ...(lse ? [lse] : []));
      }
    }
    for (const variant of gpuClass(ATTENTION_BACKWARD_VARIANTS)) {
      const inputs = { q, k, v, out: t(q.shape), lse: t([2, 5, 6]) };
      const g = attentionBackward(t(q.shape), inputs, { scale: 0.3, ranges: r, variant });
      owned.push(g.dq, g.dk, g.dv);
    }
  }
  const cache = { k: t([2, 6, 2, 7]), v: t([2, 6, 2, 7]) };
  for (const variant of gpuClass(ATTENTION_DECODE_VARIANTS)) {
    for (const returnLse of [false, true]) {
      const { out, lse } = attentionDecode(t([2, 6, 7]), cache, {
        scale: 0.3,
        ranges,
        returnLse,
        variant,
      });
      owned.push(out, ...(lse ? [lse] : []));
    }
  }
  await gpu.sync();
  for (const x of [...owned, ranges]) x.dispose();
}
