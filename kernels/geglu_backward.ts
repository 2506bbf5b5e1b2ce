/**
 * Backward of GeGLU ({@linkcode geglu}): `dGate = dy·up·gelu'(gate)`, `dUp = dy·gelu(gate)`,
 * with the tanh-form derivative written without cancellation (finite for every finite gate; see
 * `_geglu_backward_wgsl.ts`).
 *
 * @module
 */

import { expectDtype, f32Output, grid1d, sameBuffer, Uniforms } from "./_launch.ts";
import { GEGLU_WG as WG } from "./_geglu_wgsl.ts";
import { gegluBackwardSource } from "./_geglu_backward_wgsl.ts";
import { ShapeError } from "./errors.ts";
import { shapeString, type Tensor } from "./tensor.ts";

/** What the forward ran on: the inputs of {@linkcode geglu}. */
export interface GegluBackwardInputs {
  /** `[..., I]` f32, the forward's gate input. */
  readonly gate: Tensor;
  /** Same shape f32, the forward's up input. */
  readonly up: Tensor;
}

/** Gradients of {@linkcode geglu}'s inputs. */
export interface GegluGrads {
  /** `dy · up · gelu'(gate)`, `[..., I]` f32. */
  readonly dGate: Tensor;
  /** `dy · gelu(gate)`, `[..., I]` f32. */
  readonly dUp: Tensor;
}

/** Options of {@linkcode gegluBackward}. */
export interface GegluBackwardOptions {
  /** Write dGate here (f32 `[..., I]`); pass `gate` itself together with `dUp: up` for in place. */
  readonly dGate?: Tensor;
  /** Write dUp here (f32 `[..., I]`); pass `up` itself together with `dGate: gate` for in place. */
  readonly dUp?: Tensor;
}

/**
 * Backward of {@linkcode geglu}: `dGate = dy·up·gelu'(gate)`, `dUp = dy·gelu(gate)`.
 *
 * @param dy `[..., I]` f32, gradient of the output.
 * @param inputs The forward's gate and up (dy's shape, f32).
 * @param options Optional outputs; `{ dGate: gate, dUp: up }` overwrites the inputs.
 * @returns dGate and dUp.
 * @throws {ShapeError} on mismatched shapes, dtypes or unsupported aliasing.
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * import { gegluBackward } from "./geglu_backward.ts";
 * const gpu = await Gpu.create();
 * const gate = Tensor.fromArray(gpu, new Float32Array([-1, 0, 1]));
 * const up = Tensor.fromArray(gpu, new Float32Array([2, 2, 2]));
 * const dy = Tensor.fromArray(gpu, new Float32Array([1, 1, 1]));
 * const { dGate, dUp } = gegluBackward(dy, { gate, up });
 * console.log(await dGate.read(), await dUp.read()); // [-0.1659, 1, 2.1659] [-0.1588, 0, 0.8412]
 * gpu.destroy();
 * ```
 */
export function gegluBackward(
  dy: Tensor,
  inputs: GegluBackwardInputs,
  options: GegluBackwardOptions = {},
): GegluGrads {
  const kernel = "gegluBackward";
  const { gate, up } = inputs;
  for (const [name, t] of [["gate", gate], ["up", up], ["dy", dy]] as const) {
    expectDtype(kernel, name, t, ["f32"]);
    const same = t.shape.length === gate.shape.length &&
      t.shape.every((d, i) => gate.shape[i] === d);
    if (!same) {
      throw new ShapeError(
        kernel,
        `${name} ${shapeString(t.shape)} must have gate's shape ${shapeString(gate.shape)}`,
      );
    }
  }
  const inPlace = options.dGate !== undefined && options.dUp !== undefined &&
    sameBuffer(options.dGate, gate) && sameBuffer(options.dUp, up);
  const read = [gate, up, dy];
  if (inPlace && sameBuffer(gate, up)) {
    throw new ShapeError(kernel, "in place needs gate and up in distinct buffers");
  }
  if (!inPlace) {
    for (const o of [options.dGate, options.dUp]) {
      if (o && read.some((t) => sameBuffer(t, o))) {
        throw new ShapeError(
          kernel,
          "dGate/dUp may alias inputs only as { dGate: gate, dUp: up } (both in place)",
        );
      }
    }
  }
  const dGate = f32Output(kernel, gate, gate.shape, options.dGate);
  const dUp = f32Output(kernel, gate, gate.shape, options.dUp);
  if (!inPlace && sameBuffer(dGate, dUp)) {
    throw new ShapeError(kernel, "dGate and dUp must be distinct tensors");
  }
  const gpu = gate.gpu;
  const inter = gate.shape.at(-1) ?? 1;
  const vec4 = inter % 4 === 0;
  const n = vec4 ? gate.numel / 4 : gate.numel;
  const buffers = [gate.binding(), up.binding(), dy.binding()];
  if (!inPlace) buffers.push(dGate.binding(), dUp.binding());
  gpu.dispatch({
    pipeline: gpu.pipelines.get(kernel, { vec4, inPlace }, gegluBackwardSource),
    shapes: `gate${shapeString(gate.shape)}`,
    uniforms: new Uniforms().u32(n).u32(vec4 ? inter / 4 : inter).build(),
    buffers,
    workgroups: grid1d(n, WG, gpu.limits.maxComputeWorkgroupsPerDimension),
  });
  return { dGate, dUp };
}
