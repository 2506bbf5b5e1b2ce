/**
 * The error type of the tokenizer modules (kept in its own file so private helpers can throw it
 * without importing `tokenizer.ts`).
 *
 * @module
 */

/**
 * Thrown when a `tokenizer.json` is malformed or uses a feature this port does not implement,
 * or when encoding meets a character it cannot represent. The message names the offending
 * field, e.g. `normalizer.type: unsupported "NFKC"`.
 */
export class TokenizerError extends Error {
  /**
   * @param message What was expected and what was found.
   */
  constructor(message: string) {
    super(message);
    this.name = "TokenizerError";
  }
}
