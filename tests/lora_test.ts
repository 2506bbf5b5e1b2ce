import assert from "node:assert/strict";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { roundToBf16 } from "../kernels/dtype.ts";
import { ShapeError } from "../kernels/errors.ts";
import { loraLinear } from "../kernels/lora.ts";
import { loraLinearRef } from "../kernels/lora_ref.ts";
import { geglu } from "../kernels/geglu.ts";
import { gateArray } from "./_matmul_variant_checks.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";

const TOL = 1e-5;

Deno.test("loraLinear() matches reference for ranks 1, 3, 4 and odd widths, f32 and bf16 W", async () => {
  const gpu = await testGpu();
  let seed = 1;
  const shapes: [number, number, number][] = [[1, 7, 3], [3, 33, 257], [33, 257, 7], [7, 64, 33]];
  for (const [m, inDim, outDim] of shapes) {
    for (const rank of [1, 3, 4]) {
      for (const dtype of ["f32", "bf16"] as const) {
        const x = randomArray(m * inDim, seed++), w = randomArray(outDim * inDim, seed++);
        const a = randomArray(rank * inDim, seed++), b = randomArray(outDim * rank, seed++);
        const scale = 16 / rank;
        const tx = Tensor.fromArray(gpu, x, [m, inDim]);
        const tw = Tensor.fromArray(gpu, w, [outDim, inDim], dtype);
        const ta = Tensor.fromArray(gpu, a, [rank, inDim]);
        const tb = Tensor.fromArray(gpu, b, [outDim, rank]);
        const { y, xa } = loraLinear(tx, { w: tw, a: ta, b: tb }, { scale });
        assert.deepEqual(y.shape, [m, outDim]);
        assert.deepEqual(xa.shape, [m, rank]);
        const wRef = dtype === "bf16" ? roundToBf16(w) : w;
        const ref = loraLinearRef(x, { w: wRef, a, b }, { m, inDim, outDim, rank, scale });
        const what = `m=${m} in=${inDim} out=${outDim} r=${rank} ${dtype}`;
        assertClose(await y.read(), ref.y, TOL, `y ${what}`);
        assertClose(await xa.read(), ref.xa, TOL, `xa ${what}`);
        for (const t of [tx, tw, ta, tb, y, xa]) t.dispose();
      }
    }
  }
});

Deno.test("loraLinear() adds a residual, writes into out/xaOut and takes batched x", async () => {
  const gpu = await testGpu();
  const [batch, seq, inDim, outDim, rank] = [2, 3, 9, 5, 3];
  const m = batch * seq;
  const x = randomArray(m * inDim, 1), w = randomArray(outDim * inDim, 2);
  const a = randomArray(rank * inDim, 3), b = randomArray(outDim * rank, 4);
  const r = randomArray(m * outDim, 5);
  const tx = Tensor.fromArray(gpu, x, [batch, seq, inDim]);
  const tw = Tensor.fromArray(gpu, w, [outDim, inDim], "bf16");
  const ta = Tensor.fromArray(gpu, a, [rank, inDim]);
  const tb = Tensor.fromArray(gpu, b, [outDim, rank]);
  const tr = Tensor.fromArray(gpu, r, [batch, seq, outDim]);
  const out = Tensor.empty(gpu, [batch, seq, outDim]);
  const xaOut = Tensor.empty(gpu, [batch, seq, rank]);
  const { y, xa } = loraLinear(tx, { w: tw, a: ta, b: tb }, {
    scale: 2,
    residual: tr,
    out,
    xaOut,
  });
  assert.equal(y, out);
  assert.equal(xa, xaOut);
  const ref = loraLinearRef(x, { w: roundToBf16(w), a, b }, { m, inDim, outDim, rank, scale: 2 });
  assertClose(await y.read(), ref.y.map((v, i) => v + r[i]), TOL, "y + residual");
  assertClose(await xa.read(), ref.xa, TOL, "xa");
  for (const t of [tx, tw, ta, tb, tr, out, xaOut]) t.dispose();
});

Deno.test("loraLinear() works with a split base weight", async () => {
  const gpu = await Gpu.create({ maxStorageBufferBindingSize: 4096 });
  try {
    const [m, inDim, outDim, rank] = [3, 7, 301, 4];
    const x = randomArray(m * inDim, 6), w = randomArray(outDim * inDim, 7);
    const a = randomArray(rank * inDim, 8), b = randomArray(outDim * rank, 9);
    const tw = Tensor.fromArray(gpu, w, [outDim, inDim], "bf16");
    assert.ok(tw.parts.length > 1);
    const { y } = loraLinear(Tensor.fromArray(gpu, x, [m, inDim]), {
      w: tw,
      a: Tensor.fromArray(gpu, a, [rank, inDim]),
      b: Tensor.fromArray(gpu, b, [outDim, rank]),
    }, { scale: 0.5 });
    const ref = loraLinearRef(x, { w: roundToBf16(w), a, b }, {
      m,
      inDim,
      outDim,
      rank,
      scale: 0.5,
    });
    assertClose(await y.read(), ref.y, TOL, "split W");
  } finally {
    gpu.destroy();
  }
});

Deno.test("loraLinear() rejects mismatched adapter shapes with a ShapeError", async () => {
  const gpu = await testGpu();
  const x = Tensor.zeros(gpu, [2, 6]), w = Tensor.zeros(gpu, [5, 6], "bf16");
  const a = Tensor.zeros(gpu, [3, 6]), b = Tensor.zeros(gpu, [5, 3]);
  const isLora = (e: unknown) => e instanceof ShapeError && e.message.startsWith("loraLinear: ");
  assert.throws(() => loraLinear(x, { w, a: Tensor.zeros(gpu, [3, 5]), b }), isLora);
  assert.throws(() => loraLinear(x, { w, a, b: Tensor.zeros(gpu, [5, 4]) }), isLora);
  assert.throws(() => loraLinear(Tensor.zeros(gpu, [2, 5]), { w, a, b }), isLora);
  assert.throws(() => loraLinear(x, { w, a: Tensor.zeros(gpu, [3, 6], "bf16"), b }), isLora);
  const { y, xa } = loraLinear(x, { w, a, b });
  assert.deepEqual([...await y.read()], new Array(10).fill(0));
  for (const t of [x, w, a, b, y, xa]) t.dispose();
});

Deno.test("loraLinear() with a gate fuses GeGLU into the final write: the reference and geglu(gate, loraLinear(…))", async () => {
  const gpu = await testGpu();
  let seed = 30;
  // Odd shapes, a GEMV, a split base weight's shape class; gates in the tanh region and past
  // the ±10 clamp.
  for (const [m, inDim, outDim, rank] of [[3, 33, 257, 3], [1, 64, 67, 4], [7, 9, 20, 1]]) {
    for (const dtype of ["f32", "bf16"] as const) {
      for (const clamp of [false, true]) {
        const x = randomArray(m * inDim, seed++), w = randomArray(outDim * inDim, seed++);
        const a = randomArray(rank * inDim, seed++), b = randomArray(outDim * rank, seed++);
        const g = gateArray(m * outDim, seed++, clamp);
        const tx = Tensor.fromArray(gpu, x, [m, inDim]);
        const weights = {
          w: Tensor.fromArray(gpu, w, [outDim, inDim], dtype),
          a: Tensor.fromArray(gpu, a, [rank, inDim]),
          b: Tensor.fromArray(gpu, b, [outDim, rank]),
        };
        const gate = Tensor.fromArray(gpu, g, [m, outDim]);
        const scale = 2 / rank;
        const fused = loraLinear(tx, weights, { scale, gate });
        const plain = loraLinear(tx, weights, { scale });
        const unfused = geglu(gate, plain.y);
        const wRef = dtype === "bf16" ? roundToBf16(w) : w;
        const ref = loraLinearRef(x, { w: wRef, a, b }, {
          m,
          inDim,
          outDim,
          rank,
          scale,
          gate: g,
        });
        const what = `m=${m} in=${inDim} out=${outDim} r=${rank} ${dtype}${clamp ? " clamp" : ""}`;
        const y = await fused.y.read();
        assertClose(y, ref.y, TOL, `y ${what}`);
        assertClose(await fused.xa.read(), ref.xa, TOL, `xa ${what}`);
        // The same f32 operations in the same order (see matmul's gate): bit-identical on
        // llvmpipe; 1e-6 leaves room for a compiler that contracts FMAs differently.
        assertClose(y, await unfused.read(), 1e-6, `fused vs unfused ${what}`);
        for (
          const t of [tx, ...Object.values(weights), gate, fused.y, fused.xa, plain.y, plain.xa]
        ) {
          t.dispose();
        }
        unfused.dispose();
      }
    }
  }
});

Deno.test("loraLinear() rejects a gate with a residual, aliasing an output, or misshaped, before launching", async () => {
  const gpu = await testGpu();
  const x = Tensor.zeros(gpu, [2, 6]), w = Tensor.zeros(gpu, [5, 6], "bf16");
  const a = Tensor.zeros(gpu, [3, 6]), b = Tensor.zeros(gpu, [5, 3]);
  const out = Tensor.zeros(gpu, [2, 5]), xaOut = Tensor.zeros(gpu, [2, 3]);
  const gate = Tensor.zeros(gpu, [2, 5]);
  const says = (text: string) => (e: unknown) =>
    e instanceof ShapeError && e.message.startsWith("loraLinear: ") && e.message.includes(text);
  const weights = { w, a, b };
  assert.throws(
    () => loraLinear(x, weights, { gate, residual: Tensor.zeros(gpu, [2, 5]) }),
    says("exclusive"),
  );
  assert.throws(() => loraLinear(x, weights, { out, gate: out }), says("alias"));
  assert.throws(() => loraLinear(x, weights, { xaOut, gate: xaOut }), says("alias"));
  // Nothing was launched: a sentinel out keeps its contents.
  const sentinel = Tensor.fromArray(gpu, new Float32Array(10).fill(7), [2, 5]);
  assert.throws(
    () => loraLinear(x, weights, { out: sentinel, gate: Tensor.zeros(gpu, [5, 2]) }),
    says("gate must have shape [2,5]"),
  );
  assert.deepEqual([...await sentinel.read()], new Array(10).fill(7));
  sentinel.dispose();
  assert.throws(
    () => loraLinear(x, weights, { gate: Tensor.zeros(gpu, [2, 5], "bf16") }),
    says("f32"),
  );
  const { y, xa } = loraLinear(x, weights, { gate, out });
  assert.equal(y, out);
  for (const t of [x, w, a, b, out, xaOut, gate, xa]) t.dispose();
});
