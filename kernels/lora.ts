/**
 * Fused LoRA linear: `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` with `A` `[r, in]`, `B` `[out, r]`,
 * `s = alpha / r`, without ever forming the dense `ΔW = s·B·A`.
 *
 * Built from the matmul kernels: `xa = x·Aᵀ` (kept for the backward pass: `dB = s·dYᵀ·xa`),
 * `y = x·Wᵀ (+ residual)`, then `y += s·xa·Bᵀ` through the matmul's accumulate epilogue. The
 * low-rank path costs `2·r/in + r/out` of the base product; a single fused kernel would only save
 * one read-modify-write of `y`. With a `gate` (GeGLU fused into the up projection) that last,
 * final write is `y = gelu_tanh(gate)·(y + s·xa·Bᵀ)`, i.e. `geglu(gate, loraLinear(x, …).y)`.
 *
 * @module
 */

import { expectDtype, expectShape } from "./_launch.ts";
import { ShapeError } from "./errors.ts";
import { matmul } from "./matmul.ts";
import type { Tensor } from "./tensor.ts";

/** Options of {@linkcode loraLinear}. */
export interface LoraLinearOptions {
  /** `s = alpha / r`, the LoRA scale (default 1). */
  readonly scale?: number;
  /** Write `y` into this f32 tensor `[..., out]` instead of a new one. */
  readonly out?: Tensor;
  /** `y = residual + x·Wᵀ + s·xa·Bᵀ` (f32, shaped like `y`, distinct from `out`). */
  readonly residual?: Tensor;
  /** Write `xa` into this f32 tensor `[..., r]` instead of a new one. */
  readonly xaOut?: Tensor;
  /**
   * GeGLU fused into the final write: `y = gelu_tanh(gate)·(x·Wᵀ + s·xa·Bᵀ)` (f32, shaped like
   * `y`, distinct from `out` and `xaOut`; not with `residual`). See `matmul`'s `gate`.
   */
  readonly gate?: Tensor;
}

/** Result of {@linkcode loraLinear}; the caller owns (and disposes) both tensors. */
export interface LoraLinearResult {
  /** `x·Wᵀ + s·xa·Bᵀ` (+ residual), f32 `[..., out]`. */
  readonly y: Tensor;
  /** `x·Aᵀ`, f32 `[..., r]`, for the backward pass. */
  readonly xa: Tensor;
}

/**
 * `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ`: a linear layer with a LoRA adapter, never forming `B·A`.
 *
 * @param x Activations, f32 `[..., in]`.
 * @param weights The frozen base weight `w` (`[out, in]`, f32 or bf16, may be split) and the
 *   adapter `a` (`[r, in]`, f32) and `b` (`[out, r]`, f32).
 * @param options Scale `s = alpha / r`, outputs, residual or GeGLU gate.
 * @returns `y` and `xa = x·Aᵀ`.
 * @throws {ShapeError} when the shapes or dtypes do not fit, or the gate aliases an output or
 *   comes with a residual.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { loraLinear } from "./lora.ts";
 * const gpu = await Gpu.create();
 * const x = Tensor.fromArray(gpu, [1, 2], [1, 2]); // [M=1, in=2]
 * const w = Tensor.fromArray(gpu, [1, 0, 0, 1, 1, 1], [3, 2], "bf16"); // [out=3, in=2]
 * const a = Tensor.fromArray(gpu, [1, 1], [1, 2]); // [r=1, in=2]
 * const b = Tensor.fromArray(gpu, [1, 0, 2], [3, 1]); // [out=3, r=1]
 * const { y, xa } = loraLinear(x, { w, a, b }, { scale: 0.5 });
 * console.log(await y.read(), await xa.read()); // [2.5, 2, 6], [3]
 * // GeGLU fused: gelu_tanh(gate)·y
 * const gate = Tensor.fromArray(gpu, [30, 0, -30], [1, 3]);
 * console.log(await loraLinear(x, { w, a, b }, { scale: 0.5, gate }).y.read()); // [75, 0, 0]
 * gpu.destroy();
 * ```
 */
export function loraLinear(
  x: Tensor,
  weights: { readonly w: Tensor; readonly a: Tensor; readonly b: Tensor },
  options: LoraLinearOptions = {},
): LoraLinearResult {
  const kernel = "loraLinear";
  const { w, a, b } = weights;
  expectDtype(kernel, "x", x, ["f32"]);
  expectDtype(kernel, "w", w, ["f32", "bf16"]);
  expectDtype(kernel, "a", a, ["f32"]);
  expectDtype(kernel, "b", b, ["f32"]);
  if (w.shape.length !== 2 || a.shape.length !== 2) {
    throw new ShapeError(
      kernel,
      `w must be [out, in] and a [r, in], got w${JSON.stringify(w.shape)} ` +
        `a${JSON.stringify(a.shape)}`,
    );
  }
  const [outDim, inDim] = w.shape;
  const r = a.shape[0];
  expectShape(kernel, "a", a, [r, inDim]);
  expectShape(kernel, "b", b, [outDim, r]);
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== inDim) {
    throw new ShapeError(kernel, `x must be [..., ${inDim}], got ${JSON.stringify(x.shape)}`);
  }
  const { gate } = options;
  if (gate) {
    // Checked before the first launch (matmul checks the rest when the gate is applied).
    if (options.residual) throw new ShapeError(kernel, "gate and residual are exclusive");
    const outputs = [options.out, options.xaOut].map((t) => t?.parts[0].buffer);
    if (outputs.includes(gate.parts[0].buffer)) {
      throw new ShapeError(kernel, "gate must not alias out or xaOut");
    }
    expectDtype(kernel, "gate", gate, ["f32"]);
    expectShape(kernel, "gate", gate, [...x.shape.slice(0, -1), outDim]);
  }
  const xa = matmul(x, a, { out: options.xaOut });
  const y = matmul(x, w, { out: options.out, residual: options.residual });
  matmul(xa, b, { out: y, accumulate: true, alpha: options.scale ?? 1, gate });
  return { y, xa };
}
