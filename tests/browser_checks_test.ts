/**
 * The browser checks (`_browser_checks.ts`) on Deno's adapter: every check passes here too, and
 * a too-strict tolerance makes them fail (so a page reporting "ok" means something).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type CheckResult,
  compareValues,
  fixtureForwardCheck,
  grpoStepCheck,
  kernelChecks,
  rejectedKernelCheck,
  subgroupKernelChecks,
  subgroupVariantIds,
  trainingStepsCheck,
} from "./_browser_checks.ts";
import { dirSource } from "../model/file_source_fs.ts";
import { FIXTURE, testGpu } from "./_helpers.ts";

/** The fixture folder from disk (a page passes its URL: the same loader over HTTP). */
const FIXTURE_SOURCE = dirSource(FIXTURE);

function assertAllOk(results: readonly CheckResult[]): void {
  assert.ok(results.length > 0, "no checks ran");
  const failed = results.filter((r) => !r.ok);
  assert.deepEqual(failed, [], `${failed.length} of ${results.length} checks failed`);
}

/** Check names of `results`, grouped by their first word (the kernel or the check). */
function families(results: readonly CheckResult[]): Set<string> {
  return new Set(results.map((r) => r.name.split(" ")[0]));
}

Deno.test("compareValues() scales the error like assertClose, or not at all", () => {
  const r = compareValues("x", [1, 2.5, -3], [1, 2, -4], 0.25);
  assert.equal(r.maxError, 0.25);
  assert.ok(r.ok);
  assert.equal(compareValues("x", [3], [1], 1, { errorScale: "absolute" }).maxError, 2);
  assert.equal(compareValues("x", [NaN], [1], 1).maxError, Infinity);
  assert.equal(compareValues("x", [1], [1, 2], 1).ok, false);
});

Deno.test("kernelChecks() passes every kernel family on Deno's adapter, and fails when too strict", async () => {
  const gpu = await testGpu();
  const t0 = performance.now();
  const results = await kernelChecks(gpu);
  console.log(
    `kernelChecks: ${results.length} checks in ${(performance.now() - t0).toFixed(0)} ms`,
  );
  assertAllOk(results);
  const expected = [
    "matmul",
    "matmulTransA",
    "rmsNorm",
    "rmsNormBackward",
    "rope",
    "ropeBackward",
    "attention",
    "attentionBackward",
    "attentionDecode",
    "writeKvCache",
    "geglu",
    "gegluBackward",
    "embedding",
    "embeddingBackward",
    "add",
    "scale",
    "tokenLogprobs",
    "tokenLogprobsBackward",
    "sample",
    "gradGlobalNorm",
    "adamw",
    "adamwUpdate",
    "loraLinear",
  ];
  assert.deepEqual([...families(results)].sort(), expected.sort());
  // A tolerance 1000× too small fails some comparison of every family with a float tolerance
  // (f32 against float64 differs by more than 1e-8); the exact ones (tolerance 0) still pass.
  const strict = await kernelChecks(gpu, { toleranceScale: 1e-3 });
  assert.deepEqual(strict.map((r) => r.name), results.map((r) => r.name));
  for (const family of families(results)) {
    const of = (rs: readonly CheckResult[]) => rs.filter((r) => r.name.split(" ")[0] === family);
    const exact = of(results).every((r) => r.tolerance === 0);
    assert.equal(of(strict).some((r) => !r.ok), !exact, `${family} under a strict tolerance`);
  }
});

Deno.test("subgroupKernelChecks() fails without subgroups and forces every subgroup variant with them", async () => {
  const gpu = await testGpu();
  assert.deepEqual(subgroupVariantIds(), {
    rms_norm: ["sg"],
    logprobs: ["sg"],
    sampling: ["sg"],
    adamw: ["sg"],
  });
  const results = await subgroupKernelChecks(gpu);
  if (!gpu.features.subgroups) {
    // llvmpipe / lavapipe: one failed result says why (Chromium's SwiftShader runs the rest).
    console.log(`subgroupKernelChecks: ${results[0].detail} (checked in Chromium instead)`);
    assert.equal(results.length, 1);
    assert.equal(results[0].ok, false);
    return;
  }
  assertAllOk(results);
  assert.ok(results.filter((r) => r.name.endsWith(" [sg]")).length > 40);
  const strict = await subgroupKernelChecks(gpu, { toleranceScale: 1e-3 });
  assert.ok(strict.some((r) => !r.ok), "a 1000× stricter tolerance fails");
});

Deno.test("fixtureForwardCheck() matches the fixture's logits over fetch (file:// URL)", async () => {
  const gpu = await testGpu();
  const t0 = performance.now();
  const results = await fixtureForwardCheck(gpu, FIXTURE_SOURCE);
  console.log(
    `fixtureForwardCheck: ${results.length} sequences in ${(performance.now() - t0).toFixed(0)} ms`,
  );
  assertAllOk(results);
  const strict = await fixtureForwardCheck(gpu, FIXTURE_SOURCE, { toleranceScale: 1e-4 });
  assert.ok(strict.every((r) => !r.ok), "1e-8 is below f32 accuracy");
});

Deno.test("grpoStepCheck() gives the fixture's GRPO loss, then a changed loss after one update", async () => {
  const gpu = await testGpu();
  const t0 = performance.now();
  const r = await grpoStepCheck(gpu, FIXTURE_SOURCE);
  console.log(
    `grpoStepCheck: losses ${r.losses.join(", ")}, grad norm ${r.gradNorm} in ${
      (performance.now() - t0).toFixed(0)
    } ms`,
  );
  assertAllOk(r.results);
  assert.ok(r.losses.every(Number.isFinite));
  assert.ok(Number.isFinite(r.gradNorm) && r.gradNorm > 0);
  assert.notEqual(r.losses[1], r.losses[0], "the update changed the policy");
  // Deterministic: the same step again gives the same numbers bit for bit.
  const again = await grpoStepCheck(gpu, FIXTURE_SOURCE);
  assert.deepEqual(again.losses, r.losses);
  const strict = await grpoStepCheck(gpu, FIXTURE_SOURCE, { toleranceScale: 1e-6 });
  assert.ok(strict.results.every((x) => !x.ok), "1e-11 is below f32 accuracy");
});

Deno.test("trainingStepsCheck() SFT and GRPO losses are finite and fall", async () => {
  const gpu = await testGpu();
  const t0 = performance.now();
  const r = await trainingStepsCheck(gpu);
  console.log(
    `trainingStepsCheck in ${(performance.now() - t0).toFixed(0)} ms: SFT ${
      r.sftLosses.map((l) => l.toFixed(4)).join(", ")
    }; GRPO ${r.grpoLosses.map((l) => l.toFixed(4)).join(", ")}`,
  );
  assertAllOk(r.results);
  assert.equal(r.sftLosses.length, 6);
  assert.equal(r.grpoLosses.length, 6);
  // One step cannot fall: the checks can fail.
  const one = await trainingStepsCheck(gpu, { sftSteps: 1, grpoSteps: 1 });
  assert.deepEqual(one.results.map((x) => x.ok), [true, false, true, false]);
});

Deno.test("rejectedKernelCheck(): a rejected kernel is named alone and the device stays usable", async () => {
  const results = await rejectedKernelCheck(await testGpu());
  assertAllOk(results);
  assert.equal(results.length, 3);
});
