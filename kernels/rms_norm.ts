/**
 * RMSNorm in Gemma's form, `y = x / sqrt(mean(x²) + eps) · (1 + w)` over the last dimension,
 * optionally fused with the residual add of Gemma's sandwich norms (`h + norm(x)`), optionally
 * keeping the per-row `1 / rms` for the backward pass.
 *
 * The per-head q/k norm is the same kernel: x `[T, H, headDim]` with w `[headDim]` normalises
 * every `(t, h)` row of `headDim` values.
 *
 * Numerics follow transformers' float32 `Gemma3RMSNorm`: the sum of squares is accumulated in
 * f32 — never as one serial sum but as partial sums combined pairwise (a tree across the
 * workgroup, or eight interleaved sums per invocation; see {@linkcode RmsNormStrategy}), which
 * keeps the result within ~1e-6 relative of a float64 reference — then
 * `rstd = 1 / sqrt(sum / D + eps)`, `y = (x · rstd) · (1 + w)`.
 *
 * @module
 */

import { expectDtype, grid1d, Uniforms, WGSL_LINEAR, wgslBf16Reader } from "./_launch.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, Tensor } from "./tensor.ts";

/** Which input buffer the result is written into (WebGPU cannot bind one buffer twice). */
type Alias = "none" | "x" | "residual";

/**
 * How rows map to invocations: `workgroup` = one workgroup per row with a pairwise tree across it
 * (coalesced, for real GPUs); `row` = one invocation per row with eight interleaved partial sums
 * (no barriers; ~4× faster on CPU adapters such as llvmpipe, where barriers are expensive).
 * `auto` picks `row` on fallback (software) adapters and `workgroup` elsewhere.
 */
export type RmsNormStrategy = "auto" | "row" | "workgroup";

interface RmsNormConstants extends Record<string, number | string | boolean> {
  /** `row` or `workgroup` (see {@linkcode RmsNormStrategy}). */
  strategy: string;
  /** Invocations per workgroup, a power of two. */
  wg: number;
  /** Weight stored as bf16. */
  wBf16: boolean;
  /** Adds a residual tensor. */
  residual: boolean;
  /** Output written into x or the residual instead of a separate tensor. */
  alias: Alias;
  /** Writes the per-row 1/rms. */
  rstd: boolean;
}

/**
 * WGSL of the "workgroup" strategy's opening: one workgroup of `wg` per row (`row`, `base`;
 * rows past the end return), `Σ fma(terms)` over the row's D entries left in `partial[0]`.
 */
const workgroupRowSum = (wg: number, terms: string) =>
  /* wgsl */ `var<workgroup> partial: array<f32, ${wg}>;

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x; // uniform across the workgroup
  if (row >= p.rows) { return; }
  let base = row * p.d;
  var acc = 0.0;
  for (var i = lid; i < p.d; i += ${wg}u) { acc = fma(${terms}, acc); }
  partial[lid] = acc;
  workgroupBarrier();
  // subtle: pairwise tree, not a serial sum, so the f32 error grows with log2(wg) only.
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }`;

const rmsNormSource = (c: RmsNormConstants) => {
  let binding = 1;
  const decl: string[] = [];
  const xAccess = c.alias === "x" ? "read_write" : "read";
  decl.push(
    `@group(0) @binding(${binding++}) var<storage, ${xAccess}> x: array<f32>; // [rows, D]`,
  );
  decl.push(
    `@group(0) @binding(${binding++}) var<storage, read> w: array<${
      c.wBf16 ? "u32" : "f32"
    }>; // [D]${c.wBf16 ? " bf16, two per word" : ""}`,
  );
  if (c.residual) {
    const access = c.alias === "residual" ? "read_write" : "read";
    decl.push(
      `@group(0) @binding(${binding++}) var<storage, ${access}> res: array<f32>; // [rows, D]`,
    );
  }
  if (c.alias === "none") {
    decl.push(
      `@group(0) @binding(${binding++}) var<storage, read_write> out: array<f32>; // [rows, D]`,
    );
  }
  if (c.rstd) {
    decl.push(
      `@group(0) @binding(${binding++}) var<storage, read_write> rstd_out: array<f32>; // [rows]`,
    );
  }
  const target = c.alias === "x" ? "x" : c.alias === "residual" ? "res" : "out";
  const wAt = c.wBf16 ? "bf16_at_w(i)" : "w[i]";
  const header = `
struct Params { rows: u32, d: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
${decl.join("\n")}
${c.wBf16 ? wgslBf16Reader("w") : ""}`;
  const store = `${target}[base + i] = ${c.residual ? "res[base + i] + y" : "y"};`;
  const rstd = c.rstd ? "rstd_out[row] = r;" : "";
  if (c.strategy === "row") {
    return /* wgsl */ `${header}
@compute @workgroup_size(${c.wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * ${c.wg}u;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  // subtle: eight interleaved partial sums (two vec4) combined pairwise, not one serial sum.
  var a = vec4<f32>(0.0);
  var b = vec4<f32>(0.0);
  var i = 0u;
  for (; i + 8u <= p.d; i += 8u) {
    let u = vec4<f32>(x[base + i], x[base + i + 1u], x[base + i + 2u], x[base + i + 3u]);
    let v = vec4<f32>(x[base + i + 4u], x[base + i + 5u], x[base + i + 6u], x[base + i + 7u]);
    a = fma(u, u, a);
    b = fma(v, v, b);
  }
  var tail = 0.0;
  for (; i < p.d; i++) {
    let v = x[base + i];
    tail = fma(v, v, tail);
  }
  let s = a + b;
  let r = 1.0 / sqrt((((s.x + s.y) + (s.z + s.w)) + tail) / f32(p.d) + p.eps);
  for (i = 0u; i < p.d; i++) {
    let y = (x[base + i] * r) * (1.0 + ${wAt});
    ${store}
  }
  ${rstd}
}`;
  }
  return /* wgsl */ `${header}
${workgroupRowSum(c.wg, "x[base + i], x[base + i]")}
  let r = 1.0 / sqrt(partial[0] / f32(p.d) + p.eps);
  for (var i = lid; i < p.d; i += ${c.wg}u) {
    let y = (x[base + i] * r) * (1.0 + ${wAt});
    ${store}
  }
  ${c.rstd ? `if (lid == 0u) { ${rstd} }` : ""}
}`;
};

/** Options of {@linkcode rmsNorm}. */
export interface RmsNormOptions {
  /** Added inside the square root (Gemma: `rms_norm_eps` = 1e-6, the default). */
  readonly eps?: number;
  /**
   * Residual `[..., D]` f32 (same shape as x): the result becomes `residual + norm(x)`, Gemma's
   * post-attention / post-feedforward norm followed by the residual add. Must not share x's
   * buffer.
   */
  readonly residual?: Tensor;
  /**
   * Write the result here (f32, x's element count). May be `x` itself or the `residual` tensor
   * (in place, e.g. `h ← h + norm(attnOut)` with `out: h, residual: h`).
   */
  readonly out?: Tensor;
  /** Also write `1 / sqrt(mean(x²) + eps)` per row into this f32 tensor of `rows` elements. */
  readonly rstd?: Tensor;
  /** Row-to-invocation mapping (default `auto`); every strategy gives the same numerics class. */
  readonly strategy?: RmsNormStrategy;
}

function sameBuffer(a: Tensor, b: Tensor): boolean {
  return a.parts.length === 1 && b.parts.length === 1 && a.parts[0].buffer === b.parts[0].buffer;
}

function workgroupSize(d: number): number {
  // One workgroup per row; ~8 values per invocation keeps the tree short and the lanes busy.
  let wg = 32;
  while (wg < 256 && wg * 8 < d) wg *= 2;
  return wg;
}

const ROW_WG = 64;

/**
 * Gemma RMSNorm over the last dimension: `y = x / sqrt(mean(x²) + eps) · (1 + w)`, plus
 * `residual` when given. Also the per-head q/k norm: pass x `[T, H, headDim]`, w `[headDim]`.
 *
 * @param x Input `[..., D]` f32 (rows = numel / D).
 * @param w Weight `[D]`, f32 or bf16 (Gemma stores `w`, the kernel applies `1 + w`).
 * @param options eps, fused residual, output tensor and the optional per-row `1/rms`.
 * @returns The output tensor (`options.out` when given, else a new f32 tensor shaped like x).
 * @throws {ShapeError} on mismatched shapes or dtypes.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { rmsNorm } from "./rms_norm.ts";
 * const gpu = await Gpu.create();
 * const x = Tensor.fromArray(gpu, new Float32Array([3, 4]), [1, 2]);
 * const w = Tensor.fromArray(gpu, new Float32Array([0, 1]), [2]);
 * const y = rmsNorm(x, w, { eps: 0 }); // rms = sqrt(12.5): [0.8485, 2.2627]
 * console.log(await y.read());
 * gpu.destroy();
 * ```
 */
export function rmsNorm(x: Tensor, w: Tensor, options: RmsNormOptions = {}): Tensor {
  const kernel = "rmsNorm";
  expectDtype(kernel, "x", x, ["f32"]);
  expectDtype(kernel, "w", w, ["f32", "bf16"]);
  if (w.shape.length !== 1) {
    throw new ShapeError(kernel, `w must be 1-D [D], got ${shapeString(w.shape)}`);
  }
  const d = w.shape[0];
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== d || d === 0) {
    throw new ShapeError(
      kernel,
      `x must have last dimension ${d} (w ${shapeString(w.shape)}), got ${shapeString(x.shape)}`,
    );
  }
  const eps = options.eps ?? 1e-6;
  if (!Number.isFinite(eps) || eps < 0) {
    throw new ShapeError(kernel, `eps must be a finite number >= 0, got ${eps}`);
  }
  const rows = x.numel / d;
  const { residual, rstd } = options;
  if (residual) {
    expectDtype(kernel, "residual", residual, ["f32"]);
    if (residual.numel !== x.numel) {
      throw new ShapeError(
        kernel,
        `residual must match x ${shapeString(x.shape)}, got ${shapeString(residual.shape)}`,
      );
    }
    if (sameBuffer(residual, x)) throw new ShapeError(kernel, "residual must not alias x");
  }
  if (rstd) {
    expectDtype(kernel, "rstd", rstd, ["f32"]);
    if (rstd.numel !== rows) {
      throw new ShapeError(kernel, `rstd must hold ${rows} rows, got ${shapeString(rstd.shape)}`);
    }
  }
  const requested = options.strategy ?? "auto";
  if (!["auto", "row", "workgroup"].includes(requested)) {
    throw new ShapeError(kernel, `strategy must be auto, row or workgroup, got ${requested}`);
  }
  if (options.out && (options.out.dtype !== "f32" || options.out.numel !== x.numel)) {
    throw new ShapeError(
      kernel,
      `out must be f32 with ${x.numel} elements, got ${options.out.dtype} ${
        shapeString(options.out.shape)
      }`,
    );
  }
  const out = options.out ?? Tensor.empty(x.gpu, x.shape, "f32");
  const alias: Alias = sameBuffer(out, x)
    ? "x"
    : residual && sameBuffer(out, residual)
    ? "residual"
    : "none";
  const gpu = x.gpu;
  const strategy = requested === "auto"
    ? (gpu.adapter.isFallbackAdapter ? "row" : "workgroup")
    : requested;
  const constants: RmsNormConstants = {
    strategy,
    wg: strategy === "row" ? ROW_WG : workgroupSize(d),
    wBf16: w.dtype === "bf16",
    residual: residual !== undefined,
    alias,
    rstd: rstd !== undefined,
  };
  const buffers = [x.binding(), w.binding()];
  if (residual) buffers.push(residual.binding());
  if (alias === "none") buffers.push(out.binding());
  if (rstd) buffers.push(rstd.binding());
  gpu.dispatch({
    pipeline: gpu.pipelines.get(kernel, constants, rmsNormSource),
    shapes: `x${shapeString(x.shape)} w${shapeString(w.shape)}:${w.dtype}`,
    uniforms: new Uniforms().u32(rows).u32(d).f32(eps).build(),
    buffers,
    workgroups: grid1d(
      rows,
      strategy === "row" ? ROW_WG : 1,
      gpu.limits.maxComputeWorkgroupsPerDimension,
    ),
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Backward. For y = x·r·(1 + w), r = 1/sqrt(mean(x²) + eps), with gw = dy ∘ (1 + w):
//   dx = r·gw − x·r³·(Σ_i gw_i·x_i) / D        (per row)
//   dw = Σ_rows dy ∘ x · r                      (over rows; two-stage, fixed order)
// ---------------------------------------------------------------------------------------------

interface RmsNormDxConstants extends Record<string, number | string | boolean> {
  /** `row` or `workgroup` (see {@linkcode RmsNormStrategy}). */
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

const rmsNormDxSource = (c: RmsNormDxConstants) => {
  const target = c.inPlace ? "dy" : "dx";
  const header = `
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
    return /* wgsl */ `${header}
@compute @workgroup_size(${c.wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * ${c.wg}u;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  // subtle: Σ gw·x as eight interleaved partial sums combined pairwise, as in the forward.
  var a = vec4<f32>(0.0);
  var b = vec4<f32>(0.0);
  var i = 0u;
  for (; i + 8u <= p.d; i += 8u) {
    let k = base + i;
    a = fma(vec4<f32>(gw(k, i), gw(k + 1u, i + 1u), gw(k + 2u, i + 2u), gw(k + 3u, i + 3u)),
            vec4<f32>(x[k], x[k + 1u], x[k + 2u], x[k + 3u]), a);
    b = fma(vec4<f32>(gw(k + 4u, i + 4u), gw(k + 5u, i + 5u), gw(k + 6u, i + 6u), gw(k + 7u, i + 7u)),
            vec4<f32>(x[k + 4u], x[k + 5u], x[k + 6u], x[k + 7u]), b);
  }
  var tail = 0.0;
  for (; i < p.d; i++) { tail = fma(gw(base + i, i), x[base + i], tail); }
  let s = a + b;
  let r = rstd[row];
  let c = r * r * r * ((((s.x + s.y) + (s.z + s.w)) + tail) / f32(p.d));
  for (i = 0u; i < p.d; i++) {
    ${store}
  }
}`;
  }
  return /* wgsl */ `${header}
${workgroupRowSum(c.wg, "gw(base + i, i), x[base + i]")}
  let r = rstd[row];
  let c = r * r * r * (partial[0] / f32(p.d));
  for (var i = lid; i < p.d; i += ${c.wg}u) {
    ${store}
  }
}`;
};

interface RmsNormDwConstants extends Record<string, number | string | boolean> {
  /** `rows`: sums dy·x·rstd over a block of rows; `blocks`: sums the per-block partials. */
  stage: string;
  /** Adds into dw (last stage) instead of writing partials. */
  final: boolean;
}

const DW_WG = 64;

const rmsNormDwSource = (c: RmsNormDwConstants) => {
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

/** Options of {@linkcode rmsNormBackward}. */
export interface RmsNormBackwardOptions {
  /**
   * `[D]` f32 weight gradient: `dw += Σ_rows dy ∘ x · rstd` (always accumulated; zero it for a
   * fresh gradient). Leave it out when the weights are frozen (LoRA training).
   */
  readonly dw?: Tensor;
  /** Write dx here (f32, x's element count); may be `dy` itself (in place). */
  readonly out?: Tensor;
  /** Add dx into `out` (`out += dx`, e.g. into the residual stream's gradient). Needs `out`. */
  readonly accumulateDx?: boolean;
  /** Row-to-invocation mapping of the dx kernel (default `auto`, as in {@linkcode rmsNorm}). */
  readonly strategy?: RmsNormStrategy;
}

/**
 * Backward of {@linkcode rmsNorm} (the residual form `h + norm(x)` needs nothing more: dh
 * passes through and this computes norm's dx from the same gradient). With `gw = dy ∘ (1 + w)`:
 * `dx = rstd·gw − x·rstd³·(Σ_i gw_i·x_i)/D` per row and `dw += Σ_rows dy ∘ x · rstd`, the latter
 * as a deterministic two-stage reduction (fixed-order block sums, then a fixed-order sum of the
 * blocks), so results are bit-identical run to run. Also the per-head q/k norm: x and dy
 * `[T, H, headDim]`, w and dw `[headDim]`, rstd `[T·H]`.
 *
 * @param x The forward input `[..., D]` f32.
 * @param w The weight `[D]`, f32 or bf16.
 * @param rstd The forward's per-row `1/rms` (its `rstd` option), `rows` f32 values.
 * @param dy Gradient of the output, x's shape, f32.
 * @param options Weight gradient to accumulate into, dx target, dx accumulation, strategy.
 * @returns dx (`options.out` when given, else a new f32 tensor shaped like x).
 * @throws {ShapeError} on mismatched shapes, dtypes or aliasing.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { rmsNorm, rmsNormBackward } from "./rms_norm.ts";
 * const gpu = await Gpu.create();
 * const x = Tensor.fromArray(gpu, new Float32Array([3, 4]), [1, 2]);
 * const w = Tensor.fromArray(gpu, new Float32Array([0, 1]), [2]);
 * const rstd = Tensor.empty(gpu, [1]);
 * rmsNorm(x, w, { eps: 0, rstd });
 * const dy = Tensor.fromArray(gpu, new Float32Array([1, 0]), [1, 2]);
 * const dw = Tensor.zeros(gpu, [2]);
 * const dx = rmsNormBackward(x, w, rstd, dy, { dw });
 * console.log(await dx.read(), await dw.read()); // [0.1810, -0.1358] [0.8485, 0]
 * gpu.destroy();
 * ```
 */
export function rmsNormBackward(
  x: Tensor,
  w: Tensor,
  rstd: Tensor,
  dy: Tensor,
  options: RmsNormBackwardOptions = {},
): Tensor {
  const kernel = "rmsNormBackward";
  expectDtype(kernel, "x", x, ["f32"]);
  expectDtype(kernel, "w", w, ["f32", "bf16"]);
  expectDtype(kernel, "rstd", rstd, ["f32"]);
  expectDtype(kernel, "dy", dy, ["f32"]);
  const d = w.shape.length === 1 ? w.shape[0] : 0;
  if (d === 0 || x.shape.at(-1) !== d) {
    throw new ShapeError(
      kernel,
      `w must be [D] and x [..., D], got w ${shapeString(w.shape)} x ${shapeString(x.shape)}`,
    );
  }
  const rows = x.numel / d;
  if (dy.numel !== x.numel) {
    throw new ShapeError(
      kernel,
      `dy must match x ${shapeString(x.shape)}, got ${shapeString(dy.shape)}`,
    );
  }
  if (rstd.numel !== rows) {
    throw new ShapeError(kernel, `rstd must hold ${rows} rows, got ${shapeString(rstd.shape)}`);
  }
  const { dw, out } = options;
  if (dw) {
    if (dw.dtype !== "f32" || dw.numel !== d) {
      throw new ShapeError(
        kernel,
        `dw must be f32 [${d}], got ${dw.dtype} ${shapeString(dw.shape)}`,
      );
    }
    if ([x, dy, rstd].some((t) => sameBuffer(t, dw)) || (out && sameBuffer(out, dw))) {
      throw new ShapeError(kernel, "dw must not alias x, dy, rstd or out");
    }
  }
  if (out) {
    if (out.dtype !== "f32" || out.numel !== x.numel) {
      throw new ShapeError(
        kernel,
        `out must be f32 with ${x.numel} elements, got ${out.dtype} ${shapeString(out.shape)}`,
      );
    }
    if (sameBuffer(out, x) || sameBuffer(out, rstd)) {
      throw new ShapeError(kernel, "out must not alias x or rstd (dy is allowed)");
    }
  } else if (options.accumulateDx) {
    throw new ShapeError(kernel, "accumulateDx needs an out tensor to add into");
  }
  const requested = options.strategy ?? "auto";
  if (!["auto", "row", "workgroup"].includes(requested)) {
    throw new ShapeError(kernel, `strategy must be auto, row or workgroup, got ${requested}`);
  }
  const gpu = x.gpu;
  const maxGrid = gpu.limits.maxComputeWorkgroupsPerDimension;
  const shapes = `x${shapeString(x.shape)} w${shapeString(w.shape)}:${w.dtype}`;
  // dw first: it reads dy, which dx may overwrite.
  if (dw) rmsNormDw(x, rstd, dy, dw, rows, d, shapes);
  const dx = out ?? Tensor.empty(gpu, x.shape, "f32");
  const inPlace = sameBuffer(dx, dy);
  const strategy = requested === "auto"
    ? (gpu.adapter.isFallbackAdapter ? "row" : "workgroup")
    : requested;
  const constants: RmsNormDxConstants = {
    strategy,
    wg: strategy === "row" ? ROW_WG : workgroupSize(d),
    wBf16: w.dtype === "bf16",
    inPlace,
    accumulate: options.accumulateDx ?? false,
  };
  const buffers = [x.binding(), w.binding(), rstd.binding(), dy.binding()];
  if (!inPlace) buffers.push(dx.binding());
  gpu.dispatch({
    pipeline: gpu.pipelines.get("rmsNormBackwardDx", constants, rmsNormDxSource),
    shapes,
    uniforms: new Uniforms().u32(rows).u32(d).build(),
    buffers,
    workgroups: grid1d(rows, strategy === "row" ? ROW_WG : 1, maxGrid),
  });
  return dx;
}

/** Rows summed per invocation in the first dw stage: at least 16, at most 64 blocks. */
function dwBlock(rows: number): number {
  return Math.max(16, Math.ceil(rows / 64));
}

function rmsNormDw(
  x: Tensor,
  rstd: Tensor,
  dy: Tensor,
  dw: Tensor,
  rows: number,
  d: number,
  shapes: string,
): void {
  const gpu = x.gpu;
  const maxGrid = gpu.limits.maxComputeWorkgroupsPerDimension;
  const block = dwBlock(rows);
  const blocks = Math.ceil(rows / block);
  const final = blocks === 1;
  const partials = final ? dw : Tensor.empty(gpu, [blocks, d], "f32");
  gpu.dispatch({
    pipeline: gpu.pipelines.get("rmsNormBackwardDw", { stage: "rows", final }, rmsNormDwSource),
    shapes,
    uniforms: new Uniforms().u32(rows).u32(d).u32(block).u32(blocks).build(),
    buffers: [x.binding(), rstd.binding(), dy.binding(), partials.binding()],
    workgroups: grid1d(blocks * d, DW_WG, maxGrid),
  });
  if (final) return;
  gpu.dispatch({
    pipeline: gpu.pipelines.get(
      "rmsNormBackwardDw",
      { stage: "blocks", final: true },
      rmsNormDwSource,
    ),
    shapes: `${shapes} partials[${blocks},${d}]`,
    uniforms: new Uniforms().u32(blocks).u32(d).u32(blocks).u32(1).build(),
    buffers: [partials.binding(), dw.binding()],
    workgroups: grid1d(d, DW_WG, maxGrid),
  });
  partials.dispose(); // stream-ordered: later users of the pooled buffer run after these reads
}
