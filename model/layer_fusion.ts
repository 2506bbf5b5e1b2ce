/**
 * Which kernel fusions a decoder layer's forward uses, chosen per adapter and shape class by the
 * autotuner (`gpu.tuner`, family {@linkcode FUSION_FAMILY}) like a kernel variant: candidates
 * `"fused"` and `"separate"`, the deterministic table's choice first. A fused path writes the
 * same tensors as the separate kernels (within f32 rounding), so the choice never changes what
 * the backward pass receives.
 *
 * - `geglu_up`: `gelu_tanh(gate) · up` in the up-projection's epilogue (`matmul`'s `gate`
 *   option) instead of writing `up` and running `geglu`. Only without saving for backward (the
 *   backward pass needs `up`): rollouts, reference and old-policy log-probs, evaluation.
 * - `norm_rope`: RoPE inside the per-head q/k RMSNorm (`rmsNorm`'s `rope` option; Gemma 3 norms
 *   q and k between the projection and RoPE, so this is where "RoPE into the QKV epilogue" lands).
 * - `norm_chain`: the pre-feedforward RMSNorm inside the post-attention residual norm's launch,
 *   and (forwards without saving, `forwardLayers`) the next layer's input RMSNorm inside the
 *   post-feedforward one (`rmsNorm`'s `next` option): the new residual row is normed again
 *   without re-reading it. This is where "RMSNorm into the following matmul" lands: the normed
 *   rows are read by three projections and their LoRA products, and by the backward pass, so
 *   they are written once by the launch that forms the residual row.
 *
 * @module
 */

import type { DType } from "../kernels/dtype.ts";
import { geglu } from "../kernels/geglu.ts";
import type { Gpu } from "../kernels/gpu.ts";
import { matmul } from "../kernels/matmul.ts";
import { rmsNorm } from "../kernels/rms_norm.ts";
import { rope, RopeTable } from "../kernels/rope.ts";
import { Tensor } from "../kernels/tensor.ts";
import { pow2Bucket, type TuningBench } from "../kernels/tuning.ts";

/** The tuner family of the layer fusions. */
export const FUSION_FAMILY = "layer_fusion";

/** The fusions a decoder layer can use. */
export const LAYER_FUSIONS: readonly ["geglu_up", "norm_rope", "norm_chain"] = Object.freeze(
  ["geglu_up", "norm_rope", "norm_chain"] as const,
);

/** One of {@linkcode LAYER_FUSIONS}. */
export type LayerFusion = typeof LAYER_FUSIONS[number];

/** The candidates of a fusion job. */
export type FusionChoice = "fused" | "separate";

/**
 * The deterministic table's choice, `"fused"` on every adapter: on hardware adapters it saves a
 * launch and a round trip of the intermediate through memory; on Mesa llvmpipe
 * (`bench/layer_fusion_bench.ts`, Gemma 3 1B sizes, 1, 4 and 256 tokens) norm + RoPE measured
 * 1.6–2.3× and the norm chain 1.2–1.3× as fast as the separate launches, GeGLU in the
 * up-projection 0.97–1.14× (the product dominates: a tie within noise). The tuner times
 * `"separate"` against it.
 */
const TABLE_CHOICE: readonly FusionChoice[] = Object.freeze(["fused", "separate"]);

/** A fusion question: which path runs a layer step of this size. */
export interface FusionRequest {
  /** The fusion. */
  readonly fusion: LayerFusion;
  /** Tokens of the launch (bucketed to a power of two). */
  readonly tokens: number;
  /** The other sizes and dtypes that set the cost, e.g. `n6912:k1152:bf16`. */
  readonly shape: string;
  /** Scratch inputs of this size that can run either path (only called when timed). */
  readonly prepare: () => TuningBench;
}

/**
 * Whether to use a fusion for this launch: the tuner's choice between `"fused"` and
 * `"separate"`.
 *
 * @param gpu The runtime.
 * @param request The fusion, sizes and scratch inputs.
 * @returns True to run the fused path.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { gegluUpBench, useFusion } from "./layer_fusion.ts";
 * const gpu = await Gpu.create({ forceVariants: { layer_fusion: "separate" } });
 * const sizes = { tokens: 4, n: 64, k: 32, wDtype: "bf16" } as const;
 * const prepare = () => gegluUpBench(gpu, sizes);
 * console.log(useFusion(gpu, { fusion: "geglu_up", tokens: 4, shape: "n64:k32:bf16", prepare }));
 * // false
 * gpu.destroy();
 * ```
 */
export function useFusion(gpu: Gpu, request: FusionRequest): boolean {
  return gpu.tuner.choose({
    family: FUSION_FAMILY,
    shapeClass: `${request.fusion}:t${pow2Bucket(request.tokens)}:${request.shape}`,
    candidates: TABLE_CHOICE,
    prepare: request.prepare,
  }) === "fused";
}

/** Sizes of the `geglu_up` scratch: `act = gelu_tanh(gate) · x·Wᵀ`, x `[T, K]`, W `[N, K]`. */
export interface GegluUpSizes {
  /** T. */
  readonly tokens: number;
  /** N: the intermediate size. */
  readonly n: number;
  /** K: the hidden size. */
  readonly k: number;
  /** W's dtype. */
  readonly wDtype: DType;
}

/**
 * Scratch inputs of the `geglu_up` fusion: `"fused"` is the up-projection with the GeGLU
 * epilogue, `"separate"` the up-projection then `geglu`.
 *
 * @param gpu The runtime.
 * @param s Sizes.
 * @returns The bench (free it with `dispose`).
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { gegluUpBench } from "./layer_fusion.ts";
 * const gpu = await Gpu.create();
 * const bench = gegluUpBench(gpu, { tokens: 3, n: 40, k: 24, wDtype: "bf16" });
 * bench.launch("fused");
 * bench.launch("separate");
 * await gpu.sync();
 * bench.dispose();
 * gpu.destroy();
 * ```
 */
export function gegluUpBench(gpu: Gpu, s: GegluUpSizes): TuningBench {
  const x = Tensor.zeros(gpu, [s.tokens, s.k]), w = Tensor.zeros(gpu, [s.n, s.k], s.wDtype);
  const gate = Tensor.zeros(gpu, [s.tokens, s.n]), up = Tensor.empty(gpu, [s.tokens, s.n]);
  const act = Tensor.empty(gpu, [s.tokens, s.n]);
  return {
    launch(id) {
      if (id === "fused") matmul(x, w, { gate, out: act });
      else geglu(gate, matmul(x, w, { out: up }), { out: act });
    },
    dispose: () => [x, w, gate, up, act].forEach((t) => t.dispose()),
  };
}

/** Sizes of the `norm_rope` scratch: x `[T, H, hd]`. */
export interface NormRopeSizes {
  /** T. */
  readonly tokens: number;
  /** H. */
  readonly heads: number;
  /** hd (even). */
  readonly headDim: number;
  /** The norm weight's dtype. */
  readonly wDtype: DType;
  /** RoPE base. */
  readonly base: number;
}

/**
 * Scratch inputs of the `norm_rope` fusion: `"fused"` is the per-head RMSNorm with RoPE,
 * `"separate"` the RMSNorm then RoPE in place.
 *
 * @param gpu The runtime.
 * @param s Sizes.
 * @returns The bench (free it with `dispose`).
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { normRopeBench } from "./layer_fusion.ts";
 * const gpu = await Gpu.create();
 * const bench = normRopeBench(gpu, { tokens: 3, heads: 2, headDim: 8, wDtype: "f32", base: 1e4 });
 * bench.launch("fused");
 * bench.launch("separate");
 * await gpu.sync();
 * bench.dispose();
 * gpu.destroy();
 * ```
 */
export function normRopeBench(gpu: Gpu, s: NormRopeSizes): TuningBench {
  const x = Tensor.zeros(gpu, [s.tokens, s.heads, s.headDim]);
  const w = Tensor.zeros(gpu, [s.headDim], s.wDtype);
  const out = Tensor.empty(gpu, [s.tokens, s.heads, s.headDim]);
  const rstd = Tensor.empty(gpu, [s.tokens * s.heads]);
  const positions = Tensor.zeros(gpu, [s.tokens], "i32");
  const table = RopeTable.create(gpu, { base: s.base, headDim: s.headDim, maxPositions: 1 });
  return {
    launch(id) {
      if (id === "fused") rmsNorm(x, w, { out, rstd, rope: { table, positions } });
      else rope(rmsNorm(x, w, { out, rstd }), positions, { table, out });
    },
    dispose() {
      [x, w, out, rstd, positions].forEach((t) => t.dispose());
      table.dispose();
    },
  };
}

/** Sizes of the `norm_chain` scratch: rows `[T, D]`. */
export interface NormChainSizes {
  /** T. */
  readonly tokens: number;
  /** D. */
  readonly d: number;
  /** The norm weights' dtype. */
  readonly wDtype: DType;
}

/**
 * Scratch inputs of the `norm_chain` fusion: `"fused"` is the residual RMSNorm that also writes
 * the next RMSNorm, `"separate"` the two launches.
 *
 * @param gpu The runtime.
 * @param s Sizes.
 * @returns The bench (free it with `dispose`).
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { normChainBench } from "./layer_fusion.ts";
 * const gpu = await Gpu.create();
 * const bench = normChainBench(gpu, { tokens: 3, d: 40, wDtype: "f32" });
 * bench.launch("fused");
 * bench.launch("separate");
 * await gpu.sync();
 * bench.dispose();
 * gpu.destroy();
 * ```
 */
export function normChainBench(gpu: Gpu, s: NormChainSizes): TuningBench {
  const o = Tensor.zeros(gpu, [s.tokens, s.d]), h = Tensor.zeros(gpu, [s.tokens, s.d]);
  const w1 = Tensor.zeros(gpu, [s.d], s.wDtype), w2 = Tensor.zeros(gpu, [s.d], s.wDtype);
  const x2 = Tensor.empty(gpu, [s.tokens, s.d]);
  const r1 = Tensor.empty(gpu, [s.tokens]), r2 = Tensor.empty(gpu, [s.tokens]);
  return {
    launch(id) {
      if (id === "fused") {
        rmsNorm(o, w1, { residual: h, out: h, rstd: r1, next: { w: w2, out: x2, rstd: r2 } });
      } else {
        rmsNorm(o, w1, { residual: h, out: h, rstd: r1 });
        rmsNorm(h, w2, { out: x2, rstd: r2 });
      }
    },
    dispose: () => [o, h, w1, w2, x2, r1, r2].forEach((t) => t.dispose()),
  };
}

/**
 * Whether residual norms chain the norm that follows them (`norm_chain`): inside a layer the
 * pre-feedforward norm, across layers the next layer's input norm.
 *
 * @param gpu The runtime.
 * @param s Rows and the norm weights' dtype.
 * @returns True to chain.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { chainsNorms } from "./layer_fusion.ts";
 * const gpu = await Gpu.create();
 * console.log(chainsNorms(gpu, { tokens: 4, d: 1152, wDtype: "bf16" })); // true (the table)
 * gpu.destroy();
 * ```
 */
export function chainsNorms(gpu: Gpu, s: NormChainSizes): boolean {
  return useFusion(gpu, {
    fusion: "norm_chain",
    tokens: s.tokens,
    shape: `d${s.d}:${s.wDtype}`,
    prepare: () => normChainBench(gpu, s),
  });
}
