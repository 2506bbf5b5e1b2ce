/**
 * Shared by the tests of `rmsNorm`'s fused epilogues (`rope`, `next`): the float64 references
 * composed from `rms_norm_ref.ts` and `rope_ref.ts`, and the workload that compiles every fused
 * code path (for `tests/kernel_variants_test.ts`).
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";
import { rmsNorm, type RmsNormVariant } from "../kernels/rms_norm.ts";
import { rmsNormRef } from "../kernels/rms_norm_ref.ts";
import { RopeTable } from "../kernels/rope.ts";
import { ropeRef } from "../kernels/rope_ref.ts";
import { Tensor } from "../kernels/tensor.ts";
import { randomArray } from "./_helpers.ts";

/**
 * float64 `rope(norm(x))` of x `[T, H, headDim]`.
 *
 * @param x The input.
 * @param w The norm's weight `[headDim]` (bf16-rounded for bf16 weights).
 * @param options eps, heads, RoPE base and one position per token.
 * @returns The output and the per-row `1 / rms`.
 */
export function normRopeRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  options: { eps: number; heads: number; base: number; positions: ArrayLike<number> },
): { y: Float64Array; rstd: Float64Array } {
  const norm = rmsNormRef(x, w, { eps: options.eps });
  const y = ropeRef(norm.y, options.positions, {
    numHeads: options.heads,
    headDim: w.length,
    base: options.base,
  });
  return { y, rstd: norm.rstd };
}

/**
 * float64 `r = residual + norm(x)` (or `norm(x)`), then `norm(r)` with the next weight.
 *
 * @param x The input `[rows, D]`.
 * @param w The first weight, `wNext` the second (bf16-rounded for bf16 weights).
 * @param options eps, the optional residual and the next weight.
 * @returns Both outputs and both per-row `1 / rms`.
 */
export function normNextRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  options: { eps: number; residual?: ArrayLike<number>; wNext: ArrayLike<number> },
): { y: Float64Array; rstd: Float64Array; next: Float64Array; rstdNext: Float64Array } {
  const first = rmsNormRef(x, w, { eps: options.eps, residual: options.residual });
  const second = rmsNormRef(first.y, options.wNext, { eps: options.eps });
  return { y: first.y, rstd: first.rstd, next: second.y, rstdNext: second.rstd };
}

/**
 * Every code path of the fused epilogues on small odd shapes: both epilogues × weight dtype ×
 * output aliasing × rstd, for the given variants (the kernel-variant catalogue's check).
 *
 * @param gpu The runtime.
 * @param variants The variants to force (e.g. `row`, `workgroup`).
 */
export async function rmsNormFusionWorkload(
  gpu: Gpu,
  variants: readonly RmsNormVariant[] = ["row", "workgroup"],
): Promise<void> {
  let seed = 900;
  const made: (Tensor | RopeTable)[] = [];
  const t = (shape: number[], dtype: "f32" | "bf16" = "f32") => {
    const n = shape.reduce((a, b) => a * b, 1);
    const tensor = Tensor.fromArray(gpu, randomArray(n, seed++), shape, dtype);
    made.push(tensor);
    return tensor;
  };
  const table = RopeTable.create(gpu, { base: 1e4, headDim: 6, maxPositions: 16 });
  const positions = Tensor.fromArray(gpu, Int32Array.from([9, 2, 15]));
  made.push(table, positions);
  for (const variant of variants) {
    for (const dtype of ["f32", "bf16"] as const) {
      const w = t([6], dtype), wNext = t([6], dtype);
      for (const withRstd of [false, true]) {
        const rstd = () => (withRstd ? t([3]) : undefined);
        const rope = { table, positions };
        rmsNorm(t([3, 2, 6]), w, { variant, rope, rstd: withRstd ? t([6]) : undefined });
        const q = t([3, 2, 6]);
        rmsNorm(q, w, { variant, rope, out: q, rstd: withRstd ? t([6]) : undefined });
        const next = () => ({ w: wNext, out: t([3, 6]), rstd: rstd() });
        const x = t([3, 6]), h = t([3, 6]);
        rmsNorm(t([3, 6]), w, { variant, rstd: rstd(), next: next() });
        rmsNorm(x, w, { variant, rstd: rstd(), out: x, next: next() });
        rmsNorm(t([3, 6]), w, { variant, rstd: rstd(), residual: t([3, 6]), next: next() });
        rmsNorm(t([3, 6]), w, { variant, rstd: rstd(), residual: h, out: h, next: next() });
        rmsNorm(x, w, { variant, rstd: rstd(), residual: t([3, 6]), out: x, next: next() });
      }
    }
  }
  await gpu.sync();
  for (const m of made) m.dispose();
}
