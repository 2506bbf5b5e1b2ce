import assert from "node:assert/strict";
import { openBrowser, pageValue, waitForState } from "./_browser.ts";

/** A shortened demo: every phase runs, in seconds on a software adapter. */
const SHORT_DEMO = [
  "sft.steps=6",
  "sft.microBatchSize=8",
  "grpo.numBatches=2",
  "grpo.batchSize=2",
  "grpo.numGenerations=4",
  "grpo.maxNewTokens=16",
  "eval.numQuestions=8",
  "eval.maxNewTokens=16",
  "checkpoint.everySteps=3",
];

Deno.test("deno task web's demo page, reloaded offline from its service worker, runs the shortened demo in Chromium to its accuracy table and generates with the trained model", async () => {
  const session = await openBrowser();
  try {
    const { page, server } = session;
    const query = SHORT_DEMO.map((s) => `set=${encodeURIComponent(s)}`).join("&");
    await page.goto(`${server.url}?${query}`);
    assert.equal(
      await waitForState(page, ["ready", "failed"], 120_000),
      "ready",
      session.log.join("\n"),
    );
    // The service worker has cached the page, its bundle and the tokenizer: stop the server,
    // reload, and the page still starts and trains.
    assert.equal(await pageValue(page, "navigator.serviceWorker.ready.then(() => true)"), true);
    await server.close();
    await page.reload();
    assert.equal(
      await waitForState(page, ["ready", "failed"], 120_000),
      "ready",
      session.log.join("\n"),
    );
    await page.click("#run");
    const state = await waitForState(page, ["done", "failed"], 600_000);
    const error = await pageValue<string>(page, `document.getElementById("error").textContent`);
    assert.equal(state, "done", `${error}\n${session.log.join("\n")}`);
    const rows = await accuracyRows(page);
    assert.deepEqual(rows.map((r) => r[0]), ["base", "sft", "grpo"]);
    for (const row of rows) {
      assert.match(row[2] ?? "", /^\d+\.\d %$/, `accuracy cell of ${row[0]}`);
      assert.equal(row[5], "8", `n of ${row[0]}`);
    }
    const result = await pageValue<{ status: string }>(page, "webtune.result");
    assert.equal(result.status, "completed");
    // The live parts were drawn: a progress bar at its end, loss/reward plots, samples.
    const bar = await pageValue<number[]>(
      page,
      `[document.getElementById("bar").value, document.getElementById("bar").max]`,
    );
    assert.equal(bar[0], bar[1]);
    // (A phase's constant metrics are not plotted: 2 GRPO steps of a barely trained model may
    // all score the same reward.)
    const plots = await pageValue<string>(page, `document.getElementById("plots").textContent`);
    assert.match(plots, /sft: Loss/);
    assert.ok((await page.$$(".sample")).length > 0, "samples shown");
    assert.equal(await pageValue(page, `document.getElementById("download-report").hidden`), false);
    // The second panel generates with the model the run exported (read from memory).
    await page.click("#use-trained");
    await page.click("#generate");
    await page.waitForFunction(`["done", "failed"].includes(document.body.dataset.generate)`);
    const generated = await pageValue<string[]>(
      page,
      `[document.body.dataset.generate, document.getElementById("model-status").textContent,
        document.getElementById("output").textContent]`,
    );
    assert.equal(generated[0], "done", generated.join("\n"));
    assert.match(generated[1], /the demo's grpo export · \d+ tokens in/);
  } finally {
    await session.close();
  }
});

/** The accuracy table's rows (phase key and cells). */
function accuracyRows(page: import("puppeteer-core").Page): Promise<string[][]> {
  return pageValue<string[][]>(
    page,
    `[...document.querySelectorAll("#accuracy-table tr[data-eval]")].map((tr) =>
      [tr.dataset.eval, ...[...tr.children].map((c) => c.textContent)])`,
  );
}

Deno.test("the demo page keeps a run in OPFS as a run folder; after a reload the same run is found completed", async () => {
  const session = await openBrowser();
  try {
    const { page, server } = session;
    const query = [...SHORT_DEMO, "sft.steps=4"].map((s) => `set=${encodeURIComponent(s)}`)
      .join("&");
    const url = `${server.url}?store=opfs&autorun=1&${query}`;
    await page.goto(url);
    assert.equal(
      await waitForState(page, ["done", "failed"], 600_000),
      "done",
      session.log.join("\n"),
    );
    const first = await accuracyRows(page);
    assert.deepEqual(first.map((r) => r[0]), ["base", "sft", "grpo"]);
    // The OPFS run folder has the Deno layout.
    const files = await pageValue<string[]>(
      page,
      `(async () => {
        const runs = await (await navigator.storage.getDirectory()).getDirectoryHandle("webtune-runs");
        const names = [];
        for await (const run of runs.values()) {
          for await (const entry of run.values()) names.push(entry.name);
        }
        return names.sort();
      })()`,
    );
    for (
      const name of [
        "checkpoints",
        "config.json",
        "eval.json",
        "export",
        "metrics.jsonl",
        "pipeline.json",
        "report.html",
        "samples.jsonl",
      ]
    ) {
      assert.ok(files.includes(name), `${name} in ${files.join(", ")}`);
    }
    await page.reload();
    assert.equal(
      await waitForState(page, ["done", "failed"], 600_000),
      "done",
      session.log.join("\n"),
    );
    assert.deepEqual(await accuracyRows(page), first);
    const status = await pageValue<string>(page, "webtune.result.state.status");
    assert.equal(status, "completed");
  } finally {
    await session.close();
  }
});
