import assert from "node:assert/strict";
import { DataOptionsError } from "../data/errors.ts";
import { mixSeed, SeededRandom } from "../base/random.ts";
import { BatchSampler, type BatchSamplerOptions } from "../data/batch_sampler.ts";
import {
  type Batch,
  BatchIterator,
  type BatchIteratorOptions,
  collate,
  type TokenEncoder,
  type TokenizedExample,
  tokenizePrompt,
  tokenizeSftExample,
  tokenizeSftExamples,
} from "../data/batching.ts";
import { generateDemoSet } from "../data/demo_set.ts";
import { toSftExample } from "../data/examples.ts";

const BOS = 2;
const EOS = 1;
const END_OF_TURN = 106;
const PAD = 0;

/** Char-level test tokenizer: id = code point + 200, `<bos>` when asked. */
const charTokenizer: TokenEncoder = {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[] {
    const ids = [...text].map((c) => c.codePointAt(0)! + 200);
    return (options?.addSpecialTokens ?? true) ? [BOS, ...ids] : ids;
  },
};

function seqs(lengths: number[]): TokenizedExample[] {
  return lengths.map((n, i) => ({
    inputIds: Array.from({ length: n }, (_, t) => 1000 * (i + 1) + t),
    promptLength: Math.min(n, 2),
  }));
}

Deno.test("SeededRandom is deterministic and mixSeed separates epochs", () => {
  const a = new SeededRandom(123);
  const b = new SeededRandom(123);
  const xs = Array.from({ length: 100 }, () => a.nextUint32());
  assert.deepEqual(xs, Array.from({ length: 100 }, () => b.nextUint32()));
  assert.equal(new Set(xs).size, 100);
  assert.notEqual(mixSeed(7, 0), mixSeed(7, 1));
  const perm = new SeededRandom(5).shuffle([0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual([...perm].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  const r = new SeededRandom(9);
  for (let i = 0; i < 1000; i++) {
    const v = r.int(-3, 3);
    assert.ok(v >= -3 && v <= 3 && Number.isInteger(v));
  }
});

Deno.test("tokenizeSftExample() puts <bos> on the prompt only and appends end ids", () => {
  const ex = tokenizeSftExample({ prompt: "ab", target: "c" }, charTokenizer, {
    eosId: [END_OF_TURN, EOS],
  })!;
  assert.deepEqual(ex.inputIds, [BOS, 297, 298, 299, END_OF_TURN, EOS]);
  assert.equal(ex.promptLength, 3);
  const noBos = tokenizeSftExample({ prompt: "ab", target: "c" }, charTokenizer, {
    eosId: EOS,
    addSpecialTokens: false,
  })!;
  assert.deepEqual(noBos.inputIds, [297, 298, 299, EOS]);
  assert.equal(noBos.promptLength, 2);
});

Deno.test("tokenizeSftExample() drops or truncates over maxLength", () => {
  const ex = { prompt: "abc", target: "defgh" }; // 4 prompt ids + 5 + eos = 10
  assert.equal(
    tokenizeSftExample(ex, charTokenizer, { eosId: EOS, maxLength: 10 })?.inputIds.length,
    10,
  );
  assert.equal(tokenizeSftExample(ex, charTokenizer, { eosId: EOS, maxLength: 9 }), null);
  const cut = tokenizeSftExample(ex, charTokenizer, {
    eosId: EOS,
    maxLength: 6,
    overflow: "truncate",
  })!;
  assert.deepEqual(cut.inputIds, [BOS, 297, 298, 299, 300, 301]);
  assert.equal(cut.promptLength, 4);
  assert.equal(
    tokenizeSftExample(ex, charTokenizer, { eosId: EOS, maxLength: 4, overflow: "truncate" }),
    null,
  );
  const many = tokenizeSftExamples([ex, { prompt: "a", target: "b" }], charTokenizer, {
    eosId: EOS,
    maxLength: 5,
  });
  assert.equal(many.dropped, 1);
  assert.deepEqual(many.sourceIndices, [1]);
  assert.throws(() => tokenizeSftExample(ex, charTokenizer, { eosId: -1 }), /eosId/);
  assert.throws(
    () => tokenizeSftExample(ex, charTokenizer, { eosId: 1, maxLength: 0 }),
    /maxLength/,
  );
});

Deno.test("collate() right-pads with masks, shifted targets and positions", () => {
  const b = collate([{ inputIds: [10, 11, 12, 13], promptLength: 2 }, {
    inputIds: [20, 21],
    promptLength: 1,
  }], { padId: PAD });
  assert.equal(b.batchSize, 2);
  assert.equal(b.seqLen, 4);
  assert.deepEqual([...b.inputIds], [10, 11, 12, 13, 20, 21, PAD, PAD]);
  assert.deepEqual([...b.attentionMask], [1, 1, 1, 1, 1, 1, 0, 0]);
  assert.deepEqual([...b.completionMask], [0, 0, 1, 1, 0, 1, 0, 0]);
  assert.deepEqual([...b.targetIds], [11, 12, 13, PAD, 21, PAD, PAD, PAD]);
  assert.deepEqual([...b.lossMask], [0, 1, 1, 0, 1, 0, 0, 0]);
  assert.deepEqual([...b.positionIds], [0, 1, 2, 3, 0, 1, 0, 0]);
  assert.deepEqual([...b.lengths], [4, 2]);
  assert.deepEqual([...b.promptLengths], [2, 1]);
});

Deno.test("collate() left-pads so every row ends in the last column", () => {
  const b = collate([{ inputIds: [10, 11, 12], promptLength: 3 }, {
    inputIds: [20],
    promptLength: 1,
  }], { padId: 9, padding: "left", padToMultipleOf: 4 });
  assert.equal(b.seqLen, 4);
  assert.deepEqual([...b.inputIds], [9, 10, 11, 12, 9, 9, 9, 20]);
  assert.deepEqual([...b.attentionMask], [0, 1, 1, 1, 0, 0, 0, 1]);
  assert.deepEqual([...b.positionIds], [0, 0, 1, 2, 0, 0, 0, 0]);
  assert.deepEqual([...b.completionMask], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.throws(() => collate([], { padId: 0 }), DataOptionsError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => collate(seqs([1]), { padId: 0, padding: "middle" as any }), /padding/);
  assert.throws(() => collate(seqs([1]), { padId: -1 }), /padId/);
});

Deno.test("collate() scores loss exactly on completion tokens", () => {
  const { train } = generateDemoSet({ seed: 1, trainSize: 16, testSize: 0 });
  const { sequences } = tokenizeSftExamples(train.map((r) => toSftExample(r)), charTokenizer, {
    eosId: [END_OF_TURN, EOS],
  });
  for (const padding of ["left", "right"] as const) {
    const b = collate(sequences, { padId: PAD, padding });
    let scored = 0;
    for (let row = 0; row < b.batchSize; row++) {
      const targets: number[] = [];
      for (let t = 0; t < b.seqLen; t++) {
        if (b.lossMask[row * b.seqLen + t] === 1) targets.push(b.targetIds[row * b.seqLen + t]);
      }
      const s = sequences[row];
      assert.deepEqual(targets, s.inputIds.slice(s.promptLength));
      assert.deepEqual(targets.slice(-2), [END_OF_TURN, EOS]);
      scored += targets.length;
    }
    const expected = sequences.reduce((n, s) => n + s.inputIds.length - s.promptLength, 0);
    assert.equal(scored, expected);
  }
});

Deno.test("tokenizePrompt() marks the whole prompt as prompt", () => {
  const p = tokenizePrompt("hi", charTokenizer);
  assert.deepEqual(p.inputIds, [BOS, 304, 305]);
  assert.equal(p.promptLength, 3);
});

function epochIndices(sampler: BatchSampler, epoch: number): number[] {
  return sampler.epochBatches(epoch).flat();
}

Deno.test("BatchSampler covers every item once per epoch, reshuffled per epoch", () => {
  const s = new BatchSampler(23, { batchSize: 5, seed: 4 });
  assert.equal(s.batchesPerEpoch, 5);
  for (const epoch of [0, 1, 2]) {
    assert.deepEqual([...epochIndices(s, epoch)].sort((a, b) => a - b), [...Array(23).keys()]);
  }
  assert.notDeepEqual(epochIndices(s, 0), epochIndices(s, 1));
  assert.deepEqual(
    epochIndices(new BatchSampler(23, { batchSize: 5, seed: 4 }), 1),
    epochIndices(s, 1),
  );
  assert.notDeepEqual(
    epochIndices(new BatchSampler(23, { batchSize: 5, seed: 5 }), 0),
    epochIndices(s, 0),
  );
  const ordered = new BatchSampler(7, { batchSize: 3, shuffle: false });
  assert.deepEqual(ordered.epochBatches(0), [[0, 1, 2], [3, 4, 5], [6]]);
  const dropped = new BatchSampler(7, { batchSize: 3, shuffle: false, dropLast: true });
  assert.deepEqual(dropped.epochBatches(3), [[0, 1, 2], [3, 4, 5]]);
});

function padding(batches: Batch[]): number {
  return batches.reduce(
    (n, b) => n + b.attentionMask.length - b.lengths.reduce((x, y) => x + y, 0),
    0,
  );
}

Deno.test("BatchIterator length buckets cut padding and still cover the epoch", () => {
  const rng = new SeededRandom(1);
  const data = seqs(Array.from({ length: 256 }, () => rng.int(3, 120)));
  const opts = { batchSize: 8, seed: 2, padId: PAD };
  const plain = [...new BatchIterator(data, opts)];
  const bucketed = [...new BatchIterator(data, { ...opts, bucketSize: 8 })];
  assert.equal(bucketed.length, 32);
  assert.deepEqual(bucketed.flatMap((b) => b.indices).sort((a, b) => a - b), [
    ...Array(256).keys(),
  ]);
  assert.ok(padding(bucketed) * 3 < padding(plain), `${padding(bucketed)} vs ${padding(plain)}`);
  // Batch order is shuffled, not longest-first.
  const firstLens = bucketed.map((b) => b.seqLen);
  assert.notDeepEqual(firstLens, [...firstLens].sort((a, b) => b - a));
});

function fingerprint(b: ReturnType<BatchIterator["next"]>): string {
  return `${b.epoch}/${b.index}/${b.indices.join(",")}/${b.inputIds.join(",")}/${
    b.lossMask.join(",")
  }`;
}

Deno.test("BatchIterator.restore() resumes the exact batch stream from any position", () => {
  const rng = new SeededRandom(3);
  const data = seqs(Array.from({ length: 37 }, () => rng.int(1, 30)));
  const variants: BatchIteratorOptions[] = [
    { batchSize: 4, seed: 11, padId: PAD },
    { batchSize: 4, seed: 11, padId: PAD, dropLast: true, padding: "left" },
    { batchSize: 3, seed: -5, padId: PAD, bucketSize: 4 },
    { batchSize: 5, padId: PAD, shuffle: false },
  ];
  for (const options of variants) {
    const reference = new BatchIterator(data, options);
    const perEpoch = reference.batchesPerEpoch;
    const stream = Array.from({ length: perEpoch * 3 + 2 }, () => fingerprint(reference.next()));
    for (const k of [0, 1, perEpoch - 1, perEpoch, perEpoch + 2, 2 * perEpoch + 1]) {
      const it = new BatchIterator(data, options);
      for (let i = 0; i < k; i++) it.next();
      const saved = JSON.parse(JSON.stringify(it.state()));
      assert.deepEqual(Object.keys(saved).sort(), ["epoch", "index", "seed"]);
      const resumed = BatchIterator.restore(data, { ...options, seed: undefined }, saved);
      const rest = Array.from({ length: stream.length - k }, () => fingerprint(resumed.next()));
      assert.deepEqual(rest, stream.slice(k), `resume at ${k} with ${JSON.stringify(options)}`);
    }
  }
});

Deno.test("BatchIterator state rolls over epochs and iteration stops at the epoch end", () => {
  const it = new BatchIterator(seqs([1, 2, 3, 4, 5]), { batchSize: 2, seed: 1, padId: PAD });
  assert.deepEqual(it.state(), { epoch: 0, index: 0, seed: 1 });
  const first = [...it];
  assert.equal(first.length, 3);
  assert.deepEqual(first.map((b) => b.index), [0, 1, 2]);
  assert.deepEqual(it.state(), { epoch: 1, index: 0, seed: 1 });
  assert.equal(it.next().epoch, 1);
  const atEnd = new BatchIterator(seqs([1, 2, 3, 4, 5]), {
    batchSize: 2,
    padId: PAD,
    state: { epoch: 0, index: 3, seed: 1 },
  });
  assert.deepEqual(atEnd.state(), { epoch: 1, index: 0, seed: 1 });
});

Deno.test("BatchSampler and BatchIterator validate options, naming the field", () => {
  const base: BatchSamplerOptions = { batchSize: 2, seed: 1 };
  assert.throws(() => new BatchSampler(0, base), /datasetSize/);
  assert.throws(() => new BatchSampler(4, { batchSize: 0 }), /batchSize/);
  assert.throws(() => new BatchSampler(4, { batchSize: 5, dropLast: true }), /batchSize/);
  assert.throws(() => new BatchSampler(4, { batchSize: 2, bucketSize: 2 }), /lengths/);
  assert.throws(
    () => new BatchSampler(4, { ...base, state: { epoch: 0, index: 0, seed: 2 } }),
    /state\.seed/,
  );
  assert.throws(
    () => new BatchSampler(4, { batchSize: 2, state: { epoch: 0, index: 3, seed: 2 } }),
    /state\.index/,
  );
  assert.throws(
    () => new BatchSampler(4, { batchSize: 2, state: { epoch: -1, index: 0, seed: 2 } }),
    /state\.epoch/,
  );
  assert.throws(() => new BatchIterator(seqs([1]), { batchSize: 1, padId: 1.5 }), /padId/);
});
