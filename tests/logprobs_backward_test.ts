import assert from "node:assert/strict";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { LOGPROBS_VARIANTS, tokenLogprobs } from "../kernels/logprobs.ts";
import { tokenLogprobsBackward } from "../kernels/logprobs_backward.ts";
import { tokenLogprobsBackwardRef, tokenLogprobsRef } from "../kernels/logprobs_ref.ts";
import { ShapeError } from "../kernels/errors.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";
import { logprobsProblem, type LogprobsShape, ODD_SHAPES, TOL } from "./_logprobs.ts";
import { runnableVariants } from "./_reduce_variants.ts";

/** Grads in [-1, 1) with every third one zero (masked tokens). */
function randomGrads(tokens: number, seed: number): Float32Array {
  const g = randomArray(tokens, seed);
  for (let t = 0; t < tokens; t += 3) g[t] = 0;
  return g;
}

interface Case {
  temperature?: number;
  scale?: number;
  grads?: Float32Array;
  /** Accumulate into dEmbedding (`"zero"` or `"random"` initial contents), or no dE. */
  dE?: "zero" | "random" | "none";
  /** Use the GPU forward's lse (default: the float64 reference's, rounded to f32). */
  gpuLse?: boolean;
  /** `d loss / d H` per token: the entropy term (and the forward's entropies) joins in. */
  gradEntropy?: Float32Array;
  /** Forced variant of the backward (and of the GPU forward with `gpuLse`). */
  variant?: string;
}

/** Runs the kernel and the reference on one case; returns dh and dE as read back. */
async function checkBackward(
  gpu: Gpu,
  shape: LogprobsShape,
  dtype: "f32" | "bf16",
  o: Case = {},
): Promise<{ dh: Float32Array; dE?: Float32Array; parts: [number, number] }> {
  const { dims, h, e, targets, th, te, tt } = logprobsProblem(gpu, shape, {
    dtype,
    scale: o.scale,
  });
  const { tokens, dim, vocab } = dims;
  const { temperature } = o;
  const grads = o.grads ?? randomGrads(tokens, tokens + 11);
  const tg = Tensor.fromArray(gpu, grads, [tokens]);
  const withEntropy = o.gradEntropy !== undefined;
  let tl: Tensor, tH: Tensor | undefined;
  if (o.gpuLse) {
    const fwd = tokenLogprobs({ h: th, embedding: te, targets: tt }, {
      temperature,
      entropy: withEntropy,
      variant: o.variant,
    });
    fwd.logprobs.dispose();
    tl = fwd.lse;
    tH = fwd.entropy;
  } else {
    const { lse, entropy } = tokenLogprobsRef({ h, embedding: e, targets }, {
      ...dims,
      temperature,
    });
    tl = Tensor.fromArray(gpu, Float32Array.from(lse), [tokens]);
    if (withEntropy) tH = Tensor.fromArray(gpu, Float32Array.from(entropy), [tokens]);
  }
  const tgE = o.gradEntropy ? Tensor.fromArray(gpu, o.gradEntropy, [tokens]) : undefined;
  const mode = o.dE ?? "random";
  const dE0 = mode === "random" ? randomArray(vocab * dim, 99, 0.5) : new Float32Array(vocab * dim);
  const tdE = mode === "none" ? undefined : Tensor.fromArray(gpu, dE0, [vocab, dim]);
  const inputs = { h: th, embedding: te, targets: tt, lse: tl, entropy: tH };
  const dh = tokenLogprobsBackward(tg, inputs, {
    dEmbedding: tdE,
    temperature,
    gradEntropy: tgE,
    variant: o.variant,
  });
  const want = tokenLogprobsBackwardRef(grads, { h, embedding: e, targets }, {
    ...dims,
    temperature,
    gradEntropy: o.gradEntropy,
  });
  const what = `T=${tokens} D=${dim} V=${vocab} ${dtype} parts=${te.parts.length}/${
    tdE?.parts.length ?? 0
  } τ=${o.temperature ?? 1}${withEntropy ? " +H" : ""} ${o.variant ?? "table"}`;
  const gotDh = (await dh.read()) as Float32Array;
  assertClose(gotDh, want.dh, TOL, `dh ${what}`);
  let gotDE: Float32Array | undefined;
  if (tdE) {
    gotDE = (await tdE.read()) as Float32Array;
    assertClose(gotDE, want.dEmbedding.map((v, k) => v + dE0[k]), TOL, `dE ${what}`);
  }
  const parts: [number, number] = [te.parts.length, tdE?.parts.length ?? 0];
  for (const t of [th, te, tt, tg, tl, dh, tdE, tH, tgE]) t?.dispose();
  return { dh: gotDh, dE: gotDE, parts };
}

/**
 * Asserts `dh` and `dEmbedding` equal central finite differences (step 1e-5) of `loss` in `h`
 * and `e`, to 1e-8 relative.
 */
function assertFdGradients(
  loss: (h: number[], e: number[]) => number,
  h: number[],
  e: number[],
  dh: ArrayLike<number>,
  dEmbedding: ArrayLike<number>,
): void {
  const step = 1e-5;
  const fd = (f: (x: number[]) => number, x: number[], k: number) => {
    const bump = (s: number) => x.map((v, j) => (j === k ? v + s : v));
    return (f(bump(step)) - f(bump(-step))) / (2 * step);
  };
  for (let k = 0; k < h.length; k++) {
    const want = fd((x) => loss(x, e), h, k);
    assert.ok(Math.abs(want - dh[k]) <= 1e-8 * Math.max(1, Math.abs(want)), `dh[${k}]`);
  }
  for (let k = 0; k < e.length; k++) {
    const want = fd((x) => loss(h, x), e, k);
    assert.ok(Math.abs(want - dEmbedding[k]) <= 1e-8 * Math.max(1, Math.abs(want)), `dE[${k}]`);
  }
}

Deno.test("tokenLogprobsBackwardRef() matches central finite differences of tokenLogprobsRef", () => {
  const options = { tokens: 3, dim: 5, vocab: 7, temperature: 0.8 };
  const h = Array.from(randomArray(15, 1));
  const e = Array.from(randomArray(35, 2));
  const targets = [4, 0, 6];
  const grads = [0.7, 0, -1.3];
  const loss = (hh: number[], ee: number[]) =>
    tokenLogprobsRef({ h: hh, embedding: ee, targets }, options).logprobs
      .reduce((s, lp, t) => s + grads[t] * lp, 0);
  const { dh, dEmbedding } = tokenLogprobsBackwardRef(grads, { h, embedding: e, targets }, options);
  assertFdGradients(loss, h, e, dh, dEmbedding);
  assert.ok(dh.slice(5, 10).every((v) => v === 0), "token 1 has a zero grad");
  assert.ok(dEmbedding.some((v) => v !== 0));
});

Deno.test("tokenLogprobsBackwardRef() entropy term matches central finite differences of the entropy", () => {
  const options = { tokens: 3, dim: 5, vocab: 7, temperature: 0.8 };
  const h = Array.from(randomArray(15, 4));
  const e = Array.from(randomArray(35, 5));
  const targets = [4, 0, 6];
  const grads = [0.7, 0, 0];
  const gradEntropy = [-0.4, 1.1, 0];
  const loss = (hh: number[], ee: number[]) => {
    const r = tokenLogprobsRef({ h: hh, embedding: ee, targets }, options);
    let s = 0;
    for (let t = 0; t < 3; t++) s += grads[t] * r.logprobs[t] + gradEntropy[t] * r.entropy[t];
    return s;
  };
  const { dh, dEmbedding } = tokenLogprobsBackwardRef(grads, { h, embedding: e, targets }, {
    ...options,
    gradEntropy,
  });
  assertFdGradients(loss, h, e, dh, dEmbedding);
  // Token 1 carries only the entropy gradient; token 2 none.
  assert.ok(dh.slice(5, 10).some((v) => v !== 0), "token 1: entropy gradient alone");
  assert.ok(dh.slice(10, 15).every((v) => v === 0), "token 2 has no gradient");
});

Deno.test("tokenLogprobsBackward() matches reference on odd T, D and V, f32 and bf16, every variant", async () => {
  const gpu = await testGpu();
  for (const variant of runnableVariants(gpu, LOGPROBS_VARIANTS, "tokenLogprobsBackward")) {
    for (const shape of ODD_SHAPES) {
      for (const dtype of ["f32", "bf16"] as const) {
        await checkBackward(gpu, shape, dtype, { variant });
      }
    }
    // dh alone (LoRA training: no dEmbedding).
    await checkBackward(gpu, [7, 64, 1000], "bf16", { dE: "none", variant });
  }
});

Deno.test("tokenLogprobsBackward() applies the temperature and takes the forward's lse, every variant", async () => {
  const gpu = await testGpu();
  for (const variant of runnableVariants(gpu, LOGPROBS_VARIANTS, "backward temperature")) {
    await checkBackward(gpu, [7, 33, 1000], "f32", { temperature: 0.7, dE: "zero", variant });
    await checkBackward(gpu, [33, 64, 257], "bf16", { temperature: 2.5, scale: 3, variant });
    await checkBackward(gpu, [7, 64, 1000], "bf16", { gpuLse: true, temperature: 0.9, variant });
    await checkBackward(gpu, [3, 7, 5000], "f32", { gpuLse: true, scale: 4, variant });
  }
});

Deno.test("tokenLogprobsBackward() handles E and dEmbedding split into parts", async () => {
  // A 4 KiB binding cap splits E and dE into many parts (at different rows, f32 dE rows being
  // twice the size of bf16 E rows) and shrinks the vocabulary chunks to a few rows (4096 bytes
  // of dz scratch: 1024 / T rows).
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 4096 });
  const cases = [
    [[5, 7, 1000], "bf16"],
    [[257, 3, 1000], "f32"], // 3-row chunks: dz rows not 4-aligned
    [[3, 33, 1000], "bf16"],
    [[1, 64, 257], "f32"],
  ] as const;
  for (const variant of runnableVariants(gpu, LOGPROBS_VARIANTS, "split backward")) {
    for (const [shape, dtype] of cases) {
      const { parts } = await checkBackward(gpu, shape, dtype, { temperature: 1.3, variant });
      assert.ok(parts[0] > 1 && parts[1] > 1, `E and dE should be split, got ${parts}`);
    }
  }
  gpu.destroy();
});

Deno.test("tokenLogprobsBackward() accumulates into a non-zero dEmbedding", async () => {
  const gpu = await testGpu();
  // checkBackward compares dE against its random initial contents plus the reference.
  const { dE } = await checkBackward(gpu, [7, 33, 257], "bf16", { dE: "random" });
  assert.ok(dE!.some((v, k) => v !== randomArray(257 * 33, 99, 0.5)[k]));
});

Deno.test("tokenLogprobsBackward() gives exact zeros for zero grads, every variant", async () => {
  const gpu = await testGpu();
  for (const variant of runnableVariants(gpu, LOGPROBS_VARIANTS, "zero grads")) {
    // All zero: dh is zero and dE keeps its contents bit for bit.
    const tokens = 40, dim = 16, vocab = 300;
    const zero = await checkBackward(gpu, [tokens, dim, vocab], "bf16", {
      grads: new Float32Array(tokens),
      variant,
    });
    assert.ok(zero.dh.every((v) => v === 0));
    assert.deepEqual(zero.dE, randomArray(vocab * dim, 99, 0.5));
    // The first 20 tokens (more than a whole 16-token tile) zero, the rest not.
    const grads = randomArray(tokens, 5);
    grads.fill(0, 0, 20);
    const part = await checkBackward(gpu, [tokens, dim, vocab], "f32", { grads, variant });
    assert.ok(part.dh.subarray(0, 20 * dim).every((v) => v === 0));
    assert.ok(part.dh.subarray(20 * dim).some((v) => v !== 0));
  }
});

Deno.test("tokenLogprobsBackward() matches reference for dh at V = 262144", async () => {
  const gpu = await testGpu();
  await checkBackward(gpu, [3, 16, 262144], "bf16", { dE: "none", scale: 2 });
  await checkBackward(gpu, [2, 7, 262144], "f32", { dE: "none", grads: new Float32Array([1, -2]) });
});

Deno.test("tokenLogprobsBackward() is bit-reproducible, every variant", async () => {
  const gpu = await testGpu();
  const shape = [33, 64, 5000] as const;
  for (const variant of runnableVariants(gpu, LOGPROBS_VARIANTS, "bit-reproducible")) {
    const a = await checkBackward(gpu, shape, "bf16", { temperature: 0.8, variant });
    const b = await checkBackward(gpu, shape, "bf16", { temperature: 0.8, variant });
    assert.deepEqual(new Uint32Array(a.dh.buffer), new Uint32Array(b.dh.buffer));
    assert.deepEqual(new Uint32Array(a.dE!.buffer), new Uint32Array(b.dE!.buffer));
  }
});

Deno.test("tokenLogprobsBackward() checks shapes and dtypes", async () => {
  const gpu = await testGpu();
  const h = Tensor.fromArray(gpu, randomArray(6, 1), [2, 3]);
  const e = Tensor.fromArray(gpu, randomArray(15, 2), [5, 3], "bf16");
  const ids = Tensor.fromArray(gpu, new Int32Array([4, 1]), [2]);
  const lse = Tensor.zeros(gpu, [2]);
  const grad = Tensor.zeros(gpu, [2]);
  const bad = [
    Tensor.zeros(gpu, [5, 4]),
    Tensor.zeros(gpu, [3]),
    Tensor.zeros(gpu, [2], "u32"),
    Tensor.zeros(gpu, [5, 3], "bf16"),
    Tensor.zeros(gpu, [4, 3]),
  ];
  const isShape = (err: unknown) =>
    err instanceof ShapeError && /tokenLogprobsBackward: /.test(err.message);
  assert.throws(
    () => tokenLogprobsBackward(grad, { h, embedding: bad[0], targets: ids, lse }),
    isShape,
  );
  assert.throws(
    () => tokenLogprobsBackward(grad, { h, embedding: e, targets: bad[1], lse }),
    isShape,
  );
  assert.throws(
    () => tokenLogprobsBackward(grad, { h, embedding: e, targets: ids, lse: bad[1] }),
    isShape,
  );
  assert.throws(
    () => tokenLogprobsBackward(bad[2], { h, embedding: e, targets: ids, lse }),
    isShape,
  );
  assert.throws(
    () =>
      tokenLogprobsBackward(grad, { h, embedding: e, targets: ids, lse }, { dEmbedding: bad[3] }),
    isShape,
  );
  assert.throws(
    () =>
      tokenLogprobsBackward(grad, { h, embedding: e, targets: ids, lse }, { dEmbedding: bad[4] }),
    isShape,
  );
  assert.throws(
    () => tokenLogprobsBackward(grad, { h, embedding: e, targets: ids, lse }, { temperature: -1 }),
    isShape,
  );
  for (const t of [h, e, ids, lse, grad, ...bad]) t.dispose();
});

/** Entropy grads in [-1, 1) with every fourth one zero and a different pattern than the logp's. */
function entropyGrads(tokens: number, seed: number): Float32Array {
  const g = randomArray(tokens, seed);
  for (let t = 1; t < tokens; t += 4) g[t] = 0;
  return g;
}

Deno.test("tokenLogprobsBackward() entropy gradient alone and with the logp gradient matches reference", async () => {
  const gpu = await testGpu();
  for (const variant of runnableVariants(gpu, LOGPROBS_VARIANTS, "entropy backward")) {
    for (const shape of ODD_SHAPES) {
      for (const dtype of ["f32", "bf16"] as const) {
        const gradEntropy = entropyGrads(shape[0], shape[0] + 5);
        // Together with the logp gradient (its zeros at other tokens than the entropy's).
        await checkBackward(gpu, shape, dtype, { gradEntropy, variant });
        // Alone: the logp gradient all zero.
        await checkBackward(gpu, shape, dtype, {
          gradEntropy,
          grads: new Float32Array(shape[0]),
          dE: "zero",
          variant,
        });
      }
    }
  }
  // Temperature, the GPU forward's lse and entropies, dh alone, large logits.
  const ge = (n: number) => entropyGrads(n, 17);
  await checkBackward(gpu, [7, 33, 1000], "f32", { temperature: 0.7, gradEntropy: ge(7) });
  await checkBackward(gpu, [7, 64, 1000], "bf16", {
    gpuLse: true,
    temperature: 0.9,
    gradEntropy: ge(7),
    dE: "none",
  });
  await checkBackward(gpu, [3, 7, 5000], "f32", { gpuLse: true, scale: 4, gradEntropy: ge(3) });
});

Deno.test("tokenLogprobsBackward() entropy gradient with E and dEmbedding split into parts", async () => {
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 4096 });
  for (const [shape, dtype] of [[[5, 7, 1000], "bf16"], [[257, 3, 1000], "f32"]] as const) {
    const { parts } = await checkBackward(gpu, shape, dtype, {
      temperature: 1.3,
      gradEntropy: entropyGrads(shape[0], 3),
    });
    assert.ok(parts[0] > 1 && parts[1] > 1, `E and dE should be split, got ${parts}`);
  }
  gpu.destroy();
});

Deno.test("tokenLogprobsBackward() with a zero entropy gradient equals the plain kernel bit for bit", async () => {
  const gpu = await testGpu();
  const shape = [33, 64, 1000] as const;
  const plain = await checkBackward(gpu, shape, "bf16", { temperature: 0.8 });
  const zero = await checkBackward(gpu, shape, "bf16", {
    temperature: 0.8,
    gradEntropy: new Float32Array(33),
  });
  assert.deepEqual(new Uint32Array(zero.dh.buffer), new Uint32Array(plain.dh.buffer));
  assert.deepEqual(new Uint32Array(zero.dE!.buffer), new Uint32Array(plain.dE!.buffer));
  // All gradients zero: dh exactly zero and dE untouched.
  const none = await checkBackward(gpu, [40, 16, 300], "f32", {
    grads: new Float32Array(40),
    gradEntropy: new Float32Array(40),
  });
  assert.ok(none.dh.every((v) => v === 0));
  assert.deepEqual(none.dE, randomArray(300 * 16, 99, 0.5));
});

Deno.test("tokenLogprobsBackward() gradEntropy needs the forward's entropies of the right shape", async () => {
  const gpu = await testGpu();
  const h = Tensor.fromArray(gpu, randomArray(6, 1), [2, 3]);
  const e = Tensor.fromArray(gpu, randomArray(15, 2), [5, 3], "bf16");
  const ids = Tensor.fromArray(gpu, new Int32Array([4, 1]), [2]);
  const lse = Tensor.zeros(gpu, [2]);
  const grad = Tensor.zeros(gpu, [2]);
  const wrong = Tensor.zeros(gpu, [3]);
  const isShape = (err: unknown) =>
    err instanceof ShapeError && /tokenLogprobsBackward: .*entrop/i.test(err.message);
  const head = { h, embedding: e, targets: ids, lse };
  assert.throws(() => tokenLogprobsBackward(grad, head, { gradEntropy: grad }), isShape);
  assert.throws(
    () => tokenLogprobsBackward(grad, { ...head, entropy: lse }, { gradEntropy: wrong }),
    isShape,
  );
  assert.throws(
    () => tokenLogprobsBackward(grad, { ...head, entropy: wrong }, { gradEntropy: grad }),
    isShape,
  );
  assert.throws(
    () => tokenLogprobsBackward(grad, head, { variant: "fast" }),
    /tokenLogprobsBackward: variant must be one of reg.*got fast/,
  );
  for (const t of [h, e, ids, lse, grad, wrong]) t.dispose();
});
