/**
 * Loading side of the BPE model: the merge table, and the "crossing" merges that decide where
 * a long word may be cut into independently cached pieces (see `BpeModel.encodeWord`).
 *
 * @module
 */

import { TokenizerError } from "./_tokenizer_error.ts";
import { MergeTable } from "./_merge_table.ts";

/** `▁` (U+2581), the metaspace that Gemma's normalizer puts in place of `" "`. */
const METASPACE = 0x2581;
const SPACE = 0x20;

/** A merge result that contains `x▁` (x ≠ `▁`): it could join symbols across a word boundary. */
export interface CrossingToken {
  /** The merge result. */
  readonly token: string;
  /** Offset of the `▁` that follows a non-`▁` character. */
  readonly offset: number;
}

/**
 * Builds the merge table and lists the "crossing" merges: those joining a left part that ends in
 * a non-`▁` character with a right part that starts with `▁`. Any symbol spanning a cut before
 * such a `▁` is first formed by one of them, so they are all a cut needs to check.
 *
 * subtle: result ids are left unresolved (-1) and looked up on first use; resolving all 514,906
 * `a + b` strings at load would cost ~40% of the load time, and most merges never fire.
 *
 * @param merges `model.merges`: `[a, b]` pairs or legacy `"a b"` strings, by rank.
 * @param vocab `model.vocab`.
 * @returns The table and the crossing merges.
 */
export function buildMerges(
  merges: unknown,
  vocab: Map<string, number>,
): { table: MergeTable; crossing: CrossingToken[] } {
  if (!Array.isArray(merges)) throw new TokenizerError("model.merges: expected an array");
  const table = new MergeTable(merges.length);
  const crossing: CrossingToken[] = [];
  for (let rank = 0; rank < merges.length; rank++) {
    const entry = merges[rank];
    let a: string, b: string;
    if (Array.isArray(entry) && entry.length === 2) {
      a = entry[0];
      b = entry[1];
    } else if (typeof entry === "string" && entry.split(" ").length === 2) {
      [a, b] = entry.split(" ");
    } else {
      throw new TokenizerError(
        `model.merges[${rank}]: expected a pair, got ${JSON.stringify(entry)}`,
      );
    }
    const aId = vocab.get(a), bId = vocab.get(b);
    if (aId === undefined || bId === undefined) {
      throw new TokenizerError(
        `model.merges[${rank}]: ${JSON.stringify([a, b])} uses a token missing from model.vocab`,
      );
    }
    table.set(aId, bId, rank, -1); // subtle: a repeated pair keeps the later rank, as in Rust
    if (b.charCodeAt(0) === METASPACE && a.charCodeAt(a.length - 1) !== METASPACE) {
      crossing.push({ token: a + b, offset: a.length });
    }
  }
  return { table, crossing };
}

/**
 * Indexes crossing tokens by the code unit before their `▁`. Returns null (no word splitting)
 * when the cut could be unsound: no single-character `▁` token, or a crossing token that holds
 * a byte token or the unk token, whose text differs from the input it covers.
 *
 * @param vocab `model.vocab`.
 * @param crossing From {@linkcode buildMerges}.
 * @param unkToken `model.unk_token`.
 * @returns Crossing tokens by the code unit before their `▁`, or null.
 */
export function buildCrossingIndex(
  vocab: Map<string, number>,
  crossing: CrossingToken[],
  unkToken: string | null,
): Map<number, CrossingToken[]> | null {
  if (!vocab.has(String.fromCharCode(METASPACE))) return null;
  const index = new Map<number, CrossingToken[]>();
  for (const c of crossing) {
    if (c.token.includes("<0x") || (unkToken !== null && c.token.includes(unkToken))) return null;
    const before = c.token.charCodeAt(c.offset - 1);
    const list = index.get(before) ?? [];
    list.push(c);
    index.set(before, list);
  }
  return index;
}

/**
 * @param word Text being cut.
 * @param token A crossing token.
 * @param pos Where it would start in `word`.
 * @param spaces Read `" "` in `word` as `"▁"`.
 * @returns Whether `token` occurs in `word` at `pos`.
 */
export function matchesAt(word: string, token: string, pos: number, spaces: boolean): boolean {
  if (pos < 0 || pos + token.length > word.length) return false;
  for (let k = 0; k < token.length; k++) {
    let c = word.charCodeAt(pos + k);
    if (spaces && c === SPACE) c = METASPACE;
    if (c !== token.charCodeAt(k)) return false;
  }
  return true;
}
