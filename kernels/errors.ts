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

/** No WebGPU adapter could be acquired. The message says how to get one. */
export class NoAdapterError extends GpuError {
  /** @param detail Extra context (e.g. the requested power preference). */
  constructor(detail = "") {
    super(
      "No WebGPU adapter found" + (detail ? ` (${detail})` : "") + ". webtune needs a WebGPU " +
        "adapter: a GPU driver with Vulkan/Metal/D3D12, or on a machine without a GPU Mesa's " +
        "software rasterizer llvmpipe (Debian/Ubuntu: `apt-get install -y mesa-vulkan-drivers " +
        "libgl1-mesa-dri`; set XDG_RUNTIME_DIR to a private directory).",
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
