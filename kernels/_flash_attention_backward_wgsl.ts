/**
 * WGSL of the flash-attention backward (`attention_backward.ts` holds the launcher, the formulas
 * and the design of its variants): a dq kernel per block of query rows over tiles of keys (it
 * also writes D = dOut·out per row), then a dk/dv kernel per block of keys over tiles of query
 * rows. P is recomputed from the forward's logsumexp; every output has one owner (no atomics).
 * Workgroup arrays are vec4 arrays (see `_flash_attention_wgsl.ts`).
 *
 * @module
 */

import { keysLayout, queriesLayout } from "./_attention_backward_wgsl.ts";
import {
  columnLoop,
  flashHeader,
  keyTileRange,
  packedArray,
  packedAt,
  stageKeyRows,
  tileArray,
} from "./_flash_attention_wgsl.ts";

/** Constants of {@linkcode flashAttentionBackwardSource}. */
export interface FlashAttentionBackwardConstants extends Record<string, number | boolean> {
  /** Head dimension D. */
  d: number;
  /** Values per load: 4 (vec4, when D % 4 = 0) or 1. */
  w: number;
  /** Rows per workgroup: query rows (token, head) of the dq kernel, keys of the dk/dv kernel. */
  rows: number;
  /** Invocations per row; each owns every `lanes`-th vector column of the row. */
  lanes: number;
  /** Keys (dq kernel) or query rows (dk/dv kernel) per tile staged in workgroup memory. */
  tile: number;
  /** false: the dq kernel (and D); true: the dk/dv kernel. */
  keys: boolean;
}

/**
 * WGSL of one flash backward kernel (see the module doc). Rows of a KV head's G query heads are
 * flattened as r = token·G + g, as in the forward. The ranges binding is always present: without
 * ranges the launcher binds q there and sets `has_ranges` = 0.
 *
 * @param c Head width, vector width, tiling and which kernel.
 * @returns The WGSL source.
 */
export const flashAttentionBackwardSource = (c: FlashAttentionBackwardConstants): string => {
  const T = c.w === 4 ? "vec4<f32>" : "f32";
  const decls = (c.keys ? keysLayout(T, true) : queriesLayout(T, true)).join("\n");
  return /* wgsl */ `
struct Params {
  batch: u32, seq: u32, kv_heads: u32, window: u32, scale: f32,
  groups: u32,   // G = query heads per KV head
  blocks: u32,   // workgroups per (sequence, KV head)
  has_ranges: u32,
  tile: u32,     // = BT: a uniform bound keeps the tile loops rolled (llvmpipe builds them faster)
}
@group(0) @binding(0) var<uniform> p: Params;
${decls}
${flashHeader(c)}
const BT: u32 = ${c.tile}u;   // ${c.keys ? "query rows" : "keys"} per tile
${
    packedArray(
      "part",
      c.tile * c.rows * c.lanes,
      "[BT, WG]: each invocation's partial dot products",
    )
  }
// lse −∞ (a row that sees no key) → +huge, so P = exp(s − lse) = 0
fn safe_lse(x: f32) -> f32 { return select(3.0e38, x, x > -3.0e38); }
${(c.keys ? keysBody : queriesBody)(c, T)}`;
};

/** Block setup shared by both kernels: sequence, KV head, this invocation's lane, the range. */
const setup = `
  let blk = wid.x + wid.y * nwg.x;  // (b, kvh, block), workgroup-uniform
  let b = blk / (p.kv_heads * p.blocks);
  if (b >= p.batch) { return; }
  let kvh = (blk / p.blocks) % p.kv_heads;
  let heads = p.kv_heads * p.groups;
  let lane = li % L;
  let own = li - lane;  // this row's first invocation
  let rl = li / L;  // this row in the block
  var start = 0;
  var end = i32(p.seq);
  if (p.has_ranges != 0u) {
    start = max(ranges[2u * b], 0);
    end = min(ranges[2u * b + 1u], end);
  }`;

const entry = (c: FlashAttentionBackwardConstants) =>
  `@compute @workgroup_size(${c.rows * c.lanes})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
)`;

/** WGSL: the sum of the L partials of element u of this invocation's row (same order in every lane). */
const rowSum = (u: string) => {
  const part = (f: string) => packedAt("part", f);
  return `var s = 0.0;
      for (var z = 0u; z < L; z++) { s += ${part(`${u} * WG + own + z`)}; }`;
};

/**
 * The dq kernel: workgroup (b, KV head, block of ROWS query rows) over tiles of BT keys. Per
 * tile: stage V, dP = dOut·v; stage K, P from the scores and lse, dS; dq += dS·k.
 */
const queriesBody = (c: FlashAttentionBackwardConstants, T: string) => {
  const cols = (body: string) => columnLoop(c, body);
  const kv = tileArray(c, "kv", c.tile, "[BT, DW]: V of the tile's keys, then K");
  const part = (f: string) => packedAt("part", f);
  const ds = (f: string) => packedAt("ds", f);
  return /* wgsl */ `
${kv.decl}
${packedArray("ds", c.rows * c.tile, "[ROWS, BT]: dOut·v, then scale·dS")}
${entry(c)} {${setup}
  let rows = p.seq * p.groups;
  let r0 = (blk % p.blocks) * ROWS;
  let row_ok = r0 + rl < rows;
  let r = min(r0 + rl, rows - 1u);  // lanes past the last row work on a copy, store nothing
  let i = i32(r / p.groups);
  let row = (b * p.seq + u32(i)) * heads + kvh * p.groups + r % p.groups;  // lse/dsum index
  let base = row * DW;  // q/out/dout/dq row
  let valid = row_ok && i >= start && i < end;
  ${keyTileRange("BT")}

  var qr: array<${T}, DC>;
  var dor: array<${T}, DC>;
  var acc: array<${T}, DC>;
  var dd = 0.0;  // D = dOut·out of the row
  ${
    cols(`qr[t] = q[base + col]; dor[t] = dout[base + col]; acc[t] = ${T}(0.0);
    dd += dotw(dor[t], out[base + col]);`)
  }
  ${part("li")} = dd;
  workgroupBarrier();
  dd = 0.0;
  for (var z = 0u; z < L; z++) { dd += ${part("own + z")}; }
  if (row_ok && lane == 0u) { dsum[row] = select(0.0, dd, valid); }
  let ls = safe_lse(lse[row]);
  for (var tile = 0; tile < tiles; tile++) {
    let j0 = j_lo + tile * i32(BT);
    let n = min(p.tile, u32(j_hi + 1 - j0));  // keys in this tile
    workgroupBarrier();  // the previous tile's reads are done
    ${stageKeyRows(kv, "v")}
    workgroupBarrier();
    for (var u = 0u; u < n; u++) {
      var s = 0.0;
      ${cols(`s += dotw(dor[t], ${kv.at("u * DW + col")});`)}
      ${part("u * WG + li")} = s;
    }
    workgroupBarrier();
    for (var u = lane; u < n; u += L) {
      ${rowSum("u")}
      ${ds("rl * BT + u")} = s;
    }
    workgroupBarrier();  // the V reads are done
    ${stageKeyRows(kv, "k")}
    workgroupBarrier();
    for (var u = 0u; u < n; u++) {
      var s = 0.0;
      ${cols(`s += dotw(qr[t], ${kv.at("u * DW + col")});`)}
      ${part("u * WG + li")} = s;
    }
    workgroupBarrier();
    for (var u = lane; u < n; u += L) {
      ${rowSum("u")}
      let j = j0 + i32(u);
      let pr = select(0.0, exp(s * p.scale - ls), valid && j >= lo && j <= i);
      ${ds("rl * BT + u")} = pr * (${ds("rl * BT + u")} - dd) * p.scale;
    }
    workgroupBarrier();
    for (var u = 0u; u < n; u++) {
      let d = ${ds("rl * BT + u")};
      ${cols(`acc[t] += d * ${kv.at("u * DW + col")};`)}
    }
  }
  if (row_ok) { ${cols("dq[base + col] = acc[t];")} }
}`;
};

/**
 * The dk/dv kernel: workgroup (b, KV head, block of ROWS keys) over tiles of BT query rows (q
 * and dOut staged together). Per tile: P from the scores and lse, dS from dP = dOut·v;
 * dv += P·dOut, dk += dS·q.
 */
const keysBody = (c: FlashAttentionBackwardConstants, T: string) => {
  const cols = (body: string) => columnLoop(c, body);
  const qt = tileArray(c, "qt", c.tile, "[BT, DW]: q of the tile's rows");
  const ot = tileArray(c, "ot", c.tile, "[BT, DW]: their dOut");
  const part = (f: string) => packedAt("part", f);
  const rowv = (f: string) => packedAt("rowv", f);
  const pw = (f: string) => packedAt("pw", f);
  return /* wgsl */ `
${qt.decl}
${ot.decl}
${packedArray("rowv", 2 * c.tile, "[2, BT]: the rows' lse (safe), then their D")}
${packedArray("pw", 2 * c.rows * c.tile, "[2, ROWS, BT]: P, then scale·dS of (key, row)")}
${entry(c)} {${setup}
  let j0 = i32((blk % p.blocks) * ROWS);
  let key_ok = j0 + i32(rl) < i32(p.seq);
  let j = min(j0 + i32(rl), i32(p.seq) - 1);  // lanes past the last key store nothing
  let valid = key_ok && j >= start && j < end;
  let base = ((b * p.seq + u32(j)) * p.kv_heads + kvh) * DW;  // k/v/dk/dv row
  // query rows r = i·G + g with jf ≤ i < hi see some key of the block (uniform)
  let jf = max(j0, start);
  let jl = min(j0 + i32(ROWS), end) - 1;
  var hi = end;
  if (p.window > 0u) { hi = min(hi, jl + i32(p.window)); }
  let rows = select(0, (hi - jf) * i32(p.groups), jf <= jl);
  let tiles = (rows + i32(BT) - 1) / i32(BT);
  let r_last = hi * i32(p.groups) - 1;

  var kr: array<${T}, DC>;
  var vr: array<${T}, DC>;
  var dk_acc: array<${T}, DC>;
  var dv_acc: array<${T}, DC>;
  ${
    cols(`kr[t] = k[base + col]; vr[t] = v[base + col];
    dk_acc[t] = ${T}(0.0); dv_acc[t] = ${T}(0.0);`)
  }
  for (var tile = 0; tile < tiles; tile++) {
    let r0 = jf * i32(p.groups) + tile * i32(BT);  // first row of the tile
    let n = min(p.tile, u32(r_last + 1 - r0));  // rows in this tile
    workgroupBarrier();  // the previous tile's reads are done
    for (var x = li; x < n * DW; x += WG) {
      let r = u32(r0) + x / DW;
      let at = ((b * p.seq + r / p.groups) * heads + kvh * p.groups + r % p.groups) * DW + x % DW;
      ${qt.at("x")} = q[at];
      ${ot.at("x")} = dout[at];
    }
    for (var x = li; x < n; x += WG) {
      let r = u32(r0) + x;
      let at = (b * p.seq + r / p.groups) * heads + kvh * p.groups + r % p.groups;
      ${rowv("x")} = safe_lse(lse[at]);
      ${rowv("BT + x")} = dsum[at];
    }
    workgroupBarrier();
    for (var u = 0u; u < n; u++) {
      var s = 0.0;
      ${cols(`s += dotw(kr[t], ${qt.at("u * DW + col")});`)}
      ${part("u * WG + li")} = s;
    }
    workgroupBarrier();
    for (var u = lane; u < n; u += L) {
      ${rowSum("u")}
      let r = r0 + i32(u);
      let i = r / i32(p.groups);
      var seen = valid && i >= j;
      if (p.window > 0u) { seen = seen && i - j < i32(p.window); }
      ${pw("rl * BT + u")} = select(0.0, exp(s * p.scale - ${rowv("u")}), seen);
    }
    workgroupBarrier();
    for (var u = 0u; u < n; u++) {
      var s = 0.0;
      ${cols(`s += dotw(vr[t], ${ot.at("u * DW + col")});`)}
      ${part("u * WG + li")} = s;
    }
    workgroupBarrier();
    for (var u = lane; u < n; u += L) {
      ${rowSum("u")}
      ${pw("(ROWS + rl) * BT + u")} = ${pw("rl * BT + u")} * (s - ${rowv("BT + u")}) * p.scale;
    }
    workgroupBarrier();
    for (var u = 0u; u < n; u++) {
      let pr = ${pw("rl * BT + u")};
      let d = ${pw("(ROWS + rl) * BT + u")};
      ${
    cols(`dv_acc[t] += pr * ${ot.at("u * DW + col")};
      dk_acc[t] += d * ${qt.at("u * DW + col")};`)
  }
    }
  }
  if (key_ok) { ${cols("dk[base + col] = dk_acc[t]; dv[base + col] = dv_acc[t];")} }
}`;
};
