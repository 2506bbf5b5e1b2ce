/**
 * WGSL templates of the log-prob backward (`logprobs_backward.ts`):
 * - `logprobs_dz`: one vocabulary chunk of `dz = grad·(onehot − softmax)/τ`, `[T, chunk]`,
 *   recomputing the logits with the forward's register-blocked dot product; with the constant
 *   `entropy: true`, plus the entropy term `−gradEntropy·p·(log p + H)/τ`;
 * - `logprobs_live` (entropy only): which tokens carry any gradient, for the two products' skips;
 * - `logprobs_dh` / `logprobs_de`: `dh += dz·E_chunk` and `dE_chunk += dzᵀ·h`, register-blocked
 *   products (each invocation owns `TM` output rows × `4·TN4` columns, the workgroup's lanes
 *   spread along the columns and share the rows) that accumulate into their output.
 *
 * @module
 */

import { dotBlock, type DotConstants, dotDeclarations } from "./_logprobs_wgsl.ts";
import { SG_ENABLE, SG_STATE } from "./_reduce_variant.ts";

/**
 * WGSL of `logprobs_dz`: each workgroup takes `TT` tokens × `WG·TV` rows of the chunk. Token
 * blocks whose grads are all zero skip the dot products and write zeros. With the extra
 * constant `entropy: true` (absent = the plain kernel's source and key) it reads the entropy
 * gradient and the forward's entropy (bindings 7, 8) and adds
 * `dH/dx_v = −p_v·(log p_v + H)` scaled by the entropy gradient.
 *
 * @param c Dot-product constants (as the forward), optionally `entropy: true`.
 * @returns The WGSL source.
 */
export function dzSource(c: DotConstants): string {
  if (c.entropy === true) return dzEntropySource(c);
  return /* wgsl */ `${dzDeclarations(c, [])}

@compute @workgroup_size(${c.wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t0 = wid.y * ${c.tt}u;
  let vb = wid.x * ${c.wg * c.tv}u + lid;
  var live = false; // workgroup-uniform
  for (var i = 0u; i < ${c.tt}u; i++) { live = live || grad[min(t0 + i, p.tokens - 1u)] != 0.0; }
  // subtle: a zero trip count rather than an if around the ${c.tt * c.tv} accumulators, which
  // doubles llvmpipe's compile time.
  ${dzLogits(c)}
  // subtle: loops rather than ${c.tt * c.tv} unrolled stores keep llvmpipe's compile time down.
  for (var i = 0u; i < ${c.tt}u; i++) {
    let t = t0 + i;
    if (t >= p.tokens) { break; }
    let g = grad[t] * p.inv_temp;
    let l = lse[t];
    for (var j = 0u; j < ${c.tv}u; j++) {
      let v = vb + j * ${c.wg}u;
      if (v < p.rows) {
        dz[t * p.ldz + v] = select(-g * exp(xs[i * ${c.tv}u + j] * p.inv_temp - l), 0.0, g == 0.0);
      }
    }
    // The one row equal to the target (u32 wrap-around keeps the others out).
    let rel = targets[t] - p.vocab_start - vb;
    if (g != 0.0 && rel % ${c.wg}u == 0u && rel / ${c.wg}u < ${c.tv}u && vb + rel < p.rows) {
      dz[t * p.ldz + vb + rel] = g - g * exp(xs[i * ${c.tv}u + rel / ${c.wg}u] * p.inv_temp - l);
    }
  }
}`;
}

/** `logprobs_dz` with the entropy term (see {@linkcode dzSource}). */
function dzEntropySource(c: DotConstants): string {
  const extra = [
    "@group(0) @binding(7) var<storage, read> grad_entropy: array<f32>; // [T] d loss / d H",
    "@group(0) @binding(8) var<storage, read> entropy: array<f32>; // [T] H (the forward's)",
  ];
  return /* wgsl */ `${dzDeclarations(c, extra)}

@compute @workgroup_size(${c.wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t0 = wid.y * ${c.tt}u;
  let vb = wid.x * ${c.wg * c.tv}u + lid;
  var live = false; // workgroup-uniform
  for (var i = 0u; i < ${c.tt}u; i++) {
    let t = min(t0 + i, p.tokens - 1u);
    live = live || grad[t] != 0.0 || grad_entropy[t] != 0.0;
  }
  ${dzLogits(c)}
  for (var i = 0u; i < ${c.tt}u; i++) {
    let t = t0 + i;
    if (t >= p.tokens) { break; }
    let g = grad[t] * p.inv_temp;
    let ge = grad_entropy[t] * p.inv_temp;
    let dead = g == 0.0 && ge == 0.0;
    let l = lse[t];
    let ent = entropy[t];
    for (var j = 0u; j < ${c.tv}u; j++) {
      let v = vb + j * ${c.wg}u;
      if (v < p.rows) {
        let lp = xs[i * ${c.tv}u + j] * p.inv_temp - l;
        let pv = exp(lp);
        dz[t * p.ldz + v] = select(-g * pv - ge * pv * (lp + ent), 0.0, dead);
      }
    }
    // The one row equal to the target (u32 wrap-around keeps the others out).
    let rel = targets[t] - p.vocab_start - vb;
    if (g != 0.0 && rel % ${c.wg}u == 0u && rel / ${c.wg}u < ${c.tv}u && vb + rel < p.rows) {
      let lp = xs[i * ${c.tv}u + rel / ${c.wg}u] * p.inv_temp - l;
      let pv = exp(lp);
      dz[t * p.ldz + vb + rel] = g - g * pv - ge * pv * (lp + ent);
    }
  }
}`;
}

/**
 * The `logprobs_dz` declarations both forms share: `Params`, h and E, bindings 3–6, then
 * `extra` bindings; the binding comments are aligned one space past the longest declaration.
 */
function dzDeclarations(c: DotConstants, extra: readonly string[]): string {
  const bindings = [
    "@group(0) @binding(3) var<storage, read> targets: array<u32>; // [T] (u32 or i32 bits)",
    "@group(0) @binding(4) var<storage, read> lse: array<f32>; // [T]",
    "@group(0) @binding(5) var<storage, read> grad: array<f32>; // [T] d loss / d logp",
    "@group(0) @binding(6) var<storage, read_write> dz: array<f32>; // [T, ldz] (columns < rows)",
    ...extra,
  ].map((line) => line.split(" // "));
  const width = Math.max(...bindings.map(([decl]) => decl.length)) + 1;
  return `
struct Params {
  tokens: u32, rows: u32, // T, rows of this chunk
  row_base: u32,          // first chunk row inside the bound part of E
  vocab_start: u32,       // vocabulary id of the first chunk row
  ldz: u32,               // row stride of dz
  dp: u32,                // D / pack: loads per dot product
  inv_temp: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
${dotDeclarations(c)}
${bindings.map(([decl, note]) => `${decl.padEnd(width)}// ${note}`).join("\n")}`;
}

/**
 * The logits of the `logprobs_dz` tile, `xs[i·TV + j]`: the forward's dot block with a zero trip
 * count unless the workgroup-uniform `live` is set, spilled to an array the loops can index.
 */
function dzLogits(c: DotConstants): string {
  const spill: string[] = [];
  for (let i = 0; i < c.tt; i++) {
    for (let j = 0; j < c.tv; j++) spill.push(`xs[${i * c.tv + j}] = acc_${i}_${j};`);
  }
  return `let steps = select(0u, p.dp, live);
  ${dotBlock(c, { rowBase: "p.row_base", steps: "steps" })}
  var xs: array<f32, ${c.tt * c.tv}>;
  ${spill.join("\n  ")}`;
}

/** Workgroup size of `logprobs_live`. */
export const LIVE_WG = 64;

/**
 * WGSL of `logprobs_live`: `live_t = 1` where `grad_t ≠ 0` or `gradEntropy_t ≠ 0`, else 0. The
 * `dh`/`de` products skip tokens by this instead of `grad` when an entropy gradient is given.
 *
 * @returns The WGSL source.
 */
export const liveSource = (): string => /* wgsl */ `
struct Params { tokens: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;         // [T] d loss / d logp
@group(0) @binding(2) var<storage, read> grad_entropy: array<f32>; // [T] d loss / d H
@group(0) @binding(3) var<storage, read_write> live: array<f32>;   // [T] 1 or 0

@compute @workgroup_size(${LIVE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * ${LIVE_WG}u;
  if (t >= p.tokens) { return; }
  live[t] = select(0.0, 1.0, grad[t] != 0.0 || grad_entropy[t] != 0.0);
}`;

/** Specialisation constants of `logprobs_dh` / `logprobs_de`. */
export interface AccConstants extends Record<string, number | string | boolean> {
  /** `dh`: c[T, N] += dz[T, K]·b[K, N] (b = E chunk); `de`: c[M, N] += dzᵀ·b (b = h, K = T). */
  form: "dh" | "de";
  /** b stored as bf16 (E of the `dh` form). */
  bf16: boolean;
  /** N % 4 = 0: 4-wide loads of b and stores of c. */
  vec: boolean;
  /** 4-wide loads of dz (`dh`: ldz % 4 = 0; `de`: ldz % TM = 0, TM % 4 = 0). */
  a4: boolean;
  /** Output rows per invocation (shared by the workgroup). */
  tm: number;
  /** Output columns per invocation, in groups of 4. */
  tn4: number;
  /** Invocations per workgroup. */
  wg: number;
}

/** The `sg` variant's tile of `logprobs_dh`: 4 rows × 4 columns per workgroup of 64. */
export const SG_ACC_TILE: Readonly<Pick<AccConstants, "tm" | "tn4" | "wg">> = Object.freeze({
  tm: 4,
  tn4: 1,
  wg: 64,
});

/** k values summed in a partial accumulator before it joins the total (f32 error). */
const K_BLOCK = 128;

function accLoaders(c: AccConstants): string {
  const aType = c.a4 ? "vec4<f32>" : "f32";
  let bType: string, load: string;
  if (c.bf16) {
    const unpack = "vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u))";
    const pair = `fn bf16x2(w: u32) -> vec2<f32> { return ${unpack}; }`;
    bType = c.vec ? "vec2<u32>" : "u32";
    load = c.vec
      ? `${pair}
fn b4(i: u32) -> vec4<f32> { let w = b[i >> 2u]; return vec4<f32>(bf16x2(w.x), bf16x2(w.y)); }`
      : `${pair}
fn b1(i: u32) -> f32 { return bf16x2(b[i >> 1u])[i & 1u]; }`;
  } else {
    bType = c.vec ? "vec4<f32>" : "f32";
    load = c.vec
      ? "fn b4(i: u32) -> vec4<f32> { return b[i >> 2u]; }"
      : "fn b1(i: u32) -> f32 { return b[i]; }";
  }
  const [aShape, bShape, cShape] = c.form === "dh"
    ? ["dz [T, ldz]", `E part [rows, N] ${c.bf16 ? "bf16 pairs" : "f32"}`, "dh [T, N]"]
    : ["dz [T, ldz]", "h [T, N] f32", "dE part [rows, N] f32"];
  return `
@group(0) @binding(1) var<storage, read> a: array<${aType}>; // ${aShape}
@group(0) @binding(2) var<storage, read> b: array<${bType}>; // ${bShape}
@group(0) @binding(3) var<storage, read> grad: array<f32>; // [T]
@group(0) @binding(4) var<storage, read_write> c: array<${
    c.vec ? "vec4<f32>" : "f32"
  }>; // ${cShape}
${load}`;
}

/** One k step of `width` values: A (uniform) loads, B loads, FMAs. */
function accStep(c: AccConstants, width: 4 | 1): string {
  const ks = width === 4 ? [0, 1, 2, 3] : [0];
  let s = "";
  let aAt = (i: number, kk: number) => `a${i}[${kk}]`;
  if (c.form === "de" && c.a4) {
    // dz[k, row0 .. row0 + TM) is contiguous: TM/4 vec4 loads per k.
    for (const kk of ks) {
      for (let q = 0; q < c.tm / 4; q++) {
        s += `let a${q}_${kk} = a[(((k + ${kk}u) * p.ldz + row0) >> 2u) + ${q}u];\n`;
      }
    }
    aAt = (i, kk) => `a${i >> 2}_${kk}[${i & 3}]`;
  } else {
    for (let i = 0; i < c.tm; i++) {
      if (c.form === "de") {
        s += `let a${i} = vec4<f32>(${ks.map((kk) => `a[ar${i} + (k + ${kk}u) * p.ldz]`)});\n`;
      } else if (c.a4) {
        s += width === 4
          ? `let a${i} = a[(ar${i} + k) >> 2u];\n`
          : `let a${i} = vec4<f32>(a[(ar${i} + k) >> 2u][(ar${i} + k) & 3u]);\n`;
      } else s += `let a${i} = vec4<f32>(${ks.map((kk) => `a[ar${i} + k + ${kk}u]`)});\n`;
    }
  }
  for (let g = 0; g < c.tn4; g++) {
    for (const kk of ks) {
      const row = `(k + ${kk}u) * p.N`;
      const cols = [0, 1, 2, 3].map((j) => `b1(${row} + bc${g}_${j})`);
      s += `let b${g}_${kk} = ${c.vec ? `b4(${row} + bc${g})` : `vec4<f32>(${cols})`};\n`;
    }
    for (let i = 0; i < c.tm; i++) {
      for (const kk of ks) {
        s += `acc${i}_${g} = fma(vec4<f32>(${aAt(i, kk)}), b${g}_${kk}, acc${i}_${g});\n`;
      }
    }
  }
  return s;
}

/**
 * WGSL of `logprobs_dh` / `logprobs_de` (see {@linkcode AccConstants}). The `dh` form returns
 * early when every row of its tile has a zero grad; the `de` form skips k steps (tokens) whose
 * grads are all zero.
 *
 * @param c Constants.
 * @returns The WGSL source.
 */
export function accSource(c: AccConstants): string {
  if (c.sg === true) return accSubgroupSource(c);
  const { tm, tn4 } = c;
  let setup = "", flush = "", store = "";
  for (let i = 0; i < tm; i++) {
    const row = `min(row0 + ${i}u, p.M - 1u)`;
    if (c.form === "dh") setup += `let ar${i} = ${row} * p.ldz;\n`;
    else if (!c.a4) setup += `let ar${i} = ${row};\n`;
  }
  for (let g = 0; g < tn4; g++) {
    setup += columnBases(c.vec, g);
    for (let i = 0; i < tm; i++) {
      setup += `var acc${i}_${g} = vec4<f32>();\nvar tot${i}_${g} = vec4<f32>();\n`;
      flush += `tot${i}_${g} += acc${i}_${g}; acc${i}_${g} = vec4<f32>();\n`;
      const o = `p.c_off + (row0 + ${i}u) * p.N + col0 + ${g * 4}u`;
      if (c.vec) {
        store += `if (row0 + ${i}u < p.M && col0 + ${g * 4}u < p.N) {
    let o = (${o}) >> 2u; c[o] = c[o] + tot${i}_${g} + acc${i}_${g};\n  }\n`;
      } else {
        for (let j = 0; j < 4; j++) {
          store += `if (row0 + ${i}u < p.M && col0 + ${g * 4 + j}u < p.N) {
    let o = ${o} + ${j}u; c[o] = c[o] + (tot${i}_${g}[${j}] + acc${i}_${g}[${j}]);\n  }\n`;
        }
      }
    }
  }
  const skipRows = c.form === "dh"
    ? `var live = false; // workgroup-uniform
  for (var i = 0u; i < ${tm}u; i++) { live = live || grad[min(row0 + i, p.M - 1u)] != 0.0; }
  if (!live) { return; }`
    : "";
  const skip4 = c.form === "de"
    ? "if (all(vec4<f32>(grad[k], grad[k + 1u], grad[k + 2u], grad[k + 3u]) == vec4<f32>())) { continue; }"
    : "";
  const skip1 = c.form === "de" ? "if (grad[k] == 0.0) { continue; }" : "";
  return /* wgsl */ `
struct Params {
  M: u32, N: u32, K: u32, // output rows, columns (D), reduction length
  ldz: u32,               // row stride of dz
  b_off: u32,             // element offset of b's row 0 (E chunk inside its part)
  c_off: u32,             // element offset of c's row 0 (dE chunk inside its part)
}
@group(0) @binding(0) var<uniform> p: Params;
${accLoaders(c)}

@compute @workgroup_size(${c.wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let row0 = wid.y * ${tm}u; // uniform over the workgroup
  let col0 = (wid.x * ${c.wg}u + lane) * ${tn4 * 4}u;
  ${skipRows}
  ${setup}
  let k4 = p.K & ~3u;
  for (var k0 = 0u; k0 < k4; k0 += ${K_BLOCK}u) {
    let k_end = min(k0 + ${K_BLOCK}u, k4);
    for (var k = k0; k < k_end; k += 4u) {
      ${skip4}
${accStep(c, 4)}    }
    ${flush}
  }
  for (var k = k4; k < p.K; k++) {
    ${skip1}
${accStep(c, 1)}  }
  ${store}
}`;
}

/** WGSL: the clamped column offsets into `b` of column quad `g` (one vec4 or four scalars). */
function columnBases(vec: boolean, g: number): string {
  if (vec) return `let bc${g} = p.b_off + min(col0 + ${g * 4}u, p.N - 4u);\n`;
  return [0, 1, 2, 3].map((j) =>
    `let bc${g}_${j} = p.b_off + min(col0 + ${g * 4 + j}u, p.N - 1u);\n`
  )
    .join("");
}

/**
 * WGSL of the `sg` variant of `logprobs_dh` (constant `sg: true`): split-K. A workgroup owns
 * one `TM × 4·TN4` tile of dh; lane `l` sums k = 4l, 4l + 4·WG, … (then the tail k ≥ K & ~3 one
 * by one); each accumulator is summed over the subgroup, elected into workgroup slots, and
 * summed over the slots by every subgroup (see `_reduce_variant.ts`); lane `o` adds output `o`.
 *
 * @param c Constants (`form: "dh"`, the `SG_ACC_TILE` tile).
 * @returns The WGSL source.
 */
function accSubgroupSource(c: AccConstants): string {
  const { tm, tn4, wg } = c;
  const outs = tm * tn4;
  let setup = "", reduce = "", store = "";
  for (let i = 0; i < tm; i++) setup += `let ar${i} = min(row0 + ${i}u, p.M - 1u) * p.ldz;\n`;
  for (let g = 0; g < tn4; g++) {
    setup += columnBases(c.vec, g);
    for (let i = 0; i < tm; i++) {
      const o = i * tn4 + g;
      setup += `var acc${i}_${g} = vec4<f32>();\n`;
      reduce += `red[${
        o * wg
      }u + lane] = select(vec4<f32>(), subgroupAdd(acc${i}_${g}), elected);\n`;
      const at = `p.c_off + (row0 + ${i}u) * p.N + col0 + ${g * 4}u`;
      const add = c.vec
        ? `if (row0 + ${i}u < p.M && col0 + ${g * 4}u < p.N) {
      let o = (${at}) >> 2u; c[o] = c[o] + tot;
    }`
        : [0, 1, 2, 3].map((j) =>
          `if (row0 + ${i}u < p.M && col0 + ${
            g * 4 + j
          }u < p.N) { let o = ${at} + ${j}u; c[o] = c[o] + tot[${j}]; }`
        ).join("\n    ");
      store += `{
    var t = vec4<f32>();
    for (var j = sg_rank; j < ${wg}u; j += sg_count) { t += red[${o * wg}u + j]; }
    let tot = subgroupAdd(t);
    if (lane == ${o}u) {
    ${add}
    }
  }
  `;
    }
  }
  return /* wgsl */ `${SG_ENABLE}
struct Params {
  M: u32, N: u32, K: u32, // output rows (T), columns (D), reduction length (chunk rows)
  ldz: u32,               // row stride of dz
  b_off: u32,             // element offset of b's row 0 (E chunk inside its part)
  c_off: u32,             // element offset of c's row 0 (unused: 0)
}
@group(0) @binding(0) var<uniform> p: Params;
${accLoaders(c)}
${SG_STATE}
var<workgroup> red: array<vec4<f32>, ${outs * wg}>; // [TM·TN4 outputs, WG slots]

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let row0 = wid.y * ${tm}u; // the workgroup's tile (uniform)
  let col0 = wid.x * ${tn4 * 4}u;
  var live = false; // workgroup-uniform
  for (var i = 0u; i < ${tm}u; i++) { live = live || grad[min(row0 + i, p.M - 1u)] != 0.0; }
  if (!live) { return; }
  sg_init();
  ${setup}
  let k4 = p.K & ~3u;
  for (var k = lane * 4u; k < k4; k += ${wg * 4}u) {
${accStep(c, 4)}  }
  for (var k = k4 + lane; k < p.K; k += ${wg}u) {
${accStep(c, 1)}  }
  let elected = subgroupElect();
  ${reduce}
  workgroupBarrier();
  ${store}
}`;
}
