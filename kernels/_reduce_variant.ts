/**
 * Variant selection and the subgroup reduction WGSL shared by the reduction kernels (RMSNorm,
 * log-probs, the global gradient norm, sampling).
 *
 * A launcher builds a `TuningJob` (candidates, the table's choice first) and asks
 * {@linkcode pickVariant}: a forced `variant` is checked against the candidates, otherwise the
 * tuner chooses.
 *
 * The subgroup reductions assume neither a subgroup size (4 to 128 exist) nor how invocations
 * are laid out in subgroups. A workgroup-wide reduction of one value per invocation is two
 * subgroup steps with one barrier between them:
 * 1. `subgroupOp(v)`; one elected invocation per subgroup stores the result in its own slot
 *    `buf[lid]`, every other invocation stores the identity;
 * 2. each subgroup reads all `wg` slots, split over its active invocations by their rank
 *    (`subgroupExclusiveAdd(1u)`, so partial subgroups are fine), and combines them with
 *    `subgroupOp` again. Every subgroup ends with the workgroup's result, without a second
 *    barrier (the same operations on the same slots, so the same value in practice).
 *
 * @module
 */

import { ShapeError } from "./errors.ts";
import type { Gpu } from "./gpu.ts";
import type { TuningJob } from "./tuning.ts";

/** Id of the subgroup variant in every reduction family. */
export const SUBGROUP_VARIANT = "sg";

/**
 * The variant one launch runs.
 *
 * @param gpu The runtime (its tuner chooses when nothing is forced).
 * @param kernel Kernel name for the error.
 * @param forced The launcher's `variant` option.
 * @param job The tuning question; its candidates are the valid ids, the table's choice first.
 * @returns A candidate id.
 * @throws {ShapeError} when `forced` is not a candidate, naming the valid ids.
 */
export function pickVariant(
  gpu: Gpu,
  kernel: string,
  forced: string | undefined,
  job: TuningJob,
): string {
  if (forced === undefined) return gpu.tuner.choose(job);
  if (!job.candidates.includes(forced)) {
    throw new ShapeError(
      kernel,
      `variant must be one of ${job.candidates.join(", ")} for this shape on this adapter ` +
        `(subgroups ${gpu.features.subgroups ? "on" : "off"}), got ${forced}`,
    );
  }
  return forced;
}

/**
 * Orders a family's ids for an adapter: `today` first on fallback (software) adapters, `sg`
 * first on other adapters that offer subgroups, `sg` left out where subgroups are missing.
 *
 * @param gpu The runtime.
 * @param ids The family's non-subgroup ids valid for the shape, the adapter's table choice first.
 * @returns The candidates.
 */
export function withSubgroupVariant(gpu: Gpu, ids: readonly string[]): readonly string[] {
  if (!gpu.features.subgroups) return Object.freeze([...ids]);
  return Object.freeze(
    gpu.adapter.isFallbackAdapter ? [...ids, SUBGROUP_VARIANT] : [SUBGROUP_VARIANT, ...ids],
  );
}

/** WGSL: the directive a subgroup kernel starts with. */
export const SG_ENABLE = "enable subgroups;";

/**
 * WGSL: `sg_rank` (rank among the subgroup's active invocations) and `sg_count` (their number),
 * set by `sg_init()`, which must run in uniform control flow before any reduction.
 */
export const SG_STATE = `
var<private> sg_rank: u32;  // rank among this subgroup's active invocations
var<private> sg_count: u32; // active invocations in this subgroup
fn sg_init() {
  sg_rank = subgroupExclusiveAdd(1u);
  sg_count = subgroupAdd(1u);
}`;

/** A reduction operator with its WGSL subgroup builtin. */
export type SubgroupOp = "add" | "max" | "min";

const SUBGROUP_FN: Record<SubgroupOp, string> = {
  add: "subgroupAdd",
  max: "subgroupMax",
  min: "subgroupMin",
};

/**
 * @param op The operator.
 * @param type `u32` or `f32`.
 * @returns The WGSL identity of `op` (−3e38 / 3e38 stand in for ∓∞: finite, as Tint wants).
 */
function identity(op: SubgroupOp, type: "u32" | "f32"): string {
  if (op === "add") return type === "u32" ? "0u" : "0.0";
  if (type === "u32") return op === "max" ? "0u" : "0xffffffffu";
  return op === "max" ? "-3.0e38" : "3.0e38";
}

/**
 * WGSL combining `a` and `b` with `op`.
 *
 * @param op The operator.
 * @param a One operand.
 * @param b The other.
 * @returns The expression.
 */
export function combine(op: SubgroupOp, a: string, b: string): string {
  return op === "add" ? `${a} + ${b}` : `${op}(${a}, ${b})`;
}

/** What {@linkcode subgroupReducer} builds. */
export interface SubgroupReducer {
  /** The WGSL function's name. */
  readonly name: string;
  /** `u32` or `f32`. */
  readonly type: "u32" | "f32";
  /** The operator. */
  readonly op: SubgroupOp;
  /** A `var<workgroup>` array of at least `wg` elements of `type`, declared by the caller. */
  readonly buf: string;
  /** Invocations per workgroup. */
  readonly wg: number;
}

/**
 * WGSL function `name(lid, v) -> type`: the workgroup-wide reduction of `v` (see the module
 * doc), the same value in every invocation (not uniform to the WGSL analysis). It starts with
 * the caller's uniform control flow, needs `SG_STATE` and `sg_init()`, and leaves `buf` being
 * read: put a barrier between it and the next write to `buf`.
 *
 * @param r Name, type, operator, scratch array and workgroup size.
 * @returns The WGSL function.
 */
export function subgroupReducer(r: SubgroupReducer): string {
  const fn = SUBGROUP_FN[r.op];
  const id = identity(r.op, r.type);
  return `
fn ${r.name}(lid: u32, v: ${r.type}) -> ${r.type} {
  ${r.buf}[lid] = select(${id}, ${fn}(v), subgroupElect());
  workgroupBarrier();
  var a = ${id};
  for (var j = sg_rank; j < ${r.wg}u; j += sg_count) { a = ${combine(r.op, "a", `${r.buf}[j]`)}; }
  return ${fn}(a);
}`;
}
