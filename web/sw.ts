/**
 * The demo page's service worker: keeps the page, its bundle and Gemma 3's tokenizer files in
 * Cache Storage, so the page loads and trains without the server. Network first (a running
 * `deno task web` always serves the current files), the cache when the network fails. Range
 * requests (model weights read by byte range) and other origins pass through untouched.
 *
 * @module
 */

/** Cache Storage name; bump it when the cached set changes. */
const CACHE = "webtune-demo-v1";
/** What the page needs to start, relative to the worker's scope. */
const SHELL = ["./", "./app.js", "./tokenizer/tokenizer.json", "./tokenizer/tokenizer_config.json"];

interface ExtendableEvent {
  waitUntil(promise: Promise<unknown>): void;
}
interface FetchEvent extends ExtendableEvent {
  readonly request: Request;
  respondWith(response: Promise<Response>): void;
}
interface WorkerScope {
  readonly location: { readonly origin: string };
  skipWaiting(): Promise<void>;
  readonly clients: { claim(): Promise<void> };
  addEventListener(type: "install" | "activate", listener: (e: ExtendableEvent) => void): void;
  addEventListener(type: "fetch", listener: (e: FetchEvent) => void): void;
}

const scope = globalThis as unknown as WorkerScope;

scope.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => scope.skipWaiting()));
});

scope.addEventListener("activate", (e) => {
  e.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => scope.clients.claim()),
  );
});

scope.addEventListener("fetch", (e) => {
  const request = e.request;
  const url = new URL(request.url);
  if (
    request.method !== "GET" || request.headers.has("range") ||
    url.origin !== scope.location.origin
  ) {
    return;
  }
  e.respondWith((async () => {
    try {
      const response = await fetch(request);
      if (response.ok && response.status === 200) {
        const cache = await caches.open(CACHE);
        const key = new URL(url.pathname, url.origin).href; // the page's URL without ?parameters
        if ((await cache.match(key)) !== undefined) await cache.put(key, response.clone());
      }
      return response;
    } catch (error) {
      const cached = await caches.match(request, { ignoreSearch: true });
      if (cached) return cached;
      throw error;
    }
  })());
});
