/**
 * GeGLU, the gate of Gemma's MLP: `out = gelu_tanh(gate) · up` with
 * `gelu_tanh(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (`gelu_pytorch_tanh`).
 *
 * subtle: WGSL `tanh` overflows to NaN for large |x| on some implementations, so the kernel uses
 * the identity `0.5·(1 + tanh(u)) = 1 / (1 + exp(−2u))` on x clamped to ±10, where the gate is
 * already 0 or 1 to f32 precision: finite everywhere and exact in the limits.
 *
 * WGSL in `_geglu_wgsl.ts`; the backward pass is `gegluBackward` in `geglu_backward.ts`.
 *
 * @module
 */

import { expectDtype, f32Output, grid1d, Uniforms } from "./_launch.ts";
import { GEGLU_WG as WG, gegluSource } from "./_geglu_wgsl.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, type Tensor } from "./tensor.ts";

/** Options of {@linkcode geglu}. */
export interface GegluOptions {
  /** Write the result here (f32 `[T, I]`, distinct from the inputs). */
  readonly out?: Tensor;
}

/**
 * `gelu_tanh(gate) · up` elementwise (Gemma's MLP between gate/up_proj and down_proj).
 *
 * @param gate `[..., I]` f32, the gate_proj output.
 * @param up Same shape f32, the up_proj output.
 * @param options Optional output tensor.
 * @returns `[..., I]` f32.
 * @throws {ShapeError} on mismatched shapes or dtypes.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { geglu } from "./geglu.ts";
 * const gpu = await Gpu.create();
 * const gate = Tensor.fromArray(gpu, new Float32Array([-1, 0, 1]));
 * const up = Tensor.fromArray(gpu, new Float32Array([2, 2, 2]));
 * console.log(await geglu(gate, up).read()); // [-0.3176, 0, 1.6824]
 * gpu.destroy();
 * ```
 */
export function geglu(gate: Tensor, up: Tensor, options: GegluOptions = {}): Tensor {
  const kernel = "geglu";
  expectDtype(kernel, "gate", gate, ["f32"]);
  expectDtype(kernel, "up", up, ["f32"]);
  const same = gate.shape.length === up.shape.length &&
    gate.shape.every((d, i) => up.shape[i] === d);
  if (!same) {
    throw new ShapeError(
      kernel,
      `gate ${shapeString(gate.shape)} and up ${shapeString(up.shape)} must have the same shape`,
    );
  }
  const out = f32Output(kernel, gate, gate.shape, options.out);
  const gpu = gate.gpu;
  const inter = gate.shape.at(-1) ?? 1;
  const vec4 = inter % 4 === 0;
  const n = vec4 ? gate.numel / 4 : gate.numel;
  gpu.dispatch({
    pipeline: gpu.pipelines.get("geglu", { vec4 }, gegluSource),
    shapes: `gate${shapeString(gate.shape)}`,
    uniforms: new Uniforms().u32(n).u32(vec4 ? inter / 4 : inter).build(),
    buffers: [gate.binding(), up.binding(), out.binding()],
    workgroups: grid1d(n, WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return out;
}
