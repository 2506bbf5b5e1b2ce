/**
 * GPU buffer reuse and memory accounting.
 *
 * Creating WebGPU buffers is expensive and training allocates the same activation sizes every
 * step, so released buffers go back to a free list keyed by usage and size class and are handed
 * out again. The {@linkcode AllocationTracker} counts the bytes the device really holds (live
 * and pooled) and the bytes held by live tensors, with their peaks.
 *
 * @module
 */

/** Current and peak byte counts of one {@linkcode Gpu}. */
export interface MemoryStats {
  /** Bytes of GPU buffers that exist now (in use or parked in the pool). */
  readonly allocatedBytes: number;
  /** Highest `allocatedBytes` seen. */
  readonly peakAllocatedBytes: number;
  /** Bytes of buffers handed out and not yet released. */
  readonly inUseBytes: number;
  /** Highest `inUseBytes` seen. */
  readonly peakInUseBytes: number;
  /** Number of GPU buffers that exist now. */
  readonly buffers: number;
}

/** Counts GPU bytes held; later issues quote peak memory from it. */
export class AllocationTracker {
  #allocated = 0;
  #peakAllocated = 0;
  #inUse = 0;
  #peakInUse = 0;
  #buffers = 0;

  /** @param bytes Bytes of a newly created GPU buffer. */
  created(bytes: number): void {
    this.#allocated += bytes;
    this.#buffers++;
    if (this.#allocated > this.#peakAllocated) this.#peakAllocated = this.#allocated;
  }

  /** @param bytes Bytes of a destroyed GPU buffer. */
  destroyed(bytes: number): void {
    this.#allocated -= bytes;
    this.#buffers--;
  }

  /** @param bytes Bytes of a buffer handed out. */
  acquired(bytes: number): void {
    this.#inUse += bytes;
    if (this.#inUse > this.#peakInUse) this.#peakInUse = this.#inUse;
  }

  /** @param bytes Bytes of a buffer given back. */
  released(bytes: number): void {
    this.#inUse -= bytes;
  }

  /** Starts a new peak measurement from the current values. */
  resetPeaks(): void {
    this.#peakAllocated = this.#allocated;
    this.#peakInUse = this.#inUse;
  }

  /** @returns A snapshot of the counters. */
  stats(): MemoryStats {
    return {
      allocatedBytes: this.#allocated,
      peakAllocatedBytes: this.#peakAllocated,
      inUseBytes: this.#inUse,
      peakInUseBytes: this.#peakInUse,
      buffers: this.#buffers,
    };
  }
}

/**
 * Rounds a byte size up to its pool size class: steps of 1/8 of the enclosing power of two
 * (at most 12.5 % slack), 256 bytes at least.
 *
 * @param bytes Requested size.
 * @returns The size class.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const step = 2 ** Math.max(8, Math.floor(Math.log2(bytes)) - 3);
  return Math.ceil(bytes / step) * step;
}

/** A buffer creation whose out-of-memory check is still pending. */
export interface PendingAllocation {
  /** Requested bytes. */
  readonly bytes: number;
  /** Bytes held before it. */
  readonly allocatedBytes: number;
  /** Resolves to the out-of-memory error, or null. */
  readonly error: Promise<GPUError | null>;
}

/** Free lists of GPU buffers keyed by usage flags and size class. */
export class BufferPool {
  readonly #device: GPUDevice;
  readonly #tracker: AllocationTracker;
  readonly #free = new Map<string, GPUBuffer[]>();
  readonly #pendingAllocations: PendingAllocation[] = [];
  #pooledBytes = 0;

  /**
   * @param device The device buffers are created on.
   * @param tracker Receives every creation, destruction, acquisition and release.
   */
  constructor(device: GPUDevice, tracker: AllocationTracker) {
    this.#device = device;
    this.#tracker = tracker;
  }

  /**
   * Hands out a buffer of at least `bytes` bytes with exactly `usage`.
   *
   * @param bytes Minimum size.
   * @param usage `GPUBufferUsage` flags.
   * @param label Debug label for a newly created buffer.
   * @returns A buffer (its `size` is the size class).
   */
  acquire(bytes: number, usage: number, label = ""): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.#free.get(`${usage}:${size}`);
    let buffer = list?.pop();
    if (buffer) {
      this.#pooledBytes -= size;
    } else {
      this.#device.pushErrorScope("out-of-memory");
      buffer = this.#device.createBuffer({ size, usage, label });
      this.#pendingAllocations.push({
        bytes: size,
        allocatedBytes: this.#tracker.stats().allocatedBytes,
        error: this.#device.popErrorScope(),
      });
      this.#tracker.created(size);
    }
    this.#tracker.acquired(size);
    return buffer;
  }

  /**
   * Returns a buffer for reuse. The caller must not use it again.
   *
   * @param buffer A buffer from {@linkcode BufferPool.acquire}.
   */
  release(buffer: GPUBuffer): void {
    this.#tracker.released(buffer.size);
    const key = `${buffer.usage}:${buffer.size}`;
    let list = this.#free.get(key);
    if (!list) this.#free.set(key, list = []);
    list.push(buffer);
    this.#pooledBytes += buffer.size;
  }

  /** @returns The allocations not yet checked for out-of-memory errors, emptying the list. */
  takePendingAllocations(): PendingAllocation[] {
    return this.#pendingAllocations.splice(0);
  }

  /** Bytes parked in the free lists. */
  get pooledBytes(): number {
    return this.#pooledBytes;
  }

  /** Destroys every pooled buffer (e.g. between phases that use different sizes). */
  trim(): void {
    for (const list of this.#free.values()) {
      for (const buffer of list) {
        this.#tracker.destroyed(buffer.size);
        buffer.destroy();
      }
    }
    this.#free.clear();
    this.#pooledBytes = 0;
  }
}
