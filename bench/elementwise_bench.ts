/**
 * Bandwidth of the memory-bound forward kernels at Gemma 3 1B shapes: RMSNorm (T=128, D=1152),
 * GeGLU (128×6912), and the embedding gather from the 262144×1152 bf16 table (128 ids).
 *
 * Each iteration records enough launches for ~0.3 s of GPU work (calibrated once) and waits
 * once, so Deno's ≥ 10 ms GPU wait stays under 5 %. GB/s counts bytes read plus bytes written.
 */

import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { rmsNorm } from "../kernels/rms_norm.ts";
import { geglu } from "../kernels/geglu.ts";
import { embedding } from "../kernels/embedding.ts";
import { add } from "../kernels/elementwise.ts";
import { benchRate, lcgFill, lcgWords, type RateCase, rateCase, rateLine } from "./_measure.ts";

const gpu = await Gpu.create();
const T = 128, D = 1152, I = 6912, V = 262144;

const x = Tensor.fromArray(gpu, lcgFill(T * D, 1), [T, D]);
const res = Tensor.fromArray(gpu, lcgFill(T * D, 2), [T, D]);
const w = Tensor.fromArray(gpu, lcgFill(D, 3), [D], "bf16");
const normOut = Tensor.empty(gpu, [T, D]);
const gate = Tensor.fromArray(gpu, lcgFill(T * I, 4), [T, I]);
const up = Tensor.fromArray(gpu, lcgFill(T * I, 5), [T, I]);
const gegluOut = Tensor.empty(gpu, [T, I]);

// 604 MB bf16 table, split into storage-binding-sized parts; random bits in the low exponent
// range so every value is a small finite number.
const tableWords = lcgWords(V * D / 2, 7);
for (let i = 0; i < tableWords.length; i++) {
  tableWords[i] = (tableWords[i] & 0x807f807f) | 0x3c003c00;
}
const tableBits = new Uint16Array(tableWords.buffer);
const table = Tensor.fromArray(gpu, tableBits, [V, D], "bf16");
const ids = Tensor.fromArray(gpu, Uint32Array.from({ length: T }, (_, i) => (i * 2654435761) % V));
const embOut = Tensor.empty(gpu, [T, D]);
const scale = Math.fround(Math.sqrt(D));

const cases: RateCase[] = [
  rateCase(
    `rmsNorm ${T}x${D} (bf16 w)`,
    2 * 4 * T * D + 2 * D,
    "GB/s",
    () => rmsNorm(x, w, { out: normOut }),
  ),
  rateCase(
    `rmsNorm+residual ${T}x${D}`,
    3 * 4 * T * D + 2 * D,
    "GB/s",
    () => rmsNorm(x, w, { residual: res, out: normOut }),
  ),
  rateCase(
    `geglu ${T}x${I}`,
    3 * 4 * T * I,
    "GB/s",
    () => geglu(gate, up, { out: gegluOut }),
  ),
  rateCase(
    `embedding ${T} ids from ${V}x${D} bf16 (${table.parts.length} parts)`,
    T * (2 * D + 4 * D + 4),
    "GB/s",
    () => embedding(table, ids, { scale, out: embOut }),
  ),
  rateCase(
    `add ${T}x${D}`,
    3 * 4 * T * D,
    "GB/s",
    () => add(x, res, { out: normOut }),
  ),
];

for (const c of cases) {
  benchRate(gpu, c, { n: 5, warmup: 1, calibrate: { compileLaunches: 2, firstLaunches: 4 } });
}

globalThis.addEventListener("unload", () => {
  console.log(`\nadapter: ${gpu.adapter.description}`);
  for (const c of cases) {
    if (c.rates.length > 0) console.log(rateLine(c, { nameWidth: 52, numberWidth: 7 }));
  }
});
