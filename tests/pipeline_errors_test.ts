/**
 * What a rejected kernel does to the runtime: one `KernelError` at the next flush naming that
 * kernel with the compiler's message, the pipeline dropped from the cache, nothing left to be
 * raised later against other kernels, and a device that runs the next valid kernel. Also the
 * pipeline labels and `NoAdapterError`'s advice for Deno and for browsers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { scale } from "../kernels/elementwise.ts";
import { KernelError, NoAdapterError } from "../kernels/errors.ts";
import { Gpu } from "../kernels/gpu.ts";
import { type CachedPipeline, PipelineCache, pipelineLabel } from "../kernels/pipeline_cache.ts";
import { Tensor } from "../kernels/tensor.ts";
import { kernelVariants } from "../kernels/kernel_variants.ts";

/** Binds like a one-buffer kernel; line 4 assigns a u32 to an f32. */
const BROKEN = `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(1)
fn main() {
  let y: f32 = 1u;
  x[0] = y;
}`;

function dispatchBroken(gpu: Gpu, x: Tensor, n = 1): CachedPipeline {
  const pipeline = gpu.pipelines.get("broken_kernel", { n }, () => BROKEN);
  gpu.dispatch({
    pipeline,
    shapes: `x${JSON.stringify(x.shape)}`,
    buffers: [x.binding()],
    workgroups: [1],
  });
  return pipeline;
}

/** A runtime whose device records uncaptured errors (every error should reach a scope). */
async function watchedGpu(): Promise<{ gpu: Gpu; uncaptured: string[] }> {
  const gpu = await Gpu.create();
  const uncaptured: string[] = [];
  gpu.device.addEventListener("uncapturederror", (e) => {
    uncaptured.push((e as GPUUncapturedErrorEvent).error.message);
  });
  return { gpu, uncaptured };
}

/** A valid kernel with a storage binding at offset 4, which WebGPU rejects (alignment 256). */
function dispatchMisaligned(gpu: Gpu, x: Tensor): void {
  const v = kernelVariants().find((v) => v.name === "scale" && v.constants.inPlace)!;
  const uniforms = new DataView(new ArrayBuffer(256));
  uniforms.setUint32(0, 1, true); // n
  uniforms.setFloat32(4, 2, true); // factor
  gpu.dispatch({
    pipeline: gpu.pipelines.get(v.name, v.constants, () => v.code),
    shapes: "misaligned",
    uniforms: uniforms.buffer,
    buffers: [{ buffer: x.buffer, offset: 4, size: 4 }],
    workgroups: [1],
  });
}

function isOnlyBrokenKernel(e: unknown, labels: readonly string[] = ['broken_kernel{"n":1}']) {
  assert.ok(e instanceof KernelError, `not a KernelError: ${e}`);
  assert.ok(e.message.startsWith(`WebGPU rejected kernel ${labels[0]}: `), e.message);
  for (const l of labels) assert.ok(e.message.includes(l), e.message);
  assert.match(e.message, /line 4:\d+: /); // the compiler's position of the bad line
  assert.doesNotMatch(e.message, /scale|in \[/); // the valid kernels of the flush are not blamed
  return true;
}

Deno.test("Gpu.sync() raises one KernelError naming a rejected kernel, then runs the next kernel", async () => {
  const { gpu, uncaptured } = await watchedGpu();
  const x = Tensor.fromArray(gpu, new Float32Array([1, 2, 3]), [3]);
  const before = scale(x, 2); // valid kernels before and after it, in the same submission
  const broken = dispatchBroken(gpu, x);
  const after = scale(x, 3);
  gpu.submit();
  const other = scale(x, 5); // and in a later submission of the same flush
  await assert.rejects(() => gpu.sync(), (e) => isOnlyBrokenKernel(e));
  assert.ok(!gpu.pipelines.compiled.includes(broken), "the rejected pipeline stays cached");
  assert.deepEqual(gpu.pipelines.compiled.map((p) => p.name), ["scale"]);
  // Nothing of the failed flush is raised later: the next, valid kernel syncs and reads.
  const y = scale(x, 4);
  await gpu.sync();
  assert.deepEqual(await y.read(), new Float32Array([4, 8, 12]));
  assert.deepEqual(await other.read(), new Float32Array([5, 10, 15]));
  // Asked for again, the kernel is compiled anew (and rejected anew), here raised by a readback.
  const again = dispatchBroken(gpu, x);
  assert.notEqual(again, broken);
  await assert.rejects(() => scale(x, 6).read(), (e) => isOnlyBrokenKernel(e));
  assert.deepEqual(await scale(x, 7).read(), new Float32Array([7, 14, 21]));
  for (const t of [x, before, after, other, y]) t.dispose();
  await gpu.sync();
  assert.deepEqual(uncaptured, []);
  gpu.destroy();
});

Deno.test("Gpu.sync() names every kernel rejected in one flush in its one error", async () => {
  const { gpu, uncaptured } = await watchedGpu();
  const x = Tensor.fromArray(gpu, new Float32Array([1]), [1]);
  dispatchBroken(gpu, x, 1);
  dispatchBroken(gpu, x, 2);
  await assert.rejects(
    () => gpu.sync(),
    (e) => isOnlyBrokenKernel(e, ['broken_kernel{"n":1}', 'broken_kernel{"n":2}']),
  );
  await gpu.sync(); // nothing left over
  assert.deepEqual(await scale(x, 2).read(), new Float32Array([2]));
  assert.deepEqual(uncaptured, []);
  gpu.destroy();
});

Deno.test("Gpu.sync() raises a rejected dispatch as a KernelError naming its submission's kernels", async () => {
  const { gpu, uncaptured } = await watchedGpu();
  const x = Tensor.fromArray(gpu, new Float32Array(128), [128]);
  dispatchMisaligned(gpu, x);
  await assert.rejects(() => gpu.sync(), (e) => {
    assert.ok(e instanceof KernelError);
    assert.match(
      e.message,
      /^WebGPU rejected kernel in \[scale\{"inPlace":true\} \(misaligned\)\]: /,
    );
    return true;
  });
  // With a rejected pipeline in another submission of the flush, the dispatch's error is not
  // its consequence: the one error names the pipeline first and this error after it.
  dispatchMisaligned(gpu, x);
  gpu.submit();
  dispatchBroken(gpu, x);
  await assert.rejects(() => gpu.sync(), (e) => {
    assert.ok(e instanceof KernelError);
    assert.ok(e.message.startsWith('WebGPU rejected kernel broken_kernel{"n":1}: line 4:'));
    assert.match(e.message, /\(also in this flush: WebGPU rejected kernel in \[scale/);
    return true;
  });
  await gpu.sync();
  assert.deepEqual(uncaptured, []);
  gpu.destroy();
});

Deno.test("PipelineCache.takeFailures() reports rejected pipelines once and drops them", async () => {
  const gpu = await Gpu.create();
  const cache = new PipelineCache(gpu.device);
  const ok = cache.get("ok", { wg: 2 }, (c) => `@compute @workgroup_size(${c.wg}) fn main() {}`);
  cache.get("broken_kernel", { n: 1 }, () => BROKEN);
  const [failure, ...rest] = await cache.takeFailures();
  assert.equal(rest.length, 0);
  assert.equal(failure.pipeline.label, 'broken_kernel{"n":1}');
  assert.match(failure.message, /^line 4:\d+: /);
  assert.deepEqual(cache.compiled, [ok]);
  assert.equal(cache.size, 1);
  assert.deepEqual(await cache.takeFailures(), []);
  gpu.destroy();
});

Deno.test("pipelineLabel() sorts the constants, so key order does not matter", () => {
  assert.equal(pipelineLabel("k", { b: 1, a: "x" }), 'k{"a":"x","b":1}');
  assert.equal(pipelineLabel("k", { a: "x", b: 1 }), pipelineLabel("k", { b: 1, a: "x" }));
  assert.equal(pipelineLabel("k", {}), "k{}");
});

Deno.test("NoAdapterError tells a browser user what to do and a Deno user what to install", () => {
  const browser = new NoAdapterError("navigator.gpu is undefined", { runtime: "browser" }).message;
  assert.match(browser, /^No WebGPU adapter found \(navigator\.gpu is undefined\)\. /);
  for (const advice of [/Chrome/, /Edge/, /Safari/, /Firefox/, /chrome:\/\/flags/, /https/]) {
    assert.match(browser, advice);
  }
  assert.match(browser, /--enable-unsafe-webgpu/);
  assert.match(browser, /localhost/);
  assert.doesNotMatch(browser, /apt-get|mesa|XDG_RUNTIME_DIR/i);
  const deno = new NoAdapterError("requestAdapter() returned null", { runtime: "deno" }).message;
  assert.match(deno, /apt-get install -y mesa-vulkan-drivers/);
  assert.doesNotMatch(deno, /Chrome|chrome:\/\/flags/);
  // Here (Deno) the default is Deno's advice.
  assert.equal(new NoAdapterError("requestAdapter() returned null").message, deno);
});
