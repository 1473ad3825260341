/**
 * `PrimaryBackupClerk`: the client of the primary/backup key/value service. It asks
 * the view service which server is the primary, calls it, and when that
 * server is not the primary (any more), cannot be reached or does not
 * answer in time, asks for the view again and retries, with the same
 * session number for a write, so each operation takes effect once.
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
  TimeoutError,
} from "../net/errors.ts";
import type { ClientEnd, Transport } from "../net/transport.ts";
import {
  refuseBadRequest,
  RequestAbortedError,
  RequestError,
  RequestTimeoutError,
} from "../rsm/errors.ts";
import { ambiguousIfProposed, DEFAULT_DEADLINE_MS, Sessions } from "../rsm/replica_client.ts";
import { unsendableRequest } from "../rsm/call_attempts.ts";
import { utf8Length } from "../net/bytes.ts";
import {
  parsePbGet,
  parsePbWrite,
  PB_KV_LIMITS,
  PB_KV_SERVICE,
  type PbKvLimits,
  type PbKvReply,
  type PbWriteOp,
} from "./kv_protocol.ts";
import { parseView, PING_INTERVAL_MS, type View } from "./view.ts";
import { defaultClock, defaultId } from "../net/env.ts";

/**
 * Options of a {@linkcode PrimaryBackupClerk}.
 *
 * @example
 * ```ts
 * import type { PrimaryBackupClerkOptions } from "@distkit/distkit/pb";
 *
 * const options: PrimaryBackupClerkOptions = { viewService: "127.0.0.1:7100", id: "web-1", timeoutMs: 10_000 };
 * ```
 */
export interface PrimaryBackupClerkOptions {
  /** The view service's name for the transport. */
  viewService: string;
  /**
   * The client's id, unique among all clients of the service (two clerks
   * sharing one would have each other's writes refused), without `#`, at
   * most 240 bytes. Default: a random UUID (none inside `simulate`: pass
   * `sim.newId()`).
   */
  id?: string;
  /** Time source for timeouts and pauses. Default: the real clock (none inside `simulate`: pass `sim.clock`). */
  clock?: Clock;
  /**
   * Deadline of one call to the view service or a server. Keep it above the
   * servers' `backupRetryMs` (1 s by default), so a primary that cannot
   * reach its backup can say so. Default 2,000 ms.
   */
  attemptTimeoutMs?: number;
  /** Longest pause between attempts (from 10 ms, doubling). Default {@linkcode PING_INTERVAL_MS}. */
  retryDelayMs?: number;
  /**
   * Deadline of a whole operation, unless the call gives its own: past it
   * the operation fails with a {@linkcode RequestTimeoutError}. Default 30 s;
   * `Infinity`: only the caller's signal ends an operation.
   */
  timeoutMs?: number;
  /** The limits to check requests against before sending. Default: the servers' defaults. */
  limits?: Partial<PbKvLimits>;
}

/**
 * Options of one operation of a {@linkcode PrimaryBackupClerk}.
 *
 * @example
 * ```ts
 * import type { PrimaryBackupCallOptions } from "@distkit/distkit/pb";
 *
 * const options: PrimaryBackupCallOptions = { timeoutMs: 2000, signal: AbortSignal.timeout(5000) };
 * ```
 */
export interface PrimaryBackupCallOptions {
  /** Gives up with a `RequestAbortedError` when it fires. */
  signal?: AbortSignal;
  /** Gives up with a {@linkcode RequestTimeoutError} after this many milliseconds. */
  timeoutMs?: number;
}

/** The first pause after a failed attempt. */
const FIRST_PAUSE_MS = 10;

/** The service's name in the clerk's errors. */
const SERVICE = "pb";

/** Longest client id: sessions add `#2`, `#3`... within the servers' 256 bytes. */
const MAX_ID_BYTES = 240;

/**
 * A client of the primary/backup key/value service. Operations may run
 * concurrently: each concurrent write gets its own session (`id`, `id#2`,
 * ...), within which writes go one at a time, as the servers'
 * exactly-once table needs.
 *
 * @example
 * ```ts
 * import { PrimaryBackupClerk } from "@distkit/distkit/pb";
 * import type { Transport } from "@distkit/distkit/net";
 *
 * async function greet(transport: Transport) {
 *   const clerk = new PrimaryBackupClerk(transport, { viewService: "vs" });
 *   await clerk.put("greeting", "hello");
 *   await clerk.append("greeting", ", world");
 *   return await clerk.get("greeting"); // "hello, world"
 * }
 * ```
 */
export class PrimaryBackupClerk {
  readonly #transport: Transport;
  readonly #viewService: ClientEnd;
  readonly #viewServiceName: string;
  readonly #sessions: Sessions;
  readonly #clock: Clock;
  readonly #attemptTimeoutMs: number;
  readonly #retryDelayMs: number;
  readonly #timeoutMs: number;
  readonly #limits: PbKvLimits;
  /** The view last read, while calls to its primary go well. */
  #view: View | undefined;

  /**
   * Creates a clerk; it calls nothing until the first operation.
   *
   * @param transport How to reach the view service and the servers, by name.
   * @throws {RangeError} for an id that is empty, has `#`, is too long or is
   * not valid Unicode, or a timeout that is not positive.
   */
  constructor(transport: Transport, options: PrimaryBackupClerkOptions) {
    // Not drawn from a seeded random: two processes must not share an id.
    const id = options.id ?? defaultId("PrimaryBackupClerk");
    if (!id.isWellFormed() || utf8Length(id) > MAX_ID_BYTES) {
      throw new RangeError(`a client id must be valid Unicode of at most ${MAX_ID_BYTES} bytes`);
    }
    this.#sessions = new Sessions(id);
    this.#transport = transport;
    this.#viewService = transport.connect(options.viewService);
    this.#viewServiceName = options.viewService;
    this.#clock = options.clock ?? defaultClock("PrimaryBackupClerk");
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? 2000;
    this.#retryDelayMs = options.retryDelayMs ?? PING_INTERVAL_MS;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_DEADLINE_MS;
    this.#limits = { ...PB_KV_LIMITS, ...options.limits };
    const timeouts = {
      attemptTimeoutMs: this.#attemptTimeoutMs,
      retryDelayMs: this.#retryDelayMs,
      timeoutMs: this.#timeoutMs,
    };
    for (const [name, value] of Object.entries(timeouts)) {
      if (!(value > 0)) throw new RangeError(`${name} must be above 0, got ${value}`);
    }
  }

  /** The client's id. */
  get id(): string {
    return this.#sessions.id;
  }

  /** The view the clerk last read (undefined before the first call or after a failed one). */
  get view(): View | undefined {
    return this.#view;
  }

  /**
   * The value of `key` ("" when it is absent), as of some moment between
   * the call and its return.
   *
   * @throws {RequestError} when the key is over the limit or not a string.
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {RequestTimeoutError} when the deadline passes first.
   */
  async get(key: string, options: PrimaryBackupCallOptions = {}): Promise<string> {
    refuseBadRequest(SERVICE, () => parsePbGet({ key }, this.#limits));
    const reply = await this.#call<{ value?: unknown }>("Get", { key }, "get", options);
    if (reply.value !== null && typeof reply.value !== "string") {
      throw new ProtocolError(`a Get reply's value must be a string or null, got ${reply.value}`);
    }
    return reply.value ?? "";
  }

  /**
   * The value of `key` as text ("" when it is absent): the same as
   * {@linkcode PrimaryBackupClerk.get}, named as the other clerks' typed reads are.
   *
   * @example
   * ```ts
   * import type { PrimaryBackupClerk } from "@distkit/distkit/pb";
   *
   * async function greeting(clerk: PrimaryBackupClerk): Promise<string> {
   *   return (await clerk.getText("greeting")) || "nobody said hello";
   * }
   * ```
   *
   * @throws {RequestError} when the key is over the limit or not a string.
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {RequestTimeoutError} when the deadline passes first.
   */
  getText(key: string, options: PrimaryBackupCallOptions = {}): Promise<string> {
    return this.get(key, options);
  }

  /**
   * The value of `key` as UTF-8 bytes (empty when it is absent).
   *
   * @example
   * ```ts
   * import type { PrimaryBackupClerk } from "@distkit/distkit/pb";
   *
   * async function size(clerk: PrimaryBackupClerk): Promise<number> {
   *   return (await clerk.getBytes("note")).length;
   * }
   * ```
   *
   * @throws {RequestError} when the key is over the limit or not a string.
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {RequestTimeoutError} when the deadline passes first.
   */
  async getBytes(key: string, options: PrimaryBackupCallOptions = {}): Promise<Uint8Array> {
    return new TextEncoder().encode(await this.get(key, options));
  }

  /**
   * Sets `key` to `value`.
   *
   * @throws {RequestError} when the key or value is over the limits, or the
   * request over the transport's frame limit (then it was not sent).
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {RequestTimeoutError} when the deadline passes first.
   */
  async put(key: string, value: string, options: PrimaryBackupCallOptions = {}): Promise<void> {
    await this.#write("put", { key, value }, options);
  }

  /**
   * Appends `value` to the value of `key` (a missing key starts from "").
   *
   * @throws {RequestError} when the key or value is over the limits, the
   * value would outgrow the value limit, or the request is over the
   * transport's frame limit (then it was not sent).
   * @throws {RequestAbortedError} when the signal fires first.
   * @throws {RequestTimeoutError} when the deadline passes first.
   */
  async append(key: string, value: string, options: PrimaryBackupCallOptions = {}): Promise<void> {
    await this.#write("append", { key, value }, options);
  }

  async #write(
    op: PbWriteOp,
    change: { key: string; value: string },
    options: PrimaryBackupCallOptions,
  ): Promise<void> {
    const { key, value } = change;
    refuseBadRequest(
      SERVICE,
      () => parsePbWrite({ client: this.id, seq: 1, op, key, value }, this.#limits),
    );
    const session = this.#sessions.take();
    try {
      await this.#call("Write", { client: session.id, seq: session.seq, op, key, value }, op, {
        ...options,
        write: true,
      });
    } catch (err) {
      // A refused write left nothing pending, but the servers may know the
      // session's numbers differently: start a fresh one. One that may have
      // applied is settled by the session's next write: it goes first in line.
      this.#sessions.release(session, err instanceof RequestError ? "retired" : "abandoned");
      throw err;
    }
    this.#sessions.release(session, "done");
  }

  /** Calls the primary until it answers `ok`. */
  async #call<T extends object>(
    method: "Get" | "Write",
    args: unknown,
    operation: string,
    options: PrimaryBackupCallOptions & { write?: boolean },
  ): Promise<{ status: "ok" } & T> {
    const { signal, write = false } = options;
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const deadlineAt = this.#clock.now() + timeoutMs;
    // Whether an attempt reached a server that may have applied it: even a
    // "wrong-server" answer may follow a forward the backup applied.
    const attempts = { mayHaveApplied: false };
    const settle = (err: Error) =>
      ambiguousIfProposed(err, {
        service: SERVICE,
        operation,
        attempts: write ? attempts : undefined,
      });
    let pause = FIRST_PAUSE_MS;
    let problem: string | undefined;
    // Who the last problem came from: the view service, or the primary it named.
    let problemAt = this.#viewServiceName;
    while (true) {
      if (signal?.aborted) {
        throw settle(
          new RequestAbortedError(SERVICE, operation, {
            mayHaveApplied: false,
            cause: signal.reason,
          }),
        );
      }
      const left = deadlineAt - this.#clock.now();
      if (left <= 0) {
        throw new RequestTimeoutError(SERVICE, operation, {
          mayHaveApplied: write && attempts.mayHaveApplied,
          deadlineMs: timeoutMs,
          tried: problem === undefined ? [] : [{ server: problemAt, error: problem }],
        });
      }
      const callOptions = { timeoutMs: Math.min(this.#attemptTimeoutMs, left), signal };
      let primaryCall = false;
      try {
        const view = this.#view ??= parseView(
          await this.#viewService.call("View.Get", {}, callOptions),
        );
        if (view.primary === "") {
          problem = "the view service names no primary yet";
          problemAt = this.#viewServiceName;
        } else {
          primaryCall = true;
          const reply = parseReply<T>(
            await this.#transport.connect(view.primary).call(
              `${PB_KV_SERVICE}.${method}`,
              args,
              callOptions,
            ),
          );
          if (reply.status === "ok") return reply;
          attempts.mayHaveApplied = true;
          problem = `answered wrong-server: ${reply.reason}`;
          problemAt = view.primary;
        }
      } catch (err) {
        // A refusal of the request itself is checked before anything is applied,
        // and a request never sent (no connection to the primary) applied nothing.
        const reached = primaryCall && !neverSent(err);
        if (reached && !(err instanceof BadArgumentsError)) attempts.mayHaveApplied = true;
        if (err instanceof AbortedError) {
          throw settle(
            new RequestAbortedError(SERVICE, operation, {
              mayHaveApplied: write && reached,
              cause: signal?.reason,
            }),
          );
        }
        if (err instanceof BadArgumentsError) {
          throw settle(new RequestError(SERVICE, err.remoteMessage));
        }
        // Too large to send, or not encodable: no server can take it.
        const unsendable = unsendableRequest(SERVICE, err, {
          earlierMayHaveApplied: write && attempts.mayHaveApplied,
        });
        if (unsendable !== undefined) throw settle(unsendable);
        if (!isRetryable(err)) throw settle(err as Error);
        // An attempt cut short by the deadline says less than the one before.
        const cutShort = err instanceof TimeoutError && left < this.#attemptTimeoutMs;
        if (!cutShort || problem === undefined) {
          problem = err.message;
          problemAt = primaryCall ? this.#view?.primary ?? problemAt : this.#viewServiceName;
        }
      }
      // Whoever it names may be gone: read the view again.
      this.#view = undefined;
      const wait = Math.min(pause, deadlineAt - this.#clock.now());
      pause = Math.min(2 * pause, this.#retryDelayMs);
      try {
        await delay(wait, { clock: this.#clock, signal });
      } catch {
        throw settle(
          new RequestAbortedError(SERVICE, operation, {
            mayHaveApplied: false,
            cause: signal?.reason,
          }),
        );
      }
    }
  }
}

/**
 * Checks a server's reply.
 *
 * @throws {ProtocolError} when it is not one.
 */
function parseReply<T extends object>(value: unknown): PbKvReply<T> {
  const r = value as { status?: unknown; reason?: unknown } | null;
  if (r?.status === "ok") return r as PbKvReply<T>;
  if (r?.status === "wrong-server" && typeof r.reason === "string") {
    return { status: "wrong-server", reason: r.reason };
  }
  throw new ProtocolError(`not a key/value reply: ${JSON.stringify(value)?.slice(0, 200)}`);
}
