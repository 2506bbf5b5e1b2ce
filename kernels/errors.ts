/**
 * Typed errors of the WebGPU runtime and its kernels.
 *
 * @module
 */

/** Base class of every error raised by the GPU runtime. */
export class GpuError extends Error {
  /** @param message What went wrong and what was expected. */
  constructor(message: string) {
    super(message);
    this.name = "GpuError";
  }
}

/** Options of {@linkcode NoAdapterError}. */
export interface NoAdapterErrorOptions {
  /**
   * Whose advice the message gives: `browser` (which browsers have WebGPU and how to enable it)
   * or `deno` (which driver to install). Default: `deno` where the `Deno` global exists,
   * `browser` elsewhere.
   */
  readonly runtime?: "browser" | "deno";
}

const DENO_ADVICE = "webtune needs a WebGPU adapter: a GPU driver with Vulkan/Metal/D3D12, or " +
  "on a machine without a GPU Mesa's software rasterizer llvmpipe (Debian/Ubuntu: `apt-get " +
  "install -y mesa-vulkan-drivers libgl1-mesa-dri`; set XDG_RUNTIME_DIR to a private directory).";

const BROWSER_ADVICE = "webtune needs WebGPU: open the page in a browser that has it, such as " +
  "a current Chrome or Edge, or Safari or Firefox with WebGPU enabled; on Linux, Chrome may " +
  "need WebGPU switched on in chrome://flags (#enable-unsafe-webgpu, or start it with " +
  "--enable-unsafe-webgpu); and serve the page over https:// or from http://localhost, since " +
  "WebGPU exists only in secure contexts.";

/**
 * No WebGPU adapter could be acquired. The message says how to get one: in a browser, which
 * browsers have WebGPU and how to enable it; in Deno, which driver to install.
 *
 * @example
 * ```ts
 * import { NoAdapterError } from "./errors.ts";
 * const e = new NoAdapterError("navigator.gpu is undefined", { runtime: "browser" });
 * console.log(e.message); // No WebGPU adapter found (navigator.gpu is undefined). … Chrome …
 * ```
 */
export class NoAdapterError extends GpuError {
  /**
   * @param detail Extra context (e.g. the requested power preference).
   * @param options Whose advice to give (default: detected).
   */
  constructor(detail = "", options: NoAdapterErrorOptions = {}) {
    const runtime = options.runtime ?? (typeof Deno === "undefined" ? "browser" : "deno");
    super(
      "No WebGPU adapter found" + (detail ? ` (${detail})` : "") + ". " +
        (runtime === "browser" ? BROWSER_ADVICE : DENO_ADVICE),
    );
    this.name = "NoAdapterError";
  }
}

/** A kernel was launched with tensors of the wrong shape or dtype. */
export class ShapeError extends GpuError {
  /**
   * @param kernel The kernel's name.
   * @param message What was expected and what was given.
   */
  constructor(kernel: string, message: string) {
    super(`${kernel}: ${message}`);
    this.name = "ShapeError";
  }
}

/** WebGPU rejected a pipeline or a dispatch; the message names the kernel and its shapes. */
export class KernelError extends GpuError {
  /**
   * @param kernel The kernel's name (and the shapes it ran on).
   * @param cause The WebGPU error message.
   */
  constructor(kernel: string, cause: string) {
    super(`WebGPU rejected kernel ${kernel}: ${cause}`);
    this.name = "KernelError";
  }
}

/** The device could not allocate a buffer. */
export class GpuOutOfMemoryError extends GpuError {
  /** Size of the allocation that failed. */
  readonly requestedBytes: number;
  /** GPU bytes held (live and pooled) when it failed. */
  readonly allocatedBytes: number;
  /**
   * @param requestedBytes Size of the failed allocation.
   * @param allocatedBytes Bytes held when it failed.
   * @param cause The WebGPU message.
   */
  constructor(requestedBytes: number, allocatedBytes: number, cause: string) {
    super(
      `the GPU is out of memory: allocating ${formatBytes(requestedBytes)} failed with ` +
        `${formatBytes(allocatedBytes)} already held (${cause})`,
    );
    this.name = "GpuOutOfMemoryError";
    this.requestedBytes = requestedBytes;
    this.allocatedBytes = allocatedBytes;
  }
}

/**
 * Formats a byte count for messages: `1.50 GiB`, `12.0 MiB`.
 *
 * @param bytes Byte count.
 * @returns Human-readable size.
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : v < 10 ? 2 : 1)} ${units[u]}`;
}
