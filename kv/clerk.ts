/**
 * `Clerk`: the client of the KV service. It finds the leader and remembers
 * it, retries across servers with backoff, bounds every attempt with a
 * timeout, and returns only once the operation is known to have happened
 * exactly once (or the caller's signal fires).
 *
 * @module
 */
import { delay } from "../net/async.ts";
import { type Clock, realClock } from "../net/clock.ts";
import {
  AbortedError,
  BadArgumentsError,
  RefusedError,
  RpcError,
  type RpcErrorCode,
} from "../net/errors.ts";
import { Random, seedFromEnv } from "../net/random.ts";
import type { ClientEnd, Transport } from "../net/transport.ts";
import { KvAbortedError, KvRequestError } from "./errors.ts";
import {
  DEFAULT_KV_LIMITS,
  type KvLimits,
  type KvReply,
  parseGet,
  parseWriteOp,
} from "./protocol.ts";
import type { KvResult, KvWrite } from "./state.ts";
import type { KvValue } from "./value.ts";

/**
 * Options of a {@linkcode Clerk}.
 *
 * @example
 * ```ts
 * import type { ClerkOptions } from "@distkit/distkit/kv";
 *
 * const options: ClerkOptions = { attemptTimeoutMs: 1000, backoff: { baseMs: 10, maxMs: 500 } };
 * ```
 */
export interface ClerkOptions {
  /**
   * The client's id, unique among all clients of the service (two clerks
   * sharing one would have each other's writes refused), without `#`.
   * Default: a random UUID.
   */
  id?: string;
  /** Time source for timeouts and backoff. Default: the real clock. */
  clock?: Clock;
  /** Randomness for the backoff jitter and the first server tried. Default: seeded from `SEED` or at random. */
  random?: Random;
  /**
   * Deadline of one attempt on one server. Keep it above the servers'
   * `requestTimeoutMs` so a slow server can say "retry". Default 2,500 ms.
   */
  attemptTimeoutMs?: number;
  /** Pause after every server has been tried once without success; doubles up to `maxMs`. Default 20 ms to 1,000 ms. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** The limits to check requests against before sending. Default: the servers' defaults. */
  limits?: Partial<KvLimits>;
}

/**
 * Per-operation options.
 *
 * @example
 * ```ts
 * import type { KvCallOptions } from "@distkit/distkit/kv";
 *
 * const options: KvCallOptions = { signal: AbortSignal.timeout(5000) };
 * ```
 */
export interface KvCallOptions {
  /** Gives up with a {@linkcode KvAbortedError} when it fires. */
  signal?: AbortSignal;
}

/**
 * The outcome of {@linkcode Clerk.cas}: whether the value was set, and if
 * not, the value that was there (null: none).
 *
 * @example
 * ```ts
 * import type { CasOutcome } from "@distkit/distkit/kv";
 *
 * const outcome: CasOutcome = { ok: false, current: "node-2" };
 * ```
 */
export interface CasOutcome {
  /** Whether the value was set. */
  ok: boolean;
  /** When not set: what was there. */
  current?: KvValue | null;
}

/**
 * A client session: writes in it go one at a time, numbered 1, 2, 3, ...
 * so the servers can recognise a retry.
 */
interface Session {
  id: string;
  seq: number;
}

/**
 * A client of the KV service. Operations may run concurrently: each
 * concurrent write gets its own session (`id`, `id#2`, ...), and within a
 * session writes go one at a time, which is what the servers' exactly-once
 * table needs.
 *
 * @example
 * ```ts
 * import { Clerk } from "@distkit/distkit/kv";
 * import type { Transport } from "@distkit/distkit/net";
 *
 * async function greet(transport: Transport) {
 *   const clerk = new Clerk(transport, ["a", "b", "c"]);
 *   await clerk.put("greeting", "hello");
 *   await clerk.append("greeting", ", world");
 *   return await clerk.get("greeting"); // "hello, world"
 * }
 * ```
 */
export class Clerk {
  readonly #ends: ClientEnd[];
  readonly #servers: string[];
  readonly #id: string;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #attemptTimeoutMs: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #limits: KvLimits;
  readonly #idle: Session[] = [];
  #sessions = 0;
  #leader = 0;

  /**
   * Creates a clerk for the service run by `servers`.
   *
   * @param transport How to reach the servers.
   * @param servers The servers' names (their Raft ids), at least one.
   */
  constructor(transport: Transport, servers: readonly string[], options: ClerkOptions = {}) {
    if (servers.length === 0) throw new RangeError("a Clerk needs at least one server");
    this.#servers = [...servers];
    this.#ends = servers.map((s) => transport.connect(s));
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? new Random(seedFromEnv());
    if (options.id !== undefined && (options.id === "" || options.id.includes("#"))) {
      throw new RangeError(
        `a Clerk id must be non-empty and without "#" (the clerk adds #2, #3... for its sessions), got "${options.id}"`,
      );
    }
    // Not drawn from `random`: two processes with the same seed must not share an id.
    this.#id = options.id ?? crypto.randomUUID();
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? 2500;
    this.#baseMs = options.backoff?.baseMs ?? 20;
    this.#maxMs = options.backoff?.maxMs ?? 1000;
    this.#limits = { ...DEFAULT_KV_LIMITS, ...options.limits };
    this.#leader = this.#random.int(servers.length);
  }

  /** The client's id. */
  get id(): string {
    return this.#id;
  }

  /** The server the clerk believes leads (where it sends the next request first). */
  get leader(): string {
    return this.#servers[this.#leader];
  }

  /**
   * The value of `key` (null when absent), as of some moment between the
   * call and its return.
   *
   * @throws {KvRequestError} when the key is over the limit or not a string.
   * @throws {KvAbortedError} when the signal fires first.
   */
  async get(key: string, options: KvCallOptions = {}): Promise<KvValue | null> {
    check(() => parseGet({ key }, this.#limits));
    const reply = await this.#call("Get", { key }, { ...options, operation: "get" });
    return reply.value ?? null;
  }

  /**
   * Sets `key` to `value`.
   *
   * @throws {KvRequestError} when the key or value is over the limits.
   * @throws {KvAbortedError} when the signal fires first.
   */
  async put(key: string, value: KvValue, options: KvCallOptions = {}): Promise<void> {
    await this.#write({ type: "put", key, value }, options);
  }

  /**
   * Appends `value` to the value of `key` (a missing key starts empty).
   *
   * @throws {KvRequestError} when the key or value is over the limits, or the
   * value would outgrow the value limit.
   * @throws {KvAbortedError} when the signal fires first.
   */
  async append(key: string, value: KvValue, options: KvCallOptions = {}): Promise<void> {
    await this.#write({ type: "append", key, value }, options);
  }

  /**
   * Removes `key` (nothing happens when it is absent).
   *
   * @throws {KvRequestError} when the key is over the limit.
   * @throws {KvAbortedError} when the signal fires first.
   */
  async delete(key: string, options: KvCallOptions = {}): Promise<void> {
    await this.#write({ type: "delete", key }, options);
  }

  /**
   * Sets `key` to `change.value` only if its value equals `change.expected`
   * (null: the key must be absent).
   *
   * @throws {KvRequestError} when the key or a value is over the limits.
   * @throws {KvAbortedError} when the signal fires first.
   */
  async cas(
    key: string,
    change: { expected: KvValue | null; value: KvValue },
    options: KvCallOptions = {},
  ): Promise<CasOutcome> {
    const result = await this.#write(
      { type: "cas", key, expected: change.expected, value: change.value },
      options,
    );
    return result.ok ? { ok: true } : { ok: false, current: result.current ?? null };
  }

  async #write(write: KvWrite, options: KvCallOptions): Promise<KvResult> {
    const clean = check(() => parseWriteOp(write, this.#limits));
    const session = this.#idle.pop() ?? this.#newSession();
    session.seq++;
    let reply: KvReply & { status: "ok" };
    try {
      reply = await this.#call(
        "Write",
        { client: session.id, seq: session.seq, write: clean },
        { ...options, operation: write.type },
      );
    } catch (err) {
      // An abandoned write may still apply, until the session's next write
      // (a higher number) has: so that session goes first in line.
      this.#idle.push(session);
      throw err;
    }
    this.#idle.unshift(session);
    const result = reply.result;
    if (result === undefined || typeof result.ok !== "boolean") {
      throw new KvRequestError("the server's reply to a write carried no result");
    }
    if (result.refused) throw new KvRequestError(result.refused);
    if (result.stale) {
      throw new KvRequestError(
        `the servers have applied a later write of session ${session.id}: another clerk uses ` +
          `the id ${this.#id}, or a restarted one reuses it; give every clerk instance its own id`,
      );
    }
    return result;
  }

  #newSession(): Session {
    this.#sessions++;
    return { id: this.#sessions === 1 ? this.#id : `${this.#id}#${this.#sessions}`, seq: 0 };
  }

  /**
   * Sends the request to the server believed to lead, then to the hinted
   * leader or the next server, pausing with backoff after each full round,
   * until one answers `ok`.
   */
  async #call(
    method: "Get" | "Write",
    args: unknown,
    options: KvCallOptions & { operation: string },
  ): Promise<KvReply & { status: "ok" }> {
    const { signal, operation } = options;
    const isWrite = method === "Write";
    let sent = false;
    let attempts = 0;
    const refusedBy = new Set<number>();
    let wait = this.#baseMs;
    let server = this.#leader;
    while (true) {
      if (signal?.aborted) {
        throw new KvAbortedError(operation, isWrite && sent, { cause: signal.reason });
      }
      let reply: unknown;
      try {
        sent = true;
        reply = await this.#ends[server].call(`KV.${method}`, args, {
          timeoutMs: this.#attemptTimeoutMs,
          signal,
        });
      } catch (err) {
        if (err instanceof AbortedError) {
          throw new KvAbortedError(operation, isWrite, { cause: signal?.reason });
        }
        if (err instanceof BadArgumentsError) throw new KvRequestError(err.remoteMessage);
        // A server that refuses us (another cluster, a secret we lack) may be one
        // misconfigured node: try the others; when every one refuses, say why.
        if (err instanceof RefusedError) {
          refusedBy.add(server);
          if (refusedBy.size === this.#servers.length) throw err;
        } else if (!retryable(err)) throw err;
      }
      const r = reply as KvReply | undefined;
      if (r?.status === "ok") {
        this.#leader = server;
        return r;
      }
      attempts++;
      const hint = r?.status === "not-leader" && r.leader !== null
        ? this.#servers.indexOf(r.leader)
        : -1;
      server = hint >= 0 && hint !== server ? hint : (server + 1) % this.#servers.length;
      if (attempts % this.#servers.length === 0) {
        await this.#pause(wait, signal, operation, isWrite);
        wait = Math.min(this.#maxMs, wait * 2);
      }
    }
  }

  async #pause(ms: number, signal: AbortSignal | undefined, operation: string, isWrite: boolean) {
    try {
      await delay(ms / 2 + this.#random.next() * (ms / 2), { clock: this.#clock, signal });
    } catch {
      throw new KvAbortedError(operation, isWrite, { cause: signal?.reason });
    }
  }
}

/**
 * Whether a failed attempt is worth another, elsewhere: the network lost it,
 * the server is not serving KV (yet), or its answer was garbled. A closed
 * transport, a refused request or a failing handler are not.
 */
function retryable(err: unknown): boolean {
  return err instanceof RpcError && RETRYABLE.has(err.code);
}

const RETRYABLE: ReadonlySet<RpcErrorCode> = new Set([
  "unreachable",
  "timeout",
  "unknown_service",
  "protocol",
]);

/** Runs a parser, turning its complaint into a {@linkcode KvRequestError}. */
function check<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new KvRequestError((err as Error).message);
  }
}
