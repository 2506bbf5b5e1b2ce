/**
 * Launch helpers of the matmul variants (see `matmul.ts` for the design): the variant ids, which
 * of them fit a shape on an adapter, the deterministic table, and the dispatch of the tiled,
 * split-K and subgroup variants (the register-blocked `reg` is dispatched by `matmul.ts`).
 *
 * @module
 */

import { partBinding, Uniforms } from "./_launch.ts";
import { matmulSgemvSource, SGEMV_COLUMNS, SGEMV_WORKGROUP } from "./_matmul_sgemv_wgsl.ts";
import {
  matmulSplitReduceSource,
  type MatmulTileConstants,
  matmulTileSource,
  tileInvocations,
  tileLayout,
  tileWorkgroupBytes,
} from "./_matmul_tiled_wgsl.ts";
import { type Epilogue, GATED_STORE, type MatmulForm, RESIDUAL, STORE } from "./_matmul_wgsl.ts";
import type { Gpu } from "./gpu.ts";
import { shapeString, Tensor, type TensorPart } from "./tensor.ts";

/** The block shape of a tiled variant. */
export interface MatmulTile {
  /** Output rows per workgroup. */
  readonly bm: number;
  /** Output columns per workgroup. */
  readonly bn: number;
  /** Output rows per invocation. */
  readonly tm: number;
  /** Output columns per invocation. */
  readonly tn: number;
  /** k values staged per slab. */
  readonly bk: number;
}

/**
 * The tiled variants by id (`tile<bm>x<bn>t<tm>x<tn>`). Slabs of 8 k (4 for 128×128) keep the
 * workgroup memory ≤ 4 KiB: llvmpipe's GL path compiles the zero-initialisation of workgroup
 * memory in time that grows with the square of its size (seconds at 8 KiB).
 */
export const MATMUL_TILES: Readonly<Record<string, MatmulTile>> = Object.freeze({
  tile4x128t1x4: Object.freeze({ bm: 4, bn: 128, tm: 1, tn: 4, bk: 8 }), // M ≤ 4 (GEMV)
  tile64x64t4x4: Object.freeze({ bm: 64, bn: 64, tm: 4, tn: 4, bk: 8 }),
  tile128x128t8x8: Object.freeze({ bm: 128, bn: 128, tm: 8, tn: 8, bk: 4 }),
});

/**
 * Tiles that only take shapes whose operands allow vec4 loads (see `tileAligned`): big
 * products have such shapes, and llvmpipe compiles an 8×8 tile slowly (the tests compile each).
 */
const ALIGNED_ONLY: ReadonlySet<string> = new Set(["tile128x128t8x8"]);

/**
 * The constants of every tiled pipeline a launch can compile (the kernel-variant catalogue).
 *
 * @returns Each tile with each dtype and alignment it takes.
 */
export function matmulTileVariants(): MatmulTileConstants[] {
  return Object.entries(MATMUL_TILES).flatMap(([id, tile]) =>
    [false, true].flatMap((bf16) =>
      (ALIGNED_ONLY.has(id) ? [true] : [false, true]).map((aligned) => ({ bf16, aligned, ...tile }))
    )
  );
}

/** The split-K variants by id: k slices per product. */
export const MATMUL_SPLITS: Readonly<Record<string, number>> = Object.freeze({
  splitk2: 2,
  splitk4: 4,
  splitk8: 8,
  splitk16: 16,
});

/** Every matmul variant id, in candidate order after the table's choice. */
export const MATMUL_VARIANT_IDS: readonly string[] = Object.freeze([
  "reg",
  ...Object.keys(MATMUL_TILES),
  ...Object.keys(MATMUL_SPLITS),
  "sgemv",
]);

/** The shape one matmul launch computes (what its variant choice depends on). */
export interface MatmulShape {
  /** `nt` x·Wᵀ, `nn` x·W, `tn` aᵀ·b. */
  readonly form: MatmulForm;
  /** Output rows. */
  readonly m: number;
  /** Output columns. */
  readonly n: number;
  /** Reduction length. */
  readonly k: number;
  /** Whether the second operand is bf16 (default false). */
  readonly bf16?: boolean;
  /** Independent products (default 1). */
  readonly batch?: number;
}

/** A launch's shape as the launchers see it. */
export interface LaunchShape extends MatmulShape {
  /** False when a part of a split x·W weight starts at a k that is not a multiple of 4. */
  readonly partsAligned?: boolean;
}

/** Whether every slice of a launch of this shape can use vec4 loads (as `tileAligned`). */
function shapeAligned(s: LaunchShape): boolean {
  if (s.k === 0 || s.partsAligned === false) return false;
  if (s.form === "nt") return s.k % 4 === 0;
  if (s.form === "nn") return s.k % 4 === 0 && s.n % 4 === 0;
  return s.m % 4 === 0 && s.n % 4 === 0;
}

/** The tile a split-K variant reduces its k slices with. */
export function splitTile(m: number): MatmulTile {
  return MATMUL_TILES[m <= 4 ? "tile4x128t1x4" : "tile64x64t4x4"];
}

function tileFits(gpu: Gpu, t: MatmulTile, s: MatmulShape, blocks: number): boolean {
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  return tileInvocations(t) <= gpu.limits.maxComputeInvocationsPerWorkgroup &&
    tileWorkgroupBytes(t) <= gpu.limits.maxComputeWorkgroupStorageSize &&
    Math.ceil(s.n / t.bn) <= maxWg && Math.ceil(s.m / t.bm) <= maxWg && blocks <= maxWg;
}

/**
 * Whether variant `id` can run this shape on this adapter (limits, features, form).
 *
 * @param gpu The runtime.
 * @param id A variant id.
 * @param s The shape.
 * @returns True when valid.
 */
export function variantFits(gpu: Gpu, id: string, s: LaunchShape): boolean {
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  const batch = s.batch ?? 1;
  if (id === "reg") return true;
  if (id === "sgemv") {
    return gpu.features.subgroups && s.form === "nt" && s.m >= 1 && s.m <= 4 &&
      SGEMV_WORKGROUP <= gpu.limits.maxComputeInvocationsPerWorkgroup &&
      Math.ceil(s.n / SGEMV_COLUMNS) <= maxWg && batch <= maxWg;
  }
  const tile = Object.hasOwn(MATMUL_TILES, id) ? MATMUL_TILES[id] : undefined;
  if (tile) return tileFits(gpu, tile, s, batch) && (!ALIGNED_ONLY.has(id) || shapeAligned(s));
  const splits = Object.hasOwn(MATMUL_SPLITS, id) ? MATMUL_SPLITS[id] : undefined;
  if (!splits) return false;
  // The partial sums [batch·splits, M, N] must fit one storage binding.
  return tileFits(gpu, splitTile(s.m), s, batch * splits) && s.m <= maxWg &&
    4 * batch * splits * s.m * s.n <= gpu.limits.maxStorageBufferBindingSize;
}

/** Output blocks of at least this count fill a big GPU; fewer ask for split-K. */
const FILL = 128;

/**
 * The deterministic table: `reg` on fallback (software) adapters and for tiny products; the
 * biggest tile that still gives ≥ 256 workgroups for M, N ≥ 512; split-K for products with too
 * few output tiles to fill a GPU and a long reduction (decode GEMV, LoRA `x·Aᵀ`, `dYᵀ·X` of small
 * matrices), in the fewest slices that fill it; `tile4x128t1x4` for other M ≤ 4;
 * `tile64x64t4x4` from 2^24 FLOPs; else `reg`. Falls back along that order to a valid id.
 */
function tableChoice(gpu: Gpu, s: MatmulShape, valid: readonly string[]): string {
  if (gpu.adapter.isFallbackAdapter) return "reg";
  const { m, n, k } = s;
  const batch = s.batch ?? 1;
  const flops = 2 * batch * m * n * k;
  if (flops < 2 ** 21) return "reg";
  const order: string[] = [];
  const count = (bm: number, bn: number) => batch * Math.ceil(m / bm) * Math.ceil(n / bn);
  if (m >= 512 && n >= 512) {
    if (count(128, 128) >= 256) order.push("tile128x128t8x8");
    order.push("tile64x64t4x4");
  }
  const skinny = m <= 4;
  const blocks = skinny ? count(4, 128) : count(64, 64);
  if (blocks < FILL && k >= (skinny ? 1024 : 512)) {
    for (const [id, splits] of Object.entries(MATMUL_SPLITS)) {
      if ((blocks * splits >= FILL || splits === 16) && k / splits >= 64) order.push(id);
    }
  }
  if (skinny) order.push("tile4x128t1x4");
  if (flops >= 2 ** 24) order.push("tile64x64t4x4");
  order.push("reg");
  return order.find((id) => valid.includes(id)) ?? "reg";
}

/**
 * The variant ids valid for a shape on an adapter, the table's choice first.
 *
 * @param gpu The runtime.
 * @param s The shape.
 * @returns Candidate ids.
 */
export function candidateIds(gpu: Gpu, s: LaunchShape): string[] {
  const valid = MATMUL_VARIANT_IDS.filter((id) => variantFits(gpu, id, s));
  const first = tableChoice(gpu, s, valid);
  return [first, ...valid.filter((id) => id !== first)];
}

/** One matmul launch after validation (every variant dispatches from it). */
export interface Plan {
  kernel: string;
  form: MatmulForm;
  a: Tensor;
  b: Tensor;
  out: Tensor;
  residual?: Tensor;
  /** The GeGLU gate of the gated epilogues (shaped like `out`). */
  gate?: Tensor;
  accumulate: boolean;
  alpha: number;
  batch: number;
  m: number;
  n: number;
  k: number;
}

/** One dispatch of a plan: a part of `b`, its k and column range and epilogue. */
export interface Slice {
  k: number;
  n: number;
  aOff: number;
  bOff: number;
  cOff: number;
  epilogue: Epilogue;
}

/** Leading dims and batch strides of a slice (elements). */
export interface Geometry {
  lda: number;
  ldb: number;
  ldc: number;
  sa: number;
  sb: number;
}

/**
 * @param plan The launch.
 * @param d The slice.
 * @returns Its leading dims and batch strides.
 */
export function geometry(plan: Plan, d: Slice): Geometry {
  const { form, a, b, batch, m } = plan;
  const kTotal = form === "tn" ? d.k : a.shape[a.shape.length - 1];
  return {
    lda: form === "tn" ? m : kTotal,
    ldb: form === "nt" ? d.k : d.n,
    ldc: plan.n,
    sa: a.numel / batch,
    sb: b.numel / batch,
  };
}

/** The uniform block shared by every matmul kernel (the tiled one appends two fields). */
function uniforms(
  plan: Plan,
  d: Slice,
  g: Geometry,
  c: { ldc: number; cOff: number; sc: number; alpha: number; mode: Epilogue },
): Uniforms {
  return new Uniforms().u32(plan.m).u32(d.n).u32(d.k).u32(g.lda).u32(g.ldb).u32(c.ldc)
    .u32(d.aOff).u32(d.bOff).u32(c.cOff).u32(g.sa).u32(g.sb).u32(c.sc).f32(c.alpha).u32(c.mode);
}

function shapes(plan: Plan, part: number): string {
  const { a, b } = plan;
  return `${plan.kernel} a${shapeString(a.shape)} b${shapeString(b.shape)}:${b.dtype}` +
    (b.parts.length > 1 ? ` part ${part}` : "");
}

/**
 * The tensor an epilogue reads as `r` (binding 4; the split-K reduce's binding 3): the residual
 * (mode 2), the gate (modes 3 and 4); otherwise `a` stands in (read-only twice is allowed).
 *
 * @param plan The launch.
 * @param mode The epilogue of the dispatch.
 * @returns Its first part.
 */
export function epilogueInput(plan: Plan, mode: Epilogue): TensorPart {
  return (mode === RESIDUAL ? plan.residual! : mode >= GATED_STORE ? plan.gate! : plan.a).parts[0];
}

/** The epilogue's output uniforms and `r` binding for the final write of a slice. */
function epilogueOf(plan: Plan, d: Slice) {
  return {
    ldc: plan.n,
    cOff: d.cOff,
    sc: plan.n * plan.m,
    alpha: plan.alpha,
    mode: d.epilogue,
    r: epilogueInput(plan, d.epilogue),
  };
}

/**
 * Whether a tiled launch can use vec4 loads: the contiguous dim of each operand and every row
 * start are multiples of 4 (and there is something to load).
 */
function tileAligned(plan: Plan, d: Slice, g: Geometry): boolean {
  if (d.k === 0) return false;
  const kRows = d.k % 4 === 0 && g.lda % 4 === 0 && d.aOff % 4 === 0;
  if (plan.form === "nt") return kRows && d.bOff % 4 === 0;
  if (plan.form === "nn") return kRows && d.n % 4 === 0 && d.bOff % 4 === 0;
  return plan.m % 4 === 0 && d.n % 4 === 0;
}

/**
 * Records a tiled launch of one slice; with `splits > 1` a split-K launch: the tiles write
 * `[batch·splits, M, n]` partial sums and a second pass sums them in order into the epilogue.
 *
 * @param plan The launch.
 * @param part The part of `b`.
 * @param d The slice.
 * @param o The tile and the k slices.
 */
export function dispatchTiled(
  plan: Plan,
  part: number,
  d: Slice,
  o: { tile: MatmulTile; splits: number },
): void {
  const { a, b, m, batch } = plan;
  const gpu = a.gpu;
  const g = geometry(plan, d);
  const { tile } = o;
  const constants: MatmulTileConstants = {
    bf16: b.dtype === "bf16",
    aligned: tileAligned(plan, d, g),
    ...tile,
  };
  const pipeline = gpu.pipelines.get("matmul_tile", constants, matmulTileSource);
  const chunk = Math.ceil(Math.ceil(d.k / o.splits) / tile.bk) * tile.bk;
  const splits = d.k === 0 ? 1 : Math.ceil(d.k / chunk);
  const grid = (z: number) => [Math.ceil(d.n / tile.bn), Math.ceil(m / tile.bm), z] as const;
  const ep = epilogueOf(plan, d);
  if (o.splits === 1) {
    gpu.dispatch({
      pipeline,
      shapes: shapes(plan, part),
      uniforms: uniforms(plan, d, g, ep).u32(1).u32(d.k).u32(tileLayout(plan.form)).build(),
      buffers: [a.parts[0], b.parts[part], plan.out.parts[0], ep.r].map(partBinding),
      workgroups: grid(batch),
    });
    return;
  }
  const partial = Tensor.empty(gpu, [batch * splits, m, d.n]);
  gpu.dispatch({
    pipeline,
    shapes: shapes(plan, part) + ` split ${splits}`,
    uniforms: uniforms(plan, d, g, { ldc: d.n, cOff: 0, sc: m * d.n, alpha: 1, mode: STORE })
      .u32(splits).u32(chunk).u32(tileLayout(plan.form)).build(),
    buffers: [a.parts[0], b.parts[part], partial.parts[0], a.parts[0]].map(partBinding),
    workgroups: grid(batch * splits),
  });
  gpu.dispatch({
    pipeline: gpu.pipelines.get("matmul_split_reduce", {}, matmulSplitReduceSource),
    shapes: shapes(plan, part) + ` reduce ${splits}`,
    uniforms: new Uniforms().u32(m).u32(d.n).u32(splits).u32(ep.ldc).u32(ep.cOff).u32(ep.sc)
      .f32(ep.alpha).u32(ep.mode).build(),
    buffers: [partial.parts[0], plan.out.parts[0], ep.r].map(partBinding),
    workgroups: [Math.ceil(d.n / 64), m, batch],
  });
  partial.dispose(); // stream-ordered reuse: later users are recorded after the reduce
}

/**
 * Records a subgroup GEMV launch of one slice (`nt`, M ≤ 4).
 *
 * @param plan The launch.
 * @param part The part of `b`.
 * @param d The slice.
 */
export function dispatchSgemv(plan: Plan, part: number, d: Slice): void {
  const { a, b, batch } = plan;
  const g = geometry(plan, d);
  const aligned = d.k > 0 && d.k % 4 === 0 && g.lda % 4 === 0 && d.aOff % 4 === 0 &&
    d.bOff % 4 === 0;
  const ep = epilogueOf(plan, d);
  a.gpu.dispatch({
    pipeline: a.gpu.pipelines.get(
      "matmul_sgemv",
      { bf16: b.dtype === "bf16", aligned, rows: plan.m },
      matmulSgemvSource,
    ),
    shapes: shapes(plan, part),
    uniforms: uniforms(plan, d, g, ep).build(),
    buffers: [a.parts[0], b.parts[part], plan.out.parts[0], ep.r].map(partBinding),
    workgroups: [Math.ceil(d.n / SGEMV_COLUMNS), 1, batch],
  });
}
