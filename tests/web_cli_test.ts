import assert from "node:assert/strict";
import { parseWebArgs } from "../cli/web.ts";
import { FIXTURE } from "./_helpers.ts";

Deno.test("deno task web: flags", () => {
  assert.deepEqual(parseWebArgs([]), { port: 8000, host: "127.0.0.1", model: null });
  assert.deepEqual(parseWebArgs(["--port", "0", "--model", "m"]), {
    port: 0,
    host: "127.0.0.1",
    model: "m",
  });
  assert.equal(parseWebArgs(["--help"]), null);
  assert.throws(() => parseWebArgs(["--port", "70000"]), { name: "UsageError" });
  assert.throws(() => parseWebArgs(["--port", "x"]), { name: "UsageError" });
});

Deno.test("deno task web serves the page, its bundle, the tokenizer and --model by range; SIGTERM stops it", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/web.ts", "--port", "0", "--model", FIXTURE],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/http:\/\/127\.0\.0\.1:\d+\//.test(out)) {
    const { value, done } = await lines.read();
    if (done) break;
    out += value;
  }
  const url = out.match(/http:\/\/127\.0\.0\.1:\d+\//)?.[0];
  try {
    assert.ok(url, `no URL printed: ${out}`);
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script type="module" src="\.\/app\.js">/);
    const app = await fetch(`${url}app.js`);
    assert.equal(app.status, 200);
    assert.match(app.headers.get("content-type") ?? "", /javascript/);
    assert.ok((await app.arrayBuffer()).byteLength > 100_000);
    const tokenizer = await fetch(`${url}tokenizer/tokenizer.json`, { method: "HEAD" });
    assert.equal(tokenizer.status, 200);
    await tokenizer.body?.cancel();
    const size = (await Deno.stat(`${FIXTURE}/model.safetensors`)).size;
    const ranged = await fetch(`${url}model/model.safetensors`, {
      headers: { range: "bytes=0-7" },
    });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), `bytes 0-7/${size}`);
    assert.equal((await ranged.arrayBuffer()).byteLength, 8);
    const missing = await fetch(`${url}nope.txt`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    child.kill("SIGTERM");
    await lines.cancel();
    const status = await child.status;
    const stderr = await new Response(child.stderr).text();
    assert.equal(status.code, 0, stderr);
  }
});
