import assert from "node:assert/strict";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { FUSION_FAMILY, type FusionChoice } from "../model/layer_fusion.ts";
import { disposeTokenBatch, makeTokenBatch } from "../model/batch.ts";
import { loadGemma3 } from "../model/gemma3_fs.ts";
import { decoderLayerForward } from "../model/layer.ts";
import { decodeFloat32 } from "../model/safetensors_dtype.ts";
import { openSafetensors } from "../model/safetensors_fs.ts";
import { trainForward } from "../model/train_pass.ts";
import { trainableParameters } from "../model/trainable.ts";
import { assertClose, FIXTURE } from "./_helpers.ts";

/** What one fixture pass gives with the layer fusions forced one way. */
interface FusionRun {
  /** Logits of every fixture sequence (the forward without saving). */
  readonly logits: Float32Array[];
  /** Greedy ids (KV-cache prefill and decode). */
  readonly greedy: number[];
  /** LoRA target log-probs and every LoRA gradient (the forward that saves for backward). */
  readonly logprobs: Float32Array;
  readonly grads: Map<string, Float32Array>;
  /** Kernel names the device compiled during the forward without saving. */
  readonly forwardKernels: ReadonlySet<string>;
  /** Launches of the first sequence's forward. */
  readonly forwardLaunches: number;
  /** Decoder layers. */
  readonly layers: number;
}

async function runFixture(choice: FusionChoice): Promise<FusionRun> {
  const gpu = await Gpu.create({ forceVariants: { [FUSION_FAMILY]: choice } });
  try {
    const base = await loadGemma3(FIXTURE, { gpu });
    const forward = JSON.parse(await Deno.readTextFile(`${FIXTURE}/forward.json`));
    const st = await openSafetensors(`${FIXTURE}/forward.safetensors`);
    const logits: Float32Array[] = [];
    let forwardLaunches = 0;
    for (const s of forward.sequences) {
      const before = gpu.dispatchCount;
      const got = await base.logits(s.input_ids);
      forwardLaunches ||= gpu.dispatchCount - before;
      const want = decodeFloat32(st.info(s.logits_tensor).dtype, await st.read(s.logits_tensor));
      assertClose(got, want, 1e-4, `${choice}: logits of sequence ${s.index}`);
      logits.push(got);
    }
    st.close();
    const forwardKernels = new Set(gpu.pipelines.compiled.map((p) => p.name));
    // A chained input norm only exists in forwards without saving: asking to save refuses it.
    const h = Tensor.zeros(gpu, [1, base.config.hiddenSize]);
    const positions = Tensor.zeros(gpu, [1], "i32");
    const attend = () => ({ out: h, lse: null });
    assert.throws(
      () =>
        decoderLayerForward(base.layerContext(0, 1), h, {
          positions,
          attend,
          save: true,
          inputNorm: h,
        }),
      /inputNorm and nextInputNorm are for forwards without saving/,
    );
    for (const t of [h, positions]) t.dispose();
    const g = JSON.parse(await Deno.readTextFile(`${FIXTURE}/greedy.json`));
    const [greedy] = await base.generate([g.prompt_ids], {
      maxNewTokens: g.generated_ids.length,
      temperature: 0,
      eosIds: [],
    });
    assert.deepEqual(greedy, g.generated_ids, `${choice}: greedy ids`);

    const model = await loadGemma3(FIXTURE, { gpu, adapter: FIXTURE });
    const fx = JSON.parse(await Deno.readTextFile(`${FIXTURE}/lora.json`));
    const [b, s] = [fx.input_ids.length, fx.input_ids[0].length];
    const targets = new Int32Array(b * s), mask = new Float32Array(b * s);
    for (let i = 0; i < b; i++) {
      for (let t = 0; t + 1 < s; t++) {
        targets[i * s + t] = fx.input_ids[i][t + 1];
        mask[i * s + t] = fx.loss_mask[i][t + 1];
      }
    }
    const batch = makeTokenBatch(gpu, fx.input_ids);
    const targetTensor = Tensor.fromArray(gpu, targets, [b * s], "i32");
    const trainable = trainableParameters(model, "lora");
    const pass = trainForward(model, batch, targetTensor);
    const logprobs = (await pass.logprobs.read()) as Float32Array;
    for (let i = 0; i < b; i++) {
      for (let t = 0; t + 1 < s; t++) {
        const got = logprobs[i * s + t], want = fx.target_logprobs[i][t];
        assert.ok(Math.abs(got - want) <= 1e-4, `${choice}: log-prob ${i},${t} ${got} vs ${want}`);
      }
    }
    const count = mask.reduce((a, m) => a + m, 0);
    const dLogp = Tensor.fromArray(gpu, mask.map((m) => -m / count), [b * s]);
    pass.backward(dLogp, trainable.gradientSet);
    pass.dispose();
    const grads = new Map<string, Float32Array>();
    for (const [name, grad] of trainable.grads) {
      grads.set(name, (await grad.read()) as Float32Array);
    }
    for (const t of [dLogp, targetTensor]) t.dispose();
    disposeTokenBatch(batch);
    trainable.dispose();
    const layers = model.config.numLayers;
    return { logits, greedy, logprobs, grads, forwardKernels, forwardLaunches, layers };
  } finally {
    gpu.destroy();
  }
}

Deno.test("layer fusions: fused and separate paths both match the fixture and each other", async () => {
  const fused = await runFixture("fused");
  const separate = await runFixture("separate");
  // The paths really differ: fused, RoPE runs inside the q/k norm and GeGLU inside the
  // up-projection, so neither kernel of their own is compiled by the forward without saving.
  for (const name of ["rope", "geglu"]) {
    assert.ok(!fused.forwardKernels.has(name), `fused forward compiled ${name}`);
    assert.ok(separate.forwardKernels.has(name), `separate forward did not compile ${name}`);
  }
  // Per layer the fused forward saves two RoPE launches, the pre-feedforward norm, GeGLU and
  // (chained from the layer before; not in the first layer) the input norm.
  assert.equal(separate.forwardLaunches - fused.forwardLaunches, 5 * fused.layers - 1);
  // Fusion moves no float operation across a rounding step that matters: the two paths agree
  // far inside the fixture tolerance.
  fused.logits.forEach((l, i) => assertClose(l, separate.logits[i], 1e-5, `logits ${i}`));
  assert.deepEqual(fused.greedy, separate.greedy);
  assertClose(fused.logprobs, separate.logprobs, 1e-5, "LoRA log-probs");
  assert.equal(fused.grads.size, separate.grads.size);
  for (const [name, g] of fused.grads) {
    let scale = 0;
    for (const x of g) scale = Math.max(scale, Math.abs(x));
    const other = separate.grads.get(name)!;
    let err = 0;
    for (let i = 0; i < g.length; i++) err = Math.max(err, Math.abs(g[i] - other[i]));
    assert.ok(err <= 1e-5 * scale, `${name}: fused vs separate max err ${err} > 1e-5 × ${scale}`);
  }
});
