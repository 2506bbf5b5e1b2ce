/**
 * `rmsNorm()`'s fused epilogues against the float64 references composed from `rms_norm_ref.ts`
 * and `rope_ref.ts`, and against the unfused launch sequence on the same GPU, for every variant
 * id (`sg` only where the adapter offers subgroups; the browser checks force it in Chromium).
 *
 * Fused vs unfused: the fused kernel runs the same f32 operations in the same order as the
 * unfused sequence of the same variant (the same row sums; RoPE's own WGSL rotation on the
 * same normalised values, RoPE's `1·sin` being exact), so on one adapter the results are
 * bit-identical unless a shader compiler contracts `a·b ± c·d` into fmas differently in the two
 * kernels. The tests assert 1e-6·max(1, |x|) (the contract) and log whether the bits matched.
 *
 * @module
 */

import assert from "node:assert/strict";
import { roundToBf16 } from "../kernels/dtype.ts";
import { ShapeError } from "../kernels/errors.ts";
import { RMS_NORM_VARIANTS, rmsNorm } from "../kernels/rms_norm.ts";
import { rope, RopeTable } from "../kernels/rope.ts";
import { Tensor } from "../kernels/tensor.ts";
import { assertClose, randomArray, testGpu } from "./_helpers.ts";
import { EPS, TOL } from "./_rms_norm.ts";
import { runnableVariants } from "./_reduce_variants.ts";
import { normNextRef, normRopeRef } from "./_rms_norm_fusion.ts";

/** Fused vs unfused on the GPU. */
const SAME = 1e-6;

/** Asserts fused ≈ unfused (SAME) and returns whether every bit matched. */
function assertSame(fused: ArrayLike<number>, unfused: ArrayLike<number>, what: string): boolean {
  assertClose(fused, unfused, SAME, `${what}: fused vs unfused`);
  return Array.from(fused).every((v, i) => Object.is(v, unfused[i]));
}

/** Relative per-row check of an rstd against the reference (the rms_norm_test measure). */
function assertRstd(got: ArrayLike<number>, want: Float64Array, what: string): void {
  assert.equal(got.length, want.length, what);
  for (let r = 0; r < want.length; r++) {
    assert.ok(
      Math.abs(got[r] - want[r]) <= TOL * want[r],
      `${what} row ${r}: ${got[r]} vs ${want[r]}`,
    );
  }
}

Deno.test("rmsNorm({ rope }) gives rope(norm(x)) per head, every variant, odd shapes, unordered positions", async () => {
  const gpu = await testGpu();
  const variants = runnableVariants(gpu, RMS_NORM_VARIANTS, "rmsNorm rope");
  const bits: string[] = [];
  for (const [tokens, heads, hd] of [[5, 3, 6], [7, 3, 10], [5, 3, 34], [7, 1, 34]]) {
    const base = hd === 10 ? 1e6 : 1e4;
    const table = RopeTable.create(gpu, { base, headDim: hd, maxPositions: 128 });
    // Not in order, beyond T, repeated.
    const pos = Int32Array.from({ length: tokens }, (_, t) => (t * 37 + 11) % 128);
    pos[tokens - 1] = pos[0];
    const positions = Tensor.fromArray(gpu, pos);
    for (const variant of variants) {
      for (const dtype of ["f32", "bf16"] as const) {
        const what = `rope ${tokens}x${heads}x${hd} ${dtype} ${variant}`;
        const x = randomArray(tokens * heads * hd, tokens + heads + hd, 3);
        const w32 = randomArray(hd, hd + 1, 0.5);
        const want = normRopeRef(x, dtype === "bf16" ? roundToBf16(w32) : w32, {
          eps: EPS,
          heads,
          base,
          positions: pos,
        });
        const tw = Tensor.fromArray(gpu, w32, [hd], dtype);
        const tx = Tensor.fromArray(gpu, x, [tokens, heads, hd]);
        const rstd = Tensor.empty(gpu, [tokens * heads]);
        const y = rmsNorm(tx, tw, { eps: EPS, variant, rope: { table, positions }, rstd });
        assert.deepEqual(y.shape, [tokens, heads, hd]);
        const got = await y.read();
        assertClose(got, want.y, TOL, what);
        assertRstd(await rstd.read(), want.rstd, `${what} rstd`);
        // In place, without rstd (the model's q/k form).
        const tq = Tensor.fromArray(gpu, x, [tokens, heads, hd]);
        assert.equal(
          rmsNorm(tq, tw, { eps: EPS, variant, rope: { table, positions }, out: tq }),
          tq,
        );
        assertClose(await tq.read(), want.y, TOL, `${what} in place`);
        // The unfused sequence on the GPU.
        const unfusedRstd = Tensor.empty(gpu, [tokens * heads]);
        const u = rmsNorm(tx, tw, { eps: EPS, variant, rstd: unfusedRstd });
        rope(u, positions, { table, out: u });
        const unfused = await u.read();
        if (assertSame(got, unfused, what)) bits.push(what);
        assert.deepEqual(await rstd.read(), await unfusedRstd.read(), `${what} rstd = unfused`);
        for (const t of [tw, tx, rstd, y, tq, unfusedRstd, u]) t.dispose();
      }
    }
    for (const t of [table, positions]) t.dispose();
  }
  console.log(
    `rope: fused bit-identical to unfused in ${bits.length} of ${variants.length * 8} cases`,
  );
});

/** The forms of the sandwich chain: where the first result goes. */
const NEXT_FORMS = [
  "residual → residual",
  "residual → new",
  "residual → x",
  "plain → new",
  "plain → x",
];

Deno.test("rmsNorm({ next }) chains the following pre-norm, every variant, every output form", async () => {
  const gpu = await testGpu();
  const variants = runnableVariants(gpu, RMS_NORM_VARIANTS, "rmsNorm next");
  let identical = 0, cases = 0;
  // D = 37 (odd), 1152 (Gemma 3 1B); 2053 > 8·256: the workgroup variants keep 8 values in registers, re-read more.
  for (const [rows, d] of [[7, 37], [3, 1152], [2, 2053]]) {
    for (const variant of variants) {
      for (const dtype of ["f32", "bf16"] as const) {
        const wAt = (seed: number) => randomArray(d, seed, 0.5);
        const [w32, wNext32] = [wAt(d + 1), wAt(d + 2)];
        const tw = Tensor.fromArray(gpu, w32, [d], dtype);
        const twNext = Tensor.fromArray(gpu, wNext32, [d], dtype);
        const [w, wNext] = dtype === "bf16"
          ? [roundToBf16(w32), roundToBf16(wNext32)]
          : [w32, wNext32];
        const x = randomArray(rows * d, rows * 31 + d, 3), res = randomArray(rows * d, d, 20);
        for (const [f, form] of NEXT_FORMS.entries()) {
          const withRstd = f % 2 === 0;
          const what = `next ${rows}x${d} ${dtype} ${variant} ${form}${withRstd ? " +rstd" : ""}`;
          const residual = form.startsWith("residual");
          const want = normNextRef(x, w, { eps: EPS, residual: residual ? res : undefined, wNext });
          const tx = Tensor.fromArray(gpu, x, [rows, d]);
          const tr = residual ? Tensor.fromArray(gpu, res, [rows, d]) : undefined;
          const out = form.endsWith("residual") ? tr : form.endsWith("x") ? tx : undefined;
          const rstd = withRstd ? Tensor.empty(gpu, [rows]) : undefined;
          const next = {
            w: twNext,
            out: Tensor.empty(gpu, [rows, d]),
            rstd: withRstd ? Tensor.empty(gpu, [rows]) : undefined,
          };
          const y = rmsNorm(tx, tw, { eps: EPS, variant, residual: tr, out, rstd, next });
          if (out) assert.equal(y, out);
          const [gotY, gotNext] = [await y.read(), await next.out.read()];
          assertClose(gotY, want.y, TOL, `${what}: result`);
          assertClose(gotNext, want.next, TOL, `${what}: next`);
          if (rstd) assertRstd(await rstd.read(), want.rstd, `${what}: rstd`);
          if (next.rstd) assertRstd(await next.rstd.read(), want.rstdNext, `${what}: next.rstd`);
          // The unfused sequence (the model's form: h ← h + norm(o) in place, then norm(h)).
          const ux = Tensor.fromArray(gpu, x, [rows, d]);
          const ur = residual ? Tensor.fromArray(gpu, res, [rows, d]) : undefined;
          const h = rmsNorm(ux, tw, { eps: EPS, variant, residual: ur, out: ur });
          const uRstd = Tensor.empty(gpu, [rows]);
          const u = rmsNorm(h, twNext, { eps: EPS, variant, rstd: uRstd });
          const sameY = assertSame(gotY, await h.read(), `${what}: result`);
          const sameNext = assertSame(gotNext, await u.read(), `${what}: next`);
          if (next.rstd) {
            assertSame(await next.rstd.read(), await uRstd.read(), `${what}: next.rstd`);
          }
          cases++;
          if (sameY && sameNext) identical++;
          const all = [tx, tr, rstd, next.out, next.rstd, ux, ur, h, uRstd, u];
          for (const t of new Set(all)) t?.dispose();
        }
        for (const t of [tw, twNext]) t.dispose();
      }
    }
  }
  console.log(`next: fused bit-identical to unfused in ${identical} of ${cases} cases`);
});

Deno.test("rmsNorm() fused epilogues without a forced variant take the tuner's choice", async () => {
  const gpu = await testGpu();
  const table = RopeTable.create(gpu, { base: 1e4, headDim: 6, maxPositions: 8 });
  const positions = Tensor.fromArray(gpu, Int32Array.from([7, 0]));
  const x = randomArray(2 * 2 * 6, 3), w = randomArray(6, 4, 0.5);
  const tx = Tensor.fromArray(gpu, x, [2, 2, 6]), tw = Tensor.fromArray(gpu, w);
  const y = rmsNorm(tx, tw, { rope: { table, positions } });
  const want = normRopeRef(x, w, { eps: EPS, heads: 2, base: 1e4, positions: [7, 0] });
  assertClose(await y.read(), want.y, TOL, "rope, tuner");
  const next = { w: tw, out: Tensor.empty(gpu, [4, 6]) };
  rmsNorm(tx, tw, { next });
  const chained = normNextRef(x, w, { eps: EPS, wNext: w });
  assertClose(await next.out.read(), chained.next, TOL, "next, tuner");
  for (const t of [table, positions, tx, tw, y, next.out]) t.dispose();
});

Deno.test("rmsNorm() rejects bad rope and next options with a ShapeError naming the field", async () => {
  const gpu = await testGpu();
  const table = RopeTable.create(gpu, { base: 1e4, headDim: 6, maxPositions: 8 });
  const table4 = RopeTable.create(gpu, { base: 1e4, headDim: 4, maxPositions: 8 });
  const q = Tensor.zeros(gpu, [3, 2, 6]),
    w = Tensor.zeros(gpu, [6]),
    wb = Tensor.zeros(gpu, [6], "bf16");
  const pos = Tensor.zeros(gpu, [3], "i32"), pos2 = Tensor.zeros(gpu, [2], "i32");
  const posF = Tensor.zeros(gpu, [3], "f32"), flat = Tensor.zeros(gpu, [6]);
  const x = Tensor.zeros(gpu, [3, 6]),
    res = Tensor.zeros(gpu, [3, 6]),
    out = Tensor.zeros(gpu, [3, 6]);
  const rstd = Tensor.zeros(gpu, [3]), rstd4 = Tensor.zeros(gpu, [4]), w7 = Tensor.zeros(gpu, [7]);
  const small = Tensor.zeros(gpu, [3, 5]);
  const fails = (f: () => unknown, field: RegExp) =>
    assert.throws(
      f,
      (e: unknown) =>
        e instanceof ShapeError && /^rmsNorm: /.test(e.message) && field.test(e.message),
    );
  const rope = { table, positions: pos };
  fails(() => rmsNorm(q, w, { rope: { table, positions: posF } }), /rope\.positions must be i32/);
  fails(
    () => rmsNorm(q, w, { rope: { table, positions: pos2 } }),
    /rope\.positions must hold one i32 per token \(3\)/,
  );
  fails(
    () => rmsNorm(Tensor.zeros(gpu, [3, 2, 4]), Tensor.zeros(gpu, [4]), { rope }),
    /rope\.table's headDim/,
  );
  fails(() => rmsNorm(q, w, { rope: { table: table4, positions: pos } }), /rope\.table's headDim/);
  fails(() => rmsNorm(flat, w, { rope }), /x must be \[\.\.\., numHeads, 6\]/);
  fails(
    () => rmsNorm(q, w, { rope, residual: Tensor.zeros(gpu, [3, 2, 6]) }),
    /rope cannot be fused with a residual/,
  );
  fails(() => rmsNorm(x, w, { rope, next: { w, out } }), /rope and next/);
  fails(() => rmsNorm(x, w, { next: { w: wb, out } }), /next\.w must be f32 \[6\]/);
  fails(() => rmsNorm(x, w, { next: { w: w7, out } }), /next\.w must be f32 \[6\]/);
  fails(() => rmsNorm(x, w, { next: { w, out: small } }), /next\.out must be f32 with 18 elements/);
  fails(() => rmsNorm(x, w, { next: { w, out: x } }), /next\.out must not share a buffer/);
  fails(() => rmsNorm(x, w, { residual: res, next: { w, out: res } }), /next\.out must not share/);
  fails(() => rmsNorm(x, w, { out, next: { w, out } }), /next\.out must not share/);
  fails(
    () => rmsNorm(x, w, { next: { w, out: Tensor.zeros(gpu, [3, 6]), rstd } }),
    /next\.rstd must be given exactly when rstd is/,
  );
  fails(
    () => rmsNorm(x, w, { rstd, next: { w, out: Tensor.zeros(gpu, [3, 6]) } }),
    /next\.rstd must be given exactly when rstd is/,
  );
  fails(
    () => rmsNorm(x, w, { rstd, next: { w, out: Tensor.zeros(gpu, [3, 6]), rstd: rstd4 } }),
    /next\.rstd must hold 3 rows/,
  );
  fails(
    () => rmsNorm(x, w, { rstd, next: { w, out: Tensor.zeros(gpu, [3, 6]), rstd } }),
    /next\.rstd must not share/,
  );
  for (
    const t of [table, table4, q, w, wb, pos, pos2, posF, flat, x, res, out, rstd, rstd4, w7, small]
  ) t.dispose();
});
