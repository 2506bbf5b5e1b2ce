/**
 * `deno run -A cli/adapter_info.ts`: prints one line naming the WebGPU adapter this process gets
 * (the one `DENO_WEBGPU_BACKEND` selects) and what the kernels branch on: `shader-f16`,
 * `subgroups`, `timestamp-query` and the storage buffers per shader stage. GL llvmpipe and
 * lavapipe describe themselves alike ("llvmpipe (LLVM 15.0.6, 256 bits)"); these tell them
 * apart. `.ci/run` and `cli/test_lavapipe.ts` print it before each test run. Exits 1 when there
 * is no adapter.
 *
 * @module
 */

const backend = Deno.env.get("DENO_WEBGPU_BACKEND") ?? "default";
const adapter = await navigator.gpu?.requestAdapter();
if (!adapter) {
  console.error(`No WebGPU adapter (DENO_WEBGPU_BACKEND=${backend}).`);
  Deno.exit(1);
}
const features = ["shader-f16", "subgroups", "timestamp-query"] as const;
const offered = features.map((f) => adapter.features.has(f) ? f : `no ${f}`);
console.log(
  `WebGPU adapter: ${adapter.info.description || adapter.info.vendor || "unnamed"} ` +
    `(DENO_WEBGPU_BACKEND=${backend}${adapter.info.isFallbackAdapter ? ", fallback" : ""}): ` +
    `${offered.join(", ")}, ` +
    `${adapter.limits.maxStorageBuffersPerShaderStage} storage buffers per stage`,
);
