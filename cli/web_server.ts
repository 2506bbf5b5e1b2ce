/**
 * The demo site's server behind `deno task web`: bundles `web/app.ts` (and any extra page
 * entries, e.g. the browser tests') with `deno bundle --platform browser`, then serves the
 * bundle, `web/`, Gemma 3's `tokenizer.json` and optional folders (a model folder, fixtures)
 * on 127.0.0.1 through `sirv` (static files with HTTP range requests, which
 * `loadGemma3FromUrl` uses to read safetensors by byte range).
 *
 * @module
 */

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import sirv from "sirv";
import { defaultTokenizerFileUrl } from "../model/tokenizer_fs.ts";

const ROOT = new URL("..", import.meta.url);
/** The demo page's folder (`index.html`, `app.ts`). */
export const WEB_DIR: string = new URL("web/", ROOT).pathname;

/** A page entry to bundle: served as `/<name>.js`, with a bare page `/<name>.html` loading it. */
export interface BundleEntry {
  /** Output name without `.js`, e.g. `app`. */
  readonly name: string;
  /** The TypeScript module to bundle (absolute path or `file:` URL). */
  readonly entry: string | URL;
}

/** Options of {@linkcode startWebServer}. */
export interface WebServerOptions {
  /** Interface to listen on (default `127.0.0.1`). */
  readonly hostname?: string;
  /** Port (default 0: any free port). */
  readonly port?: number;
  /** Extra folders served under a URL prefix, e.g. `{ "/model/": "models/gemma-3-1b-it" }`. */
  readonly mounts?: Readonly<Record<string, string>>;
  /** Extra page bundles beside the demo's `app.js`. */
  readonly bundles?: readonly BundleEntry[];
  /** Minify the bundles (default true). */
  readonly minify?: boolean;
}

/** A running server. */
export interface WebServer {
  /** Its address, e.g. `http://127.0.0.1:8000/`. */
  readonly url: string;
  /** The bundles built, by name, with their sizes in bytes. */
  readonly bundleBytes: Readonly<Record<string, number>>;
  /** Stops serving and removes the bundles (once; later calls wait for the first). */
  close(): Promise<void>;
}

/**
 * Bundles a page entry for browsers (`deno bundle --platform browser`).
 *
 * @param entry The module.
 * @param outFile The `.js` file to write.
 * @param options `minify`.
 * @throws {Error} With Deno's output when bundling fails.
 */
export async function bundleForBrowser(
  entry: string | URL,
  outFile: string,
  options: { readonly minify: boolean },
): Promise<void> {
  const path = entry instanceof URL ? entry.pathname : entry;
  const args = ["bundle", "--quiet", "--platform", "browser", "-o", outFile];
  if (options.minify) args.push("--minify");
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...args, path],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `bundling ${path} failed:\n${new TextDecoder().decode(out.stderr)}` +
        new TextDecoder().decode(out.stdout),
    );
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

/**
 * Bundles the demo page (and `options.bundles`) and serves them with `web/` on 127.0.0.1:
 * `/` the demo page, `/app.js` its bundle, `/sw.js` its service worker (offline use), `/tokenizer/tokenizer.json` Gemma 3's tokenizer, and
 * each mount under its prefix. Every file is served with range support and `no-cache`.
 *
 * @param options Host, port, mounts, extra bundles.
 * @returns The running server.
 * @example
 * ```ts ignore
 * const server = await startWebServer({ port: 8000 });
 * console.log(`open ${server.url}`);
 * ```
 */
export async function startWebServer(options: WebServerOptions = {}): Promise<WebServer> {
  const bundleDir = await Deno.makeTempDir({ prefix: "webtune-web-" });
  const bundleBytes: Record<string, number> = {};
  const site = [
    { name: "app", entry: new URL("web/app.ts", ROOT) },
    { name: "sw", entry: new URL("web/sw.ts", ROOT) },
  ];
  const extra = options.bundles ?? [];
  await Promise.all([...site, ...extra].map(async ({ name, entry }) => {
    const file = `${bundleDir}/${name}.js`;
    await bundleForBrowser(entry, file, { minify: options.minify ?? true });
    bundleBytes[name] = (await Deno.stat(file)).size;
    if (extra.some((b) => b.name === name)) {
      const page = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">` +
        `<title>${name}</title><script type="module" src="./${name}.js"></script>`;
      await Deno.writeTextFile(`${bundleDir}/${name}.html`, page);
    }
  }));
  const tokenizerDir = new URL(".", defaultTokenizerFileUrl("tokenizer.json")).pathname;
  const serve = (dir: string): Handler => sirv(dir, { dev: true, dotfiles: false });
  const mounts: [string, Handler][] = [
    ...Object.entries(options.mounts ?? {}).map(([prefix, dir]): [string, Handler] => [
      prefix.endsWith("/") ? prefix : `${prefix}/`,
      serve(dir),
    ]),
    ["/tokenizer/", serve(tokenizerDir)],
    ["/", serve(bundleDir)],
    ["/", serve(WEB_DIR)],
  ];
  const server = createServer((req, res) => {
    const url = req.url ?? "/";
    const matching = mounts.filter(([prefix]) => url.startsWith(prefix));
    const tryNext = (i: number): void => {
      if (i >= matching.length) {
        res.statusCode = 404;
        res.end(`not found: ${url}`);
        return;
      }
      const [prefix, handle] = matching[i];
      const original = req.url;
      req.url = url.slice(prefix.length - 1);
      handle(req, res, () => {
        req.url = original;
        tryNext(i + 1);
      });
    };
    tryNext(0);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.hostname ?? "127.0.0.1", resolve);
  });
  const address = server.address() as AddressInfo;
  let closed: Promise<void> | null = null;
  return {
    url: `http://${address.address}:${address.port}/`,
    bundleBytes,
    close() {
      closed ??= (async () => {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await Deno.remove(bundleDir, { recursive: true }).catch(() => {});
      })();
      return closed;
    },
  };
}
