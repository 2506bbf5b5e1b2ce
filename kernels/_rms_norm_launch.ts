/**
 * Launch choices shared by the RMSNorm forward and backward launchers: which strategy maps
 * rows to invocations and the workgroup size each strategy uses.
 *
 * @module
 */

import { ShapeError } from "./errors.ts";
import type { Gpu } from "./gpu.ts";

/**
 * How rows map to invocations: `workgroup` = one workgroup per row with a pairwise tree across it
 * (coalesced, for real GPUs); `row` = one invocation per row with eight interleaved partial sums
 * (no barriers; ~4× faster on CPU adapters such as llvmpipe, where barriers are expensive).
 * `auto` picks `row` on fallback (software) adapters and `workgroup` elsewhere.
 */
export type RmsNormStrategy = "auto" | "row" | "workgroup";

/** Invocations per workgroup of the `row` strategy. */
const ROW_WG = 64;

/** The resolved strategy of one launch. */
export interface RowLaunch {
  /** `row` or `workgroup` (never `auto`). */
  readonly strategy: "row" | "workgroup";
  /** Invocations per workgroup (the template's `wg`). */
  readonly wg: number;
  /** Rows one workgroup handles (the `grid1d` group size). */
  readonly rowsPerGroup: number;
}

/**
 * Checks the requested strategy and resolves `auto` for the adapter.
 *
 * @param gpu The runtime (its adapter decides `auto`).
 * @param request Kernel name (for the error), the requested strategy and the row width D.
 * @returns The strategy, workgroup size and rows per workgroup.
 * @throws {ShapeError} on an unknown strategy.
 */
export function rowLaunch(
  gpu: Gpu,
  request: { readonly kernel: string; readonly strategy?: RmsNormStrategy; readonly d: number },
): RowLaunch {
  const requested = request.strategy ?? "auto";
  if (!["auto", "row", "workgroup"].includes(requested)) {
    throw new ShapeError(
      request.kernel,
      `strategy must be auto, row or workgroup, got ${requested}`,
    );
  }
  const strategy = requested === "auto"
    ? (gpu.adapter.isFallbackAdapter ? "row" : "workgroup")
    : requested as "row" | "workgroup";
  if (strategy === "row") return { strategy, wg: ROW_WG, rowsPerGroup: ROW_WG };
  // One workgroup per row; ~8 values per invocation keeps the tree short and the lanes busy.
  let wg = 32;
  while (wg < 256 && wg * 8 < request.d) wg *= 2;
  return { strategy, wg, rowsPerGroup: 1 };
}
