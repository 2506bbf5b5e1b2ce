import assert from "node:assert/strict";
import { TextStream } from "../model/text_stream.ts";

/** One byte per id; invalid or incomplete UTF-8 decodes to U+FFFD, as byte-fallback tokens do. */
const bytes = {
  decode: (ids: readonly number[]) => new TextDecoder().decode(Uint8Array.from(ids)),
};

Deno.test("TextStream holds back a multi-byte character until its last byte arrives", () => {
  const pieces: string[] = [];
  const stream = new TextStream(bytes, (text) => pieces.push(text));
  for (const id of [...new TextEncoder().encode("a€b")]) stream.push(id);
  stream.finish();
  assert.deepEqual(pieces, ["a", "€", "b"]);
  assert.equal(stream.tokens.length, 5);
});

Deno.test("TextStream.finish() writes an incomplete character as U+FFFD", () => {
  let out = "";
  const stream = new TextStream(bytes, (text) => out += text);
  stream.push(0x61);
  stream.push(0xe2);
  assert.equal(out, "a");
  stream.finish();
  assert.equal(out, "a\uFFFD");
});

Deno.test("TextStream starts a new line when the decoded text changes before the end", () => {
  // A decoder whose text for more ids is not an extension of the text for fewer.
  const decoder = { decode: (ids: readonly number[]) => (ids.length === 1 ? "ab" : "xy") };
  const pieces: string[] = [];
  const stream = new TextStream(decoder, (text) => pieces.push(text));
  stream.push(1);
  stream.push(2);
  assert.deepEqual(pieces, ["ab", "\nxy"]);
});
