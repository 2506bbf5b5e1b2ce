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
import { WGSL_ROPE_ROTATION } from "./_rope_wgsl.ts";

/** Which input buffer the result is written into (WebGPU cannot bind one buffer twice). */
export type RmsNormAlias = "none" | "x" | "residual";

/**
 * What the forward fuses after the norm: nothing, RoPE of each head (`rope`: x `[T, H, hd]`,
 * the pair `(j, j + hd/2)` rotated by the token's angle), or the following pre-norm of the
 * row's result (`next`: `norm(result)·(1 + w_next)` into a second output).
 */
export type RmsNormFuse = "none" | "rope" | "next";

/** Values of a row one invocation keeps in registers for the `next` norm (`workgroup`, `sg`). */
export const NEXT_REGISTERS = 8;

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
  /** Writes the per-row 1/rms (and the `next` norm's, when fused). */
  rstd: boolean;
  /** The fused epilogue. */
  fuse: RmsNormFuse;
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
  for (var i = lid; i < p.d; i += ${c.wg}u) { acc = fma(${terms}, acc); }
  ${workgroupSum(c, "acc", "row_sum")}`;
};

/**
 * WGSL statements of {@linkcode workgroupRowSum}'s reduction: `let <result>` = the sum of every
 * invocation's `value` (uniform control flow; `partial` is read afterwards: a second reduction
 * needs a `workgroupBarrier()` before it).
 *
 * @param c The variant (`workgroup` or `sg`) and invocations per workgroup.
 * @param value The invocation's f32 partial sum.
 * @param result The name of the `let` holding the workgroup's sum.
 * @returns The WGSL statements.
 */
export const workgroupSum = (
  c: { readonly strategy: string; readonly wg: number },
  value: string,
  result: string,
): string =>
  c.strategy === "sg" ? `let ${result} = workgroup_sum(lid, ${value});` : `partial[lid] = ${value};
  workgroupBarrier();
  // subtle: pairwise tree, not a serial sum, so the f32 error grows with log2(wg) only.
  for (var s = ${c.wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let ${result} = partial[0];`;

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
 * WGSL of `rmsNorm`: `y = (x · r) · (1 + w)` (+ residual) with `r = 1 / sqrt(Σx²/D + eps)`,
 * then the fused epilogue: RoPE of `y` (`rope`), or the next norm of `y` into `next_out`
 * (`next`, its row sum formed exactly as the variant forms `r`'s, so the result is the one a
 * second `rmsNorm` launch of the same variant gives).
 *
 * @param c Variant, workgroup size, weight dtype, residual, aliasing, rstd output, epilogue.
 * @returns The WGSL source.
 */
export const rmsNormSource = (c: RmsNormConstants): string => {
  const target = c.alias === "x" ? "x" : c.alias === "residual" ? "res" : "out";
  // Bindings after the uniforms (0), in this order, each only where the constants need it.
  const bindings = [
    `x: array<f32>; // [rows, D]${c.alias === "x" ? ", the result in place" : ""}`,
    `w: array<${c.wBf16 ? "u32" : "f32"}>; // [D]${c.wBf16 ? " bf16, two per word" : ""}`,
    c.residual ? `res: array<f32>; // [rows, D]` : "",
    c.alias === "none" ? "out: array<f32>; // [rows, D]" : "",
    c.rstd ? "rstd_out: array<f32>; // [rows]" : "",
    c.fuse === "rope" ? "positions: array<i32>; // [T] (rows = T·heads)" : "",
    c.fuse === "rope" ? "table: array<f32>; // [maxPos, D]: cos | sin" : "",
    c.fuse === "next"
      ? `w_next: array<${c.wBf16 ? "u32" : "f32"}>; // [D]${c.wBf16 ? " bf16" : ""}`
      : "",
    c.fuse === "next" ? "next_out: array<f32>; // [rows, D]" : "",
    c.fuse === "next" && c.rstd ? "rstd_next: array<f32>; // [rows]" : "",
  ].filter((b) => b !== "");
  const written = new Set([target, "out", "rstd_out", "next_out", "rstd_next"]);
  const decl = bindings.map((b, i) => {
    const name = b.slice(0, b.indexOf(":"));
    const access = written.has(name) ? "read_write" : "read";
    return `@group(0) @binding(${i + 1}) var<storage, ${access}> ${b}`;
  });
  const wAt = (i: string) => (c.wBf16 ? `bf16_at_w(${i})` : `w[${i}]`);
  const wNextAt = (i: string) => (c.wBf16 ? `bf16_at_w_next(${i})` : `w_next[${i}]`);
  const header = `${c.strategy === "sg" ? SG_ENABLE : ""}
struct Params { rows: u32, d: u32, eps: f32${
    c.fuse === "rope" ? ", heads: u32, max_pos: u32, nan: f32 /* NaN from the host */" : ""
  } }
@group(0) @binding(0) var<uniform> p: Params;
${decl.join("\n")}
${c.wBf16 ? wgslBf16Reader("w") : ""}${
    c.wBf16 && c.fuse === "next" ? wgslBf16Reader("w_next") : ""
  }${c.fuse === "rope" ? WGSL_ROPE_ROTATION : ""}
// Element i of the row at base, normalised by r.
fn norm_y(base: u32, i: u32, r: f32) -> f32 {
  return (x[base + i] * r) * (1.0 + ${wAt("i")});
}
// Element i of the row's result (+ residual), stored and returned.
fn norm_at(base: u32, i: u32, r: f32) -> f32 {
  let v = ${c.residual ? "res[base + i] + norm_y(base, i, r)" : "norm_y(base, i, r)"};
  ${target}[base + i] = v;
  return v;
}${
    c.fuse === "next"
      ? `
// The next norm of the result's element i, v.
fn next_y(v: f32, i: u32, r: f32) -> f32 {
  return (v * r) * (1.0 + ${wNextAt("i")});
}`
      : ""
  }`;
  const rstdNext = c.fuse === "next" && c.rstd ? "rstd_next[row] = r_next;" : "";
  const rstd = c.rstd ? `rstd_out[row] = r;${rstdNext ? ` ${rstdNext}` : ""}` : "";
  // RoPE: the pair (j, j + D/2) of the normalised head, rotated by the token's angle.
  const ropePair = (j: string) =>
    `let cs = rope_cos_sin(pos, ${j}, half, p.max_pos, p.nan);
    let y = rope_rotate(norm_y(base, ${j}, r), norm_y(base, ${j} + half, r), cs);
    ${target}[base + ${j}] = y.x;
    ${target}[base + ${j} + half] = y.y;`;
  const ropeOpening = `let half = p.d / 2u;
  let pos = positions[row / p.heads];`;
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
    const epilogue = {
      none: `for (i = 0u; i < p.d; i++) { norm_at(base, i, r); }`,
      rope: `${ropeOpening}
  for (var j = 0u; j < half; j++) {
    ${ropePair("j")}
  }`,
      // The result's row sum in the same eight interleaved sums as r's, stored as it goes.
      next: `a = vec4<f32>(0.0);
  b = vec4<f32>(0.0);
  for (i = 0u; i + 8u <= p.d; i += 8u) {
    let u = vec4<f32>(norm_at(base, i, r), norm_at(base, i + 1u, r), norm_at(base, i + 2u, r),
      norm_at(base, i + 3u, r));
    let v = vec4<f32>(norm_at(base, i + 4u, r), norm_at(base, i + 5u, r),
      norm_at(base, i + 6u, r), norm_at(base, i + 7u, r));
    a = fma(u, u, a);
    b = fma(v, v, b);
  }
  tail = 0.0;
  for (; i < p.d; i++) {
    let v = norm_at(base, i, r);
    tail = fma(v, v, tail);
  }
  let s_next = a + b;
  let r_next = 1.0 / sqrt((((s_next.x + s_next.y) + (s_next.z + s_next.w)) + tail) / f32(p.d) + p.eps);
  // subtle: this invocation's own stores above, read back (a row is one invocation's here).
  for (i = 0u; i < p.d; i++) { next_out[base + i] = next_y(${target}[base + i], i, r_next); }`,
    }[c.fuse];
    return /* wgsl */ `${header}
${sum}
  let r = 1.0 / sqrt((((s.x + s.y) + (s.z + s.w)) + tail) / f32(p.d) + p.eps);
  ${epilogue}
  ${rstd}
}`;
  }
  const n = NEXT_REGISTERS;
  const epilogue = {
    none: `for (var i = lid; i < p.d; i += ${c.wg}u) { norm_at(base, i, r); }`,
    // subtle: x in place is safe: every invocation's sum above read x before the barriers.
    rope: `${ropeOpening}
  for (var j = lid; j < half; j += ${c.wg}u) {
    ${ropePair("j")}
  }`,
    // The result's row sum in the order r's was formed (i = lid, lid + wg, …), its first
    // ${n} values per invocation kept in registers, later ones (D > ${n}·wg) read back.
    next: `var kept: array<f32, ${n}>;
  var acc_next = 0.0;
  for (var k = 0u; k < ${n}u; k++) {
    let i = lid + k * ${c.wg}u;
    if (i < p.d) {
      kept[k] = norm_at(base, i, r);
      acc_next = fma(kept[k], kept[k], acc_next);
    }
  }
  for (var i = lid + ${n * c.wg}u; i < p.d; i += ${c.wg}u) {
    let v = norm_at(base, i, r);
    acc_next = fma(v, v, acc_next);
  }
  workgroupBarrier(); // partial is still being read by the first reduction
  ${workgroupSum(c, "acc_next", "sum_next")}
  let r_next = 1.0 / sqrt(sum_next / f32(p.d) + p.eps);
  for (var k = 0u; k < ${n}u; k++) {
    let i = lid + k * ${c.wg}u;
    if (i < p.d) { next_out[base + i] = next_y(kept[k], i, r_next); }
  }
  for (var i = lid + ${n * c.wg}u; i < p.d; i += ${c.wg}u) {
    next_out[base + i] = next_y(${target}[base + i], i, r_next); // this invocation's store
  }`,
  }[c.fuse];
  return /* wgsl */ `${header}
${workgroupRowSum(c, "x[base + i], x[base + i]")}
  let r = 1.0 / sqrt(row_sum / f32(p.d) + p.eps);
  ${epilogue}
  ${c.rstd ? `if (lid == 0u) { ${rstd} }` : ""}
}`;
};
