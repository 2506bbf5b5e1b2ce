/**
 * A browser tab as a GRPO rollout worker: the demo page joins a learner's run over the NATS
 * server's WebSocket listener (headless Chromium, WebGPU on SwiftShader) and samples every task;
 * the run's metrics and eval.json are those of the run without workers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { openBrowser, waitForState } from "./_browser.ts";
import { TestNatsServer } from "./_nats.ts";
import { remoteCompletions, runResult, SETS, spawn, withoutWorkers } from "./_rollout_runs.ts";

Deno.test("the demo page joins a run as a rollout worker over WebSocket: every task sampled in Chromium, the run's results unchanged", async () => {
  await using server = await TestNatsServer.start();
  const session = await openBrowser();
  try {
    const { page } = session;
    const query = new URLSearchParams({
      worker: server.wsUrl,
      user: server.user,
      password: server.pass,
      autojoin: "1",
    });
    await page.goto(`${session.server.url}?${query}`);
    assert.equal(
      await waitForState(page, ["ready", "failed"], 120_000),
      "ready",
      session.log.join("\n"),
    );
    const out = await Deno.makeTempDir();
    const learner = spawn("cli/train.ts", [
      "--out",
      out,
      ...SETS,
      "--broker",
      server.url,
      "--rollout-timeout",
      "120",
    ], { WEBTUNE_BROKER_USER: server.user, WEBTUNE_BROKER_PASSWORD: server.pass });
    const l = await learner.done;
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stderr, /6 tasks sampled by workers, 0 locally; results rejected: none/);
    assert.equal((await remoteCompletions(out)).reduce((a, b) => a + b, 0), 3 * 2 * 4);
    assert.deepEqual(await runResult(out), await withoutWorkers());
    await page.waitForFunction(`document.body.dataset.worker === "done"`, { timeout: 60_000 });
    const status = await page.evaluate(`document.getElementById("worker-status").textContent`);
    assert.match(String(status), /\(finished\): 6 tasks/);
  } finally {
    await session.close();
  }
});
