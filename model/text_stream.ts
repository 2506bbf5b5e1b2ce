/**
 * Text of a generation as its tokens arrive: decodes the ids so far and hands on only the new
 * characters, holding back a multi-byte character until all its byte tokens are in.
 *
 * @module
 */

/** What {@linkcode TextStream} needs from a tokenizer (`Tokenizer` fits). */
export interface StreamDecoder {
  /** @returns The text of `ids` (without special tokens when `skipSpecialTokens`). */
  decode(ids: readonly number[], options?: { readonly skipSpecialTokens?: boolean }): string;
}

/**
 * Streams a completion's text: `push` each generated id (e.g. from `generate`'s `onToken`),
 * `finish` at the end; `write` receives the new text (special tokens skipped).
 *
 * @example
 * ```ts
 * import { TextStream } from "./text_stream.ts";
 * const decoder = { decode: (ids: readonly number[]) => String.fromCharCode(...ids) };
 * let out = "";
 * const stream = new TextStream(decoder, (text) => out += text);
 * for (const id of [72, 105]) stream.push(id);
 * stream.finish();
 * if (out !== "Hi" || stream.tokens.length !== 2) throw new Error(out);
 * ```
 */
export class TextStream {
  readonly #decoder: StreamDecoder;
  readonly #write: (text: string) => void;
  readonly #ids: number[] = [];
  #printed = "";

  /**
   * @param decoder Decodes ids (the model's tokenizer).
   * @param write Receives each piece of new text.
   */
  constructor(decoder: StreamDecoder, write: (text: string) => void) {
    this.#decoder = decoder;
    this.#write = write;
  }

  /** The ids pushed so far. */
  get tokens(): readonly number[] {
    return this.#ids;
  }

  /**
   * Adds one generated id and writes the text it completes.
   *
   * @param id A token id.
   */
  push(id: number): void {
    this.#ids.push(id);
    this.#flush(false);
  }

  /** Writes what is held back (an incomplete character decodes to U+FFFD). */
  finish(): void {
    this.#flush(true);
  }

  #flush(final: boolean): void {
    const text = this.#decoder.decode(this.#ids, { skipSpecialTokens: true });
    // subtle: a multi-byte character split over byte tokens decodes to U+FFFD until complete.
    if (!final && text.endsWith("\uFFFD")) return;
    const fresh = text.startsWith(this.#printed) ? text.slice(this.#printed.length) : `\n${text}`;
    this.#printed = text;
    if (fresh) this.#write(fresh);
  }
}
