/**
 * Compute pipelines cached by kernel name and compile-time constants.
 *
 * WGSL compilation is the most expensive WebGPU call; every kernel launcher asks this cache for
 * its pipeline with the constants it specialises on (tile sizes, head_dim, …) as the key.
 *
 * @module
 */

/** A pipeline with the kernel name it was built for. */
export interface CachedPipeline {
  /** Kernel name plus its constants, e.g. `matmul{"tm":4}`. */
  readonly label: string;
  /** The pipeline (layout `auto`). */
  readonly pipeline: GPUComputePipeline;
  /** Its bind group 0 layout. */
  readonly layout: GPUBindGroupLayout;
}

/** A pipeline-creation failure, recorded for the runtime to raise at its next flush. */
export interface PipelineFailure {
  /** The pipeline label (kernel and constants). */
  readonly label: string;
  /** Resolves to the validation error, or null when the pipeline is fine. */
  readonly error: Promise<GPUError | null>;
}

/** Caches compute pipelines by `name + JSON(constants)`. */
export class PipelineCache {
  readonly #device: GPUDevice;
  readonly #pipelines = new Map<string, CachedPipeline>();
  readonly #pending: PipelineFailure[] = [];

  /** @param device The device pipelines are created on. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /**
   * Returns the pipeline for a kernel, compiling it on first use.
   *
   * @param name Kernel name.
   * @param constants The values the WGSL source is specialised on (part of the key).
   * @param source Builds the WGSL source from the constants (called once per key).
   * @returns The cached pipeline.
   */
  get<C extends Record<string, number | string | boolean>>(
    name: string,
    constants: C,
    source: (constants: C) => string,
  ): CachedPipeline {
    const label = `${name}${JSON.stringify(constants)}`;
    let cached = this.#pipelines.get(label);
    if (cached) return cached;
    this.#device.pushErrorScope("validation");
    const module = this.#device.createShaderModule({ code: source(constants), label });
    const pipeline = this.#device.createComputePipeline({
      layout: "auto",
      compute: { module, entryPoint: "main" },
      label,
    });
    this.#pending.push({ label, error: this.#device.popErrorScope() });
    cached = { label, pipeline, layout: pipeline.getBindGroupLayout(0) };
    this.#pipelines.set(label, cached);
    return cached;
  }

  /** Number of compiled pipelines. */
  get size(): number {
    return this.#pipelines.size;
  }

  /** @returns The creation results not yet checked, emptying the list. */
  takePending(): PipelineFailure[] {
    return this.#pending.splice(0);
  }
}
