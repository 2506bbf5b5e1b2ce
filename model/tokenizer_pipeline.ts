/**
 * The non-model stages of a Hugging Face `tokenizer.json`: normalizer, pre-tokenizer,
 * post-processor and decoder, ported from the Rust `tokenizers` crate for the kinds Gemma-style
 * SentencePiece-BPE files use. Any other kind is rejected with a {@linkcode TokenizerError}
 * naming the field, so a file is never tokenized silently wrong.
 *
 * @module
 */

import { TokenizerError } from "./_tokenizer_error.ts";

/** Maps a piece of text to its normalized form. */
export type Normalizer = (text: string) => string;
/** Splits a normalized piece into words (empty words dropped). */
export type PreTokenizer = (text: string) => string[];
/** Turns token strings into text. */
export type Decoder = (tokens: string[]) => string;
/** Wraps the ids of one sequence with special tokens. */
export type PostProcessor = (ids: number[]) => number[];

type Json = Record<string, unknown>;

function asObject(value: unknown, field: string): Json {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TokenizerError(`${field}: expected an object, got ${JSON.stringify(value)}`);
  }
  return value as Json;
}

/** Reads `{ "String": "…" }`; regex patterns are not supported. */
function stringPattern(spec: Json, field: string): string {
  const pattern = asObject(spec.pattern, `${field}.pattern`);
  if (typeof pattern.String !== "string") {
    const kind = Object.keys(pattern)[0] ?? "none";
    throw new TokenizerError(`${field}.pattern: unsupported ${kind} pattern (only String)`);
  }
  return pattern.String;
}

/**
 * Builds the normalizer: null, `Replace` (string pattern), `Prepend`, or a `Sequence` of them.
 *
 * @param spec The `normalizer` value.
 * @param field Field name for error messages.
 * @returns The normalizer, or null when there is none.
 */
export function buildNormalizer(spec: unknown, field = "normalizer"): Normalizer | null {
  if (spec == null) return null;
  const s = asObject(spec, field);
  switch (s.type) {
    case "Replace": {
      const pattern = stringPattern(s, field);
      const content = String(s.content);
      if (pattern === "") return (text) => text;
      return (text) => text.replaceAll(pattern, content);
    }
    case "Prepend": {
      const prefix = String(s.prepend);
      return (text) => (text.length === 0 ? text : prefix + text);
    }
    case "Sequence": {
      if (!Array.isArray(s.normalizers)) {
        throw new TokenizerError(`${field}.normalizers: expected an array`);
      }
      const parts = s.normalizers
        .map((n, i) => buildNormalizer(n, `${field}.normalizers[${i}]`))
        .filter((n): n is Normalizer => n !== null);
      return (text) => parts.reduce((t, n) => n(t), text);
    }
    default:
      throw new TokenizerError(`${field}.type: unsupported ${JSON.stringify(s.type)}`);
  }
}

/**
 * Builds the pre-tokenizer: null, `Split` with a string pattern (any behavior, not inverted),
 * or a `Sequence` of them. Semantics of Rust `NormalizedString::split`.
 *
 * @param spec The `pre_tokenizer` value.
 * @param field Field name for error messages.
 * @returns The pre-tokenizer, or null when there is none.
 */
export function buildPreTokenizer(spec: unknown, field = "pre_tokenizer"): PreTokenizer | null {
  if (spec == null) return null;
  const s = asObject(spec, field);
  switch (s.type) {
    case "Split": {
      if (s.invert === true) throw new TokenizerError(`${field}.invert: true is unsupported`);
      const pattern = stringPattern(s, field);
      const behavior = String(s.behavior);
      if (
        !["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"].includes(
          behavior,
        )
      ) {
        throw new TokenizerError(`${field}.behavior: unsupported ${JSON.stringify(s.behavior)}`);
      }
      return (text) => splitOnString(text, pattern, behavior);
    }
    case "Sequence": {
      if (!Array.isArray(s.pretokenizers)) {
        throw new TokenizerError(`${field}.pretokenizers: expected an array`);
      }
      const parts = s.pretokenizers
        .map((p, i) => buildPreTokenizer(p, `${field}.pretokenizers[${i}]`))
        .filter((p): p is PreTokenizer => p !== null);
      return (text) => parts.reduce((words, p) => words.flatMap(p), [text]);
    }
    default:
      throw new TokenizerError(`${field}.type: unsupported ${JSON.stringify(s.type)}`);
  }
}

/**
 * Splits on every occurrence of `pattern` and applies a Rust `SplitDelimiterBehavior`.
 *
 * @param text Text to split.
 * @param pattern Non-empty literal delimiter ("" keeps the text whole).
 * @param behavior One of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous.
 * @returns The non-empty pieces.
 */
export function splitOnString(text: string, pattern: string, behavior: string): string[] {
  if (pattern === "" || !text.includes(pattern)) return text.length === 0 ? [] : [text];
  // Spans covering the text: [start, end, isMatch].
  const spans: [number, number, boolean][] = [];
  let prev = 0;
  for (let at = text.indexOf(pattern); at >= 0; at = text.indexOf(pattern, at + pattern.length)) {
    if (at > prev) spans.push([prev, at, false]);
    spans.push([at, at + pattern.length, true]);
    prev = at + pattern.length;
  }
  if (prev < text.length) spans.push([prev, text.length, false]);
  let out: [number, number][] = [];
  let previousMatch = false;
  switch (behavior) {
    case "Removed":
      out = spans.filter((s) => !s[2]).map((s) => [s[0], s[1]]);
      break;
    case "Isolated":
      out = spans.map((s) => [s[0], s[1]]);
      break;
    case "MergedWithPrevious":
      for (const [start, end, isMatch] of spans) {
        if (isMatch && !previousMatch && out.length > 0) out[out.length - 1][1] = end;
        else out.push([start, end]);
        previousMatch = isMatch;
      }
      break;
    case "MergedWithNext":
      for (let i = spans.length - 1; i >= 0; i--) {
        const [start, end, isMatch] = spans[i];
        if (isMatch && !previousMatch && out.length > 0) out[out.length - 1][0] = start;
        else out.push([start, end]);
        previousMatch = isMatch;
      }
      out.reverse();
      break;
    case "Contiguous":
      for (const [start, end, isMatch] of spans) {
        if (isMatch === previousMatch && out.length > 0) out[out.length - 1][1] = end;
        else out.push([start, end]);
        previousMatch = isMatch;
      }
      break;
  }
  return out.filter(([a, b]) => b > a).map(([a, b]) => text.slice(a, b));
}

/**
 * Builds the post-processor: null (no special tokens) or `TemplateProcessing` (single template).
 *
 * @param spec The `post_processor` value.
 * @param tokenId Resolves a special token's name for validation.
 * @returns A function that wraps one sequence's ids.
 */
export function buildPostProcessor(
  spec: unknown,
  tokenId: (token: string) => number | undefined,
): PostProcessor {
  const field = "post_processor";
  if (spec == null) return (ids) => ids;
  const s = asObject(spec, field);
  if (s.type !== "TemplateProcessing") {
    throw new TokenizerError(`${field}.type: unsupported ${JSON.stringify(s.type)}`);
  }
  if (!Array.isArray(s.single)) throw new TokenizerError(`${field}.single: expected an array`);
  const specials = asObject(s.special_tokens ?? {}, `${field}.special_tokens`);
  // Each piece: fixed ids, or null for the sequence itself.
  const pieces: (readonly number[] | null)[] = s.single.map((item, i) => {
    const piece = asObject(item, `${field}.single[${i}]`);
    if (piece.Sequence !== undefined) {
      const id = asObject(piece.Sequence, `${field}.single[${i}].Sequence`).id;
      if (id !== "A") throw new TokenizerError(`${field}.single[${i}]: sequence ${id}, expected A`);
      return null;
    }
    const name = asObject(piece.SpecialToken, `${field}.single[${i}].SpecialToken`).id as string;
    const entry = asObject(specials[name], `${field}.special_tokens[${JSON.stringify(name)}]`);
    const ids = entry.ids;
    if (!Array.isArray(ids) || ids.some((x) => typeof x !== "number")) {
      throw new TokenizerError(`${field}.special_tokens[${JSON.stringify(name)}].ids: bad ids`);
    }
    const tokens = Array.isArray(entry.tokens) ? entry.tokens : [];
    tokens.forEach((t, k) => {
      if (tokenId(String(t)) !== ids[k]) {
        throw new TokenizerError(`${field}.special_tokens: ${t} is not id ${ids[k]}`);
      }
    });
    return ids as number[];
  });
  return (ids) => {
    const out: number[] = [];
    for (const piece of pieces) {
      const src = piece ?? ids;
      for (let i = 0; i < src.length; i++) out.push(src[i]);
    }
    return out;
  };
}

/**
 * Builds the decoder: null (join with spaces, as Rust does), `Replace` (string pattern),
 * `ByteFallback`, `Fuse`, or a `Sequence` of them.
 *
 * @param spec The `decoder` value.
 * @returns The decoder.
 */
export function buildDecoder(spec: unknown): Decoder {
  if (spec == null) return (tokens) => tokens.join(" ");
  const chain = buildDecoderChain(spec, "decoder");
  return (tokens) => chain.reduce((t, step) => step(t), tokens).join("");
}

type DecodeStep = (tokens: string[]) => string[];

function buildDecoderChain(spec: unknown, field: string): DecodeStep[] {
  const s = asObject(spec, field);
  switch (s.type) {
    case "Sequence":
      if (!Array.isArray(s.decoders)) throw new TokenizerError(`${field}.decoders: expected array`);
      return s.decoders.flatMap((d, i) => buildDecoderChain(d, `${field}.decoders[${i}]`));
    case "Replace": {
      const pattern = stringPattern(s, field);
      const content = String(s.content);
      return [(tokens) => tokens.map((t) => (pattern === "" ? t : t.replaceAll(pattern, content)))];
    }
    case "ByteFallback":
      return [decodeByteFallback];
    case "Fuse":
      return [(tokens) => [tokens.join("")]];
    default:
      throw new TokenizerError(`${field}.type: unsupported ${JSON.stringify(s.type)}`);
  }
}

/**
 * subtle: Rust parses `token[3..5]` with `u8::from_str_radix`, which also accepts `+F`.
 * Two hex digits, or a plus and one.
 */
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2}|\+[0-9A-Fa-f])>$/;

/** Runs of `<0xNN>` tokens become their UTF-8 text, or one U+FFFD per byte if invalid. */
function decodeByteFallback(tokens: string[]): string[] {
  // subtle: ignoreBOM keeps a decoded U+FEFF; the default would drop a leading one.
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const out: string[] = [];
  let bytes: number[] = [];
  const flush = () => {
    if (bytes.length === 0) return;
    try {
      out.push(utf8.decode(new Uint8Array(bytes)));
    } catch {
      for (let i = 0; i < bytes.length; i++) out.push("\ufffd");
    }
    bytes = [];
  };
  for (const token of tokens) {
    const m = token.length === 6 ? BYTE_TOKEN.exec(token) : null;
    if (m !== null) bytes.push(parseInt(m[1], 16));
    else {
      flush();
      out.push(token);
    }
  }
  flush();
  return out;
}
