/**
 * Token sampling on the GPU: greedy, temperature, top-k and top-p (nucleus), seeded by a
 * counter-based RNG so a row's draw depends only on (seed, step, row), never on scheduling.
 * The rules (ranking, ties, thresholds, inverse CDF) are specified in `sampling_ref.ts`, whose
 * plain-TS reference picks the same token given the same uniform.
 *
 * One workgroup per row of `[B, V]` logits, all phases in one launch:
 * 1. max of the ordered keys (float32 bits mapped to u32 order);
 * 2. top-k: bisection on the key bits, 32 passes of "count of keys ≥ candidate" (workgroup
 *    reductions), giving the exact k-th largest key;
 * 3. top-p: bisection on the key bits again (only the bits where the top-k threshold and the
 *    max differ), each pass a reduction of the kept mass `Σ_{key ≥ candidate} w` against
 *    `p · Σ_kept w`;
 * 4. inverse CDF in index order: each invocation owns a contiguous block, block sums are
 *    prefix-summed by invocation 0 and the invocation whose interval holds `u · total` rescans
 *    its block.
 *
 * The reductions (max, counts, masses, the greedy argmin of indices) come in variants
 * ({@linkcode SAMPLE_VARIANTS}, the `variant` option, else the tuner's choice among
 * {@linkcode sampleCandidates}): `reg`, pairwise trees in workgroup memory — the table's choice
 * on fallback adapters and without subgroups; `sg`, `subgroupMax`/`Min`/`Add` with elected
 * per-subgroup results in workgroup memory and a second subgroup reduction (two barriers
 * instead of log2(WG) + 2; no subgroup size assumed) — the table's choice on other adapters
 * with `subgroups`. Counts and maxima are exact either way; masses differ only in f32 rounding.
 *
 * Only the ids are written (u32, optionally into a slot of a caller's `[steps, B]` buffer), so
 * a generation loop reads back once per batch of steps. With `logprobsOut`, the kernel also
 * writes each id's temperature-1 log-probability `z_id − logsumexp(z)` of the same logits (one
 * more pass over the row, a separately compiled variant; the ids are the same either way).
 *
 * The WGSL template lives in `_sampling_wgsl.ts`; the parameter checks ({@linkcode samplingParams})
 * are here, shared with the reference.
 *
 * @module
 */

import { expectDtype, Uniforms } from "./_launch.ts";
import { pickVariant, withSubgroupVariant } from "./_reduce_variant.ts";
import { pow2Bucket } from "./tuning.ts";
import { type SampleConstants, sampleSource, UNROLL } from "./_sampling_wgsl.ts";
import { FieldError, type FieldErrorDetails } from "../base/field_error.ts";
import { ShapeError } from "./errors.ts";
import type { Gpu } from "./gpu.ts";
import { shapeString, Tensor } from "./tensor.ts";

/** Every variant of the sampling kernel's reductions: `reg` (trees) and `sg` (subgroups). */
export const SAMPLE_VARIANTS: readonly ["reg", "sg"] = Object.freeze(["reg", "sg"] as const);

/**
 * The sampling variants valid on this adapter, the deterministic table's choice first: `reg`
 * on fallback (software) adapters and without subgroups, else `sg`.
 *
 * @param gpu The runtime (adapter kind and features).
 * @param _shape Rows and vocabulary (every variant takes every shape).
 * @returns Variant ids.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { sampleCandidates } from "./sampling.ts";
 * const gpu = await Gpu.create();
 * console.log(sampleCandidates(gpu, { rows: 4, vocab: 262144 })); // ["reg"] on llvmpipe
 * gpu.destroy();
 * ```
 */
export function sampleCandidates(
  gpu: Gpu,
  _shape: { readonly rows: number; readonly vocab: number },
): readonly string[] {
  return withSubgroupVariant(gpu, ["reg"]);
}

/**
 * Largest workgroup (one workgroup per row); small rows get smaller ones. On llvmpipe 64 beats
 * 256 both in run time and in shader compile time (8 s vs 1 s).
 */
const MAX_WG = 64;
/**
 * Largest vocabulary: at most 68 passes of V / (MAX_WG·UNROLL) loop iterations, plus ~1000 for
 * reductions and bit loops, must stay under llvmpipe's 65535 loop iterations per invocation.
 */
const MAX_VOCAB = Math.floor((65535 - 1024) / 68) * MAX_WG * UNROLL;
/** Largest vocabulary with `logprobsOut`: one more pass (the logsumexp). */
const MAX_VOCAB_LOGPROBS = Math.floor((65535 - 1024) / 69) * MAX_WG * UNROLL;

/** Invalid sampling parameters; the message names the field (`path`), `expected` and `got`. */
export class SamplingOptionsError extends FieldError {
  override readonly name: string = "SamplingOptionsError";
  /**
   * @param field The offending option (the error's `path`).
   * @param message What was expected and what was given.
   * @param details `expected` and `got` apart.
   */
  constructor(field: string, message: string, details: FieldErrorDetails = {}) {
    super(field, `sample: ${field} ${message}`, details);
  }
}

/** Sampling parameters of one call (validated and frozen by {@linkcode samplingParams}). */
export interface SamplingParams {
  /** Logit divisor; 0 means greedy (argmax, ties → lowest index). */
  readonly temperature: number;
  /** Keep the k largest logits (ties at the k-th value kept); 0 = off. */
  readonly topK: number;
  /** Keep the smallest top set with mass ≥ topP; 1 = off. */
  readonly topP: number;
  /** RNG seed (u32). */
  readonly seed: number;
  /** RNG step counter (u32), e.g. the decoding position. */
  readonly step: number;
}

function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/**
 * Validates sampling parameters and fills defaults (temperature 1, topK 0, topP 1, seed 0,
 * step 0).
 *
 * @param p Parameters.
 * @returns Frozen, complete parameters.
 * @throws {SamplingOptionsError} naming the invalid field.
 * @example
 * ```ts
 * import { samplingParams } from "./sampling.ts";
 * const p = samplingParams({ temperature: 0.8, topK: 50, topP: 0.95, seed: 7 });
 * console.log(p.step); // 0
 * ```
 */
export function samplingParams(p: Partial<SamplingParams> = {}): SamplingParams {
  const temperature = p.temperature ?? 1;
  const topK = p.topK ?? 0;
  const topP = p.topP ?? 1;
  const seed = p.seed ?? 0;
  const step = p.step ?? 0;
  const fail = (field: string, expected: string, got: number) =>
    new SamplingOptionsError(field, `must be ${expected}, got ${got}`, { expected, got });
  if (!(temperature === 0 || (temperature > 0 && Math.fround(1 / temperature) < Infinity))) {
    throw fail(
      "temperature",
      "0 (greedy) or a positive number with a finite float32 inverse",
      temperature,
    );
  }
  if (!isU32(topK)) throw fail("topK", "a u32 (0 = off)", topK);
  if (!(topP > 0 && topP <= 1)) throw fail("topP", "in (0, 1] (1 = off)", topP);
  if (!isU32(seed)) throw fail("seed", "a u32", seed);
  if (!isU32(step)) throw fail("step", "a u32", step);
  return Object.freeze({ temperature, topK, topP, seed, step });
}

/** Options of {@linkcode sample}: the sampling parameters plus where the ids go. */
export interface SampleOptions extends Partial<SamplingParams> {
  /** Write the ids into this u32 tensor (one binding) at `outOffset`, e.g. a `[steps, B]` buffer. */
  readonly out?: Tensor;
  /** Element offset of row 0's id in `out` (default 0). */
  readonly outOffset?: number;
  /**
   * Also write each sampled id's log-probability under the temperature-1 softmax of its row,
   * `logits[id] − logsumexp(logits)` (whatever `temperature` sampled it), into this f32 tensor
   * (one binding) at `outOffset` + row.
   */
  readonly logprobsOut?: Tensor;
  /**
   * Forces a variant (`SAMPLE_VARIANTS`; one of `sampleCandidates` here); default: the
   * tuner's choice. Every variant picks the same ids as `sampleRef` for the same uniforms.
   */
  readonly variant?: string;
}

/**
 * Samples one token id per row of logits on the GPU (no readback). Greedy when
 * `temperature = 0`; otherwise temperature, then top-k (0 = off), then top-p (1 = off), then
 * an inverse-CDF draw with `samplingUniform(seed, step, row)`. Exact rules: `sampling_ref.ts`.
 *
 * @param logits Logits `[B, V]` f32 (may be split into parts along B).
 * @param options Sampling parameters, output tensor and offset, optional log-prob output.
 * @returns Token ids: `options.out` when given, else a new u32 `[B]` tensor.
 * @throws {ShapeError} on wrong shapes or dtypes, or a variant not valid here.
 * @throws {SamplingOptionsError} on invalid parameters.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { sample } from "./sampling.ts";
 * const gpu = await Gpu.create();
 * const logits = Tensor.fromArray(gpu, new Float32Array([0, 5, 1, 9, 2, 2]), [2, 3]);
 * const ids = sample(logits, { temperature: 0 });
 * console.log(await ids.read()); // Uint32Array [1, 0]
 * const drawn = sample(logits, { temperature: 0.8, topK: 2, topP: 0.9, seed: 1, step: 0 });
 * console.log(await drawn.read());
 * const logp = Tensor.empty(gpu, [2], "f32");
 * sample(logits, { temperature: 0, out: ids, logprobsOut: logp });
 * console.log(await logp.read()); // log softmax at the argmax: [-0.0247, -0.0018]
 * for (const t of [logits, ids, drawn, logp]) t.dispose();
 * gpu.destroy();
 * ```
 */
export function sample(logits: Tensor, options: SampleOptions = {}): Tensor {
  const kernel = "sample";
  const p = samplingParams(options);
  expectDtype(kernel, "logits", logits, ["f32"]);
  if (logits.shape.length !== 2 || logits.shape[1] === 0) {
    throw new ShapeError(
      kernel,
      `logits must have shape [B, V] with V > 0, got ${shapeString(logits.shape)}`,
    );
  }
  const [rows, vocab] = logits.shape;
  const logprobsOut = options.logprobsOut;
  const maxVocab = logprobsOut ? MAX_VOCAB_LOGPROBS : MAX_VOCAB;
  if (vocab > maxVocab) throw new ShapeError(kernel, `V must be ≤ ${maxVocab}, got ${vocab}`);
  const gpu = logits.gpu;
  if (rows > gpu.limits.maxComputeWorkgroupsPerDimension) {
    throw new ShapeError(
      kernel,
      `at most ${gpu.limits.maxComputeWorkgroupsPerDimension} rows, got ${rows}`,
    );
  }
  const outOffset = options.outOffset ?? 0;
  const out = options.out ?? Tensor.empty(gpu, [rows], "u32");
  if (
    out.dtype !== "u32" || out.parts.length !== 1 || !Number.isInteger(outOffset) ||
    outOffset < 0 ||
    outOffset + rows > out.numel
  ) {
    throw new ShapeError(
      kernel,
      `out must be one u32 binding with ≥ outOffset + ${rows} elements, got ${out.dtype} ` +
        `${shapeString(out.shape)} at offset ${outOffset}`,
    );
  }
  if (
    logprobsOut &&
    (logprobsOut.dtype !== "f32" || logprobsOut.parts.length !== 1 ||
      outOffset + rows > logprobsOut.numel)
  ) {
    throw new ShapeError(
      kernel,
      `logprobsOut must be one f32 binding with ≥ outOffset + ${rows} elements, got ` +
        `${logprobsOut.dtype} ${shapeString(logprobsOut.shape)} at offset ${outOffset}`,
    );
  }
  const mode = p.temperature === 0 ? "greedy" : `k${p.topK > 0 ? 1 : 0}p${p.topP < 1 ? 1 : 0}`;
  const variant = pickVariant(gpu, kernel, options.variant, {
    family: kernel,
    shapeClass: `v${vocab}:r${pow2Bucket(rows)}:${mode}:${logprobsOut ? "logprobs" : "ids"}`,
    candidates: sampleCandidates(gpu, { rows, vocab }),
    prepare: () => {
      const sl = Tensor.zeros(gpu, [rows, vocab]), so = Tensor.empty(gpu, [rows], "u32");
      const sp = logprobsOut ? Tensor.empty(gpu, [rows]) : undefined;
      return {
        launch: (id) => void sample(sl, { ...p, out: so, logprobsOut: sp, variant: id }),
        dispose: () => [sl, so, sp].forEach((t) => t?.dispose()),
      };
    },
  });
  if (rows === 0) return out;
  // ~64 elements per invocation, so rows of a few tokens do not pay for 256-wide barriers.
  let wg = 2;
  while (wg < MAX_WG && wg * 64 < vocab) wg *= 2;
  // subtle: `reg` without logprobsOut keeps the key (and source) of the plain kernel.
  const constants: SampleConstants = {
    wg,
    unroll: UNROLL,
    ...(logprobsOut ? { logprobs: 1 } : {}),
    ...(variant === "sg" ? { sg: 1 } : {}),
  };
  const pipeline = gpu.pipelines.get(kernel, constants, sampleSource);
  const invTemp = p.temperature === 0 ? 0 : 1 / p.temperature;
  for (const part of logits.parts) {
    gpu.dispatch({
      pipeline,
      shapes: `logits${shapeString(logits.shape)}`,
      uniforms: new Uniforms().u32(vocab).u32(part.rowStart).u32(outOffset).u32(p.topK)
        .f32(invTemp).f32(p.topP).u32(p.seed).u32(p.step).u32(p.temperature === 0 ? 1 : 0).build(),
      buffers: [
        { buffer: part.buffer, offset: 0, size: part.bytes },
        out.binding(),
        ...(logprobsOut ? [logprobsOut.binding()] : []),
      ],
      workgroups: [part.rows],
    });
  }
  return out;
}
