/**
 * WGSL templates of the log-prob forward (`logprobs.ts` holds the launcher and the design) and
 * the dot-product pieces its backward shares: the register-blocked block `h·Eᵀ` over `TT` tokens
 * × `TV` vocabulary rows, and the forward's partial and combine kernels.
 *
 * @module
 */

import { SG_ENABLE, SG_STATE } from "./_reduce_variant.ts";

/** Specialisation constants of the dot-product kernels. */
export interface DotConstants extends Record<string, number | string | boolean> {
  /** Elements per load: 4 (D % 4 = 0) or 1. */
  pack: number;
  /** E stored as bf16 (else f32). */
  bf16: boolean;
  /** Tokens per invocation. */
  tt: number;
  /** Vocabulary rows per invocation per step (rows `vb + j·WG`). */
  tv: number;
  /** Invocations per workgroup. */
  wg: number;
}

/** WGSL literal used as −∞ (finite, so `exp(NEG − NEG)` stays defined). */
export const NEG = "-3.0e38";

/** @returns The WGSL type of one load of `pack` f32 values. */
export function vecType(pack: number): string {
  return pack === 1 ? "f32" : `vec${pack}<f32>`;
}

/** WGSL declarations of h and E and the loaders shared by both kernels. */
export function dotDeclarations(c: DotConstants): string {
  const vt = vecType(c.pack);
  let eDecl: string, loadE: string;
  if (!c.bf16) {
    eDecl = `array<${vt}>`;
    loadE = `fn load_e(i: u32) -> ${vt} { return e[i]; }`;
  } else if (c.pack === 4) {
    eDecl = "array<vec2<u32>>";
    loadE = `fn load_e(i: u32) -> vec4<f32> {
  let w = e[i];
  return vec4<f32>(bitcast<f32>(w.x << 16u), bitcast<f32>(w.x & 0xffff0000u),
                   bitcast<f32>(w.y << 16u), bitcast<f32>(w.y & 0xffff0000u));
}`;
  } else {
    eDecl = "array<u32>";
    loadE = `fn load_e(i: u32) -> f32 {
  let w = e[i >> 1u];
  return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u));
}`;
  }
  const comps = c.pack === 1 ? [""] : ["x", "y", "z", "w"].slice(0, c.pack).map((x) => `.${x}`);
  const chain = comps.reduce((acc, x) => `fma(a${x}, b${x}, ${acc})`, "acc");
  const mac = `fn mac(a: ${vt}, b: ${vt}, acc: f32) -> f32 { return ${chain}; }`;
  return `
@group(0) @binding(1) var<storage, read> h: array<${vt}>; // [T, D] f32
@group(0) @binding(2) var<storage, read> e: ${eDecl}; // [rows, D] this part of E${
    c.bf16 ? " (bf16, two per word)" : ""
  }
${loadE}
${mac}`;
}

/**
 * WGSL computing `acc_i_j = h[t0 + i] · E[rowBase + vb + j·WG]` for i < TT, j < TV (rows and
 * tokens clamped in range; the caller masks them).
 *
 * @param c Constants.
 * @param at `rowBase`: WGSL expression of the first row in the bound part of E (default: row
 *   0); `steps`: WGSL expression of the dot loop's trip count (default `p.dp`; 0 skips the work).
 * @returns WGSL statements.
 */
export function dotBlock(
  c: DotConstants,
  at: { readonly rowBase?: string; readonly steps?: string } = {},
): string {
  const { rowBase = "", steps = "p.dp" } = at;
  const lines: string[] = [];
  for (let j = 0; j < c.tv; j++) {
    const row = `min(vb + ${j * c.wg}u, p.rows - 1u)`;
    lines.push(`let r${j} = ${rowBase ? `(${rowBase} + ${row})` : row} * p.dp;`);
  }
  for (let i = 0; i < c.tt; i++) {
    lines.push(`let th${i} = min(t0 + ${i}u, p.tokens - 1u) * p.dp;`);
    for (let j = 0; j < c.tv; j++) lines.push(`var acc_${i}_${j} = 0.0;`);
  }
  lines.push(`for (var k = 0u; k < ${steps}; k++) {`);
  for (let j = 0; j < c.tv; j++) lines.push(`  let e${j} = load_e(r${j} + k);`);
  for (let i = 0; i < c.tt; i++) {
    lines.push(`  let h${i} = h[th${i} + k];`);
    for (let j = 0; j < c.tv; j++) {
      lines.push(`  acc_${i}_${j} = mac(h${i}, e${j}, acc_${i}_${j});`);
    }
  }
  lines.push("}");
  return lines.join("\n    ");
}

/** The entropy pieces of {@linkcode partialSource} the reductions use. */
interface EntropyPieces {
  readonly merge: string;
  readonly spill: string;
  readonly write: string;
}

/** The `reg` variant's end of `logprobs_partial`: a pairwise tree of the (m, s, w) triples. */
function treeReduction(c: DotConstants, e: EntropyPieces): string {
  return `for (var i = 0u; i < ${c.tt}u; i++) {
    red_m[i * ${c.wg}u + lid] = m[i];
    red_s[i * ${c.wg}u + lid] = s[i];${e.spill}
  }
  workgroupBarrier();
  for (var off = ${c.wg / 2}u; off > 0u; off >>= 1u) {
    if (lid < off) {
      for (var i = 0u; i < ${c.tt}u; i++) { merge(i * ${c.wg}u + lid, i * ${c.wg}u + lid + off); }
    }
    workgroupBarrier();
  }
  if (lid < ${c.tt}u && t0 + lid < p.tokens) {
    partial[(t0 + lid) * p.chunks + p.chunk_offset + wid.x] =
      vec2<f32>(red_m[lid * ${c.wg}u], red_s[lid * ${c.wg}u]);${e.write}
  }`;
}

/**
 * The `sg` variant's end of `logprobs_partial`: per token, the subgroup's (max, rescaled sums),
 * elected into workgroup slots, then each subgroup merges every slot (online, by rank) and
 * reduces once more (see `_reduce_variant.ts`); invocation 0 writes the token block's pairs.
 */
function sgReduction(c: DotConstants, ent: boolean): string {
  const w = (x: string) => (ent ? x : "");
  return `for (var i = 0u; i < ${c.tt}u; i++) {
    let mm = subgroupMax(m[i]);
    let f = exp(m[i] - mm);
    let ss = subgroupAdd(s[i] * f);${
    w("\n    let ww = subgroupAdd(f * (w[i] + (m[i] - mm) * s[i]));")
  }
    let elected = subgroupElect();
    red_m[i * ${c.wg}u + lid] = select(${NEG}, mm, elected);
    red_s[i * ${c.wg}u + lid] = select(0.0, ss, elected);${
    w(`\n    red_w[i * ${c.wg}u + lid] = select(0.0, ww, elected);`)
  }
  }
  workgroupBarrier();
  for (var i = 0u; i < ${c.tt}u; i++) {
    var acc_m = ${NEG};
    var acc_s = 0.0;${w("\n    var acc_w = 0.0;")}
    for (var j = sg_rank; j < ${c.wg}u; j += sg_count) {
      let k = i * ${c.wg}u + j;
      let mx = max(acc_m, red_m[k]);
      let fa = exp(acc_m - mx);
      let fb = exp(red_m[k] - mx);${
    w("\n      acc_w = fa * (acc_w + (acc_m - mx) * acc_s) + fb * (red_w[k] + (red_m[k] - mx) * red_s[k]);")
  }
      acc_s = acc_s * fa + red_s[k] * fb;
      acc_m = mx;
    }
    let mm = subgroupMax(acc_m);
    let f = exp(acc_m - mm);
    let ss = subgroupAdd(acc_s * f);${
    w("\n    let ww = subgroupAdd(f * (acc_w + (acc_m - mm) * acc_s));")
  }
    if (lid == 0u && t0 + i < p.tokens) {
      let at = (t0 + i) * p.chunks + p.chunk_offset + wid.x;
      partial[at] = vec2<f32>(mm, ss);${w("\n      partial_w[at] = ww;")}
    }
  }`;
}

/**
 * WGSL of `logprobs_partial`: per (token block, chunk) online `(max, Σ exp)` and target logits.
 * With the extra constant `entropy: true` (absent = off: the plain kernel's source and pipeline
 * key), also `w = Σ exp(x − m)·(x − m)` into binding 6, rescaled with the running max: moving
 * m → m' turns w into `exp(m − m')·(w + (m − m')·s)`. With the extra constant `sg: true` (the
 * `sg` variant) the workgroup's (m, s, w) merge runs on subgroup operations instead of a tree.
 */
export const partialSource = (c: DotConstants): string => {
  const n = c.tt * c.tv;
  const ent = c.entropy === true;
  const sg = c.sg === true;
  const spill: string[] = [];
  for (let i = 0; i < c.tt; i++) {
    for (let j = 0; j < c.tv; j++) spill.push(`xs[${i * c.tv + j}] = acc_${i}_${j};`);
  }
  const ok = Array.from({ length: c.tv }, (_, j) => `let ok${j} = vb + ${j * c.wg}u < p.rows;`);
  const xs = Array.from(
    { length: c.tv },
    (_, j) => `let x${j} = select(${NEG}, xs[i * ${c.tv}u + ${j}u] * p.inv_temp, ok${j});`,
  );
  const mx = Array.from({ length: c.tv }, (_, j) => `x${j}`).reduce(
    (a, b) => `max(${a}, ${b})`,
    "m[i]",
  );
  const sum = Array.from({ length: c.tv }, (_, j) => ` + select(0.0, exp(x${j} - mx), ok${j})`);
  const wsum = Array.from(
    { length: c.tv },
    (_, j) => ` + select(0.0, exp(x${j} - mx) * (x${j} - mx), ok${j})`,
  );
  // Entropy pieces ("" when off, so the plain kernel's source is unchanged).
  const e = ent
    ? {
      binding: "\n@group(0) @binding(6) var<storage, read_write> partial_w: array<f32>; " +
        "// [T, chunks] Σ exp(x − max)·(x − max)",
      shared: `\nvar<workgroup> red_w: array<f32, ${c.tt * c.wg}>;`,
      merge: "\n  red_w[a] = exp(red_m[a] - m) * (red_w[a] + (red_m[a] - m) * red_s[a]) +\n" +
        "    exp(red_m[b] - m) * (red_w[b] + (red_m[b] - m) * red_s[b]);",
      state: `\n  var w: array<f32, ${c.tt}>;`,
      init: " w[i] = 0.0;",
      update: `\n      w[i] = exp(m[i] - mx) * (w[i] + (m[i] - mx) * s[i])${wsum.join("")};`,
      spill: `\n    red_w[i * ${c.wg}u + lid] = w[i];`,
      write:
        `\n    partial_w[(t0 + lid) * p.chunks + p.chunk_offset + wid.x] = red_w[lid * ${c.wg}u];`,
    }
    : { binding: "", shared: "", merge: "", state: "", init: "", update: "", spill: "", write: "" };
  return /* wgsl */ `${sg ? SG_ENABLE : ""}
struct Params {
  tokens: u32, rows: u32, row_start: u32, chunk_offset: u32, chunks: u32, inv_temp: f32,
  dp: u32,     // D / pack: loads per dot product
  steps: u32,  // steps of WG·TV rows per chunk
}
@group(0) @binding(0) var<uniform> p: Params;
${dotDeclarations(c)}
@group(0) @binding(3) var<storage, read> targets: array<u32>; // [T] (u32 or i32 bits)
@group(0) @binding(4) var<storage, read_write> partial: array<vec2<f32>>; // [T, chunks] (max, sumexp)
@group(0) @binding(5) var<storage, read_write> tlogit: array<f32>; // [T] logit of the target${e.binding}

var<workgroup> red_m: array<f32, ${c.tt * c.wg}>;
var<workgroup> red_s: array<f32, ${c.tt * c.wg}>;${e.shared}${sg ? SG_STATE : ""}

fn merge(a: u32, b: u32) {
  let m = max(red_m[a], red_m[b]);${e.merge}
  red_s[a] = red_s[a] * exp(red_m[a] - m) + red_s[b] * exp(red_m[b] - m);
  red_m[a] = m;
}

@compute @workgroup_size(${c.wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t0 = wid.y * ${c.tt}u;
  let chunk_base = wid.x * p.steps * ${c.wg * c.tv}u;${sg ? "\n  sg_init();" : ""}
  // Online (max, Σ exp(x − max)) per token of the tile.
  var m: array<f32, ${c.tt}>;
  var s: array<f32, ${c.tt}>;${e.state}
  for (var i = 0u; i < ${c.tt}u; i++) { m[i] = ${NEG}; s[i] = 0.0;${e.init} }
  var xs: array<f32, ${n}>;
  for (var step = 0u; step < p.steps; step++) {
    let vb = chunk_base + step * ${c.wg * c.tv}u + lid;
    ${dotBlock(c)}
    // subtle: the softmax update runs as a loop over tokens (not unrolled ${n} times), which
    // keeps llvmpipe's shader compile time in seconds instead of tens of seconds.
    ${spill.join("\n    ")}
    ${ok.join("\n    ")}
    for (var i = 0u; i < ${c.tt}u; i++) {
      ${xs.join("\n      ")}
      let mx = ${mx};${e.update}
      s[i] = s[i] * exp(m[i] - mx)${sum.join("")};
      m[i] = mx;
      // The one row equal to the target (tokens past T never match).
      let t = t0 + i;
      let rel = targets[min(t, p.tokens - 1u)] - p.row_start - vb;
      if (t < p.tokens && rel % ${c.wg}u == 0u && rel / ${c.wg}u < ${c.tv}u && vb + rel < p.rows) {
        tlogit[t] = xs[i * ${c.tv}u + rel / ${c.wg}u] * p.inv_temp;
      }
    }
  }
  ${sg ? sgReduction(c, ent) : treeReduction(c, e)}
}`;
};

/** Workgroup size of `logprobs_combine`. */
export const COMBINE_WG = 64;

/**
 * WGSL of `logprobs_combine`: merges the chunk pairs into `lse` and `logp`; with `entropy`, also
 * the entropy `H = log S − W/S` (S = Σ exp(x − M), W = Σ exp(x − M)·(x − M), M the row max),
 * which equals `lse − Σ p·x` without subtracting two numbers of the logits' magnitude.
 */
export const combineSource = (c: Record<string, number | string | boolean> = {}): string => {
  const ent = c.entropy === true;
  const binding = ent
    ? `
@group(0) @binding(6) var<storage, read> partial_w: array<f32>;     // [T, chunks]
@group(0) @binding(7) var<storage, read_write> entropy: array<f32>; // [T]`
    : "";
  const wInit = ent ? "\n  var w = 0.0;" : "";
  const wAdd = ent ? "\n    w += exp(q.x - m) * (partial_w[base + c] + (q.x - m) * q.y);" : "";
  const wOut = ent ? "\n  entropy[t] = log(s) - w / s;" : "";
  return /* wgsl */ `
struct Params { tokens: u32, chunks: u32, vocab: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<vec2<f32>>; // [T, chunks] (max, sumexp)
@group(0) @binding(2) var<storage, read> tlogit: array<f32>;        // [T]
@group(0) @binding(3) var<storage, read> targets: array<u32>;       // [T]
@group(0) @binding(4) var<storage, read_write> logp: array<f32>;    // [T]
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;     // [T]${binding}

// subtle: a quiet NaN's bits in a variable, so the NaN is made at run time; as a constant
// expression, bitcast<f32>(0x7fc00000u), Tint rejects it ("value nan cannot be represented").
var<private> nan_bits: u32 = 0x7fc00000u;

@compute @workgroup_size(${COMBINE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * ${COMBINE_WG}u;
  if (t >= p.tokens) { return; }
  let base = t * p.chunks;
  var m = ${NEG};
  for (var c = 0u; c < p.chunks; c++) { m = max(m, partial[base + c].x); }
  var s = 0.0;${wInit}
  for (var c = 0u; c < p.chunks; c++) {
    let q = partial[base + c];${wAdd}
    s += q.y * exp(q.x - m);
  }
  let l = m + log(s);
  lse[t] = l;${wOut}
  // A target outside [0, V) never met a row: report NaN rather than stale memory.
  logp[t] = select(bitcast<f32>(nan_bits), tlogit[t] - l, targets[t] < p.vocab);
}`;
};
