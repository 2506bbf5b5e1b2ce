/**
 * WGSL templates of the embedding backward (`embedding_backward.ts` holds the launcher): the
 * per-id scatter-add into the bound parts of dTable, and the zero fill used when not
 * accumulating.
 *
 * @module
 */

import { WGSL_LINEAR } from "./_launch.ts";
import { WGSL_PART_START, WGSL_PART_STARTS, wgslPartOf } from "./_embedding_wgsl.ts";

const SCATTER_WG = 64;

/**
 * WGSL of the scatter-add: one workgroup per distinct id sums that id's tokens (CSR order) and
 * adds the sum to its row of dTable, the only write to it.
 *
 * @param c Number of bound dTable parts (bindings 3 … 2 + parts).
 * @returns The WGSL source.
 */
export const embeddingScatterSource = (c: { parts: number }): string => {
  const parts = Array.from({ length: c.parts }, (_, k) => k);
  return /* wgsl */ `
struct Params {
  d: u32, pad0: u32,
  first: u32, count: u32, // unique ids [first, first + count) are handled by this dispatch
  uniques: u32,           // U, to find offsets and tokens in csr
  scale: f32, pad1: u32, pad2: u32,
  ${WGSL_PART_STARTS}
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> csr: array<u32>; // [U rows | U+1 offsets | tokens]
@group(0) @binding(2) var<storage, read> dout: array<f32>; // [T, D]
${
    // subtle: one binding per bound part, so part k sits at binding 3 + k.
    parts.map((k) =>
      `@group(0) @binding(${
        3 + k
      }) var<storage, read_write> table${k}: array<f32>; // [rows_${k}, D] dTable part`
    ).join("\n")}

${WGSL_PART_START}

fn token_sum(col: u32, begin: u32, end: u32) -> f32 {
  let base = 2u * p.uniques + 1u;
  var acc = 0.0;
  for (var j = begin; j < end; j++) { acc += dout[csr[base + j] * p.d + col] * p.scale; }
  return acc;
}

@compute @workgroup_size(${SCATTER_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x; // one workgroup per distinct id
  if (w >= p.count) { return; }
  let u = p.first + w;
  let id = csr[u];
  let begin = csr[p.uniques + u];
  let end = csr[p.uniques + u + 1u];
  ${wgslPartOf(parts)}
  let row = (id - part_start(k)) * p.d;
  // subtle: the only writer of these elements, summing the id's tokens in increasing order.
  ${
    parts.map((j) =>
      `if (k == ${j}u) {
    for (var col = lid; col < p.d; col += ${SCATTER_WG}u) { table${j}[row + col] += token_sum(col, begin, end); }
  }`
    ).join("\n  ")
  }
}`;
};

/**
 * WGSL of the zero fill of one dTable part.
 *
 * @returns The WGSL source.
 */
export const zeroSource = (): string => /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>; // [n]
${WGSL_LINEAR}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_index(gid, nwg, 256u);
  if (i < p.n) { dst[i] = 0.0; }
}`;
