/**
 * The project's shape, checked from the source text: no import loops, imports run only from a
 * layer to the ones below it, the core uses Deno APIs only in `*_fs.ts` files, no folder imports
 * another folder's `_private` file, production code never imports a float64 reference, and the
 * browser entry reaches no disk code.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const CODE_DIRS = ["base", "kernels", "data", "model", "rl", "cli", "tests", "bench"] as const;
type Folder = typeof CODE_DIRS[number] | ".";

/** Which folders each folder may import (besides itself). */
const MAY_IMPORT: Readonly<Record<Folder, readonly Folder[]>> = {
  base: [],
  kernels: ["base"],
  data: ["base"],
  model: ["base", "kernels", "data"],
  rl: ["base", "kernels", "data", "model"],
  cli: ["base", "kernels", "data", "model", "rl", "bench", "."],
  tests: ["base", "kernels", "data", "model", "rl", "cli", "bench", "."],
  bench: ["base", "kernels", "data", "model", "rl", "tests", "."],
  ".": ["base", "kernels", "data", "model", "rl"],
};
/** Folders that run in a browser too: Deno APIs only in `*_fs.ts`. */
const CORE: readonly Folder[] = ["base", "kernels", "data", "model", "rl"];
const ENTRIES = ["mod.ts", "web.ts"];

interface SourceFile {
  /** Path from the project root, e.g. `model/gemma3.ts`. */
  readonly path: string;
  readonly folder: Folder;
  /** Source without comments. */
  readonly code: string;
  /** Project files it imports statically (`import`/`export … from`, type-only included). */
  readonly imports: readonly string[];
  /** Project files it imports with `import("…")`. */
  readonly dynamicImports: readonly string[];
}

function stripComments(text: string): string {
  // Block comments (JSDoc examples hold import lines that are not imports), then line comments
  // that start a line; string contents such as URLs are left alone.
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

function resolve(from: string, spec: string): string | null {
  if (!spec.startsWith(".")) return null;
  const url = new URL(spec, new URL(from, ROOT));
  return decodeURIComponent(url.pathname.slice(ROOT.pathname.length));
}

async function readSources(): Promise<Map<string, SourceFile>> {
  const paths: string[] = [...ENTRIES];
  for (const dir of CODE_DIRS) {
    for await (const e of Deno.readDir(new URL(`${dir}/`, ROOT))) {
      if (e.isFile && e.name.endsWith(".ts")) paths.push(`${dir}/${e.name}`);
    }
  }
  const files = new Map<string, SourceFile>();
  for (const path of paths) {
    let text: string;
    try {
      text = await Deno.readTextFile(new URL(path, ROOT));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound && ENTRIES.includes(path)) continue;
      throw e;
    }
    const code = stripComments(text);
    const statics = [
      ...code.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gm),
      ...code.matchAll(/^\s*import\s*["']([^"']+)["']/gm),
    ].map((m) => resolve(path, m[1])).filter((p): p is string => p !== null);
    const dynamics = [...code.matchAll(/\bimport\(\s*["']([^"']+)["']\s*[,)]/g)]
      .map((m) => resolve(path, m[1])).filter((p): p is string => p !== null);
    const slash = path.indexOf("/");
    files.set(path, {
      path,
      folder: (slash < 0 ? "." : path.slice(0, slash)) as Folder,
      code,
      imports: [...new Set(statics)],
      dynamicImports: [...new Set(dynamics)],
    });
  }
  return files;
}

const sources = await readSources();

function folderOf(path: string): Folder {
  const slash = path.indexOf("/");
  return (slash < 0 ? "." : path.slice(0, slash)) as Folder;
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

Deno.test("project: every relative import names a file that exists", () => {
  const missing: string[] = [];
  for (const f of sources.values()) {
    for (const to of [...f.imports, ...f.dynamicImports]) {
      if (to.endsWith(".ts") && !sources.has(to)) {
        try {
          Deno.statSync(new URL(to, ROOT));
        } catch {
          missing.push(`${f.path} -> ${to}`);
        }
      }
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("project: no import loops (static imports, type-only ones included)", () => {
  // Tarjan's strongly connected components over the static import graph.
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>();
  const loops: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of sources.get(v)?.imports ?? []) {
      if (!sources.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      const selfLoop = sources.get(v)!.imports.includes(v);
      if (component.length > 1 || selfLoop) loops.push(component.sort());
    }
  };
  for (const v of sources.keys()) if (!index.has(v)) visit(v);
  assert.deepEqual(loops, []);
});

Deno.test("project: imports run only from a layer to the layers below it", () => {
  const wrong: string[] = [];
  for (const f of sources.values()) {
    for (const to of [...f.imports, ...f.dynamicImports]) {
      const target = folderOf(to);
      if (target !== f.folder && !MAY_IMPORT[f.folder].includes(target)) {
        wrong.push(`${f.path} -> ${to}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("project: the core uses Deno APIs only in *_fs.ts files", () => {
  const wrong = [...sources.values()]
    .filter((f) => CORE.includes(f.folder) && !f.path.endsWith("_fs.ts"))
    .filter((f) => /\bDeno\.[a-zA-Z]/.test(f.code))
    .map((f) => f.path);
  assert.deepEqual(wrong, []);
});

Deno.test("project: no folder imports another folder's _private file", () => {
  const wrong: string[] = [];
  for (const f of sources.values()) {
    for (const to of [...f.imports, ...f.dynamicImports]) {
      if (baseName(to).startsWith("_") && folderOf(to) !== f.folder) {
        wrong.push(`${f.path} -> ${to}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("project: production code never imports a float64 reference (*_ref.ts)", () => {
  const production = [...sources.values()].filter((f) =>
    (CORE.includes(f.folder) || f.folder === "cli" || f.folder === ".") &&
    !f.path.endsWith("_ref.ts")
  );
  const wrong: string[] = [];
  for (const f of production) {
    for (const to of [...f.imports, ...f.dynamicImports]) {
      if (to.endsWith("_ref.ts")) wrong.push(`${f.path} -> ${to}`);
    }
  }
  assert.deepEqual(wrong, []);
});

/** Every file reachable from `entry` by static and dynamic imports (a bundler follows both). */
function closure(entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const p = todo.pop()!;
    if (seen.has(p) || !sources.has(p)) continue;
    seen.add(p);
    todo.push(...sources.get(p)!.imports, ...sources.get(p)!.dynamicImports);
  }
  return seen;
}

Deno.test("web.ts: the browser entry reaches no disk code and no Deno API", () => {
  assert.ok(sources.has("web.ts"), "web.ts (the browser entry) exists");
  const reached = [...closure("web.ts")];
  assert.deepEqual(reached.filter((p) => p.endsWith("_fs.ts")), []);
  assert.deepEqual(reached.filter((p) => /\bDeno\.[a-zA-Z]/.test(sources.get(p)!.code)), []);
  assert.ok(reached.includes("model/gemma3.ts") && reached.includes("rl/train.ts"));
});

Deno.test("mod.ts: re-exports everything web.ts does, and deno.json maps both entries", async () => {
  const web = await import("../web.ts");
  const mod = await import("../mod.ts");
  const missing = Object.keys(web).filter((name) => !(name in mod));
  assert.deepEqual(missing, []);
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  assert.deepEqual(denoJson.exports, { ".": "./mod.ts", "./web": "./web.ts" });
});
