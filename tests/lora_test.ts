import assert from "node:assert/strict";
import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { roundToBf16 } from "../kernels/dtype.ts";
import { ShapeError } from "../kernels/errors.ts";
import { loraLinear } from "../kernels/lora.ts";
import { loraLinearRef } from "../kernels/lora_ref.ts";
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
