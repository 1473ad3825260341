/**
 * The transport interface: what Raft, the KV service, the shard service and
 * MapReduce use to call each other, whatever carries the bytes.
 *
 * @module
 */

/**
 * Per-call options.
 *
 * @example
 * ```ts
 * import type { CallOptions } from "@distkit/distkit/net";
 *
 * const options: CallOptions = { timeoutMs: 500, signal: AbortSignal.timeout(2000) };
 * ```
 */
export interface CallOptions {
  /** Give up with a `TimeoutError` after this many milliseconds. */
  timeoutMs?: number;
  /** Give up with an `AbortedError` when this signal fires. */
  signal?: AbortSignal;
}

/**
 * One caller's handle on one peer.
 *
 * `call` resolves with the decoded reply, or rejects with an `RpcError`:
 * `UnreachableError`, `TimeoutError`, `AbortedError`, `ClosedError`, or a
 * `RemoteError` (and its subclasses) when the handler failed.
 *
 * @example
 * ```ts
 * import type { ClientEnd } from "@distkit/distkit/net";
 *
 * async function ping(end: ClientEnd): Promise<boolean> {
 *   try {
 *     return (await end.call("Health.Ping", {}, { timeoutMs: 200 })) === "pong";
 *   } catch {
 *     return false;
 *   }
 * }
 * ```
 */
export interface ClientEnd {
  /** The peer this end calls. */
  readonly peer: string;
  /** Calls `method` (`Service.Method`) on the peer with `args`. */
  call<T = unknown>(method: string, args?: unknown, options?: CallOptions): Promise<T>;
}

/**
 * Gives a node its ends to the other nodes, by name.
 *
 * @example
 * ```ts
 * import type { ClientEnd, Transport } from "@distkit/distkit/net";
 *
 * function endsTo(transport: Transport, peers: string[]): ClientEnd[] {
 *   return peers.map((peer) => transport.connect(peer));
 * }
 * ```
 */
export interface Transport {
  /** An end that calls `peer`. */
  connect(peer: string): ClientEnd;
}
