/**
 * WGSL templates of the workgroup-memory matmul variants (see `matmul.ts` for the design):
 * `matmulTileSource`, a block-tiled kernel for `a·bᵀ`, `a·b` and `aᵀ·b` that can also reduce
 * one K slice of a split-K product, and `matmulSplitReduceSource`, the split-K second pass.
 *
 * @module
 */

import { type MatmulForm, WGSL_EPILOGUE, WGSL_MATMUL_PARAMS } from "./_matmul_wgsl.ts";

/**
 * The `trans` uniform of a form: bit 0 `a` is `[K, M]` (`aᵀ·b`), bit 1 `b` is `[N, K]` (`a·bᵀ`).
 *
 * @param form The form.
 * @returns The bits.
 */
export function tileLayout(form: MatmulForm): number {
  return form === "tn" ? 1 : form === "nt" ? 2 : 0;
}

/**
 * The constants one tiled matmul pipeline is specialised on (its pipeline-cache key). The
 * operand layout (`form`) is a uniform instead: one pipeline serves the three forms (a branch
 * per staged slab), which keeps the pipelines to compile few.
 */
export interface MatmulTileConstants {
  /** `b` holds bf16 pairs (else f32). */
  bf16: boolean;
  /**
   * The contiguous dim of both operands (K for `a` in nt/nn and `b` in nt, M or N otherwise),
   * K in nt/nn, and every row start are multiples of 4: vec4 loads without per-element bounds.
   */
  aligned: boolean;
  /** Output rows per workgroup. */
  bm: number;
  /** Output columns per workgroup. */
  bn: number;
  /** Output rows per invocation (1, 2 or a multiple of 4, dividing `bm`). */
  tm: number;
  /** Output columns per invocation (a multiple of 4 dividing `bn`). */
  tn: number;
  /** k values staged per slab (a multiple of 4 dividing 128). */
  bk: number;
  [key: string]: string | number | boolean;
}

/** k values summed in a partial accumulator before it joins the total (as in `reg`). */
export const TILE_K_BLOCK = 128;

/** Invocations of one workgroup of a tile. */
export function tileInvocations(c: Pick<MatmulTileConstants, "bm" | "bn" | "tm" | "tn">): number {
  return (c.bm / c.tm) * (c.bn / c.tn);
}

/** Workgroup memory of a tile in bytes (`a` and `b` stages, f32). */
export function tileWorkgroupBytes(c: Pick<MatmulTileConstants, "bm" | "bn" | "bk">): number {
  return (c.bm + c.bn) * c.bk * 4;
}

/**
 * WGSL statements that stage one operand's `bk × rows` block into workgroup memory laid out
 * k-major (`s[k][row / 4]`, vec4 over rows), as zeros outside `[0, limit) × [0, kHi)`.
 * `kContig`: the source is `[rows, K]` (element `(row, k)` at `base + row·ld + k`): each unit
 * loads 4 rows × 4 k and stores them transposed (constant component indices: no vector element
 * writes, which some backends emulate by rewriting the whole vector). Otherwise the source is
 * `[K, rows]` (element `(k, row)` at `base + k·ld + row`) and a unit is one vec4 along the rows.
 */
function stageLoads(o: {
  name: "a" | "b";
  kContig: boolean;
  rows: number;
  bk: number;
  threads: number;
  aligned: boolean;
}): string {
  const { name, kContig, rows, bk, threads } = o;
  const units = kContig ? (rows / 4) * (bk / 4) : bk * (rows / 4);
  const s = name === "a" ? "sa" : "sb";
  const lim = name === "a" ? "p.M" : "p.N";
  const first = name === "a" ? "row0" : "col0";
  const el = (idx: string) => `${name}el(${idx})`;
  const vec = (idx: string) => `${name}vec(${idx})`;
  let out = "";
  for (let j = 0; j * threads < units; j++) {
    const u = `lane + ${j * threads}u`;
    const guard = (j + 1) * threads > units;
    let body = "";
    if (kContig) {
      // unit → (row quad, k quad); rows r..r+3 at k..k+3.
      body += `let u = ${u};\nlet rq = (u / ${bk / 4}u) * 4u;\nlet kq = (u % ${bk / 4}u) * 4u;\n` +
        `let k = k0 + kq;\n`;
      for (let i = 0; i < 4; i++) {
        body += `let g${i} = ${first} + rq + ${i}u;\n`;
        if (o.aligned) {
          body += `var v${i} = vec4<f32>();\n` +
            `if (g${i} < ${lim} && k < k_hi) { v${i} = ${
              vec(`${name}b + g${i} * ${ldOf(name)} + k`)
            }; }\n`;
        } else {
          const e = (kk: number) =>
            `select(0.0, ${el(`${name}b + g${i} * ${ldOf(name)} + k + ${kk}u`)}, ` +
            `g${i} < ${lim} && k + ${kk}u < k_hi)`;
          body += `let v${i} = vec4<f32>(${[0, 1, 2, 3].map(e).join(", ")});\n`;
        }
      }
      for (let kk = 0; kk < 4; kk++) {
        const comps = [0, 1, 2, 3].map((i) => `v${i}[${kk}]`).join(", ");
        body += `${s}[(kq + ${kk}u) * ${rows / 4}u + (rq >> 2u)] = vec4<f32>(${comps});\n`;
      }
    } else {
      // unit → (k, column quad).
      body += `let u = ${u};\nlet kr = u / ${rows / 4}u;\nlet cq = (u % ${rows / 4}u) * 4u;\n` +
        `let k = k0 + kr;\nlet g = ${first} + cq;\n`;
      if (o.aligned) {
        body += `var v = vec4<f32>();\n` +
          `if (g < ${lim} && k < k_hi) { v = ${vec(`${name}b + k * ${ldOf(name)} + g`)}; }\n`;
      } else {
        const e = (jj: number) =>
          `select(0.0, ${el(`${name}b + k * ${ldOf(name)} + g + ${jj}u`)}, ` +
          `g + ${jj}u < ${lim} && k < k_hi)`;
        body += `let v = vec4<f32>(${[0, 1, 2, 3].map(e).join(", ")});\n`;
      }
      body += `${s}[kr * ${rows / 4}u + (cq >> 2u)] = v;\n`;
    }
    out += guard ? `if (${u} < ${units}u) {\n${body}}\n` : `{\n${body}}\n`;
  }
  return out;
}

function ldOf(name: "a" | "b"): string {
  return name === "a" ? "p.lda" : "p.ldb";
}

/**
 * Element loaders: `ael/bel(i)` element i, `avec/bvec(i)` elements i..i+3 (i a multiple of 4).
 * subtle: the unaligned stage reads through `select`, which evaluates both sides, so it may read
 * past a row's end or the binding (WebGPU's robust access keeps that safe); `select` zeroes it.
 */
function loaders(c: MatmulTileConstants): string {
  let s = c.aligned
    ? "fn avec(i: u32) -> vec4<f32> { return a[i >> 2u]; }\n"
    : "fn ael(i: u32) -> f32 { return a[i]; }\n";
  if (c.bf16) {
    s += `fn bf16x2(w: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}\n`;
    s += c.aligned
      ? "fn bvec(i: u32) -> vec4<f32> { let w = b[i >> 2u]; return vec4<f32>(bf16x2(w.x), bf16x2(w.y)); }\n"
      : "fn bel(i: u32) -> f32 { return bf16x2(b[i >> 1u])[i & 1u]; }\n";
  } else {
    s += c.aligned
      ? "fn bvec(i: u32) -> vec4<f32> { return b[i >> 2u]; }\n"
      : "fn bel(i: u32) -> f32 { return b[i]; }\n";
  }
  return s;
}

/**
 * The WGSL source of one tiled matmul pipeline. Workgroup `(x, y, z)` computes the `bm × bn`
 * output block `(y, x)` of product `z / splits`, over the k slice `z % splits` of length
 * `k_chunk`, into `c` block `z` (a split-K pass writes raw partial sums with `splits > 1`).
 * Invocation `lane` owns rows `ty·tm + i` and the column quads `g·(bn / tn) + tx` (interleaved,
 * so neighbouring lanes read neighbouring vec4s of the staged `b`).
 *
 * @param c The constants.
 * @returns WGSL with entry point `main`.
 * @example
 * ```ts
 * import { matmulTileSource } from "./_matmul_tiled_wgsl.ts";
 * const code = matmulTileSource({ bf16: true, aligned: true, bm: 64, bn: 64, tm: 4, tn: 4, bk: 8 });
 * console.log(code.includes("workgroupBarrier")); // true
 * ```
 */
export function matmulTileSource(c: MatmulTileConstants): string {
  const { bm, bn, tm, tn, bk } = c;
  const threads = tileInvocations(c);
  const lanesN = bn / tn, groups = tn / 4;
  const aType = c.aligned ? "vec4<f32>" : "f32";
  const bType = c.bf16 ? (c.aligned ? "vec2<u32>" : "u32") : c.aligned ? "vec4<f32>" : "f32";
  const load = (name: "a" | "b", kContig: boolean) =>
    stageLoads({ name, kContig, rows: name === "a" ? bm : bn, bk, threads, aligned: c.aligned });
  // One k step: the thread's tm rows of a (scalars) and its column quads of b, then FMAs.
  let step = "";
  for (let i = 0; i < tm; i++) {
    const r = `ty * ${tm}u + ${i}u`;
    step += tm % 4 === 0 && i % 4 === 0
      ? `let a${i / 4}q = sa[kk * ${bm / 4}u + ((${r}) >> 2u)];\n`
      : tm % 4 === 0
      ? ""
      : `let a${i}s = sa[kk * ${bm / 4}u + ((${r}) >> 2u)][(${r}) & 3u];\n`;
  }
  const aAt = (i: number) => (tm % 4 === 0 ? `a${Math.floor(i / 4)}q[${i % 4}]` : `a${i}s`);
  for (let g = 0; g < groups; g++) {
    step += `let b${g} = sb[kk * ${bn / 4}u + ${g * lanesN}u + tx];\n`;
  }
  for (let i = 0; i < tm; i++) {
    for (let g = 0; g < groups; g++) {
      step += `acc${i}_${g} = fma(vec4<f32>(${aAt(i)}), b${g}, acc${i}_${g});\n`;
    }
  }
  let decl = "", flush = "", store = "";
  for (let i = 0; i < tm; i++) {
    for (let g = 0; g < groups; g++) {
      decl += `var acc${i}_${g} = vec4<f32>();\nvar tot${i}_${g} = vec4<f32>();\n`;
      flush += `tot${i}_${g} += acc${i}_${g}; acc${i}_${g} = vec4<f32>();\n`;
      store += `put4(cb, row0 + ty * ${tm}u + ${i}u, col0 + (${g * lanesN}u + tx) * 4u, ` +
        `tot${i}_${g});\n`;
    }
  }

  return /* wgsl */ `
struct Params {  // sc: per c block
${WGSL_MATMUL_PARAMS}  splits: u32,                   // k slices per product (c blocks per product)
  k_chunk: u32,                  // k values per slice (a multiple of ${bk})
  trans: u32,                    // bit 0: a is [K, M] (aᵀ·b); bit 1: b is [N, K] (a·bᵀ)
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<${aType}>;  // [batch, M, lda] from a_off or [batch, K, M], f32
@group(0) @binding(2) var<storage, read> b: array<${bType}>;  // [batch, N, ldb] or [batch, K, N], ${
    c.bf16 ? "bf16 pairs" : "f32"
  }
@group(0) @binding(3) var<storage, read_write> c: array<f32>; // [batch·splits, M, ldc] from c_off
@group(0) @binding(4) var<storage, read> r: array<f32>;     // like c: residual (2), gate (3, 4)
var<workgroup> sa: array<vec4<f32>, ${(bk * bm) / 4}>;  // [${bk}, ${bm}] a block, k-major
var<workgroup> sb: array<vec4<f32>, ${(bk * bn) / 4}>;  // [${bk}, ${bn}] b block, k-major
${loaders(c)}
${WGSL_EPILOGUE}
fn put4(cb: u32, row: u32, col: u32, v: vec4<f32>) {
  if (row >= p.M || col >= p.N) { return; }
  let o = cb + row * p.ldc + col;
  let n = min(p.N - col, 4u);
  let y = p.alpha * v;
  if (p.mode == 0u) {
    c[o] = y.x;
    if (n > 1u) { c[o + 1u] = y.y; }
    if (n > 2u) { c[o + 2u] = y.z; }
    if (n > 3u) { c[o + 3u] = y.w; }
  } else {
    for (var j = 0u; j < n; j++) { c[o + j] = epilogue_sum(o + j, y[j]); }
  }
}
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let batch = wid.z / p.splits;
  let k_lo = (wid.z % p.splits) * p.k_chunk;     // uniform over the workgroup
  let k_hi = min(p.K, k_lo + p.k_chunk);
  let row0 = wid.y * ${bm}u;
  let col0 = wid.x * ${bn}u;
  let tx = lane % ${lanesN}u;
  let ty = lane / ${lanesN}u;
  let ab = batch * p.sa + p.a_off;
  let bb = batch * p.sb + p.b_off;
  let cb = wid.z * p.sc + p.c_off;
  ${decl}
  // Blocked accumulation: partial sums over ${TILE_K_BLOCK} k, then into the totals.
  for (var kb = k_lo; kb < k_hi; kb += ${TILE_K_BLOCK}u) {
    let kb_end = min(kb + ${TILE_K_BLOCK}u, k_hi);
    for (var k0 = kb; k0 < kb_end; k0 += ${bk}u) {
      if ((p.trans & 1u) == 0u) {
        ${load("a", true)}} else {
        ${load("a", false)}}
      if ((p.trans & 2u) != 0u) {
        ${load("b", true)}} else {
        ${load("b", false)}}
      workgroupBarrier();
      ${Array.from({ length: bk }, (_, kk) => `{\nlet kk = ${kk}u;\n${step}}\n`).join("")}
      workgroupBarrier();
    }
    ${flush}
  }
  ${store}
  // Modes 3 and 4: gate this invocation's outputs (row quad i, column quad g of the tile).
  for (var e = 0u; e < gate_count(${tm * groups}u); e++) {
    let row = row0 + ty * ${tm}u + e / ${groups}u;
    let col = col0 + ((e % ${groups}u) * ${lanesN}u + tx) * 4u;
    if (row < p.M && col < p.N) {
      for (var j = 0u; j < min(p.N - col, 4u); j++) { gate_output(cb + row * p.ldc + col + j); }
    }
  }
}`;
}

/**
 * The WGSL source of the split-K second pass: `c = α·Σ_s partial[s] (+ c | + r)`, summing the
 * slices in a fixed order (deterministic: no float atomics). Workgroup `(x, y, z)` covers
 * columns `64x..64x+63` of row `y` of product `z`.
 *
 * @returns WGSL with entry point `main`.
 * @example
 * ```ts
 * import { matmulSplitReduceSource } from "./_matmul_tiled_wgsl.ts";
 * console.log(matmulSplitReduceSource().includes("splits")); // true
 * ```
 */
export function matmulSplitReduceSource(): string {
  return /* wgsl */ `
struct Params {
  M: u32, N: u32, splits: u32,
  ldc: u32, c_off: u32, sc: u32, // output row stride, column offset, batch stride
  alpha: f32,
  mode: u32,                     // 0: c = α·acc, 1: c += α·acc, 2: c = r + α·acc,
                                 // 3: c = gelu(r)·α·acc, 4: c = gelu(r)·(c + α·acc)
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;    // [batch, splits, M, N] partial sums
@group(0) @binding(2) var<storage, read_write> c: array<f32>; // [batch, M, ldc] from c_off
@group(0) @binding(3) var<storage, read> r: array<f32>;      // like c: residual (2), gate (3, 4)
${WGSL_EPILOGUE}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let n = wid.x * 64u + lane;
  if (n >= p.N) { return; }
  let m = wid.y;
  var s = 0.0;
  var i = (wid.z * p.splits * p.M + m) * p.N + n;
  for (var split = 0u; split < p.splits; split++) {
    s += part[i];
    i += p.M * p.N;
  }
  let o = wid.z * p.sc + p.c_off + m * p.ldc + n;
  c[o] = epilogue(o, p.alpha * s);
}`;
}
