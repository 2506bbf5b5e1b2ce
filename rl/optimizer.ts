/**
 * AdamW over a set of named f32 parameter tensors, with global-norm gradient clipping, as the
 * recipe's optax chain `clip_by_global_norm(maxGradNorm)` → `adamw(schedule, b1, b2, eps,
 * weight_decay)`. Moments live on the GPU (f32); the update count lives on the host.
 *
 * One training step, with a single readback shared with the loss:
 *
 * ```
 * optimizer.step(grads, { guard: loss });          // records norm + update kernels
 * const [lossBytes, statsBytes] = await gpu.readMany([loss.binding(), optimizer.statsBinding]);
 * const result = optimizer.commit(statsBytes);      // advances the count unless skipped
 * ```
 *
 * The skip decision is made on the GPU: when the global gradient norm or any guard value (the
 * loss) is NaN/Inf, the update kernel writes nothing, so params and moments stay untouched.
 * `commit` reads that decision from the stats and leaves the count (and with it the learning
 * rate and bias correction) unchanged for a skipped step, as optax's `apply_if_finite` does.
 *
 * @module
 */

import {
  ADAMW_STATS,
  adamwUpdate,
  gradGlobalNorm,
  gradNormPartialCount,
} from "../kernels/adamw.ts";
import { ShapeError } from "../kernels/errors.ts";
import type { BufferBinding, Gpu } from "../kernels/gpu.ts";
import { readTensorsF32, shapeString, Tensor } from "../kernels/tensor.ts";
import {
  type AdamWConfig,
  adamwConfig,
  type AdamWOptions,
  OptimizerError,
} from "./adamw_config.ts";

/** A parameter tensor with its name (e.g. `layers.3.self_attn.q_proj.lora_A`). */
export interface NamedTensor {
  /** Unique name. */
  readonly name: string;
  /** The f32 tensor, updated in place. */
  readonly tensor: Tensor;
}

/** What {@linkcode AdamW.commit} learned about the step. */
export interface AdamWStepResult {
  /** True when the GPU applied the update; false when it skipped it (non-finite norm/guard). */
  readonly applied: boolean;
  /** Global gradient norm before clipping (NaN/Inf on a skipped step). */
  readonly gradNorm: number;
  /** Learning rate the step used (or would have used, when skipped). */
  readonly learningRate: number;
  /** Applied updates so far, after this one. */
  readonly stepCount: number;
  /** Skipped steps in a row, ending with this one (0 when applied). */
  readonly consecutiveSkips: number;
}

/** Optimizer state for checkpoints: host copies of the moments plus the update count. */
export interface AdamWState {
  /** Applied updates (optax `count`). */
  readonly stepCount: number;
  /** First and second moments per parameter name, f32 row-major. */
  readonly moments: ReadonlyMap<
    string,
    { readonly m: Float32Array; readonly v: Float32Array }
  >;
}

interface Slot {
  readonly name: string;
  readonly param: Tensor;
  readonly m: Tensor;
  readonly v: Tensor;
  readonly decay: boolean;
}

/**
 * AdamW with global-norm clipping and GPU-side NaN/Inf skipping.
 *
 * @example
 * ```ts
 * import { Gpu } from "../kernels/gpu.ts";
 * import { Tensor } from "../kernels/tensor.ts";
 * import { AdamW } from "./optimizer.ts";
 * const gpu = await Gpu.create();
 * const w = Tensor.fromArray(gpu, new Float32Array([1, 2, 3]));
 * const opt = new AdamW(gpu, [{ name: "w", tensor: w }], { learningRate: 1e-2, maxGradNorm: 1 });
 * const g = Tensor.fromArray(gpu, new Float32Array([0.1, -0.2, 0.3]));
 * opt.step(new Map([["w", g]]));
 * const result = await opt.finishStep(); // { applied: true, gradNorm: 0.374…, stepCount: 1, … }
 * opt.dispose();
 * gpu.destroy();
 * ```
 */
export class AdamW {
  /** The validated hyperparameters. */
  readonly config: AdamWConfig;
  readonly #gpu: Gpu;
  readonly #slots: Slot[];
  readonly #stats: Tensor;
  readonly #partials: Tensor;
  #stepCount = 0;
  #pending = false;
  #consecutiveSkips = 0;
  #disposed = false;

  /**
   * Allocates zeroed f32 moments for every parameter.
   *
   * @param gpu The runtime holding the parameters.
   * @param params Named f32 parameter tensors (updated in place by {@linkcode AdamW.step}).
   * @param config A validated config or options for {@linkcode adamwConfig}.
   * @throws {OptimizerError} on an empty list, duplicate names or non-f32 parameters.
   */
  constructor(
    gpu: Gpu,
    params: ReadonlyMap<string, Tensor> | readonly NamedTensor[],
    config: AdamWConfig | AdamWOptions,
  ) {
    this.config = adamwConfig(config);
    this.#gpu = gpu;
    const list: NamedTensor[] = params instanceof Map
      ? [...params].map(([name, tensor]) => ({ name, tensor }))
      : [...params as readonly NamedTensor[]];
    if (list.length === 0) throw new OptimizerError("params", "AdamW needs at least one parameter");
    const seen = new Set<string>();
    for (const { name, tensor } of list) {
      if (seen.has(name)) throw new OptimizerError("params", `duplicate parameter name ${name}`);
      seen.add(name);
      if (tensor.dtype !== "f32") {
        throw new OptimizerError("params", `parameter ${name} must be f32, got ${tensor.dtype}`);
      }
      if (tensor.gpu !== gpu) {
        throw new OptimizerError("params", `parameter ${name} lives on another Gpu`);
      }
    }
    const mask = this.config.weightDecayMask;
    this.#slots = list.map(({ name, tensor }) => ({
      name,
      param: tensor,
      m: Tensor.zeros(gpu, tensor.shape, "f32"),
      v: Tensor.zeros(gpu, tensor.shape, "f32"),
      decay: mask === null || mask(name),
    }));
    this.#stats = Tensor.zeros(gpu, [ADAMW_STATS.length], "f32");
    const count = gradNormPartialCount(list.map((p) => p.tensor));
    this.#partials = Tensor.empty(gpu, [count], "f32");
  }

  /** Applied updates so far (optax `count`); the next step uses t = stepCount + 1. */
  get stepCount(): number {
    return this.#stepCount;
  }

  /** True between {@linkcode AdamW.step} and {@linkcode AdamW.commit}. */
  get pending(): boolean {
    return this.#pending;
  }

  /** Parameter names, in update order. */
  get names(): readonly string[] {
    return this.#slots.map((s) => s.name);
  }

  /** Learning rate the next step will use: the schedule at {@linkcode AdamW.stepCount}. */
  get learningRate(): number {
    return this.config.learningRate(this.#stepCount);
  }

  /**
   * The 16-byte GPU stats `[Σg², ‖g‖, applied, badGuard]` f32 of the last recorded step, for
   * the trainer's `gpu.readMany` beside the loss; pass the bytes to {@linkcode AdamW.commit}.
   */
  get statsBinding(): BufferBinding {
    return this.#stats.binding();
  }

  /**
   * Records one update: the global norm over all gradients, then the AdamW kernel per tensor.
   * Nothing is read back; call {@linkcode AdamW.commit} (or {@linkcode AdamW.finishStep}) before
   * the next step.
   *
   * @param grads Gradient per parameter name (f32, the parameter's shape); extra names are errors.
   * @param options `guard`: f32 values (e.g. the loss) that must all be finite for the update to
   *   apply; a non-finite norm always skips.
   * @throws {OptimizerError} when a step is pending or names do not match.
   * @throws {ShapeError} when a gradient's shape or dtype is wrong.
   */
  step(grads: ReadonlyMap<string, Tensor>, options: { readonly guard?: Tensor } = {}): void {
    this.#check();
    if (this.#pending) {
      throw new OptimizerError("step", "the previous step is not committed; call commit() first");
    }
    for (const name of grads.keys()) {
      if (!this.#slots.some((s) => s.name === name)) {
        throw new OptimizerError("grads", `gradient ${name} has no parameter`);
      }
    }
    const ordered = this.#slots.map((s) => {
      const g = grads.get(s.name);
      if (!g) throw new OptimizerError("grads", `missing gradient for ${s.name}`);
      if (g.dtype !== "f32" || g.shape.join() !== s.param.shape.join()) {
        throw new ShapeError(
          "AdamW.step",
          `gradient ${s.name} must be f32 ${shapeString(s.param.shape)}, got ${g.dtype} ` +
            shapeString(g.shape),
        );
      }
      return g;
    });
    gradGlobalNorm(ordered, { out: this.#stats, partials: this.#partials, guard: options.guard });
    const c = this.config;
    const hyper = {
      learningRate: this.learningRate,
      b1: c.b1,
      b2: c.b2,
      eps: c.eps,
      step: this.#stepCount + 1,
      maxGradNorm: c.maxGradNorm,
    };
    this.#slots.forEach((s, i) => {
      adamwUpdate(s.param, { grad: ordered[i], m: s.m, v: s.v, stats: this.#stats }, {
        ...hyper,
        weightDecay: s.decay ? c.weightDecay : 0,
      });
    });
    this.#pending = true;
  }

  /**
   * Finishes the pending step with the stats read from {@linkcode AdamW.statsBinding}: advances
   * the count when the GPU applied the update, leaves it when it skipped.
   *
   * @param stats The 16 bytes read from `statsBinding` after the step.
   * @returns What happened.
   * @throws {OptimizerError} when no step is pending or the bytes are not 16.
   */
  commit(stats: ArrayBuffer): AdamWStepResult {
    this.#check();
    if (!this.#pending) throw new OptimizerError("commit", "no step is pending");
    if (stats.byteLength < ADAMW_STATS.length * 4) {
      throw new OptimizerError("stats", `stats must be 16 bytes, got ${stats.byteLength}`);
    }
    const s = new Float32Array(stats, 0, ADAMW_STATS.length);
    const applied = s[ADAMW_STATS.applied] === 1;
    const learningRate = this.learningRate;
    this.#pending = false;
    if (applied) {
      this.#stepCount++;
      this.#consecutiveSkips = 0;
    } else {
      this.#consecutiveSkips++;
    }
    return Object.freeze({
      applied,
      gradNorm: s[ADAMW_STATS.norm],
      learningRate,
      stepCount: this.#stepCount,
      consecutiveSkips: this.#consecutiveSkips,
    });
  }

  /**
   * Reads the stats (one GPU wait) and commits; for callers without a loss to read alongside.
   *
   * @returns What happened.
   */
  async finishStep(): Promise<AdamWStepResult> {
    const [bytes] = await this.#gpu.readMany([this.statsBinding]);
    return this.commit(bytes);
  }

  /**
   * Copies the moments to the host (one GPU wait) for a checkpoint.
   *
   * @returns Count and moments.
   * @throws {OptimizerError} while a step is pending.
   */
  async state(): Promise<AdamWState> {
    this.#check();
    if (this.#pending) throw new OptimizerError("state", "commit the pending step first");
    const tensors = this.#slots.flatMap((s) => [s.m, s.v]);
    const host = await readTensorsF32(tensors);
    const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
    this.#slots.forEach((s, i) => moments.set(s.name, { m: host[2 * i], v: host[2 * i + 1] }));
    return Object.freeze({ stepCount: this.#stepCount, moments });
  }

  /**
   * Restores the count and moments saved by {@linkcode AdamW.state} (parameters are restored by
   * the caller).
   *
   * @param state A saved state with exactly this optimizer's names and sizes.
   * @throws {OptimizerError} on mismatched names, sizes or count, or while a step is pending.
   */
  loadState(state: AdamWState): void {
    this.#check();
    if (this.#pending) throw new OptimizerError("loadState", "commit the pending step first");
    if (!Number.isSafeInteger(state.stepCount) || state.stepCount < 0) {
      throw new OptimizerError(
        "stepCount",
        `stepCount must be an integer ≥ 0, got ${state.stepCount}`,
      );
    }
    for (const name of state.moments.keys()) {
      if (!this.#slots.some((s) => s.name === name)) {
        throw new OptimizerError("moments", `state has moments for unknown parameter ${name}`);
      }
    }
    for (const s of this.#slots) {
      const mv = state.moments.get(s.name);
      if (!mv) throw new OptimizerError("moments", `state lacks moments for ${s.name}`);
      if (mv.m.length !== s.param.numel || mv.v.length !== s.param.numel) {
        throw new OptimizerError(
          "moments",
          `moments of ${s.name} must hold ${s.param.numel} values, got ${mv.m.length}/${mv.v.length}`,
        );
      }
    }
    for (const s of this.#slots) {
      const mv = state.moments.get(s.name)!;
      s.m.write(mv.m);
      s.v.write(mv.v);
    }
    this.#stepCount = state.stepCount;
    this.#consecutiveSkips = 0;
  }

  /** Releases the moments and scratch buffers (not the parameters). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const s of this.#slots) {
      s.m.dispose();
      s.v.dispose();
    }
    this.#stats.dispose();
    this.#partials.dispose();
  }

  #check(): void {
    if (this.#disposed) throw new OptimizerError("AdamW", "optimizer used after dispose()");
  }
}
