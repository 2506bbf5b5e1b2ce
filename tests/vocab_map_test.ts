import assert from "node:assert/strict";
import { loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
import {
  compactCodec,
  DIGIT_TEXTS,
  GEMMA3_SPECIAL_IDS,
  VocabMap,
  VocabMapError,
} from "../model/vocab_map.ts";
import { demoCorpusTexts, demoModelConfig, demoVocabMap, presetConfig } from "../rl/presets.ts";

const charCodec = {
  encode: (
    t: string,
    o?: { addSpecialTokens?: boolean },
  ) => [...(o?.addSpecialTokens === false ? [] : [2]), ...[...t].map((c) => c.charCodeAt(0))],
  decode: (ids: readonly number[]) => String.fromCharCode(...ids.filter((i) => i !== 2)),
};

Deno.test("VocabMap.fromIds() sorts, dedups and maps both ways", () => {
  const map = VocabMap.fromIds([9259, 106, 2, 106, 0]);
  assert.equal(map.size, 4);
  assert.deepEqual(map.toJSON().ids, [0, 2, 106, 9259]);
  assert.deepEqual(map.toCompactIds([2, 9259, 0]), [1, 3, 0]);
  assert.deepEqual(map.toRealIds([1, 3, 0]), [2, 9259, 0]);
  for (let c = 0; c < map.size; c++) assert.equal(map.toCompact(map.toReal(c)), c);
  assert.ok(map.has(106) && !map.has(105));
});

Deno.test("VocabMap rejects unknown ids, or maps them to <unk> when asked", () => {
  const map = VocabMap.fromIds([0, 3, 50]);
  assert.throws(() => map.toCompact(7), VocabMapError);
  assert.throws(() => map.toReal(3), VocabMapError);
  assert.throws(() => map.toReal(-1), VocabMapError);
  assert.deepEqual(map.toCompactIds([50, 7], "unk"), [2, 1]);
  assert.throws(() => VocabMap.fromIds([0, 1]).toCompactIds([9], "unk"), VocabMapError);
  assert.throws(() => VocabMap.fromIds([]), VocabMapError);
  assert.throws(() => VocabMap.fromIds([1.5]), VocabMapError);
  assert.throws(() => VocabMap.fromIds([10], 10), VocabMapError);
});

Deno.test("VocabMap.toJSON() round-trips and fromJSON() rejects malformed maps", () => {
  const map = VocabMap.fromIds([5, 1, 99], 262144);
  const json = JSON.stringify(map.toJSON());
  const back = VocabMap.fromJSON(json);
  assert.deepEqual(back.toJSON(), map.toJSON());
  assert.equal(back.realVocabSize, 262144);
  const bad = [
    { ...map.toJSON(), ids: [5, 1] },
    { ...map.toJSON(), ids: [1, 1] },
    { ...map.toJSON(), ids: [] },
    { ...map.toJSON(), ids: [1, 300000] },
    { ...map.toJSON(), format: "other" },
    [1, 2],
  ];
  for (const b of bad) assert.throws(() => VocabMap.fromJSON(b), VocabMapError, JSON.stringify(b));
});

Deno.test("VocabMap.fromTexts() adds special ids and digits to the texts' ids", () => {
  const map = VocabMap.fromTexts(["ab"], charCodec, { specialIds: [0, 1] });
  const digits = DIGIT_TEXTS.map((d) => d.charCodeAt(0));
  assert.deepEqual(map.toJSON().ids, [0, 1, 2, ...digits, 97, 98]);
});

Deno.test("compactCodec() encodes to compact ids and decodes through the real codec", () => {
  const map = VocabMap.fromTexts(["hello"], charCodec, { specialIds: [0, 3], extraTexts: [] });
  const codec = compactCodec(charCodec, map);
  const ids = codec.encode("hole");
  assert.ok(ids.every((i) => i >= 0 && i < map.size));
  assert.equal(codec.decode(ids), "hole");
  assert.equal(codec.vocabSize, map.size);
  assert.throws(() => codec.encode("x"), VocabMapError);
  assert.equal(compactCodec(charCodec, map, "unk").encode("x").length, 2);
});

Deno.test("demoVocabMap() covers the demo corpus through the real Gemma 3 tokenizer", async () => {
  const tok = await loadDefaultTokenizer();
  const demoData = presetConfig("demo").demoData;
  const map = demoVocabMap(demoData, tok);
  // Deterministic: built again, the same ids.
  assert.deepEqual(demoVocabMap(demoData, tok).toJSON(), map.toJSON());
  assert.ok(map.size > 100 && map.size < 1000, `size ${map.size}`);
  for (const id of GEMMA3_SPECIAL_IDS) assert.ok(map.has(id), `special ${id}`);
  for (const d of DIGIT_TEXTS) {
    for (const id of tok.encode(d, { addSpecialTokens: false })) assert.ok(map.has(id), d);
  }
  const codec = compactCodec(tok, map);
  const texts = demoCorpusTexts(demoData);
  assert.equal(texts.length, 2 * (demoData.trainSize + demoData.testSize));
  for (const text of texts) {
    const ids = codec.encode(text); // throws on an id outside the map
    assert.equal(codec.decode(ids), "<bos>" + text);
  }
  // An answer the model may produce decodes through the real tokenizer.
  const answer = "<reasoning>8 - 1 = 7</reasoning>\n<answer>7</answer><end_of_turn>";
  assert.equal(codec.decode(codec.encode(answer, { addSpecialTokens: false })), answer);
  const model = demoModelConfig(presetConfig("demo").model.demo!, map);
  assert.equal(model.vocabSize, map.size);
  assert.deepEqual(model.eosTokenIds, [map.toCompact(1), map.toCompact(106)]);
  assert.equal(model.bosTokenId, map.toCompact(2));
  assert.equal(model.padTokenId, 0);
  assert.equal(model.queryPreAttnScalar, 16);
  assert.deepEqual(model.layerTypes, [
    "sliding_attention",
    "full_attention",
    "sliding_attention",
    "full_attention",
  ]);
});
