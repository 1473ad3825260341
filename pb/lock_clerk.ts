/**
 * `LockClerk`: the client of the primary/backup lock service. It calls the
 * primary and, when that does not answer, the backup, retrying with backoff
 * until one answers; every request carries a session id and number, so a
 * retry gets the first answer back and an operation takes effect at most
 * once.
 *
 * @module
 */
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import {
  AbortedError,
  BadArgumentsError,
  isRetryable,
  neverSent,
  ProtocolError,
  RefusedError,
} from "../net/errors.ts";
import type { Random } from "../net/random.ts";
import type { ClientEnd, Transport } from "../net/transport.ts";
import { CallDeadline, DEFAULT_DEADLINE_MS, Sessions } from "../rsm/replica_client.ts";
import { AttemptLog, unsendableRequest } from "../rsm/call_attempts.ts";
import {
  OutcomeUnknownError,
  RequestAbortedError,
  RequestError,
  RequestTimeoutError,
  ServiceError,
} from "../rsm/errors.ts";
import {
  checkLockName,
  LOCK_SERVICE,
  type LockOpKind,
  type LockReply,
  type LockRequest,
} from "./lock_protocol.ts";
import { defaultClock, defaultId, defaultRandom } from "../net/env.ts";

/** The service's name in the clerk's errors. */
const SERVICE = "lock";

/**
 * The two servers of a lock service.
 *
 * @example
 * ```ts
 * import type { LockReplicas } from "@distkit/distkit/pb";
 *
 * const servers: LockReplicas = { primary: "lock-1", backup: "lock-2" };
 * ```
 */
export interface LockReplicas {
  /** The server clients call first. */
  primary: string;
  /** The server that takes over when the primary stops. */
  backup: string;
}

/**
 * Options of a {@linkcode LockClerk}.
 *
 * @example
 * ```ts
 * import type { LockClerkOptions } from "@distkit/distkit/pb";
 *
 * const options: LockClerkOptions = { id: "printer-daemon", attemptTimeoutMs: 2000 };
 * ```
 */
export interface LockClerkOptions {
  /**
   * The client's id, unique among all clients of the service (two clerks
   * sharing one would have requests refused), without `#`. Default: a
   * random UUID (none inside `simulate`: pass `sim.newId()`).
   */
  id?: string;
  /** Time source for timeouts and backoff. Default: the real clock (none inside `simulate`: pass `sim.clock`). */
  clock?: Clock;
  /** Randomness for the backoff jitter. Default: seeded from `SEED` or at random (none inside `simulate`: pass `sim.random.fork()`). */
  random?: Random;
  /**
   * Deadline of one attempt on one server. Keep it above the time the
   * primary may spend forwarding (its `forwardAttempts` ×
   * `forwardTimeoutMs`, 3 s by default), or a slow forward sends the clerk
   * to the backup, which then takes over. (A wait for the primary to send
   * a restarted backup its whole state is safe to give up on: the backup,
   * lacking the state meanwhile, sends the clerk back.) Default 5,000 ms.
   */
  attemptTimeoutMs?: number;
  /** Pause after both servers were tried without an answer; doubles up to `maxMs`. Default 20 ms to 1,000 ms. */
  backoff?: { baseMs?: number; maxMs?: number };
  /**
   * How long one operation may take before it fails with a
   * {@linkcode RequestTimeoutError} that names each server's last error;
   * a call's own `deadlineMs` overrides it. Default 30 s; `Infinity`: only
   * the caller's signal ends an operation.
   */
  deadlineMs?: number;
}

/**
 * Per-operation options.
 *
 * @example
 * ```ts
 * import type { LockCallOptions } from "@distkit/distkit/pb";
 *
 * const options: LockCallOptions = { signal: AbortSignal.timeout(5000) };
 * ```
 */
export interface LockCallOptions {
  /** Gives up with a {@linkcode RequestAbortedError} when it fires. */
  signal?: AbortSignal;
  /** This operation's deadline, overriding the clerk's `deadlineMs`. */
  deadlineMs?: number;
}

/**
 * A client of the lock service. Operations may run concurrently: each one
 * in flight has its own session (`id`, `id#2`, ...).
 *
 * @example
 * ```ts
 * import { LockClerk } from "@distkit/distkit/pb";
 * import type { Transport } from "@distkit/distkit/net";
 *
 * async function print(transport: Transport, job: () => Promise<void>) {
 *   const clerk = new LockClerk(transport, { primary: "p", backup: "b" });
 *   if (!(await clerk.lock("printer"))) return false; // someone else holds it
 *   try {
 *     await job();
 *   } finally {
 *     await clerk.unlock("printer");
 *   }
 *   return true;
 * }
 * ```
 */
export class LockClerk {
  readonly #servers: readonly [string, string];
  readonly #ends: readonly [ClientEnd, ClientEnd];
  readonly #sessions: Sessions;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #attemptTimeoutMs: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #deadlineMs: number;
  /** The server that answered last: 0 the primary, 1 the backup. */
  #current = 0;

  /**
   * Creates a clerk of the service run by `servers`.
   *
   * @param transport How to reach the servers.
   * @param servers The primary's and the backup's names.
   * @throws {RangeError} when the two names are equal, or the id is empty or contains `#`.
   */
  constructor(transport: Transport, servers: LockReplicas, options: LockClerkOptions = {}) {
    if (servers.primary === servers.backup) {
      throw new RangeError(
        `the primary and the backup must differ; both are "${servers.primary}"`,
      );
    }
    this.#servers = [servers.primary, servers.backup];
    this.#ends = [transport.connect(servers.primary), transport.connect(servers.backup)];
    // Not drawn from `random`: two processes with the same seed must not share an id.
    this.#sessions = new Sessions(options.id ?? defaultId("LockClerk"));
    this.#clock = options.clock ?? defaultClock("LockClerk");
    this.#random = options.random ?? defaultRandom("LockClerk");
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? 5000;
    this.#baseMs = options.backoff?.baseMs ?? 20;
    this.#maxMs = options.backoff?.maxMs ?? 1000;
    this.#deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    if (!(this.#deadlineMs > 0)) {
      throw new RangeError(`deadlineMs must be a number > 0 or Infinity, got ${this.#deadlineMs}`);
    }
  }

  /** The client's id. */
  get id(): string {
    return this.#sessions.id;
  }

  /** The server the next request goes to first (the one that answered last). */
  get server(): string {
    return this.#servers[this.#current];
  }

  /**
   * Takes the lock `name`: true if it was free (and is now held), false if
   * it was held.
   *
   * @throws {RequestError} when the name is empty, too long or not
   * valid Unicode, the transport cannot send it (over its frame limit), or a
   * server refuses the request for good.
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {RefusedError} when both servers refuse the connection.
   * @throws {OutcomeUnknownError} for any other failure after an attempt that may have applied.
   */
  lock(name: string, options: LockCallOptions = {}): Promise<boolean> {
    return this.#operate("lock", name, options);
  }

  /**
   * Releases the lock `name`: true if it was held (and is now free), false
   * if it was not held.
   *
   * @throws {RequestError} when the name is empty, too long or not
   * valid Unicode, the transport cannot send it (over its frame limit), or a
   * server refuses the request for good.
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {RefusedError} when both servers refuse the connection.
   * @throws {OutcomeUnknownError} for any other failure after an attempt that may have applied.
   */
  unlock(name: string, options: LockCallOptions = {}): Promise<boolean> {
    return this.#operate("unlock", name, options);
  }

  async #operate(op: LockOpKind, name: string, options: LockCallOptions): Promise<boolean> {
    try {
      checkLockName(name);
    } catch (err) {
      throw new RequestError(SERVICE, (err as Error).message);
    }
    const session = this.#sessions.take();
    try {
      const result = await this.#call(op, { client: session.id, seq: session.seq, name }, options);
      this.#sessions.release(session, "done");
      return result;
    } catch (err) {
      this.#sessions.release(session, "abandoned");
      throw err;
    }
  }

  async #call(op: LockOpKind, request: LockRequest, options: LockCallOptions): Promise<boolean> {
    const deadlineMs = options.deadlineMs ?? this.#deadlineMs;
    const deadline = new CallDeadline(deadlineMs, { clock: this.#clock, signal: options.signal });
    // This call's own: its error must not blame a server for what an earlier call heard.
    const log = new AttemptLog();
    try {
      return await this.#attempt(op, request, deadline.signal, log);
    } catch (err) {
      if (!deadline.expired || !(err instanceof RequestAbortedError)) throw err;
      throw new RequestTimeoutError(SERVICE, describe(op, request.name), {
        mayHaveApplied: err.mayHaveApplied,
        deadlineMs,
        tried: log.list(this.#servers),
        cause: err,
      });
    } finally {
      deadline.cancel();
    }
  }

  async #attempt(
    op: LockOpKind,
    request: LockRequest,
    signal: AbortSignal | undefined,
    log: AttemptLog,
  ): Promise<boolean> {
    const method = `${LOCK_SERVICE}.${op === "lock" ? "Lock" : "Unlock"}`;
    const what = describe(op, request.name);
    const refusedBy = new Set<number>();
    // Whether an attempt may have been applied: a refusal after one is no refusal.
    let mayHaveApplied = false;
    const settle = (err: Error): Error => {
      if (!mayHaveApplied || err instanceof RequestAbortedError) return err;
      const reason = err instanceof ServiceError ? err.detail : err.message;
      return new OutcomeUnknownError(SERVICE, what, { reason, cause: err });
    };
    let wait = this.#baseMs;
    let server = this.#current;
    for (let attempt = 1;; attempt++) {
      if (signal?.aborted) {
        throw new RequestAbortedError(SERVICE, what, { mayHaveApplied, cause: signal.reason });
      }
      let reply: LockReply | undefined;
      try {
        reply = await this.#ends[server].call<LockReply>(method, request, {
          timeoutMs: this.#attemptTimeoutMs,
          signal,
        });
      } catch (err) {
        log.note(this.#servers[server], (err as Error).message);
        if (err instanceof AbortedError) {
          throw new RequestAbortedError(SERVICE, what, {
            mayHaveApplied: mayHaveApplied || !err.notSent,
            cause: signal?.reason,
          });
        }
        if (err instanceof BadArgumentsError) {
          throw settle(new RequestError(SERVICE, err.remoteMessage));
        }
        // Too large to send, or not encodable: no server can take it.
        const unsendable = unsendableRequest(SERVICE, err, {
          earlierMayHaveApplied: mayHaveApplied,
        });
        if (unsendable !== undefined) throw settle(unsendable);
        // One server refusing us (another cluster, a secret we lack) may be
        // misconfigured: try the other; when both refuse, say why.
        if (err instanceof RefusedError) {
          refusedBy.add(server);
          if (refusedBy.size === 2) throw settle(err);
        } else {
          // Lost, timed out, or failed in the handler: it may have run (unless never sent).
          if (!neverSent(err)) mayHaveApplied = true;
          if (!isRetryable(err)) throw settle(err as Error);
        }
      }
      if (reply?.status === "ok") {
        if (typeof reply.result !== "boolean") {
          // Applied, but with an answer this clerk cannot read.
          mayHaveApplied = true;
          throw settle(
            new ProtocolError(
              `${this.#servers[server]} answered ${method} without a boolean result; ` +
                `check that both servers run this version`,
            ),
          );
        }
        this.#current = server;
        return reply.result;
      }
      if (reply?.status === "refused") throw settle(new RequestError(SERVICE, reply.reason));
      if (reply !== undefined) log.note(this.#servers[server], reply.status);
      // "not-primary" may come after the server ran it and could not get it to the backup.
      if (reply !== undefined) mayHaveApplied = true;
      // No answer, or "not-primary": the other server.
      server = 1 - server;
      if (attempt % 2 === 0) {
        try {
          await this.#pause(wait, signal);
        } catch {
          throw new RequestAbortedError(SERVICE, what, { mayHaveApplied, cause: signal?.reason });
        }
        wait = Math.min(this.#maxMs, wait * 2);
      }
    }
  }

  #pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return delay(ms / 2 + this.#random.next() * (ms / 2), { clock: this.#clock, signal });
  }
}

/** An operation as errors name it: `lock of "printer"`. */
function describe(op: LockOpKind, name: string): string {
  return `${op} of ${JSON.stringify(name)}`;
}
