/**
 * Launch choices shared by the RMSNorm forward and backward launchers: the variants that map
 * rows to invocations, which of them are valid on an adapter, and the workgroup size of each.
 *
 * @module
 */

import { pickVariant, withSubgroupVariant } from "./_reduce_variant.ts";
import { pow2Bucket } from "./tuning.ts";
import type { Gpu } from "./gpu.ts";
import type { TuningBench } from "./tuning.ts";

/**
 * Every RMSNorm variant: `row` = one invocation per row with eight interleaved partial sums (no
 * barriers; ~4× faster on CPU adapters such as llvmpipe, where barriers are expensive);
 * `workgroup` = one workgroup per row with a pairwise tree across it (coalesced, for real
 * GPUs); `sg` = one workgroup per row whose sum is two subgroup reductions and one barrier
 * (adapters with `subgroups`).
 */
export const RMS_NORM_VARIANTS: readonly ["row", "workgroup", "sg"] = Object.freeze(
  ["row", "workgroup", "sg"] as const,
);

/** An RMSNorm variant id (see {@linkcode RMS_NORM_VARIANTS}). */
export type RmsNormVariant = typeof RMS_NORM_VARIANTS[number];

/** Invocations per workgroup of the `row` variant. */
const ROW_WG = 64;

/** The rows and the row width of an RMSNorm launch. */
export interface RmsNormShape {
  /** Rows (numel / D). */
  readonly rows: number;
  /** Row width D. */
  readonly d: number;
}

/**
 * The RMSNorm variants valid on this adapter, the deterministic table's choice first: `row` on
 * fallback (software) adapters, `sg` on other adapters with subgroups, else `workgroup`.
 *
 * @param gpu The runtime (adapter kind and features).
 * @param _shape The launch's rows and width (every variant takes every shape).
 * @returns Variant ids.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { rmsNormCandidates } from "./rms_norm.ts";
 * const gpu = await Gpu.create();
 * console.log(rmsNormCandidates(gpu, { rows: 7, d: 1152 })); // e.g. ["row", "workgroup"] on llvmpipe
 * gpu.destroy();
 * ```
 */
export function rmsNormCandidates(gpu: Gpu, _shape: RmsNormShape): readonly RmsNormVariant[] {
  const ids = gpu.adapter.isFallbackAdapter ? ["row", "workgroup"] : ["workgroup", "row"];
  return withSubgroupVariant(gpu, ids) as readonly RmsNormVariant[];
}

/** The resolved variant of one launch. */
export interface RowLaunch {
  /** The variant id (the templates' `strategy` constant). */
  readonly strategy: RmsNormVariant;
  /** Invocations per workgroup (the template's `wg`). */
  readonly wg: number;
  /** Rows one workgroup handles (the `grid1d` group size). */
  readonly rowsPerGroup: number;
}

/**
 * The workgroup size and rows per workgroup of a variant.
 *
 * @param variant The variant.
 * @param d The row width.
 * @returns The launch.
 */
export function rowLaunchOf(variant: RmsNormVariant, d: number): RowLaunch {
  if (variant === "row") return { strategy: variant, wg: ROW_WG, rowsPerGroup: ROW_WG };
  // One workgroup per row; ~8 values per invocation keeps the reduction short, lanes busy.
  let wg = 32;
  while (wg < 256 && wg * 8 < d) wg *= 2;
  return { strategy: variant, wg, rowsPerGroup: 1 };
}

/** What {@linkcode rowLaunch} resolves. */
export interface RowLaunchRequest extends RmsNormShape {
  /** Kernel name (errors) and tuning family. */
  readonly kernel: string;
  /** The forced variant, if any. */
  readonly variant?: string;
  /** What else splits the shape class (weight dtype). */
  readonly shapeClass: string;
  /** Scratch inputs of this shape class for the tuner. */
  readonly prepare: () => TuningBench;
}

/**
 * Checks a forced variant or asks the tuner, and sizes the launch.
 *
 * @param gpu The runtime.
 * @param request Kernel, forced variant, shape and the tuner's bench.
 * @returns The variant, workgroup size and rows per workgroup.
 * @throws {ShapeError} on a variant that is unknown or not valid on this adapter.
 */
export function rowLaunch(gpu: Gpu, request: RowLaunchRequest): RowLaunch {
  const { kernel, rows, d } = request;
  const variant = pickVariant(gpu, kernel, request.variant, {
    family: kernel,
    shapeClass: `d${d}:r${pow2Bucket(rows)}:${request.shapeClass}`,
    candidates: rmsNormCandidates(gpu, { rows, d }),
    prepare: request.prepare,
  });
  return rowLaunchOf(variant as RmsNormVariant, d);
}
