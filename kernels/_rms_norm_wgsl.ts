/**
 * WGSL template of RMSNorm's forward (`rms_norm.ts` holds the launcher and the numerics) and
 * the row-sum openings its backward shares: `Σ fma(a, b)` over a row of D values either by
 * one workgroup per row (pairwise tree, or subgroup reductions) or one invocation per row
 * (eight interleaved sums).
 *
 * @module
 */

import { wgslBf16Reader } from "./_launch.ts";
import { SG_ENABLE, SG_STATE, subgroupReducer } from "./_reduce_variant.ts";

/** Which input buffer the result is written into (WebGPU cannot bind one buffer twice). */
export type RmsNormAlias = "none" | "x" | "residual";

/** Constants of {@linkcode rmsNormSource}. */
export interface RmsNormConstants extends Record<string, number | string | boolean> {
  /** The variant: `row`, `workgroup` or `sg` (see `RMS_NORM_VARIANTS`). */
  strategy: string;
  /** Invocations per workgroup, a power of two. */
  wg: number;
  /** Weight stored as bf16. */
  wBf16: boolean;
  /** Adds a residual tensor. */
  residual: boolean;
  /** Output written into x or the residual instead of a separate tensor. */
  alias: RmsNormAlias;
  /** Writes the per-row 1/rms. */
  rstd: boolean;
}

/**
 * WGSL of the opening of the one-workgroup-per-row variants (`workgroup`, `sg`): one workgroup
 * of `wg` per row (`row`, `base`; rows past the end return), `Σ fma(terms)` over the row's D
 * entries left in `row_sum` — by a pairwise tree in workgroup memory (`workgroup`), or by two
 * subgroup reductions (`sg`, see `_reduce_variant.ts`; the source must start with `SG_ENABLE`).
 *
 * @param c The variant (`workgroup` or `sg`) and invocations per workgroup (a power of two).
 * @param terms The two `fma` factors of entry `i`, e.g. `"x[base + i], x[base + i]"`.
 * @returns The WGSL (declarations and the opening of `main`).
 */
export const workgroupRowSum = (
  c: { readonly strategy: string; readonly wg: number },
  terms: string,
): string => {
  const sg = c.strategy === "sg";
  const reduce = sg ? "\n  let row_sum = workgroup_sum(lid, acc);" : `
  partial[lid] = acc;
  workgroupBarrier();
  // subtle: pairwise tree, not a serial sum, so the f32 error grows with log2(wg) only.
  for (var s = ${c.wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let row_sum = partial[0];`;
  const helpers = sg
    ? `${SG_STATE}
${subgroupReducer({ name: "workgroup_sum", type: "f32", op: "add", buf: "partial", wg: c.wg })}
`
    : "";
  return /* wgsl */ `var<workgroup> partial: array<f32, ${c.wg}>;
${helpers}
@compute @workgroup_size(${c.wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x; // uniform across the workgroup
  if (row >= p.rows) { return; }${sg ? "\n  sg_init();" : ""}
  let base = row * p.d;
  var acc = 0.0;
  for (var i = lid; i < p.d; i += ${c.wg}u) { acc = fma(${terms}, acc); }${reduce}`;
};

/** The pieces of {@linkcode invocationRowSum}. */
export interface InvocationRowSum {
  /** Invocations per workgroup. */
  readonly wg: number;
  /** The `// subtle:` comment line above the accumulators. */
  readonly comment: string;
  /** Statements adding entries `i … i + 7` into the vec4 sums `a` and `b`. */
  readonly block: string;
  /** Loop over the remaining entries `i` into `tail`. */
  readonly tail: string;
}

/**
 * WGSL of the "row" strategy's opening: one invocation per row (`row`, `base`; rows past the
 * end return), eight interleaved partial sums (`a`, `b`) plus `tail`, combined by the caller
 * from `s = a + b`.
 *
 * @param c Workgroup size and the strategy's sum statements.
 * @returns The WGSL (the opening of `main`).
 */
export const invocationRowSum = (c: InvocationRowSum): string =>
  /* wgsl */ `@compute @workgroup_size(${c.wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * ${c.wg}u;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  ${c.comment}
  var a = vec4<f32>(0.0);
  var b = vec4<f32>(0.0);
  var i = 0u;
  for (; i + 8u <= p.d; i += 8u) {
    ${c.block}
  }
  var tail = 0.0;
  ${c.tail}
  let s = a + b;`;

/**
 * WGSL of `rmsNorm`: `y = (x · r) · (1 + w)` (+ residual) with `r = 1 / sqrt(Σx²/D + eps)`.
 *
 * @param c Variant, workgroup size, weight dtype, residual, aliasing and rstd output.
 * @returns The WGSL source.
 */
export const rmsNormSource = (c: RmsNormConstants): string => {
  const xAccess = c.alias === "x" ? "read_write" : "read";
  const resAccess = c.alias === "residual" ? "read_write" : "read";
  // Optional bindings follow x (1) and w (2) in this order: res, out, rstd_out.
  const outDecl = c.residual
    ? "@group(0) @binding(4) var<storage, read_write> out: array<f32>; // [rows, D]"
    : "@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [rows, D]";
  const rstdDecl = [
    "@group(0) @binding(3) var<storage, read_write> rstd_out: array<f32>; // [rows]",
    "@group(0) @binding(4) var<storage, read_write> rstd_out: array<f32>; // [rows]",
    "@group(0) @binding(5) var<storage, read_write> rstd_out: array<f32>; // [rows]",
  ][Number(c.residual) + Number(c.alias === "none")];
  const decl = [
    `@group(0) @binding(1) var<storage, ${xAccess}> x: array<f32>; // [rows, D]`,
    `@group(0) @binding(2) var<storage, read> w: array<${c.wBf16 ? "u32" : "f32"}>; // [D]${
      c.wBf16 ? " bf16, two per word" : ""
    }`,
    c.residual
      ? `@group(0) @binding(3) var<storage, ${resAccess}> res: array<f32>; // [rows, D]`
      : "",
    c.alias === "none" ? outDecl : "",
    c.rstd ? rstdDecl : "",
  ].filter((line) => line !== "");
  const target = c.alias === "x" ? "x" : c.alias === "residual" ? "res" : "out";
  const wAt = c.wBf16 ? "bf16_at_w(i)" : "w[i]";
  const header = `${c.strategy === "sg" ? SG_ENABLE : ""}
struct Params { rows: u32, d: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
${decl.join("\n")}
${c.wBf16 ? wgslBf16Reader("w") : ""}`;
  const store = `${target}[base + i] = ${c.residual ? "res[base + i] + y" : "y"};`;
  const rstd = c.rstd ? "rstd_out[row] = r;" : "";
  if (c.strategy === "row") {
    const sum = invocationRowSum({
      wg: c.wg,
      comment: "// subtle: eight interleaved partial sums (two vec4) combined pairwise, not one " +
        "serial sum.",
      block: `let u = vec4<f32>(x[base + i], x[base + i + 1u], x[base + i + 2u], x[base + i + 3u]);
    let v = vec4<f32>(x[base + i + 4u], x[base + i + 5u], x[base + i + 6u], x[base + i + 7u]);
    a = fma(u, u, a);
    b = fma(v, v, b);`,
      tail: `for (; i < p.d; i++) {
    let v = x[base + i];
    tail = fma(v, v, tail);
  }`,
    });
    return /* wgsl */ `${header}
${sum}
  let r = 1.0 / sqrt((((s.x + s.y) + (s.z + s.w)) + tail) / f32(p.d) + p.eps);
  for (i = 0u; i < p.d; i++) {
    let y = (x[base + i] * r) * (1.0 + ${wAt});
    ${store}
  }
  ${rstd}
}`;
  }
  return /* wgsl */ `${header}
${workgroupRowSum(c, "x[base + i], x[base + i]")}
  let r = 1.0 / sqrt(row_sum / f32(p.d) + p.eps);
  for (var i = lid; i < p.d; i += ${c.wg}u) {
    let y = (x[base + i] * r) * (1.0 + ${wAt});
    ${store}
  }
  ${c.rstd ? `if (lid == 0u) { ${rstd} }` : ""}
}`;
};
