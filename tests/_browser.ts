/**
 * Headless Chromium for the browser tests: the system Chromium (Debian package `chromium`;
 * `WEBTUNE_CHROMIUM` names another binary) driven by puppeteer-core, with WebGPU on its
 * software adapter (SwiftShader), and the demo site's server (`cli/web_server.ts`) serving the
 * bundles under test and the fixture folder on 127.0.0.1.
 *
 * @module
 */

import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { type BundleEntry, startWebServer, type WebServer } from "../cli/web_server.ts";
import { FIXTURE } from "./_helpers.ts";

/** The Chromium binary the tests drive. */
export const CHROMIUM: string = Deno.env.get("WEBTUNE_CHROMIUM") ?? "/usr/bin/chromium";

/** Chromium flags: headless WebGPU on SwiftShader, no network of its own. */
export const CHROMIUM_ARGS: readonly string[] = Object.freeze([
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-angle=swiftshader",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-dev-shm-usage",
  "--no-first-run",
]);

/** A browser, a server and one page. */
export interface BrowserSession {
  /** The server (its `url`, bundle sizes). */
  readonly server: WebServer;
  /** The browser. */
  readonly browser: Browser;
  /** A page; its console and errors are collected in `log`. */
  readonly page: Page;
  /** Console lines and page errors seen so far. */
  readonly log: string[];
  /** The fixture folder's URL on the server. */
  readonly fixtureUrl: string;
  /** Closes the browser and the server. */
  close(): Promise<void>;
}

/** Options of {@linkcode openBrowser}. */
export interface OpenBrowserOptions {
  /** Page bundles to build and serve as `/<name>.js`. */
  readonly bundles?: readonly BundleEntry[];
  /** Extra folders to serve. */
  readonly mounts?: Readonly<Record<string, string>>;
}

/**
 * Starts the server (fixture folder mounted at `/fixture/`) and Chromium with one page.
 *
 * @param options Bundles and mounts.
 * @returns The session; close it.
 * @throws {Error} When Chromium is missing, saying how to install it.
 */
export async function openBrowser(options: OpenBrowserOptions = {}): Promise<BrowserSession> {
  if (!(await Deno.stat(CHROMIUM).catch(() => null))?.isFile) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: the browser tests need it (Debian/Ubuntu: ` +
        "`apt-get install -y chromium`, which .ci/run does; WEBTUNE_CHROMIUM names another binary)",
    );
  }
  const server = await startWebServer({
    bundles: options.bundles,
    mounts: { "/fixture/": FIXTURE, ...options.mounts },
  });
  let browser: Browser;
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS],
      protocolTimeout: 600_000,
    });
  } catch (e) {
    await server.close();
    throw e;
  }
  const page = await browser.newPage();
  page.setDefaultTimeout(600_000);
  const log: string[] = [];
  page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => log.push(`pageerror: ${e instanceof Error ? e.message : e}`));
  return {
    server,
    browser,
    page,
    log,
    fixtureUrl: `${server.url}fixture/`,
    async close() {
      await browser.close().catch(() => {});
      await server.close();
    },
  };
}

/**
 * Waits until `document.body.dataset.state` is one of `states`.
 *
 * @param page The page.
 * @param states States that end the wait.
 * @param timeoutMs Give up after this long.
 * @returns The state reached.
 */
export async function waitForState(
  page: Page,
  states: readonly string[],
  timeoutMs: number,
): Promise<string> {
  const wanted = JSON.stringify(states);
  const handle = await page.waitForFunction(
    `(() => { const s = document.body?.dataset.state; return ${wanted}.includes(s) ? s : false; })()`,
    { timeout: timeoutMs, polling: 250 },
  );
  return await handle.jsonValue() as string;
}

/**
 * Evaluates a JavaScript expression in the page (the tests type-check without the DOM library,
 * so page-side code is written as text).
 *
 * @param page The page.
 * @param expression An expression; a promise is awaited.
 * @returns Its JSON value.
 */
export async function pageValue<T>(page: Page, expression: string): Promise<T> {
  return await page.evaluate(expression) as T;
}
