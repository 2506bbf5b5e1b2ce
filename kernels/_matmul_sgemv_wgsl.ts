/**
 * WGSL template of the subgroup GEMV variant of matmul (`x·Wᵀ` for up to 4 rows of `x`, see
 * `matmul.ts`): each subgroup reads rows of `W` with its lanes side by side (coalesced), keeps
 * per-lane partial dot products and sums them with `subgroupAdd`.
 *
 * @module
 */

import { WGSL_EPILOGUE, WGSL_MATMUL_PARAMS } from "./_matmul_wgsl.ts";

/** The constants one subgroup GEMV pipeline is specialised on (its pipeline-cache key). */
export interface MatmulSgemvConstants {
  /** `b` holds bf16 pairs (else f32). */
  bf16: boolean;
  /** K % 4 = 0 and every row start a multiple of 4: vec4 loads, no per-element bounds. */
  aligned: boolean;
  /** Rows of `a` (1 to 4). */
  rows: number;
  [key: string]: string | number | boolean;
}

/** Invocations per workgroup (a multiple of every subgroup size, ≤ 128). */
export const SGEMV_WORKGROUP = 128;
/** Output columns per workgroup. */
export const SGEMV_COLUMNS = 16;
/** k values a lane sums before its partial joins its total (per subgroup: × its size). */
const LANE_BLOCK = 128;

/**
 * The WGSL source of one subgroup GEMV pipeline. Workgroup `(x, ·, z)` computes columns
 * `16x..16x+15` of product `z`; subgroup `s` (lanes `s·size..`, the packing every
 * implementation uses for a 1-D workgroup) takes columns `s, s + 128/size, …`.
 *
 * @param c The constants.
 * @returns WGSL with entry point `main` (needs the `subgroups` feature).
 * @example
 * ```ts
 * import { matmulSgemvSource } from "./_matmul_sgemv_wgsl.ts";
 * const code = matmulSgemvSource({ bf16: true, aligned: true, rows: 1 });
 * console.log(code.startsWith("enable subgroups;")); // true
 * ```
 */
export function matmulSgemvSource(c: MatmulSgemvConstants): string {
  const { rows } = c;
  const aType = c.aligned ? "vec4<f32>" : "f32";
  const bType = c.bf16 ? (c.aligned ? "vec2<u32>" : "u32") : c.aligned ? "vec4<f32>" : "f32";
  let loaders = c.aligned
    ? "fn avec(i: u32) -> vec4<f32> { return a[i >> 2u]; }\n"
    : "fn ael(i: u32) -> f32 { return a[i]; }\n";
  if (c.bf16) {
    loaders += `fn bf16x2(w: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}\n`;
    loaders += c.aligned
      ? "fn bvec(i: u32) -> vec4<f32> { let w = b[i >> 2u]; return vec4<f32>(bf16x2(w.x), bf16x2(w.y)); }\n"
      : "fn bel(i: u32) -> f32 { return bf16x2(b[i >> 1u])[i & 1u]; }\n";
  } else {
    loaders += c.aligned
      ? "fn bvec(i: u32) -> vec4<f32> { return b[i >> 2u]; }\n"
      : "fn bel(i: u32) -> f32 { return b[i]; }\n";
  }
  // subtle: unaligned reads past K go through `select` (both sides evaluated; robust access).
  const q = (f: string, base: string) =>
    c.aligned
      ? `${f}vec(${base} + k)`
      : `vec4<f32>(${
        [0, 1, 2, 3].map((j) => `select(0.0, ${f}el(${base} + k + ${j}u), k + ${j}u < p.K)`)
          .join(", ")
      })`;
  let setup = "", body = `let w = ${q("b", "br")};\n`;
  for (let i = 0; i < rows; i++) {
    setup += `let ar${i} = ab + min(${i}u, p.M - 1u) * p.lda;\n`;
    body += `part[${i}] += dot(${q("a", `ar${i}`)}, w);\n`;
  }
  let store = "";
  for (let i = 0; i < rows; i++) {
    store += `if (${i}u < p.M) {
        let o = cb + ${i}u * p.ldc + col;
        c[o] = epilogue(o, p.alpha * s[${i}]);
      }\n`;
  }
  return /* wgsl */ `enable subgroups;
struct Params {  // M ≤ ${rows}
${WGSL_MATMUL_PARAMS}}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<${aType}>;  // [batch, M, lda] (K values from a_off), f32
@group(0) @binding(2) var<storage, read> b: array<${bType}>;  // [batch, N, ldb], ${
    c.bf16 ? "bf16 pairs" : "f32"
  }
@group(0) @binding(3) var<storage, read_write> c: array<f32>; // [batch, M, ldc] from c_off
@group(0) @binding(4) var<storage, read> r: array<f32>;     // like c: residual (2), gate (3, 4)
${loaders}
${WGSL_EPILOGUE}
@compute @workgroup_size(${SGEMV_WORKGROUP})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lane: u32,
  @builtin(subgroup_size) sg_size: u32,
  @builtin(subgroup_invocation_id) sg_lane: u32,
) {
  let ab = wid.z * p.sa + p.a_off;
  let bb = wid.z * p.sb + p.b_off;
  let cb = wid.z * p.sc + p.c_off;
  ${setup}
  let subgroups = max(${SGEMV_WORKGROUP}u / sg_size, 1u); // uniform: sg_size is
  let step = sg_size * 4u;
  for (var c0 = 0u; c0 < ${SGEMV_COLUMNS}u; c0 += subgroups) {
    let cl = c0 + lane / sg_size;
    let col = wid.x * ${SGEMV_COLUMNS}u + cl;
    let br = bb + min(col, p.N - 1u) * p.ldb;
    var acc = vec4<f32>();
    // Blocked: a lane's partial covers ${LANE_BLOCK} of its k before joining its total.
    for (var kb = 0u; kb < p.K; kb += ${LANE_BLOCK / 4}u * step) {
      var part = vec4<f32>();
      let kb_end = min(kb + ${LANE_BLOCK / 4}u * step, p.K);
      for (var k0 = kb; k0 < kb_end; k0 += step) {
        let k = k0 + sg_lane * 4u;
        if (k < p.K) {
          ${body}
        }
      }
      acc += part;
    }
    let s = subgroupAdd(acc);
    if (sg_lane == 0u && cl < ${SGEMV_COLUMNS}u && col < p.N) {
      ${store}
    }
  }
}`;
}
