import assert from "node:assert/strict";
import { acceptance, fitGrpoStep, runPart } from "../cli/device_check.ts";
import { parseDevicePackArgs, writeDevicePack } from "../cli/device_pack.ts";
import { GRPO_STEP_FULL } from "../bench/grpo_step.ts";

const PARTS = ["adapter", "model", "warmup", "tuning", "matmul", "prefill", "decode", "grpoStep"];

/** `x` is a finite number (and > 0 when asked). */
function number(x: unknown, what: string, positive = true): number {
  assert.equal(typeof x, "number", `${what}: ${JSON.stringify(x)}`);
  assert.ok(Number.isFinite(x as number), `${what}: ${x}`);
  if (positive) assert.ok((x as number) > 0, `${what}: ${x} > 0`);
  return x as number;
}

Deno.test("device-check --quick writes one JSON summary with every part measured", async () => {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/check.json`;
  const started = performance.now();
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", "cli/device_check.ts", "--quick", "--out", out],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  const log = new TextDecoder().decode(stderr);
  assert.equal(code, 0, log);
  const s = JSON.parse(await Deno.readTextFile(out));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(stdout)), s, "stdout holds the same JSON");
  assert.equal(s.format, "webtune-device-check");
  assert.equal(s.check, "quick");
  assert.deepEqual(s.failed, []);
  for (const part of PARTS) {
    assert.equal(s[part]?.status, "ok", `${part}: ${JSON.stringify(s[part])}`);
    number(s[part].seconds, `${part}.seconds`, false);
    assert.match(log, new RegExp(`device-check: ${part} ok`));
  }
  assert.equal(typeof s.adapter.info.description, "string");
  assert.ok(Array.isArray(s.adapter.features));
  number(s.adapter.limits.maxBufferSize, "adapter.limits.maxBufferSize");
  assert.equal(s.adapter.webtune.adapter.description, s.adapter.info.description);
  assert.equal(s.adapter.peak, null, "a software adapter has no known peak");
  number(s.model.weightBytes, "model.weightBytes");
  number(s.warmup.queuedTuningJobs, "warmup.queuedTuningJobs", false);
  assert.equal(s.tuning.mode, "full");
  number(s.tuning.tuneSeconds, "tuning.tuneSeconds", false);
  number(s.tuning.jobs, "tuning.jobs", false);
  assert.equal(s.matmul.sizes.length, 2);
  for (const size of s.matmul.sizes) {
    number(size.jaxJs.gflops, `jax-js ${size.size}`);
    assert.equal(size.webtune[0].variant, "default");
    assert.equal(size.webtune.length, size.candidates.length + 1, "every candidate timed");
    for (const r of size.webtune) {
      number(r.gflops, `webtune ${size.size} ${r.variant}`);
      assert.ok(r.maxAbsDiffVsJax <= 1e-4, `${size.size} ${r.variant}: ${r.maxAbsDiffVsJax}`);
    }
    number(size.defaultOverJaxJs, "defaultOverJaxJs");
  }
  assert.equal(s.matmul.best.size, 64);
  // The targets: no peak is known for a software adapter, the jax-js ratio is measured.
  assert.equal(s.acceptance.matmulSize, 64);
  assert.deepEqual(s.acceptance.matmulPercentOfPeak, { value: null, target: 40, pass: null });
  const ratio = s.acceptance.matmulOverJaxJs;
  assert.equal(
    ratio.value,
    s.matmul.sizes.find((z: { size: number }) => z.size === 64).defaultOverJaxJs,
  );
  assert.equal(ratio.pass, ratio.value >= 1);
  assert.equal(s.acceptance.prefillPercentOfMatmul.value, s.prefill.percentOfMatmul);
  for (const key of ["tokensPerSecond", "gflops", "percentOfMatmul"]) {
    number(s.prefill[key], `prefill.${key}`);
  }
  for (const key of ["tokensPerSecond", "gbPerSecond", "weightBytesPerToken"]) {
    number(s.decode[key], `decode.${key}`);
  }
  number(s.decode.readbackEvery8.tokensPerSecond, "decode.readbackEvery8.tokensPerSecond");
  number(s.prefill.prefills, "prefill.prefills");
  for (
    const key of [
      "stepSeconds",
      "rolloutTokensPerSecond",
      "trainingTokensPerSecond",
      "trainingGflops",
      "peakAllocatedBytes",
      "generatedTokens",
    ]
  ) number(s.grpoStep[key], `grpoStep.${key}`);
  number(s.grpoStep.loss, "grpoStep.loss", false);
  assert.equal(s.grpoStep.completions, 4);
  console.log(`device-check --quick took ${seconds.toFixed(1)} s`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runPart() records an error or a timeout and keeps what the part measured", async () => {
  const failed = await runPart(5, (out) => {
    out.measured = 1;
    return Promise.reject(new RangeError("bad size"));
  });
  assert.equal(failed.status, "error");
  assert.equal(failed.error, "RangeError: bad size");
  assert.equal(failed.measured, 1);
  let aborted = false;
  const slow = await runPart(0.05, async (out, signal) => {
    out.first = 2;
    await new Promise((resolve) => setTimeout(resolve, 300));
    aborted = signal.aborted;
    out.second = 3; // after the box: not in the record
  });
  assert.equal(slow.status, "timeout");
  assert.equal(slow.first, 2);
  assert.equal(slow.second, undefined);
  assert.ok(slow.seconds < 0.3, `${slow.seconds}`);
  await new Promise((resolve) => setTimeout(resolve, 350));
  assert.ok(aborted, "the part's signal is aborted at the end of its box");
});

Deno.test("fitGrpoStep() shortens the completions only when the estimate overruns the box", () => {
  // 1000 prefill tokens/s, 10 decode steps/s: the full step ≈ 1 + 76.8 + 20.5 ≈ 98 s.
  const rates = { prefillTokensPerSecond: 1000, decodeStepsPerSecond: 10 };
  const roomy = fitGrpoStep(rates, GRPO_STEP_FULL, 200);
  assert.equal(roomy.sizes, GRPO_STEP_FULL);
  assert.ok(Math.abs(roomy.estimate! - (1.024 + 76.8 + 20.48)) < 1e-9);
  const tight = fitGrpoStep(rates, GRPO_STEP_FULL, 60);
  assert.equal(tight.sizes.maxNewTokens, 192); // 384 would take ≈ 52 s > 48 s
  assert.equal(tight.sizes.promptLength, 256);
  assert.ok(tight.estimate! <= 0.8 * 60);
  // Without measured rates nothing is shortened.
  assert.equal(fitGrpoStep({}, GRPO_STEP_FULL, 1).sizes, GRPO_STEP_FULL);
});

Deno.test("device-pack: the bundled check runs from the pack's run.sh with its own Deno", async () => {
  assert.deepEqual(parseDevicePackArgs([]), { out: "device_pack", xz: false });
  assert.throws(() => parseDevicePackArgs(["--out", ""]), /--out must name a folder/);
  const dir = await Deno.makeTempDir();
  const files = await writeDevicePack({ out: `${dir}/pack`, xz: false });
  assert.deepEqual(files.map((f) => f.slice(dir.length)), [
    "/pack/device_check.js",
    "/pack/deno",
    "/pack/run.sh",
  ]);
  // The pack needs nothing of the checkout: run it from elsewhere, without the npm cache.
  const out = `${dir}/check.json`;
  const { code, stderr } = await new Deno.Command("sh", {
    args: [`${dir}/pack/run.sh`, "--quick", "--out", out],
    cwd: dir,
    env: { DENO_DIR: `${dir}/empty-deno-dir` },
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const s = JSON.parse(await Deno.readTextFile(out));
  assert.equal(s.check, "quick");
  assert.deepEqual(s.failed, []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("acceptance() reads issue 14's targets off a summary; unmeasured values pass null", () => {
  const summary = {
    matmul: {
      sizes: [
        { size: 1024, webtune: [{ variant: "default", percentOfPeak: 10 }], defaultOverJaxJs: 0.5 },
        {
          size: 4096,
          webtune: [{ variant: "default", percentOfPeak: 39.9 }, {
            variant: "reg",
            percentOfPeak: 90,
          }],
          defaultOverJaxJs: 1.2,
        },
      ],
    },
    prefill: { percentOfMatmul: 60 },
    decode: { status: "error" },
  };
  const a = acceptance(summary);
  assert.equal(a.matmulSize, 4096);
  assert.deepEqual(a.matmulPercentOfPeak, { value: 39.9, target: 40, pass: false }); // the default, not the best variant
  assert.deepEqual(a.matmulOverJaxJs, { value: 1.2, target: 1, pass: true });
  assert.deepEqual(a.prefillPercentOfMatmul, { value: 60, target: 60, pass: true });
  assert.deepEqual(a.decodePercentOfBandwidth, { value: null, target: 50, pass: null });
  assert.equal(acceptance({}).matmulSize, null);
});
