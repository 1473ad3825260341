/**
 * Transports over TCP: {@linkcode TcpTransport} (peers by name) and
 * {@linkcode AddressTransport} (peers by address), each handing out one
 * cached {@linkcode TcpClient} per peer.
 *
 * @module
 */
import { ClosedError } from "./errors.ts";
import type { Transport } from "./transport.ts";
import { parseAddress } from "./address.ts";
import { TcpClient, type TcpClientOptions } from "./tcp_client.ts";

/**
 * Options for {@linkcode TcpTransport}: the peers, plus the options every
 * {@linkcode TcpClient} it makes shares.
 *
 * @example
 * ```ts
 * import type { TcpTransportOptions } from "@distkit/distkit/net";
 *
 * const options: TcpTransportOptions = {
 *   peers: { "kv-1": "127.0.0.1:7001", "kv-2": "127.0.0.1:7002" },
 *   timeoutMs: 1_000,
 *   cluster: "kv-prod",
 *   secret: Deno.env.get("DISTKIT_SECRET"),
 * };
 * ```
 */
export interface TcpTransportOptions extends Omit<TcpClientOptions, "peer"> {
  /** Peer name to `"host:port"`. */
  peers: Record<string, string>;
}

/**
 * A {@linkcode Transport} over TCP: `connect(name)` returns the one
 * {@linkcode TcpClient} for that peer, made on first use.
 *
 * @example
 * ```ts
 * import { RpcServer, serveTcp, TcpTransport } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const rpc = new RpcServer();
 * rpc.addService("Health", { Ping: () => "pong" });
 * const server = serveTcp(rpc);
 * const transport = new TcpTransport({ peers: { a: server.address } });
 * assert.equal(await transport.connect("a").call("Health.Ping"), "pong");
 * assert.equal(transport.connect("a"), transport.connect("a"));
 * await transport.close();
 * await server.close();
 * ```
 */
export class TcpTransport implements Transport {
  #peers = new Map<string, string>();
  #clients = new Map<string, TcpClient>();
  #options: Omit<TcpClientOptions, "peer">;
  #closed = false;

  /**
   * Creates a transport; no connection opens until a client makes a call.
   *
   * @param options The peers and the client options.
   * @throws {TypeError} when a peer's address is not `host:port`.
   */
  constructor(options: TcpTransportOptions) {
    const { peers, ...clientOptions } = options;
    for (const [name, address] of Object.entries(peers)) {
      parseAddress(address, { peer: name });
      this.#peers.set(name, address);
    }
    this.#options = clientOptions;
  }

  /** The address of `peer`, if it is known. */
  addressOf(peer: string): string | undefined {
    return this.#peers.get(peer);
  }

  /**
   * Sets the address of `peer` (a known peer that moved, or a new one): its
   * client, if one is open, reconnects there (see {@linkcode TcpClient.retarget}).
   *
   * @throws {TypeError} when the address is not `host:port`.
   */
  setAddress(peer: string, address: string): void {
    parseAddress(address, { peer });
    this.#peers.set(peer, address);
    this.#clients.get(peer)?.retarget(address);
  }

  /** Closes the connection to `peer` open now, if any: the next call connects again (see {@linkcode TcpClient.reconnect}). */
  reconnect(peer: string, reason: string): void {
    this.#clients.get(peer)?.reconnect(reason);
  }

  /** The names of the known peers. */
  get peers(): string[] {
    return [...this.#peers.keys()];
  }

  /**
   * The client for `peer`, created on first use and cached.
   *
   * @throws {Error} when `peer` is not in the `peers` option.
   * @throws {ClosedError} after {@linkcode TcpTransport.close}.
   */
  connect(peer: string): TcpClient {
    if (this.#closed) throw new ClosedError("TCP transport");
    let client = this.#clients.get(peer);
    if (client) return client;
    const address = this.#peers.get(peer);
    if (address === undefined) {
      const known = this.#peers.size === 0 ? "none" : [...this.#peers.keys()].join(", ");
      throw new Error(
        `unknown peer "${peer}" (known peers: ${known}); add it to the peers option of TcpTransport`,
      );
    }
    client = new TcpClient(address, { ...this.#options, peer });
    this.#clients.set(peer, client);
    return client;
  }

  /** Closes every client; later `connect` calls throw {@linkcode ClosedError}. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#clients.values()].map((client) => client.close()));
  }
}

/**
 * A transport whose peer names are their TCP addresses (`host:port`).
 *
 * @example
 * ```ts
 * import { AddressTransport } from "@distkit/distkit/net";
 *
 * const transport = new AddressTransport({ timeoutMs: 1000 });
 * transport.connect("127.0.0.1:7001"); // connects lazily, on the first call
 * await transport.close();
 * ```
 */
export class AddressTransport implements Transport {
  readonly #options: Omit<TcpClientOptions, "peer">;
  readonly #clients = new Map<string, TcpClient>();
  #closed = false;

  /** Creates the transport; every connection uses `options` (timeout, cluster id, secret...). */
  constructor(options: Omit<TcpClientOptions, "peer"> = {}) {
    this.#options = options;
  }

  /**
   * The connection to the node at `address`.
   *
   * @throws {RangeError} when `address` is not host:port.
   * @throws {ClosedError} after {@linkcode AddressTransport.close}.
   */
  connect(address: string): TcpClient {
    if (this.#closed) throw new ClosedError("TCP transport");
    let client = this.#clients.get(address);
    if (!client) {
      parseAddress(address);
      client = new TcpClient(address, this.#options);
      this.#clients.set(address, client);
    }
    return client;
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#clients.values()].map((c) => c.close()));
  }
}
