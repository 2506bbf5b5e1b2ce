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

const gpu = await Gpu.create();
const TARGET_S = 0.3;
const T = 128, D = 1152, I = 6912, V = 262144;

function fill(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
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

const x = Tensor.fromArray(gpu, fill(T * D, 1), [T, D]);
const res = Tensor.fromArray(gpu, fill(T * D, 2), [T, D]);
const w = Tensor.fromArray(gpu, fill(D, 3), [D], "bf16");
const normOut = Tensor.empty(gpu, [T, D]);
const gate = Tensor.fromArray(gpu, fill(T * I, 4), [T, I]);
const up = Tensor.fromArray(gpu, fill(T * I, 5), [T, I]);
const gegluOut = Tensor.empty(gpu, [T, I]);

// 604 MB bf16 table, split into storage-binding-sized parts; random bits in the low exponent
// range so every value is a small finite number.
const tableBits = new Uint16Array(V * D);
{
  const words = new Uint32Array(tableBits.buffer);
  let s = 7;
  for (let i = 0; i < words.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    words[i] = (s & 0x807f807f) | 0x3c003c00;
  }
}
const table = Tensor.fromArray(gpu, tableBits, [V, D], "bf16");
const ids = Tensor.fromArray(gpu, Uint32Array.from({ length: T }, (_, i) => (i * 2654435761) % V));
const embOut = Tensor.empty(gpu, [T, D]);
const scale = Math.fround(Math.sqrt(D));

const cases: Case[] = [
  {
    name: `rmsNorm ${T}x${D} (bf16 w)`,
    bytes: 2 * 4 * T * D + 2 * D,
    launch: () => rmsNorm(x, w, { out: normOut }),
    reps: 0,
    gbps: [],
  },
  {
    name: `rmsNorm+residual ${T}x${D}`,
    bytes: 3 * 4 * T * D + 2 * D,
    launch: () => rmsNorm(x, w, { residual: res, out: normOut }),
    reps: 0,
    gbps: [],
  },
  {
    name: `geglu ${T}x${I}`,
    bytes: 3 * 4 * T * I,
    launch: () => geglu(gate, up, { out: gegluOut }),
    reps: 0,
    gbps: [],
  },
  {
    name: `embedding ${T} ids from ${V}x${D} bf16 (${table.parts.length} parts)`,
    bytes: T * (2 * D + 4 * D + 4),
    launch: () => embedding(table, ids, { scale, out: embOut }),
    reps: 0,
    gbps: [],
  },
  {
    name: `add ${T}x${D}`,
    bytes: 3 * 4 * T * D,
    launch: () => add(x, res, { out: normOut }),
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
      `${c.name.padEnd(52)} ${median.toFixed(2).padStart(7)} GB/s median, ${
        best.toFixed(2).padStart(7)
      } best (${c.reps} launches/iter)`,
    );
  }
});
