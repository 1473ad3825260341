/**
 * The limits a TCP server holds every connection to: how many may be open
 * (per listener and per client address), how long a frame may take to
 * arrive, how much memory large frames in progress may hold between them,
 * and how fast one address may fail handshakes ({@linkcode HandshakeThrottle}).
 *
 * @module
 */
import { type Clock, realClock } from "./clock.ts";

/**
 * How long, by default, a frame may take to arrive whole once its first
 * byte has (see `ServeTcpOptions.frameTimeoutMs`), in milliseconds: a 64 MiB
 * frame needs about 2.2 MB/s to make it.
 *
 * @example
 * ```ts
 * import { DEFAULT_FRAME_TIMEOUT_MS } from "@distkit/distkit/net";
 *
 * DEFAULT_FRAME_TIMEOUT_MS; // 30000
 * ```
 */
export const DEFAULT_FRAME_TIMEOUT_MS: number = 30_000;

/**
 * How many connections a TCP server holds open at once by default, handshakes
 * in progress included (see `ServeTcpOptions.maxConnections`).
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_CONNECTIONS } from "@distkit/distkit/net";
 *
 * DEFAULT_MAX_CONNECTIONS; // 1024
 * ```
 */
export const DEFAULT_MAX_CONNECTIONS: number = 1024;

/**
 * How many connections a TCP server holds open at once from one client
 * address (IP) by default (see `ServeTcpOptions.maxConnectionsPerAddress`).
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_CONNECTIONS_PER_ADDRESS } from "@distkit/distkit/net";
 *
 * DEFAULT_MAX_CONNECTIONS_PER_ADDRESS; // 256
 * ```
 */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: number = 256;

/**
 * Options of {@linkcode HandshakeThrottle}.
 *
 * @example
 * ```ts
 * import type { HandshakeThrottleOptions } from "@distkit/distkit/net";
 *
 * const options: HandshakeThrottleOptions = { freeFailures: 3, baseMs: 500, maxMs: 30_000 };
 * ```
 */
export interface HandshakeThrottleOptions {
  /** Failed handshakes an address may make before it is held back. Default 5. */
  freeFailures?: number;
  /** How long an address is refused after its first failure past the free ones, in ms. Default 1,000. */
  baseMs?: number;
  /** The longest it is refused; each further failure doubles the wait up to this. Default 60,000. */
  maxMs?: number;
  /** Addresses remembered at once; the least recently failed are forgotten first. Default 10,000. */
  maxAddresses?: number;
  /** The clock waits are timed on. Default: the real clock. */
  clock?: Clock;
}

interface Failures {
  count: number;
  /** Until when new connections from the address are refused unread. */
  blockedUntil: number;
}

/**
 * Rate-limits failed handshakes per client address with exponential backoff:
 * after `freeFailures` failures, each further failure refuses the address's
 * new connections for `baseMs`, doubling up to `maxMs`. A successful
 * handshake from the address, or `maxMs` without a failure after a wait
 * ends, forgets its failures. A secret guesser from one address thus gets a
 * handful of guesses, then about one per `maxMs`.
 *
 * @example
 * ```ts
 * import { HandshakeThrottle, VirtualClock } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const clock = new VirtualClock();
 * const throttle = new HandshakeThrottle({ freeFailures: 2, baseMs: 100, clock });
 * throttle.failed("10.0.0.9");
 * throttle.failed("10.0.0.9");
 * assert.equal(throttle.waitFor("10.0.0.9"), 0); // two free failures
 * throttle.failed("10.0.0.9");
 * assert.equal(throttle.waitFor("10.0.0.9"), 100);
 * await clock.advance(100);
 * assert.equal(throttle.waitFor("10.0.0.9"), 0);
 * ```
 */
export class HandshakeThrottle {
  readonly #free: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #maxAddresses: number;
  readonly #clock: Clock;
  #failures = new Map<string, Failures>();

  /**
   * Creates a throttle that remembers nothing yet.
   *
   * @param options The free failures, the backoff, the memory and the clock.
   * @throws {RangeError} when an option is out of range.
   */
  constructor(options: HandshakeThrottleOptions = {}) {
    this.#free = options.freeFailures ?? 5;
    this.#baseMs = options.baseMs ?? 1_000;
    this.#maxMs = options.maxMs ?? 60_000;
    this.#maxAddresses = options.maxAddresses ?? 10_000;
    this.#clock = options.clock ?? realClock;
    if (!Number.isSafeInteger(this.#free) || this.#free < 0) {
      throw new RangeError(`freeFailures must be a non-negative integer, got ${this.#free}`);
    }
    if (
      !(this.#baseMs > 0) || !(this.#maxMs >= this.#baseMs) || !Number.isFinite(this.#maxMs)
    ) {
      throw new RangeError(
        `the throttle needs 0 < baseMs <= maxMs < Infinity, got baseMs ${this.#baseMs} ` +
          `and maxMs ${this.#maxMs}`,
      );
    }
    if (!Number.isSafeInteger(this.#maxAddresses) || this.#maxAddresses < 1) {
      throw new RangeError(`maxAddresses must be a positive integer, got ${this.#maxAddresses}`);
    }
  }

  /** Addresses with failures remembered. */
  get addresses(): number {
    return this.#failures.size;
  }

  /** How long `address` must still wait before a connection from it is read, in ms (0: now). */
  waitFor(address: string): number {
    const record = this.#failures.get(address);
    if (record === undefined) return 0;
    return Math.max(0, record.blockedUntil - this.#clock.now());
  }

  /** Counts a failed handshake from `address`; returns how long it is now refused, in ms. */
  failed(address: string): number {
    const now = this.#clock.now();
    let record = this.#failures.get(address);
    if (record !== undefined && now > record.blockedUntil + this.#maxMs) record = undefined;
    record ??= { count: 0, blockedUntil: now };
    record.count++;
    const past = record.count - this.#free;
    const wait = past <= 0 ? 0 : Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(past - 1, 52));
    record.blockedUntil = now + wait;
    // Re-inserted, so the map's order is the order of the last failures.
    this.#failures.delete(address);
    this.#failures.set(address, record);
    if (this.#failures.size > this.#maxAddresses) {
      this.#failures.delete(this.#failures.keys().next().value!);
    }
    return wait;
  }

  /** Forgets the failures of `address`: it has proved it knows the secret. */
  succeeded(address: string): void {
    this.#failures.delete(address);
  }
}

/**
 * Counts open connections per client address, so a server can refuse one
 * address's flood while others still get in.
 */
export class AddressCounts {
  #counts = new Map<string, number>();

  /** Open connections from `address`. */
  get(address: string): number {
    return this.#counts.get(address) ?? 0;
  }

  /** Counts one more connection from `address`. */
  add(address: string): void {
    this.#counts.set(address, this.get(address) + 1);
  }

  /** Counts one connection from `address` fewer. */
  remove(address: string): void {
    const n = this.get(address);
    if (n <= 0) throw new Error(`no connection from ${address} was counted; this is a bug`);
    if (n === 1) this.#counts.delete(address);
    else this.#counts.set(address, n - 1);
  }
}

/**
 * What a TCP server refused or cut off since it started, by reason (see
 * `TcpServer.stats`).
 *
 * @example
 * ```ts
 * import type { TcpServerStats } from "@distkit/distkit/net";
 *
 * const refused = (s: TcpServerStats) => s.handshakesRefused + s.throttled;
 * ```
 */
export interface TcpServerStats {
  /** Connections open now, handshakes in progress included. */
  connections: number;
  /** Bytes the large frames arriving now hold of the shared budget. */
  largeFrameBytes: number;
  /** Connections refused in the handshake (wrong cluster or secret, malformed, too slow, ...). */
  handshakesRefused: number;
  /** Of those, failures that count toward the address's backoff (bad secret, malformed). */
  handshakesFailed: number;
  /** Connections refused unread because their address was backing off after failures. */
  throttled: number;
  /** Connections refused unread because the listener had `maxConnections` open. */
  overMaxConnections: number;
  /** Connections refused unread because their address had `maxConnectionsPerAddress` open. */
  overMaxPerAddress: number;
  /** Connections closed because a frame missed `frameTimeoutMs`. */
  frameTimeouts: number;
  /** Connections closed because a large frame did not fit the shared budget. */
  frameBudgetRefusals: number;
}

/** Checks a count option: a positive integer. */
export function checkCount(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** Checks a duration option given to `setTimeout`. */
export function checkDelay(value: number, name: string): number {
  if (!(value > 0) || !Number.isFinite(value) || value > 0x7fff_ffff) {
    throw new RangeError(`${name} must be a positive finite number of milliseconds, got ${value}`);
  }
  return value;
}
