/**
 * Kernel checks that run unchanged in a browser page and in Deno (no Deno API, no `node:`
 * imports): every kernel family's forward and backward against its float64 reference
 * (`kernels/*_ref.ts`) on odd, non-tile-multiple shapes — a few shapes per form, taken from the
 * family's Deno test — with the tolerance that test uses. `tests/_browser_checks.ts` bundles them
 * for the page; `tests/browser_checks_test.ts` runs them on Deno's adapter.
 *
 * @module
 */

import { SeededRandom } from "../base/random.ts";
import { ADAMW_STATS, adamwUpdate, GRAD_NORM_VARIANTS, gradGlobalNorm } from "../kernels/adamw.ts";
import { adamwUpdateRef, gradGlobalNormRef } from "../kernels/adamw_ref.ts";
import { attention, attentionDecode, writeKvCache } from "../kernels/attention.ts";
import { attentionBackward } from "../kernels/attention_backward.ts";
import {
  attentionBackwardRef,
  attentionDecodeRef,
  attentionRef,
  type AttentionRefOptions,
  writeKvCacheRef,
} from "../kernels/attention_ref.ts";
import { type DType, roundToBf16 } from "../kernels/dtype.ts";
import {
  compileKernelVariants,
  type KernelVariant,
  kernelVariants,
} from "../kernels/kernel_variants.ts";
import { add, scale } from "../kernels/elementwise.ts";
import { addRef, scaleRef } from "../kernels/elementwise_ref.ts";
import { embedding } from "../kernels/embedding.ts";
import { embeddingBackward } from "../kernels/embedding_backward.ts";
import { embeddingBackwardRef, embeddingRef } from "../kernels/embedding_ref.ts";
import { geglu } from "../kernels/geglu.ts";
import { gegluBackward } from "../kernels/geglu_backward.ts";
import { gegluBackwardRef, gegluRef } from "../kernels/geglu_ref.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { LOGPROBS_VARIANTS, tokenLogprobs } from "../kernels/logprobs.ts";
import { tokenLogprobsBackward } from "../kernels/logprobs_backward.ts";
import { tokenLogprobsBackwardRef, tokenLogprobsRef } from "../kernels/logprobs_ref.ts";
import { loraLinear } from "../kernels/lora.ts";
import { loraLinearRef } from "../kernels/lora_ref.ts";
import { matmul, matmulTransA } from "../kernels/matmul.ts";
import { matmulRef, matmulTransARef } from "../kernels/matmul_ref.ts";
import { RMS_NORM_VARIANTS, rmsNorm } from "../kernels/rms_norm.ts";
import { rmsNormBackward } from "../kernels/rms_norm_backward.ts";
import { rmsNormBackwardRef, rmsNormRef } from "../kernels/rms_norm_ref.ts";
import { rope, RopeTable } from "../kernels/rope.ts";
import { ropeBackward } from "../kernels/rope_backward.ts";
import { ropeRef } from "../kernels/rope_ref.ts";
import { sample, SAMPLE_VARIANTS, type SampleOptions } from "../kernels/sampling.ts";
import { sampleLogprobsRef, sampleRef } from "../kernels/sampling_ref.ts";
import { type HostArray, Tensor } from "../kernels/tensor.ts";

/** The outcome of one check. */
export interface CheckResult {
  /** What was checked (kernel, form, shape, dtype). */
  readonly name: string;
  /**
   * The largest error, by default `max |got − want| / max(1, max |want|)` (the measure of
   * `assertClose` in `_helpers.ts`, see {@linkcode ErrorScale}); Infinity for a NaN, a length
   * mismatch or an exception.
   */
  readonly maxError: number;
  /** The largest `maxError` that passes (0: exact). */
  readonly tolerance: number;
  /** `maxError ≤ tolerance`. */
  readonly ok: boolean;
  /** Where the largest error sits, or what went wrong. */
  readonly detail?: string;
  /** The largest `|got − want|`, unscaled (from {@linkcode compareValues}). */
  readonly absoluteError?: number;
}

/**
 * What `maxError` divides the largest absolute error by: `max(1, max |want|)` (`assertClose` in
 * `_helpers.ts`, the default) or nothing (`absolute`).
 */
export type ErrorScale = "unit-or-max" | "absolute";

/** Options of {@linkcode compareValues}. */
export interface CompareOptions {
  /** How the error is scaled (default `unit-or-max`). */
  readonly errorScale?: ErrorScale;
}

/** Options of the checks. */
export interface CheckOptions {
  /** Multiplies every tolerance (default 1; a tiny factor shows that the checks can fail). */
  readonly toleranceScale?: number;
}

/**
 * Compares `got` with `want` like `assertClose` (`_helpers.ts`), without throwing.
 *
 * @param name The check's name.
 * @param got Values measured.
 * @param want Reference values.
 * @param tolerance Largest scaled error that passes.
 * @param options How the error is scaled (default: by `max(1, max |want|)`).
 * @returns The result.
 * @example
 * ```ts
 * import { compareValues } from "./_browser_kernel_checks.ts";
 * const r = compareValues("x", [1, 2.5], [1, 2], 0.1);
 * console.log(r.ok, r.maxError); // false 0.25
 * ```
 */
export function compareValues(
  name: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tolerance: number,
  options: CompareOptions = {},
): CheckResult {
  if (got.length !== want.length) {
    return {
      name,
      maxError: Infinity,
      tolerance,
      ok: false,
      detail: `length ${got.length} != ${want.length}`,
    };
  }
  let maxErr = 0, maxRef = 0, worst = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= maxErr)) {
      maxErr = Number.isNaN(e) ? Infinity : e;
      worst = i;
    }
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  const errorScale = options.errorScale ?? "unit-or-max";
  const maxError = errorScale === "absolute" ? maxErr : maxErr / Math.max(1, maxRef);
  const detail = worst < 0 ? undefined : `at ${worst}: got ${got[worst]}, want ${want[worst]}`;
  const ok = maxError <= tolerance;
  return { name, maxError, tolerance, ok, absoluteError: maxErr, ...(detail ? { detail } : {}) };
}

/**
 * `n` uniform values in [-scale, scale) from mulberry32 state `seed` — the same numbers as
 * `randomArray` in `_helpers.ts`, so the checks see the Deno tests' data.
 *
 * @param n Length.
 * @param seed Raw mulberry32 state.
 * @param scale Half-width of the range.
 * @returns The values.
 * @example
 * ```ts
 * import { randomArray } from "./_browser_kernel_checks.ts";
 * console.log(randomArray(3, 1).length); // 3
 * ```
 */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const random = SeededRandom.fromState(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (random.next() * 2 - 1) * scale;
  return out;
}

/** `n` ids uniform in `[0, range)` from mulberry32 state `seed`. */
function randomIds(n: number, range: number, seed: number): Int32Array {
  const random = SeededRandom.fromState(seed);
  return Int32Array.from({ length: n }, () => Math.floor(random.next() * range));
}

/**
 * Collects results and owns the tensors of one family (disposed by `release`). With `variant`,
 * the family forces that kernel variant in every launch and the names end in `[variant]`.
 */
class Checker {
  readonly results: CheckResult[] = [];
  readonly #tensors: Tensor[] = [];

  constructor(
    readonly gpu: Gpu,
    readonly toleranceScale: number,
    readonly variant?: string,
  ) {}

  /** Uploads a tensor owned by this checker. */
  tensor(data: HostArray, shape: readonly number[], dtype?: DType): Tensor {
    return this.own(Tensor.fromArray(this.gpu, data, shape, dtype));
  }

  /** Takes ownership of a kernel's output. */
  own<T extends Tensor | undefined>(t: T): T {
    if (t) this.#tensors.push(t);
    return t;
  }

  /** Reads `got` (when a tensor) and records its comparison with `want`. */
  async close(
    name: string,
    got: Tensor | ArrayLike<number>,
    want: ArrayLike<number>,
    tolerance: number,
    options: CompareOptions = {},
  ): Promise<void> {
    const values = got instanceof Tensor ? await this.own(got).read() : got;
    const named = this.variant ? `${name} [${this.variant}]` : name;
    this.results.push(
      compareValues(named, values, want, tolerance * this.toleranceScale, options),
    );
  }

  release(): void {
    for (const t of this.#tensors.splice(0)) if (!t.disposed) t.dispose();
  }
}

/** One family's checks. */
type Family = (c: Checker) => Promise<void>;

const bf16If = (dtype: "f32" | "bf16", w: Float32Array) => dtype === "bf16" ? roundToBf16(w) : w;

/** matmul x·Wᵀ and x·W (f32/bf16 W), aᵀ·b, the residual/accumulate epilogue (matmul_test.ts). */
const matmulFamily: Family = async (c) => {
  const TOL = 1e-5;
  let seed = 1;
  const shapes: [number, number, number][] = [[3, 7, 33], [33, 257, 7], [7, 3, 1000]];
  for (const [m, n, k] of shapes) {
    for (const transposeB of [true, false]) {
      for (const dtype of ["f32", "bf16"] as const) {
        const x = randomArray(m * k, seed++), w = randomArray(n * k, seed++);
        const tw = c.tensor(w, transposeB ? [n, k] : [k, n], dtype);
        const y = matmul(c.tensor(x, [m, k]), tw, { transposeB });
        const want = matmulRef(x, bf16If(dtype, w), { m, n, k, transposeB });
        await c.close(`matmul x·${transposeB ? "Wᵀ" : "W"} ${m}x${n}x${k} ${dtype}`, y, want, TOL);
      }
    }
    const a = randomArray(k * m, seed++), b = randomArray(k * n, seed++);
    const y = matmulTransA(c.tensor(a, [k, m]), c.tensor(b, [k, n]));
    await c.close(`matmulTransA aᵀ·b ${m}x${n}x${k}`, y, matmulTransARef(a, b, { m, n, k }), TOL);
  }
  const [m, n, k] = [7, 33, 257];
  const x = randomArray(m * k, 5), w = randomArray(n * k, 6), r = randomArray(m * n, 7);
  const tx = c.tensor(x, [m, k]), tw = c.tensor(w, [n, k], "bf16");
  const xw = matmulRef(x, roundToBf16(w), { m, n, k });
  const y = c.own(matmul(tx, tw, { residual: c.tensor(r, [m, n]) }));
  await c.close("matmul residual epilogue", y, xw.map((v, i) => v + r[i]), TOL);
  matmul(tx, tw, { out: y, accumulate: true, alpha: -2 });
  await c.close("matmul accumulate alpha=-2", y, xw.map((v, i) => r[i] - v), TOL);
};

/** Gemma RMSNorm: rows, per-head, fused residual, rstd, and the backward (rms_norm*_test.ts). */
const rmsNormFamily: Family = async (c) => {
  const TOL = 1e-5, EPS = 1e-6;
  // Table runs: both explicit mappings; a forced variant runs twice (f32 and bf16 w).
  const variants = c.variant ? [c.variant, c.variant] : ["row", "workgroup"];
  const forced = c.variant;
  for (const [rows, d] of [[33, 257], [7, 1000], [257, 7]]) {
    for (const [i, variant] of variants.entries()) {
      const dtype = i === 0 ? "f32" : "bf16";
      const x = randomArray(rows * d, rows * 31 + d, 3), w32 = randomArray(d, d + 7, 0.5);
      const y = rmsNorm(c.tensor(x, [rows, d]), c.tensor(w32, [d], dtype), { eps: EPS, variant });
      const want = rmsNormRef(x, bf16If(dtype, w32), { eps: EPS }).y;
      await c.close(`rmsNorm ${rows}x${d} ${dtype}${forced ? "" : ` ${variant}`}`, y, want, TOL);
    }
  }
  const [t, h, hd] = [7, 3, 256];
  const xh = randomArray(t * h * hd, t + h + hd, 2), wh = randomArray(hd, hd, 0.5);
  const yh = rmsNorm(c.tensor(xh, [t, h, hd]), c.tensor(wh, [hd], "bf16"), {
    eps: EPS,
    variant: forced,
  });
  await c.close(
    `rmsNorm per head ${t}x${h}x${hd}`,
    yh,
    rmsNormRef(xh, roundToBf16(wh), {
      eps: EPS,
    }).y,
    TOL,
  );
  {
    const [rows, d] = [7, 257];
    const x = randomArray(rows * d, 1, 2), res = randomArray(rows * d, 2, 20);
    const w = randomArray(d, 3, 0.5);
    const tr = c.tensor(res, [rows, d]);
    rmsNorm(c.tensor(x, [rows, d]), c.tensor(w, [d]), { residual: tr, out: tr, variant: forced });
    await c.close(
      "rmsNorm fused residual",
      tr,
      rmsNormRef(x, w, { eps: EPS, residual: res }).y,
      TOL,
    );
  }
  {
    const [rows, d] = [33, 1000];
    const x = randomArray(rows * d, 11, 4), w = randomArray(d, 12, 0.5);
    const rstd = c.own(Tensor.empty(c.gpu, [rows]));
    const y = rmsNorm(c.tensor(x, [rows, d]), c.tensor(w, [d], "bf16"), {
      eps: 1e-3,
      rstd,
      variant: forced,
    });
    const want = rmsNormRef(x, roundToBf16(w), { eps: 1e-3 });
    await c.close("rmsNorm with rstd: y", y, want.y, TOL);
    // the Deno test bounds each row's error by TOL · rstd: compare rstd / want with 1
    const got = await rstd.read();
    const ratio = Array.from(got, (v, r) => v / want.rstd[r]);
    await c.close("rmsNorm with rstd: rstd (relative)", ratio, ratio.map(() => 1), TOL);
  }
  // backward: dx, and dw accumulated onto existing contents
  for (const [rows, d] of [[33, 257], [7, 1000]]) {
    const x = randomArray(rows * d, rows * 31 + d, 3), dy = randomArray(rows * d, rows + 5);
    const w32 = randomArray(d, d + 7, 0.5), dw0 = randomArray(d, 9, 2);
    for (const [i, variant] of variants.entries()) {
      const dtype = i === 0 ? "bf16" : "f32";
      const w = bf16If(dtype, w32);
      const rstd = Float32Array.from(rmsNormRef(x, w, { eps: EPS }).rstd);
      const want = rmsNormBackwardRef(dy, { x, w, rstd });
      const dw = c.tensor(dw0, [d]);
      const dx = rmsNormBackward(c.tensor(dy, [rows, d]), {
        x: c.tensor(x, [rows, d]),
        w: c.tensor(w32, [d], dtype),
        rstd: c.tensor(rstd, [rows]),
      }, { dw, variant });
      const what = `rmsNormBackward ${rows}x${d} ${dtype}${forced ? "" : ` ${variant}`}`;
      await c.close(`${what} dx`, dx, want.dx, TOL);
      await c.close(`${what} dw`, dw, want.dw.map((v, i) => v + dw0[i]), TOL);
    }
  }
  const dyh = randomArray(t * h * hd, hd, 1);
  const rstdh = Float32Array.from(rmsNormRef(xh, roundToBf16(wh), { eps: EPS }).rstd);
  const wantH = rmsNormBackwardRef(dyh, { x: xh, w: roundToBf16(wh), rstd: rstdh });
  const dwh = c.own(Tensor.zeros(c.gpu, [hd]));
  const dxh = rmsNormBackward(c.tensor(dyh, [t, h, hd]), {
    x: c.tensor(xh, [t, h, hd]),
    w: c.tensor(wh, [hd], "bf16"),
    rstd: c.tensor(rstdh, [t, h]),
  }, { dw: dwh, variant: forced });
  await c.close(`rmsNormBackward per head ${t}x${h}x${hd} dx`, dxh, wantH.dx, TOL);
  await c.close(`rmsNormBackward per head ${t}x${h}x${hd} dw`, dwh, wantH.dw, TOL);
  await rmsNormFusionChecks(c, forced);
};

/**
 * RMSNorm's fused epilogues (rms_norm_fusion_test.ts): per-head norm + RoPE in place, unordered
 * positions past T; the sandwich chain `h ← h + norm(o)` in place then `norm(h)`, with rstd, at
 * D = 37 and D = 2053 (> 8·256, past the `workgroup`/`sg` registers).
 */
async function rmsNormFusionChecks(c: Checker, variant: string | undefined): Promise<void> {
  const TOL = 1e-5, EPS = 1e-6;
  const [t, h, hd, base] = [7, 3, 10, 1e6];
  const x = randomArray(t * h * hd, 21, 3), w = randomArray(hd, 22, 0.5);
  const pos = Int32Array.from({ length: t }, (_, i) => (i * 37 + 11) % 128);
  const table = RopeTable.create(c.gpu, { base, headDim: hd, maxPositions: 128 });
  const q = c.tensor(x, [t, h, hd]);
  const rope = { table, positions: c.tensor(pos, [t]) };
  rmsNorm(q, c.tensor(w, [hd], "bf16"), { eps: EPS, rope, out: q, variant });
  const normed = rmsNormRef(x, roundToBf16(w), { eps: EPS }).y;
  const want = ropeRef(normed, pos, { numHeads: h, headDim: hd, base });
  await c.close(`rmsNorm + rope ${t}x${h}x${hd} in place`, q, want, TOL);
  table.dispose();
  for (const [rows, d] of [[5, 37], [2, 2053]]) {
    const x = randomArray(rows * d, d, 3), res = randomArray(rows * d, d + 1, 20);
    const w = randomArray(d, d + 2, 0.5), wNext = randomArray(d, d + 3, 0.5);
    const hs = c.tensor(res, [rows, d]);
    const rstd = c.own(Tensor.empty(c.gpu, [rows]));
    const next = {
      w: c.tensor(wNext, [d]),
      out: c.own(Tensor.empty(c.gpu, [rows, d])),
      rstd: c.own(Tensor.empty(c.gpu, [rows])),
    };
    rmsNorm(c.tensor(x, [rows, d]), c.tensor(w, [d]), {
      eps: EPS,
      residual: hs,
      out: hs,
      rstd,
      next,
      variant,
    });
    const first = rmsNormRef(x, w, { eps: EPS, residual: res });
    const second = rmsNormRef(first.y, wNext, { eps: EPS });
    await c.close(`rmsNorm + next ${rows}x${d}: h`, hs, first.y, TOL);
    await c.close(`rmsNorm + next ${rows}x${d}: next`, next.out, second.y, TOL);
    // rstd within TOL · rstd, as the Deno test bounds it: compare rstd / want with 1
    const rstds = [["rstd", rstd, first.rstd], ["next.rstd", next.rstd, second.rstd]] as const;
    for (const [name, got, wantRstd] of rstds) {
      const ratio = Array.from(await got.read(), (v, r) => v / wantRstd[r]);
      await c.close(
        `rmsNorm + next ${rows}x${d}: ${name} (relative)`,
        ratio,
        ratio.map(() => 1),
        TOL,
      );
    }
  }
}

/** Split-half RoPE and its backward (rope_test.ts, rope_backward_test.ts). */
const ropeFamily: Family = async (c) => {
  const TOL = 1e-5;
  let seed = 1;
  for (
    const [tokens, heads, headDim, base] of [[33, 3, 10, 1e4], [7, 4, 256, 1e6], [3, 1, 2, 1e4]]
  ) {
    const random = SeededRandom.fromState(++seed);
    const x = randomArray(tokens * heads * headDim, seed, 2);
    const pos = Int32Array.from({ length: tokens }, () => Math.floor(random.next() * 1024));
    pos[0] = 1023;
    const table = RopeTable.create(c.gpu, { base, headDim, maxPositions: 1024 });
    const tp = c.tensor(pos, [tokens]);
    const tx = c.tensor(x, [tokens, heads, headDim]);
    const o = { numHeads: heads, headDim, base };
    const what = `T=${tokens} H=${heads} D=${headDim} base ${base}`;
    await c.close(`rope ${what}`, rope(tx, tp, { table }), ropeRef(x, pos, o), TOL);
    const back = ropeBackward(tx, tp, { table });
    await c.close(`ropeBackward ${what}`, back, ropeRef(x, pos, { ...o, inverse: true }), TOL);
    table.dispose();
  }
};

/** Scale of the attention checks: the fixture's queryPreAttnScalar^−0.5. */
const SCALE = 24 ** -0.5;

interface AttentionCase {
  readonly batch: number;
  readonly seq: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly window: number;
  readonly ranges?: number[];
}

/** Cases from attention_test.ts: GQA groups, windows, a padded batch. */
const ATTENTION_CASES: readonly AttentionCase[] = [
  { batch: 2, seq: 7, heads: 4, kvHeads: 2, headDim: 10, window: 3 },
  { batch: 2, seq: 33, heads: 4, kvHeads: 1, headDim: 32, window: 0 },
  { batch: 1, seq: 33, heads: 3, kvHeads: 3, headDim: 6, window: 8 },
  {
    batch: 4,
    seq: 13,
    heads: 4,
    kvHeads: 1,
    headDim: 10,
    window: 3,
    ranges: [3, 13, 0, 5, 0, 13, 4, 4],
  },
];

function refOptions(a: AttentionCase): AttentionRefOptions {
  const { batch, seq, heads, kvHeads, headDim, window, ranges } = a;
  return {
    batch,
    seq,
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim,
    scale: SCALE,
    window,
    ranges,
  };
}

/** lse rows that see no key are −∞ on both sides; they compare as equal (0) here. */
function lsePair(got: ArrayLike<number>, want: ArrayLike<number>): [number[], number[]] {
  const bothEmpty = (i: number) => want[i] === -Infinity && got[i] === -Infinity;
  return [
    Array.from(got, (v, i) => bothEmpty(i) ? 0 : v),
    Array.from(want, (v, i) => bothEmpty(i) ? 0 : v),
  ];
}

/** Prefill (causal, window, GQA, ranges), decode on ring caches, writeKvCache, backward. */
const attentionFamily: Family = async (c) => {
  const TOL = 1e-5;
  let seed = 10;
  for (const a of ATTENTION_CASES) {
    const { batch, seq, heads, kvHeads, headDim } = a;
    seed += 4;
    const q = randomArray(batch * seq * heads * headDim, seed, 2);
    const k = randomArray(batch * seq * kvHeads * headDim, seed + 1, 2);
    const v = randomArray(batch * seq * kvHeads * headDim, seed + 2);
    const dOut = randomArray(q.length, seed + 3);
    const tq = c.tensor(q, [batch, seq, heads, headDim]);
    const tk = c.tensor(k, [batch, seq, kvHeads, headDim]);
    const tv = c.tensor(v, [batch, seq, kvHeads, headDim]);
    const tr = a.ranges ? c.tensor(new Int32Array(a.ranges), [batch, 2]) : undefined;
    const options = { scale: SCALE, window: a.window, ranges: tr };
    const r = attention(tq, { k: tk, v: tv }, { ...options, returnLse: true });
    const want = attentionRef({ q, k, v }, refOptions(a));
    const what = `B=${batch} S=${seq} H=${heads}/${kvHeads} D=${headDim} W=${a.window}` +
      (a.ranges ? " padded" : "");
    await c.close(`attention ${what} out`, r.out, want.out, TOL);
    const [gotLse, wantLse] = lsePair(await c.own(r.lse!).read(), want.lse);
    await c.close(`attention ${what} lse`, gotLse, wantLse, TOL);
    // backward from the forward kernel's out and lse, against the reference on those
    const [out, lse] = [
      (await r.out.read()) as Float32Array,
      (await r.lse!.read()) as Float32Array,
    ];
    const tdo = c.tensor(dOut, [batch, seq, heads, headDim]);
    const g = attentionBackward(tdo, { q: tq, k: tk, v: tv, out: r.out, lse: r.lse! }, options);
    const wantG = attentionBackwardRef(dOut, { q, k, v, out, lse }, refOptions(a));
    await c.close(`attentionBackward ${what} dq`, g.dq, wantG.dq, TOL);
    await c.close(`attentionBackward ${what} dk`, g.dk, wantG.dk, TOL);
    await c.close(`attentionBackward ${what} dv`, g.dv, wantG.dv, TOL);
  }
  // decode against random ring caches: short, wrapped, wrapped with left padding, empty
  const [batch, cacheLen, heads, kvHeads, headDim] = [4, 8, 4, 2, 10];
  const q = randomArray(batch * heads * headDim, 1, 2);
  const k = randomArray(batch * cacheLen * kvHeads * headDim, 2, 2);
  const v = randomArray(batch * cacheLen * kvHeads * headDim, 3);
  const ranges = [0, 5, 0, 19, 6, 30, 3, 3];
  const tq = c.tensor(q, [batch, heads, headDim]);
  const cache = {
    k: c.tensor(k, [batch, cacheLen, kvHeads, headDim]),
    v: c.tensor(v, [batch, cacheLen, kvHeads, headDim]),
  };
  const tr = c.tensor(new Int32Array(ranges), [batch, 2]);
  for (const window of [0, 3]) {
    const r = attentionDecode(tq, cache, { scale: SCALE, window, ranges: tr, returnLse: true });
    const want = attentionDecodeRef({ q, k, v }, {
      batch,
      seq: cacheLen,
      numHeads: heads,
      numKvHeads: kvHeads,
      headDim,
      scale: SCALE,
      window,
      ranges,
    });
    await c.close(`attentionDecode ring cache W=${window} out`, r.out, want.out, TOL);
    const [gotLse, wantLse] = lsePair(await c.own(r.lse!).read(), want.lse);
    await c.close(`attentionDecode ring cache W=${window} lse`, gotLse, wantLse, TOL);
  }
  // writeKvCache keeps the last C valid tokens of each ring: exact
  const [b3, tokens, len, row] = [3, 11, 4, 6];
  const values = randomArray(b3 * tokens * row, 5), init = randomArray(b3 * len * row, 6);
  const offsets = [0, 5, 2], counts = [11, 3, 7];
  const want = init.slice();
  writeKvCacheRef(want, values, {
    batch: b3,
    tokens,
    cacheLen: len,
    rowSize: row,
    offsets,
    counts,
  });
  const ring = {
    k: c.tensor(init, [b3, len, 2, row / 2]),
    v: c.tensor(init, [b3, len, 2, row / 2]),
  };
  const vals = c.tensor(values, [b3, tokens, 2, row / 2]);
  writeKvCache(ring, { k: vals, v: vals }, {
    offsets: c.tensor(new Int32Array(offsets), [b3]),
    counts: c.tensor(new Int32Array(counts), [b3]),
  });
  await c.close("writeKvCache ring k", ring.k, want, 0);
  await c.close("writeKvCache ring v", ring.v, want, 0);
};

/** GeGLU forward and backward, scalar and vec4 kernels (geglu*_test.ts). */
const gegluFamily: Family = async (c) => {
  const TOL = 1e-5;
  for (const [rows, inter] of [[33, 257], [29, 192], [7, 7]]) {
    const n = rows * inter, shape = [rows, inter];
    const g = randomArray(n, rows + inter, 5), u = randomArray(n, 7, 3);
    const what = `${rows}x${inter}`;
    await c.close(
      `geglu ${what}`,
      geglu(c.tensor(g, shape), c.tensor(u, shape)),
      gegluRef(g, u),
      TOL,
    );
    const gb = randomArray(n, rows + inter, 6), d = randomArray(n, 8, 2);
    const r = gegluBackward(c.tensor(d, shape), {
      gate: c.tensor(gb, shape),
      up: c.tensor(u, shape),
    });
    const want = gegluBackwardRef(d, { gate: gb, up: u });
    await c.close(`gegluBackward ${what} dGate`, r.dGate, want.dGate, TOL);
    await c.close(`gegluBackward ${what} dUp`, r.dUp, want.dUp, TOL);
  }
};

/** Embedding gather × scale (f32/bf16 tables) and the scatter-add backward (embedding*_test.ts). */
const embeddingFamily: Family = async (c) => {
  const TOL = 1e-5;
  for (const [vocab, d, tokens] of [[33, 257, 33], [257, 1000, 7]]) {
    const table = randomArray(vocab * d, vocab + d, 0.1);
    const ids = randomIds(tokens, vocab, tokens);
    const scale = Math.fround(Math.sqrt(d));
    for (const dtype of ["f32", "bf16"] as const) {
      const ti = c.tensor(dtype === "f32" ? ids : Uint32Array.from(ids), [tokens]);
      const out = embedding(c.tensor(table, [vocab, d], dtype), ti, { scale });
      const want = embeddingRef(bf16If(dtype, table), ids, { dim: d, scale });
      await c.close(`embedding V=${vocab} D=${d} T=${tokens} ${dtype}`, out, want, TOL);
    }
  }
  for (const [vocab, d, tokens] of [[257, 257, 33], [9, 33, 257]]) {
    const ids = randomIds(tokens, Math.ceil(vocab / 2), vocab + d); // duplicates
    const dOut = randomArray(tokens * d, tokens, 2), base = randomArray(vocab * d, d, 3);
    const scale = Math.fround(Math.sqrt(d));
    const dTable = c.tensor(base, [vocab, d]);
    embeddingBackward(c.tensor(dOut, [tokens, d]), ids, { dTable, scale });
    const want = embeddingBackwardRef(dOut, ids, { vocab, scale }).map((v, k) => v + base[k]);
    await c.close(`embeddingBackward V=${vocab} D=${d} T=${tokens}`, dTable, want, TOL);
  }
};

/** add and scale (elementwise_test.ts). */
const elementwiseFamily: Family = async (c) => {
  const TOL = 1e-6;
  for (const n of [257, 70001]) {
    const a = randomArray(n, 1), b = randomArray(n, 2), x = randomArray(n, n, 3);
    const sum = add(c.tensor(a, [n]), c.tensor(b, [n]), { alpha: 0.5, beta: -2 });
    await c.close(`add n=${n}`, sum, addRef(a, b, { alpha: 0.5, beta: -2 }), TOL);
    const scaled = scale(c.tensor(x, [n]), -0.3);
    await c.close(`scale n=${n}`, scaled, scaleRef(x, Math.fround(-0.3)), TOL);
  }
};

/** Token log-probs with entropy, and the backward with dE and the entropy term (logprobs*_test.ts). */
const logprobsFamily: Family = async (c) => {
  const TOL = 1e-5;
  const problem = (shape: [number, number, number], dtype: "f32" | "bf16", hScale = 1) => {
    const [tokens, dim, vocab] = shape;
    const h = randomArray(tokens * dim, tokens * 7 + dim, hScale);
    const e32 = randomArray(vocab * dim, vocab + dim, 1);
    const targets = randomIds(tokens, vocab, vocab * 3 + tokens);
    return {
      dims: { tokens, dim, vocab },
      h,
      e: bf16If(dtype, e32),
      targets,
      th: c.tensor(h, [tokens, dim]),
      te: c.tensor(e32, [vocab, dim], dtype),
      tt: c.tensor(targets, [tokens]),
      what: `T=${tokens} D=${dim} V=${vocab} ${dtype}`,
    };
  };
  const forward: [[number, number, number], "f32" | "bf16", number | undefined][] = [
    [[7, 33, 257], "f32", undefined],
    [[9, 64, 4097], "bf16", undefined],
    [[4, 33, 1000], "f32", 0.7],
  ];
  for (const [shape, dtype, temperature] of forward) {
    const p = problem(shape, dtype);
    const got = tokenLogprobs({ h: p.th, embedding: p.te, targets: p.tt }, {
      temperature,
      entropy: true,
      variant: c.variant,
    });
    const want = tokenLogprobsRef({ h: p.h, embedding: p.e, targets: p.targets }, {
      ...p.dims,
      temperature,
    });
    const what = `${p.what} τ=${temperature ?? 1}`;
    await c.close(`tokenLogprobs ${what} logprobs`, got.logprobs, want.logprobs, TOL);
    await c.close(`tokenLogprobs ${what} lse`, got.lse, want.lse, TOL);
    await c.close(`tokenLogprobs ${what} entropy`, got.entropy!, want.entropy, TOL);
  }
  const backward: [[number, number, number], "f32" | "bf16", number, number, boolean][] = [
    [[7, 33, 1000], "f32", 0.7, 1, false],
    [[33, 64, 257], "bf16", 2.5, 3, true],
    [[3, 7, 5000], "f32", 1, 4, true],
  ];
  for (const [shape, dtype, temperature, hScale, withEntropy] of backward) {
    const p = problem(shape, dtype, hScale);
    const { tokens, dim, vocab } = p.dims;
    const grads = randomArray(tokens, tokens + 11);
    for (let t = 0; t < tokens; t += 3) grads[t] = 0; // masked tokens
    const gradEntropy = withEntropy ? randomArray(tokens, tokens + 5) : undefined;
    const ref = tokenLogprobsRef({ h: p.h, embedding: p.e, targets: p.targets }, {
      ...p.dims,
      temperature,
    });
    const dE0 = randomArray(vocab * dim, 99, 0.5);
    const dEmbedding = c.tensor(dE0, [vocab, dim]);
    const dh = tokenLogprobsBackward(c.tensor(grads, [tokens]), {
      h: p.th,
      embedding: p.te,
      targets: p.tt,
      lse: c.tensor(Float32Array.from(ref.lse), [tokens]),
      entropy: withEntropy ? c.tensor(Float32Array.from(ref.entropy), [tokens]) : undefined,
    }, {
      dEmbedding,
      temperature,
      gradEntropy: gradEntropy ? c.tensor(gradEntropy, [tokens]) : undefined,
      variant: c.variant,
    });
    const want = tokenLogprobsBackwardRef(grads, { h: p.h, embedding: p.e, targets: p.targets }, {
      ...p.dims,
      temperature,
      gradEntropy,
    });
    const what = `${p.what} τ=${temperature}${withEntropy ? " +H" : ""}`;
    await c.close(`tokenLogprobsBackward ${what} dh`, dh, want.dh, TOL);
    await c.close(
      `tokenLogprobsBackward ${what} dE`,
      dEmbedding,
      want.dEmbedding.map((v, k) => v + dE0[k]),
      TOL,
    );
  }
};

/** Greedy = argmax, seeded draws = sampleRef's, and the sampled ids' log-probs (sampling_test.ts). */
const samplingFamily: Family = async (c) => {
  const draw = async (logits: Float32Array, vocab: number, options: SampleOptions) => {
    const t = c.tensor(logits, [logits.length / vocab, vocab]);
    const ids = sample(t, { ...options, variant: c.variant });
    return Array.from((await c.own(ids).read()) as Uint32Array);
  };
  {
    const vocab = 1000, rows = 3;
    const logits = randomArray(rows * vocab, vocab, 5);
    // row 1: the max three times (ties → lowest index); row 2: a NaN in front of the max
    logits[vocab + 5] = logits[vocab + vocab - 1] = logits[vocab + 3] = 6;
    logits[2 * vocab + 1] = NaN;
    const argmax = Array.from({ length: rows }, (_, r) => {
      let best = 0;
      for (let i = 1; i < vocab; i++) {
        if (logits[r * vocab + i] > logits[r * vocab + best]) best = i;
      }
      return best;
    });
    await c.close(
      "sample greedy = argmax (ties, NaN)",
      await draw(logits, vocab, {
        temperature: 0,
      }),
      argmax,
      0,
    );
  }
  const mixes: SampleOptions[] = [
    { temperature: 1 },
    { temperature: 0.5, topK: 3 },
    { temperature: 2, topP: 0.8 },
    { temperature: 0.9, topK: 20, topP: 0.6 },
  ];
  for (const vocab of [33, 257]) {
    const smooth = randomArray(5 * vocab, vocab * 13, 3);
    const tied = smooth.map((x) => Math.round(x * 2) / 2); // ties at the top-k/top-p thresholds
    for (const [kind, logits] of [["smooth", smooth], ["tied", tied]] as const) {
      for (const [m, mix] of mixes.entries()) {
        const options = { ...mix, seed: 1000 + m, step: vocab };
        await c.close(
          `sample V=${vocab} ${kind} ${JSON.stringify(mix)} = sampleRef`,
          await draw(logits, vocab, options),
          sampleRef(logits, vocab, options),
          0,
        );
      }
    }
  }
  const vocab = 1000, rows = 5;
  const logits = randomArray(rows * vocab, vocab * 7, 4);
  const logp = c.own(Tensor.zeros(c.gpu, [rows], "f32"));
  const options = { temperature: 0.9, topK: 20, seed: 42, step: vocab, logprobsOut: logp };
  const ids = await draw(logits, vocab, options);
  const want = sampleLogprobsRef(logits, vocab, ids);
  // absolute, as the Deno test (the log-probs are compared without scaling)
  await c.close("sample logprobsOut", logp, want, 1e-6, { errorScale: "absolute" });
};

/** Global gradient norm and AdamW updates with clipping and masked decay (adamw_test.ts). */
const adamwFamily: Family = async (c) => {
  const TOL = 1e-5;
  const shapes: Record<string, number[]> = { bias: [1], small: [7], odd: [257], lora_b: [8, 125] };
  const names = Object.keys(shapes);
  const numel = (n: string) => shapes[n].reduce((a, b) => a * b, 1);
  const hyper = { learningRate: 1e-2, b1: 0.9, b2: 0.99, eps: 1e-8, maxGradNorm: 1 };
  const host = names.map((n, i) => ({
    p: Float64Array.from(randomArray(numel(n), 11 + i)) as ArrayLike<number>,
    m: new Float64Array(numel(n)) as ArrayLike<number>,
    v: new Float64Array(numel(n)) as ArrayLike<number>,
  }));
  const params = names.map((n, i) => c.tensor(Float32Array.from(host[i].p), shapes[n]));
  const moments = names.map((n) => ({
    m: c.own(Tensor.zeros(c.gpu, shapes[n])),
    v: c.own(Tensor.zeros(c.gpu, shapes[n])),
  }));
  const stats = c.own(Tensor.zeros(c.gpu, [ADAMW_STATS.length]));
  // ~1265 values in [−s, s] have a norm of about 20.5·s: 0.5 and 2.0 clip at 1.0, 0.01 does not
  for (const [k, gradScale] of [0.01, 0.5, 2.0].entries()) {
    const grads = names.map((n, i) => randomArray(numel(n), 100 * k + 7 + i, gradScale));
    gradGlobalNorm(grads.map((g, i) => c.tensor(g, shapes[names[i]])), {
      out: stats,
      variant: c.variant,
    });
    const norm = gradGlobalNormRef(grads);
    names.forEach((n, i) => {
      const weightDecay = n === "bias" ? 0 : 0.1;
      adamwUpdate(params[i], {
        grad: c.tensor(grads[i], shapes[n]),
        m: moments[i].m,
        v: moments[i].v,
        stats,
      }, { ...hyper, weightDecay, step: k + 1 });
      const r = adamwUpdateRef(host[i].p, { grad: grads[i], ...host[i], gradNorm: norm }, {
        ...hyper,
        weightDecay,
        step: k + 1,
      });
      host[i] = { p: r.param, m: r.m, v: r.v };
    });
    const s = await stats.read();
    await c.close(
      `gradGlobalNorm step ${k + 1} (relative)`,
      [s[ADAMW_STATS.norm] / norm],
      [1],
      TOL,
    );
    await c.close(`adamw step ${k + 1} applied`, [s[ADAMW_STATS.applied]], [1], 0);
    for (const [i, n] of names.entries()) {
      await c.close(`adamwUpdate step ${k + 1} ${n}`, await params[i].read(), host[i].p, TOL);
    }
  }
  // A non-finite guard value (e.g. the loss) stops the step, counted in the stats.
  const guard = c.tensor(new Float32Array([1, NaN, 2, Infinity]), [4]);
  const g = c.tensor(randomArray(70001, 5), [70001]);
  gradGlobalNorm([g], { out: stats, guard, variant: c.variant });
  const s = await stats.read();
  await c.close(
    "gradGlobalNorm guard [applied, badGuard]",
    [s[ADAMW_STATS.applied], s[ADAMW_STATS.badGuard]],
    [0, 2],
    0,
  );
};

/** LoRA linear `x·Wᵀ + s·(x·Aᵀ)·Bᵀ`, ranks 1, 3, 4, f32 and bf16 W (lora_test.ts). */
const loraFamily: Family = async (c) => {
  const TOL = 1e-5;
  let seed = 1;
  const cases: [number, number, number, number, "f32" | "bf16"][] = [
    [3, 33, 257, 3, "bf16"],
    [33, 257, 7, 4, "f32"],
    [7, 64, 33, 1, "bf16"],
  ];
  for (const [m, inDim, outDim, rank, dtype] of cases) {
    const x = randomArray(m * inDim, seed++), w = randomArray(outDim * inDim, seed++);
    const a = randomArray(rank * inDim, seed++), b = randomArray(outDim * rank, seed++);
    const scale = 16 / rank;
    const { y, xa } = loraLinear(c.tensor(x, [m, inDim]), {
      w: c.tensor(w, [outDim, inDim], dtype),
      a: c.tensor(a, [rank, inDim]),
      b: c.tensor(b, [outDim, rank]),
    }, { scale });
    const ref = loraLinearRef(x, { w: bf16If(dtype, w), a, b }, { m, inDim, outDim, rank, scale });
    const what = `m=${m} in=${inDim} out=${outDim} r=${rank} ${dtype}`;
    await c.close(`loraLinear ${what} y`, y, ref.y, TOL);
    await c.close(`loraLinear ${what} xa`, xa, ref.xa, TOL);
  }
};

/** Every family, in the order of ARCHITECTURE.md's kernel table. */
const FAMILIES: readonly [string, Family][] = [
  ["matmul", matmulFamily],
  ["rms_norm", rmsNormFamily],
  ["rope", ropeFamily],
  ["attention", attentionFamily],
  ["geglu", gegluFamily],
  ["embedding", embeddingFamily],
  ["elementwise", elementwiseFamily],
  ["logprobs", logprobsFamily],
  ["sampling", samplingFamily],
  ["adamw", adamwFamily],
  ["lora", loraFamily],
];

/**
 * Runs every kernel family's forward and backward against its float64 reference, each with the
 * tolerance of its Deno test. A family that throws gives one failed result naming the error.
 *
 * @param gpu The runtime (Deno's adapter or the page's `navigator.gpu`).
 * @param options Tolerance scale.
 * @returns One result per compared output.
 * @example
 * ```ts ignore
 * const results = await kernelChecks(await Gpu.create());
 * console.log(results.filter((r) => !r.ok)); // []
 * ```
 */
export async function kernelChecks(
  gpu: Gpu,
  options: CheckOptions = {},
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const [family, run] of FAMILIES) {
    results.push(...await runFamily(new Checker(gpu, options.toleranceScale ?? 1), family, run));
  }
  return results;
}

/** Runs one family's checks; an exception becomes one failed result naming it. */
async function runFamily(c: Checker, family: string, run: Family): Promise<CheckResult[]> {
  try {
    await run(c);
  } catch (e) {
    c.results.push({
      name: `${family}${c.variant ? ` [${c.variant}]` : ""}: threw`,
      maxError: Infinity,
      tolerance: 0,
      ok: false,
      detail: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
    });
  } finally {
    c.release();
  }
  return c.results;
}

/**
 * Compiles the catalogue's subgroup variants (`kernel_variants.ts` with the device's features),
 * one per code path (numeric constants such as tiles aside: compiling all takes SwiftShader
 * ~50 s).
 */
async function subgroupCatalogueCheck(gpu: Gpu): Promise<CheckResult> {
  const all = kernelVariants({ limits: gpu.device.limits, features: gpu.features })
    .filter((v) => v.code.trimStart().startsWith("enable subgroups;"));
  const paths = new Map<string, KernelVariant>();
  for (const v of all) {
    const named = Object.entries(v.constants).filter(([, x]) => typeof x !== "number").sort();
    const key = `${v.name}${JSON.stringify(named)}`;
    if (!paths.has(key)) paths.set(key, v);
  }
  const failed = await compileKernelVariants(gpu.device, [...paths.values()]);
  const ok = paths.size > 0 && failed.length === 0;
  return {
    name: `subgroup variants of the catalogue compile (${paths.size} code paths)`,
    maxError: ok ? 0 : Infinity,
    tolerance: 0,
    ok,
    ...(failed.length ? { detail: failed.map((f) => `${f.label}: ${f.message}`).join("; ") } : {}),
  };
}

/** The families with subgroup variants and every variant id they have. */
const SUBGROUP_FAMILIES: readonly [string, Family, readonly string[]][] = [
  ["rms_norm", rmsNormFamily, RMS_NORM_VARIANTS],
  ["logprobs", logprobsFamily, LOGPROBS_VARIANTS],
  ["sampling", samplingFamily, SAMPLE_VARIANTS],
  ["adamw", adamwFamily, GRAD_NORM_VARIANTS],
];

/**
 * The subgroup variant ids (`sg…`) of each family with subgroup variants, e.g.
 * `{ rms_norm: ["sg"], … }`: what {@linkcode subgroupKernelChecks} forces.
 *
 * @returns Family name → subgroup variant ids.
 * @example
 * ```ts
 * import { subgroupVariantIds } from "./_browser_kernel_checks.ts";
 * console.log(subgroupVariantIds().rms_norm); // ["sg"]
 * ```
 */
export function subgroupVariantIds(): Record<string, readonly string[]> {
  return Object.fromEntries(
    SUBGROUP_FAMILIES.map(([family, , ids]) => [family, ids.filter((id) => id.startsWith("sg"))]),
  );
}

/**
 * Forces every subgroup variant of RMSNorm (forward and backward), the log-probs (forward and
 * backward), sampling and the global gradient norm through the family's checks above (odd
 * shapes, float64 references, the Deno tests' tolerances; sampling exactly `sampleRef`'s ids).
 * The first result says whether the adapter offers `subgroups`: without them it fails and
 * nothing else runs, so a run cannot pass without testing anything.
 *
 * @param gpu The runtime (the page's `navigator.gpu` in Chromium: SwiftShader has subgroups).
 * @param options Tolerance scale.
 * @returns The results; names end in `[variant]`.
 * @example
 * ```ts ignore
 * const results = await subgroupKernelChecks(await Gpu.create());
 * console.log(results.filter((r) => !r.ok)); // [] where subgroups are offered
 * ```
 */
export async function subgroupKernelChecks(
  gpu: Gpu,
  options: CheckOptions = {},
): Promise<CheckResult[]> {
  const offered = gpu.features.subgroups;
  const results: CheckResult[] = [{
    name: "subgroups offered by the adapter",
    maxError: offered ? 0 : Infinity,
    tolerance: 0,
    ok: offered,
    ...(offered ? {} : { detail: `${gpu.adapter.description} offers no subgroups` }),
  }];
  if (!offered) return results;
  results.push(await subgroupCatalogueCheck(gpu));
  const ids = subgroupVariantIds();
  for (const [family, run] of SUBGROUP_FAMILIES) {
    for (const variant of ids[family]) {
      const c = new Checker(gpu, options.toleranceScale ?? 1, variant);
      results.push(...await runFamily(c, family, run));
    }
  }
  return results;
}
