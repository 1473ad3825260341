/**
 * What the TCP server and client share: addresses, the cluster options, the
 * default deadlines, and the checks of their options; and the client's backoff.
 *
 * @module
 */
import { DEFAULT_MAX_MESSAGE_BYTES } from "./codec.ts";
import type { MemberHello } from "./handshake.ts";

export type { MemberHello } from "./handshake.ts";

/**
 * How long a {@linkcode TcpClient} waits before reconnecting after a failed
 * connection attempt: `baseMs` after the first failure, doubling with each
 * further failure up to `maxMs`. With a `random`, each wait is drawn from
 * [wait/2, wait].
 *
 * @example
 * ```ts
 * import type { BackoffOptions } from "@distkit/distkit/net";
 *
 * const backoff: BackoffOptions = { baseMs: 20, maxMs: 1000 };
 * ```
 */
export interface BackoffOptions {
  /** The wait after the first failure, in milliseconds. Default 50. */
  baseMs?: number;
  /** The longest wait, in milliseconds. Default 2,000. */
  maxMs?: number;
  /**
   * Calls made while the client waits fail at once with
   * {@linkcode UnreachableError} instead of waiting for the next attempt:
   * for a caller with other servers to try (a KV clerk), which should not be
   * held up by one that is down. Default false.
   */
  failFast?: boolean;
}

/**
 * The default deadline of a TCP call, in milliseconds (see
 * {@linkcode TcpClientOptions.timeoutMs}).
 *
 * @example
 * ```ts
 * import { DEFAULT_TCP_TIMEOUT_MS } from "@distkit/distkit/net";
 *
 * DEFAULT_TCP_TIMEOUT_MS; // 10000
 * ```
 */
export const DEFAULT_TCP_TIMEOUT_MS: number = 10_000;

/**
 * How long, by default, a TCP server waits for a new connection to finish
 * its handshake before it hangs up (see
 * {@linkcode ServeTcpOptions.handshakeTimeoutMs}), in milliseconds.
 *
 * @example
 * ```ts
 * import { DEFAULT_HANDSHAKE_TIMEOUT_MS } from "@distkit/distkit/net";
 *
 * DEFAULT_HANDSHAKE_TIMEOUT_MS; // 5000
 * ```
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS: number = 5_000;

/** Answers queued for one connection before the server stops reading its requests. */
/**
 * A host and port.
 *
 * @example
 * ```ts
 * import type { TcpAddr } from "@distkit/distkit/net";
 *
 * const addr: TcpAddr = { hostname: "127.0.0.1", port: 7000 };
 * ```
 */
export interface TcpAddr {
  /** The host name or IP address. */
  hostname: string;
  /** The TCP port. */
  port: number;
}

/**
 * Who may connect: the cluster id and the optional shared secret, the same
 * on {@linkcode serveTcp}, {@linkcode TcpClient} and {@linkcode TcpTransport}.
 *
 * A client is let in only when it names the server's cluster, and, when the
 * server has a secret, proves that it knows it; a client with a secret lets
 * a server in only when the server proves the same. Both ends must have the
 * same secret, or none.
 *
 * The secret authenticates the connection when it opens; it does not
 * encrypt or sign the calls that follow, so anyone who can read or change
 * the traffic on the network can still read or change calls. Run over a
 * network you trust (or a VPN or TLS tunnel). Anyone who records a handshake
 * can test guesses of the secret offline, so use a long random one (say 32
 * random bytes), not a password.
 *
 * @example
 * ```ts
 * import type { ClusterOptions } from "@distkit/distkit/net";
 *
 * const options: ClusterOptions = {
 *   cluster: "orders-prod",
 *   secret: Deno.env.get("DISTKIT_SECRET") ?? crypto.getRandomValues(new Uint8Array(32)),
 * };
 * ```
 */
export interface ClusterOptions {
  /**
   * The cluster id: a server serves only clients that give the same one. It
   * is not secret (a refusal names it). At most 256 characters. Default
   * `""` (the unnamed cluster).
   */
  cluster?: string;
  /**
   * The shared secret (a UTF-8 string or bytes; not empty). Default: none,
   * so connections are not authenticated.
   */
  secret?: string | Uint8Array;
  /**
   * Set on a cluster member (a node): it says who it is in the handshake,
   * and checks who the other end is. Default: none (a client, or a server
   * that does not check).
   */
  member?: MemberOptions;
}

/**
 * How a cluster member identifies itself and checks the other end in the
 * handshake (see `rsm/identity.ts`, which implements it for the KV nodes).
 *
 * @example
 * ```ts
 * import type { MemberOptions } from "@distkit/distkit/net";
 *
 * const known = new Map([["2", "c0ffee"]]);
 * const member: MemberOptions = {
 *   node: "1",
 *   incarnation: "5eed",
 *   knownIncarnation: (node) => known.get(node),
 *   check: (peer) => peer === undefined || known.get(peer.node) === peer.incarnation
 *     ? undefined
 *     : "another incarnation",
 * };
 * ```
 */
export interface MemberOptions {
  /** This node's id. */
  node: string;
  /** The incarnation of this node's data folder. */
  incarnation: string;
  /** The incarnation this node knows `node` by, if any (sent to that node). */
  knownIncarnation(node: string): string | undefined;
  /**
   * Checks the other end: `peer` is what it said of itself (undefined: it is
   * not a member, for example a client), `expected` the node a client meant
   * to reach (its `peer` option; on the server side, undefined). Returns
   * why to refuse it, or undefined to let the handshake go on. Runs before
   * any call on the connection.
   */
  check(
    peer: MemberHello | undefined,
    expected: string | undefined,
  ): string | undefined | Promise<string | undefined>;
}

export function checkMaxFrameBytes(value: number | undefined): number {
  const max = value ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(max) || max < 1 || max > 0xffff_ffff) {
    throw new RangeError(
      `maxFrameBytes must be an integer from 1 to 4294967295 (a 4-byte length prefix), got ${max}`,
    );
  }
  return max;
}

export function checkTimeout(timeoutMs: number, name: string): void {
  if (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(`${name} must be a non-negative number of milliseconds, got ${timeoutMs}`);
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
