/**
 * WGSL templates of RMSNorm's backward (`rms_norm_backward.ts` holds the launcher and the
 * formulas): the per-row dx kernel (every variant, sharing the forward's row-sum openings)
 * and the two-stage, fixed-order dw reduction.
 *
 * @module
 */

import { WGSL_LINEAR, wgslBf16Reader } from "./_launch.ts";
import { SG_ENABLE } from "./_reduce_variant.ts";
import { invocationRowSum, workgroupRowSum } from "./_rms_norm_wgsl.ts";

/** Constants of {@linkcode rmsNormDxSource}. */
export interface RmsNormDxConstants extends Record<string, number | string | boolean> {
  /** The variant: `row`, `workgroup` or `sg` (see `RMS_NORM_VARIANTS`). */
  strategy: string;
  /** Invocations per workgroup, a power of two. */
  wg: number;
  /** Weight stored as bf16. */
  wBf16: boolean;
  /** dx written into dy's buffer. */
  inPlace: boolean;
  /** dx added to the target instead of overwriting it. */
  accumulate: boolean;
}

/**
 * WGSL of the dx kernel: `dx = r·gw − x·r³·(Σ_i gw_i·x_i)/D` per row, `gw = dy ∘ (1 + w)`.
 *
 * @param c Variant, workgroup size, weight dtype, in place, accumulation.
 * @returns The WGSL source.
 */
export const rmsNormDxSource = (c: RmsNormDxConstants): string => {
  const target = c.inPlace ? "dy" : "dx";
  const header = `${c.strategy === "sg" ? SG_ENABLE : ""}
struct Params { rows: u32, d: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;    // [rows, D]
@group(0) @binding(2) var<storage, read> w: array<${c.wBf16 ? "u32" : "f32"}>; // [D]${
    c.wBf16 ? " bf16, two per word" : ""
  }
@group(0) @binding(3) var<storage, read> rstd: array<f32>; // [rows]
@group(0) @binding(4) var<storage, ${
    c.inPlace ? "read_write" : "read"
  }> dy: array<f32>; // [rows, D]${c.inPlace ? " (dx is written here)" : ""}
${c.inPlace ? "" : "@group(0) @binding(5) var<storage, read_write> dx: array<f32>; // [rows, D]"}
${c.wBf16 ? wgslBf16Reader("w") : ""}
fn gw(k: u32, i: u32) -> f32 { return dy[k] * (1.0 + ${c.wBf16 ? "bf16_at_w(i)" : "w[i]"}); }`;
  const store = `let g = r * gw(base + i, i) - x[base + i] * c;
    ${target}[base + i] = ${c.accumulate ? `${target}[base + i] + g` : "g"};`;
  if (c.strategy === "row") {
    const sum = invocationRowSum({
      wg: c.wg,
      comment:
        "// subtle: Σ gw·x as eight interleaved partial sums combined pairwise, as in the forward.",
      block: `let k = base + i;
    a = fma(vec4<f32>(gw(k, i), gw(k + 1u, i + 1u), gw(k + 2u, i + 2u), gw(k + 3u, i + 3u)),
            vec4<f32>(x[k], x[k + 1u], x[k + 2u], x[k + 3u]), a);
    b = fma(vec4<f32>(gw(k + 4u, i + 4u), gw(k + 5u, i + 5u), gw(k + 6u, i + 6u), gw(k + 7u, i + 7u)),
            vec4<f32>(x[k + 4u], x[k + 5u], x[k + 6u], x[k + 7u]), b);`,
      tail: "for (; i < p.d; i++) { tail = fma(gw(base + i, i), x[base + i], tail); }",
    });
    return /* wgsl */ `${header}
${sum}
  let r = rstd[row];
  let c = r * r * r * ((((s.x + s.y) + (s.z + s.w)) + tail) / f32(p.d));
  for (i = 0u; i < p.d; i++) {
    ${store}
  }
}`;
  }
  return /* wgsl */ `${header}
${workgroupRowSum(c, "gw(base + i, i), x[base + i]")}
  let r = rstd[row];
  let c = r * r * r * (row_sum / f32(p.d));
  for (var i = lid; i < p.d; i += ${c.wg}u) {
    ${store}
  }
}`;
};

/** Constants of {@linkcode rmsNormDwSource}. */
export interface RmsNormDwConstants extends Record<string, number | string | boolean> {
  /** `rows`: sums dy·x·rstd over a block of rows; `blocks`: sums the per-block partials. */
  stage: string;
  /** Adds into dw (last stage) instead of writing partials. */
  final: boolean;
}

/** Invocations per workgroup of the dw kernels. */
export const DW_WG = 64;

/**
 * WGSL of one dw stage: per column, fixed-order sums over blocks of rows (or of partials).
 *
 * @param c Stage and whether it writes dw.
 * @returns The WGSL source.
 */
export const rmsNormDwSource = (c: RmsNormDwConstants): string => {
  const inputs = c.stage === "rows"
    ? `@group(0) @binding(1) var<storage, read> x: array<f32>;    // [rows, D]
@group(0) @binding(2) var<storage, read> rstd: array<f32>; // [rows]
@group(0) @binding(3) var<storage, read> dy: array<f32>;   // [rows, D]
@group(0) @binding(4) var<storage, read_write> dst: array<f32>; // ${
      c.final ? "[D] dw (accumulated)" : "[blocks, D] partials"
    }
fn term(r: u32, col: u32) -> f32 { let k = r * p.d + col; return dy[k] * x[k] * rstd[r]; }`
    : `@group(0) @binding(1) var<storage, read> src: array<f32>;        // [blocks, D] partials
@group(0) @binding(2) var<storage, read_write> dst: array<f32>; // [D] dw (accumulated)
fn term(r: u32, col: u32) -> f32 { return src[r * p.d + col]; }`;
  return /* wgsl */ `
// rows = terms summed per column (token rows, or blocks in the second stage); one invocation
// sums rows [b·block, (b+1)·block) of one column in a fixed order.
struct Params { rows: u32, d: u32, block: u32, blocks: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${inputs}
${WGSL_LINEAR}
@compute @workgroup_size(${DW_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = linear_index(gid, nwg, ${DW_WG}u);
  if (idx >= p.blocks * p.d) { return; }
  let b = idx / p.d;
  let col = idx % p.d;
  let r0 = b * p.block;
  let r1 = min(r0 + p.block, p.rows);
  var acc = vec4<f32>(0.0); // four interleaved sums, combined pairwise
  var r = r0;
  for (; r + 4u <= r1; r += 4u) {
    acc += vec4<f32>(term(r, col), term(r + 1u, col), term(r + 2u, col), term(r + 3u, col));
  }
  var tail = 0.0;
  for (; r < r1; r++) { tail += term(r, col); }
  let sum = ((acc.x + acc.y) + (acc.z + acc.w)) + tail;
  ${c.final ? "dst[col] += sum;" : "dst[idx] = sum;"}
}`;
};
