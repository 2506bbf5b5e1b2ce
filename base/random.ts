/**
 * A small seeded PRNG for deterministic data order: mulberry32 for the stream, splitmix32 to
 * mix several integers (seed, epoch, …) into one well-spread seed. Not cryptographic; chosen
 * because it is tiny, fast, and gives the same sequence in every JS engine.
 *
 * @module
 */

/**
 * Mixes one or more integers into a 32-bit seed (splitmix32 finalizer applied per part), so
 * that `mixSeed(seed, epoch)` for neighbouring epochs gives unrelated streams.
 *
 * @param parts Integers to mix; each is taken modulo 2^32.
 * @returns An unsigned 32-bit integer.
 * @example
 * ```ts
 * import { mixSeed } from "./random.ts";
 * if (mixSeed(1, 0) === mixSeed(1, 1)) throw new Error("epochs must differ");
 * ```
 */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const part of parts) {
    h = (h ^ (part >>> 0)) >>> 0;
    h = (h + 0x9e3779b9) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x21f0aaad) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x735a2d97) >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
  }
  return h;
}

/**
 * A deterministic random stream (mulberry32). The same seed gives the same sequence everywhere.
 *
 * @example
 * ```ts
 * import { SeededRandom } from "./random.ts";
 * const a = new SeededRandom(42), b = new SeededRandom(42);
 * if (a.int(0, 9) !== b.int(0, 9)) throw new Error("not deterministic");
 * ```
 */
export class SeededRandom {
  #state: number;

  /**
   * @param seed Any integer; taken modulo 2^32.
   */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    this.#state = mixSeed(Math.trunc(seed));
  }

  /**
   * A stream started from the raw mulberry32 `state`, without {@link mixSeed}: the same numbers
   * as the textbook `mulberry32(state)`, for callers whose seeds predate the mixing.
   *
   * @param state Any integer; taken modulo 2^32.
   * @returns A new stream.
   * @example
   * ```ts
   * import { SeededRandom } from "./random.ts";
   * const u = SeededRandom.fromState(0).next(); // mulberry32(0)'s first draw
   * if (!(u >= 0 && u < 1)) throw new Error("out of range");
   * ```
   */
  static fromState(state: number): SeededRandom {
    const r = new SeededRandom(0);
    r.#state = state >>> 0;
    return r;
  }

  /**
   * Next unsigned 32-bit integer.
   *
   * @returns An integer in [0, 2^32).
   */
  nextUint32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /**
   * Next float in [0, 1).
   *
   * @returns A float with 32 random bits.
   */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /**
   * Uniform integer in [min, max], both inclusive.
   *
   * @param min Smallest value.
   * @param max Largest value (>= min).
   * @returns An integer.
   */
  int(min: number, max: number): number {
    if (!Number.isInteger(min) || !Number.isInteger(max) || max < min) {
      throw new RangeError(`int() needs integers min <= max, got ${min}, ${max}`);
    }
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /**
   * Picks one element uniformly.
   *
   * @param items A non-empty array.
   * @returns One of its elements.
   */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick() needs a non-empty array");
    return items[this.int(0, items.length - 1)];
  }

  /**
   * Fisher–Yates shuffle in place.
   *
   * @param items The array to shuffle.
   * @returns The same array, shuffled.
   */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }
}
