import { rope } from "../kernels/rope.ts";
import { ropeBackward } from "../kernels/rope_backward.ts";
import { ropeRef } from "../kernels/rope_ref.ts";
import { assertClose, testGpu } from "./_helpers.ts";
import { offsetBatch } from "./_rope.ts";

Deno.test("ropeRef() with inverse undoes the rotation of split halves", () => {
  const out = ropeRef([1, 0, 0, 0, 0, 1, 0, 0], [1, 1], { numHeads: 2, headDim: 4, base: 1e4 });
  const back = ropeRef(out, [1, 1], { numHeads: 2, headDim: 4, base: 1e4, inverse: true });
  assertClose(back, [1, 0, 0, 0, 0, 1, 0, 0], 1e-15, "inverse");
});

Deno.test("ropeBackward() in place on [B, S, H, D] undoes rope(), as ropeRef's inverse does", async () => {
  const gpu = await testGpu();
  const { heads: h, headDim: d, x, pos, table, tx, tp } = offsetBatch(gpu);
  rope(tx, tp, { table, out: tx });
  const rotated = await tx.read();
  ropeBackward(tx, tp, { table, out: tx });
  assertClose(await tx.read(), x, 1e-5, "inverse");
  const back = ropeRef(rotated, pos, { numHeads: h, headDim: d, base: 1e4, inverse: true });
  assertClose(back, x, 1e-6, "ropeRef inverse");
  for (const t of [tx, tp, table]) t.dispose();
});
