/**
 * Verbatim matching of added tokens (`<start_of_turn>`, `\n`, `<unused7>`, …) inside text, as
 * the Rust `tokenizers` `AddedVocabulary` does with an Aho-Corasick automaton in
 * leftmost-longest mode: at the leftmost position where some token matches, the longest token
 * wins, and scanning resumes after it.
 *
 * @module
 */

/** One added token to match. */
export interface MatchToken {
  /** Exact text to find. */
  readonly content: string;
  /** Id emitted for it. */
  readonly id: number;
}

/** A trie over UTF-16 code units with a first-unit filter. */
export class AddedTokenMatcher {
  readonly #children: Map<number, number>[] = [new Map()];
  readonly #ids: number[] = [-1];
  readonly #firstUnit = new Uint8Array(65536); // 1 where some token starts with this unit

  /**
   * @param tokens Tokens to match; an empty content is ignored.
   */
  constructor(tokens: readonly MatchToken[]) {
    for (const { content, id } of tokens) {
      if (content.length === 0) continue;
      this.#firstUnit[content.charCodeAt(0)] = 1;
      let node = 0;
      for (let i = 0; i < content.length; i++) {
        const unit = content.charCodeAt(i);
        let child = this.#children[node].get(unit);
        if (child === undefined) {
          child = this.#ids.length;
          this.#children.push(new Map());
          this.#ids.push(-1);
          this.#children[node].set(unit, child);
        }
        node = child;
      }
      this.#ids[node] = id;
    }
  }

  /** True when there is nothing to match. */
  get isEmpty(): boolean {
    return this.#ids.length === 1;
  }

  /**
   * Splits `text` into runs of plain text and matched tokens, in order.
   *
   * @param text The text to scan.
   * @param onText Called with each non-empty run of text between matches.
   * @param onToken Called with the id of each match.
   */
  split(text: string, onText: (run: string) => void, onToken: (id: number) => void): void {
    const first = this.#firstUnit, children = this.#children, ids = this.#ids;
    let runStart = 0;
    let i = 0;
    while (i < text.length) {
      if (first[text.charCodeAt(i)] === 0) {
        i++;
        continue;
      }
      let node = 0, bestId = -1, bestEnd = -1;
      for (let j = i; j < text.length; j++) {
        const child = children[node].get(text.charCodeAt(j));
        if (child === undefined) break;
        node = child;
        if (ids[node] >= 0) {
          bestId = ids[node];
          bestEnd = j + 1;
        }
      }
      if (bestId < 0) {
        i++;
        continue;
      }
      if (i > runStart) onText(text.slice(runStart, i));
      onToken(bestId);
      i = runStart = bestEnd;
    }
    if (runStart < text.length) onText(runStart === 0 ? text : text.slice(runStart));
  }
}
