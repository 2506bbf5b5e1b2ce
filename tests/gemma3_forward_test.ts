import assert from "node:assert/strict";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { openSafetensors } from "../model/safetensors_fs.ts";
import { decodeFloat32 } from "../model/safetensors_dtype.ts";
import { assertClose, testGpu } from "./_helpers.ts";

const FIXTURE = Deno.env.get("WEBTUNE_FIXTURE") ??
  new URL("../../shared/fixtures/gemma3-tiny-a", import.meta.url).pathname;

async function fixtureTensors(file: string) {
  const st = await openSafetensors(`${FIXTURE}/${file}`);
  return {
    async get(name: string): Promise<Float32Array> {
      return decodeFloat32(st.info(name).dtype, await st.read(name));
    },
    shape: (name: string) => st.info(name).shape,
    close: () => st.close(),
  };
}

Deno.test("Gemma3.logits() matches the float32 reference on every fixture sequence", async () => {
  const gpu = await testGpu();
  const model = await loadGemma3(FIXTURE, { gpu });
  const forward = JSON.parse(await Deno.readTextFile(`${FIXTURE}/forward.json`));
  const ref = await fixtureTensors("forward.safetensors");
  for (const s of forward.sequences) {
    const logits = await model.logits(s.input_ids);
    const err = assertClose(
      logits,
      await ref.get(s.logits_tensor),
      1e-4,
      `logits of sequence ${s.index}`,
    );
    assert.ok(Number.isFinite(err));
  }
  ref.close();
});

Deno.test("Gemma3.hiddenStates() matches every per-layer hidden state of the fixture", async () => {
  const gpu = await testGpu();
  const model = await loadGemma3(FIXTURE, { gpu });
  const forward = JSON.parse(await Deno.readTextFile(`${FIXTURE}/forward.json`));
  const ref = await fixtureTensors("forward.safetensors");
  const seq =
    forward.sequences.find((s: { index: number }) =>
      s.index === (forward.hidden_states_for_sequence ?? 2)
    ) ?? forward.sequences.at(-1);
  const states = await model.hiddenStates(seq.input_ids);
  const n = seq.input_ids.length, d = model.config.hiddenSize, L = model.config.numLayers;
  const hidden = await ref.get("hidden_states");
  assert.equal(states.hidden.length, L + 1);
  for (let l = 0; l <= L; l++) {
    assertClose(states.hidden[l], hidden.subarray(l * n * d, (l + 1) * n * d), 1e-4, `hidden ${l}`);
  }
  const attnOut = await ref.get("attn_out"), mlpOut = await ref.get("mlp_out");
  for (let l = 0; l < L; l++) {
    assertClose(states.attnOut[l], attnOut.subarray(l * n * d, (l + 1) * n * d), 1e-4, `attn ${l}`);
    assertClose(states.mlpOut[l], mlpOut.subarray(l * n * d, (l + 1) * n * d), 1e-4, `mlp ${l}`);
  }
  assertClose(states.finalNorm, await ref.get("final_norm"), 1e-4, "final norm");
  ref.close();
});

Deno.test("Gemma3 rejects ids outside the vocabulary", async () => {
  const gpu = await testGpu();
  const model = await loadGemma3(FIXTURE, { gpu });
  await assert.rejects(() => model.logits([2, model.config.vocabSize]), /ids\[1\].*not a token id/);
});
