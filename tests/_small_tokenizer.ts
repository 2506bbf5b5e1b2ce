/**
 * Test helper: Gemma 3's tokenizer cut down to a small model's vocabulary (ids below `vocabSize`:
 * the special and turn tokens, the 256 byte-fallback tokens and a few merges), so real prompt
 * text can go through a tiny fixture model. Same pipeline as the real tokenizer; text outside
 * the kept pieces falls back to bytes.
 *
 * @module
 */

import { joinPath } from "../base/atomic_fs.ts";
import { Tokenizer } from "../model/tokenizer.ts";
import { defaultTokenizerFileUrl } from "../model/tokenizer_fs.ts";

/**
 * The default `tokenizer.json` with every id ≥ `vocabSize` removed.
 *
 * @param vocabSize Ids kept: `[0, vocabSize)`.
 * @returns The JSON object.
 */
export async function smallGemmaTokenizerJson(vocabSize: number): Promise<Record<string, unknown>> {
  const json = JSON.parse(await Deno.readTextFile(defaultTokenizerFileUrl()));
  const vocab: Record<string, number> = {};
  for (const [piece, id] of Object.entries(json.model.vocab as Record<string, number>)) {
    if (id < vocabSize) vocab[piece] = id;
  }
  const merges = (json.model.merges as [string, string][]).filter(([a, b]) =>
    a in vocab && b in vocab && (a + b) in vocab
  );
  return {
    ...json,
    added_tokens: (json.added_tokens as { id: number }[]).filter((t) => t.id < vocabSize),
    model: { ...json.model, vocab, merges },
  };
}

/** @returns A {@linkcode Tokenizer} over ids `[0, vocabSize)` (see the module doc). */
export async function smallGemmaTokenizer(vocabSize: number): Promise<Tokenizer> {
  return Tokenizer.fromJSON(await smallGemmaTokenizerJson(vocabSize));
}

/**
 * Makes a model folder: the fixture's `config.json` and `model.safetensors` (copied) plus the
 * cut-down `tokenizer.json`.
 *
 * @param fixture Fixture model folder.
 * @param dir Folder to fill (created).
 */
export async function writeSmallModelDir(fixture: string, dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const name of ["config.json", "model.safetensors"]) {
    await Deno.copyFile(joinPath(fixture, name), joinPath(dir, name));
  }
  const config = JSON.parse(await Deno.readTextFile(joinPath(fixture, "config.json")));
  const json = await smallGemmaTokenizerJson(config.vocab_size);
  await Deno.writeTextFile(joinPath(dir, "tokenizer.json"), JSON.stringify(json));
}
