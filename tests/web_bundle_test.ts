import assert from "node:assert/strict";
import { bundleForBrowser } from "../cli/web_server.ts";

const ROOT = new URL("..", import.meta.url);

Deno.test("the browser bundle of web.ts holds no *_fs.ts module and no Deno API", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/web.js`;
    await bundleForBrowser(new URL("web.ts", ROOT), out, { minify: false });
    const code = await Deno.readTextFile(out);
    // esbuild marks each module it inlines with a `// path/to/module.ts` comment.
    const modules = [...code.matchAll(/^\/\/ ((?:base|kernels|data|model|rl)\/\S+\.ts)$/gm)].map(
      (m) => m[1],
    );
    assert.ok(modules.includes("kernels/gpu.ts") && modules.includes("rl/train.ts"), "markers");
    assert.deepEqual(modules.filter((m) => m.endsWith("_fs.ts")), []);
    assert.deepEqual(modules.filter((m) => m.endsWith("_ref.ts")), []);
    assert.deepEqual([...new Set(code.match(/\bDeno\.[A-Za-z]+/g) ?? [])], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
