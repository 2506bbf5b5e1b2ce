import assert from "node:assert/strict";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { bf16BitsToF32, f32ToBf16Bits, roundToBf16 } from "../kernels/dtype.ts";
import { KernelError } from "../kernels/errors.ts";
import { sizeClass } from "../kernels/buffer_pool.ts";
import { randomArray, testGpu } from "./_helpers.ts";

Deno.test("Gpu.create() requests the adapter's limits and reports the adapter", async () => {
  const gpu = await testGpu();
  const adapter = await navigator.gpu.requestAdapter();
  assert.ok(adapter);
  assert.equal(gpu.limits.maxStorageBufferBindingSize, adapter.limits.maxStorageBufferBindingSize);
  assert.equal(gpu.limits.maxBufferSize, adapter.limits.maxBufferSize);
  assert.equal(
    gpu.limits.maxComputeWorkgroupStorageSize,
    adapter.limits.maxComputeWorkgroupStorageSize,
  );
  assert.equal(gpu.features.f16, adapter.features.has("shader-f16"));
  assert.ok(gpu.adapter.description.length > 0);
});

Deno.test("Gpu.create() tunes nothing by default and keys its tuner by the adapter", async () => {
  const gpu = await testGpu();
  assert.equal(gpu.tuner.mode, "off");
  const a = gpu.adapter;
  assert.ok(gpu.tuner.adapterKey.startsWith(`${a.vendor}/${a.architecture}/${a.device}/`));
  assert.ok(gpu.tuner.adapterKey.includes(a.description));
});

Deno.test("Gpu.timeDispatches() measures a compute pass with GPU timestamps when offered", async () => {
  const gpu = await testGpu();
  const n = 64 * 64;
  const x = Tensor.zeros(gpu, [n]);
  const spin = (iterations: number) => () =>
    gpu.dispatch({
      pipeline: gpu.pipelines.get("runtime_test_spin", { iterations }, (c) => `
@group(0) @binding(0) var<storage, read_write> x: array<f32>; // [${n}]
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  var s = x[g.x];
  for (var i = 0u; i < ${c.iterations}u; i++) { s = s * 0.999 + 1.0; }
  x[g.x] = s;
}`),
      shapes: `x[${n}]`,
      buffers: [x.buffer],
      workgroups: [n / 64],
    });
  // Warm-up: compiles both pipelines (on llvmpipe the first dispatch JIT-compiles the shader).
  await gpu.timeDispatches(spin(20000));
  await gpu.timeDispatches(spin(1));
  const slow = await gpu.timeDispatches(spin(20000));
  const fast = await gpu.timeDispatches(spin(1));
  if (gpu.features.timestampQuery) {
    assert.ok(slow !== null && fast !== null && 0 <= fast && fast < slow, `${fast} ${slow}`);
  } else {
    assert.equal(slow, null);
  }
  // A launch that submits midway leaves the timed pass: no measurement.
  const split = await gpu.timeDispatches(() => {
    spin(1)();
    gpu.submit();
    spin(1)();
  });
  assert.equal(split, null);
  x.dispose();
});

Deno.test("f32ToBf16Bits() rounds to nearest even and keeps NaN", () => {
  assert.equal(bf16BitsToF32(f32ToBf16Bits(1)), 1);
  assert.equal(bf16BitsToF32(f32ToBf16Bits(1 + 2 ** -8)), 1); // tie → even (1.0)
  assert.equal(bf16BitsToF32(f32ToBf16Bits(1 + 3 * 2 ** -8)), 1 + 2 ** -6); // tie → even (up)
  assert.equal(bf16BitsToF32(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -12)), 1 + 2 ** -7);
  assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
  assert.equal(bf16BitsToF32(f32ToBf16Bits(-Infinity)), -Infinity);
});

Deno.test("Tensor round-trips f32, i32, u32 and bf16 data of odd lengths", async () => {
  const gpu = await testGpu();
  for (const n of [1, 3, 7, 33, 257]) {
    const f = randomArray(n, n);
    const tf = Tensor.fromArray(gpu, f, [n]);
    assert.deepEqual(await tf.read(), f);
    const tb = Tensor.fromArray(gpu, f, [n], "bf16");
    assert.deepEqual(await tb.read(), roundToBf16(f));
    const ti = Tensor.fromArray(gpu, Int32Array.from(f, (x) => Math.round(x * 1000)), [n]);
    assert.deepEqual(await ti.read(), Int32Array.from(f, (x) => Math.round(x * 1000)));
    const tu = Tensor.fromArray(gpu, Uint32Array.from(f, (x) => Math.abs(x) * 1e6), [n]);
    assert.deepEqual(await tu.read(), Uint32Array.from(f, (x) => Math.abs(x) * 1e6));
    for (const t of [tf, tb, ti, tu]) t.dispose();
  }
});

Deno.test("Tensor splits tensors larger than the storage binding limit", async () => {
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 4096 });
  const rows = 301, cols = 7; // bf16: 14 bytes a row, odd row length
  const data = randomArray(rows * cols, 5);
  const t = Tensor.fromArray(gpu, data, [rows, cols], "bf16");
  assert.ok(t.parts.length > 1);
  assert.equal(t.parts.reduce((s, p) => s + p.rows, 0), rows);
  for (const p of t.parts) {
    assert.ok(p.bytes <= 4096 && (p.rows * cols) % 2 === 0 || p === t.parts.at(-1));
  }
  assert.deepEqual(await t.read(), roundToBf16(data));
  assert.throws(() => t.buffer, /split/);
  gpu.destroy();
});

Deno.test("a WGSL error surfaces as a KernelError naming the kernel", async () => {
  const gpu = await Gpu.create();
  gpu.pipelines.get(
    "broken_kernel",
    { n: 1 },
    () => "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }",
  );
  await assert.rejects(
    () => gpu.sync(),
    (e) => e instanceof KernelError && /broken_kernel/.test(e.message),
  );
  gpu.destroy();
});

Deno.test("BufferPool reuses released buffers and the tracker counts peaks", async () => {
  const gpu = await Gpu.create();
  const before = gpu.memory();
  const t1 = Tensor.empty(gpu, [1000]);
  const buf = t1.buffer;
  t1.dispose();
  const t2 = Tensor.empty(gpu, [990]);
  assert.equal(t2.buffer, buf);
  const m = gpu.memory();
  assert.equal(m.allocatedBytes - before.allocatedBytes, sizeClass(4000));
  assert.equal(m.inUseBytes, sizeClass(3960));
  assert.ok(m.peakInUseBytes >= sizeClass(4000));
  t2.dispose();
  assert.equal(gpu.memory().inUseBytes, 0);
  gpu.destroy();
});
