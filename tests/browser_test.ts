/**
 * webtune in a real browser: headless Chromium (WebGPU on SwiftShader) runs the checks of
 * `_browser_checks.ts` through their browser bundle — kernels against their float64
 * references, the fixture forward against the reference logits (the fixture folder served over
 * HTTP, from `WEBTUNE_FIXTURE` like the Deno fixture tests), a LoRA GRPO step that must give the
 * loss Deno gives, a few SFT and GRPO steps with finite, falling loss — and compiles every
 * kernel variant's WGSL. SwiftShader offers `subgroups` (llvmpipe does not), so the subgroup
 * variants are compiled and forced against the references here.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type BrowserSession, openBrowser } from "./_browser.ts";
import {
  type CheckResult,
  grpoStepCheck,
  type GrpoStepCheckResult,
  type TrainingStepsResult,
} from "./_browser_checks.ts";
import { dirSource } from "../model/file_source_fs.ts";
import { FIXTURE, testGpu } from "./_helpers.ts";

const ENTRY = new URL("./_browser_entry.ts", import.meta.url);

/** Runs `fn` on a page that loaded the checks bundle (`globalThis.webtuneChecks`). */
async function withChecksPage(fn: (session: BrowserSession) => Promise<void>): Promise<void> {
  const session = await openBrowser({ bundles: [{ name: "checks", entry: ENTRY }] });
  try {
    await session.page.goto(`${session.server.url}checks.html`);
    await session.page.waitForFunction(`"webtuneChecks" in globalThis`, { timeout: 60_000 });
    await fn(session);
  } catch (e) {
    throw new Error(`${(e as Error).message}\npage log:\n${session.log.join("\n")}`, { cause: e });
  } finally {
    await session.close();
  }
}

function assertAllOk(what: string, results: readonly CheckResult[]): void {
  assert.ok(results.length > 0, `${what}: no checks ran`);
  const failed = results.filter((r) => !r.ok);
  assert.deepEqual(failed, [], `${what}: ${failed.length} of ${results.length} failed in Chromium`);
}

type Checks =
  | "rejectedKernelCheck"
  | "kernelChecks"
  | "subgroupKernelChecks"
  | "matmulSubgroupChecks"
  | "fixtureForwardCheck"
  | "grpoStepCheck"
  | "trainingStepsCheck";

/** Calls one check function in the page with a fresh `Gpu` and the fixture URL. */
function inPage<T>(session: BrowserSession, name: Checks): Promise<T> {
  return session.page.evaluate(
    async (name: string, fixtureUrl: string) => {
      // deno-lint-ignore no-explicit-any
      const checks = (globalThis as any).webtuneChecks;
      const gpu = await checks.Gpu.create();
      try {
        return await checks[name](gpu, fixtureUrl);
      } finally {
        gpu.destroy();
      }
    },
    name,
    session.fixtureUrl,
  ) as Promise<T>;
}

/** The kernels whose subgroup variants `subgroupKernelChecks` must have forced. */
const SUBGROUP_KERNELS = [
  "rmsNorm",
  "rmsNormBackward",
  "tokenLogprobs",
  "tokenLogprobsBackward",
  "sample",
  "gradGlobalNorm",
];

Deno.test("Chromium: every kernel variant's WGSL compiles, a rejected kernel is named alone and leaves the device usable, kernels and every subgroup variant match their references, the fixture forward matches the reference logits", async () => {
  await withChecksPage(async (session) => {
    const failures = await session.page.evaluate(async () => {
      // deno-lint-ignore no-explicit-any
      const checks = (globalThis as any).webtuneChecks;
      const gpu = await checks.Gpu.create();
      try {
        const variants = checks.kernelVariants();
        const failed = await checks.compileKernelVariants(gpu.device, variants);
        return { count: variants.length, failed };
      } finally {
        gpu.destroy();
      }
    });
    assert.ok(failures.count > 0);
    assert.deepEqual(failures.failed, [], `of ${failures.count} variants`);
    assertAllOk("rejected kernel", await inPage<CheckResult[]>(session, "rejectedKernelCheck"));
    assertAllOk("kernels", await inPage<CheckResult[]>(session, "kernelChecks"));
    // The first result fails unless the adapter offered subgroups: this cannot pass vacuously.
    const subgroups = await inPage<CheckResult[]>(session, "subgroupKernelChecks");
    assertAllOk("subgroup kernels", subgroups);
    for (const kernel of SUBGROUP_KERNELS) {
      assert.ok(
        subgroups.some((r) => r.name.startsWith(`${kernel} `) && / \[sg[^\]]*\]$/.test(r.name)),
        `no subgroup check of ${kernel}`,
      );
    }
    const matmulSg = await inPage<CheckResult[]>(session, "matmulSubgroupChecks");
    assertAllOk("matmul subgroup variants", matmulSg);
    assertAllOk("fixture forward", await inPage<CheckResult[]>(session, "fixtureForwardCheck"));
  });
});

Deno.test("Chromium: a LoRA GRPO step gives Deno's loss; SFT and GRPO steps have finite, falling loss", async () => {
  const gpu = await testGpu();
  const deno = await grpoStepCheck(gpu, dirSource(FIXTURE));
  assertAllOk("GRPO step in Deno", deno.results);
  await withChecksPage(async (session) => {
    const chromium = await inPage<GrpoStepCheckResult>(session, "grpoStepCheck");
    assertAllOk("GRPO step", chromium.results);
    // l0 (before the update) nearly cancels (the advantages sum to zero), so its float32
    // rounding is compared at the scale of the step's losses; l1 and the gradient norm are not
    // cancellations and are compared relative to themselves.
    const scale = Math.max(...deno.losses.map(Math.abs));
    const rel = (a: number, b: number, s = Math.abs(b)) => Math.abs(a - b) / s;
    assert.ok(
      rel(chromium.losses[0], deno.losses[0], scale) <= 1e-5,
      `l0 ${chromium.losses[0]} vs ${deno.losses[0]}`,
    );
    assert.ok(
      rel(chromium.losses[1], deno.losses[1]) <= 1e-5,
      `l1 ${chromium.losses[1]} vs ${deno.losses[1]}`,
    );
    assert.ok(
      rel(chromium.gradNorm, deno.gradNorm) <= 1e-5,
      `|g| ${chromium.gradNorm} vs ${deno.gradNorm}`,
    );
    const steps = await inPage<TrainingStepsResult>(session, "trainingStepsCheck");
    assertAllOk("training steps", steps.results);
  });
});

Deno.test("Chromium: the run store keeps its contract on the real origin-private file system", async () => {
  await withChecksPage(async (session) => {
    const passed = await session.page.evaluate("webtuneChecks.opfsStoreChecks()") as string[];
    // The same checks pass on the in-memory fake in directory_run_store_test.ts.
    assert.ok(passed.length >= 11, passed.join(", "));
  });
});
