/**
 * `KvClerk`: the client of the KV service. It finds the leader and remembers
 * it, retries across servers with backoff, bounds every attempt with a
 * timeout, and returns only once the operation is known to have happened
 * exactly once (or the caller's signal fires).
 *
 * @module
 */
import type { Transport } from "../net/transport.ts";
import { refuseBadRequest, RequestError, type ServerAttempt } from "../rsm/errors.ts";
import { checkSession } from "../rsm/checks.ts";
import {
  checkWriteResult,
  DEFAULT_KV_LIMITS,
  type KvLimits,
  type KvReply,
  parseGet,
  parseWriteOp,
} from "../kvstate/protocol.ts";
import {
  ambiguousIfProposed,
  ReplicaClient,
  type ReplicaClientOptions,
  type Session,
  Sessions,
} from "../rsm/replica_client.ts";
import type { KvResult, KvWrite } from "../kvstate/state.ts";
import { type KvValue, valueAsBytes, valueAsText } from "../kvstate/value.ts";
import { defaultId } from "../net/env.ts";

/** The service's name in the clerk's errors. */
const SERVICE = "kv";

/**
 * Options of a {@linkcode KvClerk}.
 *
 * @example
 * ```ts
 * import type { KvClerkOptions } from "@distkit/distkit/kv";
 *
 * const options: KvClerkOptions = { attemptTimeoutMs: 1000, backoff: { baseMs: 10, maxMs: 500 } };
 * ```
 */
export interface KvClerkOptions extends ReplicaClientOptions {
  /**
   * The client's id, unique among all clients of the service (two clerks
   * sharing one would have each other's writes refused), without `#`.
   * Default: a random UUID (none inside `simulate`: pass `sim.newId()`).
   */
  id?: string;
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
  /** Gives up with a {@linkcode RequestAbortedError} when it fires. */
  signal?: AbortSignal;
  /**
   * Gives up with a {@linkcode RequestTimeoutError} after this long, overriding
   * the clerk's `deadlineMs` (default 30 s); `Infinity`: only the signal ends it.
   */
  deadlineMs?: number;
}

/**
 * Options of one write.
 *
 * @example
 * ```ts
 * import type { KvWriteOptions } from "@distkit/distkit/kv";
 *
 * const options: KvWriteOptions = { session: { id: "web-7", seq: 12 } };
 * ```
 */
export interface KvWriteOptions extends KvCallOptions {
  /**
   * Write in this session (client id and number) instead of one of the
   * clerk's own: for a caller that numbers its writes itself, such as a
   * proxy relaying its clients' numbering (the HTTP API's `X-Distkit-Client`
   * and `X-Distkit-Seq`). The id must be unique to that caller (no clerk's
   * own); its writes go one at a time with rising numbers, and a resend of
   * a write repeats its number, so it is applied at most once. A write in a
   * session given here that fails says it may have applied
   * (`mayHaveApplied` true) even when this call sent nothing: an earlier
   * send of the same number may have.
   */
  session?: Session;
}

/**
 * The outcome of {@linkcode KvClerk.cas}: whether the value was set, and if
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
 * A client of the KV service. Operations may run concurrently: each
 * concurrent write gets its own session (`id`, `id#2`, ...), and within a
 * session writes go one at a time, which is what the servers' exactly-once
 * table needs.
 *
 * A write that fails either certainly did not apply, or says so: its error
 * has `mayHaveApplied` true ({@linkcode RequestAbortedError},
 * {@linkcode OutcomeUnknownError}).
 *
 * Every call has a deadline: `deadlineMs` of the clerk or of the call,
 * default 30 s ({@linkcode DEFAULT_DEADLINE_MS}); past it the call fails
 * with a {@linkcode RequestTimeoutError} naming each server and its last error.
 * Pass `deadlineMs: Infinity` to wait for ever. Such a write may still apply until the
 * clerk's next write in the same session completes (the clerk reuses that
 * session first).
 *
 * @example
 * ```ts
 * import { KvClerk } from "@distkit/distkit/kv";
 * import type { Transport } from "@distkit/distkit/net";
 *
 * async function greet(transport: Transport) {
 *   const clerk = new KvClerk(transport, ["a", "b", "c"]);
 *   await clerk.put("greeting", "hello");
 *   await clerk.append("greeting", ", world");
 *   return await clerk.get("greeting"); // "hello, world"
 * }
 * ```
 */
export class KvClerk {
  readonly #client: ReplicaClient;
  readonly #sessions: Sessions;
  readonly #limits: KvLimits;

  /**
   * Creates a clerk for the service run by `servers`.
   *
   * @param transport How to reach the servers.
   * @param servers The servers' names (their Raft ids), at least one.
   * @throws {RangeError} when there are no servers, or the id is empty or contains `#`.
   */
  constructor(transport: Transport, servers: readonly string[], options: KvClerkOptions = {}) {
    if (servers.length === 0) throw new RangeError("a KvClerk needs at least one server");
    // Not drawn from `random`: two processes with the same seed must not share an id.
    this.#sessions = new Sessions(options.id ?? defaultId("KvClerk"));
    this.#client = new ReplicaClient(transport, servers, { ...options, service: SERVICE });
    this.#limits = { ...DEFAULT_KV_LIMITS, ...options.limits };
  }

  /** The client's id. */
  get id(): string {
    return this.#sessions.id;
  }

  /** The server the clerk believes leads (where it sends the next request first). */
  get leader(): string {
    return this.#client.leader;
  }

  /**
   * Every server the clerk knows (those given, then those the servers named)
   * and how it fared in the clerk's latest call to end: `not tried` (that
   * call did not get to it), `ok`, or its last error; for saying what was
   * tried when a call fails. Never what an earlier call heard.
   *
   * @example
   * ```ts
   * import type { KvClerk } from "@distkit/distkit/kv";
   *
   * function report(clerk: KvClerk): string {
   *   return clerk.tried().map((t) => `${t.server}: ${t.error}`).join("\n");
   * }
   * ```
   */
  tried(): ServerAttempt[] {
    return this.#client.tried();
  }

  /**
   * The value of `key` (null when absent), as of some moment between the
   * call and its return.
   *
   * @throws {RequestError} when the key is over the limit or not a string.
   * @throws {RequestAbortedError} when the signal fires first.
   */
  async get(key: string, options: KvCallOptions = {}): Promise<KvValue | null> {
    refuseBadRequest(SERVICE, () => parseGet({ key }, this.#limits));
    const reply = await this.#call("Get", { key }, { ...options, operation: "get" });
    return reply.value ?? null;
  }

  /**
   * The value of `key` as text (null when absent); a value stored as bytes
   * is decoded as UTF-8.
   *
   * @example
   * ```ts
   * import type { KvClerk } from "@distkit/distkit/kv";
   *
   * async function greeting(clerk: KvClerk): Promise<string> {
   *   return (await clerk.getText("greeting")) ?? "nobody said hello";
   * }
   * ```
   *
   * @throws {TypeError} when the value is bytes that are not valid UTF-8.
   * @throws {RequestError} when the key is over the limit or not a string.
   * @throws {RequestAbortedError} when the signal fires first.
   */
  async getText(key: string, options: KvCallOptions = {}): Promise<string | null> {
    const value = await this.get(key, options);
    return value === null ? null : valueAsText(value, key);
  }

  /**
   * The value of `key` as bytes (null when absent); a value stored as text
   * is encoded as UTF-8.
   *
   * @example
   * ```ts
   * import type { KvClerk } from "@distkit/distkit/kv";
   *
   * async function size(clerk: KvClerk): Promise<number> {
   *   return (await clerk.getBytes("photo"))?.length ?? 0;
   * }
   * ```
   *
   * @throws {RequestError} when the key is over the limit or not a string.
   * @throws {RequestAbortedError} when the signal fires first.
   */
  async getBytes(key: string, options: KvCallOptions = {}): Promise<Uint8Array | null> {
    const value = await this.get(key, options);
    return value === null ? null : valueAsBytes(value);
  }

  /**
   * Sets `key` to `value`.
   *
   * @throws {RequestError} when the key or value is over the limits, or the
   * request over the transport's frame limit (then it was not sent).
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {OutcomeUnknownError} when it ends without an answer after it may have been proposed.
   */
  async put(key: string, value: KvValue, options: KvWriteOptions = {}): Promise<void> {
    await this.#write({ type: "put", key, value }, options);
  }

  /**
   * Appends `value` to the value of `key` (a missing key starts empty).
   *
   * @throws {RequestError} when the key or value is over the limits, the
   * value would outgrow the value limit, or the request is over the
   * transport's frame limit (then it was not sent).
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {OutcomeUnknownError} when it ends without an answer after it may have been proposed.
   */
  async append(key: string, value: KvValue, options: KvWriteOptions = {}): Promise<void> {
    await this.#write({ type: "append", key, value }, options);
  }

  /**
   * Removes `key` (nothing happens when it is absent); resolves to whether
   * it was there (true from a server too old to say).
   *
   * @throws {RequestError} when the key is over the limit.
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {OutcomeUnknownError} when it ends without an answer after it may have been proposed.
   */
  async delete(key: string, options: KvWriteOptions = {}): Promise<boolean> {
    const result = await this.#write({ type: "delete", key }, options);
    return result.existed ?? true;
  }

  /**
   * Sets `key` to `change.value` only if its value equals `change.expected`
   * (null: the key must be absent).
   *
   * @throws {RequestError} when the key or a value is over the limits, or the
   * request over the transport's frame limit (then it was not sent).
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {OutcomeUnknownError} when it ends without an answer after it may have been proposed.
   */
  async cas(
    key: string,
    change: { expected: KvValue | null; value: KvValue },
    options: KvWriteOptions = {},
  ): Promise<CasOutcome> {
    const result = await this.#write(
      { type: "cas", key, expected: change.expected, value: change.value },
      options,
    );
    return result.ok ? { ok: true } : { ok: false, current: result.current ?? null };
  }

  async #write(write: KvWrite, options: KvWriteOptions): Promise<KvResult> {
    const clean = refuseBadRequest(SERVICE, () => parseWriteOp(write, this.#limits));
    const given = options.session;
    if (given !== undefined) refuseBadRequest(SERVICE, () => checkSession(given.id, given.seq));
    const session = given ?? this.#sessions.take();
    let reply: KvReply & { status: "ok" };
    try {
      reply = await this.#call(
        "Write",
        { client: session.id, seq: session.seq, write: clean },
        {
          signal: options.signal,
          deadlineMs: options.deadlineMs,
          operation: write.type,
          // The caller's number may be a resend's, of a write an earlier call may have applied.
          resend: given !== undefined,
        },
      );
    } catch (err) {
      // Its next write settles this one: it goes first in line.
      if (given === undefined) this.#sessions.release(session, "abandoned");
      throw err;
    }
    if (given === undefined) this.#sessions.release(session, "done");
    return checkWriteResult(reply.result, session.id, { service: SERVICE });
  }

  async #call(
    method: "Get" | "Write",
    args: unknown,
    options: KvCallOptions & { operation: string; resend?: boolean },
  ): Promise<KvReply & { status: "ok" }> {
    const write = method === "Write";
    const attempts = { mayHaveApplied: options.resend === true };
    const reply = await this.#client.call<{ value?: KvValue | null; result?: KvResult }>(
      `KV.${method}`,
      args,
      { ...options, write, attempts },
    );
    if (reply?.status !== "ok") {
      // Another server of the list may have taken the write before this one said so.
      throw ambiguousIfProposed(
        new RequestError(
          SERVICE,
          "a server answered wrong-group: these servers run a sharded service; use its clerk",
        ),
        { service: SERVICE, operation: options.operation, attempts: write ? attempts : undefined },
      );
    }
    return reply;
  }
}
