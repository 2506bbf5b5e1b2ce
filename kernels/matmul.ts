/**
 * Matrix multiplication: `y = x·Wᵀ` (W in HF `[out, in]` layout, f32 or bf16), `y = x·W`, and
 * `y = aᵀ·b` (weight gradients), batched, with a fused epilogue (`out = residual + α·x·Wᵀ` or
 * `out += α·x·Wᵀ`, and for `x·Wᵀ`/`x·W` GeGLU: `gelu_tanh(gate)·` the value the epilogue would
 * write, the gate read through the residual's binding; the gelu is `_geglu_wgsl.ts`'s, so the
 * result is what `geglu(gate, matmul(…))` gives). Every variant below serves the three forms
 * (the subgroup GEMV: `x·Wᵀ`), both dtypes of W, split weights, weight row ranges and the
 * epilogue (a uniform mode: no extra pipelines), and
 * accumulates in f32 with partial sums over blocks of 128 k (f32 error ≈ 10× lower at
 * K = 6912 than one running sum), so any of them may run any launch within f32 rounding.
 *
 * - `reg` (`_matmul_wgsl.ts`): register blocking. Each invocation owns a
 *   `rows × (4·colVec4s)` tile of the output in vec4 accumulators and walks K four (bf16
 *   decode: eight) at a time. All invocations of a workgroup share the same rows, so the A loads
 *   are uniform (one scalar load per workgroup on SIMD-across-lanes adapters such as llvmpipe);
 *   the lanes spread along N. No workgroup memory and no barriers: llvmpipe runs those very
 *   slowly. The only variant of software adapters' table ({@linkcode matmulTiling}).
 * - `tile<BM>x<BN>t<TM>x<TN>` (`_matmul_tiled_wgsl.ts`): classic block tiling for GPUs
 *   (`tile4x128t1x4` for M ≤ 4, `tile64x64t4x4`, and `tile128x128t8x8` for shapes that allow
 *   vec4 loads). A workgroup stages slabs of 8 k (128×128: 4) of its `BM` rows of A and `BN`
 *   columns of B in workgroup memory (k-major, bf16 widened to f32 while staging, vec4 global
 *   loads when aligned, bounds checked otherwise; the form is a uniform), then each invocation
 *   accumulates its `TM × TN` outputs from vec4 reads of the slabs (its column quads
 *   interleaved with its neighbours', free of bank conflicts).
 * - `splitk<S>`: split-K for skinny products (decode GEMV, LoRA `x·Aᵀ`, `dYᵀ·X` of small
 *   matrices over long T): the tiled kernel (`tile4x128t1x4` for M ≤ 4, else `tile64x64t4x4`)
 *   reduces one of S k slices per workgroup into f32 partial sums `[S, M, N]`; a second pass
 *   adds the slices in a fixed order and applies the epilogue (deterministic, no atomics).
 * - `sgemv` (`_matmul_sgemv_wgsl.ts`, adapters with `subgroups`): `x·Wᵀ` for M ≤ 4; each
 *   subgroup reads a row of W with its lanes side by side and sums its lanes' partial dot
 *   products with `subgroupAdd`.
 *
 * Which variant runs: `options.variant` when given, else `gpu.tuner.choose` over
 * {@linkcode matmulCandidates} (first: the deterministic table; family `matmul`, shape class
 * form, dtype, M rounded up to a power of two, exact N and K).
 *
 * @module
 */

import { expectDtype, partBinding, Uniforms } from "./_launch.ts";
import {
  candidateIds,
  dispatchSgemv,
  dispatchTiled,
  epilogueInput,
  geometry,
  type LaunchShape,
  MATMUL_SPLITS,
  MATMUL_TILES,
  MATMUL_VARIANT_IDS,
  type MatmulShape,
  type Plan,
  type Slice,
  splitTile,
  variantFits,
} from "./_matmul_launch.ts";
import { ShapeError } from "./errors.ts";
import type { Gpu } from "./gpu.ts";
import { shapeString, Tensor } from "./tensor.ts";
import { pow2Bucket, type TuningBench } from "./tuning.ts";
import {
  ACCUMULATE,
  gated,
  type MatmulForm,
  matmulSource,
  type MatmulVariant,
  RESIDUAL,
  STORE,
} from "./_matmul_wgsl.ts";

export type { MatmulForm, MatmulShape };

/** How one matmul launch is blocked. */
export interface MatmulTiling {
  /** Output rows per workgroup (shared by all its lanes). */
  readonly rows: number;
  /** Output columns per lane, in groups of 4. */
  readonly colVec4s: number;
  /** Lanes per workgroup (spread along the output columns). */
  readonly workgroupSize: number;
}

/**
 * Products below this many FLOPs (a few ms on llvmpipe) and with fewer weights than
 * `SMALL_WEIGHT` get a tile that compiles fast; decode-sized products over real weights don't.
 */
const SMALL_FLOPS = 2 ** 27;
const SMALL_WEIGHT = 2 ** 20;

/**
 * The tiling webtune uses for an `[M, K]·[K, N]` product: a small per-adapter table
 * (deterministic). On fallback adapters (software, e.g. llvmpipe: a workgroup is a loop over
 * 8-lane SIMD chunks) products of ≥ 2^27 FLOPs or over ≥ 2^20 weights get row tiles up to 16
 * rows with 16 columns a lane in 8-lane workgroups (within ~10 % of the fastest tile measured,
 * at half the shader compile time of 32-row tiles), M = 1 gets 8 columns a lane (GEMV), and
 * smaller products a ≤ 4-row, 8-column tile that compiles in a fraction of a second. Other
 * adapters get a conventional ≤ 4-row, 64-lane tile. Row tiles are powers of two ≥ M up to the
 * cap, so few pipelines get compiled.
 *
 * @param gpu The runtime (its adapter selects the table).
 * @param shape Output rows `m`, output columns `n`, reduction length `k`.
 * @returns The tiling.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { matmulTiling } from "./matmul.ts";
 * const gpu = await Gpu.create();
 * // llvmpipe: { rows: 16, colVec4s: 4, workgroupSize: 8 }
 * console.log(matmulTiling(gpu, { m: 1024, n: 1024, k: 1024 }));
 * gpu.destroy();
 * ```
 */
export function matmulTiling(
  gpu: Gpu,
  shape: { readonly m: number; readonly n: number; readonly k: number },
): MatmulTiling {
  const { m, n, k } = shape;
  const fallback = gpu.adapter.isFallbackAdapter;
  const big = 2 * m * n * k >= SMALL_FLOPS || n * k >= SMALL_WEIGHT;
  const cap = fallback && big ? 16 : 4;
  let rows = 1;
  while (rows < m && rows < cap) rows *= 2;
  if (!fallback) return { rows, colVec4s: 1, workgroupSize: 64 };
  if (rows === 1) return { rows, colVec4s: 2, workgroupSize: 16 };
  return { rows, colVec4s: big ? 4 : 2, workgroupSize: 8 };
}

/** Options shared by {@linkcode matmul} and {@linkcode matmulTransA}. */
export interface MatmulEpilogueOptions {
  /** Write into this f32 tensor (same element count as the result) instead of a new one. */
  readonly out?: Tensor;
  /** `out += α·product` into the existing contents of `out` (requires `out`). */
  readonly accumulate?: boolean;
  /** Scale of the product (default 1). */
  readonly alpha?: number;
  /** `out = residual + α·product`; an f32 tensor shaped like the result, distinct from `out`. */
  readonly residual?: Tensor;
  /** Override the tiling of variant `reg` (tuning and tests); default {@linkcode matmulTiling}. */
  readonly tiling?: MatmulTiling;
  /**
   * Force a variant (one of {@linkcode MATMUL_VARIANTS} that {@linkcode matmulCandidates} lists
   * for this launch); default: the tuner's choice, the table's without tuning.
   */
  readonly variant?: string;
}

/** Options of {@linkcode matmul}. */
export interface MatmulOptions extends MatmulEpilogueOptions {
  /** True (default): `w` is `[N, K]` and the result is `x·wᵀ`; false: `w` is `[K, N]`, `x·w`. */
  readonly transposeB?: boolean;
  /**
   * Use only rows `[start, end)` of an `[N, K]` weight (e.g. a vocabulary chunk of the tied LM
   * head); the result then has `end − start` columns. Only with `transposeB`.
   */
  readonly wRows?: readonly [start: number, end: number];
  /**
   * GeGLU fused into the epilogue: the value written becomes `gelu_tanh(gate)·v`, where `v` is
   * what would be written without it (`α·x·Wᵀ`, or `out + α·x·Wᵀ` with `accumulate`), exactly
   * as `geglu(gate, v)` computes it. An f32 tensor with the result's element count, distinct
   * from `out`; not with `residual`. Applied once, on the final write (after every part of a
   * split W and every k slice of split-K).
   */
  readonly gate?: Tensor;
}

/** A launch with its variant resolved (`tiling` for `reg`). */
interface VariantPlan extends Plan {
  variant: string;
  tiling?: MatmulTiling;
}

function product(dims: readonly number[]): number {
  return dims.reduce((x, y) => x * y, 1);
}

function sameDims(x: readonly number[], y: readonly number[]): boolean {
  return x.length === y.length && x.every((d, i) => d === y[i]);
}

/** Validates `out`/`residual`/`gate`, allocates the result if needed. */
function prepareOut(
  kernel: string,
  gpu: Gpu,
  shape: number[],
  o: MatmulEpilogueOptions & { readonly gate?: Tensor },
  inputs: readonly Tensor[],
): { out: Tensor; residual?: Tensor; gate?: Tensor } {
  const want = product(shape);
  if (o.accumulate && !o.out) throw new ShapeError(kernel, "accumulate needs an out tensor");
  if (o.accumulate && o.residual) {
    throw new ShapeError(kernel, "accumulate and residual are exclusive");
  }
  if (o.gate && o.residual) throw new ShapeError(kernel, "gate and residual are exclusive");
  const named = [["out", o.out], ["residual", o.residual], ["gate", o.gate]] as const;
  for (const [name, t] of named) {
    if (!t) continue;
    expectDtype(kernel, name, t, ["f32"]);
    if (t.numel !== want) {
      throw new ShapeError(
        kernel,
        `${name} must hold ${shapeString(shape)}, got ${shapeString(t.shape)}`,
      );
    }
  }
  const out = o.out?.parts[0].buffer;
  if (out && o.residual && out === o.residual.parts[0].buffer) {
    throw new ShapeError(kernel, "residual must not alias out (use accumulate)");
  }
  if (out && o.gate && out === o.gate.parts[0].buffer) {
    throw new ShapeError(kernel, "gate must not alias out");
  }
  if (out && inputs.some((t) => t.parts.some((p) => p.buffer === out))) {
    throw new ShapeError(kernel, "out must not alias an input");
  }
  return { out: o.out ?? Tensor.empty(gpu, shape, "f32"), residual: o.residual, gate: o.gate };
}

/**
 * Every matmul variant id: `reg`, the tiles (`tile4x128t1x4`, `tile64x64t4x4`,
 * `tile128x128t8x8`), split-K (`splitk2`, `splitk4`, `splitk8`, `splitk16`)
 * and the subgroup GEMV `sgemv`.
 *
 * @example
 * ```ts
 * import { MATMUL_VARIANTS } from "./matmul.ts";
 * console.log(MATMUL_VARIANTS[0]); // reg
 * ```
 */
export const MATMUL_VARIANTS: readonly string[] = MATMUL_VARIANT_IDS;

/**
 * The variants that can run a product on this adapter (its limits and features), the
 * deterministic table's choice first: `reg` on fallback (software) adapters; elsewhere `reg`
 * for tiny products, the biggest tile that still gives ≥ 256 workgroups for M, N ≥ 512,
 * split-K when the output has too few tiles to fill a GPU and K is long (M ≤ 4 with
 * K ≥ 1024, LoRA `x·Aᵀ`, `dYᵀ·X` of small matrices), `tile4x128t1x4` for other M ≤ 4,
 * `tile64x64t4x4` from 2^24 FLOPs, else `reg`.
 *
 * @param gpu The runtime.
 * @param shape Form, output rows `m` and columns `n`, reduction length `k`, bf16 W, batch.
 * @returns Variant ids (see {@linkcode MATMUL_VARIANTS}), the table's choice first.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { matmulCandidates } from "./matmul.ts";
 * const gpu = await Gpu.create();
 * // On llvmpipe: [ "reg", "tile4x128t1x4", … ]
 * console.log(matmulCandidates(gpu, { form: "nt", m: 1, n: 1152, k: 6912, bf16: true }));
 * gpu.destroy();
 * ```
 */
export function matmulCandidates(gpu: Gpu, shape: MatmulShape): readonly string[] {
  return candidateIds(gpu, shape);
}

/** Scratch inputs of a launch's shape, launching any variant (for the tuner). */
function tuningBench(gpu: Gpu, s: MatmulShape): TuningBench {
  const { form, m, n, k } = s;
  const a = Tensor.zeros(gpu, form === "tn" ? [k, m] : [m, k]);
  const b = Tensor.zeros(gpu, form === "nt" ? [n, k] : [k, n], s.bf16 ? "bf16" : "f32");
  const out = Tensor.empty(gpu, [m, n]);
  return {
    launch(id: string) {
      if (form === "tn") matmulTransA(a, b, { out, variant: id });
      else matmul(a, b, { out, transposeB: form === "nt", variant: id });
    },
    dispose() {
      for (const t of [a, b, out]) t.dispose();
    },
  };
}

/**
 * The variant a launch runs: forced (validated), `reg` with a tiling, or the tuner's.
 *
 * @throws {ShapeError} for a forced variant that is unknown or does not fit the shape.
 */
function chooseVariant(
  kernel: string,
  gpu: Gpu,
  shape: Required<MatmulShape> & LaunchShape,
  o: MatmulEpilogueOptions,
): string {
  const { variant } = o;
  const { form, m, n, k } = shape;
  if (variant !== undefined) {
    if (o.tiling && variant !== "reg") {
      throw new ShapeError(kernel, `tiling applies to variant "reg" only, got "${variant}"`);
    }
    if (!MATMUL_VARIANT_IDS.includes(variant) || !variantFits(gpu, variant, shape)) {
      throw new ShapeError(
        kernel,
        `variant "${variant}" does not fit ${form} m=${m} n=${n} k=${k} ` +
          `${shape.bf16 ? "bf16" : "f32"} on this adapter; valid: ` +
          candidateIds(gpu, shape).join(", "),
      );
    }
    return variant;
  }
  if (o.tiling) return "reg";
  return gpu.tuner.choose({
    family: "matmul",
    shapeClass: `${form}:${shape.bf16 ? "bf16" : "f32"}:m${pow2Bucket(m)}:n${n}:k${k}`,
    candidates: candidateIds(gpu, shape),
    prepare: () => tuningBench(gpu, shape),
  });
}

/** Records the dispatch(es) of one slice with the plan's variant. */
function dispatchOne(plan: VariantPlan, part: number, d: Slice): void {
  const { variant } = plan;
  if (variant === "sgemv") return dispatchSgemv(plan, part, d);
  const splits = MATMUL_SPLITS[variant];
  if (splits) return dispatchTiled(plan, part, d, { tile: splitTile(plan.m), splits });
  if (variant !== "reg") {
    return dispatchTiled(plan, part, d, { tile: MATMUL_TILES[variant], splits: 1 });
  }
  const { form, a, b, out, batch, m } = plan;
  const gpu = a.gpu;
  const { k, n } = d;
  const { lda, ldb, ldc, sa, sb } = geometry(plan, d);
  const bf16 = b.dtype === "bf16";
  const aligned = k % 4 === 0 && (form === "nt" ||
    (n % 4 === 0 && (form === "tn" || (lda % 4 === 0 && d.aOff % 4 === 0))));
  const t = plan.tiling ?? matmulTiling(gpu, { m, n: plan.n, k: plan.k });
  const v: MatmulVariant = {
    form,
    bf16,
    aligned,
    // Wide bf16 loads pay off where W traffic dominates (few rows); big tiles keep the
    // smaller body (faster to compile, no slower).
    wide: aligned && bf16 && form === "nt" && k % 8 === 0 && t.rows <= 4,
    tm: t.rows,
    tn4: t.colVec4s,
    wg: t.workgroupSize,
  };
  const uniforms = new Uniforms().u32(m).u32(n).u32(k).u32(lda).u32(ldb).u32(ldc)
    .u32(d.aOff).u32(d.bOff).u32(d.cOff)
    .u32(sa).u32(sb)
    .u32(ldc * m).f32(plan.alpha).u32(d.epilogue).build();
  const r = epilogueInput(plan, d.epilogue);
  const buffers = [a.parts[0], b.parts[part], out.parts[0], r].map(partBinding);
  gpu.dispatch({
    pipeline: gpu.pipelines.get("matmul", v, matmulSource),
    shapes: `${plan.kernel} a${shapeString(a.shape)} b${shapeString(b.shape)}:${b.dtype}` +
      (b.parts.length > 1 ? ` part ${part}` : ""),
    uniforms,
    buffers,
    workgroups: [Math.ceil(n / (t.workgroupSize * 4 * t.colVec4s)), Math.ceil(m / t.rows), batch],
  });
}

/**
 * `y = x·Wᵀ` with `W` stored `[N, K]` (HF `[out, in]`), or `y = x·W` with `W` `[K, N]`
 * (`transposeB: false`), accumulating in f32. `x` is f32 `[..., M, K]`; `W` is f32 or bf16.
 * A 2-D `W` is shared by all leading dims of `x`; a `W` of rank ≥ 3 must have the same leading
 * dims as `x` (batched product). `W` may be split into parts (tensors larger than one storage
 * binding): one dispatch per part. Result: f32 `[..., M, N]`.
 *
 * @param x Activations, f32 `[..., M, K]`.
 * @param w Weight, f32 or bf16, `[N, K]` (default) or `[K, N]`.
 * @param options Layout, epilogue (`accumulate`/`residual`/`alpha`/`gate`), output, weight row
 *   range.
 * @returns The result (`options.out` when given).
 * @throws {ShapeError} on mismatched shapes or dtypes, a gate that aliases `out` or comes with a
 *   residual.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { matmul } from "./matmul.ts";
 * const gpu = await Gpu.create();
 * const x = Tensor.fromArray(gpu, [1, 2, 3, 4, 5, 6], [2, 3]); // [M=2, K=3]
 * const w = Tensor.fromArray(gpu, [1, 0, 0, 0, 1, 1], [2, 3], "bf16"); // [N=2, K=3]
 * const y = matmul(x, w); // [2, 2]
 * console.log(await y.read()); // Float32Array [1, 5, 4, 11]
 * matmul(x, w, { out: y, accumulate: true, alpha: -1 }); // y -= x·wᵀ → zeros
 * const gate = Tensor.fromArray(gpu, [1, 0, -20, 30], [2, 2]);
 * // gelu_tanh(gate)·x·wᵀ = geglu(gate, x·wᵀ): [0.8412·1, 0·5, 0·4, 30·11]
 * console.log(await matmul(x, w, { gate }).read()); // Float32Array [0.8412, 0, 0, 330]
 * gpu.destroy();
 * ```
 */
export function matmul(x: Tensor, w: Tensor, options: MatmulOptions = {}): Tensor {
  const kernel = "matmul";
  const nt = options.transposeB ?? true;
  expectDtype(kernel, "x", x, ["f32"]);
  expectDtype(kernel, "w", w, ["f32", "bf16"]);
  if (x.shape.length < 1 || w.shape.length < 2) {
    throw new ShapeError(
      kernel,
      `x must be [..., K] and w ${nt ? "[N, K]" : "[K, N]"}, got x${shapeString(x.shape)} ` +
        `w${shapeString(w.shape)}`,
    );
  }
  const [wr, wc] = w.shape.slice(-2);
  const n0 = nt ? wr : wc, k = nt ? wc : wr;
  const xk = x.shape[x.shape.length - 1];
  const batched = w.shape.length > 2;
  const lead = w.shape.slice(0, -2);
  if (
    xk !== k || (batched && !sameDims(x.shape.slice(0, -2), lead)) ||
    (batched && x.shape.length !== w.shape.length)
  ) {
    throw new ShapeError(
      kernel,
      `x${shapeString(x.shape)} does not fit w${shapeString(w.shape)} ` +
        `(${nt ? "[..., N, K]" : "[..., K, N]"}: x must be [..., M, ${k}]` +
        `${batched ? ` with leading dims ${shapeString(lead)}` : ""})`,
    );
  }
  const [start, end] = options.wRows ?? [0, n0];
  if (options.wRows && (!nt || !(0 <= start && start < end && end <= n0))) {
    throw new ShapeError(kernel, `wRows [${start}, ${end}) must lie in [0, ${n0}) with transposeB`);
  }
  if (x.parts.length > 1 || (batched && w.parts.length > 1)) {
    throw new ShapeError(kernel, "x (and a batched w) must fit one storage binding");
  }
  const n = end - start;
  const batch = product(lead);
  const m = batched ? x.shape[x.shape.length - 2] : product(x.shape.slice(0, -1));
  const form = nt ? "nt" : "nn";
  const variant = chooseVariant(kernel, x.gpu, {
    form,
    m,
    n,
    k,
    bf16: w.dtype === "bf16",
    batch,
    partsAligned: nt || w.parts.every((p) => p.rowStart % 4 === 0),
  }, options);
  const { out, residual, gate } = prepareOut(
    kernel,
    x.gpu,
    [...x.shape.slice(0, -1), n],
    options,
    [x, w],
  );
  const plan: VariantPlan = {
    kernel,
    form,
    a: x,
    b: w,
    out,
    residual,
    gate,
    accumulate: options.accumulate ?? false,
    alpha: options.alpha ?? 1,
    batch,
    m,
    n,
    k,
    variant,
    tiling: options.tiling,
  };
  const plain = plan.accumulate ? ACCUMULATE : residual ? RESIDUAL : STORE;
  // The gate applies to the final write of each output: every x·Wᵀ dispatch, the last x·W part.
  const first = gate ? gated(plain) : plain;
  if (k === 0 || w.parts.length === 1 && nt) {
    // subtle: k = 0 still runs once so the epilogue writes α·0 (+ residual, · gelu(gate)).
    dispatchOne(plan, 0, { k, n, aOff: 0, bOff: start * k, cOff: 0, epilogue: first });
    return out;
  }
  let epilogue = plain;
  for (let i = 0; i < w.parts.length; i++) {
    const part = w.parts[i];
    if (nt) {
      // Part rows are output columns: each part writes its own column range.
      const lo = Math.max(start, part.rowStart), hi = Math.min(end, part.rowStart + part.rows);
      if (lo >= hi) continue;
      dispatchOne(plan, i, {
        k,
        n: hi - lo,
        aOff: 0,
        bOff: (lo - part.rowStart) * k,
        cOff: lo - start,
        epilogue: first,
      });
    } else {
      // Part rows are a K range: the first part writes, the others accumulate; the last one
      // applies the gate.
      const rows = w.parts.length > 1 ? part.rows : k;
      const last = i === w.parts.length - 1;
      dispatchOne(plan, i, {
        k: rows,
        n,
        aOff: part.rowStart,
        bOff: 0,
        cOff: 0,
        epilogue: gate && last ? gated(epilogue) : epilogue,
      });
      epilogue = ACCUMULATE;
    }
  }
  return out;
}

/**
 * `y = aᵀ·b` for `a` `[..., K, M]` and `b` `[..., K, N]` (both f32), e.g. the weight gradient
 * `dW = dYᵀ·X` with `dY` `[T, N]` and `X` `[T, K]` as `a` and `b`. Equal leading dims of rank-3+
 * operands are a batch (reshape to 2-D to sum over them instead).
 *
 * @param a f32 `[..., K, M]`.
 * @param b f32 `[..., K, N]`.
 * @param options Epilogue (`accumulate`/`residual`/`alpha`) and output.
 * @returns f32 `[..., M, N]` (`options.out` when given).
 * @throws {ShapeError} on mismatched shapes or dtypes.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { matmulTransA } from "./matmul.ts";
 * const gpu = await Gpu.create();
 * const dy = Tensor.fromArray(gpu, [1, 2, 3, 4], [2, 2]); // [T=2, N=2]
 * const x = Tensor.fromArray(gpu, [1, 0, 0, 1], [2, 2]); // [T=2, K=2]
 * const dw = matmulTransA(dy, x); // dyᵀ·x: [2, 2]
 * console.log(await dw.read()); // Float32Array [1, 3, 2, 4]
 * gpu.destroy();
 * ```
 */
export function matmulTransA(a: Tensor, b: Tensor, options: MatmulEpilogueOptions = {}): Tensor {
  const kernel = "matmulTransA";
  expectDtype(kernel, "a", a, ["f32"]);
  expectDtype(kernel, "b", b, ["f32"]);
  const r = a.shape.length;
  if (
    r < 2 || b.shape.length !== r || !sameDims(a.shape.slice(0, -1), b.shape.slice(0, -1))
  ) {
    throw new ShapeError(
      kernel,
      `a [..., K, M] and b [..., K, N] must agree except in the last dim, got ` +
        `a${shapeString(a.shape)} b${shapeString(b.shape)}`,
    );
  }
  if (a.parts.length > 1 || b.parts.length > 1) {
    throw new ShapeError(kernel, "a and b must fit one storage binding");
  }
  const [k, m] = a.shape.slice(-2), n = b.shape[r - 1];
  const lead = a.shape.slice(0, -2);
  const batch = product(lead);
  const variant = chooseVariant(
    kernel,
    a.gpu,
    { form: "tn", m, n, k, bf16: false, batch },
    options,
  );
  const { out, residual } = prepareOut(kernel, a.gpu, [...lead, m, n], options, [a, b]);
  const accumulate = options.accumulate ?? false;
  const plan: VariantPlan = {
    kernel,
    form: "tn",
    a,
    b,
    out,
    residual,
    accumulate,
    alpha: options.alpha ?? 1,
    batch,
    m,
    n,
    k,
    variant,
    tiling: options.tiling,
  };
  dispatchOne(
    plan,
    0,
    {
      k,
      n,
      aOff: 0,
      bOff: 0,
      cOff: 0,
      epilogue: accumulate ? ACCUMULATE : residual ? RESIDUAL : STORE,
    },
  );
  return out;
}
