import assert from "node:assert/strict";
import { Tensor } from "../kernels/tensor.ts";
import { SafetensorsError } from "../model/safetensors.ts";
import { encodeSafetensors } from "../model/safetensors_writer.ts";
import { restoreParams } from "../rl/checkpoint.ts";
import { decodeRolloutWeights, encodeRolloutWeights } from "../rl/rollout_weights.ts";
import { testGpu } from "./_helpers.ts";

Deno.test("encodeRolloutWeights() → decodeRolloutWeights() → restoreParams() copies GPU parameters exactly", async () => {
  const gpu = await testGpu();
  const values = [
    Float32Array.from({ length: 3 * 5 }, (_, i) => Math.sin(i) * 1e-3),
    Float32Array.from({ length: 7 }, (_, i) => -i / 3),
  ];
  const learner = new Map([
    ["b.lora_A.weight", Tensor.fromArray(gpu, values[0], [3, 5])],
    ["a.lora_B.weight", Tensor.fromArray(gpu, values[1], [7, 1])],
  ]);
  const bytes = await encodeRolloutWeights(learner, 7);
  const host = await decodeRolloutWeights("weights/v7", bytes);
  assert.deepEqual([...host.keys()], ["b.lora_A.weight", "a.lora_B.weight"]);
  assert.deepEqual(host.get("b.lora_A.weight")!.shape, [3, 5]);
  const worker = new Map(
    [...learner].map(([name, t]) => [name, Tensor.zeros(gpu, t.shape, "f32")]),
  );
  restoreParams(worker, host);
  assert.deepEqual(await worker.get("b.lora_A.weight")!.read(), values[0]);
  assert.deepEqual(await worker.get("a.lora_B.weight")!.read(), values[1]);
  for (const t of [...learner.values(), ...worker.values()]) t.dispose();
});

Deno.test("decodeRolloutWeights() refuses a non-finite value, naming the object and tensor", async () => {
  const bytes = encodeSafetensors([
    { name: "w", dtype: "F32", shape: [3], data: new Float32Array([1, NaN, 2]) },
  ]);
  await assert.rejects(decodeRolloutWeights("weights/v2", bytes), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError && e.code === "non_finite", String(e));
    assert.match(e.message, /^weights\/v2: tensor "w": element 1 is NaN/);
    return true;
  });
});
