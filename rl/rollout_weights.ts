/**
 * The `weights/v<N>` objects of a rollout run: the learner's trainable parameters of policy
 * version N as one safetensors file (F32, in parameter order), read back from the GPU in one
 * wait; a worker decodes them (non-finite values refused) and writes them into its own
 * parameters with `restoreParams`.
 *
 * @module
 */

import { readTensorsF32, type Tensor } from "../kernels/tensor.ts";
import { bytesReader } from "../model/byte_readers.ts";
import { openSafetensorsFrom } from "../model/safetensors.ts";
import { decodeFloat32 } from "../model/safetensors_dtype.ts";
import { encodeSafetensors } from "../model/safetensors_writer.ts";
import type { HostTensor } from "./checkpoint.ts";

/**
 * Encodes trainable parameters as a `weights/v<N>` object.
 *
 * @param params The parameters (f32), e.g. `trainable.params`.
 * @param version The policy version (in the file's metadata).
 * @returns Safetensors bytes.
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { Tensor } from "../kernels/tensor.ts";
 * import { decodeRolloutWeights, encodeRolloutWeights } from "./rollout_weights.ts";
 * const gpu = await Gpu.create();
 * const w = Tensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const bytes = await encodeRolloutWeights(new Map([["w", w]]), 3);
 * console.log((await decodeRolloutWeights("weights/v3", bytes)).get("w")); // { shape: [2, 2], data: Float32Array [1, 2, 3, 4] }
 * gpu.destroy();
 * ```
 */
export async function encodeRolloutWeights(
  params: ReadonlyMap<string, Tensor>,
  version: number,
): Promise<Uint8Array> {
  const data = await readTensorsF32([...params.values()]);
  return encodeSafetensors(
    [...params].map(([name, t], i) => ({ name, dtype: "F32", shape: t.shape, data: data[i] })),
    { format: "pt", version: String(version) },
  );
}

/**
 * Decodes a `weights/v<N>` object into host tensors (for `restoreParams`).
 *
 * @param name The object's name (for errors).
 * @param bytes Its bytes.
 * @returns Name → shape and values, in file order.
 * @throws {SafetensorsError} for a damaged file or non-finite values (naming the tensor).
 * @example
 * ```ts
 * import { encodeSafetensors } from "../model/safetensors_writer.ts";
 * import { decodeRolloutWeights } from "./rollout_weights.ts";
 * const bytes = encodeSafetensors([{ name: "w", dtype: "F32", shape: [2], data: [1, 2] }]);
 * console.log((await decodeRolloutWeights("weights/v0", bytes)).get("w")!.data); // Float32Array [1, 2]
 * ```
 */
export async function decodeRolloutWeights(
  name: string,
  bytes: Uint8Array,
): Promise<Map<string, HostTensor>> {
  const file = await openSafetensorsFrom(name, bytesReader(bytes));
  try {
    const out = new Map<string, HostTensor>();
    for (const [tensor, info] of file.tensors) {
      const raw = await file.read(tensor);
      const data = decodeFloat32(info.dtype, raw, { finite: { file: name, tensor } });
      out.set(tensor, Object.freeze({ shape: info.shape, data }));
    }
    return out;
  } finally {
    file.close();
  }
}
