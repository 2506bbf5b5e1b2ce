/**
 * Connecting to the rollout broker (a NATS server with JetStream) from any runtime: the
 * connection options webtune uses (reconnect forever, so a broker restart only pauses a run)
 * and clear errors for a refused password or an unreachable server. The transport is the
 * caller's: `connect` from `@nats-io/transport-node` in Deno, `wsconnect` from
 * `@nats-io/nats-core` (WebSocket) in a browser.
 *
 * @module
 */

import type { ConnectionOptions, NatsConnection } from "@nats-io/nats-core";
import { FieldError } from "../base/field_error.ts";

/** The broker refused or could not be reached, or holds a run that conflicts with this one. */
export class RolloutBrokerError extends FieldError {
  override readonly name: string = "RolloutBrokerError";
}

/** Credentials and naming of a broker connection. */
export interface BrokerConnectOptions {
  /** User (overrides one in the URL). */
  readonly user?: string;
  /** Password (overrides one in the URL). */
  readonly pass?: string;
  /** The client's name in the server's monitoring (e.g. `webtune-worker-<id>`). */
  readonly name?: string;
}

/**
 * The connection options of a broker URL: `user:pass@` in the URL (or `options`) become the
 * credentials, and the client reconnects forever (`reconnect: true, maxReconnectAttempts: -1`,
 * every second) so that a broker restart pauses learners and workers instead of ending them.
 *
 * @param url `nats://[user:pass@]host:port`, or `ws://` / `wss://` for WebSocket.
 * @param options Credentials and client name.
 * @returns Options for `connect` / `wsconnect`.
 * @throws {RolloutBrokerError} for a URL that does not parse.
 * @example
 * ```ts
 * import { brokerConnectOptions } from "./rollout_connect.ts";
 * const o = brokerConnectOptions("nats://u:p@127.0.0.1:4222");
 * console.log(o.servers, o.user, o.maxReconnectAttempts); // "nats://127.0.0.1:4222" "u" -1
 * ```
 */
export function brokerConnectOptions(
  url: string,
  options: BrokerConnectOptions = {},
): ConnectionOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw RolloutBrokerError.mustBe("broker", "a URL like nats://host:4222", url);
  }
  const user = options.user ?? (decodeURIComponent(parsed.username) || undefined);
  const pass = options.pass ?? (decodeURIComponent(parsed.password) || undefined);
  parsed.username = "";
  parsed.password = "";
  return {
    servers: parsed.href.replace(/\/$/, ""),
    ...(user === undefined ? {} : { user }),
    ...(pass === undefined ? {} : { pass }),
    ...(options.name === undefined ? {} : { name: options.name }),
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    pingInterval: 10_000,
    maxPingOut: 3,
  };
}

/**
 * Connects to a broker with {@linkcode brokerConnectOptions}; a refused password or an
 * unreachable server becomes a {@linkcode RolloutBrokerError} naming the URL (never the
 * password).
 *
 * @param connect The transport's connect (`connect` of `@nats-io/transport-node`, `wsconnect`).
 * @param url The broker URL.
 * @param options Credentials and client name.
 * @returns The connection.
 * @throws {RolloutBrokerError} when the server refuses the credentials or cannot be reached.
 * @example
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * const nc = await connectRolloutBroker(connect, "nats://u:p@127.0.0.1:4222");
 * ```
 */
export async function connectRolloutBroker(
  connect: (options: ConnectionOptions) => Promise<NatsConnection>,
  url: string,
  options: BrokerConnectOptions = {},
): Promise<NatsConnection> {
  const opts = brokerConnectOptions(url, options);
  const where = String(opts.servers);
  try {
    return await connect(opts);
  } catch (e) {
    const text = `${(e as Error).name}: ${(e as Error).message}`;
    const auth = /authori[sz]ation|authentication|auth/i.test(text);
    const error = new RolloutBrokerError(
      "broker",
      auth
        ? `the broker ${where} refused the credentials${
          opts.user ? ` of user "${opts.user}"` : " (none given)"
        }: check the user and password (${(e as Error).message})`
        : `cannot connect to the broker ${where}: ${(e as Error).message}`,
      { expected: auth ? "valid credentials" : "a reachable NATS server", got: where },
    );
    error.cause = e;
    throw error;
  }
}
