/**
 * Shared by the tests of the reduction families' variants (RMSNorm, log-probs, the global
 * gradient norm, sampling): which variants this adapter runs — the subgroup variant `sg` only
 * where the adapter offers `subgroups` (Chromium's SwiftShader does, llvmpipe and lavapipe do
 * not) — and stand-in runtimes for the deterministic tables.
 *
 * @module
 */

import type { Gpu } from "../kernels/gpu.ts";

/**
 * @param gpu The runtime.
 * @param variant A variant id.
 * @param what The test, for the console line.
 * @returns True (after logging why) when the variant needs subgroups the adapter lacks.
 */
export function skipVariant(gpu: Gpu, variant: string, what: string): boolean {
  if (variant !== "sg" || gpu.features.subgroups) return false;
  console.log(`${what}: variant ${variant} skipped: the adapter offers no subgroups`);
  return true;
}

/**
 * @param gpu The runtime.
 * @param all Every variant id of a family.
 * @param what The test, for the console line.
 * @returns The ids this adapter runs (see {@linkcode skipVariant}).
 */
export function runnableVariants<T extends string>(
  gpu: Gpu,
  all: readonly T[],
  what: string,
): T[] {
  return all.filter((v) => !skipVariant(gpu, v, what));
}

/** The four adapter kinds the tables distinguish. */
export const ADAPTER_KINDS: readonly { fallback: boolean; subgroups: boolean }[] = [
  { fallback: true, subgroups: false },
  { fallback: true, subgroups: true },
  { fallback: false, subgroups: false },
  { fallback: false, subgroups: true },
];

/**
 * A stand-in runtime for the candidate tables (adapter kind, features, WebGPU's default limits).
 *
 * @param kind Fallback adapter or not, subgroups or not.
 * @returns What the `*Candidates` functions read of a `Gpu`.
 */
export function standInGpu(kind: { fallback: boolean; subgroups: boolean }): Gpu {
  return {
    adapter: { isFallbackAdapter: kind.fallback },
    features: { f16: false, timestampQuery: false, subgroups: kind.subgroups },
    limits: { maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupStorageSize: 16384 },
  } as unknown as Gpu;
}
