/**
 * WGSL template of the embedding gather (`embedding.ts` holds the launcher and the design) and
 * the WGSL pieces shared with the backward scatter: the bound table parts and their row starts.
 *
 * @module
 */

import { wgslBf16Reader } from "./_launch.ts";
import type { GpuLimits } from "./gpu.ts";

/** Row starts of the bound parts live in a uniform `array<vec4<u32>, 4>`. */
export const MAX_PARTS = 16;
const WG = 64;

/**
 * Table parts one dispatch of these templates binds: two storage bindings (ids or the CSR plan,
 * and the rows) come before the parts.
 *
 * @param gpu The runtime, or anything with its storage-binding limit (e.g. `{ limits: device.limits }`).
 * @returns At most {@linkcode MAX_PARTS}.
 */
export function partsPerDispatch(
  gpu: { readonly limits: Pick<GpuLimits, "maxStorageBuffersPerShaderStage"> },
): number {
  return Math.min(MAX_PARTS, gpu.limits.maxStorageBuffersPerShaderStage - 2);
}

/** WGSL: the `Params` field with the first row of each bound part (a uniform block). */
export const WGSL_PART_STARTS = `starts: array<vec4<u32>, ${
  MAX_PARTS / 4
}>, // first row of bound part k`;

/** WGSL: `part_start(k)`, the first table row of bound part k. */
export const WGSL_PART_START = "fn part_start(k: u32) -> u32 { return p.starts[k / 4u][k % 4u]; }";

/**
 * WGSL statements: `k` ← the bound part holding row `id` (parts ascend by row).
 *
 * @param parts The bound parts.
 * @returns The statements (indented for `main`).
 */
export function wgslPartOf(parts: readonly number[]): string {
  return `var k = 0u;
  ${parts.slice(1).map((j) => `if (id >= part_start(${j}u)) { k = ${j}u; }`).join("\n  ")}`;
}

/** Constants of {@linkcode embeddingSource}. */
export interface EmbeddingConstants extends Record<string, number | string | boolean> {
  /** Table stored as bf16. */
  bf16: boolean;
  /** Table parts bound by this pipeline (bindings 3 … 2 + parts). */
  parts: number;
}

/**
 * WGSL of `embedding`: one workgroup per token copies its row from the bound part holding it.
 *
 * @param c Table dtype and number of bound parts.
 * @returns The WGSL source.
 */
export const embeddingSource = (c: EmbeddingConstants): string => {
  const parts = Array.from({ length: c.parts }, (_, k) => k);
  const elem = c.bf16 ? "u32" : "f32";
  const read = (k: number) => (c.bf16 ? `bf16_at_table${k}(src + col)` : `table${k}[src + col]`);
  return /* wgsl */ `
struct Params {
  tokens: u32, d: u32, vocab: u32, scale: f32,
  zero_invalid: u32,  // 1 in the dispatch that writes the rows of ids outside [0, vocab)
  lo: u32, hi: u32,   // rows [lo, hi) of the table are bound here
  pad: u32,
  ${WGSL_PART_STARTS}
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;       // [T] (i32 ids as their bits)
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [T, D]
${
    // subtle: one binding per bound part, so part k sits at binding 3 + k.
    parts.map((k) =>
      `@group(0) @binding(${
        3 + k
      }) var<storage, read> table${k}: array<${elem}>; // [rows_${k}, D]${
        c.bf16 ? " bf16 two per word" + wgslBf16Reader(`table${k}`) : ""
      }`
    ).join("\n")}

${WGSL_PART_START}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = wid.x + wid.y * nwg.x; // one workgroup per token
  if (t >= p.tokens) { return; }
  // subtle: a negative i32 id reads as a u32 >= 2^31, i.e. >= vocab, so it is zeroed too.
  let id = ids[t];
  let dst = t * p.d;
  if (id >= p.vocab) {
    if (p.zero_invalid == 1u) {
      for (var col = lid; col < p.d; col += ${WG}u) { out[dst + col] = 0.0; }
    }
    return;
  }
  if (id < p.lo || id >= p.hi) { return; }
  ${wgslPartOf(parts)}
  let src = (id - part_start(k)) * p.d;
  ${
    parts.map((j) =>
      `if (k == ${j}u) {
    for (var col = lid; col < p.d; col += ${WG}u) { out[dst + col] = ${read(j)} * p.scale; }
  }`
    ).join("\n  ")
  }
}`;
};
