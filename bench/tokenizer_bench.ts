/**
 * Tokenizer load time and encode throughput on GSM8K train text (questions + answers), side by
 * side with `npm:@huggingface/tokenizers@0.2.0` on the same Gemma 3 `tokenizer.json`.
 *
 * Run: `deno bench -A bench/tokenizer_bench.ts` (about a minute). "Cold" empties each side's
 * word cache before the pass; "warm" re-encodes text it has just seen. Prints a one-shot MB/s summary
 * first, then Deno's per-group comparison.
 *
 * @module
 */

import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { Tokenizer } from "../model/tokenizer.ts";
import { defaultTokenizerFileUrl } from "../model/tokenizer_fs.ts";

const TRAIN_PATH = Deno.env.get("WEBTUNE_GSM8K_TRAIN") ??
  new URL("../../shared/data/gsm8k/train.jsonl", import.meta.url).pathname;
/** Records in the slice that both tokenizers encode (HF needs ~1 s per pass for 1000). */
const SLICE_RECORDS = 1000;

const jsonText = await Deno.readTextFile(defaultTokenizerFileUrl());
const config = JSON.parse(
  await Deno.readTextFile(defaultTokenizerFileUrl("tokenizer_config.json")),
);
const records = (await Deno.readTextFile(TRAIN_PATH)).trim().split("\n").map((l) => JSON.parse(l));
const allTexts: string[] = records.flatMap((r) => [r.question, r.answer]);
const sliceTexts = allTexts.slice(0, 2 * SLICE_RECORDS);
const utf8Bytes = (texts: string[]) =>
  texts.reduce((n, t) => n + new TextEncoder().encode(t).length, 0);
const sliceMB = utf8Bytes(sliceTexts) / 1e6;
const allMB = utf8Bytes(allTexts) / 1e6;

const ours = Tokenizer.fromJSON(JSON.parse(jsonText));
const theirs = new HfTokenizer(JSON.parse(jsonText), config);
/** HF's BPE keeps an LRU cache (10,000 chunks under 256 characters); empty it for cold runs. */
const clearTheirs = () => (theirs.model as unknown as { clear_cache(): void }).clear_cache();

function encodeOurs(texts: string[]): number {
  let n = 0;
  for (const t of texts) n += ours.encode(t, { addSpecialTokens: false }).length;
  return n;
}
function encodeTheirs(texts: string[]): number {
  let n = 0;
  for (const t of texts) n += theirs.encode(t, { add_special_tokens: false }).ids.length;
  return n;
}

// One-shot summary (also checks both give the same ids on the slice).
{
  for (const t of sliceTexts.slice(0, 200)) {
    const a = ours.encode(t).join(), b = theirs.encode(t).ids.join();
    if (a !== b) throw new Error(`tokenizers disagree on ${JSON.stringify(t)}`);
  }
  const time = (f: () => unknown) => {
    const t0 = performance.now();
    f();
    return (performance.now() - t0) / 1000;
  };
  const loadOurs = time(() => Tokenizer.fromJSON(JSON.parse(jsonText)));
  const loadTheirs = time(() => new HfTokenizer(JSON.parse(jsonText), config));
  encodeTheirs(sliceTexts); // JIT warm-up of both
  encodeOurs(sliceTexts);
  ours.clearCache();
  clearTheirs();
  const cold = time(() => encodeOurs(sliceTexts));
  const hfCold = time(() => encodeTheirs(sliceTexts));
  const warm = time(() => encodeOurs(sliceTexts));
  const hfWarm = time(() => encodeTheirs(sliceTexts));
  const mbs = (s: number) => (sliceMB / s).toFixed(2);
  console.log(
    `load (JSON.parse + build): webtune ${loadOurs.toFixed(2)} s, HF ${loadTheirs.toFixed(2)} s\n` +
      `encode ${sliceMB.toFixed(2)} MB GSM8K train, MB/s cold | warm cache: ` +
      `webtune ${mbs(cold)} | ${mbs(warm)}, HF ${mbs(hfCold)} | ${mbs(hfWarm)}; ` +
      `ratio ${(hfCold / cold).toFixed(1)}x | ${(hfWarm / warm).toFixed(1)}x`,
  );
}

Deno.bench({
  name: "load: webtune Tokenizer.fromJSON (parse + build)",
  group: "load",
  baseline: true,
  n: 3,
  warmup: 1,
  fn: () => {
    Tokenizer.fromJSON(JSON.parse(jsonText));
  },
});

Deno.bench({
  name: "load: @huggingface/tokenizers 0.2.0 (parse + build)",
  group: "load",
  n: 3,
  warmup: 1,
  fn: () => {
    new HfTokenizer(JSON.parse(jsonText), config);
  },
});

Deno.bench({
  name: `encode ${sliceMB.toFixed(2)} MB: webtune, warm word cache`,
  group: "encode",
  baseline: true,
  n: 10,
  warmup: 1,
  fn: () => {
    encodeOurs(sliceTexts);
  },
});

Deno.bench({
  name: `encode ${sliceMB.toFixed(2)} MB: webtune, cold word cache`,
  group: "encode",
  n: 10,
  warmup: 1,
  fn: (b) => {
    ours.clearCache();
    b.start();
    encodeOurs(sliceTexts);
    b.end();
  },
});

Deno.bench({
  name: `encode ${sliceMB.toFixed(2)} MB: @huggingface/tokenizers 0.2.0, warm cache`,
  group: "encode",
  n: 3,
  warmup: 1,
  fn: () => {
    encodeTheirs(sliceTexts);
  },
});

Deno.bench({
  name: `encode ${sliceMB.toFixed(2)} MB: @huggingface/tokenizers 0.2.0, cold cache`,
  group: "encode",
  n: 3,
  warmup: 1,
  fn: (b) => {
    clearTheirs();
    b.start();
    encodeTheirs(sliceTexts);
    b.end();
  },
});

Deno.bench({
  name: `encode all GSM8K train (${allMB.toFixed(2)} MB): webtune, cold word cache`,
  group: "encode-all",
  n: 5,
  warmup: 1,
  fn: (b) => {
    ours.clearCache();
    b.start();
    encodeOurs(allTexts);
    b.end();
  },
});
