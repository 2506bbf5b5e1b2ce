/**
 * Bandwidth of the memory-bound backward kernels at Gemma 3 1B shapes (T=256 tokens, D=1152,
 * I=6912, 4 query heads of 256): RMSNorm backward (dx only, as with frozen LoRA weights, and
 * dx + dw), the per-head q-norm backward, GeGLU backward (plain and fused [T, 2I]), and the
 * embedding scatter-add of 256 distinct ids into the f32 262144×1152 table gradient (1.2 GB,
 * split into storage-binding-sized parts; includes the host CSR build and its upload).
 *
 * Each iteration records enough launches for ~0.3 s of GPU work (calibrated once) and waits
 * once, so Deno's ≥ 10 ms GPU wait stays under 5 %. GB/s counts the bytes a kernel must read
 * plus write (the dw stage's small partials included).
 */

import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { rmsNormBackward } from "../kernels/rms_norm.ts";
import { gegluBackward, gegluFusedBackward } from "../kernels/geglu.ts";
import { embeddingBackward } from "../kernels/embedding.ts";
import { benchRate, lcgFill, type RateCase, rateCase, rateLine } from "./_measure.ts";

const gpu = await Gpu.create();
const T = 256, D = 1152, I = 6912, V = 262144, HEADS = 4, HEAD_DIM = 256;

// RMSNorm: rstd of a unit-variance input is ~1.
const x = Tensor.fromArray(gpu, lcgFill(T * D, 1), [T, D]);
const dy = Tensor.fromArray(gpu, lcgFill(T * D, 2), [T, D]);
const w = Tensor.fromArray(gpu, lcgFill(D, 3, 0.5), [D], "bf16");
const rstd = Tensor.fromArray(gpu, lcgFill(T, 4).map((v) => 1.5 + v), [T]);
const dx = Tensor.empty(gpu, [T, D]);
const dw = Tensor.zeros(gpu, [D]);
const q = Tensor.fromArray(gpu, lcgFill(T * HEADS * HEAD_DIM, 5), [T, HEADS, HEAD_DIM]);
const dq = Tensor.fromArray(gpu, lcgFill(T * HEADS * HEAD_DIM, 6), [T, HEADS, HEAD_DIM]);
const qw = Tensor.fromArray(gpu, lcgFill(HEAD_DIM, 7, 0.5), [HEAD_DIM], "bf16");
const qRstd = Tensor.fromArray(gpu, lcgFill(T * HEADS, 8).map((v) => 1.5 + v), [T * HEADS]);
const dqOut = Tensor.empty(gpu, [T, HEADS, HEAD_DIM]);
const dqw = Tensor.zeros(gpu, [HEAD_DIM]);

// GeGLU.
const gate = Tensor.fromArray(gpu, lcgFill(T * I, 9, 4), [T, I]);
const up = Tensor.fromArray(gpu, lcgFill(T * I, 10), [T, I]);
const dMlp = Tensor.fromArray(gpu, lcgFill(T * I, 11), [T, I]);
const dGate = Tensor.empty(gpu, [T, I]), dUp = Tensor.empty(gpu, [T, I]);
const gateUp = Tensor.fromArray(gpu, lcgFill(T * 2 * I, 12, 4), [T, 2 * I]);
const dGateUp = Tensor.empty(gpu, [T, 2 * I]);

// Embedding: 256 distinct ids spread over the vocabulary (every table part is touched).
const dTable = Tensor.zeros(gpu, [V, D]);
const dEmb = Tensor.fromArray(gpu, lcgFill(T * D, 13), [T, D]);
const ids = Array.from({ length: T }, (_, i) => (i * 2654435761) % V);
const scale = Math.fround(Math.sqrt(D));

/** Bytes of the two-stage dw reduction over `rows` × `d` (see rmsNormDw). */
function dwBytes(rows: number, d: number): number {
  const blocks = Math.ceil(rows / Math.max(16, Math.ceil(rows / 64)));
  return 4 * (2 * rows * d + rows) + (blocks > 1 ? 2 * 4 * blocks * d : 0) + 2 * 4 * d;
}
const dxBytes = (rows: number, d: number) => 3 * 4 * rows * d + 4 * rows + 2 * d;

const cases: RateCase[] = [
  rateCase(
    `rmsNormBackward dx ${T}x${D} (bf16 w)`,
    dxBytes(T, D),
    "GB/s",
    () => rmsNormBackward(x, w, rstd, dy, { out: dx }),
  ),
  rateCase(
    `rmsNormBackward dx+dw ${T}x${D}`,
    dxBytes(T, D) + dwBytes(T, D),
    "GB/s",
    () => rmsNormBackward(x, w, rstd, dy, { out: dx, dw }),
  ),
  rateCase(
    `rmsNormBackward q-norm dx+dw ${T}x${HEADS}x${HEAD_DIM}`,
    dxBytes(T * HEADS, HEAD_DIM) + dwBytes(T * HEADS, HEAD_DIM),
    "GB/s",
    () => rmsNormBackward(q, qw, qRstd, dq, { out: dqOut, dw: dqw }),
  ),
  rateCase(
    `gegluBackward ${T}x${I}`,
    5 * 4 * T * I,
    "GB/s",
    () => gegluBackward(gate, up, dMlp, { dGate, dUp }),
  ),
  rateCase(
    `gegluFusedBackward ${T}x${2 * I}`,
    5 * 4 * T * I,
    "GB/s",
    () => gegluFusedBackward(gateUp, dMlp, { out: dGateUp }),
  ),
  rateCase(
    `embeddingBackward ${T} ids into ${V}x${D} f32 (${dTable.parts.length} parts)`,
    3 * 4 * T * D + 4 * 3 * T,
    "GB/s",
    () => embeddingBackward(dEmb, ids, { dTable, scale }),
  ),
];

for (const c of cases) {
  benchRate(gpu, c, { n: 5, warmup: 1, calibrate: { compileLaunches: 2, firstLaunches: 4 } });
}

globalThis.addEventListener("unload", () => {
  console.log(`\nadapter: ${gpu.adapter.description}`);
  for (const c of cases) {
    if (c.rates.length > 0) console.log(rateLine(c, { nameWidth: 60, numberWidth: 7 }));
  }
});
