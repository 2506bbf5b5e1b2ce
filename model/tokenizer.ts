/**
 * A TypeScript port of the Hugging Face `tokenizers` pipeline for Gemma 3's `tokenizer.json`
 * (BPE with byte fallback), id-exact with the Rust library. Runs in the browser: build it with
 * {@linkcode Tokenizer.fromJSON}; {@linkcode Tokenizer.fromFile} reads a file first.
 *
 * Pipeline of `encode`: added tokens are matched verbatim in the raw text (leftmost-longest);
 * the text between them is normalized (`" "` → `"▁"`), pre-tokenized and BPE-encoded; the
 * post-processor prepends `<bos>`.
 *
 * @module
 */

import { AddedTokenMatcher, type MatchToken } from "./_added_tokens.ts";
import { BpeModel } from "./_bpe.ts";
import { TokenizerError } from "./_tokenizer_error.ts";
import {
  buildDecoder,
  buildNormalizer,
  buildPostProcessor,
  buildPreTokenizer,
  type Decoder,
  type Normalizer,
  type PostProcessor,
  type PreTokenizer,
} from "./tokenizer_pipeline.ts";

export { TokenizerError };

/** Options of {@linkcode Tokenizer.encode}. */
export interface EncodeOptions {
  /** Apply the post-processor (Gemma: prepend `<bos>`). Default true, as in HF. */
  readonly addSpecialTokens?: boolean;
}

/** Options of {@linkcode Tokenizer.decode}. */
export interface DecodeOptions {
  /** Drop tokens flagged `special` in `added_tokens` (`<bos>`, `<end_of_turn>`, …). Default false. */
  readonly skipSpecialTokens?: boolean;
}

/** Options of {@linkcode Tokenizer.fromFile}. */
export interface FromFileOptions {
  /** Reads a text file; defaults to `Deno.readTextFile`, or `fetch` where Deno is absent. */
  readonly readTextFile?: (path: string | URL) => Promise<string>;
}

/** An entry of `added_tokens` in `tokenizer.json`. */
export interface AddedToken {
  /** Token id. */
  readonly id: number;
  /** Exact text of the token. */
  readonly content: string;
  /** Whether `skipSpecialTokens` removes it when decoding. */
  readonly special: boolean;
}

/** Gemma 3 tokenizer (any `tokenizer.json` of the same supported kinds). */
export class Tokenizer {
  readonly #model: BpeModel;
  readonly #normalize: Normalizer | null;
  readonly #preTokenize: PreTokenizer | null;
  readonly #postProcess: PostProcessor;
  readonly #decode: Decoder;
  readonly #rawAdded: AddedTokenMatcher; // added tokens with normalized: false
  readonly #normalizedAdded: AddedTokenMatcher; // added tokens with normalized: true
  readonly #idToToken: string[];
  readonly #addedIds: Map<string, number>;
  readonly #special: Set<string>;
  /** Normalize + pre-tokenize is exactly `" "` → `"▁"` (Gemma): let the BPE model do it. */
  readonly #spaceToMetaspaceOnly: boolean;

  private constructor(json: Record<string, unknown>) {
    this.#model = BpeModel.fromJSON(objectField(json, "model"));
    this.#normalize = buildNormalizer(json.normalizer);
    this.#preTokenize = buildPreTokenizer(json.pre_tokenizer);
    this.#decode = buildDecoder(json.decoder);
    const added = parseAddedTokens(json.added_tokens);
    this.#addedIds = new Map(added.map((t) => [t.content, t.id]));
    this.#special = new Set(added.filter((t) => t.special).map((t) => t.content));
    const raw: MatchToken[] = [], normalized: MatchToken[] = [];
    for (const t of added) {
      if (!t.normalized) raw.push(t);
      else normalized.push({ id: t.id, content: this.#normalize?.(t.content) ?? t.content });
    }
    this.#rawAdded = new AddedTokenMatcher(raw);
    this.#normalizedAdded = new AddedTokenMatcher(normalized);
    this.#idToToken = this.#model.idToToken.slice();
    for (const t of added) this.#idToToken[t.id] = t.content;
    this.#postProcess = buildPostProcessor(json.post_processor, (t) => this.tokenToId(t));
    this.#spaceToMetaspaceOnly = isSpaceToMetaspaceOnly(json) && this.#normalizedAdded.isEmpty;
  }

  /**
   * Builds a tokenizer from the contents of a `tokenizer.json`.
   *
   * @param json The parsed object, or the JSON text.
   * @returns The tokenizer.
   * @throws {TokenizerError} On a malformed file or an unsupported model / normalizer /
   *   pre-tokenizer / post-processor / decoder kind (the message names the field).
   * @example
   * ```ts ignore
   * import { Tokenizer } from "./tokenizer.ts";
   * const json = await (await fetch("/tokenizer.json")).json();
   * const tok = Tokenizer.fromJSON(json);
   * tok.encode("Hello"); // [2, 9259]
   * ```
   */
  static fromJSON(json: unknown): Tokenizer {
    const parsed = typeof json === "string" ? JSON.parse(json) : json;
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new TokenizerError("tokenizer.json: expected a JSON object");
    }
    return new Tokenizer(parsed as Record<string, unknown>);
  }

  /**
   * Reads and builds a tokenizer from a `tokenizer.json` file.
   *
   * @param path Path or URL of the file.
   * @param options An optional file reader (for runtimes other than Deno and browsers).
   * @returns The tokenizer.
   * @example
   * ```ts ignore
   * import { Tokenizer } from "./tokenizer.ts";
   * const tok = await Tokenizer.fromFile("models/gemma-3-1b-it/tokenizer.json");
   * tok.decode(tok.encode("Hi there"), { skipSpecialTokens: true }); // "Hi there"
   * ```
   */
  static async fromFile(path: string | URL, options: FromFileOptions = {}): Promise<Tokenizer> {
    const read = options.readTextFile ?? defaultReadTextFile;
    return Tokenizer.fromJSON(JSON.parse(await read(path)));
  }

  /** Number of ids, added tokens included (max id + 1; 262145 for Gemma 3, above the 1B embedding). */
  get vocabSize(): number {
    return this.#idToToken.length;
  }

  /** Id of `<bos>` (2 for Gemma 3). */
  get bosId(): number {
    return this.#requireId("<bos>");
  }

  /** Id of `<eos>` (1 for Gemma 3). */
  get eosId(): number {
    return this.#requireId("<eos>");
  }

  /** Id of `<pad>` (0 for Gemma 3). */
  get padId(): number {
    return this.#requireId("<pad>");
  }

  /** Id of `<unk>` (3 for Gemma 3). */
  get unkId(): number {
    return this.#requireId("<unk>");
  }

  /** Id of `<start_of_turn>` (105 for Gemma 3). */
  get startOfTurnId(): number {
    return this.#requireId("<start_of_turn>");
  }

  /** Id of `<end_of_turn>` (106 for Gemma 3), the end of a chat model's turn. */
  get endOfTurnId(): number {
    return this.#requireId("<end_of_turn>");
  }

  /**
   * Encodes text to token ids.
   *
   * @param text Any string; added tokens written in it (`<start_of_turn>`) map to their ids.
   * @param options `addSpecialTokens` (default true) prepends `<bos>`.
   * @returns The ids.
   * @example
   * ```ts ignore
   * tok.encode("Hello, my dog is cute", { addSpecialTokens: false });
   * // [9259, 236764, 1041, 4799, 563, 12864]
   * ```
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    const onToken = (id: number) => ids.push(id);
    if (this.#spaceToMetaspaceOnly) {
      this.#rawAdded.split(text, (run) => this.#model.encodeWord(run, ids, true), onToken);
      return (options.addSpecialTokens ?? true) ? this.#postProcess(ids) : ids;
    }
    this.#rawAdded.split(text, (run) => {
      const normalized = this.#normalize === null ? run : this.#normalize(run);
      if (this.#normalizedAdded.isEmpty) this.#encodeNormalized(normalized, ids);
      else this.#normalizedAdded.split(normalized, (r) => this.#encodeNormalized(r, ids), onToken);
    }, onToken);
    return (options.addSpecialTokens ?? true) ? this.#postProcess(ids) : ids;
  }

  /**
   * Decodes ids to text; unknown ids are dropped, as in HF.
   *
   * @param ids Token ids.
   * @param options `skipSpecialTokens` (default false) drops special tokens.
   * @returns The text.
   * @example
   * ```ts ignore
   * tok.decode([2, 9259]); // "<bos>Hello"
   * tok.decode([2, 9259], { skipSpecialTokens: true }); // "Hello"
   * ```
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? false;
    const tokens: string[] = [];
    for (const id of ids) {
      const token = this.#idToToken[id];
      if (token === undefined || (skip && this.#special.has(token))) continue;
      tokens.push(token);
    }
    return this.#decode(tokens);
  }

  /**
   * @param id A token id.
   * @returns Its token string (`"▁Hello"`, `"<0x0A>"`, `"<bos>"`), or undefined.
   */
  idToToken(id: number): string | undefined {
    return this.#idToToken[id];
  }

  /**
   * @param token A token string; added tokens take precedence over the model vocabulary.
   * @returns Its id, or undefined.
   */
  tokenToId(token: string): number | undefined {
    return this.#addedIds.get(token) ?? this.#model.vocab.get(token);
  }

  /**
   * @param id A token id.
   * @returns Whether `skipSpecialTokens` would drop it.
   */
  isSpecialId(id: number): boolean {
    const token = this.#idToToken[id];
    return token !== undefined && this.#special.has(token);
  }

  /**
   * Empties the cache of encoded words (up to 100,000 short pieces; it also clears itself when
   * full). For memory, or for timing a cold encode.
   */
  clearCache(): void {
    this.#model.clearCache();
  }

  #encodeNormalized(text: string, out: number[]): void {
    if (this.#preTokenize === null) this.#model.encodeWord(text, out);
    else for (const word of this.#preTokenize(text)) this.#model.encodeWord(word, out);
  }

  #requireId(token: string): number {
    const id = this.tokenToId(token);
    if (id === undefined) throw new TokenizerError(`vocab: no ${token} token`);
    return id;
  }
}

interface ParsedAddedToken extends AddedToken {
  readonly normalized: boolean;
}

/**
 * True for Gemma's normalizer `Replace(" " → "▁")` followed by nothing or a `Split` on `" "`,
 * which then never matches: the whole stage is `text.replaceAll(" ", "▁")`.
 */
function isSpaceToMetaspaceOnly(json: Record<string, unknown>): boolean {
  const n = json.normalizer as Record<string, Record<string, unknown>> | null | undefined;
  const p = json.pre_tokenizer as Record<string, Record<string, unknown>> | null | undefined;
  const normalizerOk = n?.type as unknown === "Replace" && n?.pattern?.String === " " &&
    n?.content as unknown === "\u2581";
  const preTokenizerOk = p == null ||
    (p.type as unknown === "Split" && p.pattern?.String === " " && p.invert as unknown !== true);
  return normalizerOk && preTokenizerOk;
}

function objectField(json: Record<string, unknown>, field: string): Record<string, unknown> {
  const value = json[field];
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TokenizerError(`${field}: expected an object`);
  }
  return value as Record<string, unknown>;
}

function parseAddedTokens(value: unknown): ParsedAddedToken[] {
  if (value == null) return [];
  if (!Array.isArray(value)) throw new TokenizerError("added_tokens: expected an array");
  return value.map((entry, i) => {
    const field = `added_tokens[${i}]`;
    const t = entry as Record<string, unknown>;
    if (typeof t?.content !== "string" || typeof t.id !== "number") {
      throw new TokenizerError(`${field}: expected { id: number, content: string }`);
    }
    // These change how a match is cut out of the text; Gemma uses none of them.
    for (const flag of ["single_word", "lstrip", "rstrip"]) {
      if (t[flag] === true) throw new TokenizerError(`${field}.${flag}: true is unsupported`);
    }
    return {
      id: t.id,
      content: t.content,
      special: t.special === true,
      normalized: t.normalized === true,
    };
  });
}

/** Reads a file with Deno where present, else with `fetch` (browsers: URLs only). */
function defaultReadTextFile(path: string | URL): Promise<string> {
  // subtle: guarded lookup so this module still loads in a browser.
  const deno = (globalThis as { Deno?: { readTextFile(p: string | URL): Promise<string> } }).Deno;
  if (deno !== undefined) return deno.readTextFile(path);
  return fetch(path).then((r) => {
    if (!r.ok) throw new TokenizerError(`fromFile: ${path}: HTTP ${r.status}`);
    return r.text();
  });
}
