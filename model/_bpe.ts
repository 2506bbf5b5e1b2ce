/**
 * The BPE model of a Hugging Face `tokenizer.json` (`model.type == "BPE"`), ported from the Rust
 * `tokenizers` crate (`models/bpe/model.rs` `merge_word`, `models/bpe/word.rs` `merge_all`):
 * characters become symbols (or `<0xNN>` byte tokens, or `<unk>`), then merges are applied in
 * rank order, ties to the leftmost position, with a binary heap over a linked list of symbols.
 *
 * @module
 */

import { TokenizerError } from "./_tokenizer_error.ts";
import { heapPop, heapPush } from "./_bpe_heap.ts";
import { buildCrossingIndex, buildMerges, type CrossingToken, matchesAt } from "./_bpe_merges.ts";
import type { MergeTable } from "./_merge_table.ts";

/** `▁` (U+2581), the metaspace that Gemma's normalizer puts in place of `" "`. */
const METASPACE = 0x2581;
const METASPACE_CHAR = "\u2581";
const SPACE = 0x20;
/** Heap keys pack `rank * 2^32 + position`; ranks < 2^21 keep them below 2^53. */
const RANK_SCALE = 4294967296;
/** Longest sub-word kept in the cache (code units). */
const MAX_CACHED_LENGTH = 64;
/** The cache is cleared when it reaches this many entries. */
const CACHE_LIMIT = 100_000;

/** A validated `model` section of `tokenizer.json` with `type == "BPE"`. */
export class BpeModel {
  /** Token string → id for the model vocabulary (added tokens excluded). */
  readonly vocab: ReadonlyMap<string, number>;
  /** Id → token string for the model vocabulary (sparse where ids are added tokens only). */
  readonly idToToken: readonly string[];
  readonly #merges: MergeTable;
  readonly #bmpIds: Int32Array; // [65536] code unit → id of the one-character token, or -1
  readonly #astralIds: Map<number, number>; // code point ≥ 0x10000 → id
  readonly #byteIds: Int32Array | null; // [256] byte → id of `<0xNN>`, null without byte_fallback
  readonly #unkToken: string | null;
  readonly #unkId: number; // -1 when the model has no unk token, or it is not in the vocab
  readonly #fuseUnk: boolean;
  readonly #ignoreMerges: boolean;
  /** Crossing merge results by the code unit before their `▁`; null disables word splitting. */
  readonly #crossing: Map<number, CrossingToken[]> | null;
  readonly #cache = new Map<string, Int32Array>();
  // Scratch buffers for one merge run, grown on demand.
  #ids = new Int32Array(256);
  #prev = new Int32Array(256);
  #next = new Int32Array(256);
  #heap = new Float64Array(768);

  private constructor(
    vocab: Map<string, number>,
    merges: MergeTable,
    options: {
      unkToken: string | null;
      fuseUnk: boolean;
      byteFallback: boolean;
      ignoreMerges: boolean;
      crossing: CrossingToken[];
    },
  ) {
    this.vocab = vocab;
    this.#merges = merges;
    this.#unkToken = options.unkToken;
    this.#unkId = options.unkToken === null ? -1 : (vocab.get(options.unkToken) ?? -1);
    this.#fuseUnk = options.fuseUnk;
    this.#ignoreMerges = options.ignoreMerges;
    this.#bmpIds = new Int32Array(65536).fill(-1);
    this.#astralIds = new Map();
    const tokens = new Array<string>(vocab.size);
    for (const [token, id] of vocab) {
      tokens[id] = token;
      if (token.length === 1) this.#bmpIds[token.charCodeAt(0)] = id;
      else if (token.length === 2) {
        const cp = token.codePointAt(0)!;
        if (cp > 0xffff) this.#astralIds.set(cp, id);
      }
    }
    this.idToToken = tokens;
    this.#byteIds = null;
    if (options.byteFallback) {
      this.#byteIds = new Int32Array(256);
      for (let b = 0; b < 256; b++) {
        const name = `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
        this.#byteIds[b] = vocab.get(name) ?? -1;
      }
    }
    this.#crossing = buildCrossingIndex(vocab, options.crossing, options.unkToken);
  }

  /**
   * Validates and builds the model from the parsed `model` object of `tokenizer.json`.
   *
   * @param model The `model` section.
   * @returns The model.
   */
  static fromJSON(model: Record<string, unknown>): BpeModel {
    if (model.type !== "BPE") {
      throw new TokenizerError(`model.type: unsupported ${JSON.stringify(model.type)}`);
    }
    if (model.dropout != null && model.dropout !== 0) {
      throw new TokenizerError(`model.dropout: must be null, got ${model.dropout}`);
    }
    for (const field of ["continuing_subword_prefix", "end_of_word_suffix"]) {
      if (model[field] != null && model[field] !== "") {
        throw new TokenizerError(`model.${field}: unsupported ${JSON.stringify(model[field])}`);
      }
    }
    const rawVocab = model.vocab;
    if (rawVocab === null || typeof rawVocab !== "object" || Array.isArray(rawVocab)) {
      throw new TokenizerError("model.vocab: expected an object of token → id");
    }
    const vocab = new Map<string, number>();
    const vocabObject = rawVocab as Record<string, unknown>;
    for (const token in vocabObject) {
      const id = vocabObject[token];
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
        throw new TokenizerError(`model.vocab[${JSON.stringify(token)}]: bad id ${id}`);
      }
      vocab.set(token, id);
    }
    const unkToken = model.unk_token == null ? null : String(model.unk_token);
    const { table, crossing } = buildMerges(model.merges, vocab);
    return new BpeModel(vocab, table, {
      unkToken,
      fuseUnk: model.fuse_unk === true,
      byteFallback: model.byte_fallback === true,
      ignoreMerges: model.ignore_merges === true,
      crossing,
    });
  }

  /**
   * Appends the ids of one pre-tokenized word to `out`.
   *
   * subtle: HF runs BPE on the whole word, which for Gemma is the whole text between added
   * tokens. We cut it before each `▁` that follows a non-`▁` character and cache the pieces;
   * this gives the same ids because no merge result contains such a `x▁` — except the few
   * "crossing" tokens found at load time, which are checked at each cut.
   *
   * @param word The normalized, pre-tokenized word.
   * @param out Receives the ids.
   * @param spacesAreMetaspace Treat `" "` as `"▁"`: encodes `word.replaceAll(" ", "▁")`, but
   *   normalizes only pieces missing from the cache (the tokenizer's fast path for Gemma's
   *   `Replace(" " → "▁")` normalizer).
   */
  encodeWord(word: string, out: number[], spacesAreMetaspace = false): void {
    if (word.length === 0) return;
    const crossing = this.#crossing;
    if (this.#ignoreMerges || crossing === null) {
      const normalized = spacesAreMetaspace ? word.replaceAll(" ", METASPACE_CHAR) : word;
      const id = this.#ignoreMerges ? this.vocab.get(normalized) : undefined;
      if (id !== undefined) out.push(id);
      else if (crossing === null) this.#encodePiece(normalized, out, false);
      else this.#encodeCut(normalized, out, crossing, false);
      return;
    }
    this.#encodeCut(word, out, crossing, spacesAreMetaspace);
  }

  /** Empties the cache of encoded pieces. */
  clearCache(): void {
    this.#cache.clear();
  }

  /** Cuts `word` before each safe `▁` and encodes the pieces. */
  #encodeCut(
    word: string,
    out: number[],
    crossing: Map<number, CrossingToken[]>,
    spaces: boolean,
  ): void {
    let start = 0;
    for (let i = 1; i < word.length; i++) {
      const c = word.charCodeAt(i);
      if (c !== METASPACE && !(spaces && c === SPACE)) continue;
      const before = word.charCodeAt(i - 1);
      if (before === METASPACE || (spaces && before === SPACE)) continue;
      const risky = crossing.get(before);
      if (
        risky !== undefined && risky.some((t) => matchesAt(word, t.token, i - t.offset, spaces))
      ) {
        continue;
      }
      this.#encodePiece(word.slice(start, i), out, spaces);
      start = i;
    }
    this.#encodePiece(start === 0 ? word : word.slice(start), out, spaces);
  }

  /** Cached BPE of one piece (the cache key is the piece as given, spaces and all). */
  #encodePiece(piece: string, out: number[], spaces: boolean): void {
    if (piece.length > MAX_CACHED_LENGTH) {
      this.#merge(spaces ? piece.replaceAll(" ", METASPACE_CHAR) : piece, out);
      return;
    }
    const cached = this.#cache.get(piece);
    if (cached !== undefined) {
      for (let i = 0; i < cached.length; i++) out.push(cached[i]);
      return;
    }
    const first = out.length;
    this.#merge(spaces ? piece.replaceAll(" ", METASPACE_CHAR) : piece, out);
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    const ids = new Int32Array(out.length - first);
    for (let i = 0; i < ids.length; i++) ids[i] = out[first + i];
    this.#cache.set(piece, ids);
  }

  /** `merge_word` + `merge_all` of the Rust crate; appends the resulting ids to `out`. */
  #merge(piece: string, out: number[]): void {
    let ids = this.#growIds(piece.length + 4, 0);
    let n = 0;
    let pendingUnk = false;
    for (let i = 0; i < piece.length; i++) {
      // Room for one code point's byte tokens plus a flushed unk.
      if (n + 5 > ids.length) ids = this.#growIds(2 * ids.length, n);
      let cp = piece.charCodeAt(i);
      if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < piece.length) {
        const low = piece.charCodeAt(i + 1);
        if (low >= 0xdc00 && low < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          i++;
        }
      }
      const id = cp < 0x10000 ? this.#bmpIds[cp] : (this.#astralIds.get(cp) ?? -1);
      if (id >= 0) {
        if (pendingUnk) {
          ids[n++] = this.#unkId;
          pendingUnk = false;
        }
        ids[n++] = id;
        continue;
      }
      // subtle: like Rust, byte tokens do not flush a pending (fused) unk; it lands after them.
      if (this.#byteIds !== null) {
        const written = writeByteTokens(cp, this.#byteIds, ids, n);
        if (written > 0) {
          n += written;
          continue;
        }
      }
      if (this.#unkId < 0) {
        // Like Rust, a missing unk token is only an error once it is needed.
        const unk = this.#unkToken === null ? "none" : `${this.#unkToken} not in model.vocab`;
        throw new TokenizerError(`model.unk_token: ${unk}; cannot encode U+${cp.toString(16)}`);
      }
      if (pendingUnk && !this.#fuseUnk) ids[n++] = this.#unkId;
      pendingUnk = true;
    }
    if (pendingUnk) ids[n++] = this.#unkId;
    if (this.#next.length < n) {
      this.#prev = new Int32Array(n);
      this.#next = new Int32Array(n);
      // Each merge pushes at most two entries on top of the initial n - 1: 3n bounds the heap.
      this.#heap = new Float64Array(3 * n);
    }
    this.#mergeAll(n);
    const next = this.#next;
    for (let i = 0; i !== -1; i = next[i]) out.push(ids[i]);
  }

  /** Applies merges by (rank, position) over symbols `#ids[0..n)`; leaves a list from 0. */
  #mergeAll(n: number): void {
    const ids = this.#ids, prev = this.#prev, next = this.#next, heap = this.#heap;
    const merges = this.#merges;
    let size = 0;
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
      if (i + 1 < n) {
        const slot = merges.find(ids[i], ids[i + 1]);
        if (slot >= 0) size = heapPush(heap, size, merges.rank[slot] * RANK_SCALE + i);
      }
    }
    while (size > 0) {
      const key = heap[0];
      size = heapPop(heap, size);
      const rank = Math.floor(key / RANK_SCALE);
      const pos = key - rank * RANK_SCALE;
      const right = next[pos];
      if (right === -1 || prev[pos] === -2) continue; // last symbol, or merged away
      const slot = merges.find(ids[pos], ids[right]);
      // Stale entry: the pair at `pos` changed since it was queued.
      if (slot < 0 || merges.rank[slot] !== rank) continue;
      ids[pos] = merges.newId[slot] >= 0 ? merges.newId[slot] : this.#resolveNewId(slot);
      prev[right] = -2; // removed
      const after = next[right];
      next[pos] = after;
      if (after !== -1) prev[after] = pos;
      const before = prev[pos];
      if (before >= 0) {
        const s = merges.find(ids[before], ids[pos]);
        if (s >= 0) size = heapPush(heap, size, merges.rank[s] * RANK_SCALE + before);
      }
      if (after !== -1) {
        const s = merges.find(ids[pos], ids[after]);
        if (s >= 0) size = heapPush(heap, size, merges.rank[s] * RANK_SCALE + pos);
      }
    }
  }

  /** Looks up (once) the id of a merge's result, which loading leaves unresolved. */
  #resolveNewId(slot: number): number {
    const merges = this.#merges;
    const left = this.idToToken[merges.left(slot)], right = this.idToToken[merges.right(slot)];
    const id = this.vocab.get(left + right);
    if (id === undefined) {
      throw new TokenizerError(
        `model.merges[${merges.rank[slot]}]: result ${JSON.stringify(left + right)} not in vocab`,
      );
    }
    merges.newId[slot] = id;
    return id;
  }

  /** Returns `#ids` with at least `capacity` entries, keeping its first `keep`. */
  #growIds(capacity: number, keep: number): Int32Array {
    if (this.#ids.length < capacity) {
      const grown = new Int32Array(capacity);
      grown.set(this.#ids.subarray(0, keep));
      this.#ids = grown;
    }
    return this.#ids;
  }
}

/** Writes the `<0xNN>` ids of code point `cp`'s UTF-8 bytes at `out[at..]`; 0 if any is missing. */
function writeByteTokens(cp: number, byteIds: Int32Array, out: Int32Array, at: number): number {
  if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd; // lone surrogate: what TextEncoder would write
  let bytes: number[];
  if (cp < 0x80) bytes = [cp];
  else if (cp < 0x800) bytes = [0xc0 | (cp >> 6), 0x80 | (cp & 63)];
  else if (cp < 0x10000) bytes = [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
  else {
    bytes = [
      0xf0 | (cp >> 18),
      0x80 | ((cp >> 12) & 63),
      0x80 | ((cp >> 6) & 63),
      0x80 | (cp & 63),
    ];
  }
  for (const b of bytes) if (byteIds[b] < 0) return 0;
  for (let k = 0; k < bytes.length; k++) out[at + k] = byteIds[bytes[k]];
  return bytes.length;
}
