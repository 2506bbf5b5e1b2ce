/**
 * Deterministic, resumable batch order over a dataset of `n` items. The order of epoch `e` is a
 * pure function of `(seed, e, n, options)`, so a position `{ epoch, index, seed }` stored in a
 * checkpoint resumes the exact same stream of batches.
 *
 * @module
 */

import { DataOptionsError } from "./errors.ts";
import { mixSeed, SeededRandom } from "../base/random.ts";

/** A position in the batch stream: the next batch is batch `index` of epoch `epoch`. */
export interface BatchSamplerState {
  /** Epoch number, from 0. */
  readonly epoch: number;
  /** Index of the next batch within the epoch. */
  readonly index: number;
  /** The seed the order derives from. */
  readonly seed: number;
}

/** Options for {@linkcode BatchSampler}. */
export interface BatchSamplerOptions {
  /** Items per batch. */
  readonly batchSize: number;
  /** Order seed. Default 0. */
  readonly seed?: number;
  /** Shuffle each epoch (true, default) or keep dataset order. */
  readonly shuffle?: boolean;
  /** Drop the epoch's short last batch. Default false. */
  readonly dropLast?: boolean;
  /** Item lengths (tokens); needed for `bucketSize`. */
  readonly lengths?: readonly number[];
  /**
   * Length-sorted buckets: each run of `bucketSize × batchSize` shuffled items is sorted by
   * length (longest first) before being cut into batches, then batch order is shuffled. Less
   * padding, still random. Off when undefined.
   */
  readonly bucketSize?: number;
  /** Resume from this position (e.g. from a checkpoint). Its seed must match `seed` if given. */
  readonly state?: BatchSamplerState;
}

/** One batch of item indices and where it sits in the stream. */
export interface SampledBatch {
  /** Epoch it belongs to. */
  readonly epoch: number;
  /** Its index within the epoch. */
  readonly index: number;
  /** Dataset indices of its items. */
  readonly indices: readonly number[];
}

function checkState(state: BatchSamplerState): void {
  for (const k of ["epoch", "index"] as const) {
    if (!Number.isInteger(state[k]) || state[k] < 0) {
      throw new DataOptionsError(`state.${k}`, `must be a non-negative integer, got ${state[k]}`);
    }
  }
  if (!Number.isInteger(state.seed)) {
    throw new DataOptionsError("state.seed", `must be an integer, got ${state.seed}`);
  }
}

/**
 * Yields batches of dataset indices, epoch after epoch, in a seeded order.
 *
 * @example
 * ```ts
 * import { BatchSampler } from "./batch_sampler.ts";
 * const a = new BatchSampler(10, { batchSize: 3, seed: 1 });
 * a.next();
 * const b = new BatchSampler(10, { batchSize: 3, seed: 1, state: a.state() });
 * if (a.next().indices.join() !== b.next().indices.join()) throw new Error("not resumable");
 * ```
 */
export class BatchSampler {
  /** Number of items in the dataset. */
  readonly datasetSize: number;
  /** Validated options. */
  readonly options: Readonly<
    Required<Omit<BatchSamplerOptions, "lengths" | "bucketSize" | "state">> & BatchSamplerOptions
  >;
  #epoch: number;
  #index: number;
  #cache: { epoch: number; batches: number[][] } | null = null;

  /**
   * @param datasetSize Number of items (> 0).
   * @param options Batch size, seed, shuffle, dropLast, bucketing, resume state.
   * @throws {DataOptionsError} Naming the invalid field.
   */
  constructor(datasetSize: number, options: BatchSamplerOptions) {
    if (!Number.isInteger(datasetSize) || datasetSize <= 0) {
      throw new DataOptionsError("datasetSize", `must be a positive integer, got ${datasetSize}`);
    }
    const { batchSize, lengths, bucketSize, state } = options;
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new DataOptionsError("batchSize", `must be a positive integer, got ${batchSize}`);
    }
    if (options.seed !== undefined && !Number.isInteger(options.seed)) {
      throw new DataOptionsError("seed", `must be an integer, got ${options.seed}`);
    }
    if (state) {
      checkState(state);
      if (options.seed !== undefined && options.seed !== state.seed) {
        throw new DataOptionsError(
          "state.seed",
          `(${state.seed}) differs from seed (${options.seed}); the order would not resume`,
        );
      }
    }
    if (lengths !== undefined && lengths.length !== datasetSize) {
      throw new DataOptionsError(
        "lengths",
        `must have one entry per item (${datasetSize}), got ${lengths.length}`,
      );
    }
    if (bucketSize !== undefined) {
      if (!Number.isInteger(bucketSize) || bucketSize <= 0) {
        throw new DataOptionsError("bucketSize", `must be a positive integer, got ${bucketSize}`);
      }
      if (!lengths) throw new DataOptionsError("lengths", "are required when bucketSize is set");
    }
    this.datasetSize = datasetSize;
    this.options = Object.freeze({
      ...options,
      seed: state?.seed ?? options.seed ?? 0,
      shuffle: options.shuffle ?? true,
      dropLast: options.dropLast ?? false,
      ...(lengths ? { lengths: Object.freeze([...lengths]) } : {}),
    });
    if (this.batchesPerEpoch === 0) {
      throw new DataOptionsError(
        "batchSize",
        `(${batchSize}) exceeds the dataset (${datasetSize}) with dropLast, so no batch is left`,
      );
    }
    this.#epoch = state?.epoch ?? 0;
    this.#index = state?.index ?? 0;
    if (this.#index > this.batchesPerEpoch) {
      throw new DataOptionsError(
        "state.index",
        `(${this.#index}) exceeds the ${this.batchesPerEpoch} batches of an epoch`,
      );
    }
    if (this.#index === this.batchesPerEpoch) {
      this.#epoch++;
      this.#index = 0;
    }
  }

  /**
   * Resumes a sampler at a stored position.
   *
   * @param datasetSize Number of items; must be the same as when the state was taken.
   * @param options The same options as before (a `seed`, if given, must match).
   * @param state The stored position.
   * @returns A sampler whose next batch is the one the stored sampler would have produced.
   */
  static restore(
    datasetSize: number,
    options: BatchSamplerOptions,
    state: BatchSamplerState,
  ): BatchSampler {
    return new BatchSampler(datasetSize, { ...options, state });
  }

  /** Batches in one epoch. */
  get batchesPerEpoch(): number {
    const { batchSize, dropLast } = this.options;
    return dropLast
      ? Math.floor(this.datasetSize / batchSize)
      : Math.ceil(this.datasetSize / batchSize);
  }

  /**
   * The position of the next batch, for a checkpoint.
   *
   * @returns `{ epoch, index, seed }`, a plain JSON-safe object.
   */
  state(): BatchSamplerState {
    return { epoch: this.#epoch, index: this.#index, seed: this.options.seed };
  }

  /**
   * All batches of an epoch, in order.
   *
   * @param epoch The epoch number.
   * @returns Arrays of dataset indices.
   */
  epochBatches(epoch: number): readonly (readonly number[])[] {
    if (this.#cache?.epoch === epoch) return this.#cache.batches;
    const { batchSize, shuffle, dropLast, lengths, bucketSize, seed } = this.options;
    const rng = new SeededRandom(mixSeed(seed, epoch));
    const order = Array.from({ length: this.datasetSize }, (_, i) => i);
    if (shuffle) rng.shuffle(order);
    let batches: number[][] = [];
    const chunk = bucketSize !== undefined ? bucketSize * batchSize : this.datasetSize;
    for (let start = 0; start < order.length; start += chunk) {
      const bucket = order.slice(start, start + chunk);
      if (bucketSize !== undefined) {
        // subtle: stable sort, so ties keep the shuffled order and stay deterministic.
        bucket.sort((a, b) => lengths![b] - lengths![a]);
      }
      for (let i = 0; i < bucket.length; i += batchSize) {
        batches.push(bucket.slice(i, i + batchSize));
      }
    }
    if (dropLast) batches = batches.filter((b) => b.length === batchSize);
    if (bucketSize !== undefined && shuffle) rng.shuffle(batches);
    this.#cache = { epoch, batches };
    return batches;
  }

  /**
   * The next batch; after an epoch's last batch the position moves to the next epoch.
   *
   * @returns The batch's indices and position.
   */
  next(): SampledBatch {
    const epoch = this.#epoch;
    const index = this.#index;
    const indices = this.epochBatches(epoch)[index];
    this.#index++;
    if (this.#index >= this.batchesPerEpoch) {
      this.#epoch++;
      this.#index = 0;
    }
    return { epoch, index, indices };
  }
}
