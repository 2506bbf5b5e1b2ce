/**
 * Matmul variant checks that run unchanged in Deno and in a browser page (no Deno API, no
 * `node:` imports): each forced variant against the float64 references (`kernels/matmul_ref.ts`)
 * on odd and aligned shapes of every form, both dtypes of W, the three epilogues, batched
 * products and weight row ranges, within 1e-5·max(1, |ref|) — the tolerance of
 * `tests/matmul_test.ts`. `tests/matmul_variants_test.ts` runs them on Deno's adapter;
 * {@linkcode matmulGateChecks} (the GeGLU-gated epilogue) `tests/matmul_gate_test.ts`;
 * {@linkcode matmulSubgroupChecks} (both, for the subgroup variants) is for adapters with
 * `subgroups` (Chromium's SwiftShader).
 *
 * @module
 */

import { type CheckResult, compareValues, randomArray } from "./_browser_kernel_checks.ts";
import { roundToBf16 } from "../kernels/dtype.ts";
import type { Gpu } from "../kernels/gpu.ts";
import {
  matmul,
  MATMUL_VARIANTS,
  matmulCandidates,
  type MatmulForm,
  matmulTransA,
} from "../kernels/matmul.ts";
import { geluTanhRef } from "../kernels/geglu_ref.ts";
import { matmulRef, matmulTransARef } from "../kernels/matmul_ref.ts";
import { readTensorsF32, Tensor } from "../kernels/tensor.ts";

/** The tolerance of every check: `max |got − want| ≤ 1e-5·max(1, max |want|)`. */
export const MATMUL_TOLERANCE = 1e-5;

/** `[m, n, k]` of one product. */
export type MatmulCase = readonly [m: number, n: number, k: number];

/**
 * Shapes per form: odd (scalar loads, K tails, partial tiles) and aligned for the form's vec4
 * loads (K % 4 for `a` rows, N % 4 for `b` rows of x·W, M % 4 and N % 4 for aᵀ·b) with odd
 * sizes elsewhere, each with many rows and with one (GEMV; aᵀ·b: 4), and a short K (fewer k
 * than a slab).
 */
export const VARIANT_SHAPES: Readonly<Record<MatmulForm, readonly MatmulCase[]>> = {
  nt: [[37, 67, 131], [37, 67, 132], [1, 67, 131], [1, 67, 132], [3, 130, 5]],
  nn: [[37, 67, 131], [37, 68, 132], [1, 67, 131], [1, 68, 132], [3, 130, 5]],
  tn: [[37, 67, 131], [36, 68, 131], [1, 67, 131], [4, 68, 131], [3, 130, 5]],
};

/** Shapes of the subgroup GEMV (x·Wᵀ, M ≤ 4). */
export const SUBGROUP_SHAPES: readonly MatmulCase[] = [
  [1, 67, 131],
  [4, 67, 132],
  [2, 130, 5],
  [3, 9, 1000],
];

/** The reductions of {@linkcode longKChecks}: f32 error must not grow with K. */
export const LONG_K_SHAPES: readonly MatmulCase[] = [[33, 65, 6912], [5, 9, 7001]];

/** The variants that need the `subgroups` feature (ids starting with `sg`). */
export const SUBGROUP_VARIANTS: readonly string[] = MATMUL_VARIANTS.filter((id) =>
  id.startsWith("sg")
);

/**
 * GeGLU gates of `n` outputs: uniform in [-4, 4] (the tanh region), or with `clamp` cycling
 * through values at and past the kernel's ±10 clamp (±9.5, ±10, ±10.5, ±30).
 *
 * @param n Count.
 * @param seed Seed (and, with `clamp`, the phase of the cycle).
 * @param clamp Values at and past the clamp.
 * @returns The gates.
 * @example
 * ```ts
 * import { gateArray } from "./_matmul_variant_checks.ts";
 * console.log(gateArray(3, 0, true)); // Float32Array [30, -30, 10.5]
 * ```
 */
export function gateArray(n: number, seed: number, clamp = false): Float32Array {
  if (!clamp) return randomArray(n, seed, 4);
  const edge = [30, -30, 10.5, -10.5, 10, -10, 9.5, -9.5];
  return Float32Array.from({ length: n }, (_, i) => edge[(i + seed) % edge.length]);
}

/** Options of the checks. */
export interface MatmulCheckOptions {
  /** The variants to force (default: every id of `MATMUL_VARIANTS` without `sg` ones). */
  readonly variants?: readonly string[];
  /** Shapes of x·Wᵀ, x·W and aᵀ·b (default {@linkcode VARIANT_SHAPES}). */
  readonly shapes?: Readonly<Partial<Record<MatmulForm, readonly MatmulCase[]>>>;
  /** Multiplies the tolerance (default 1; a tiny factor shows that the checks can fail). */
  readonly toleranceScale?: number;
}

/** One pending comparison: an output to read and its reference. */
interface Pending {
  name: string;
  got: Tensor;
  want: ArrayLike<number>;
}

/** Collects launches, then reads every output in one GPU wait. */
class Batch {
  readonly pending: Pending[] = [];
  readonly failures: CheckResult[] = [];
  readonly #owned: Tensor[] = [];

  constructor(readonly gpu: Gpu, readonly tolerance: number) {}

  tensor(data: Float32Array, shape: readonly number[], dtype: "f32" | "bf16" = "f32"): Tensor {
    const t = Tensor.fromArray(this.gpu, data, shape, dtype);
    this.#owned.push(t);
    return t;
  }

  /** Runs `launch` (its output is compared with `want`), recording a thrown error as a failure. */
  expect(name: string, want: ArrayLike<number>, launch: () => Tensor): void {
    try {
      const got = launch();
      this.#owned.push(got);
      this.pending.push({ name, got, want });
    } catch (e) {
      this.failures.push({
        name,
        maxError: Infinity,
        tolerance: this.tolerance,
        ok: false,
        detail: String(e),
      });
    }
  }

  async results(): Promise<CheckResult[]> {
    try {
      const values = await readTensorsF32(this.pending.map((p) => p.got));
      return [
        ...this.failures,
        ...this.pending.map((p, i) => compareValues(p.name, values[i], p.want, this.tolerance)),
      ];
    } catch (e) {
      const detail = String(e);
      return [...this.failures, {
        name: "matmul variants",
        maxError: Infinity,
        tolerance: this.tolerance,
        ok: false,
        detail,
      }];
    } finally {
      for (const t of this.#owned.splice(0)) if (!t.disposed) t.dispose();
    }
  }
}

/** Whether `id` is a candidate of this launch on this adapter. */
function fits(gpu: Gpu, id: string, shape: Parameters<typeof matmulCandidates>[1]): boolean {
  return matmulCandidates(gpu, shape).includes(id);
}

/**
 * Records every variant × form × dtype × shape × epilogue (`c = α·x·Wᵀ`, `c += α·…`,
 * `c = r + α·…`) plus batched products and weight row ranges, skipping combinations a variant
 * does not fit (e.g. `sgemv` beyond x·Wᵀ with M ≤ 4).
 */
function recordSweep(
  b: Batch,
  variants: readonly string[],
  shapes: MatmulCheckOptions["shapes"],
): void {
  const gpu = b.gpu;
  let seed = 1;
  for (const form of ["nt", "nn", "tn"] as const) {
    for (const [m, n, k] of shapes?.[form] ?? []) {
      for (const dtype of form === "tn" ? ["f32"] as const : ["f32", "bf16"] as const) {
        const x = randomArray(m * k, seed++), w = randomArray(n * k, seed++);
        const r = randomArray(m * n, seed++);
        const tx = b.tensor(x, form === "tn" ? [k, m] : [m, k]);
        const tw = b.tensor(w, form === "nt" ? [n, k] : [k, n], dtype);
        const tr = b.tensor(r, [m, n]);
        const wRef = dtype === "bf16" ? roundToBf16(w) : w;
        const want = form === "tn"
          ? matmulTransARef(x, w, { m, n, k })
          : matmulRef(x, wRef, { m, n, k, transposeB: form === "nt" });
        const run = (
          variant: string,
          o: { out?: Tensor; accumulate?: boolean; alpha?: number; residual?: Tensor },
        ) =>
          form === "tn"
            ? matmulTransA(tx, tw, { ...o, variant })
            : matmul(tx, tw, { ...o, variant, transposeB: form === "nt" });
        for (const id of variants) {
          if (!fits(gpu, id, { form, m, n, k, bf16: dtype === "bf16" })) continue;
          const name = `${id} ${form} ${dtype} ${m}x${n}x${k}`;
          b.expect(`${name} store`, want, () => run(id, {}));
          b.expect(`${name} accumulate α=-0.5`, want.map((v, i) => r[i] - 0.5 * v), () => {
            const out = Tensor.fromArray(gpu, r, [m, n]);
            return run(id, { out, accumulate: true, alpha: -0.5 });
          });
          b.expect(
            `${name} residual α=0.25`,
            want.map((v, i) => r[i] + 0.25 * v),
            () => run(id, { residual: tr, alpha: 0.25 }),
          );
        }
      }
    }
  }
}

/**
 * Records the GeGLU-gated epilogue (`gate`) of every variant on x·Wᵀ and x·W, both dtypes:
 * `gelu_tanh(gate)·α·x·W(ᵀ)` and `gelu_tanh(gate)·(out + α·…)` with gates in the tanh region,
 * the store at the clamp (large |gate|), a batched product and a weight row range.
 */
function recordGated(
  b: Batch,
  variants: readonly string[],
  shapes: MatmulCheckOptions["shapes"],
  subgroupShapes: boolean,
): void {
  const gpu = b.gpu;
  let seed = 900;
  for (const form of ["nt", "nn"] as const) {
    const transposeB = form === "nt";
    for (const [m, n, k] of shapes?.[form] ?? []) {
      for (const dtype of ["f32", "bf16"] as const) {
        const x = randomArray(m * k, seed++), w = randomArray(n * k, seed++);
        const r = randomArray(m * n, seed++);
        const g = gateArray(m * n, seed++), gc = gateArray(m * n, seed, true);
        const tx = b.tensor(x, [m, k]), tw = b.tensor(w, transposeB ? [n, k] : [k, n], dtype);
        const tg = b.tensor(g, [m, n]), tgc = b.tensor(gc, [m, n]);
        const wRef = dtype === "bf16" ? roundToBf16(w) : w;
        const ref = (o: { gate: ArrayLike<number>; acc?: ArrayLike<number>; alpha: number }) =>
          matmulRef(x, wRef, { m, n, k, transposeB, ...o });
        const store = ref({ gate: g, alpha: 0.75 });
        const acc = ref({ gate: g, acc: r, alpha: -0.5 });
        const clamp = ref({ gate: gc, alpha: 1 });
        for (const id of variants) {
          if (!fits(gpu, id, { form, m, n, k, bf16: dtype === "bf16" })) continue;
          const name = `${id} ${form} ${dtype} ${m}x${n}x${k} gate`;
          const o = { variant: id, transposeB };
          b.expect(
            `${name} store α=0.75`,
            store,
            () => matmul(tx, tw, { ...o, gate: tg, alpha: 0.75 }),
          );
          b.expect(`${name} accumulate α=-0.5`, acc, () => {
            const out = Tensor.fromArray(gpu, r, [m, n]);
            return matmul(tx, tw, { ...o, out, accumulate: true, alpha: -0.5, gate: tg });
          });
          b.expect(`${name} clamp`, clamp, () => matmul(tx, tw, { ...o, gate: tgc }));
        }
      }
    }
  }
  // A batched product (the gate indexed like the output's batches) and rows [lo, hi) of W.
  const batch = 2;
  const [m, n, k] = subgroupShapes ? [3, 19, 37] : [5, 19, 37];
  const x = randomArray(batch * m * k, seed++), w = randomArray(batch * n * k, seed++);
  const g = gateArray(batch * m * n, seed++);
  const tx = b.tensor(x, [batch, m, k]), tg = b.tensor(g, [batch, m, n]);
  const [lo, hi] = [4, 15];
  const gRows = gateArray(m * (hi - lo), seed++);
  const tgRows = b.tensor(gRows, [m, hi - lo]);
  const tx2 = b.tensor(x.subarray(0, m * k), [m, k]);
  for (const form of ["nt", "nn"] as const) {
    const transposeB = form === "nt";
    for (const dtype of ["f32", "bf16"] as const) {
      const tw = b.tensor(w, transposeB ? [batch, n, k] : [batch, k, n], dtype);
      const wRef = dtype === "bf16" ? roundToBf16(w) : w;
      const want = matmulRef(x, wRef, { batch, m, n, k, transposeB, wBatched: true, gate: g });
      const tw2 = b.tensor(w.subarray(0, n * k), [n, k], dtype);
      const full = matmulRef(x, wRef, { m, n, k });
      const rows = Array.from(
        { length: m * (hi - lo) },
        (_, i) => full[Math.floor(i / (hi - lo)) * n + lo + (i % (hi - lo))],
      ).map((v, i) => geluTanhRef(gRows[i]) * v);
      for (const id of variants) {
        if (fits(gpu, id, { form, m, n, k, bf16: dtype === "bf16", batch })) {
          b.expect(
            `${id} batched ${form} ${dtype} ${batch}x${m}x${n}x${k} gate`,
            want,
            () => matmul(tx, tw, { variant: id, transposeB, gate: tg }),
          );
        }
        if (transposeB && fits(gpu, id, { form, m, n: hi - lo, k, bf16: dtype === "bf16" })) {
          b.expect(
            `${id} wRows [${lo}, ${hi}) ${dtype} ${m}x${n}x${k} gate`,
            rows,
            () => matmul(tx2, tw2, { variant: id, wRows: [lo, hi], gate: tgRows }),
          );
        }
      }
    }
  }
}

/** Batched products (rank-3 W, equal leading dims of aᵀ·b) and a weight row range. */
function recordBatchAndRows(b: Batch, variants: readonly string[], subgroupShapes: boolean): void {
  const gpu = b.gpu;
  let seed = 500;
  const batch = 2;
  const shapes: MatmulCase[] = subgroupShapes
    ? [[3, 19, 37], [4, 20, 36]]
    : [[5, 19, 37], [8, 20, 36]];
  for (const [m, n, k] of shapes) {
    const x = randomArray(batch * m * k, seed++), w = randomArray(batch * n * k, seed++);
    for (const form of ["nt", "nn", "tn"] as const) {
      for (const dtype of form === "tn" ? ["f32"] as const : ["f32", "bf16"] as const) {
        const tx = b.tensor(x, form === "tn" ? [batch, k, m] : [batch, m, k]);
        const tw = b.tensor(w, form === "nt" ? [batch, n, k] : [batch, k, n], dtype);
        const wRef = dtype === "bf16" ? roundToBf16(w) : w;
        const want = form === "tn"
          ? matmulTransARef(x, w, { batch, m, n, k })
          : matmulRef(x, wRef, { batch, m, n, k, transposeB: form === "nt", wBatched: true });
        for (const id of variants) {
          if (!fits(gpu, id, { form, m, n, k, bf16: dtype === "bf16", batch })) continue;
          b.expect(
            `${id} batched ${form} ${dtype} ${batch}x${m}x${n}x${k}`,
            want,
            () =>
              form === "tn"
                ? matmulTransA(tx, tw, { variant: id })
                : matmul(tx, tw, { variant: id, transposeB: form === "nt" }),
          );
        }
      }
    }
  }
  // x·Wᵀ over rows [lo, hi) of W (the LM head's vocabulary chunks): offsets into b.
  for (const k of [37, 36]) {
    const [m, n, lo, hi] = subgroupShapes ? [2, 67, 10, 50] : [5, 67, 10, 50];
    const x = randomArray(m * k, seed++), w = randomArray(n * k, seed++);
    for (const dtype of ["f32", "bf16"] as const) {
      const tx = b.tensor(x, [m, k]), tw = b.tensor(w, [n, k], dtype);
      const full = matmulRef(x, dtype === "bf16" ? roundToBf16(w) : w, { m, n, k });
      const want = Array.from(
        { length: m * (hi - lo) },
        (_, i) => full[Math.floor(i / (hi - lo)) * n + lo + (i % (hi - lo))],
      );
      for (const id of variants) {
        if (!fits(gpu, id, { form: "nt", m, n: hi - lo, k, bf16: dtype === "bf16" })) continue;
        b.expect(
          `${id} wRows [${lo}, ${hi}) ${dtype} ${m}x${n}x${k}`,
          want,
          () => matmul(tx, tw, { variant: id, wRows: [lo, hi] }),
        );
      }
    }
  }
}

/** The variants a check forces (default: every id without `sg` ones) and its batch. */
function checkBatch(
  gpu: Gpu,
  options: MatmulCheckOptions,
): { variants: readonly string[]; b: Batch } {
  const variants = options.variants ??
    MATMUL_VARIANTS.filter((id) => !SUBGROUP_VARIANTS.includes(id));
  return { variants, b: new Batch(gpu, MATMUL_TOLERANCE * (options.toleranceScale ?? 1)) };
}

/**
 * Forces each variant on every form, dtype, epilogue, odd and aligned shape, batched products
 * and weight row ranges, and compares with the float64 references (one GPU wait).
 *
 * @param gpu The runtime (variants it cannot run are skipped: check `matmulCandidates`).
 * @param options Variants, shapes, tolerance scale.
 * @returns One result per launch.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { matmulVariantChecks } from "./_matmul_variant_checks.ts";
 * const gpu = await Gpu.create();
 * const results = await matmulVariantChecks(gpu, { variants: ["reg"], shapes: { nt: [[3, 5, 7]] } });
 * console.log(results.every((r) => r.ok)); // true
 * gpu.destroy();
 * ```
 */
export async function matmulVariantChecks(
  gpu: Gpu,
  options: MatmulCheckOptions = {},
): Promise<CheckResult[]> {
  const { variants, b } = checkBatch(gpu, options);
  recordSweep(b, variants, options.shapes ?? VARIANT_SHAPES);
  recordBatchAndRows(b, variants, false);
  return await b.results();
}

/**
 * Forces each variant with the GeGLU-gated epilogue (`matmul`'s `gate`) on x·Wᵀ and x·W, both
 * dtypes of W, store and accumulate, odd and aligned shapes, gates in the tanh region and at
 * the clamp, a batched product and a weight row range, against `matmulRef` with its gate
 * (float64; one GPU wait).
 *
 * @param gpu The runtime (variants it cannot run are skipped: check `matmulCandidates`).
 * @param options Variants (default: every id without `sg` ones), shapes (`nt`, `nn`), tolerance.
 * @returns One result per launch.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { matmulGateChecks } from "./_matmul_variant_checks.ts";
 * const gpu = await Gpu.create();
 * const results = await matmulGateChecks(gpu, { variants: ["reg"], shapes: { nt: [[3, 5, 7]] } });
 * console.log(results.every((r) => r.ok)); // true
 * gpu.destroy();
 * ```
 */
export async function matmulGateChecks(
  gpu: Gpu,
  options: MatmulCheckOptions = {},
): Promise<CheckResult[]> {
  const { variants, b } = checkBatch(gpu, options);
  const { nt, nn } = options.shapes ?? VARIANT_SHAPES;
  recordGated(b, variants, { nt, nn }, false);
  return await b.results();
}

/**
 * x·Wᵀ with K = 6912 and 7001 (f32) for each variant: blocked f32 partial sums keep the error
 * within the tolerance where one running sum would not.
 *
 * @param gpu The runtime.
 * @param options Variants (default: every id without `sg` ones), shapes (`nt` only), tolerance.
 * @returns One result per variant and shape.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { longKChecks } from "./_matmul_variant_checks.ts";
 * const gpu = await Gpu.create();
 * console.log((await longKChecks(gpu, { variants: ["reg"] })).every((r) => r.ok)); // true
 * gpu.destroy();
 * ```
 */
export async function longKChecks(
  gpu: Gpu,
  options: MatmulCheckOptions = {},
): Promise<CheckResult[]> {
  const { variants, b } = checkBatch(gpu, options);
  for (const [m, n, k] of options.shapes?.nt ?? LONG_K_SHAPES) {
    const x = randomArray(m * k, k), w = randomArray(n * k, k + 1);
    const tx = b.tensor(x, [m, k]), tw = b.tensor(w, [n, k]);
    const want = matmulRef(x, w, { m, n, k });
    for (const id of variants) {
      if (!fits(gpu, id, { form: "nt", m, n, k })) continue;
      b.expect(`${id} K=${k} ${m}x${n}`, want, () => matmul(tx, tw, { variant: id }));
    }
  }
  return await b.results();
}

/**
 * Every subgroup variant ({@linkcode SUBGROUP_VARIANTS}) forced on its odd and aligned shapes,
 * dtypes, epilogues (the GeGLU-gated ones too), batched products, weight row ranges and
 * K = 6912 / 7001, against the
 * float64 references. For adapters with `subgroups` (Chromium's SwiftShader; Deno's adapters
 * here have none).
 *
 * @param gpu A runtime whose adapter offers `subgroups`.
 * @param options Tolerance scale (variants and shapes are fixed).
 * @returns One result per launch (every subgroup variant runs at least once).
 * @throws {Error} when the adapter lacks `subgroups` (nothing could be checked).
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { matmulSubgroupChecks } from "./_matmul_variant_checks.ts";
 * const gpu = await Gpu.create();
 * if (gpu.features.subgroups) console.log((await matmulSubgroupChecks(gpu)).every((r) => r.ok));
 * gpu.destroy();
 * ```
 */
export async function matmulSubgroupChecks(
  gpu: Gpu,
  options: Pick<MatmulCheckOptions, "toleranceScale"> = {},
): Promise<CheckResult[]> {
  if (!gpu.features.subgroups) {
    throw new Error(`matmulSubgroupChecks: ${gpu.adapter.description} lacks the subgroups feature`);
  }
  const b = new Batch(gpu, MATMUL_TOLERANCE * (options.toleranceScale ?? 1));
  recordSweep(b, SUBGROUP_VARIANTS, { nt: SUBGROUP_SHAPES });
  recordBatchAndRows(b, SUBGROUP_VARIANTS, true);
  recordGated(b, SUBGROUP_VARIANTS, { nt: SUBGROUP_SHAPES }, true);
  const long = LONG_K_SHAPES.map(([, n, k]): MatmulCase => [4, n, k]);
  const results = [
    ...(await b.results()),
    ...(await longKChecks(gpu, { ...options, variants: SUBGROUP_VARIANTS, shapes: { nt: long } })),
  ];
  for (const id of SUBGROUP_VARIANTS) {
    if (!results.some((r) => r.name.startsWith(`${id} `))) {
      results.push({
        name: `${id} ran`,
        maxError: Infinity,
        tolerance: 0,
        ok: false,
        detail: "never ran",
      });
    }
  }
  return results;
}

/**
 * Launches every matmul variant this adapter can run on small odd and aligned shapes of each
 * form and dtype (no checks): the pipelines a tuner may choose, for the kernel-variant
 * catalogue's completeness test.
 *
 * @param gpu The runtime.
 * @param variants The variants (default every id of `MATMUL_VARIANTS`).
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { matmulVariantWorkload } from "./_matmul_variant_checks.ts";
 * const gpu = await Gpu.create();
 * await matmulVariantWorkload(gpu, ["reg", "splitk4"]);
 * console.log(gpu.pipelines.compiled.some((p) => p.name === "matmul_split_reduce")); // true
 * gpu.destroy();
 * ```
 */
export async function matmulVariantWorkload(
  gpu: Gpu,
  variants: readonly string[] = MATMUL_VARIANTS,
): Promise<void> {
  const owned: Tensor[] = [];
  const t = (shape: number[], dtype: "f32" | "bf16" = "f32") => {
    const x = Tensor.zeros(gpu, shape, dtype);
    owned.push(x);
    return x;
  };
  for (const [m, k] of [[3, 5], [4, 8], [5, 8]]) {
    for (const id of variants) {
      for (const dtype of ["f32", "bf16"] as const) {
        if (fits(gpu, id, { form: "nt", m, n: 8, k, bf16: dtype === "bf16" })) {
          owned.push(matmul(t([m, k]), t([8, k], dtype), { variant: id }));
        }
        if (fits(gpu, id, { form: "nn", m, n: 8, k, bf16: dtype === "bf16" })) {
          owned.push(matmul(t([m, k]), t([k, 8], dtype), { variant: id, transposeB: false }));
        }
      }
      if (fits(gpu, id, { form: "tn", m, n: 8, k })) {
        owned.push(matmulTransA(t([k, m]), t([k, 8]), { variant: id }));
      }
    }
  }
  await gpu.sync();
  for (const x of owned) x.dispose();
}
