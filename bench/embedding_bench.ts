/**
 * Bandwidth of the embedding kernels at Gemma 3 1B shapes (V = 262144, D = 1152): the gather of
 * 128 ids from the 604 MB bf16 table, and the scatter-add of 256 distinct ids into the f32
 * table gradient (1.2 GB; includes the host CSR build and its upload). Both tables are split
 * into storage-binding-sized parts.
 *
 * Each iteration records enough launches for ~0.3 s of GPU work (calibrated once) and waits
 * once, so Deno's ≥ 10 ms GPU wait stays under 5 %. GB/s counts bytes read plus bytes written.
 *
 * @module
 */

import { Gpu } from "../kernels/gpu.ts";
import { Tensor } from "../kernels/tensor.ts";
import { embedding } from "../kernels/embedding.ts";
import { embeddingBackward } from "../kernels/embedding_backward.ts";
import { benchRates, lcgFill, lcgWords, type RateCase, rateCase } from "./_measure.ts";

const gpu = await Gpu.create();
const D = 1152, V = 262144, F = 128, T = 256;
const scale = Math.fround(Math.sqrt(D));

// 604 MB bf16 table; random bits in the low exponent range so every value is a small finite
// number.
const tableWords = lcgWords(V * D / 2, 7);
for (let i = 0; i < tableWords.length; i++) {
  tableWords[i] = (tableWords[i] & 0x807f807f) | 0x3c003c00;
}
const table = Tensor.fromArray(gpu, new Uint16Array(tableWords.buffer), [V, D], "bf16");
const ids = Tensor.fromArray(gpu, Uint32Array.from({ length: F }, (_, i) => (i * 2654435761) % V));
const out = Tensor.empty(gpu, [F, D]);

// Backward: 256 distinct ids spread over the vocabulary (every table part is touched).
const dTable = Tensor.zeros(gpu, [V, D]);
const dOut = Tensor.fromArray(gpu, lcgFill(T * D, 13), [T, D]);
const hostIds = Array.from({ length: T }, (_, i) => (i * 2654435761) % V);

const cases: RateCase[] = [
  rateCase(
    `embedding ${F} ids from ${V}x${D} bf16 (${table.parts.length} parts)`,
    F * (2 * D + 4 * D + 4),
    "GB/s",
    () => embedding(table, ids, { scale, out }),
  ),
  rateCase(
    `embeddingBackward ${T} ids into ${V}x${D} f32 (${dTable.parts.length} parts)`,
    3 * 4 * T * D + 4 * 3 * T,
    "GB/s",
    () => embeddingBackward(dOut, hostIds, { dTable, scale }),
  ),
];

benchRates(gpu, cases, {
  bench: { n: 5, warmup: 1, calibrate: { compileLaunches: 2, firstLaunches: 4 } },
  line: { nameWidth: 60, numberWidth: 7 },
});
