/**
 * Compute pipelines cached by kernel name and compile-time constants.
 *
 * WGSL compilation is the most expensive WebGPU call; every kernel launcher asks this cache for
 * its pipeline with the constants it specialises on (tile sizes, head_dim, …) as the key.
 * Creation errors are collected, not thrown: the runtime awaits them at its next flush
 * ({@linkcode PipelineCache.takeFailures}), drops the failed pipeline and raises one error naming
 * it (see `Gpu.sync`).
 *
 * @module
 */

/** The compile-time constants a WGSL source builder is specialised on. */
export type PipelineConstants = Readonly<Record<string, number | string | boolean>>;

/** A pipeline with the kernel name and constants it was built for. */
export interface CachedPipeline {
  /** Kernel name plus its constants, e.g. `matmul{"tm":4}` (see {@linkcode pipelineLabel}). */
  readonly label: string;
  /** Kernel name, as the launcher passed it. */
  readonly name: string;
  /** The constants the source was built from. */
  readonly constants: PipelineConstants;
  /** The pipeline (layout `auto`). */
  readonly pipeline: GPUComputePipeline;
  /** Its bind group 0 layout. */
  readonly layout: GPUBindGroupLayout;
}

/** A pipeline that WebGPU rejected, with the compiler's message. */
export interface PipelineFailure {
  /** The rejected pipeline (already dropped from the cache). */
  readonly pipeline: CachedPipeline;
  /** The compiler's messages (`line:column: text`), or the WebGPU error message. */
  readonly message: string;
}

interface PendingPipeline {
  readonly cached: CachedPipeline;
  readonly module: GPUShaderModule;
  readonly error: Promise<GPUError | null>;
}

/**
 * The cache key and label of a pipeline: the kernel name and its constants as JSON with sorted
 * keys (so the order in which a launcher lists them does not matter).
 *
 * @param name Kernel name.
 * @param constants The constants.
 * @returns e.g. `add{"inPlace":true}`.
 * @example
 * ```ts
 * import { pipelineLabel } from "./pipeline_cache.ts";
 * console.log(pipelineLabel("add", { inPlace: true })); // add{"inPlace":true}
 * ```
 */
export function pipelineLabel(name: string, constants: PipelineConstants): string {
  const sorted = Object.fromEntries(
    Object.entries(constants).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  return `${name}${JSON.stringify(sorted)}`;
}

/**
 * The message of a rejected pipeline: the compiler's errors with their line and column (from
 * `getCompilationInfo()` where the implementation gives them), else the WebGPU error message
 * (e.g. a limit exceeded when creating the pipeline).
 *
 * @param module The pipeline's shader module.
 * @param error The validation error its creation raised.
 * @returns One line per compiler error, or the error message.
 * @example
 * ```ts
 * import { pipelineErrorMessage } from "./pipeline_cache.ts";
 * const adapter = await navigator.gpu.requestAdapter();
 * const device = await adapter!.requestDevice();
 * device.pushErrorScope("validation");
 * const module = device.createShaderModule({ code: "fn f() { let x: f32 = 1u; }" });
 * const error = await device.popErrorScope();
 * console.log(await pipelineErrorMessage(module, error!)); // line 1:14: … `f32` … `u32` …
 * device.destroy();
 * ```
 */
export async function pipelineErrorMessage(
  module: GPUShaderModule,
  error: GPUError,
): Promise<string> {
  let messages: readonly GPUCompilationMessage[] = [];
  try {
    messages = (await module.getCompilationInfo()).messages;
  } catch {
    // Not implemented everywhere: the error message alone then.
  }
  const errors = messages.filter((m) => m.type === "error");
  if (errors.length === 0) return error.message.trim();
  return errors.map((m) => `line ${m.lineNum}:${m.linePos}: ${m.message.trim()}`).join("; ");
}

/**
 * Caches compute pipelines by {@linkcode pipelineLabel}.
 *
 * @example
 * ```ts
 * import { PipelineCache } from "./pipeline_cache.ts";
 * const adapter = await navigator.gpu.requestAdapter();
 * const device = await adapter!.requestDevice();
 * const cache = new PipelineCache(device);
 * const source = (c: { n: number }) => `@compute @workgroup_size(${c.n}) fn main() {}`;
 * cache.get("noop", { n: 4 }, source);
 * cache.get("noop", { n: 4 }, source); // cached
 * cache.get("noop", { n: 0 }, source); // invalid: workgroup size 0
 * const failures = await cache.takeFailures();
 * console.log(failures.map((f) => f.pipeline.label)); // ['noop{"n":0}']
 * console.log(cache.compiled.map((p) => p.label)); // ['noop{"n":4}']
 * device.destroy();
 * ```
 */
export class PipelineCache {
  readonly #device: GPUDevice;
  readonly #pipelines = new Map<string, CachedPipeline>();
  readonly #pending: PendingPipeline[] = [];

  /** @param device The device pipelines are created on. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /**
   * Returns the pipeline for a kernel, compiling it on first use. A creation error is not
   * thrown here: {@linkcode PipelineCache.takeFailures} reports it.
   *
   * @param name Kernel name.
   * @param constants The values the WGSL source is specialised on (part of the key).
   * @param source Builds the WGSL source from the constants (called once per key).
   * @returns The cached pipeline.
   */
  get<C extends PipelineConstants>(
    name: string,
    constants: C,
    source: (constants: C) => string,
  ): CachedPipeline {
    const label = pipelineLabel(name, constants);
    let cached = this.#pipelines.get(label);
    if (cached) return cached;
    this.#device.pushErrorScope("validation");
    const module = this.#device.createShaderModule({ code: source(constants), label });
    const pipeline = this.#device.createComputePipeline({
      layout: "auto",
      compute: { module, entryPoint: "main" },
      label,
    });
    // subtle: inside the scope, since an invalid pipeline's layout is an error of its own.
    const layout = pipeline.getBindGroupLayout(0);
    const error = this.#device.popErrorScope();
    cached = Object.freeze({
      label,
      name,
      constants: Object.freeze({ ...constants }),
      pipeline,
      layout,
    });
    this.#pending.push({ cached, module, error });
    this.#pipelines.set(label, cached);
    return cached;
  }

  /** Number of cached pipelines. */
  get size(): number {
    return this.#pipelines.size;
  }

  /** The cached pipelines in compile order (names, constants and labels, for diagnostics). */
  get compiled(): readonly CachedPipeline[] {
    return [...this.#pipelines.values()];
  }

  /**
   * Awaits the creation results not yet checked and drops the rejected pipelines from the cache
   * (a later `get` compiles them again).
   *
   * @returns The rejected pipelines with the compiler's messages, in creation order.
   */
  async takeFailures(): Promise<PipelineFailure[]> {
    const failures: PipelineFailure[] = [];
    for (const { cached, module, error } of this.#pending.splice(0)) {
      const e = await error;
      if (!e) continue;
      if (this.#pipelines.get(cached.label) === cached) this.#pipelines.delete(cached.label);
      failures.push({ pipeline: cached, message: await pipelineErrorMessage(module, e) });
    }
    return failures;
  }
}
