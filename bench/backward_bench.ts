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

const gpu = await Gpu.create();
const TARGET_S = 0.3;
const T = 256, D = 1152, I = 6912, V = 262144, HEADS = 4, HEAD_DIM = 256;

function fill(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * scale;
  }
  return out;
}

interface Case {
  readonly name: string;
  readonly bytes: number;
  readonly launch: () => void;
  reps: number;
  readonly gbps: number[];
}

/** Times `reps` launches behind one sync, in seconds. */
async function timeLaunches(c: Case, reps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) c.launch();
  await gpu.sync();
  return (performance.now() - t0) / 1000;
}

async function calibrate(c: Case): Promise<void> {
  await timeLaunches(c, 2); // compile
  let reps = 4;
  let s = await timeLaunches(c, reps);
  while (s < 0.05) s = await timeLaunches(c, reps *= 4);
  c.reps = Math.max(1, Math.round((reps * TARGET_S) / s));
}

// RMSNorm: rstd of a unit-variance input is ~1.
const x = Tensor.fromArray(gpu, fill(T * D, 1), [T, D]);
const dy = Tensor.fromArray(gpu, fill(T * D, 2), [T, D]);
const w = Tensor.fromArray(gpu, fill(D, 3, 0.5), [D], "bf16");
const rstd = Tensor.fromArray(gpu, fill(T, 4).map((v) => 1.5 + v), [T]);
const dx = Tensor.empty(gpu, [T, D]);
const dw = Tensor.zeros(gpu, [D]);
const q = Tensor.fromArray(gpu, fill(T * HEADS * HEAD_DIM, 5), [T, HEADS, HEAD_DIM]);
const dq = Tensor.fromArray(gpu, fill(T * HEADS * HEAD_DIM, 6), [T, HEADS, HEAD_DIM]);
const qw = Tensor.fromArray(gpu, fill(HEAD_DIM, 7, 0.5), [HEAD_DIM], "bf16");
const qRstd = Tensor.fromArray(gpu, fill(T * HEADS, 8).map((v) => 1.5 + v), [T * HEADS]);
const dqOut = Tensor.empty(gpu, [T, HEADS, HEAD_DIM]);
const dqw = Tensor.zeros(gpu, [HEAD_DIM]);

// GeGLU.
const gate = Tensor.fromArray(gpu, fill(T * I, 9, 4), [T, I]);
const up = Tensor.fromArray(gpu, fill(T * I, 10), [T, I]);
const dMlp = Tensor.fromArray(gpu, fill(T * I, 11), [T, I]);
const dGate = Tensor.empty(gpu, [T, I]), dUp = Tensor.empty(gpu, [T, I]);
const gateUp = Tensor.fromArray(gpu, fill(T * 2 * I, 12, 4), [T, 2 * I]);
const dGateUp = Tensor.empty(gpu, [T, 2 * I]);

// Embedding: 256 distinct ids spread over the vocabulary (every table part is touched).
const dTable = Tensor.zeros(gpu, [V, D]);
const dEmb = Tensor.fromArray(gpu, fill(T * D, 13), [T, D]);
const ids = Array.from({ length: T }, (_, i) => (i * 2654435761) % V);
const scale = Math.fround(Math.sqrt(D));

/** Bytes of the two-stage dw reduction over `rows` × `d` (see rmsNormDw). */
function dwBytes(rows: number, d: number): number {
  const blocks = Math.ceil(rows / Math.max(16, Math.ceil(rows / 64)));
  return 4 * (2 * rows * d + rows) + (blocks > 1 ? 2 * 4 * blocks * d : 0) + 2 * 4 * d;
}
const dxBytes = (rows: number, d: number) => 3 * 4 * rows * d + 4 * rows + 2 * d;

const cases: Case[] = [
  {
    name: `rmsNormBackward dx ${T}x${D} (bf16 w)`,
    bytes: dxBytes(T, D),
    launch: () => rmsNormBackward(x, w, rstd, dy, { out: dx }),
    reps: 0,
    gbps: [],
  },
  {
    name: `rmsNormBackward dx+dw ${T}x${D}`,
    bytes: dxBytes(T, D) + dwBytes(T, D),
    launch: () => rmsNormBackward(x, w, rstd, dy, { out: dx, dw }),
    reps: 0,
    gbps: [],
  },
  {
    name: `rmsNormBackward q-norm dx+dw ${T}x${HEADS}x${HEAD_DIM}`,
    bytes: dxBytes(T * HEADS, HEAD_DIM) + dwBytes(T * HEADS, HEAD_DIM),
    launch: () => rmsNormBackward(q, qw, qRstd, dq, { out: dqOut, dw: dqw }),
    reps: 0,
    gbps: [],
  },
  {
    name: `gegluBackward ${T}x${I}`,
    bytes: 5 * 4 * T * I,
    launch: () => gegluBackward(gate, up, dMlp, { dGate, dUp }),
    reps: 0,
    gbps: [],
  },
  {
    name: `gegluFusedBackward ${T}x${2 * I}`,
    bytes: 5 * 4 * T * I,
    launch: () => gegluFusedBackward(gateUp, dMlp, { out: dGateUp }),
    reps: 0,
    gbps: [],
  },
  {
    name: `embeddingBackward ${T} ids into ${V}x${D} f32 (${dTable.parts.length} parts)`,
    bytes: 3 * 4 * T * D + 4 * 3 * T,
    launch: () => embeddingBackward(dEmb, ids, { dTable, scale }),
    reps: 0,
    gbps: [],
  },
];

for (const c of cases) {
  Deno.bench({
    name: c.name,
    n: 5,
    warmup: 1,
    async fn(b) {
      if (c.reps === 0) await calibrate(c);
      b.start();
      const s = await timeLaunches(c, c.reps);
      b.end();
      c.gbps.push((c.bytes * c.reps) / s / 1e9);
    },
  });
}

globalThis.addEventListener("unload", () => {
  console.log(`\nadapter: ${gpu.adapter.description}`);
  for (const c of cases) {
    const best = Math.max(...c.gbps);
    const median = c.gbps.toSorted((a, b) => a - b)[Math.floor(c.gbps.length / 2)];
    console.log(
      `${c.name.padEnd(60)} ${median.toFixed(2).padStart(7)} GB/s median, ${
        best.toFixed(2).padStart(7)
      } best (${c.reps} launches/iter)`,
    );
  }
});
