/**
 * The kernel tuning cache on disk (Deno): one JSON file, by default `webtune/tuning.json` under
 * the user's cache folder, holding the tuned choices of every adapter by its key:
 *
 * ```json
 * { "format": "webtune-tuning", "adapters": { "<adapter key>": { "updatedAt": "…",
 *   "choices": { "matmul|nt:bf16:m1:n2048:k1152": "splitk8" } } } }
 * ```
 *
 * Written atomically (`base/atomic_fs.ts`). A cache is only a cache: a damaged or unreadable
 * file is reported through `onWarning` and treated as empty (the next save replaces it), and a
 * failed save is reported the same way; neither stops the caller.
 *
 * @module
 */

import { dirName, writeTextAtomic } from "../base/atomic_fs.ts";
import type { TuningChoices, TuningStore } from "./tuning.ts";

const FORMAT = "webtune-tuning";

/**
 * Where the tuning cache lives by default: `$XDG_CACHE_HOME` or `~/.cache` (Linux and other
 * Unixes), `~/Library/Caches` (macOS), `%LOCALAPPDATA%` (Windows), then `webtune/tuning.json`.
 *
 * @param env Environment variables (default: the process's).
 * @param os Operating system (default: `Deno.build.os`).
 * @returns The path, or null when the environment names no home or cache folder.
 * @example
 * ```ts
 * import { defaultTuningCachePath } from "./tuning_fs.ts";
 * console.log(defaultTuningCachePath({ HOME: "/home/ada" }, "linux"));
 * // "/home/ada/.cache/webtune/tuning.json"
 * console.log(defaultTuningCachePath({ HOME: "/Users/ada" }, "darwin"));
 * // "/Users/ada/Library/Caches/webtune/tuning.json"
 * ```
 */
export function defaultTuningCachePath(
  env: Readonly<Record<string, string | undefined>> = Deno.env.toObject(),
  os: string = Deno.build.os,
): string | null {
  if (os === "windows") {
    const base = env.LOCALAPPDATA ?? (env.USERPROFILE && `${env.USERPROFILE}\\AppData\\Local`);
    return base ? `${base}\\webtune\\tuning.json` : null;
  }
  const base = os === "darwin"
    ? env.HOME && `${env.HOME}/Library/Caches`
    : env.XDG_CACHE_HOME || (env.HOME && `${env.HOME}/.cache`);
  return base ? `${base}/webtune/tuning.json` : null;
}

/** Options of {@linkcode fileTuningStore}. */
export interface FileTuningStoreOptions {
  /**
   * Receives a line when the file is damaged or unreadable (then treated as empty) or cannot be
   * written (default `console.warn`).
   */
  readonly onWarning?: (message: string) => void;
}

interface CacheFile {
  format: string;
  adapters: Record<string, { updatedAt: string; choices: Record<string, string> }>;
}

/** The file's adapters, or a reason it cannot be read (a missing file is empty, not a problem). */
async function readCache(path: string): Promise<{ file: CacheFile; problem: string | null }> {
  const empty: CacheFile = { format: FORMAT, adapters: {} };
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { file: empty, problem: null };
    return { file: empty, problem: `cannot be read (${(e as Error).message})` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { file: empty, problem: `is not JSON (${(e as Error).message})` };
  }
  const adapters = (json as Partial<CacheFile> | null)?.adapters;
  if ((json as Partial<CacheFile> | null)?.format !== FORMAT || !isRecord(adapters)) {
    return { file: empty, problem: `is not a webtune tuning cache (no "format": "${FORMAT}")` };
  }
  const file: CacheFile = { format: FORMAT, adapters: {} };
  for (const [key, entry] of Object.entries(adapters)) {
    const choices = isRecord(entry) ? entry.choices : undefined;
    if (!isRecord(choices) || Object.values(choices).some((v) => typeof v !== "string")) {
      return { file: empty, problem: `holds a malformed entry for adapter "${key}"` };
    }
    file.adapters[key] = {
      updatedAt: String(entry.updatedAt ?? ""),
      choices: choices as Record<string, string>,
    };
  }
  return { file, problem: null };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * A {@linkcode TuningStore} in one JSON file (see the module doc), shared by every adapter and
 * process of this user; each save re-reads the file and replaces only this adapter's entries.
 *
 * @param path The file (default {@linkcode defaultTuningCachePath}; where there is none, the
 *   store keeps choices in memory and warns once).
 * @param options Where warnings go.
 * @returns The store.
 * @example
 * ```ts
 * import { fileTuningStore } from "./tuning_fs.ts";
 * const dir = await Deno.makeTempDir();
 * await fileTuningStore(`${dir}/tuning.json`).save("my adapter", { "matmul|nt:m1": "splitk8" });
 * console.log(await fileTuningStore(`${dir}/tuning.json`).load("my adapter"));
 * // { "matmul|nt:m1": "splitk8" }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function fileTuningStore(
  path?: string,
  options: FileTuningStoreOptions = {},
): TuningStore {
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  const file = path ?? defaultTuningCachePath();
  const memory = new Map<string, TuningChoices>();
  let warned = false;
  const noFile = () => {
    if (!warned) warn("tuning cache: no home or cache folder is set; choices are not kept");
    warned = true;
  };
  return {
    async load(adapterKey) {
      if (file === null) return (noFile(), { ...memory.get(adapterKey) });
      const { file: cache, problem } = await readCache(file);
      if (problem !== null) warn(`tuning cache ${file} ${problem}; starting empty`);
      return { ...cache.adapters[adapterKey]?.choices };
    },
    async save(adapterKey, choices) {
      if (file === null) {
        noFile();
        memory.set(adapterKey, { ...memory.get(adapterKey), ...choices });
        return;
      }
      try {
        const { file: cache } = await readCache(file); // a damaged file was reported by load
        cache.adapters[adapterKey] = {
          updatedAt: new Date().toISOString(),
          choices: { ...cache.adapters[adapterKey]?.choices, ...choices },
        };
        await Deno.mkdir(dirName(file), { recursive: true });
        await writeTextAtomic(file, JSON.stringify(cache, null, 2) + "\n");
      } catch (e) {
        warn(`tuning cache ${file} cannot be written (${(e as Error).message}); choices not kept`);
      }
    },
  };
}
