/**
 * The client side of a replicated service ({@linkcode Replica}): finding the
 * leader among a set of servers and retrying there, and numbering writes in
 * sessions so the servers can recognise a retry ({@linkcode ReplicaClient.submit}
 * does it for every write; the replica applies each once). The KV clerk, the shard
 * controller's clerk and the sharded KV clerk are built on these.
 *
 * @module
 */
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import { AbortedError, BadArgumentsError, isRetryable, RefusedError } from "../net/errors.ts";
import type { Random } from "../net/random.ts";
import type { ClientEnd, Transport } from "../net/transport.ts";
import {
  OutcomeUnknownError,
  OverloadedError,
  RequestAbortedError,
  RequestError,
  RequestTimeoutError,
  type ServerAttempt,
  ServiceError,
  WrongLeaderError,
} from "./errors.ts";
import type { ReplicaReply } from "./replica.ts";
import { defaultClock, defaultId, defaultRandom } from "../net/env.ts";
import { ApplyError, SessionConflictError } from "./apply_error.ts";
import type { StampedWrite, WriteOutcome } from "./exactly_once.ts";
import { AttemptLog, describeAttempt, neverRan, unsendableRequest } from "./call_attempts.ts";

/**
 * Options of a {@linkcode ReplicaClient}.
 *
 * @example
 * ```ts
 * import type { ReplicaClientOptions } from "@distkit/distkit/rsm";
 *
 * const options: ReplicaClientOptions = { attemptTimeoutMs: 1000, backoff: { baseMs: 10, maxMs: 500 } };
 * ```
 */
export interface ReplicaClientOptions {
  /**
   * Time source for timeouts and backoff. Default: the real clock; inside
   * `simulate` there is none, and leaving it out throws
   * `MissingEnvironmentError` (pass `sim.clock`).
   */
  clock?: Clock;
  /**
   * Randomness for the backoff jitter and the first server tried. Default:
   * seeded from `SEED` or at random; inside `simulate` leaving it out throws
   * `MissingEnvironmentError` (pass `sim.random.fork()`).
   */
  random?: Random;
  /**
   * The client's id, which its sessions are named after: unique among the
   * service's clients, non-empty, without `#`. Used by
   * {@linkcode ReplicaClient.submit}. Default: a random UUID, taken at the
   * first `submit`; inside `simulate` leaving it out throws
   * `MissingEnvironmentError` there (pass `sim.newId()`).
   */
  id?: string;
  /**
   * Deadline of one attempt on one server. Keep it above the servers'
   * `requestTimeoutMs` so a slow server can say "retry". Default 2,500 ms.
   */
  attemptTimeoutMs?: number;
  /** Pause after every server has been tried once without success; doubles up to `maxMs`. Default 20 ms to 1,000 ms. */
  backoff?: { baseMs?: number; maxMs?: number };
  /**
   * Whether a server's "not the leader" answer sends the call on to the
   * leader it names (or the next server). False: the call ends there with
   * a {@linkcode WrongLeaderError}, for a caller that sends its own clients
   * to the leader (a node's HTTP API); a write that an earlier attempt may
   * have proposed ends with a {@linkcode OutcomeUnknownError} instead.
   * Default true.
   */
  followLeader?: boolean;
  /**
   * How long one call may take before it fails with a
   * {@linkcode RequestTimeoutError} that names every server and its last error;
   * a call's own `deadlineMs` overrides it. `Infinity`: wait for ever (only
   * the caller's signal ends a call). Default {@linkcode DEFAULT_DEADLINE_MS}.
   */
  deadlineMs?: number;
  /**
   * The service's name in the errors the client throws (their `service`,
   * and the start of their message). Default: the service part of the
   * method called (`Tickets` for `Tickets.Take`). The clerks built on this
   * client set their own (`kv`, `shard`, `shard controller`).
   */
  service?: string;
}

/**
 * The default deadline of a client call (30 s): the KV, shard and
 * primary/backup clerks fail with a {@linkcode RequestTimeoutError} after it
 * rather than wait for ever for servers that are all down.
 *
 * @example
 * ```ts
 * import { DEFAULT_DEADLINE_MS } from "@distkit/distkit/rsm";
 *
 * DEFAULT_DEADLINE_MS; // 30000
 * ```
 */
export const DEFAULT_DEADLINE_MS = 30_000;

/**
 * A call's deadline on a clock: a signal that fires when the caller's does
 * or when `deadlineMs` has passed, and which of the two it was.
 *
 * @example
 * ```ts
 * import { CallDeadline } from "@distkit/distkit/rsm";
 *
 * const deadline = new CallDeadline(1000);
 * try {
 *   // ... pass deadline.signal to the calls ...
 * } finally {
 *   deadline.cancel();
 * }
 * deadline.expired; // false
 * ```
 */
export class CallDeadline {
  readonly #controller = new AbortController();
  readonly #timer: { cancel(): void } | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort: (() => void) | undefined;
  readonly #callerSignal: AbortSignal | undefined;
  #expired = false;

  /**
   * Starts the clock.
   *
   * @param deadlineMs How long until it fires; `Infinity`: never (then
   * {@linkcode CallDeadline.signal} is the caller's own).
   * @throws {RangeError} when `deadlineMs` is not a number > 0.
   */
  constructor(deadlineMs: number, options: { clock?: Clock; signal?: AbortSignal } = {}) {
    if (!(deadlineMs > 0)) {
      throw new RangeError(`a deadline must be a number of milliseconds > 0, got ${deadlineMs}`);
    }
    this.#callerSignal = options.signal;
    if (deadlineMs === Infinity) {
      this.#signal = options.signal;
      return;
    }
    const clock = options.clock ?? defaultClock("CallDeadline");
    this.#timer = clock.setTimer(deadlineMs, () => {
      this.#expired = true;
      this.#controller.abort(new Error(`no answer within ${deadlineMs} ms`));
    });
    const caller = options.signal;
    if (caller !== undefined) {
      if (caller.aborted) this.#controller.abort(caller.reason);
      this.#onAbort = () => this.#controller.abort(caller.reason);
      caller.addEventListener("abort", this.#onAbort, { once: true });
    }
    this.#signal = this.#controller.signal;
  }

  /** Fires on the deadline or with the caller's signal (undefined: neither can fire). */
  get signal(): AbortSignal | undefined {
    return this.#signal;
  }

  /** Whether the deadline passed (and not the caller's signal first). */
  get expired(): boolean {
    return this.#expired && !(this.#callerSignal?.aborted ?? false);
  }

  /** Stops the clock. */
  cancel(): void {
    this.#timer?.cancel();
    if (this.#onAbort) this.#callerSignal?.removeEventListener("abort", this.#onAbort);
  }
}

/**
 * What the calls of one write have done so far: whether an attempt may have
 * been proposed (sent, and not answered with a refusal that proves it was
 * not). A write that goes to several replica groups (the sharded clerk)
 * shares one record across its calls, so a failure after any such attempt
 * says the write may have applied.
 *
 * @example
 * ```ts
 * import type { WriteAttempts } from "@distkit/distkit/rsm";
 *
 * const attempts: WriteAttempts = { mayHaveApplied: false };
 * ```
 */
export interface WriteAttempts {
  /** Whether an attempt may have been proposed (and so applied, now or later). */
  mayHaveApplied: boolean;
}

/**
 * Options of one {@linkcode ReplicaClient.call}.
 *
 * @example
 * ```ts
 * import type { ReplicaCallOptions } from "@distkit/distkit/rsm";
 *
 * const options: ReplicaCallOptions = { operation: "put", write: true, rounds: 1 };
 * ```
 */
export interface ReplicaCallOptions {
  /** The operation's name, for errors (`get`, `put`, `join`...). */
  operation: string;
  /** Whether it changes state (an abandoned write may have taken effect). */
  write: boolean;
  /** Gives up with a {@linkcode RequestAbortedError} when it fires. */
  signal?: AbortSignal;
  /**
   * Give up (resolve undefined) after this many rounds of trying every
   * server without an answer. Default: never give up.
   */
  rounds?: number;
  /**
   * The write's record, shared with its earlier calls (to other groups):
   * read to judge a failure, and set when an attempt may have been
   * proposed. Default: a fresh one.
   */
  attempts?: WriteAttempts;
  /** This call's deadline, overriding the client's `deadlineMs`; `Infinity`: none. */
  deadlineMs?: number;
  /**
   * Where this call records each server's outcome, for a caller that reports
   * them (the sharded clerk). Default: a fresh one.
   */
  log?: AttemptLog;
}

/**
 * Options of one {@linkcode ReplicaClient.submit}.
 *
 * @example
 * ```ts
 * import type { ReplicaSubmitOptions } from "@distkit/distkit/rsm";
 *
 * const options: ReplicaSubmitOptions = { operation: "take", deadlineMs: 5000 };
 * ```
 */
export interface ReplicaSubmitOptions {
  /** The operation's name, for errors. Default: the method's name. */
  operation?: string;
  /** Gives up with a {@linkcode RequestAbortedError} when it fires. */
  signal?: AbortSignal;
  /** This call's deadline, overriding the client's `deadlineMs`; `Infinity`: none. */
  deadlineMs?: number;
}

/**
 * A final answer from {@linkcode ReplicaClient.call}: done, or "ask the
 * directory which group serves it".
 *
 * @typeParam T The fields of an `ok` answer beside `status` (the payload),
 * as in {@linkcode ReplicaReply}; none by default.
 *
 * @example
 * ```ts
 * import type { FinalReply } from "@distkit/distkit/rsm";
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
 * Writes go through {@linkcode ReplicaClient.submit}, which stamps each with
 * one of the client's sessions so the replicas apply it once however often
 * it is retried; reads (and services with their own sessions) through
 * {@linkcode ReplicaClient.call}.
 *
 * @example
 * ```ts
 * import { ReplicaClient } from "@distkit/distkit/rsm";
 * import type { Transport } from "@distkit/distkit/net";
 *
 * async function take(transport: Transport): Promise<number> {
 *   const client = new ReplicaClient(transport, ["a", "b", "c"], { id: "client-1" });
 *   return await client.submit<number>("Tickets.Take", { op: "take" });
 * }
 * async function peek(transport: Transport) {
 *   const client = new ReplicaClient(transport, ["a", "b", "c"]);
 *   return await client.call<{ next: number }>("Tickets.Peek", {}, { operation: "peek", write: false });
 * }
 * ```
 */
export class ReplicaClient {
  readonly #transport: Transport;
  readonly #ends: ClientEnd[];
  readonly #servers: string[];
  /** What the attempts of the latest call to end did (see {@linkcode ReplicaClient.tried}). */
  #lastLog = new AttemptLog();
  readonly #deadlineMs: number;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #attemptTimeoutMs: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #followLeader: boolean;
  readonly #service: string | undefined;
  readonly #id: string | undefined;
  #sessions: Sessions | undefined;
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
    this.#transport = transport;
    this.#servers = [...new Set(servers)];
    this.#ends = this.#servers.map((s) => transport.connect(s));
    this.#deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    if (!(this.#deadlineMs > 0)) {
      throw new RangeError(`deadlineMs must be a number > 0 or Infinity, got ${this.#deadlineMs}`);
    }
    this.#clock = options.clock ?? defaultClock("ReplicaClient");
    this.#random = options.random ?? defaultRandom("ReplicaClient");
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? 2500;
    this.#baseMs = options.backoff?.baseMs ?? 20;
    this.#maxMs = options.backoff?.maxMs ?? 1000;
    this.#followLeader = options.followLeader ?? true;
    this.#service = options.service;
    this.#leader = this.#random.int(this.#servers.length);
    this.#id = options.id;
    if (options.id !== undefined) this.#sessions = new Sessions(options.id);
  }

  /**
   * Sends `command` as an exactly-once write to `method` (served by
   * `Replica.write`) and resolves with the machine's result. The write is
   * stamped with one of this client's sessions and its next number, and
   * every retry (after a lost reply, a new leader, a timeout) carries the
   * same stamp: the replicas apply it once and answer retries with the
   * result they recorded.
   *
   * @typeParam R What the machine's `apply` returns.
   * @throws {ApplyError} when the machine's `apply` threw on it (it counts
   * as applied; retrying gets the same answer).
   * @throws {RequestError} when a server refused it as malformed (the
   * machine's `validate`; nothing was applied).
   * @throws {SessionConflictError} when another client used this client's id.
   * @throws {OutcomeUnknownError} / {RequestAbortedError} / {RequestTimeoutError} as
   * {@linkcode ReplicaClient.call} does for a write.
   */
  async submit<R>(
    method: string,
    command: unknown,
    options: ReplicaSubmitOptions = {},
  ): Promise<R> {
    const sessions = this.#sessions ??= new Sessions(this.#id ?? defaultId("ReplicaClient"));
    const operation = options.operation ?? method;
    const session = sessions.take();
    const write: StampedWrite = { client: session.id, seq: session.seq, command };
    let reply: FinalReply<WriteOutcome<R>> | undefined;
    try {
      reply = await this.call<WriteOutcome<R>>(method, write, {
        operation,
        write: true,
        signal: options.signal,
        deadlineMs: options.deadlineMs,
      });
    } catch (err) {
      // It may still apply until the session's next write has: that one goes next.
      sessions.release(session, "abandoned");
      throw err;
    }
    sessions.release(session, "done");
    // No `rounds` limit: call() answers or throws.
    if (reply === undefined || reply.status !== "ok") {
      throw new RequestError(
        this.#service ?? method.split(".")[0],
        `${method} answered ${reply?.status ?? "nothing"}, not a write's outcome: is it served ` +
          `by Replica.write?`,
      );
    }
    if ("error" in reply) {
      if (reply.error === "apply") throw new ApplyError(operation, reply.message);
      throw new SessionConflictError(operation, session.id, session.seq);
    }
    return reply.result;
  }

  /**
   * The servers: those given, then those learned from the servers' answers
   * (a server that does not lead names the current members).
   */
  get servers(): readonly string[] {
    return this.#servers;
  }

  /** The server believed to lead (where the next request goes first). */
  get leader(): string {
    return this.#servers[this.#leader];
  }

  /**
   * Each server and its outcome in the latest call to end: `not tried` (that
   * call did not get to it), `ok`, or its last error in a few words. Never
   * what an earlier call heard: a call's own errors list its own attempts.
   */
  tried(): ServerAttempt[] {
    return this.#lastLog.list(this.#servers);
  }

  /** Adds the members a server named that this client did not know. */
  #learn(members: readonly string[] | undefined): void {
    for (const member of members ?? []) {
      if (typeof member !== "string" || this.#servers.includes(member)) continue;
      try {
        this.#ends.push(this.#transport.connect(member));
      } catch {
        continue; // a name this transport cannot reach: keep to the others
      }
      this.#servers.push(member);
    }
  }

  /**
   * Calls `method` (`Service.Method`) until a server answers `ok` or
   * `wrong-group`; undefined when `options.rounds` ran out first (a write's
   * `options.attempts` then says whether it may have been proposed).
   *
   * Every failure of a write says whether it may have been applied: a
   * {@linkcode RequestAbortedError} or {@linkcode OutcomeUnknownError} with
   * `mayHaveApplied` true once an attempt may have been proposed; any other
   * error only when none was. An attempt that failed before its request was
   * sent (`RpcError.notSent`) cannot have been proposed.
   *
   * @throws {RequestError} when a server says the request is malformed, or
   * the request could not be sent at all (over the transport's frame limit,
   * or not encodable; its `cause` says which): it was not applied.
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {WrongLeaderError} when a server does not lead and `followLeader` is false.
   * @throws {RefusedError} when every server refuses the connection.
   * @throws {OutcomeUnknownError} for any failure of a write after an attempt that may have been proposed.
   */
  async call<T extends object>(
    method: string,
    args: unknown,
    options: ReplicaCallOptions,
  ): Promise<FinalReply<T> | undefined> {
    const deadline = new CallDeadline(options.deadlineMs ?? this.#deadlineMs, {
      clock: this.#clock,
      signal: options.signal,
    });
    const attempts = options.attempts ?? { mayHaveApplied: false };
    const service = this.#service ?? method.split(".")[0];
    const log = options.log ?? new AttemptLog();
    try {
      return await this.#call<T>(method, args, {
        ...options,
        attempts,
        signal: deadline.signal,
        service,
        log,
      });
    } catch (err) {
      if (!deadline.expired || !(err instanceof RequestAbortedError)) throw err;
      throw new RequestTimeoutError(service, options.operation, {
        mayHaveApplied: err.mayHaveApplied,
        deadlineMs: options.deadlineMs ?? this.#deadlineMs,
        tried: log.list(this.#servers),
        cause: err,
      });
    } finally {
      deadline.cancel();
      this.#lastLog = log;
    }
  }

  async #call<T extends object>(
    method: string,
    args: unknown,
    options: ReplicaCallOptions & { service: string; log: AttemptLog },
  ): Promise<FinalReply<T> | undefined> {
    const { signal, operation, write, service, log } = options;
    const rounds = options.rounds ?? Infinity;
    const attempts = options.attempts ?? { mayHaveApplied: false };
    // Ends the call: a write that may have been proposed cannot be refused as if it was not.
    const settle = (err: Error) =>
      ambiguousIfProposed(err, { service, operation, attempts: write ? attempts : undefined });
    let tries = 0;
    const refusedBy = new Set<number>();
    let wait = this.#baseMs;
    let server = this.#leader;
    // Servers asked since the last pause: a hint naming one is not followed
    // (a stale server naming a dead leader, or one that does not lead, would
    // otherwise send us back and forth between the two for ever).
    const asked = new Set<number>();
    while (true) {
      if (signal?.aborted) {
        throw settle(
          new RequestAbortedError(service, operation, {
            mayHaveApplied: false,
            cause: signal.reason,
          }),
        );
      }
      let reply: unknown;
      asked.add(server);
      try {
        reply = await this.#ends[server].call(method, args, {
          timeoutMs: this.#attemptTimeoutMs,
          signal,
        });
      } catch (err) {
        log.note(this.#servers[server], describeAttempt(err));
        if (err instanceof AbortedError) {
          // Cut off in flight: the server may have it (not when it was never sent).
          if (write && !err.notSent) attempts.mayHaveApplied = true;
          throw settle(
            new RequestAbortedError(service, operation, {
              mayHaveApplied: write && !err.notSent,
              cause: signal?.reason,
            }),
          );
        }
        if (err instanceof BadArgumentsError) {
          throw settle(new RequestError(service, err.remoteMessage));
        }
        // Too large to send, or not encodable: no server can take it.
        const unsendable = unsendableRequest(service, err, {
          earlierMayHaveApplied: write && attempts.mayHaveApplied,
        });
        if (unsendable !== undefined) throw settle(unsendable);
        // A server that refuses us (another cluster, a secret we lack) may be one
        // misconfigured node: try the others; when every one refuses, say why.
        if (err instanceof RefusedError) {
          refusedBy.add(server);
          if (refusedBy.size === this.#servers.length) throw settle(err);
        } else {
          if (write && !neverRan(err)) attempts.mayHaveApplied = true;
          if (!isRetryable(err)) throw settle(err as Error);
        }
      }
      const r = reply as ReplicaReply<T> | undefined;
      if (r?.status === "ok" || r?.status === "wrong-group") {
        log.note(this.#servers[server], "ok");
        this.#leader = server;
        return r as FinalReply<T>;
      }
      if (r?.status === "retry") log.note(this.#servers[server], r.reason);
      if (r?.status === "not-leader") {
        const named = r.leaderAddress ?? r.leader;
        log.note(
          this.#servers[server],
          named === null ? "not the leader; no leader known" : `not the leader (${named} is)`,
        );
        if (this.#followLeader) this.#learn(r.members);
      }
      // "retry": the server may have proposed it before it gave up waiting.
      if (r?.status === "retry" && write) attempts.mayHaveApplied = true;
      if (r?.status === "overloaded") {
        // Refused before it was proposed: a definite refusal. Back off, then ask again.
        const refusal = new OverloadedError(service, r.reason, { retryAfterMs: r.retryAfterMs });
        if (!this.#followLeader) throw settle(refusal);
        this.#leader = server;
        tries += this.#servers.length - (tries % this.#servers.length);
        if (tries / this.#servers.length >= rounds) return undefined;
        try {
          await this.#pause(Math.max(wait, r.retryAfterMs), signal);
        } catch {
          throw settle(
            new RequestAbortedError(service, operation, {
              mayHaveApplied: false,
              cause: signal?.reason,
            }),
          );
        }
        wait = Math.min(this.#maxMs, wait * 2);
        continue;
      }
      if (r?.status === "not-leader" && !this.#followLeader) {
        throw settle(new WrongLeaderError(service, r.leader));
      }
      tries++;
      const hint = r?.status === "not-leader"
        ? this.#servers.indexOf(r.leaderAddress ?? r.leader ?? "")
        : -1;
      server = hint >= 0 && hint !== server && !asked.has(hint)
        ? hint
        : (server + 1) % this.#servers.length;
      if (tries % this.#servers.length === 0) {
        asked.clear();
        if (tries / this.#servers.length >= rounds) return undefined;
        try {
          await this.#pause(wait, signal);
        } catch {
          throw settle(
            new RequestAbortedError(service, operation, {
              mayHaveApplied: false,
              cause: signal?.reason,
            }),
          );
        }
        wait = Math.min(this.#maxMs, wait * 2);
      }
    }
  }

  #pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return delay(ms / 2 + this.#random.next() * (ms / 2), { clock: this.#clock, signal });
  }
}

/**
 * The error to end a write with: `err` itself while no attempt may have
 * been proposed, else one that says the write may have applied (a
 * {@linkcode RequestAbortedError} stays one, with `mayHaveApplied` true; any
 * other becomes an {@linkcode OutcomeUnknownError} with `err` as its
 * cause), naming `service`. For reads (`attempts` undefined), `err` itself.
 *
 * @example
 * ```ts
 * import { ambiguousIfProposed, WrongLeaderError } from "@distkit/distkit/rsm";
 *
 * const refusal = new WrongLeaderError("kv", null);
 * const before = { service: "kv", operation: "append", attempts: { mayHaveApplied: false } };
 * ambiguousIfProposed(refusal, before) === refusal; // true
 * const after = { service: "kv", operation: "append", attempts: { mayHaveApplied: true } };
 * ambiguousIfProposed(refusal, after).name; // "OutcomeUnknownError"
 * ```
 */
export function ambiguousIfProposed(
  err: Error,
  options: { service: string; operation: string; attempts?: WriteAttempts },
): Error {
  const { service, operation, attempts } = options;
  if (!attempts?.mayHaveApplied) return err;
  if (err instanceof RequestTimeoutError && !err.mayHaveApplied) {
    return new RequestTimeoutError(service, operation, {
      mayHaveApplied: true,
      deadlineMs: err.deadlineMs,
      tried: err.tried,
      cause: err.cause,
    });
  }
  if (err instanceof RequestAbortedError) {
    return err.mayHaveApplied
      ? err
      : new RequestAbortedError(service, operation, { mayHaveApplied: true, cause: err.cause });
  }
  if (err instanceof OutcomeUnknownError) return err;
  const reason = err instanceof ServiceError ? err.detail : err.message;
  return new OutcomeUnknownError(service, operation, { reason, cause: err });
}

/**
 * One {@linkcode ReplicaClient} per set of servers, made on first use and
 * kept (so each remembers its leader): how a sharded client or a shard
 * group reaches the groups a configuration names.
 *
 * @example
 * ```ts
 * import { ReplicaClients } from "@distkit/distkit/rsm";
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
 * import type { Session } from "@distkit/distkit/rsm";
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
 * import { Sessions } from "@distkit/distkit/rsm";
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
