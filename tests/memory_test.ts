import assert from "node:assert/strict";
import { AllocationTracker, BufferPool } from "../kernels/buffer_pool.ts";
import { formatBytes } from "../kernels/errors.ts";
import { gemma3_1b, gemma3Config } from "../model/config.ts";
import {
  estimateStepMemory,
  maxRowsThatFit,
  parameterCounts,
  trainMemoryError,
} from "../rl/memory_estimate.ts";

/** A device whose buffer creations fail with out-of-memory once `limit` bytes are held. */
function fakeDevice(limit: number): GPUDevice {
  let held = 0;
  let failed: string | null = null;
  return {
    pushErrorScope() {
      failed = null;
    },
    popErrorScope() {
      return Promise.resolve(failed ? ({ message: failed } as GPUError) : null);
    },
    createBuffer(d: GPUBufferDescriptor) {
      if (held + d.size > limit) failed = `cannot allocate ${d.size} bytes`;
      else held += d.size;
      return { size: d.size, usage: d.usage, destroy() {} } as unknown as GPUBuffer;
    },
  } as unknown as GPUDevice;
}

Deno.test("BufferPool reports allocations that the device refused for lack of memory", async () => {
  const pool = new BufferPool(fakeDevice(1 << 20), new AllocationTracker());
  pool.acquire(1 << 19, 0x80);
  pool.acquire(1 << 19, 0x80);
  pool.acquire(1 << 19, 0x80); // over the 1 MiB limit
  const checks = pool.takePendingAllocations();
  const errors = await Promise.all(checks.map((c) => c.error));
  assert.deepEqual(errors.map((e) => e !== null), [false, false, true]);
  assert.equal(checks[2].allocatedBytes, 1 << 20);
  assert.equal(pool.takePendingAllocations().length, 0);
});

Deno.test("parameterCounts() gives Gemma 3 1B's size and LoRA rank-32 count", () => {
  const { base, loraPerRank } = parameterCounts(gemma3_1b());
  assert.ok(base > 0.99e9 && base < 1.01e9, `base ${base}`);
  assert.equal(loraPerRank * 32, 26_091_520);
});

Deno.test("estimateStepMemory() grows with tokens and fits the recipe's GRPO step in 4 GiB", () => {
  const c = gemma3_1b();
  const shape = { mode: "lora" as const, loraRank: 32, weightBytes: 2, rows: 1, seqLen: 256 };
  const one = estimateStepMemory(c, shape);
  const two = estimateStepMemory(c, { ...shape, rows: 2 });
  assert.ok(two.activations > 1.9 * one.activations && two.weights === one.weights);
  const grpo = estimateStepMemory(c, { ...shape, rows: 4, newTokens: 768 });
  assert.ok(grpo.total < 4 * 2 ** 30, `GRPO step ${formatBytes(grpo.total)}`);
});

Deno.test("trainMemoryError() names the estimate and a micro-batch size that fits", () => {
  const c = gemma3Config({
    vocabSize: 1000,
    hiddenSize: 64,
    intermediateSize: 128,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 32,
    slidingWindow: 16,
    slidingWindowPattern: 2,
  });
  const shape = { mode: "full" as const, weightBytes: 4, rows: 64, seqLen: 512 };
  const budget = estimateStepMemory(c, { ...shape, rows: 5 }).total + 1;
  assert.equal(maxRowsThatFit(c, shape, budget), 5);
  const e = trainMemoryError(c, shape, budget, "sft");
  assert.match(e.message, /too little GPU memory for the chosen lengths/);
  assert.match(e.message, /sft with 64 sequences of 512 tokens needs about/);
  assert.match(e.message, /--set sft\.microBatchSize=5 fits/);
});
