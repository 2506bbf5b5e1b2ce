/**
 * A NATS server with JetStream for tests: `nats-server` on free 127.0.0.1 ports (client and
 * WebSocket) with a temporary store folder and a user/password; it can be stopped and started
 * again on the same ports and store (a broker restart), and is killed and its folder removed on
 * dispose.
 *
 * @module
 */

import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { brokerConnectOptions } from "../rl/rollout_connect.ts";

// transport-node drops its socket listeners when a connection closes, so a `read ECONNRESET`
// the socket reports a moment later (the server closing after a refused password, or a broker
// stopping) is an uncaught error in Deno; the client has already handled the close itself.
globalThis.addEventListener("error", (e) => {
  if ((e.error as { code?: unknown } | null)?.code === "ECONNRESET") e.preventDefault();
});

/** Whether `nats-server` is on the PATH (tests skip without it). */
/** Whether `nats-server` runs here (`cli/test_setup.ts` installs it before the tests). */
export const HAVE_NATS_SERVER: boolean = (() => {
  try {
    return new Deno.Command("nats-server", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (e) {
      if (performance.now() > end) throw new Error(`nats-server did not listen on ${port}: ${e}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A running test broker. */
export class TestNatsServer implements AsyncDisposable {
  /** The user every client connects as. */
  readonly user = "webtune";
  /** Its password. */
  readonly pass = "s3cret";
  /** The client port. */
  readonly port: number;
  /** The WebSocket port. */
  readonly wsPort: number;
  /** The server's folder (config, JetStream store). */
  readonly storeDir: string;
  #process: Deno.ChildProcess | null = null;
  readonly #connections: NatsConnection[] = [];

  private constructor(port: number, wsPort: number, storeDir: string) {
    this.port = port;
    this.wsPort = wsPort;
    this.storeDir = storeDir;
  }

  /** Starts a server on a free port with a fresh store. */
  static async start(): Promise<TestNatsServer> {
    if (!HAVE_NATS_SERVER) {
      throw new Error(
        "nats-server not found: the broker tests need it (Debian: `apt-get install -y " +
          "nats-server`, which `deno task test` and .ci/run do through cli/test_setup.ts)",
      );
    }
    const dir = await Deno.makeTempDir({ prefix: "nats_" });
    const port = freePort();
    let wsPort = freePort();
    while (wsPort === port) wsPort = freePort();
    const server = new TestNatsServer(port, wsPort, dir);
    await server.restart();
    return server;
  }

  /** `nats://127.0.0.1:<port>` (no credentials). */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** `ws://127.0.0.1:<port>`: the same server over WebSocket (browser workers, `wsconnect`). */
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.wsPort}`;
  }

  /** (Re)starts the server on the same ports and store. */
  async restart(): Promise<void> {
    if (this.#process) throw new Error("nats-server is already running");
    const config = `${this.storeDir}/nats.conf`;
    await Deno.writeTextFile(
      config,
      [
        `listen: "127.0.0.1:${this.port}"`,
        `jetstream { store_dir: ${JSON.stringify(`${this.storeDir}/js`)} }`,
        `authorization { user: "${this.user}", password: "${this.pass}" }`,
        `websocket { listen: "127.0.0.1:${this.wsPort}", no_tls: true }`,
      ].join("\n") + "\n",
    );
    this.#process = new Deno.Command("nats-server", {
      args: ["-c", config],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForPort(this.port, 10_000);
    await waitForPort(this.wsPort, 10_000);
  }

  /** Stops the server (SIGTERM; JetStream state stays in the store). */
  async stop(): Promise<void> {
    const p = this.#process;
    if (!p) return;
    this.#process = null;
    p.kill("SIGTERM");
    await p.status;
  }

  /**
   * A client connection with webtune's options (closed on dispose).
   *
   * @param name Client name.
   */
  async connect(name = "test"): Promise<NatsConnection> {
    const nc = await connect(
      brokerConnectOptions(this.url, { user: this.user, pass: this.pass, name }),
    );
    this.#connections.push(nc);
    return nc;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const nc of this.#connections) {
      if (!nc.isClosed()) await nc.close().catch(() => {});
    }
    if (this.#process) {
      const p = this.#process;
      this.#process = null;
      p.kill("SIGKILL");
      await p.status;
    }
    await Deno.remove(this.storeDir, { recursive: true }).catch(() => {});
  }
}
