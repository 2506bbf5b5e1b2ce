/**
 * Every error class the library can throw is reachable from its entries: a caller can
 * `instanceof` anything it catches. Classes are found in the source (`class X extends …` in
 * base/, kernels/, data/, model/, rl/), then checked at run time against `mod.ts` (all of them)
 * and `web.ts` (those outside `*_fs.ts` files).
 */

import assert from "node:assert/strict";
import * as mod from "../mod.ts";
import * as web from "../web.ts";

const ROOT = new URL("../", import.meta.url);
const LIBRARY_DIRS = ["base", "kernels", "data", "model", "rl"];

interface ClassDecl {
  readonly file: string;
  readonly name: string;
  readonly exported: boolean;
  readonly base: string;
}

async function classDeclarations(): Promise<ClassDecl[]> {
  const out: ClassDecl[] = [];
  for (const dir of LIBRARY_DIRS) {
    for await (const e of Deno.readDir(new URL(`${dir}/`, ROOT))) {
      if (!e.isFile || !e.name.endsWith(".ts")) continue;
      const file = `${dir}/${e.name}`;
      // Comments hold example classes (`class ConfigError extends FieldError` in a JSDoc).
      const code = (await Deno.readTextFile(new URL(file, ROOT)))
        .replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
      const re = /^(export\s+)?(?:abstract\s+)?class\s+(\w+)\s+extends\s+([\w.]+)/gm;
      for (const m of code.matchAll(re)) {
        out.push({ file, name: m[2], exported: m[1] !== undefined, base: m[3] });
      }
    }
  }
  return out;
}

Deno.test("every error class of the library is exported from mod.ts (and web.ts outside *_fs.ts)", async () => {
  const decls = await classDeclarations();
  const modExports = mod as Record<string, unknown>;
  const webExports = web as Record<string, unknown>;
  const errors: string[] = [];
  const problems: string[] = [];
  for (const d of decls) {
    if (!d.exported) {
      // A module-private error class could be thrown through the API with no way to test for it.
      if (/Error$/.test(d.base)) problems.push(`${d.file}: class ${d.name} is not exported`);
      continue;
    }
    const cls = (await import(new URL(d.file, ROOT).href))[d.name];
    assert.equal(typeof cls, "function", `${d.file}: ${d.name}`);
    if (!(cls.prototype instanceof Error)) continue;
    errors.push(d.name);
    if (modExports[d.name] !== cls) problems.push(`${d.name} (${d.file}) is not in mod.ts`);
    if (!d.file.endsWith("_fs.ts") && webExports[d.name] !== cls) {
      problems.push(`${d.name} (${d.file}) is not in web.ts`);
    }
  }
  assert.deepEqual(problems, []);
  // The scan found the classes (a broken pattern would pass vacuously).
  for (const name of ["SafetensorsError", "CheckpointError", "DatasetFormatError", "GpuError"]) {
    assert.ok(errors.includes(name), `${name} found: ${errors.join(", ")}`);
  }
});
