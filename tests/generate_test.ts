import assert from "node:assert/strict";
import { sample, SamplingOptionsError } from "../kernels/sampling.ts";
import { Tensor } from "../kernels/tensor.ts";
import type { Gemma3 } from "../model/gemma3.ts";
import {
  DecodeSession,
  DecodeSessionError,
  GenerateOptionsError,
  READBACK_EVERY,
} from "../model/generate.ts";
import { KvCache, kvCacheSlots } from "../model/kv_cache.ts";
import { openSafetensors } from "../model/safetensors_fs.ts";
import { decodeFloat32 } from "../model/safetensors_dtype.ts";
import { assertClose, countReadbacks, FIXTURE, fixtureModel as model } from "./_helpers.ts";

interface Greedy {
  prompt_ids: number[];
  generated_ids: number[];
}

async function greedyFixture(): Promise<Greedy> {
  return JSON.parse(await Deno.readTextFile(`${FIXTURE}/greedy.json`));
}

/** Three prompts of different lengths from the fixture (one longer than the window). */
async function threePrompts(m: Gemma3): Promise<number[][]> {
  const g = await greedyFixture();
  const forward = JSON.parse(await Deno.readTextFile(`${FIXTURE}/forward.json`));
  const longest: number[] = forward.sequences.map((s: { input_ids: number[] }) => s.input_ids)
    .reduce((a: number[], b: number[]) => (b.length > a.length ? b : a));
  const long = longest.slice(0, Math.min(longest.length, m.config.slidingWindow + 3));
  const short = g.prompt_ids.slice(0, Math.max(1, g.prompt_ids.length - 2));
  return [g.prompt_ids, long, short];
}

async function readRows(t: Tensor): Promise<Float32Array> {
  const data = (await t.read()) as Float32Array;
  t.dispose();
  return data;
}

Deno.test("Gemma3.generate() reproduces the fixture's greedy ids with the KV cache", async () => {
  const m = await model();
  const g = await greedyFixture();
  const n = g.generated_ids.length;
  const [out, readbacks] = await countReadbacks(
    m.gpu,
    () => m.generate([g.prompt_ids], { maxNewTokens: n, temperature: 0, eosIds: [] }),
  );
  assert.deepEqual(out, [g.generated_ids]);
  assert.equal(readbacks, Math.ceil(n / READBACK_EVERY));
});

Deno.test("DecodeSession.step() logits equal full-recompute logits and the fixture's", async () => {
  const m = await model();
  const g = await greedyFixture();
  const v = m.config.vocabSize;
  const st = await openSafetensors(`${FIXTURE}/greedy.safetensors`);
  const stepLogits = decodeFloat32(st.info("step_logits").dtype, await st.read("step_logits"));
  st.close();
  const full = [...g.prompt_ids, ...g.generated_ids];
  const session = new DecodeSession(m, [g.prompt_ids], { maxLength: full.length });
  try {
    let logits = session.prefill();
    for (let s = 0; s < g.generated_ids.length; s++) {
      const got = await readRows(logits);
      const len = g.prompt_ids.length + s;
      const recomputed = (await m.logits(full.slice(0, len))).subarray((len - 1) * v, len * v);
      assertClose(got, recomputed, 1e-5, `step ${s}: cached vs recomputed`);
      assertClose(got, stepLogits.subarray(s * v, (s + 1) * v), 1e-4, `step ${s}: vs fixture`);
      if (s + 1 < g.generated_ids.length) {
        const ids = Tensor.fromArray(m.gpu, new Int32Array([g.generated_ids[s]]));
        logits = session.step(ids);
        ids.dispose();
      }
    }
    assert.deepEqual(session.lengths, [full.length - 1]);
  } finally {
    session.dispose();
  }
});

Deno.test("DecodeSession batched (prompts past the window, ring caches) equals recompute", async () => {
  const m = await model();
  const v = m.config.vocabSize;
  const prompts = await threePrompts(m);
  const steps = m.config.slidingWindow + 2;
  const seqs = prompts.map((p) => [...p]);
  const session = new DecodeSession(m, prompts, {
    maxLength: Math.max(...prompts.map((p) => p.length)) + steps,
  });
  try {
    let logits = session.prefill();
    for (let s = 0; s <= steps; s++) {
      const got = await readRows(logits);
      const next: number[] = [];
      for (let b = 0; b < seqs.length; b++) {
        const n = seqs[b].length;
        const want = (await m.logits(seqs[b])).subarray((n - 1) * v, n * v);
        const row = got.subarray(b * v, (b + 1) * v);
        assertClose(row, want, 1e-5, `step ${s}, sequence ${b}`);
        // Feed a token that is not the argmax, so the test does not only follow greedy paths.
        next.push((row.indexOf(Math.max(...row)) + 1 + b) % v);
      }
      if (s === steps) break;
      next.forEach((id, b) => seqs[b].push(id));
      const ids = Tensor.fromArray(m.gpu, Int32Array.from(next));
      logits = session.step(ids);
      ids.dispose();
    }
    assert.deepEqual(session.lengths, seqs.map((q) => q.length));
  } finally {
    session.dispose();
  }
});

Deno.test("Gemma3.generate() of 3 prompts of different lengths equals each alone", async () => {
  const m = await model();
  const prompts = await threePrompts(m);
  assert.equal(new Set(prompts.map((p) => p.length)).size, 3);
  const options = { maxNewTokens: 2 * m.config.slidingWindow + 1, temperature: 0, eosIds: [] };
  const batched = await m.generate(prompts, options);
  for (let b = 0; b < prompts.length; b++) {
    assert.deepEqual(batched[b], (await m.generate([prompts[b]], options))[0], `prompt ${b}`);
  }
});

Deno.test("Gemma3.generate() sampling with a fixed seed is reproducible", async () => {
  const m = await model();
  const prompts = await threePrompts(m);
  const options = { maxNewTokens: 12, temperature: 1, topP: 0.95, seed: 7, eosIds: [] };
  const a = await m.generate(prompts, options);
  const b = await m.generate(prompts, options);
  assert.deepEqual(a, b);
  const c = await m.generate(prompts, { ...options, seed: 8 });
  assert.notDeepEqual(a, c);
  const greedy = await m.generate(prompts, { ...options, temperature: 0 });
  assert.notDeepEqual(a, greedy);
});

Deno.test("Gemma3.generate() at temperature 1e-7 and with topK 1 equals greedy", async () => {
  const m = await model();
  const prompts = await threePrompts(m);
  const base = { maxNewTokens: 10, seed: 3, eosIds: [] };
  const greedy = await m.generate(prompts, { ...base, temperature: 0 });
  assert.deepEqual(await m.generate(prompts, { ...base, temperature: 1e-7 }), greedy);
  assert.deepEqual(await m.generate(prompts, { ...base, temperature: 1, topK: 1 }), greedy);
});

Deno.test("Gemma3.generate() reads back once per 8 tokens", async () => {
  const m = await model();
  const prompts = await threePrompts(m);
  for (const maxNewTokens of [1, 7, 8, 9, 17]) {
    const [out, readbacks] = await countReadbacks(
      m.gpu,
      () => m.generate(prompts, { maxNewTokens, temperature: 0.8, seed: 1, eosIds: [] }),
    );
    assert.deepEqual(out.map((o) => o.length), [maxNewTokens, maxNewTokens, maxNewTokens]);
    assert.equal(
      readbacks,
      Math.ceil(maxNewTokens / READBACK_EVERY),
      `maxNewTokens ${maxNewTokens}`,
    );
  }
});

Deno.test("Gemma3.generate() stops each sequence at its EOS id (kept) and streams tokens", async () => {
  const m = await model();
  const prompts = await threePrompts(m);
  const options = { maxNewTokens: 20, temperature: 0, eosIds: [] as number[] };
  const free = await m.generate(prompts, options);
  const eosId = free[0][2];
  const expected = free.map((ids) => {
    const at = ids.indexOf(eosId);
    return at < 0 ? ids : ids.slice(0, at + 1);
  });
  assert.deepEqual(expected[0], free[0].slice(0, free[0].indexOf(eosId) + 1));
  const streamed: number[][] = prompts.map(() => []);
  const order: number[] = [];
  const [stopped, readbacks] = await countReadbacks(m.gpu, () =>
    m.generate(prompts, {
      ...options,
      eosIds: [eosId],
      onToken: (b, id) => {
        streamed[b].push(id);
        order.push(b);
      },
    }));
  assert.deepEqual(stopped, expected);
  assert.deepEqual(streamed, expected);
  // Within a readback, tokens arrive step by step: a sequence never runs ahead of a live one.
  const seen = prompts.map(() => 0);
  for (const b of order) {
    seen[b]++;
    for (let o = 0; o < b; o++) {
      if (seen[o] < expected[o].length) assert.ok(seen[o] >= seen[b], "step order");
    }
  }
  const longest = Math.max(...expected.map((e) => e.length));
  assert.equal(readbacks, Math.ceil(longest / READBACK_EVERY));
  // The default EOS ids come from the config.
  const defaults = await m.generate(prompts.slice(0, 1), { maxNewTokens: 3, temperature: 0 });
  assert.equal(defaults[0].length, 3);
});

Deno.test("Gemma3.generate() rejects invalid prompts and options", async () => {
  const m = await model();
  await assert.rejects(() => m.generate([], { maxNewTokens: 1 }), GenerateOptionsError);
  await assert.rejects(() => m.generate([[2], []], { maxNewTokens: 1 }), /prompts\[1\]/);
  await assert.rejects(
    () => m.generate([[2, m.config.vocabSize]], { maxNewTokens: 1 }),
    /prompts\[0\]\[1\]/,
  );
  await assert.rejects(() => m.generate([[2]], { maxNewTokens: -1 }), /maxNewTokens/);
  await assert.rejects(() => m.generate([[2]], { maxNewTokens: 2, topP: 0 }), SamplingOptionsError);
  assert.deepEqual(await m.generate([[2], [2, 3]], { maxNewTokens: 0 }), [[], []]);
});

Deno.test("KvCache keeps all positions on global layers and a window on sliding ones", async () => {
  const m = await model();
  const c = m.config;
  const before = m.gpu.memory().inUseBytes;
  const maxLength = c.slidingWindow * 3 + 1;
  const cache = new KvCache(m.gpu, c, { batch: 2, maxLength });
  let slots = 0;
  c.layerTypes.forEach((type, l) => {
    const want = type === "sliding_attention" ? c.slidingWindow : maxLength;
    assert.equal(kvCacheSlots(c, l, maxLength), want);
    assert.deepEqual(cache.layers[l].k.shape, [2, want, c.numKvHeads, c.headDim]);
    assert.deepEqual(cache.layers[l].v.shape, [2, want, c.numKvHeads, c.headDim]);
    slots += want;
  });
  assert.equal(cache.bytes, 2 * 2 * slots * c.numKvHeads * c.headDim * 4);
  assert.ok(m.gpu.memory().inUseBytes - before >= cache.bytes, "tracked by the allocator");
  cache.dispose();
  assert.equal(m.gpu.memory().inUseBytes, before);
  assert.equal(kvCacheSlots(c, 0, 3), 3);
  // sample() output feeds step() directly: a u32 [B] tensor.
  const session = new DecodeSession(m, [[2, 3], [2]], { maxLength: 3 });
  const early = Tensor.fromArray(m.gpu, new Int32Array([2, 2]));
  assert.throws(() => session.step(early), DecodeSessionError);
  early.dispose();
  const logits = session.prefill();
  assert.throws(() => session.prefill(), DecodeSessionError);
  const ids = sample(logits, { temperature: 0 });
  logits.dispose();
  session.step(ids).dispose();
  assert.deepEqual(session.lengths, [3, 2]);
  assert.throws(() => session.step(ids), GenerateOptionsError);
  ids.dispose();
  session.dispose();
});

const CLI = new URL("../cli/generate.ts", import.meta.url).pathname;

async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(180_000),
  });
  const { code, stdout, stderr } = await command.output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}

Deno.test("cli/generate.ts streams a continuation from the fixture folder", async () => {
  // Gemma 3's turn tokens and newline have ids below 108: inside a tiny fixture's vocabulary.
  const r = await runCli([
    "--model",
    FIXTURE,
    "--prompt",
    "<start_of_turn>\n<end_of_turn>",
    "--max-new-tokens",
    "5",
    "--temperature",
    "0.7",
    "--top-k",
    "50",
    "--seed",
    "3",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /\[(\d) tokens after a 4-token prompt/);
  assert.ok(r.stdout.endsWith("\n"));
});

Deno.test("cli/generate.ts reports usage errors, a missing model dir and a tokenizer mismatch", async () => {
  const missing = await runCli(["--prompt", "x"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--model DIR is required/);
  const bad = await runCli(["--model", FIXTURE, "--prompt", "x", "--top-p", "2"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--top-p/);
  const noDir = await runCli(["--model", `${FIXTURE}/does-not-exist`, "--prompt", "x"]);
  assert.equal(noDir.code, 1);
  assert.match(noDir.stderr, /model directory not found/);
  const chat = await runCli(["--model", FIXTURE, "--prompt", "Hello", "--chat"]);
  assert.equal(chat.code, 1);
  assert.match(chat.stderr, /outside the model's vocabulary of \d+/);
});
