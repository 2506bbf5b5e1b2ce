/**
 * The WebGPU runtime: one device with the adapter's real limits, a recorder that batches kernel
 * dispatches into one command buffer, a uniform ring, readback, buffer pool, pipeline cache and
 * allocation tracker.
 *
 * Readback policy: dispatches are only recorded; nothing waits on the GPU until a caller reads a
 * tensor (`Gpu.read`) or calls `Gpu.sync`. In Deno each wait costs ≥ 10 ms, so callers batch.
 *
 * @module
 */

import { AllocationTracker, BufferPool, type MemoryStats } from "./buffer_pool.ts";
import { GpuError, GpuOutOfMemoryError, KernelError, NoAdapterError } from "./errors.ts";
import { type CachedPipeline, PipelineCache, type PipelineFailure } from "./pipeline_cache.ts";
import {
  adapterKey,
  Tuner,
  type TuningDevice,
  type TuningMode,
  type TuningStore,
  type TuningTimer,
} from "./tuning.ts";

/** Limits webtune requests at the adapter's own maximum. */
export interface GpuLimits {
  /** Largest buffer. */
  readonly maxBufferSize: number;
  /** Largest storage binding; bigger tensors are split (see `Tensor.parts`). */
  readonly maxStorageBufferBindingSize: number;
  /** Workgroup memory per workgroup. */
  readonly maxComputeWorkgroupStorageSize: number;
  /** Storage buffers one kernel may bind. */
  readonly maxStorageBuffersPerShaderStage: number;
  /** Invocations per workgroup. */
  readonly maxComputeInvocationsPerWorkgroup: number;
  /** Workgroups per grid dimension. */
  readonly maxComputeWorkgroupsPerDimension: number;
}

/** What the adapter says about itself. */
export interface AdapterSummary {
  /** e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`. */
  readonly description: string;
  /** Vendor string or id. */
  readonly vendor: string;
  /** Architecture string (often empty). */
  readonly architecture: string;
  /** Device string or id. */
  readonly device: string;
  /** Driver, where the runtime tells it (empty otherwise; Deno does not). */
  readonly driver: string;
  /** True for software adapters such as llvmpipe. */
  readonly isFallbackAdapter: boolean;
}

/** Optional features webtune uses when offered. */
export interface GpuFeatures {
  /** WGSL `f16` (`shader-f16`). */
  readonly f16: boolean;
  /** GPU timestamps (`timestamp-query`). */
  readonly timestampQuery: boolean;
  /** WGSL subgroup operations (`subgroups`; shaders start with `enable subgroups;`). */
  readonly subgroups: boolean;
}

/** Options of {@linkcode Gpu.create}. */
export interface GpuOptions {
  /** Adapter preference. */
  readonly powerPreference?: GPUPowerPreference;
  /** Caps the storage binding size below the adapter's (tests use this to force splitting). */
  readonly maxStorageBufferBindingSize?: number;
  /**
   * Kernel autotuning (see `tuning.ts`), or a function choosing it from the adapter (e.g. off on
   * a software adapter); default `"off"`: the deterministic table, reproducible.
   */
  readonly tuning?: TuningMode | ((adapter: AdapterSummary) => TuningMode);
  /**
   * Where tuned choices are remembered, under the adapter's key (default: in memory). Mode
   * `"cached"` reads them at creation; `gpu.tuner.tune()` saves new ones.
   */
  readonly tuningStore?: TuningStore;
  /** Measures candidates (default: GPU timestamps when offered, else wall time). */
  readonly tuningTimer?: TuningTimer;
  /**
   * Per tuner family, a variant to run wherever it is a candidate, whatever the tuning mode
   * (e.g. `{ layer_fusion: "separate" }`, `{ matmul: "tile64x64t4x4" }`): A/B comparisons and
   * debugging.
   */
  readonly forceVariants?: Readonly<Record<string, string>>;
}

/** A buffer range bound to one binding slot. */
export interface BufferBinding {
  /** The buffer. */
  readonly buffer: GPUBuffer;
  /** Byte offset (a multiple of `minStorageBufferOffsetAlignment`). */
  readonly offset?: number;
  /** Byte size. */
  readonly size?: number;
}

/** One recorded kernel launch. */
export interface Dispatch {
  /** Pipeline from the cache. */
  readonly pipeline: CachedPipeline;
  /** Shapes the kernel runs on, for error messages (e.g. `x[3,7] w[5,7]`). */
  readonly shapes: string;
  /** Packed uniform parameters (≤ 256 bytes), bound at binding 0 when given. */
  readonly uniforms?: ArrayBuffer;
  /** Storage bindings, in binding order after the uniforms. */
  readonly buffers: readonly (GPUBuffer | BufferBinding)[];
  /** Workgroup counts [x, y, z]. */
  readonly workgroups: readonly [number, number?, number?];
}

const UNIFORM_SLOT = 256;
const UNIFORM_SLOTS = 1024;
const MAX_RECENT = 8;

/** The validation result of one submission and what it ran. */
interface SubmitCheck {
  /** The last kernels recorded (with shapes), for the message. */
  readonly kernels: string;
  /** Every pipeline it dispatched. */
  readonly pipelines: ReadonlySet<CachedPipeline>;
  /** Errors of the whole recording: bind groups, passes, finish and submit. */
  readonly error: Promise<GPUError | null>;
}

/**
 * A WebGPU device with webtune's runtime around it.
 *
 * @example
 * ```ts
 * import { Gpu } from "./gpu.ts";
 * const gpu = await Gpu.create();
 * console.log(gpu.adapter.description, gpu.limits.maxStorageBufferBindingSize);
 * gpu.destroy();
 * ```
 */
export class Gpu implements TuningDevice {
  /** The device. */
  readonly device: GPUDevice;
  /** The adapter's self-description. */
  readonly adapter: AdapterSummary;
  /** Limits in force (the adapter's maxima). */
  readonly limits: GpuLimits;
  /** Optional features enabled. */
  readonly features: GpuFeatures;
  /** Counts GPU bytes held. */
  readonly tracker: AllocationTracker;
  /** Reusable buffers. */
  readonly pool: BufferPool;
  /** Compiled pipelines. */
  readonly pipelines: PipelineCache;
  /** Chooses kernel variants per shape class; `tuner.tune()` times the jobs it queued. */
  readonly tuner: Tuner;

  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #uniformRing: GPUBuffer;
  #uniformData = new Uint8Array(UNIFORM_SLOT * UNIFORM_SLOTS);
  #uniformUsed = 0;
  #recent: string[] = [];
  /** Pipelines dispatched since the last submit. */
  #used = new Set<CachedPipeline>();
  #submitErrors: SubmitCheck[] = [];
  #dispatches = 0;
  #timestamps: { readonly querySet: GPUQuerySet; readonly resolved: GPUBuffer } | null = null;

  private constructor(
    device: GPUDevice,
    adapter: AdapterSummary,
    limits: GpuLimits,
    features: GpuFeatures,
    options: GpuOptions,
  ) {
    this.device = device;
    this.adapter = adapter;
    this.limits = limits;
    this.features = features;
    const tuning = options.tuning ?? "off";
    this.tuner = new Tuner(typeof tuning === "function" ? tuning(adapter) : tuning, {
      store: options.tuningStore,
      timer: options.tuningTimer,
      force: options.forceVariants,
      device: this,
      adapterKey: adapterKey({
        ...adapter,
        features: [...device.features],
        limits: { ...limits },
      }),
    });
    this.tracker = new AllocationTracker();
    this.pool = new BufferPool(device, this.tracker);
    this.pipelines = new PipelineCache(device);
    this.#uniformRing = device.createBuffer({
      size: UNIFORM_SLOT * UNIFORM_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: "uniform ring",
    });
  }

  /**
   * Acquires an adapter and a device with the adapter's own maxima for the limits webtune needs
   * and `shader-f16` / `timestamp-query` / `subgroups` when offered; with tuning `"cached"`,
   * reads the store's choices for this adapter.
   *
   * @param options Adapter preference, optional caps, tuning mode, store and timer.
   * @returns The runtime.
   * @throws {NoAdapterError} when WebGPU or an adapter is missing.
   */
  static async create(options: GpuOptions = {}): Promise<Gpu> {
    const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
    if (!gpu) {
      // Browsers hide WebGPU outside secure contexts (https:, localhost).
      const insecure = (globalThis as { isSecureContext?: boolean }).isSecureContext === false;
      throw new NoAdapterError(
        "navigator.gpu is undefined" + (insecure ? "; this page is not a secure context" : ""),
      );
    }
    const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference });
    if (!adapter) throw new NoAdapterError("requestAdapter() returned null");
    const a = adapter.limits;
    const bindingCap = options.maxStorageBufferBindingSize ?? Infinity;
    const requiredLimits: Record<string, number> = {
      maxBufferSize: a.maxBufferSize,
      maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
      maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
      maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupsPerDimension: a.maxComputeWorkgroupsPerDimension,
    };
    const requiredFeatures: GPUFeatureName[] = [];
    const f16 = adapter.features.has("shader-f16");
    const timestampQuery = adapter.features.has("timestamp-query");
    if (f16) requiredFeatures.push("shader-f16");
    if (timestampQuery) requiredFeatures.push("timestamp-query");
    const subgroups = adapter.features.has("subgroups" as GPUFeatureName);
    if (subgroups) requiredFeatures.push("subgroups" as GPUFeatureName);
    const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
    const info = adapter.info;
    const created = new Gpu(
      device,
      Object.freeze({
        description: info.description || info.device || "unknown adapter",
        vendor: info.vendor,
        architecture: info.architecture,
        device: info.device,
        driver: (info as { driver?: string }).driver ?? "",
        isFallbackAdapter: (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
      }),
      Object.freeze({
        maxBufferSize: device.limits.maxBufferSize,
        maxStorageBufferBindingSize: Math.min(
          device.limits.maxStorageBufferBindingSize,
          bindingCap,
        ),
        maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
        maxStorageBuffersPerShaderStage: device.limits.maxStorageBuffersPerShaderStage,
        maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
      }),
      Object.freeze({ f16, timestampQuery, subgroups }),
      options,
    );
    await created.tuner.load();
    return created;
  }

  /** Kernels dispatched since creation (for tests and benches). */
  get dispatchCount(): number {
    return this.#dispatches;
  }

  /** @returns Current and peak GPU bytes. */
  memory(): MemoryStats {
    return this.tracker.stats();
  }

  /**
   * The encoder of the current recording. Starting one opens a validation error scope that
   * {@linkcode Gpu.submit} closes, so every error of the recording (bind groups, passes, finish,
   * submit) lands in that submission's check; scopes opened meanwhile (pipeline creation, buffer
   * allocation) nest inside it.
   */
  #recording(): GPUCommandEncoder {
    if (!this.#encoder) {
      this.device.pushErrorScope("validation");
      this.#encoder = this.device.createCommandEncoder();
    }
    return this.#encoder;
  }

  #computePass(): GPUComputePassEncoder {
    this.#pass ??= this.#recording().beginComputePass();
    return this.#pass;
  }

  #commandEncoder(): GPUCommandEncoder {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    return this.#recording();
  }

  /**
   * Records one kernel launch. Nothing runs until the next {@linkcode Gpu.submit}.
   *
   * @param d The launch.
   */
  dispatch(d: Dispatch): void {
    const [x, y = 1, z = 1] = d.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxGrid = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxGrid || y > maxGrid || z > maxGrid) {
      throw new KernelError(
        `${d.pipeline.label} (${d.shapes})`,
        `grid [${x},${y},${z}] exceeds ${maxGrid} workgroups per dimension`,
      );
    }
    const entries: GPUBindGroupEntry[] = [];
    if (d.uniforms) {
      if (this.#uniformUsed === UNIFORM_SLOTS) this.submit();
      const slot = this.#uniformUsed++;
      this.#uniformData.set(new Uint8Array(d.uniforms), slot * UNIFORM_SLOT);
      entries.push({
        binding: 0,
        resource: { buffer: this.#uniformRing, offset: slot * UNIFORM_SLOT, size: UNIFORM_SLOT },
      });
    }
    const first = entries.length;
    d.buffers.forEach((b, i) => {
      entries.push({ binding: first + i, resource: "buffer" in b ? b : { buffer: b } });
    });
    const pass = this.#computePass(); // first: the bind group belongs to this recording's scope
    const bindGroup = this.device.createBindGroup({ layout: d.pipeline.layout, entries });
    pass.setPipeline(d.pipeline.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    this.#dispatches++;
    this.#used.add(d.pipeline);
    this.#recent.push(`${d.pipeline.label} (${d.shapes})`);
    if (this.#recent.length > MAX_RECENT) this.#recent.shift();
  }

  /**
   * Records a buffer-to-buffer copy in stream order with the dispatches.
   *
   * @param src Source buffer.
   * @param srcOffset Byte offset in the source (multiple of 4).
   * @param dst Destination buffer.
   * @param dstOffset Byte offset in the destination (multiple of 4).
   * @param bytes Bytes to copy (multiple of 4).
   */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (bytes === 0) return;
    this.#commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /**
   * Records a zero fill of a buffer range in stream order with the dispatches.
   *
   * @param buffer Destination.
   * @param offset Byte offset (multiple of 4).
   * @param bytes Byte count (multiple of 4; default: to the end).
   */
  clear(buffer: GPUBuffer, offset = 0, bytes?: number): void {
    const size = bytes ?? buffer.size - offset;
    if (size === 0) return;
    this.#commandEncoder().clearBuffer(buffer, offset, size);
  }

  /**
   * Writes host data into a buffer in stream order: work recorded before this call sees the old
   * contents, work recorded after sees the new ones.
   *
   * @param buffer Destination.
   * @param offset Byte offset (multiple of 4).
   * @param data Bytes to write (length a multiple of 4).
   */
  write(buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
    if (this.#encoder) this.submit();
    this.device.queue.writeBuffer(
      buffer,
      offset,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /** Submits everything recorded so far (does not wait). */
  submit(): void {
    if (!this.#encoder) return;
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    if (this.#uniformUsed > 0) {
      this.device.queue.writeBuffer(
        this.#uniformRing,
        0,
        this.#uniformData.buffer,
        0,
        this.#uniformUsed * UNIFORM_SLOT,
      );
    }
    this.device.queue.submit([this.#encoder.finish()]);
    this.#submitErrors.push({
      kernels: this.#recent.join("; "),
      pipelines: this.#used,
      error: this.device.popErrorScope(), // the scope #recording() opened
    });
    this.#encoder = null;
    this.#uniformUsed = 0;
    this.#recent = [];
    this.#used = new Set();
  }

  /**
   * Awaits every check of the flush (allocations, pipeline creations, submissions) and throws
   * at most one error. Submissions that dispatched a rejected pipeline failed because of it:
   * their errors are consumed with it, never raised later against other kernels.
   */
  async #raiseErrors(): Promise<void> {
    const allocations = this.pool.takePendingAllocations();
    const failures = await this.pipelines.takeFailures();
    const submits = this.#submitErrors.splice(0);
    let outOfMemory: GpuOutOfMemoryError | null = null;
    for (const a of allocations) {
      const error = await a.error;
      outOfMemory ??= error && new GpuOutOfMemoryError(a.bytes, a.allocatedBytes, error.message);
    }
    const rejected = new Set(failures.map((f) => f.pipeline));
    const submitErrors: KernelError[] = [];
    for (const s of submits) {
      const error = await s.error;
      if (error && ![...s.pipelines].some((p) => rejected.has(p))) {
        submitErrors.push(new KernelError(`in [${s.kernels}]`, error.message));
      }
    }
    if (outOfMemory) throw outOfMemory;
    if (failures.length > 0) throw pipelineError(failures, submitErrors);
    if (submitErrors.length > 0) throw submitErrors[0];
  }

  /**
   * Submits and waits until the GPU has finished; raises any validation error as a `KernelError`
   * (a kernel whose WGSL was rejected: one error naming it, with the compiler's message; the
   * device stays usable).
   */
  async sync(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    await this.#raiseErrors();
  }

  /**
   * GPU seconds the dispatches `record` makes take: they are recorded into a compute pass of
   * their own, with timestamps written at its start and end, then read back (one wait). Used by
   * the tuner; benches may use it too.
   *
   * @param record Records the dispatches (launchers).
   * @returns Seconds, or null without `timestamp-query`, or when the recording left the pass
   *   (a launch that submits, e.g. by writing a buffer) or the timestamps run backwards.
   * @throws What `record` or the readback throws (a rejected pipeline: `KernelError`).
   * @example
   * ```ts
   * import { Gpu } from "./gpu.ts";
   * import { Tensor } from "./tensor.ts";
   * import { matmul } from "./matmul.ts";
   * const gpu = await Gpu.create();
   * const x = Tensor.fromArray(gpu, new Float32Array(64 * 64), [64, 64]);
   * const seconds = await gpu.timeDispatches(() => matmul(x, x).dispose());
   * console.log(gpu.features.timestampQuery ? seconds! >= 0 : seconds === null); // true
   * gpu.destroy();
   * ```
   */
  async timeDispatches(record: () => void): Promise<number | null> {
    if (!this.features.timestampQuery) return null;
    this.submit(); // an empty uniform ring: the launches cannot overflow it mid-pass
    this.#timestamps ??= {
      querySet: this.device.createQuerySet({ type: "timestamp", count: 2, label: "timings" }),
      resolved: this.device.createBuffer({
        size: 16,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        label: "timings",
      }),
    };
    const { querySet, resolved } = this.#timestamps;
    const pass = this.#recording().beginComputePass({
      timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    });
    this.#pass = pass;
    let whole = false;
    try {
      record();
      whole = this.#pass === pass; // a submit midway ended it early
    } finally {
      if (this.#pass === pass) this.#commandEncoder(); // ends the pass
    }
    if (!whole) return null;
    this.#recording().resolveQuerySet(querySet, 0, 2, resolved, 0);
    const [bytes] = await this.readMany([{ buffer: resolved, offset: 0, size: 16 }]);
    const [begin, end] = new BigUint64Array(bytes);
    return end >= begin ? Number(end - begin) / 1e9 : null;
  }

  /**
   * Reads bytes back from a GPU buffer (submits pending work first). One GPU wait.
   *
   * @param buffer Source (needs `COPY_SRC`).
   * @param offset Byte offset (multiple of 4).
   * @param bytes Byte count (multiple of 4).
   * @returns A copy of the bytes.
   */
  async read(buffer: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    return (await this.readMany([{ buffer, offset, size: bytes }]))[0];
  }

  /**
   * Reads several buffer ranges back with a single GPU wait.
   *
   * @param ranges Buffer ranges (offsets and sizes multiples of 4).
   * @returns One copy per range.
   */
  async readMany(ranges: readonly BufferBinding[]): Promise<ArrayBuffer[]> {
    const total = ranges.reduce((s, r) => s + (r.size ?? r.buffer.size - (r.offset ?? 0)), 0);
    const staging = this.pool.acquire(
      Math.max(total, 4),
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      "readback",
    );
    let at = 0;
    for (const r of ranges) {
      const size = r.size ?? r.buffer.size - (r.offset ?? 0);
      this.copy(r.buffer, r.offset ?? 0, staging, at, size);
      at += size;
    }
    this.submit();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, Math.max(total, 4));
    } catch (e) {
      await this.#raiseErrors();
      throw new GpuError(`readback failed: ${(e as Error).message}`);
    }
    const mapped = staging.getMappedRange(0, Math.max(total, 4));
    const out: ArrayBuffer[] = [];
    at = 0;
    for (const r of ranges) {
      const size = r.size ?? r.buffer.size - (r.offset ?? 0);
      out.push(mapped.slice(at, at + size));
      at += size;
    }
    staging.unmap();
    this.pool.release(staging);
    await this.#raiseErrors();
    return out;
  }

  /** Releases the device. The object must not be used afterwards. */
  destroy(): void {
    this.submit();
    this.pool.trim();
    this.#uniformRing.destroy();
    this.#timestamps?.querySet.destroy();
    this.#timestamps?.resolved.destroy();
    this.device.destroy();
  }
}

/**
 * One `KernelError` for the pipelines rejected in a flush, naming the first; the other rejected
 * pipelines and the errors of submissions that ran none of them follow in the message.
 */
function pipelineError(
  failures: readonly PipelineFailure[],
  unrelated: readonly KernelError[],
): KernelError {
  const [first, ...others] = failures;
  const also = [
    ...(others.length > 0
      ? [`also rejected: ${others.map((f) => f.pipeline.label).join(", ")}`]
      : []),
    ...unrelated.map((e) => `also in this flush: ${e.message}`),
  ];
  return new KernelError(
    first.pipeline.label,
    first.message + (also.length > 0 ? ` (${also.join("; ")})` : ""),
  );
}
