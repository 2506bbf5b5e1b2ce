/**
 * The catalogue of the kernel variants webtune's launchers compile: for every pipeline name a
 * launcher passes to `gpu.pipelines.get(name, constants, source)`, the same WGSL source builder
 * and constants covering every code path — each combination of the boolean and string constants
 * the launcher can produce, each dtype, and the numeric constants (tiles, head dims, workgroup
 * sizes) of odd shapes, the tiny test fixture (head_dim 32, hidden 64, vocab 512) and Gemma 3 1B
 * (head_dim 256, hidden 1152, vocab 262144), on software (fallback) and other adapters.
 *
 * {@linkcode compileKernelVariants} compiles a list of variants on a device and returns the ones
 * it rejects: tests run it on Deno's adapter and in Chromium (Tint), so WGSL that one WebGPU
 * implementation rejects is caught before a user's browser meets it. The tiling tables come
 * from the launchers where they export them (`matmulTiling`, `tileFor`, `rowLaunchOf`,
 * `partsPerDispatch`); `tests/kernel_variants_test.ts` checks that a broad workload compiles
 * nothing the catalogue lacks.
 *
 * @module
 */

import { finalizeSource, sumSquaresSource, updateSource } from "./_adamw_wgsl.ts";
import {
  type AttentionBackwardConstants,
  attentionBackwardSource,
} from "./_attention_backward_wgsl.ts";
import {
  type AttentionConstants,
  attentionSource,
  type CacheWriteConstants,
  cacheWriteSource,
} from "./_attention_wgsl.ts";
import { flashTiling } from "./_attention_launch.ts";
import {
  type FlashAttentionBackwardConstants,
  flashAttentionBackwardSource,
} from "./_flash_attention_backward_wgsl.ts";
import { type FlashAttentionConstants, flashAttentionSource } from "./_flash_attention_wgsl.ts";
import {
  type FlashDecodeCombineConstants,
  flashDecodeCombineSource,
  type FlashDecodeConstants,
  flashDecodeSource,
} from "./_flash_decode_wgsl.ts";
import { ATTENTION_DECODE_VARIANTS, ATTENTION_VARIANTS } from "./attention.ts";
import { ATTENTION_BACKWARD_VARIANTS } from "./attention_backward.ts";
import { addSource, scaleSource } from "./_elementwise_wgsl.ts";
import { embeddingScatterSource, zeroSource } from "./_embedding_backward_wgsl.ts";
import { embeddingSource, partsPerDispatch } from "./_embedding_wgsl.ts";
import { gegluBackwardSource } from "./_geglu_backward_wgsl.ts";
import { gegluSource } from "./_geglu_wgsl.ts";
import { tileFor } from "./_logprobs_launch.ts";
import {
  type AccConstants,
  accSource,
  dzSource,
  liveSource,
  SG_ACC_TILE,
} from "./_logprobs_backward_wgsl.ts";
import { combineSource, type DotConstants, partialSource } from "./_logprobs_wgsl.ts";
import { matmulTileVariants } from "./_matmul_launch.ts";
import { type MatmulSgemvConstants, matmulSgemvSource } from "./_matmul_sgemv_wgsl.ts";
import { matmulSplitReduceSource, matmulTileSource } from "./_matmul_tiled_wgsl.ts";
import { matmulSource, type MatmulVariant } from "./_matmul_wgsl.ts";
import { type RmsNormVariant, rowLaunchOf } from "./_rms_norm_launch.ts";
import {
  rmsNormDwSource,
  type RmsNormDxConstants,
  rmsNormDxSource,
} from "./_rms_norm_backward_wgsl.ts";
import {
  type RmsNormAlias,
  type RmsNormConstants,
  type RmsNormFuse,
  rmsNormSource,
} from "./_rms_norm_wgsl.ts";
import { ropeSource } from "./_rope_wgsl.ts";
import { type SampleConstants, sampleSource, UNROLL } from "./_sampling_wgsl.ts";
import type { Gpu } from "./gpu.ts";
import { type MatmulTiling, matmulTiling } from "./matmul.ts";
import { PipelineCache, type PipelineConstants, pipelineLabel } from "./pipeline_cache.ts";

/** One pipeline a launcher can ask for: its name, constants, cache label and WGSL. */
export interface KernelVariant {
  /** Kernel name, as the launcher passes it to `gpu.pipelines.get`. */
  readonly name: string;
  /** The constants the source is built from. */
  readonly constants: PipelineConstants;
  /** The pipeline-cache label (`pipelineLabel(name, constants)`). */
  readonly label: string;
  /** The WGSL source. */
  readonly code: string;
}

/** The variants of one pipeline name and the source builder they come from. */
export interface KernelFamily {
  /** Kernel name. */
  readonly name: string;
  /** The WGSL source builder the launcher passes to `gpu.pipelines.get`. */
  readonly source: (constants: never) => string;
  /** Its variants (distinct labels). */
  readonly variants: readonly KernelVariant[];
}

/** Options of {@linkcode kernelFamilies} and {@linkcode kernelVariants}. */
export interface KernelVariantOptions {
  /**
   * The device limit that bounds the table parts one embedding dispatch binds (pass
   * `device.limits`); default 8 storage buffers, WebGPU's guaranteed minimum.
   */
  readonly limits?: { readonly maxStorageBuffersPerShaderStage: number };
  /**
   * The device's optional features (pass `gpu.features`): variants that need one it lacks
   * (`subgroups`: WGSL `enable subgroups;`) are left out; default none.
   */
  readonly features?: { readonly subgroups?: boolean };
}

/** A variant that the device rejected. */
export interface KernelVariantFailure {
  /** The variant's label. */
  readonly label: string;
  /** The compiler's messages (`line L:C: text`) or the WebGPU error message. */
  readonly message: string;
}

/** Model shapes the numeric constants are taken from. */
interface ModelShape {
  readonly headDim: number;
  readonly hidden: number;
  readonly vocab: number;
  /** Query heads per KV head. */
  readonly groups: number;
  /** Tokens of a typical launch (prefill rows, training rows). */
  readonly tokens: number;
}

const SHAPES: readonly ModelShape[] = [
  { headDim: 7, hidden: 7, vocab: 3, groups: 3, tokens: 3 }, // odd: scalar loads, tails
  { headDim: 32, hidden: 64, vocab: 512, groups: 4, tokens: 24 }, // the tiny test fixture, gemma3-tiny-a
  { headDim: 256, hidden: 1152, vocab: 262144, groups: 4, tokens: 256 }, // Gemma 3 1B
  { headDim: 16, hidden: 16, vocab: 64, groups: 1, tokens: 1 }, // multi-head, one token
];

/**
 * A stand-in for the runtime that the tiling tables read: only `gpu.adapter.isFallbackAdapter`
 * (software adapters such as llvmpipe or SwiftShader get other tiles).
 */
function adapterKind(fallback: boolean): Gpu {
  return { adapter: { isFallbackAdapter: fallback } } as unknown as Gpu;
}
const ADAPTERS = [adapterKind(true), adapterKind(false)];
const BOOLS = [false, true] as const;

/** Every combination of the listed values, keys in the order given. */
function combos<T extends PipelineConstants>(
  values: { readonly [K in keyof T]: readonly T[K][] },
): T[] {
  let out: Record<string, unknown>[] = [{}];
  for (const [key, options] of Object.entries(values) as [string, readonly unknown[]][]) {
    out = out.flatMap((c) => options.map((v) => ({ ...c, [key]: v })));
  }
  return out as T[];
}

/** Distinct values by their JSON. */
function unique<T>(xs: readonly T[]): T[] {
  return [...new Map(xs.map((x) => [JSON.stringify(x), x])).values()];
}

function family<C extends PipelineConstants>(
  name: string,
  source: (constants: C) => string,
  constants: readonly C[],
): KernelFamily {
  const variants = new Map<string, KernelVariant>();
  for (const c of constants) {
    const label = pipelineLabel(name, c);
    if (variants.has(label)) continue;
    variants.set(
      label,
      Object.freeze({ name, constants: Object.freeze(c), label, code: source(c) }),
    );
  }
  return Object.freeze({ name, source, variants: Object.freeze([...variants.values()]) });
}

/** `matmul` (x·Wᵀ, x·W, aᵀ·b): every form, dtype, alignment and the tiles of both tables. */
function matmulVariants(): MatmulVariant[] {
  const tilings: MatmulTiling[] = unique(
    ADAPTERS.flatMap((gpu) =>
      [1, 2, 3, 5, 9, 17].flatMap((m) =>
        SHAPES.flatMap((s) => [
          matmulTiling(gpu, { m, n: s.hidden, k: s.hidden }),
          matmulTiling(gpu, { m, n: s.vocab, k: s.hidden }), // the tied LM head
        ])
      )
    ),
  );
  const out: MatmulVariant[] = [];
  for (const t of tilings) {
    const tile = { tm: t.rows, tn4: t.colVec4s, wg: t.workgroupSize };
    for (const form of ["nt", "nn", "tn"] as const) {
      // matmulTransA (tn) takes f32 only; wide: bf16 x·Wᵀ, aligned, K % 8 = 0, ≤ 4-row tiles.
      for (const bf16 of form === "tn" ? [false] : BOOLS) {
        for (const aligned of BOOLS) {
          const wide = form === "nt" && bf16 && aligned && t.rows <= 4 ? BOOLS : [false];
          for (const w of wide) out.push({ form, bf16, aligned, wide: w, ...tile });
        }
      }
    }
  }
  return out;
}

/** `matmul_sgemv` (subgroup GEMV, x·Wᵀ, M ≤ 4): ±bf16, ±aligned, 1–4 rows; none without subgroups. */
function matmulSgemvVariants(subgroups: boolean): MatmulSgemvConstants[] {
  if (!subgroups) return [];
  return combos<Pick<MatmulSgemvConstants, "bf16" | "aligned">>({ bf16: BOOLS, aligned: BOOLS })
    .flatMap((c) => [1, 2, 3, 4].map((rows) => ({ ...c, rows })));
}

/** `logprobs_partial`: the dot-product constants (±entropy), and with subgroups the `sg` ones. */
function partialVariants(subgroups: boolean): DotConstants[] {
  const plain = dotVariants();
  return subgroups ? [...plain, ...plain.map((c) => ({ ...c, sg: true }))] : plain;
}

/** The dot-product constants of `logprobs_partial` / `logprobs_dz` (±entropy). */
function dotVariants(): DotConstants[] {
  const tiles = unique(ADAPTERS.flatMap((gpu) => SHAPES.map((s) => tileFor(gpu, s.tokens))));
  return tiles.flatMap((tile) =>
    combos<Pick<DotConstants, "pack" | "bf16">>({ pack: [1, 4], bf16: BOOLS }).flatMap((c) => {
      const plain: DotConstants = { ...c, ...tile };
      return [plain, { ...plain, entropy: true }];
    })
  );
}

/**
 * Mirrors `accTiling` of `logprobs_backward.ts` (not exported there): fallback adapters get
 * `tm` 16 for ≥ 16 rows (else 4) and up to 8 column groups a lane in 8-lane workgroups.
 */
function accTiling(fallback: boolean, rows: number, dim: number) {
  if (!fallback) return { tm: 4, tn4: 1, wg: 64 };
  let tn4 = 1;
  while (tn4 < 8 && tn4 * 32 < dim) tn4 *= 2;
  return { tm: rows >= 16 ? 16 : 4, tn4, wg: 8 };
}

/**
 * `logprobs_dh` (rows = tokens, b = E of either dtype) and `logprobs_de` (rows = vocab chunk);
 * with subgroups also the `sg` variant's split-K `dh` (its own tile).
 */
function accVariants(form: "dh" | "de", subgroups = false): AccConstants[] {
  // Rows: tokens (dh) or a vocabulary chunk of ≤ 65536 rows (de), crossed with every width.
  const rows = SHAPES.map((s) => (form === "dh" ? s.tokens : Math.min(s.vocab, 65536)));
  const tiles = unique(
    BOOLS.flatMap((fallback) =>
      rows.flatMap((r) => SHAPES.map((s) => accTiling(fallback, r, s.hidden)))
    ),
  );
  const sg = form === "dh" && subgroups ? [{ ...SG_ACC_TILE, sg: true }] : [];
  return [...tiles, ...sg].flatMap((tile) =>
    combos<Pick<AccConstants, "bf16" | "vec" | "a4">>({
      bf16: form === "dh" ? BOOLS : [false],
      vec: BOOLS,
      // dh: the dz row stride is a multiple of 4 for every T the launcher accepts.
      a4: form === "dh" ? [true] : BOOLS,
    }).map((c): AccConstants => ({ form, ...c, ...tile }))
  );
}

/** `sample` for the workgroup sizes of odd, fixture and Gemma vocabularies (±log-probs, ±sg). */
function sampleVariants(subgroups: boolean): SampleConstants[] {
  // Mirrors sample(): wg = the smallest power of two ≥ 2 with wg·64 ≥ V, at most 64.
  const wgs = unique(SHAPES.map((s) => {
    let wg = 2;
    while (wg < 64 && wg * 64 < s.vocab) wg *= 2;
    return wg;
  }));
  const sgs: Record<string, number>[] = subgroups ? [{}, { sg: 1 }] : [{}];
  return wgs.flatMap((wg): SampleConstants[] =>
    sgs.flatMap((sg) => [
      { wg, unroll: UNROLL, ...sg },
      { wg, unroll: UNROLL, logprobs: 1, ...sg },
    ])
  );
}

/** `attention` (prefill, wg 16) or `attentionDecode` (ranges required, wg 4), ±lse. */
function attentionVariants(decode: boolean): AttentionConstants[] {
  return SHAPES.flatMap((s) =>
    combos<Pick<AttentionConstants, "ranges" | "lse">>({
      ranges: decode ? [true] : BOOLS,
      lse: BOOLS,
    }).map((c) => ({
      d: s.headDim,
      w: s.headDim % 4 === 0 ? 4 : 1,
      decode,
      ...c,
      wg: decode ? 4 : 16,
      g: s.groups,
    }))
  );
}

/** `attentionBackward`: both launches, ±ranges (blocks as in attention_backward.ts). */
function attentionBackwardVariants(): AttentionBackwardConstants[] {
  return SHAPES.flatMap((s) =>
    combos<Pick<AttentionBackwardConstants, "ranges" | "keys">>({ ranges: BOOLS, keys: BOOLS })
      .map((c) => ({
        d: s.headDim,
        w: s.headDim % 4 === 0 ? 4 : 1,
        g: s.groups,
        ...c,
        blk: c.keys ? 8 : Math.max(4, Math.floor(16 / s.groups)),
        kb: 4,
        wg: 16,
      }))
  );
}

/** Values per load of a head width: vec4 when D % 4 = 0. */
const vecWidth = (d: number) => (d % 4 === 0 ? 4 : 1);

/** `attentionFlash`: the tiling of every flash prefill id (`flash<rows>`) for each head width. */
function flashAttentionVariants(): FlashAttentionConstants[] {
  const ids = ATTENTION_VARIANTS.filter((id) => id.startsWith("flash"));
  return SHAPES.flatMap((s) =>
    ids.map((id) => {
      const { rows, lanes, tile } = flashTiling(id, s.headDim, "forward");
      return { d: s.headDim, w: vecWidth(s.headDim), rows, lanes, tile };
    })
  );
}

/** `attentionBackwardFlash`: both kernels (dq, dk/dv) of every flash backward id. */
function flashAttentionBackwardVariants(): FlashAttentionBackwardConstants[] {
  const ids = ATTENTION_BACKWARD_VARIANTS.filter((id) => id.startsWith("flash"));
  return SHAPES.flatMap((s) =>
    ids.flatMap((id) =>
      BOOLS.map((keys) => {
        const { rows, lanes, tile } = flashTiling(id, s.headDim, keys ? "dkdv" : "dq");
        return { d: s.headDim, w: vecWidth(s.headDim), rows, lanes, tile, keys };
      })
    )
  );
}

/** `attentionDecodeSplit`: every split decode id (`split<chunk>`) for each head width and G. */
function flashDecodeVariants(): FlashDecodeConstants[] {
  const ids = ATTENTION_DECODE_VARIANTS.filter((id) => id.startsWith("split"));
  return SHAPES.flatMap((s) =>
    ids.map((id) => ({
      d: s.headDim,
      w: vecWidth(s.headDim),
      g: s.groups,
      chunk: Number(id.slice("split".length)),
    }))
  );
}

/** `attentionDecodeCombine` (the split decode's second pass), ±lse. */
function flashDecodeCombineVariants(): FlashDecodeCombineConstants[] {
  return SHAPES.flatMap((s) => BOOLS.map((lse) => ({ d: s.headDim, w: vecWidth(s.headDim), lse })));
}

/** The (variant, wg) pairs of the RMSNorm launchers over row widths of every shape. */
function rowLaunches(subgroups: boolean): { strategy: string; wg: number }[] {
  const widths = SHAPES.flatMap((s) => [s.hidden, s.headDim]);
  const variants: RmsNormVariant[] = subgroups ? ["row", "workgroup", "sg"] : ["row", "workgroup"];
  return unique(
    variants.flatMap((variant) =>
      widths.map((d) => {
        const { strategy, wg } = rowLaunchOf(variant, d);
        return { strategy, wg };
      })
    ),
  );
}

/** `rmsNorm`: every form, plain or with a fused epilogue (`rope`: no residual; `next`: any). */
function rmsNormVariants(subgroups: boolean): RmsNormConstants[] {
  return rowLaunches(subgroups).flatMap((launch) =>
    combos<Pick<RmsNormConstants, "wBf16" | "residual" | "alias" | "rstd" | "fuse">>({
      wBf16: BOOLS,
      residual: BOOLS,
      alias: ["none", "x", "residual"] as RmsNormAlias[],
      rstd: BOOLS,
      fuse: ["none", "rope", "next"] as RmsNormFuse[],
    }).filter((c) => c.residual || c.alias !== "residual")
      .filter((c) => c.fuse !== "rope" || !c.residual)
      .map((c) => ({ ...launch, ...c }))
  );
}

function rmsNormDxVariants(subgroups: boolean): RmsNormDxConstants[] {
  return rowLaunches(subgroups).flatMap((launch) =>
    combos<Pick<RmsNormDxConstants, "wBf16" | "inPlace" | "accumulate">>({
      wBf16: BOOLS,
      inPlace: BOOLS,
      accumulate: BOOLS,
    }).map((c) => ({ ...launch, ...c }))
  );
}

/**
 * The catalogue, one family per pipeline name.
 *
 * @param options The device's storage-buffer limit (embedding parts per dispatch).
 * @returns Every kernel family with its variants.
 * @example
 * ```ts
 * import { kernelFamilies } from "./kernel_variants.ts";
 * for (const f of kernelFamilies()) console.log(f.name, f.variants.length);
 * ```
 */
export function kernelFamilies(options: KernelVariantOptions = {}): readonly KernelFamily[] {
  const maxParts = partsPerDispatch({
    limits: options.limits ?? { maxStorageBuffersPerShaderStage: 8 },
  });
  const parts = Array.from({ length: maxParts }, (_, i) => i + 1);
  const inPlace = combos({ inPlace: BOOLS });
  const subgroups = options.features?.subgroups ?? false;
  const reduceSg: PipelineConstants[] = subgroups ? [{}, { sg: true }] : [{}];
  return Object.freeze([
    family("matmul", matmulSource, matmulVariants()),
    family("matmul_tile", matmulTileSource, matmulTileVariants()),
    family("matmul_split_reduce", matmulSplitReduceSource, [{}]),
    family("matmul_sgemv", matmulSgemvSource, matmulSgemvVariants(subgroups)),
    family("logprobs_partial", partialSource, partialVariants(subgroups)),
    family("logprobs_combine", combineSource, [{}, { entropy: true }]),
    family("logprobs_dz", dzSource, dotVariants()),
    family("logprobs_live", liveSource, [{}]),
    family("logprobs_dh", accSource, accVariants("dh", subgroups)),
    family("logprobs_de", accSource, accVariants("de")),
    family("sample", sampleSource, sampleVariants(subgroups)),
    family("attention", attentionSource, attentionVariants(false)),
    family("attentionDecode", attentionSource, attentionVariants(true)),
    family(
      "writeKvCache",
      cacheWriteSource,
      combos<CacheWriteConstants>({ offsets: BOOLS, counts: BOOLS }),
    ),
    family("attentionBackward", attentionBackwardSource, attentionBackwardVariants()),
    family("attentionFlash", flashAttentionSource, flashAttentionVariants()),
    family("attentionDecodeSplit", flashDecodeSource, flashDecodeVariants()),
    family("attentionDecodeCombine", flashDecodeCombineSource, flashDecodeCombineVariants()),
    family(
      "attentionBackwardFlash",
      flashAttentionBackwardSource,
      flashAttentionBackwardVariants(),
    ),
    family("rmsNorm", rmsNormSource, rmsNormVariants(subgroups)),
    family("rmsNormBackwardDx", rmsNormDxSource, rmsNormDxVariants(subgroups)),
    family("rmsNormBackwardDw", rmsNormDwSource, [
      { stage: "rows", final: false },
      { stage: "rows", final: true },
      { stage: "blocks", final: true },
    ]),
    family("rope", ropeSource, inPlace),
    family("geglu", gegluSource, combos({ vec4: BOOLS })),
    family("gegluBackward", gegluBackwardSource, combos({ vec4: BOOLS, inPlace: BOOLS })),
    family("add", addSource, inPlace),
    family("scale", scaleSource, inPlace),
    family("gradSumSquaresPartials", sumSquaresSource, reduceSg),
    family("gradNormFinalize", finalizeSource, reduceSg),
    family("adamwUpdate", updateSource, [{}]),
    family("embedding", embeddingSource, combos({ bf16: BOOLS, parts })),
    family("embeddingBackward", embeddingScatterSource, combos({ parts })),
    family("embeddingBackwardZero", zeroSource, [{}]),
  ]);
}

/**
 * Every variant of the catalogue (see {@linkcode kernelFamilies}).
 *
 * @param options The device's storage-buffer limit (embedding parts per dispatch).
 * @returns The variants, family by family.
 * @example
 * ```ts
 * import { kernelVariants } from "./kernel_variants.ts";
 * const variants = kernelVariants();
 * console.log(variants.length, variants[0].label);
 * ```
 */
export function kernelVariants(options: KernelVariantOptions = {}): KernelVariant[] {
  return kernelFamilies(options).flatMap((f) => f.variants);
}

/**
 * Compiles variants on a device the way the runtime does (`PipelineCache`: shader module and
 * compute pipeline with layout `auto`, inside a validation error scope) and returns those the
 * device rejected, with the compiler's messages. Uses no Deno API: it runs in a browser too.
 *
 * @param device The device (create it with the adapter's limits to compile every embedding
 *   variant: see {@linkcode KernelVariantOptions}).
 * @param variants What to compile (e.g. {@linkcode kernelVariants}).
 * @returns The rejected variants, in the order given (empty when all compiled).
 * @example
 * ```ts
 * import { compileKernelVariants, kernelVariants } from "./kernel_variants.ts";
 * const adapter = await navigator.gpu.requestAdapter();
 * const device = await adapter!.requestDevice();
 * const some = kernelVariants().filter((v) => v.name === "add");
 * console.log(await compileKernelVariants(device, some)); // []
 * device.destroy();
 * ```
 */
export async function compileKernelVariants(
  device: GPUDevice,
  variants: readonly KernelVariant[],
): Promise<KernelVariantFailure[]> {
  const cache = new PipelineCache(device);
  for (const v of variants) cache.get(v.name, v.constants, () => v.code);
  return (await cache.takeFailures()).map((f) => ({
    label: f.pipeline.label,
    message: f.message,
  }));
}
