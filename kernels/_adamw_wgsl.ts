/**
 * WGSL templates of the AdamW kernels (`adamw.ts` holds the launchers and the optax semantics):
 * the per-chunk sum of squares, the fixed-order finalize into the stats vector, and the update.
 * The two reductions come as `reg` (pairwise trees in workgroup memory) or, with the constant
 * `sg: true`, the `sg` variant (subgroup reductions, see `_reduce_variant.ts`).
 *
 * @module
 */

import { SG_ENABLE, SG_STATE, subgroupReducer } from "./_reduce_variant.ts";

/** Invocations per workgroup of the sum-of-squares kernel. */
const REDUCE_WG = 64;
/** Values each invocation of the sum-of-squares kernel adds (strided by the workgroup size). */
const REDUCE_ITEMS = 256;
/** Gradient elements per partial sum. */
export const REDUCE_CHUNK = REDUCE_WG * REDUCE_ITEMS;
const FINALIZE_WG = 256;
const UPDATE_WG = 256;
/** Elements each update invocation handles (strided by the workgroup size, so loads coalesce). */
const UPDATE_ITEMS = 4;
export const UPDATE_CHUNK = UPDATE_WG * UPDATE_ITEMS;

const WGSL_FINITE = `
fn is_finite(x: f32) -> bool {
  // subtle: by bit pattern, so no fast-math assumption can fold the test away.
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}`;

/** Constants of the reduction kernels: `sg: true` for the `sg` variant, `{}` for `reg`. */
export type ReduceConstants = Record<string, number | string | boolean>;

/**
 * WGSL: the end of a workgroup sum of `value` (f32 or u32) in `buf` (`wg` long) as `name`
 * — a pairwise tree (`reg`) or subgroup reductions (`sg`; `SG_STATE`, `sg_init()` and the
 * `name_sum` function from {@linkcode reduceHelpers}).
 */
function workgroupSum(sg: boolean, buf: string, wg: number, value: string, name: string): string {
  if (sg) return `let ${name} = ${buf}_sum(lid, ${value});`;
  return `${buf}[lid] = ${value};
  workgroupBarrier();
  for (var w = ${wg / 2}u; w > 0u; w >>= 1u) {
    if (lid < w) { ${buf}[lid] += ${buf}[lid + w]; }
    workgroupBarrier();
  }
  let ${name} = ${buf}[0];`;
}

/** WGSL module-scope helpers of the `sg` variant: the sums over the listed workgroup arrays. */
function reduceHelpers(sg: boolean, bufs: readonly [string, "f32" | "u32"][], wg: number): string {
  if (!sg) return "";
  const fns = bufs.map(([buf, type]) =>
    subgroupReducer({ name: `${buf}_sum`, type, op: "add", buf, wg })
  );
  return `${SG_STATE}${fns.join("")}`;
}

/**
 * WGSL of `gradSumSquaresPartials`: each workgroup sums the squares of one fixed chunk of a
 * gradient part into its own slot of the partials buffer.
 *
 * @param c `sg: true` for the subgroup variant.
 * @returns The WGSL source.
 */
export const sumSquaresSource = (c: ReduceConstants = {}): string =>
  /* wgsl */ `${c.sg === true ? SG_ENABLE : ""}
struct Params { n: u32, out_offset: u32, groups: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;              // [n] one gradient part
@group(0) @binding(2) var<storage, read_write> partials: array<f32>; // [total partials]
var<workgroup> acc: array<f32, ${REDUCE_WG}>;${
    reduceHelpers(c.sg === true, [["acc", "f32"]], REDUCE_WG)
  }

@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let group = wid.x + wid.y * nwg.x; // uniform across the workgroup
  if (group >= p.groups) { return; }${c.sg === true ? "\n  sg_init();" : ""}
  let base = group * ${REDUCE_CHUNK}u;
  // Blocks of 8 summed separately, then added up: the serial f32 chain stays short (≤ 8 + 32).
  var s = 0.0;
  for (var k = 0u; k < ${REDUCE_ITEMS}u; k += 8u) {
    var block = 0.0;
    for (var j = 0u; j < 8u; j++) {
      let i = base + (k + j) * ${REDUCE_WG}u + lid;
      if (i < p.n) {
        let x = g[i];
        block = fma(x, x, block);
      }
    }
    s += block;
  }
  ${workgroupSum(c.sg === true, "acc", REDUCE_WG, "s", "total")}
  if (lid == 0u) { partials[p.out_offset + group] = total; }
}`;

/**
 * WGSL of `gradNormFinalize`: one workgroup sums the partials in a fixed order and writes the
 * stats vector `[Σg², ‖g‖, applied, badGuard]`.
 *
 * @param c `sg: true` for the subgroup variant.
 * @returns The WGSL source.
 */
export const finalizeSource = (c: ReduceConstants = {}): string =>
  /* wgsl */ `${c.sg === true ? SG_ENABLE : ""}
struct Params { count: u32, guard_len: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;    // [count]
@group(0) @binding(2) var<storage, read> guard: array<f32>;       // [guard_len] must be finite
@group(0) @binding(3) var<storage, read_write> stats: array<f32>; // [4] Σg², ‖g‖, applied, bad
var<workgroup> acc: array<f32, ${FINALIZE_WG}>;
var<workgroup> bad: array<u32, ${FINALIZE_WG}>;
${WGSL_FINITE}${reduceHelpers(c.sg === true, [["acc", "f32"], ["bad", "u32"]], FINALIZE_WG)}

@compute @workgroup_size(${FINALIZE_WG})
fn main(@builtin(local_invocation_index) lid: u32) {${c.sg === true ? "\n  sg_init();" : ""}
  var s = 0.0;
  var block = 0.0;
  var in_block = 0u;
  for (var i = lid; i < p.count; i += ${FINALIZE_WG}u) {
    block += partials[i];
    in_block++;
    if (in_block == 8u) {
      s += block;
      block = 0.0;
      in_block = 0u;
    }
  }
  s += block;
  var b = 0u;
  for (var i = lid; i < p.guard_len; i += ${FINALIZE_WG}u) {
    if (!is_finite(guard[i])) { b += 1u; }
  }
  ${finalizeTail(c.sg === true)}
  if (lid == 0u) {
    let norm = sqrt(total);
    let ok = is_finite(total) && is_finite(norm) && bad_count == 0u;
    stats[0] = total;
    stats[1] = norm;
    stats[2] = select(0.0, 1.0, ok);
    stats[3] = f32(bad_count);
  }
}`;

/** WGSL: `total` (Σ partials) and `bad_count` (non-finite guards) over the finalize workgroup. */
function finalizeTail(sg: boolean): string {
  if (sg) return "let total = acc_sum(lid, s);\n  let bad_count = bad_sum(lid, b);";
  return `acc[lid] = s;
  bad[lid] = b;
  workgroupBarrier();
  for (var w = ${FINALIZE_WG / 2}u; w > 0u; w >>= 1u) {
    if (lid < w) {
      acc[lid] += acc[lid + w];
      bad[lid] += bad[lid + w];
    }
    workgroupBarrier();
  }
  let total = acc[0];
  let bad_count = bad[0];`;
}

/**
 * WGSL of `adamwUpdate`: the clipped AdamW step of one parameter part, skipped when the stats
 * say the step is not applied.
 *
 * @returns The WGSL source.
 */
export const updateSource = (): string => /* wgsl */ `
struct Params {
  n: u32, lr: f32, b1: f32, b2: f32, one_minus_b1: f32, one_minus_b2: f32,
  bc1: f32, bc2: f32, eps: f32, wd: f32, max_norm: f32, clip: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>; // [n] one parameter part
@group(0) @binding(2) var<storage, read> grad: array<f32>;        // [n]
@group(0) @binding(3) var<storage, read_write> m: array<f32>;     // [n] first moment
@group(0) @binding(4) var<storage, read_write> v: array<f32>;     // [n] second moment
@group(0) @binding(5) var<storage, read> stats: array<f32>;       // [4] from gradNormFinalize
@compute @workgroup_size(${UPDATE_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  if (stats[2] == 0.0) { return; } // skipped step: leave param, m and v untouched
  let base = (wid.x + wid.y * nwg.x) * ${UPDATE_CHUNK}u + lid;
  for (var k = 0u; k < ${UPDATE_ITEMS}u; k++) {
    let i = base + k * ${UPDATE_WG}u;
    if (i >= p.n) { return; }
    var g = grad[i];
    if (p.clip == 1u) {
      let norm = stats[1];
      // optax clip_by_global_norm: select(trigger, g, (g / norm) * max_norm).
      g = select((g / norm) * p.max_norm, g, norm < p.max_norm);
    }
    let m1 = p.b1 * m[i] + p.one_minus_b1 * g;
    let v1 = p.b2 * v[i] + p.one_minus_b2 * (g * g);
    m[i] = m1;
    v[i] = v1;
    let m_hat = m1 / p.bc1;
    let v_hat = v1 / p.bc2;
    let w = param[i];
    let u = m_hat / (sqrt(v_hat) + p.eps) + p.wd * w;
    param[i] = w - p.lr * u;
  }
}`;
