/**
 * WGSL template of the matmul kernels (see `matmul.ts` for the launchers and the design):
 * one register-blocked template for `a·bᵀ`, `a·b` and `aᵀ·b`, specialised on the operand
 * layout, the dtype and alignment of `b`, and the tile.
 *
 * @module
 */

import { WGSL_GELU_TANH } from "./_geglu_wgsl.ts";

/** Layout of the operands: `nt` = a·bᵀ (b `[N,K]`), `nn` = a·b (b `[K,N]`), `tn` = aᵀ·b. */
export type MatmulForm = "nt" | "nn" | "tn";
/**
 * Epilogue, a uniform: 0 `c = α·acc`, 1 `c += α·acc`, 2 `c = r + α·acc`, and the GeGLU-gated
 * 3 `c = gelu_tanh(r)·(α·acc)`, 4 `c = gelu_tanh(r)·(c + α·acc)` (`r` is the gate then).
 */
export type Epilogue = 0 | 1 | 2 | 3 | 4;
/** `c = α·acc`. */
export const STORE: Epilogue = 0;
/** `c += α·acc`. */
export const ACCUMULATE: Epilogue = 1;
/** `c = r + α·acc`. */
export const RESIDUAL: Epilogue = 2;
/** `c = gelu_tanh(r)·(α·acc)`: {@linkcode STORE}, then GeGLU with gate `r`. */
export const GATED_STORE: Epilogue = 3;
/** `c = gelu_tanh(r)·(c + α·acc)`: {@linkcode ACCUMULATE}, then GeGLU with gate `r`. */
export const GATED_ACCUMULATE: Epilogue = 4;

/**
 * The gated form of an epilogue (the mode of a launch's final write when it has a gate).
 *
 * @param e {@linkcode STORE} or {@linkcode ACCUMULATE}.
 * @returns {@linkcode GATED_STORE} or {@linkcode GATED_ACCUMULATE}.
 */
export function gated(e: Epilogue): Epilogue {
  return e === ACCUMULATE ? GATED_ACCUMULATE : GATED_STORE;
}

/**
 * WGSL of the epilogue, shared by every matmul kernel (needs `p.mode` and bindings `c`, `r`):
 * the same f32 operations as the unfused sequence, `v = y (+ c | + r)` for `y = α·acc`, then in
 * modes 3 and 4 `gelu_tanh(gate)·v` exactly as the GeGLU kernel computes it.
 *
 * - `epilogue(o, y)`: the value written to `c[o]` (kernels with a few stores per invocation).
 * - `epilogue_sum(o, y)`, then a loop of `gate_count(outputs)` `gate_output(o)` calls: kernels
 *   with many unrolled stores write `v` and gate their outputs in one loop afterwards (reading
 *   back the `v` they wrote: the same value). subtle: Mesa inlines every call, so a gelu per
 *   store is compiled once per store: that doubled llvmpipe's compile time of the 16-row,
 *   16-column register tile (12 s → 25 s); the loop keeps it within noise.
 */
export const WGSL_EPILOGUE: string = /* wgsl */ `${WGSL_GELU_TANH}
fn epilogue_sum(o: u32, y: f32) -> f32 {
  if (p.mode == 1u || p.mode == 4u) { return y + c[o]; }
  if (p.mode == 2u) { return y + r[o]; }
  return y;
}
fn epilogue(o: u32, y: f32) -> f32 {
  let v = epilogue_sum(o, y);
  if (p.mode >= 3u) { return gelu_tanh(r[o]) * v; }
  return v;
}
// How many gated outputs to visit: 0 outside modes 3 and 4 (a run-time trip count, so the
// compiler keeps one loop body instead of unrolling a gelu per output).
fn gate_count(outputs: u32) -> u32 {
  return select(0u, outputs, p.mode >= 3u);
}
fn gate_output(o: u32) {
  c[o] = gelu_tanh(r[o]) * c[o];
}`;

/**
 * WGSL: the uniform fields every matmul kernel starts its `Params` with, in the order
 * `_matmul_launch.ts` writes them (the tiled kernel appends its own).
 */
export const WGSL_MATMUL_PARAMS: string =
  `  M: u32, N: u32, K: u32,        // output rows, output columns, reduction length
  lda: u32, ldb: u32, ldc: u32,  // row strides in elements
  a_off: u32, b_off: u32,        // k offset into a rows, element offset into b
  c_off: u32,                    // column offset into c rows
  sa: u32, sb: u32, sc: u32,     // batch strides in elements
  alpha: f32,
  mode: u32,                     // 0: c = α·acc, 1: c += α·acc, 2: c = r + α·acc,
                                 // 3: c = gelu(r)·α·acc, 4: c = gelu(r)·(c + α·acc)
`;

/** The constants one matmul pipeline is specialised on (its pipeline-cache key). */
export interface MatmulVariant {
  /** Operand layout. */
  form: MatmulForm;
  /** `b` holds bf16 pairs (else f32). */
  bf16: boolean;
  /** K % 4 = 0 and every row/offset vec4-aligned: vector loads, no K tail loop. */
  aligned: boolean;
  /** bf16 `a·bᵀ` with K % 8 = 0: 8 values of a `b` row per vec4<u32> load. */
  wide: boolean;
  /** Output rows per workgroup. */
  tm: number;
  /** Output columns per lane / 4. */
  tn4: number;
  /** Lanes per workgroup. */
  wg: number;
  [key: string]: string | number | boolean;
}

/** k values summed in a partial accumulator before it joins the total. */
const K_BLOCK = 128;

const BF16 = /* wgsl */ `
fn bf16x2(w: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}`;

/** WGSL loaders: `avec/bvec(i)` = elements i..i+3, `ael/bel(i)` = element i. */
function loaders(v: MatmulVariant): string {
  const aVec = v.aligned && v.form !== "tn";
  let s = aVec ? "fn avec(i: u32) -> vec4<f32> { return a[i >> 2u]; }\n" : `
fn ael(i: u32) -> f32 { return a[i]; }
fn avec(i: u32) -> vec4<f32> { return vec4<f32>(a[i], a[i + 1u], a[i + 2u], a[i + 3u]); }\n`;
  if (v.bf16) {
    // Aligned: one vec2<u32> load per 4 values (per-lane vector loads are cheap on llvmpipe).
    s += BF16 + (v.wide ? "\n" : v.aligned
      ? `
fn bvec(i: u32) -> vec4<f32> { let w = b[i >> 2u]; return vec4<f32>(bf16x2(w.x), bf16x2(w.y)); }\n`
      : `
fn bel(i: u32) -> f32 { return bf16x2(b[i >> 1u])[i & 1u]; }
fn bvec(i: u32) -> vec4<f32> { return vec4<f32>(bel(i), bel(i + 1u), bel(i + 2u), bel(i + 3u)); }\n`);
  } else if (v.aligned) {
    s += "fn bvec(i: u32) -> vec4<f32> { return b[i >> 2u]; }\n";
  } else {
    s += `fn bel(i: u32) -> f32 { return b[i]; }
fn bvec(i: u32) -> vec4<f32> { return vec4<f32>(b[i], b[i + 1u], b[i + 2u], b[i + 3u]); }\n`;
  }
  return s;
}

/**
 * One step of the K loop over `width` (4 or 1) values of k starting at `k + 4·half`: loads the
 * rows' A values (uniform), then per column group the 4×width B block, then the FMAs. In the
 * `wide` variant (x·Wᵀ, bf16, K % 8 = 0) half 0 loads 8 bf16 per column as one vec4<u32> and
 * half 1 uses the upper 4.
 */
function kStep(v: MatmulVariant, width: 4 | 1, half = 0): string {
  const { tm, tn4, form } = v;
  const ks = width === 4 ? [0, 1, 2, 3] : [0];
  const h = `_${half}`;
  const k = half ? "k + 4u" : "k";
  let s = "";
  for (let i = 0; i < tm; i++) {
    if (form === "tn") {
      s += width === 4
        ? `let a${i}${h} = vec4<f32>(${ks.map((kk) => `ael(ar${i} + (k + ${kk}u) * p.lda)`)});\n`
        : `let a${i}${h} = ael(ar${i} + k * p.lda);\n`;
    } else s += `let a${i}${h} = ${width === 4 ? "avec" : "ael"}(ar${i} + ${k});\n`;
  }
  const aAt = (i: number, kk: number) => (width === 4 ? `a${i}${h}[${kk}]` : `a${i}${h}`);
  for (let g = 0; g < tn4; g++) {
    const bt: string[] = [];
    if (form === "nt") {
      // Column j of the tile is row n_j of b: read 4 consecutive k, then transpose.
      for (let j = 0; j < 4; j++) {
        const col = `${g}_${j}`;
        if (v.wide && half === 0) s += `let w${col} = b[(br${g * 4 + j} + k) >> 3u];\n`;
        s += v.wide
          ? `let b${col}${h} = vec4<f32>(bf16x2(w${col}.${half ? "z" : "x"}), ` +
            `bf16x2(w${col}.${half ? "w" : "y"}));\n`
          : width === 4
          ? `let b${col}${h} = bvec(br${g * 4 + j} + k);\n`
          : `let b${col}${h} = bel(br${g * 4 + j} + k);\n`;
      }
      for (const kk of ks) {
        const el = (j: number) => (width === 4 ? `b${g}_${j}${h}[${kk}]` : `b${g}_${j}${h}`);
        bt.push(`vec4<f32>(${el(0)}, ${el(1)}, ${el(2)}, ${el(3)})`);
      }
    } else {
      for (const kk of ks) {
        const row = `bb + (k + ${kk}u) * p.ldb`;
        bt.push(
          v.aligned
            ? `bvec(${row} + bc${g})`
            : `vec4<f32>(${[0, 1, 2, 3].map((j) => `bel(${row} + bc${g * 4 + j})`)})`,
        );
      }
    }
    // acc-major order: each accumulator takes its 4 k-steps back to back (less spilling).
    ks.forEach((kk) => (s += `let bt${g}_${kk}${h} = ${bt[kk]};\n`));
    for (let i = 0; i < tm; i++) {
      for (const kk of ks) {
        s += `acc${i}_${g} = fma(vec4<f32>(${aAt(i, kk)}), bt${g}_${kk}${h}, acc${i}_${g});\n`;
      }
    }
  }
  return s;
}

/**
 * The WGSL source of one matmul variant.
 *
 * @param v The variant.
 * @returns WGSL with entry point `main`.
 */
export function matmulSource(v: MatmulVariant): string {
  const { tm, tn4, wg, form } = v;
  const aType = v.aligned && form !== "tn" ? "vec4<f32>" : "f32";
  const bType = v.wide
    ? "vec4<u32>"
    : v.bf16
    ? (v.aligned ? "vec2<u32>" : "u32")
    : v.aligned
    ? "vec4<f32>"
    : "f32";
  let setup = "";
  for (let i = 0; i < tm; i++) {
    const row = `min(row0 + ${i}u, p.M - 1u)`;
    setup += form === "tn"
      ? `let ar${i} = batch * p.sa + ${row};\n`
      : `let ar${i} = batch * p.sa + ${row} * p.lda + p.a_off;\n`;
  }
  for (let g = 0; g < tn4; g++) {
    for (let j = 0; j < 4; j++) {
      const n = `min(col0 + ${g * 4 + j}u, p.N - 1u)`;
      if (form === "nt") setup += `let br${g * 4 + j} = bb + ${n} * p.ldb;\n`;
      else if (!v.aligned) setup += `let bc${g * 4 + j} = ${n};\n`;
    }
    if (form !== "nt" && v.aligned) setup += `let bc${g} = min(col0 + ${g * 4}u, p.N - 4u);\n`;
    for (let i = 0; i < tm; i++) {
      setup += `var acc${i}_${g} = vec4<f32>();\nvar tot${i}_${g} = vec4<f32>();\n`;
    }
  }
  let store = "";
  for (let i = 0; i < tm; i++) {
    for (let g = 0; g < tn4; g++) {
      store += `put4(cb, row0 + ${i}u, col0 + ${g * 4}u, tot${i}_${g} + acc${i}_${g});\n`;
    }
  }
  let flush = "";
  for (let i = 0; i < tm; i++) {
    for (let g = 0; g < tn4; g++) {
      flush += `tot${i}_${g} += acc${i}_${g}; acc${i}_${g} = vec4<f32>();\n`;
    }
  }
  const tail = v.aligned ? "" : `for (var k = p.K & ~3u; k < p.K; k++) {\n${kStep(v, 1)}}\n`;
  const [aShape, bShape] = form === "nt"
    ? ["[batch, M, lda] (K values from a_off)", "[batch, N, K]"]
    : form === "nn"
    ? ["[batch, M, lda] (K values from a_off)", "[batch, K, N]"]
    : ["[batch, K, M]", "[batch, K, N]"];
  return /* wgsl */ `
struct Params {
${WGSL_MATMUL_PARAMS}}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<${aType}>;  // ${aShape}, f32
@group(0) @binding(2) var<storage, read> b: array<${bType}>;  // ${bShape}, ${
    v.bf16 ? "bf16 pairs" : "f32"
  }
@group(0) @binding(3) var<storage, read_write> c: array<f32>; // [batch, M, ldc] from c_off
@group(0) @binding(4) var<storage, read> r: array<f32>;     // like c: residual (2), gate (3, 4)
${loaders(v)}
${WGSL_EPILOGUE}
fn put4(cb: u32, row: u32, col: u32, v: vec4<f32>) {
  if (row >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    if (col + j < p.N) {
      let o = cb + row * p.ldc + col + j;
      c[o] = epilogue_sum(o, p.alpha * v[j]);
    }
  }
}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let batch = wid.z;
  let row0 = wid.y * ${tm}u;                          // uniform over the workgroup
  let col0 = (wid.x * ${wg}u + lane) * ${tn4 * 4}u;
  let bb = batch * p.sb + p.b_off;
  let cb = batch * p.sc + p.c_off;
  ${setup}
  // Blocked accumulation: partial sums over ${K_BLOCK} k, then into the totals (f32 error
  // grows with the block count and length, not with K).
  for (var k0 = 0u; k0 + 3u < p.K; k0 += ${K_BLOCK}u) {
    let k_end = min(k0 + ${K_BLOCK}u, p.K & ~3u);
    for (var k = k0; k < k_end; k += ${v.wide ? 8 : 4}u) {
${v.wide ? kStep(v, 4, 0) + kStep(v, 4, 1) : kStep(v, 4)}    }
    ${flush}
  }
  ${tail}${store}
  // Modes 3 and 4: gate this invocation's outputs (rows row0.., columns col0..).
  let rows = min(p.M - row0, ${tm}u);
  let cols = min(p.N - min(col0, p.N), ${tn4 * 4}u);
  for (var e = 0u; e < gate_count(rows * cols); e++) {
    gate_output(cb + (row0 + e / cols) * p.ldc + col0 + e % cols);
  }
}`;
}
