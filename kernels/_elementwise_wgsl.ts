/**
 * WGSL templates of the elementwise kernels (`elementwise.ts` holds the launchers): one
 * invocation per element over a 2-D grid of {@linkcode ELEMENTWISE_WG}-wide workgroups.
 *
 * @module
 */

import { WGSL_LINEAR } from "./_launch.ts";

/** Invocations per workgroup of the elementwise kernels. */
export const ELEMENTWISE_WG = 256;

/** WGSL: the entry point running `body` for element `i < p.n` of a `grid1d` launch. */
const perElement = (body: string) =>
  `${WGSL_LINEAR}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.n) { return; }
  ${body}
}`;

/**
 * WGSL of `add`: `out = alpha·a + beta·b`.
 *
 * @param c `inPlace`: the result is written into `a` (no `out` binding).
 * @returns The WGSL source.
 */
export const addSource = (c: { inPlace: boolean }): string => /* wgsl */ `
struct Params { n: u32, alpha: f32, beta: f32 }
@group(0) @binding(0) var<uniform> p: Params;
${
  c.inPlace
    ? `@group(0) @binding(1) var<storage, read_write> a: array<f32>; // [n], also the output
@group(0) @binding(2) var<storage, read> b: array<f32>;        // [n]`
    : `@group(0) @binding(1) var<storage, read> a: array<f32>;        // [n]
@group(0) @binding(2) var<storage, read> b: array<f32>;        // [n]
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [n]`
}
${perElement(`${c.inPlace ? "a" : "out"}[i] = p.alpha * a[i] + p.beta * b[i];`)}`;

/**
 * WGSL of `scale`: `out = factor · x`.
 *
 * @param c `inPlace`: the result is written into `x` (no `out` binding).
 * @returns The WGSL source.
 */
export const scaleSource = (c: { inPlace: boolean }): string => /* wgsl */ `
struct Params { n: u32, factor: f32 }
@group(0) @binding(0) var<uniform> p: Params;
${
  c.inPlace
    ? "@group(0) @binding(1) var<storage, read_write> x: array<f32>; // [n], scaled in place"
    : `@group(0) @binding(1) var<storage, read> x: array<f32>;         // [n]
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [n]`
}
${perElement(`${c.inPlace ? "x" : "out"}[i] = p.factor * x[i];`)}`;
