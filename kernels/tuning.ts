/**
 * Per-adapter kernel autotuning: which variant of a kernel family runs a given shape class.
 *
 * Launchers ask {@linkcode Tuner.choose} synchronously with a {@linkcode TuningJob}: its
 * candidates (variant ids, the deterministic table's choice first) and a way to time them on
 * scratch inputs. With tuning `"off"` the table's choice is returned; otherwise a remembered
 * choice is returned when there is one, and a miss runs the table's choice now and queues the
 * job, which {@linkcode Tuner.tune} times later (WebGPU cannot wait inside a launch).
 *
 * @module
 */

/** `"off"`: the deterministic table; `"cached"`: remembered choices, tune misses; `"full"`: retune. */
export type TuningMode = "off" | "cached" | "full";

/** Scratch inputs of one shape class, able to record a launch of any candidate. */
export interface TuningBench {
  /** Records one launch of the candidate with this id (no wait). */
  launch(id: string): void;
  /** Frees the scratch inputs. */
  dispose(): void;
}

/** One tuning question: which candidate runs this shape class fastest on this adapter. */
export interface TuningJob {
  /** Kernel family, e.g. `matmul`. */
  readonly family: string;
  /** The launcher's bucket of shapes that share a choice, e.g. `nt:bf16:m1:n2048:k1152`. */
  readonly shapeClass: string;
  /** Variant ids; the first is the deterministic table's choice. */
  readonly candidates: readonly string[];
  /** Builds scratch inputs of this shape class (called only when the job is timed). */
  readonly prepare: () => TuningBench;
}

/**
 * Chooses kernel variants per shape class (see the module doc).
 *
 * @example
 * ```ts
 * import { Tuner } from "./tuning.ts";
 * const tuner = new Tuner("off");
 * const id = tuner.choose({
 *   family: "demo",
 *   shapeClass: "n8",
 *   candidates: ["table", "other"],
 *   prepare: () => ({ launch: () => {}, dispose: () => {} }),
 * });
 * console.log(id); // table
 * ```
 */
export class Tuner {
  /** The mode in force. */
  readonly mode: TuningMode;
  #choices = new Map<string, string>();
  #pending = new Map<string, TuningJob>();

  /** @param mode The tuning mode. */
  constructor(mode: TuningMode) {
    this.mode = mode;
  }

  /**
   * The variant to run for this job's shape class now.
   *
   * @param job The question.
   * @returns A candidate id.
   */
  choose(job: TuningJob): string {
    const first = job.candidates[0];
    if (this.mode === "off" || job.candidates.length < 2) return first;
    const key = `${job.family}|${job.shapeClass}`;
    const chosen = this.#choices.get(key);
    if (chosen !== undefined && job.candidates.includes(chosen)) return chosen;
    if (!this.#pending.has(key)) this.#pending.set(key, job);
    return first;
  }

  /** Jobs waiting for {@linkcode Tuner.tune}. */
  get pending(): number {
    return this.#pending.size;
  }
}
