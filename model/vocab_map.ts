/**
 * A reduced vocabulary for small models that still go through the real tokenizer: the set of
 * real token ids a corpus uses, sorted ascending, mapped to the compact range `0..size-1` and
 * back. The demo model (trained from scratch on CPU) embeds only these rows instead of Gemma 3's
 * 262144; text is encoded by the real Gemma 3 tokenizer, mapped to compact ids for the model,
 * and the model's compact ids are mapped back before decoding.
 *
 * The map is data-independent: it is built from any id list or any texts plus any encoder, and
 * the same inputs always give the same map (sorted ids, no insertion order). It is saved with a
 * run as JSON ({@linkcode VocabMap.toJSON}).
 *
 * @module
 */

/** Thrown for an id outside the map, a malformed saved map, or a bad build input. */
export class VocabMapError extends Error {
  /** @param message What was expected and what was received. */
  constructor(message: string) {
    super(message);
    this.name = "VocabMapError";
  }
}

/**
 * Real Gemma 3 ids every demo map holds: `<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3,
 * `<start_of_turn>` 105, `<end_of_turn>` 106 and `"\n"` 107.
 */
export const GEMMA3_SPECIAL_IDS: readonly number[] = Object.freeze([0, 1, 2, 3, 105, 106, 107]);

/** The texts whose tokens every demo map holds besides the corpus: the ten digits. */
export const DIGIT_TEXTS: readonly string[] = Object.freeze(
  Array.from({ length: 10 }, (_, d) => String(d)),
);

/** JSON form of a {@linkcode VocabMap} (`vocab_map.json` in a run folder). */
export interface VocabMapJson {
  /** Always `"webtune.vocab_map"`. */
  readonly format: "webtune.vocab_map";
  /** Always 1. */
  readonly version: 1;
  /** Size of the real vocabulary the ids come from (e.g. 262144), or null when unknown. */
  readonly realVocabSize: number | null;
  /** Real ids, ascending; compact id `i` is `ids[i]`. */
  readonly ids: readonly number[];
}

/** The encoding half of a tokenizer (structural; `Tokenizer` from `tokenizer.ts` fits). */
export interface IdEncoder {
  /**
   * @param text Text.
   * @param options `addSpecialTokens`: prepend `<bos>`.
   * @returns Real token ids.
   */
  encode(text: string, options?: { readonly addSpecialTokens?: boolean }): number[];
}

/** A tokenizer that can also decode (structural; `Tokenizer` fits). */
export interface IdCodec extends IdEncoder {
  /**
   * @param ids Real token ids.
   * @param options `skipSpecialTokens`: drop special tokens.
   * @returns Text.
   */
  decode(ids: readonly number[], options?: { readonly skipSpecialTokens?: boolean }): string;
}

/** Options of {@linkcode VocabMap.fromTexts}. */
export interface VocabFromTextsOptions {
  /** Real ids always included (default {@linkcode GEMMA3_SPECIAL_IDS}). */
  readonly specialIds?: readonly number[];
  /** Further texts encoded without special tokens (default {@linkcode DIGIT_TEXTS}). */
  readonly extraTexts?: readonly string[];
  /** Size of the real vocabulary, checked against every id and saved (default null). */
  readonly realVocabSize?: number | null;
}

/** What to do with a real id the map lacks. */
export type UnknownIdPolicy = "throw" | "unk";

function checkId(id: number, limit: number | null, what: string): void {
  if (!Number.isSafeInteger(id) || id < 0 || (limit !== null && id >= limit)) {
    throw new VocabMapError(
      `${what} must be an integer in [0, ${limit ?? "∞"}), got ${String(id)}`,
    );
  }
}

/**
 * Sorted real ids ↔ compact ids `0..size-1`.
 *
 * @example
 * ```ts
 * import { VocabMap } from "./vocab_map.ts";
 * const map = VocabMap.fromIds([106, 2, 9259, 2]);
 * if (map.size !== 3 || map.toCompact(9259) !== 2 || map.toReal(0) !== 2) throw new Error();
 * ```
 */
export class VocabMap {
  readonly #ids: Int32Array; // compact → real, ascending
  readonly #index: Map<number, number>; // real → compact
  readonly #realVocabSize: number | null;

  private constructor(ids: Int32Array, realVocabSize: number | null) {
    this.#ids = ids;
    this.#realVocabSize = realVocabSize;
    this.#index = new Map();
    ids.forEach((id, i) => this.#index.set(id, i));
  }

  /**
   * Builds a map from real ids (duplicates allowed, any order).
   *
   * @param ids Real token ids.
   * @param realVocabSize Real vocabulary size to check the ids against, or null.
   * @returns The map (ids sorted ascending).
   * @throws {VocabMapError} For a negative, fractional or out-of-vocabulary id, or no ids.
   */
  static fromIds(ids: Iterable<number>, realVocabSize: number | null = null): VocabMap {
    if (realVocabSize !== null) checkId(realVocabSize - 1, null, "realVocabSize - 1");
    const set = new Set<number>();
    for (const id of ids) {
      checkId(id, realVocabSize, "token id");
      set.add(id);
    }
    if (set.size === 0) throw new VocabMapError("a vocab map needs at least one id");
    const sorted = Int32Array.from(set).sort();
    return new VocabMap(sorted, realVocabSize);
  }

  /**
   * Builds the map of every id the encoder produces for `texts` (each encoded with special
   * tokens, so `<bos>` comes in), plus the special ids and the extra texts' ids.
   *
   * @param texts Corpus texts (prompts and targets, train and test).
   * @param encoder The real tokenizer.
   * @param options Special ids, extra texts, real vocabulary size.
   * @returns The map.
   * @example
   * ```ts
   * import { VocabMap } from "./vocab_map.ts";
   * const enc = { encode: (t: string) => [...t].map((c) => c.charCodeAt(0)) };
   * const map = VocabMap.fromTexts(["ab"], enc, { specialIds: [0], extraTexts: [] });
   * if (map.toJSON().ids.join() !== "0,97,98") throw new Error();
   * ```
   */
  static fromTexts(
    texts: Iterable<string>,
    encoder: IdEncoder,
    options: VocabFromTextsOptions = {},
  ): VocabMap {
    const ids: number[] = [...(options.specialIds ?? GEMMA3_SPECIAL_IDS)];
    for (const text of texts) ids.push(...encoder.encode(text));
    for (const text of options.extraTexts ?? DIGIT_TEXTS) {
      ids.push(...encoder.encode(text, { addSpecialTokens: false }));
    }
    return VocabMap.fromIds(ids, options.realVocabSize ?? null);
  }

  /**
   * Reads a saved map.
   *
   * @param json A {@linkcode VocabMapJson} object or its text.
   * @returns The map.
   * @throws {VocabMapError} Naming the malformed field, or for ids not strictly ascending.
   */
  static fromJSON(json: unknown): VocabMap {
    const v = typeof json === "string" ? JSON.parse(json) : json;
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      throw new VocabMapError("vocab map JSON must be an object");
    }
    const o = v as Record<string, unknown>;
    if (o.format !== "webtune.vocab_map" || o.version !== 1) {
      throw new VocabMapError(
        `format/version must be "webtune.vocab_map"/1, got ${JSON.stringify(o.format)}/` +
          JSON.stringify(o.version),
      );
    }
    const size = o.realVocabSize ?? null;
    if (size !== null && (typeof size !== "number" || !Number.isSafeInteger(size) || size < 1)) {
      throw new VocabMapError(`realVocabSize must be null or an integer >= 1, got ${size}`);
    }
    if (!Array.isArray(o.ids) || o.ids.length === 0) {
      throw new VocabMapError("ids must be a non-empty array of token ids");
    }
    const ids = o.ids as unknown[];
    ids.forEach((id, i) => {
      checkId(id as number, size as number | null, `ids[${i}]`);
      if (i > 0 && (id as number) <= (ids[i - 1] as number)) {
        throw new VocabMapError(`ids must be strictly ascending, ids[${i}] = ${id}`);
      }
    });
    return new VocabMap(Int32Array.from(ids as number[]), size as number | null);
  }

  /** Compact vocabulary size (the demo model's `vocabSize`). */
  get size(): number {
    return this.#ids.length;
  }

  /** The real vocabulary size given at build time, or null. */
  get realVocabSize(): number | null {
    return this.#realVocabSize;
  }

  /**
   * @param realId A real token id.
   * @returns Whether the map holds it.
   */
  has(realId: number): boolean {
    return this.#index.has(realId);
  }

  /**
   * @param realId A real token id.
   * @returns Its compact id.
   * @throws {VocabMapError} When the map lacks it.
   */
  toCompact(realId: number): number {
    const c = this.#index.get(realId);
    if (c === undefined) {
      throw new VocabMapError(`token id ${realId} is not in the vocab map (${this.size} ids)`);
    }
    return c;
  }

  /**
   * @param compactId A compact id in `[0, size)`.
   * @returns The real id.
   * @throws {VocabMapError} When out of range.
   */
  toReal(compactId: number): number {
    checkId(compactId, this.size, "compact id");
    return this.#ids[compactId];
  }

  /**
   * Maps real ids to compact ids.
   *
   * @param realIds Real ids.
   * @param onUnknown `"throw"` (default) or `"unk"`: map a missing id to `<unk>`'s compact id
   *   (real id `unkId`, which the map must hold).
   * @param unkId The real `<unk>` id (Gemma 3: 3).
   * @returns Compact ids.
   * @throws {VocabMapError} For a missing id under `"throw"`, or a missing `<unk>`.
   */
  toCompactIds(
    realIds: readonly number[],
    onUnknown: UnknownIdPolicy = "throw",
    unkId = 3,
  ): number[] {
    if (onUnknown === "throw") return realIds.map((id) => this.toCompact(id));
    const unk = this.toCompact(unkId);
    return realIds.map((id) => this.#index.get(id) ?? unk);
  }

  /**
   * Maps compact ids back to real ids.
   *
   * @param compactIds Compact ids.
   * @returns Real ids.
   * @throws {VocabMapError} For an id out of range.
   */
  toRealIds(compactIds: ArrayLike<number>): number[] {
    return Array.from(compactIds, (c) => this.toReal(c));
  }

  /** @returns The JSON form, for `vocab_map.json`. */
  toJSON(): VocabMapJson {
    return {
      format: "webtune.vocab_map",
      version: 1,
      realVocabSize: this.#realVocabSize,
      ids: Array.from(this.#ids),
    };
  }
}

/**
 * Wraps a real tokenizer so it speaks compact ids: `encode` maps the real ids through the map,
 * `decode` maps compact ids back and decodes with the real tokenizer. Pass the result wherever a
 * structural `{ encode }` tokenizer is taken (batching, chat template) for the demo model.
 *
 * @param codec The real tokenizer.
 * @param map The vocab map.
 * @param onUnknown How `encode` treats ids the map lacks (default `"throw"`).
 * @returns A tokenizer over compact ids.
 * @example
 * ```ts
 * import { compactCodec, VocabMap } from "./vocab_map.ts";
 * const real = {
 *   encode: (t: string) => [...t].map((c) => c.charCodeAt(0)),
 *   decode: (ids: readonly number[]) => String.fromCharCode(...ids),
 * };
 * const codec = compactCodec(real, VocabMap.fromIds([104, 105]));
 * if (codec.encode("hi").join() !== "0,1" || codec.decode([1, 0]) !== "ih") throw new Error();
 * ```
 */
export function compactCodec(
  codec: IdCodec,
  map: VocabMap,
  onUnknown: UnknownIdPolicy = "throw",
): IdCodec & { readonly vocabSize: number } {
  return {
    vocabSize: map.size,
    encode: (text, options) => map.toCompactIds(codec.encode(text, options), onUnknown),
    decode: (ids, options) => codec.decode(map.toRealIds(ids), options),
  };
}
