/**
 * The client side of a replicated service ({@linkcode Replica}): finding the
 * leader among a set of servers and retrying there, and numbering writes in
 * sessions so the servers can recognise a retry. The KV clerk, the shard
 * controller's clerk and the sharded KV clerk are built on these.
 *
 * @module
 */
import { delay } from "../net/async.ts";
import { type Clock, realClock } from "../net/clock.ts";
import { AbortedError, BadArgumentsError, isRetryable, RefusedError } from "../net/errors.ts";
import { Random, seedFromEnv } from "../net/random.ts";
import type { ClientEnd, Transport } from "../net/transport.ts";
import { KvAbortedError, KvRequestError } from "./errors.ts";
import type { ReplicaReply } from "./replica.ts";

/**
 * Options of a {@linkcode ReplicaClient}.
 *
 * @example
 * ```ts
 * import type { ReplicaClientOptions } from "@distkit/distkit/kv";
 *
 * const options: ReplicaClientOptions = { attemptTimeoutMs: 1000, backoff: { baseMs: 10, maxMs: 500 } };
 * ```
 */
export interface ReplicaClientOptions {
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
}

/**
 * Options of one {@linkcode ReplicaClient.call}.
 *
 * @example
 * ```ts
 * import type { ReplicaCallOptions } from "@distkit/distkit/kv";
 *
 * const options: ReplicaCallOptions = { operation: "put", write: true, rounds: 1 };
 * ```
 */
export interface ReplicaCallOptions {
  /** The operation's name, for errors (`get`, `put`, `join`...). */
  operation: string;
  /** Whether it changes state (an abandoned write may have taken effect). */
  write: boolean;
  /** Gives up with a {@linkcode KvAbortedError} when it fires. */
  signal?: AbortSignal;
  /**
   * Give up (resolve undefined) after this many rounds of trying every
   * server without an answer. Default: never give up.
   */
  rounds?: number;
}

/**
 * A final answer from {@linkcode ReplicaClient.call}: done, or "ask the
 * directory which group serves it".
 *
 * @example
 * ```ts
 * import type { FinalReply } from "@distkit/distkit/kv";
 *
 * const reply: FinalReply<{ value: string }> = { status: "ok", value: "1" };
 * ```
 */
export type FinalReply<T extends object = Record<never, never>> =
  | ({ status: "ok" } & T)
  | { status: "wrong-group" };

/**
 * Calls a replicated service: sends each request to the server believed to
 * lead, then to the hinted leader or the next server, pausing with jittered
 * backoff after each full round, until one answers `ok` (or `wrong-group`).
 *
 * @example
 * ```ts
 * import { ReplicaClient } from "@distkit/distkit/kv";
 * import type { Transport } from "@distkit/distkit/net";
 *
 * async function read(transport: Transport) {
 *   const client = new ReplicaClient(transport, ["a", "b", "c"]);
 *   return await client.call("KV.Get", { key: "x" }, { operation: "get", write: false });
 * }
 * ```
 */
export class ReplicaClient {
  readonly #ends: ClientEnd[];
  readonly #servers: string[];
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #attemptTimeoutMs: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  #leader: number;

  /**
   * Creates a client of the service run by `servers`.
   *
   * @param transport How to reach the servers.
   * @param servers The servers' names, at least one.
   */
  constructor(
    transport: Transport,
    servers: readonly string[],
    options: ReplicaClientOptions = {},
  ) {
    if (servers.length === 0) {
      throw new RangeError("a replicated service needs at least one server");
    }
    this.#servers = [...servers];
    this.#ends = servers.map((s) => transport.connect(s));
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? new Random(seedFromEnv());
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? 2500;
    this.#baseMs = options.backoff?.baseMs ?? 20;
    this.#maxMs = options.backoff?.maxMs ?? 1000;
    this.#leader = this.#random.int(servers.length);
  }

  /** The servers, in the order given. */
  get servers(): readonly string[] {
    return this.#servers;
  }

  /** The server believed to lead (where the next request goes first). */
  get leader(): string {
    return this.#servers[this.#leader];
  }

  /**
   * Calls `method` (`Service.Method`) until a server answers `ok` or
   * `wrong-group`; undefined when `options.rounds` ran out first.
   *
   * @throws {KvRequestError} when a server says the request is malformed.
   * @throws {KvAbortedError} when the signal fires first.
   * @throws {RefusedError} when every server refuses the connection.
   */
  async call<T extends object>(
    method: string,
    args: unknown,
    options: ReplicaCallOptions,
  ): Promise<FinalReply<T> | undefined> {
    const { signal, operation, write } = options;
    const rounds = options.rounds ?? Infinity;
    let sent = false;
    let attempts = 0;
    const refusedBy = new Set<number>();
    let wait = this.#baseMs;
    let server = this.#leader;
    while (true) {
      if (signal?.aborted) {
        throw new KvAbortedError(operation, write && sent, { cause: signal.reason });
      }
      let reply: unknown;
      try {
        sent = true;
        reply = await this.#ends[server].call(method, args, {
          timeoutMs: this.#attemptTimeoutMs,
          signal,
        });
      } catch (err) {
        if (err instanceof AbortedError) {
          throw new KvAbortedError(operation, write, { cause: signal?.reason });
        }
        if (err instanceof BadArgumentsError) throw new KvRequestError(err.remoteMessage);
        // A server that refuses us (another cluster, a secret we lack) may be one
        // misconfigured node: try the others; when every one refuses, say why.
        if (err instanceof RefusedError) {
          refusedBy.add(server);
          if (refusedBy.size === this.#servers.length) throw err;
        } else if (!isRetryable(err)) throw err;
      }
      const r = reply as ReplicaReply<T> | undefined;
      if (r?.status === "ok" || r?.status === "wrong-group") {
        this.#leader = server;
        return r as FinalReply<T>;
      }
      attempts++;
      const hint = r?.status === "not-leader" && r.leader !== null
        ? this.#servers.indexOf(r.leader)
        : -1;
      server = hint >= 0 && hint !== server ? hint : (server + 1) % this.#servers.length;
      if (attempts % this.#servers.length === 0) {
        if (attempts / this.#servers.length >= rounds) return undefined;
        await this.#pause(wait, signal, operation, write);
        wait = Math.min(this.#maxMs, wait * 2);
      }
    }
  }

  async #pause(ms: number, signal: AbortSignal | undefined, operation: string, write: boolean) {
    try {
      await delay(ms / 2 + this.#random.next() * (ms / 2), { clock: this.#clock, signal });
    } catch {
      throw new KvAbortedError(operation, write, { cause: signal?.reason });
    }
  }
}

/**
 * One {@linkcode ReplicaClient} per set of servers, made on first use and
 * kept (so each remembers its leader): how a sharded client or a shard
 * group reaches the groups a configuration names.
 *
 * @example
 * ```ts
 * import { ReplicaClients } from "@distkit/distkit/kv";
 * import type { Transport } from "@distkit/distkit/net";
 *
 * function groupOf(transport: Transport, servers: string[]) {
 *   const clients = new ReplicaClients(transport);
 *   return clients.for(servers) === clients.for([...servers]); // true: the same client
 * }
 * ```
 */
export class ReplicaClients {
  readonly #transport: Transport;
  readonly #options: ReplicaClientOptions;
  readonly #clients = new Map<string, ReplicaClient>();

  /** Creates an empty cache; every client gets `options` (each its own fork of `random`). */
  constructor(transport: Transport, options: ReplicaClientOptions = {}) {
    this.#transport = transport;
    this.#options = options;
  }

  /** The client of the service run by `servers` (in this order). */
  for(servers: readonly string[]): ReplicaClient {
    const key = JSON.stringify(servers);
    let client = this.#clients.get(key);
    if (!client) {
      client = new ReplicaClient(this.#transport, servers, {
        ...this.#options,
        random: this.#options.random?.fork(),
      });
      this.#clients.set(key, client);
    }
    return client;
  }
}

/**
 * A client session: its writes go one at a time, numbered 1, 2, 3, ... so
 * the servers can recognise a retry.
 *
 * @example
 * ```ts
 * import type { Session } from "@distkit/distkit/kv";
 *
 * const s: Session = { id: "c1#2", seq: 7 };
 * ```
 */
export interface Session {
  /** The session's id: the client's id, then `#2`, `#3`... for more sessions. */
  id: string;
  /** The number of the session's latest write. */
  seq: number;
}

/**
 * The sessions of one client: one per write in flight, so concurrent writes
 * each have their own numbering, which is what the servers' exactly-once
 * tables need.
 *
 * @example
 * ```ts
 * import { Sessions } from "@distkit/distkit/kv";
 *
 * const sessions = new Sessions("c1");
 * const s = sessions.take(); // { id: "c1", seq: 1 }
 * sessions.release(s, "done");
 * ```
 */
export class Sessions {
  readonly #id: string;
  readonly #idle: Session[] = [];
  #count = 0;

  /**
   * Creates the sessions of client `id`.
   *
   * @throws {RangeError} when `id` is empty or contains `#`.
   */
  constructor(id: string) {
    if (id === "" || id.includes("#")) {
      throw new RangeError(
        `a client id must be non-empty and without "#" (sessions add #2, #3...), got "${id}"`,
      );
    }
    this.#id = id;
  }

  /** The client's id. */
  get id(): string {
    return this.#id;
  }

  /** A session for the next write, its number already advanced. */
  take(): Session {
    const session = this.#idle.pop() ?? this.#open();
    session.seq++;
    return session;
  }

  /**
   * Gives a session back. `done`: its write completed. `abandoned`: the
   * caller gave up; it goes first in line, since the write may still apply
   * until the session's next write has. `retired`: never used again.
   */
  release(session: Session, outcome: "done" | "abandoned" | "retired"): void {
    if (outcome === "done") this.#idle.unshift(session);
    else if (outcome === "abandoned") this.#idle.push(session);
  }

  #open(): Session {
    this.#count++;
    return { id: this.#count === 1 ? this.#id : `${this.#id}#${this.#count}`, seq: 0 };
  }
}
