/**
 * An open-addressing hash table from a BPE merge pair `(leftId, rightId)` to its rank and
 * result id, in typed arrays: ~16 MB for Gemma 3's 514,906 merges and no per-entry objects, so
 * it builds fast and lookups in the merge loop stay cheap.
 *
 * @module
 */

/** Pair → (rank, new id) map over int32 token ids. */
export class MergeTable {
  /** Rank of the merge in slot `s` (lower merges first). */
  readonly rank: Int32Array;
  /** Id of the token that the merge in slot `s` produces (-1: not resolved yet). */
  readonly newId: Int32Array;
  readonly #left: Int32Array; // -1 marks an empty slot
  readonly #right: Int32Array;
  readonly #mask: number;

  /**
   * @param expected Number of merges that will be inserted (the table keeps load ≤ 1/2).
   */
  constructor(expected: number) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.#mask = capacity - 1;
    this.#left = new Int32Array(capacity).fill(-1);
    this.#right = new Int32Array(capacity);
    this.rank = new Int32Array(capacity);
    this.newId = new Int32Array(capacity);
  }

  /**
   * Inserts or overwrites the merge of `(left, right)`.
   *
   * @param left Id of the left symbol.
   * @param right Id of the right symbol.
   * @param rank Merge priority.
   * @param newId Id of the merged token.
   */
  set(left: number, right: number, rank: number, newId: number): void {
    let s = this.#slot(left, right);
    while (this.#left[s] !== -1 && (this.#left[s] !== left || this.#right[s] !== right)) {
      s = (s + 1) & this.#mask;
    }
    this.#left[s] = left;
    this.#right[s] = right;
    this.rank[s] = rank;
    this.newId[s] = newId;
  }

  /**
   * Finds the slot of `(left, right)`.
   *
   * @param left Id of the left symbol.
   * @param right Id of the right symbol.
   * @returns The slot (index into {@linkcode rank} / {@linkcode newId}), or -1.
   */
  find(left: number, right: number): number {
    const leftKeys = this.#left;
    let s = this.#slot(left, right);
    while (true) {
      const k = leftKeys[s];
      if (k === left && this.#right[s] === right) return s;
      if (k === -1) return -1;
      s = (s + 1) & this.#mask;
    }
  }

  /**
   * @param slot A slot returned by {@linkcode find}.
   * @returns The left id of its pair.
   */
  left(slot: number): number {
    return this.#left[slot];
  }

  /**
   * @param slot A slot returned by {@linkcode find}.
   * @returns The right id of its pair.
   */
  right(slot: number): number {
    return this.#right[slot];
  }

  #slot(left: number, right: number): number {
    let h = Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca6b);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 13;
    return h & this.#mask;
  }
}
