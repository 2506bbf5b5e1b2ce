/**
 * AdamW on the GPU, with optax semantics (`optax.chain(optax.clip_by_global_norm(maxNorm),
 * optax.adamw(lr, b1, b2, eps, weight_decay))`), in three kernels:
 *
 * 1. `gradSumSquaresPartials`: per gradient tensor part, each workgroup sums the squares of a
 *    fixed contiguous chunk (strided per invocation, then a pairwise tree) into its own slot of
 *    a partials buffer. Fixed chunks and fixed slots make the result deterministic.
 * 2. `gradNormFinalize`: one workgroup sums the partials in a fixed order and writes the stats
 *    vector `[Σg², ‖g‖, applied, badGuard]` (see {@linkcode ADAMW_STATS}). `applied` is 1 when
 *    Σg², ‖g‖ and every value of an optional guard tensor (e.g. the loss) are finite, else 0.
 * 3. `adamwUpdate`: per parameter tensor part, reads the stats and, when `applied` is 1, clips the
 *    gradient in-shader (optax: `g` if `‖g‖ < maxNorm`, else `(g / ‖g‖) · maxNorm`) and applies
 *    `m ← b1·m + (1−b1)·g`, `v ← b2·v + (1−b2)·g²`, `m̂ = m/(1−b1^t)`, `v̂ = v/(1−b2^t)`,
 *    `p ← p − lr·(m̂/(√v̂ + eps) + wd·p)`. When `applied` is 0 nothing is written: the skip is
 *    decided on the GPU, so no readback is needed before the update.
 *
 * The two reductions (1, 2) come in variants ({@linkcode GRAD_NORM_VARIANTS}, the `variant`
 * option, else the tuner's choice among {@linkcode gradGlobalNormCandidates}): `reg`, pairwise
 * trees in workgroup memory — the table's choice on fallback adapters and without subgroups;
 * `sg`, `subgroupAdd` with elected per-subgroup sums in workgroup memory and a second
 * `subgroupAdd` (one barrier; no subgroup size assumed) — the table's choice on other adapters
 * with `subgroups`. Both keep the chunks, the partials and the per-invocation order.
 *
 * Nothing here reads back; the stats buffer is read later with the loss (one wait). WGSL in
 * `_adamw_wgsl.ts`; the float64 reference (optax's formulas) in `adamw_ref.ts`.
 *
 * @module
 */

import { expectDtype, grid1d, Uniforms } from "./_launch.ts";
import {
  finalizeSource,
  REDUCE_CHUNK,
  type ReduceConstants,
  sumSquaresSource,
  UPDATE_CHUNK,
  updateSource,
} from "./_adamw_wgsl.ts";
import { pickVariant, withSubgroupVariant } from "./_reduce_variant.ts";
import { pow2Bucket } from "./tuning.ts";
import { ShapeError } from "./errors.ts";
import type { Gpu } from "./gpu.ts";
import { shapeString, Tensor } from "./tensor.ts";

/** Every variant of the global-norm reductions: `reg` (trees) and `sg` (subgroup sums). */
export const GRAD_NORM_VARIANTS: readonly ["reg", "sg"] = Object.freeze(["reg", "sg"] as const);

/**
 * The global-norm variants valid on this adapter, the deterministic table's choice first:
 * `reg` on fallback (software) adapters and without subgroups, else `sg`.
 *
 * @param gpu The runtime (adapter kind and features).
 * @param _shape The gradients' total element count (every variant takes every size).
 * @returns Variant ids.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { gradGlobalNormCandidates } from "./adamw.ts";
 * const gpu = await Gpu.create();
 * console.log(gradGlobalNormCandidates(gpu, { numel: 1000 })); // ["reg"] on llvmpipe
 * gpu.destroy();
 * ```
 */
export function gradGlobalNormCandidates(
  gpu: Gpu,
  _shape: { readonly numel: number },
): readonly string[] {
  return withSubgroupVariant(gpu, ["reg"]);
}

/** Elements of the tuner's scratch gradient at most. */
const SCRATCH_NUMEL = 1 << 22;

/** Indices into the stats vector written by {@linkcode gradGlobalNorm}. */
export const ADAMW_STATS: Readonly<{
  sumSquares: 0;
  norm: 1;
  applied: 2;
  badGuard: 3;
  length: 4;
}> = Object.freeze({ sumSquares: 0, norm: 1, applied: 2, badGuard: 3, length: 4 });

/**
 * Number of f32 partial sums {@linkcode gradGlobalNorm} needs for these gradients.
 *
 * @param grads The gradient tensors.
 * @returns The partials buffer length (≥ 1).
 */
export function gradNormPartialCount(grads: readonly Tensor[]): number {
  let count = 0;
  for (const t of grads) {
    for (const part of t.parts) count += Math.ceil(part.bytes / 4 / REDUCE_CHUNK);
  }
  return Math.max(count, 1);
}

/** Options of {@linkcode gradGlobalNorm}. */
export interface GradGlobalNormOptions {
  /** Write the stats here (f32, 4 elements); default a new tensor. */
  readonly out?: Tensor;
  /** Scratch for the partial sums (f32, ≥ {@linkcode gradNormPartialCount}); default temporary. */
  readonly partials?: Tensor;
  /** f32 values that must all be finite for the step to apply (e.g. the loss). */
  readonly guard?: Tensor;
  /**
   * Forces a variant (`GRAD_NORM_VARIANTS`; one of `gradGlobalNormCandidates` here); default:
   * the tuner's choice.
   */
  readonly variant?: string;
}

/**
 * Records the global gradient norm `‖g‖ = sqrt(Σ over all tensors of Σ g²)` into a GPU stats
 * vector `[Σg², ‖g‖, applied, badGuard]` ({@linkcode ADAMW_STATS}); `applied` is 1 when Σg²,
 * ‖g‖ and all guard values are finite. Deterministic: fixed chunks, fixed summation order.
 *
 * @param grads Gradient tensors, f32, any shapes (split tensors are fine).
 * @param options Output, scratch and guard tensors.
 * @returns The stats tensor (`options.out` when given).
 * @throws {ShapeError} on wrong dtypes or sizes, or a variant not valid here.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { gradGlobalNorm } from "./adamw.ts";
 * const gpu = await Gpu.create();
 * const g = Tensor.fromArray(gpu, new Float32Array([3, 4]));
 * const stats = gradGlobalNorm([g]);
 * console.log(await stats.read()); // [25, 5, 1, 0]
 * gpu.destroy();
 * ```
 */
export function gradGlobalNorm(
  grads: readonly Tensor[],
  options: GradGlobalNormOptions = {},
): Tensor {
  const kernel = "gradGlobalNorm";
  if (grads.length === 0) throw new ShapeError(kernel, "needs at least one gradient tensor");
  grads.forEach((g, i) => expectDtype(kernel, `grads[${i}]`, g, ["f32"]));
  const gpu = grads[0].gpu;
  const count = gradNormPartialCount(grads);
  const partials = options.partials ?? Tensor.empty(gpu, [count], "f32");
  expectDtype(kernel, "partials", partials, ["f32"]);
  if (partials.numel < count || partials.parts.length !== 1) {
    throw new ShapeError(
      kernel,
      `partials must be one buffer of ≥ ${count} f32, got ${shapeString(partials.shape)}`,
    );
  }
  const out = options.out ?? Tensor.empty(gpu, [ADAMW_STATS.length], "f32");
  expectDtype(kernel, "out", out, ["f32"]);
  if (out.numel !== ADAMW_STATS.length) {
    throw new ShapeError(kernel, `out must hold 4 f32, got ${shapeString(out.shape)}`);
  }
  const guard = options.guard;
  if (guard) expectDtype(kernel, "guard", guard, ["f32"]);
  const numel = grads.reduce((n, g) => n + g.numel, 0);
  const variant = pickVariant(gpu, kernel, options.variant, {
    family: kernel,
    shapeClass: `n${pow2Bucket(numel)}`,
    candidates: gradGlobalNormCandidates(gpu, { numel }),
    prepare: () => {
      const g = Tensor.zeros(gpu, [Math.max(1, Math.min(numel, SCRATCH_NUMEL))]);
      const stats = Tensor.empty(gpu, [ADAMW_STATS.length]);
      return {
        launch: (id) => void gradGlobalNorm([g], { out: stats, variant: id }),
        dispose: () => [g, stats].forEach((t) => t.dispose()),
      };
    },
  });
  const constants: ReduceConstants = variant === "sg" ? { sg: true } : {};
  const maxGrid = gpu.limits.maxComputeWorkgroupsPerDimension;
  const reduce = gpu.pipelines.get("gradSumSquaresPartials", constants, sumSquaresSource);
  let offset = 0;
  for (const g of grads) {
    for (const part of g.parts) {
      const n = part.bytes / 4;
      const groups = Math.ceil(n / REDUCE_CHUNK);
      gpu.dispatch({
        pipeline: reduce,
        shapes: `g${shapeString(g.shape)} part rows ${part.rowStart}+${part.rows}`,
        uniforms: new Uniforms().u32(n).u32(offset).u32(groups).build(),
        buffers: [{ buffer: part.buffer, offset: 0, size: part.bytes }, partials.binding()],
        workgroups: grid1d(groups, 1, maxGrid),
      });
      offset += groups;
    }
  }
  const partialsBinding = { buffer: partials.buffer, offset: 0, size: offset * 4 || 4 };
  gpu.dispatch({
    pipeline: gpu.pipelines.get("gradNormFinalize", constants, finalizeSource),
    shapes: `${offset} partials, guard ${guard ? shapeString(guard.shape) : "none"}`,
    uniforms: new Uniforms().u32(offset).u32(guard?.numel ?? 0).build(),
    // Without a guard the partials are bound again read-only (aliasing read-only is allowed).
    buffers: [partialsBinding, guard ? guard.binding() : partialsBinding, out.binding()],
    workgroups: [1],
  });
  if (!options.partials) partials.dispose();
  return out;
}

/** What one {@linkcode adamwUpdate} reads besides the parameter (updating `m` and `v`). */
export interface AdamWUpdateInputs {
  /** Gradient, f32, same shape (and part layout) as the parameter. */
  readonly grad: Tensor;
  /** First moment, f32, same shape as the parameter (updated in place). */
  readonly m: Tensor;
  /** Second moment, f32, same shape as the parameter (updated in place). */
  readonly v: Tensor;
  /** The stats vector of {@linkcode gradGlobalNorm} over all gradients of this update. */
  readonly stats: Tensor;
}

/** Hyperparameters of one {@linkcode adamwUpdate} launch. */
export interface AdamWUpdateParams {
  /** Learning rate of this update (the schedule's value at the update count before it). */
  readonly learningRate: number;
  /** First-moment decay. */
  readonly b1: number;
  /** Second-moment decay. */
  readonly b2: number;
  /** Added to `√v̂` (outside the root; optax `eps`, `eps_root` = 0). */
  readonly eps: number;
  /** Decoupled weight decay added to the update (`wd·p`); 0 turns it off. */
  readonly weightDecay: number;
  /** 1-based update index t used for bias correction (optax `count + 1`). */
  readonly step: number;
  /** Global-norm clip threshold, or null for no clipping. */
  readonly maxGradNorm: number | null;
}

function samePartLayout(a: Tensor, b: Tensor): boolean {
  return a.parts.length === b.parts.length &&
    a.parts.every((p, i) => p.bytes === b.parts[i].bytes && p.rowStart === b.parts[i].rowStart);
}

/**
 * Records one AdamW update of one parameter tensor in place (param, m and v are overwritten),
 * skipped on the GPU when `stats[applied]` is 0.
 *
 * @param param Parameter, f32 (updated in place).
 * @param inputs Its gradient, moments (updated in place) and the update's stats vector.
 * @param hyper Learning rate, decays, eps, weight decay, step and clip threshold.
 * @throws {ShapeError} on mismatched shapes, dtypes or invalid hyperparameters.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { adamwUpdate, gradGlobalNorm } from "./adamw.ts";
 * const gpu = await Gpu.create();
 * const p = Tensor.fromArray(gpu, new Float32Array([1, 2]));
 * const g = Tensor.fromArray(gpu, new Float32Array([0.5, -0.5]));
 * const m = Tensor.zeros(gpu, [2]), v = Tensor.zeros(gpu, [2]);
 * const stats = gradGlobalNorm([g]);
 * adamwUpdate(p, { grad: g, m, v, stats }, {
 *   learningRate: 0.1, b1: 0.9, b2: 0.999, eps: 1e-8, weightDecay: 0, step: 1, maxGradNorm: null,
 * });
 * console.log(await p.read()); // ≈ [0.9, 2.1]
 * gpu.destroy();
 * ```
 */
export function adamwUpdate(
  param: Tensor,
  inputs: AdamWUpdateInputs,
  hyper: AdamWUpdateParams,
): void {
  const kernel = "adamwUpdate";
  const { grad, m, v, stats } = inputs;
  const named: [string, Tensor][] = [["param", param], ["grad", grad], ["m", m], ["v", v]];
  for (const [name, t] of named) {
    expectDtype(kernel, name, t, ["f32"]);
    if (t !== param && (t.numel !== param.numel || !samePartLayout(t, param))) {
      throw new ShapeError(
        kernel,
        `${name} must match param ${shapeString(param.shape)}, got ${shapeString(t.shape)}`,
      );
    }
  }
  expectDtype(kernel, "stats", stats, ["f32"]);
  if (stats.numel !== ADAMW_STATS.length) {
    throw new ShapeError(kernel, `stats must hold 4 f32, got ${shapeString(stats.shape)}`);
  }
  const { learningRate, b1, b2, eps, weightDecay, step, maxGradNorm } = hyper;
  const bad = (ok: boolean, what: string) => {
    if (!ok) throw new ShapeError(kernel, what);
  };
  bad(Number.isFinite(learningRate), `learningRate must be finite, got ${learningRate}`);
  bad(b1 >= 0 && b1 < 1, `b1 must be in [0, 1), got ${b1}`);
  bad(b2 >= 0 && b2 < 1, `b2 must be in [0, 1), got ${b2}`);
  bad(eps >= 0 && Number.isFinite(eps), `eps must be finite and ≥ 0, got ${eps}`);
  bad(Number.isFinite(weightDecay), `weightDecay must be finite, got ${weightDecay}`);
  bad(Number.isSafeInteger(step) && step >= 1, `step must be an integer ≥ 1, got ${step}`);
  bad(
    maxGradNorm === null || (maxGradNorm > 0 && Number.isFinite(maxGradNorm)),
    `maxGradNorm must be null or finite and > 0, got ${maxGradNorm}`,
  );
  // Bias corrections in float64 on the host, rounded once to f32 (optax computes them in f32).
  const uniforms = (n: number) =>
    new Uniforms().u32(n).f32(learningRate).f32(b1).f32(b2).f32(1 - b1).f32(1 - b2)
      .f32(1 - b1 ** step).f32(1 - b2 ** step).f32(eps).f32(weightDecay)
      .f32(maxGradNorm ?? 0).u32(maxGradNorm === null ? 0 : 1).build();
  const gpu = param.gpu;
  const pipeline = gpu.pipelines.get(kernel, {}, updateSource);
  const maxGrid = gpu.limits.maxComputeWorkgroupsPerDimension;
  param.parts.forEach((part, i) => {
    const n = part.bytes / 4;
    const bind = (t: Tensor) => ({ buffer: t.parts[i].buffer, offset: 0, size: part.bytes });
    gpu.dispatch({
      pipeline,
      shapes: `param${shapeString(param.shape)} part rows ${part.rowStart}+${part.rows}`,
      uniforms: uniforms(n),
      buffers: [bind(param), bind(grad), bind(m), bind(v), stats.binding()],
      workgroups: grid1d(n, UPDATE_CHUNK, maxGrid),
    });
  });
}
