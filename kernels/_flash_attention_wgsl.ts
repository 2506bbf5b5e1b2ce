/**
 * WGSL of the flash-attention prefill forward (`attention.ts` holds the launcher and the design
 * of its variants): a workgroup per block of query rows, K/V tiles staged in workgroup memory,
 * online softmax in f32. Also the WGSL helpers the flash backward shares.
 *
 * Workgroup arrays are `vec4<f32>` arrays (f32 data packed four to an element): naga's GL
 * backend zero-initialises workgroup memory with one constructor listing every element, which
 * Mesa's GLSL compiler builds in time quadratic in the elements (a 1024-element f32 array took
 * 4.5 s on llvmpipe, the same bytes as 256 vec4 0.5 s).
 *
 * @module
 */

/** Constants of {@linkcode flashAttentionSource}. */
export interface FlashAttentionConstants extends Record<string, number> {
  /** Head dimension D. */
  d: number;
  /** Values per load: 4 (vec4, when D % 4 = 0) or 1. */
  w: number;
  /** Query rows (token, head of the group) per workgroup. */
  rows: number;
  /** Invocations per row; each owns every `lanes`-th vector column of the row. */
  lanes: number;
  /** Keys per tile staged in workgroup memory. */
  tile: number;
}

/** The tiling constants the flash kernels share. */
export interface FlashShape {
  /** Head dimension D. */
  readonly d: number;
  /** Values per load: 4 or 1. */
  readonly w: number;
  /** Rows per workgroup. */
  readonly rows: number;
  /** Invocations per row. */
  readonly lanes: number;
}

/**
 * WGSL shared by the flash kernels: the row's vector columns, the workgroup size, a dot product
 * of vectors and the packed-array accessor.
 *
 * @param c Head width, vector width, rows and lanes per row.
 * @returns Constants `DW`, `L`, `DC`, `ROWS`, `WG` and `fn dotw`.
 */
export function flashHeader(c: FlashShape): string {
  const dw = c.d / c.w;
  const T = c.w === 4 ? "vec4<f32>" : "f32";
  return `
const DW: u32 = ${dw}u;   // vectors per head row
const L: u32 = ${c.lanes}u;    // invocations per row
const DC: u32 = ${Math.ceil(dw / c.lanes)}u;   // vectors per invocation: columns lane + t·L
const ROWS: u32 = ${c.rows}u;  // rows per workgroup
const WG: u32 = ${c.rows * c.lanes}u;
fn dotw(a: ${T}, b: ${T}) -> f32 { return ${c.w === 4 ? "dot(a, b)" : "a * b"}; }`;
}

/**
 * WGSL of the loop that stages the tile's `n` key rows (from `j0`) of one KV head's `buffer`
 * (`k` or `v`, `[B, S, kvHeads, DW]`) into the workgroup tile, every invocation taking a
 * strided share. Needs `li`, `n`, `j0`, `b`, `kvh`, `WG`, `DW` and `p.seq`, `p.kv_heads`.
 *
 * @param tile The workgroup tile (`tileArray`).
 * @param buffer The storage buffer's name.
 * @returns The loop.
 */
export function stageKeyRows(tile: { at(index: string): string }, buffer: "k" | "v"): string {
  return `for (var x = li; x < n * DW; x += WG) {
      let j = j0 + i32(x / DW);
      ${tile.at("x")} = ${buffer}[((b * p.seq + u32(j)) * p.kv_heads + kvh) * DW + x % DW];
    }`;
}

/**
 * WGSL statements of a query block's key range: `lo` (the first key row i sees: range start or
 * window), and `j_lo`, `tiles` (the key tiles of `tile` keys that some row of the block sees —
 * uniform over the workgroup, so wholly masked tiles are never visited). Needs `start`, `end`,
 * `i`, `r0`, `rows`, `ROWS` and `p.window`, `p.groups` in scope.
 *
 * @param tile The WGSL constant holding the keys per tile.
 * @returns The statements.
 */
export function keyTileRange(tile: string): string {
  return `var lo = start;
  if (p.window > 0u) { lo = max(lo, i + 1 - i32(p.window)); }
  let i_first = i32(r0 / p.groups);
  let i_last = i32((min(r0 + ROWS, rows) - 1u) / p.groups);
  var j_lo = start;
  if (p.window > 0u) { j_lo = max(j_lo, i_first + 1 - i32(p.window)); }
  let j_hi = min(i_last, end - 1);
  let tiles = max(j_hi - j_lo + i32(${tile}), 0) / i32(${tile});`;
}

/**
 * WGSL: `for` over this invocation's columns `col = lane + t·L` (t < DC), with the bounds check
 * only where the row does not split evenly.
 *
 * @param c Head width, vector width and lanes per row.
 * @param body Statements using `t` and `col`.
 * @returns The loop.
 */
export function columnLoop(c: Pick<FlashShape, "d" | "w" | "lanes">, body: string): string {
  const guarded = (c.d / c.w) % c.lanes === 0 ? body : `if (col < DW) { ${body} }`;
  return `for (var t = 0u; t < DC; t++) { let col = lane + t * L; ${guarded} }`;
}

/**
 * WGSL declaration of a workgroup array of `n` f32 values packed in vec4 elements (read and
 * write element f with {@linkcode packedAt}).
 *
 * @param name Variable name.
 * @param n Values.
 * @param comment Shape comment.
 * @returns The declaration.
 */
export function packedArray(name: string, n: number, comment: string): string {
  return `var<workgroup> ${name}: array<vec4<f32>, ${Math.ceil(n / 4)}>;  // ${comment}`;
}

/**
 * WGSL expression: value f of a packed workgroup array.
 *
 * @param name Variable name.
 * @param f Index expression.
 * @returns The lvalue/rvalue expression.
 */
export function packedAt(name: string, f: string): string {
  return `${name}[(${f}) >> 2u][(${f}) & 3u]`;
}

/** A workgroup array declaration and its element accessor. */
export interface WorkgroupArray {
  /** The WGSL declaration. */
  readonly decl: string;
  /** WGSL expression of element (vector) f. */
  readonly at: (f: string) => string;
}

/**
 * A workgroup tile of `n` head rows of D values: `array<vec4<f32>, n·D/4>` for vec4 rows, else
 * f32 values packed by {@linkcode packedArray}.
 *
 * @param c Head width and values per vector.
 * @param name Variable name.
 * @param n Rows.
 * @param comment Shape comment.
 * @returns The declaration and an accessor of vector f.
 */
export function tileArray(
  c: Pick<FlashShape, "d" | "w">,
  name: string,
  n: number,
  comment: string,
): WorkgroupArray {
  if (c.w === 4) {
    return {
      decl: `var<workgroup> ${name}: array<vec4<f32>, ${(n * c.d) / 4}>;  // ${comment}`,
      at: (f) => `${name}[${f}]`,
    };
  }
  return { decl: packedArray(name, n * c.d, comment), at: (f) => packedAt(name, f) };
}

/**
 * WGSL of the flash prefill forward: workgroup (b, KV head, block) owns `rows` consecutive rows
 * r = token·G + g of that KV head's G query heads; `lanes` invocations per row keep the row's q
 * and output columns in registers. Per tile of keys: stage K, per-lane partial scores, each lane
 * sums the row's partials of some keys, online softmax, stage V, accumulate. No private array is
 * indexed by key. Without ranges the launcher binds q in place of `ranges` (`has_ranges` = 0),
 * and lse is always written (to scratch when not requested): one pipeline serves every call.
 *
 * @param c Head width, vector width and tiling.
 * @returns The WGSL source.
 */
export const flashAttentionSource = (c: FlashAttentionConstants): string => {
  const T = c.w === 4 ? "vec4<f32>" : "f32";
  const cols = (body: string) => columnLoop(c, body);
  const kv = tileArray(c, "kv", c.tile, "[BC, DW]: K of the tile's keys, then V");
  const part = (f: string) => packedAt("part", f);
  return /* wgsl */ `
struct Params {
  batch: u32, seq: u32, kv_heads: u32, window: u32, scale: f32,
  neg_inf: f32,  // −∞ from the host: WGSL constant expressions must be finite
  groups: u32,   // G = query heads per KV head
  blocks: u32,   // row blocks per (sequence, KV head) = ceil(S·G / ROWS)
  has_ranges: u32,
  tile: u32,     // = BC: a uniform bound keeps the key loops rolled (llvmpipe builds them faster)
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<${T}>; // [B, S, H, D]
@group(0) @binding(2) var<storage, read> k: array<${T}>; // [B, S, KvH, D]
@group(0) @binding(3) var<storage, read> v: array<${T}>; // [B, S, KvH, D]
@group(0) @binding(4) var<storage, read> ranges: array<i32>; // [B, 2] (q when has_ranges = 0)
@group(0) @binding(5) var<storage, read_write> out: array<${T}>; // [B, S, H, D]
@group(0) @binding(6) var<storage, read_write> lse: array<f32>; // [B, S, H]
${flashHeader(c)}
const BC: u32 = ${c.tile}u;   // keys per tile
const MASKED: f32 = -3.0e38;  // score of a key the row does not see; below any real score
${kv.decl}
${packedArray("part", c.tile * c.rows * c.lanes, "[BC, WG]: partial scores, then [BC, row] scores")}

@compute @workgroup_size(${c.rows * c.lanes})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let blk = wid.x + wid.y * nwg.x;  // (b, kvh, block), workgroup-uniform
  let b = blk / (p.kv_heads * p.blocks);
  if (b >= p.batch) { return; }
  let kvh = (blk / p.blocks) % p.kv_heads;
  let rows = p.seq * p.groups;
  let r0 = (blk % p.blocks) * ROWS;
  let lane = li % L;
  let own = li - lane;  // this row's first invocation
  let row_ok = r0 + li / L < rows;
  let r = min(r0 + li / L, rows - 1u);  // lanes past the last row work on a copy, store nothing
  let i = i32(r / p.groups);
  let base = ((b * p.seq + u32(i)) * p.kv_heads * p.groups + kvh * p.groups + r % p.groups) * DW;
  var start = 0;
  var end = i32(p.seq);
  if (p.has_ranges != 0u) {
    start = max(ranges[2u * b], 0);
    end = min(ranges[2u * b + 1u], end);
  }
  let valid = row_ok && i >= start && i < end;  // other rows: output 0, lse −∞
  ${keyTileRange("BC")}

  var qr: array<${T}, DC>;
  var acc: array<${T}, DC>;
  ${cols(`qr[t] = q[base + col]; acc[t] = ${T}(0.0);`)}
  var m = MASKED;
  var l = 0.0;
  for (var tile = 0; tile < tiles; tile++) {
    let j0 = j_lo + tile * i32(BC);
    let n = min(p.tile, u32(j_hi + 1 - j0));  // keys in this tile
    workgroupBarrier();  // the previous tile's V and score reads are done
    ${stageKeyRows(kv, "k")}
    workgroupBarrier();
    for (var u = 0u; u < n; u++) {
      var s = 0.0;
      ${cols(`s += dotw(qr[t], ${kv.at("u * DW + col")});`)}
      ${part("u * WG + li")} = s;
    }
    workgroupBarrier();
    // lane z sums the row's partials of keys u ≡ z (mod L) into the row's first slot: no other
    // invocation reads or writes those slots until the barrier
    for (var u = lane; u < n; u += L) {
      var s = 0.0;
      for (var z = 0u; z < L; z++) { s += ${part("u * WG + own + z")}; }
      let j = j0 + i32(u);
      ${part("u * WG + own")} = select(MASKED, s * p.scale, valid && j >= lo && j <= i);
    }
    workgroupBarrier();
    var mx = m;
    for (var u = 0u; u < n; u++) { mx = max(mx, ${part("u * WG + own")}); }
    let corr = exp(m - mx);
    l *= corr;
    m = mx;
    ${cols("acc[t] *= corr;")}
    workgroupBarrier();  // the K reads are done
    ${stageKeyRows(kv, "v")}
    workgroupBarrier();
    for (var u = 0u; u < n; u++) {
      let sc = ${part("u * WG + own")};
      let e = select(0.0, exp(sc - mx), sc > MASKED);
      l += e;
      ${cols(`acc[t] += e * ${kv.at("u * DW + col")};`)}
    }
  }
  if (row_ok) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    ${cols("out[base + col] = acc[t] * inv;")}
    if (lane == 0u) { lse[base / DW] = select(p.neg_inf, m + log(l), l > 0.0); }
  }
}`;
};
