/**
 * The errors every service client throws: one family for the KV clerk, the
 * sharded clerk, the shard controller's clerk, the primary/backup and lock
 * clerks, and `ReplicaClient` itself (for a service of your own). Each
 * names the service it came from (`service`, and its message starts `kv: `,
 * `lock: `...), and each says whether the request may have taken effect:
 *
 * - {@linkcode RequestError}: the request is wrong, or was refused for good;
 *   retrying it will not help.
 * - {@linkcode RequestAbortedError}: the caller's signal fired first;
 *   {@linkcode RequestTimeoutError}: the client's deadline passed first.
 * - {@linkcode OutcomeUnknownError}: a write ended without an answer after it
 *   may have been proposed (`mayHaveApplied` is always true).
 * - {@linkcode OverloadedError}: the server refused the write before
 *   proposing it (`mayHaveApplied` is always false).
 * - {@linkcode WrongLeaderError}: the server asked does not lead, and the
 *   caller asked not to be sent on (6.824's `ErrWrongLeader`).
 *
 * What it is not: the transport's own errors (a refused connection, one
 * call that timed out) are `net/`'s, and Raft's refusals `raft/`'s. A clerk
 * passes a few of those on as they are: `RefusedError` when every server
 * refused the connection, for one.
 *
 * @module
 */

/**
 * The base of the errors a service client throws of its own, each naming
 * the service it came from: `instanceof ServiceError` tells them from the
 * transport's errors a clerk passes on (`net/`'s `RefusedError`...); the
 * subclass (or {@linkcode mayHaveApplied}) tells what happened.
 *
 * @example
 * ```ts
 * import { RequestError, ServiceError } from "@distkit/distkit/rsm";
 *
 * const err: unknown = new RequestError("kv", "key is 3000 bytes; the limit is 1024");
 * if (err instanceof ServiceError) err.service; // "kv"
 * if (err instanceof ServiceError) err.detail; // "request refused: key is 3000 bytes; the limit is 1024"
 * ```
 */
export class ServiceError extends Error {
  /** The service the error came from (`kv`, `shard`, `shard controller`, `pb`, `lock`...). */
  readonly service: string;

  /**
   * Creates the error.
   *
   * @param service The service it came from.
   * @param message What went wrong and what to do, without the service's name (it is added).
   * @param options Standard error options (`cause`).
   */
  constructor(service: string, message: string, options?: ErrorOptions) {
    super(`${service}: ${message}`, options);
    this.name = "ServiceError";
    this.service = service;
  }

  /**
   * The message without the service's name in front: for quoting inside
   * another message of the same service.
   */
  get detail(): string {
    const prefix = `${this.service}: `;
    return this.message.startsWith(prefix) ? this.message.slice(prefix.length) : this.message;
  }
}

/**
 * The request itself is wrong (a key or value over the limits, a value of
 * the wrong type, an empty lock name), the transport could not send it (over
 * its frame limit, or not encodable: the `cause` is its `FrameTooLargeError`
 * or `CodecError`, see `unsendableRequest`), or a server refused it for good
 * (a group already joined, two clerks sharing an id): it was not applied,
 * and retrying it will not help.
 *
 * @example
 * ```ts
 * import { RequestError } from "@distkit/distkit/rsm";
 *
 * const err = new RequestError("kv", "key is 3000 bytes; the limit is 1024");
 * err.message; // "kv: request refused: key is 3000 bytes; the limit is 1024"
 * ```
 */
export class RequestError extends ServiceError {
  /** What is wrong with the request, in the words of whoever refused it. */
  readonly problem: string;

  /**
   * Creates the error.
   *
   * @param service The service whose request it is.
   * @param problem What is wrong with the request.
   * @param options Standard error options (`cause`).
   */
  constructor(service: string, problem: string, options?: ErrorOptions) {
    super(service, `request refused: ${problem}`, options);
    this.name = "RequestError";
    this.problem = problem;
  }
}

/** The end of a message for a write that may or may not have taken effect. */
const MAY_HAVE_APPLIED = "; it may or may not have taken effect: read to find out";

/**
 * Options of a {@linkcode RequestAbortedError}.
 *
 * @example
 * ```ts
 * import type { RequestAbortedErrorOptions } from "@distkit/distkit/rsm";
 *
 * const options: RequestAbortedErrorOptions = { mayHaveApplied: false };
 * ```
 */
export interface RequestAbortedErrorOptions extends ErrorOptions {
  /** Whether the request was a write that a server may have applied. */
  mayHaveApplied: boolean;
}

/**
 * The caller's `AbortSignal` fired before the client knew the outcome. A
 * read simply did not happen. A write may or may not have taken effect
 * (`mayHaveApplied`), and may still take effect later (it may be in the
 * log) until the client's next write completes: that write reuses the
 * abandoned write's session, and once it is applied the abandoned one never
 * will be. Read back after that.
 *
 * @example
 * ```ts
 * import { RequestAbortedError } from "@distkit/distkit/rsm";
 *
 * const err = new RequestAbortedError("kv", "put", { mayHaveApplied: true });
 * err.mayHaveApplied; // true
 * err.message; // "kv: put abandoned: the caller's signal fired; it may or may not have taken effect: read to find out"
 * ```
 */
export class RequestAbortedError extends ServiceError {
  /** The operation abandoned (`get`, `put`, `lock of "printer"`...). */
  readonly operation: string;
  /** Whether the request was a write that a server may have applied. */
  readonly mayHaveApplied: boolean;

  /**
   * Creates the error.
   *
   * @param service The service called.
   * @param operation The operation abandoned (`get`, `put`...).
   * @param options Whether a server may have applied it, and `cause`.
   */
  constructor(service: string, operation: string, options: RequestAbortedErrorOptions) {
    const { mayHaveApplied, ...errorOptions } = options;
    super(
      service,
      `${operation} abandoned: the caller's signal fired` +
        (mayHaveApplied ? MAY_HAVE_APPLIED : ""),
      errorOptions,
    );
    this.name = "RequestAbortedError";
    this.operation = operation;
    this.mayHaveApplied = mayHaveApplied;
  }
}

/**
 * What a client last heard from one server, for the message of a
 * {@linkcode RequestTimeoutError}.
 *
 * @example
 * ```ts
 * import type { ServerAttempt } from "@distkit/distkit/rsm";
 *
 * const attempt: ServerAttempt = { server: "127.0.0.1:7001", error: "connection refused" };
 * ```
 */
export interface ServerAttempt {
  /** The server (its name or address). */
  server: string;
  /** Its last failure in a few words, or `not tried`. */
  error: string;
}

/**
 * Options of a {@linkcode RequestTimeoutError}.
 *
 * @example
 * ```ts
 * import type { RequestTimeoutErrorOptions } from "@distkit/distkit/rsm";
 *
 * const options: RequestTimeoutErrorOptions = { mayHaveApplied: false, deadlineMs: 30_000, tried: [] };
 * ```
 */
export interface RequestTimeoutErrorOptions extends RequestAbortedErrorOptions {
  /** The deadline that passed, in milliseconds. */
  deadlineMs: number;
  /** Each server tried and its last failure. */
  tried: readonly ServerAttempt[];
  /**
   * Whose answer the client was waiting for, when "the servers tried" is not
   * the whole story (`group 100, which holds shard 3 in configuration 1`):
   * the message says `no answer within N ms from <waitedFor>`.
   */
  waitedFor?: string;
  /**
   * What to check before trying again, in place of `check that the servers
   * are up and reachable`; a write that may have applied gets it too.
   */
  advice?: string;
}

/**
 * The client's deadline passed before it knew the outcome (a
 * {@linkcode RequestAbortedError}, so `mayHaveApplied` means the same): its
 * message says how long it waited and what each server last answered.
 * Clients have a default deadline (`deadlineMs`, 30 s); pass
 * `deadlineMs: Infinity` to wait for ever.
 *
 * @example
 * ```ts
 * import { RequestTimeoutError } from "@distkit/distkit/rsm";
 *
 * const err = new RequestTimeoutError("kv", "get", {
 *   mayHaveApplied: false,
 *   deadlineMs: 30_000,
 *   tried: [{ server: "127.0.0.1:7001", error: "connection refused" }],
 * });
 * err.message.startsWith("kv: get: no answer within 30000 ms; tried 127.0.0.1:7001 (connection refused)"); // true
 * ```
 */
export class RequestTimeoutError extends RequestAbortedError {
  /** The deadline that passed, in milliseconds. */
  readonly deadlineMs: number;
  /** Each server tried and its last failure. */
  readonly tried: readonly ServerAttempt[];
  /** Whose answer the client was waiting for, when given (see {@linkcode RequestTimeoutErrorOptions}). */
  readonly waitedFor: string | undefined;
  /** What to check before trying again, when given. */
  readonly advice: string | undefined;

  /**
   * Creates the error.
   *
   * @param service The service called.
   * @param operation The operation abandoned (`get`, `put`...).
   * @param options The deadline, each server's last failure, whether a server may have applied it, whom it waited for, what to check, and `cause`.
   */
  constructor(service: string, operation: string, options: RequestTimeoutErrorOptions) {
    const { deadlineMs, tried, waitedFor, advice, ...abortedOptions } = options;
    super(service, operation, abortedOptions);
    this.name = "RequestTimeoutError";
    this.deadlineMs = deadlineMs;
    this.tried = tried;
    this.waitedFor = waitedFor;
    this.advice = advice;
    const servers = tried.map((t) => `${t.server} (${t.error})`).join(", ");
    this.message = `${service}: ${operation}: no answer within ${deadlineMs} ms` +
      (waitedFor === undefined ? "" : ` from ${waitedFor}`) +
      (servers === "" ? "" : `; tried ${servers}`) +
      // A write that may have applied is not to be sent again blindly: no "then retry".
      (this.mayHaveApplied
        ? (advice === undefined ? "" : `; ${advice}`) + MAY_HAVE_APPLIED
        : `; ${advice ?? "check that the servers are up and reachable"}, then retry`);
  }
}

/**
 * Runs a request parser, turning its complaint into a
 * {@linkcode RequestError} of `service`: how clerks refuse a bad request
 * before sending it.
 *
 * @example
 * ```ts
 * import { checkString, refuseBadRequest } from "@distkit/distkit/rsm";
 *
 * refuseBadRequest("kv", () => checkString("x", { field: "key", maxBytes: 1024 })); // "x"
 * ```
 */
export function refuseBadRequest<T>(service: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new RequestError(service, (err as Error).message, { cause: err });
  }
}

/**
 * Options of an {@linkcode OutcomeUnknownError}.
 *
 * @example
 * ```ts
 * import type { OutcomeUnknownErrorOptions } from "@distkit/distkit/rsm";
 *
 * const options: OutcomeUnknownErrorOptions = { reason: "the server asked no longer leads" };
 * ```
 */
export interface OutcomeUnknownErrorOptions extends ErrorOptions {
  /** Why no answer came, in a few words. */
  reason: string;
  /** Whether the session has since applied a later write. Default false. */
  superseded?: boolean;
}

/**
 * A write ended without an answer, after an attempt that a server may have
 * applied: every server then refused the connection, the server asked no
 * longer leads (for a caller that does not follow leaders), a server failed,
 * or the session's numbering moved past it. The write may or may not have
 * taken effect, and may still take effect until the same session's next
 * write completes. Do not resend it blindly: read to find out, or resend it
 * in the same session (client id and number), which applies it at most once.
 *
 * @example
 * ```ts
 * import { OutcomeUnknownError } from "@distkit/distkit/rsm";
 *
 * const err = new OutcomeUnknownError("kv", "append", { reason: "the server asked no longer leads" });
 * err.mayHaveApplied; // true
 * ```
 */
export class OutcomeUnknownError extends ServiceError {
  /** Always true: the write may have been applied (the property every ambiguous error has). */
  readonly mayHaveApplied: true = true;
  /** The operation (`put`, `append`, `lock of "printer"`...). */
  readonly operation: string;
  /** Why no answer came, in a few words. */
  readonly reason: string;
  /**
   * Whether the session has since applied a later write: then resending
   * this one in the same session cannot settle it either (it is refused as
   * old); read to find out.
   */
  readonly superseded: boolean;

  /**
   * Creates the error.
   *
   * @param service The service called.
   * @param operation The write whose outcome is unknown (`put`, `append`...).
   * @param options Why no answer came, `superseded` when the session has applied a later write, and `cause`.
   */
  constructor(service: string, operation: string, options: OutcomeUnknownErrorOptions) {
    const { reason, superseded = false, ...errorOptions } = options;
    super(
      service,
      `${operation}: outcome unknown (${reason}); it may or may not have taken effect: ` +
        `read to find out before writing again, or resend it in the same session ` +
        `(client id and number), which applies it at most once`,
      errorOptions,
    );
    this.name = "OutcomeUnknownError";
    this.operation = operation;
    this.reason = reason;
    this.superseded = superseded;
  }
}

/**
 * The server asked does not lead, and the caller asked not to be sent on to
 * the leader (the client option `followLeader: false`): the request was not
 * proposed there. `leader` is the server's hint (null: none known). 6.824
 * calls this `ErrWrongLeader`; Raft's own refusal is `raft/`'s
 * `NotLeaderError`.
 *
 * @example
 * ```ts
 * import { WrongLeaderError } from "@distkit/distkit/rsm";
 *
 * new WrongLeaderError("kv", "2").message; // "kv: the server asked does not lead (the leader is 2); send the request there"
 * ```
 */
export class WrongLeaderError extends ServiceError {
  /** The leader the server named, or null when it knows none. */
  readonly leader: string | null;

  /**
   * Creates the error.
   *
   * @param service The service called.
   * @param leader The leader the server named, or null.
   * @param options Standard error options (`cause`).
   */
  constructor(service: string, leader: string | null, options?: ErrorOptions) {
    super(
      service,
      leader === null
        ? "the server asked does not lead (no leader is known yet); retry shortly"
        : `the server asked does not lead (the leader is ${leader}); send the request there`,
      options,
    );
    this.name = "WrongLeaderError";
    this.leader = leader;
  }
}

/**
 * Whether an error a clerk threw for a write leaves the write's outcome open:
 * true for an error with `mayHaveApplied` true, false for one with it false
 * or a refusal of the request itself ({@linkcode RequestError}, a refused
 * connection...), which certainly did not apply.
 *
 * @example
 * ```ts
 * import { mayHaveApplied, RequestAbortedError } from "@distkit/distkit/rsm";
 *
 * mayHaveApplied(new RequestAbortedError("kv", "put", { mayHaveApplied: true })); // true
 * mayHaveApplied(new RequestAbortedError("kv", "put", { mayHaveApplied: false })); // false
 * ```
 */
export function mayHaveApplied(err: unknown): boolean {
  return (err as { mayHaveApplied?: unknown } | null)?.mayHaveApplied === true;
}

/**
 * Options of an {@linkcode OverloadedError}.
 *
 * @example
 * ```ts
 * import type { OverloadedErrorOptions } from "@distkit/distkit/rsm";
 *
 * const options: OverloadedErrorOptions = { retryAfterMs: 200 };
 * ```
 */
export interface OverloadedErrorOptions extends ErrorOptions {
  /** How long to wait before resending, in milliseconds. Default 1,000. */
  retryAfterMs?: number;
}

/**
 * The server is at its limit of writes in progress (by count or bytes) and
 * refused this one at once, before proposing it: it was certainly not
 * applied. Resend it after a pause (`retryAfterMs`), here or at the leader.
 *
 * @example
 * ```ts
 * import { OverloadedError } from "@distkit/distkit/rsm";
 *
 * const err = new OverloadedError("kv", "64 writes are in progress, the limit");
 * err.mayHaveApplied; // false
 * ```
 */
export class OverloadedError extends ServiceError {
  /** Always false: the write was refused before it was proposed. */
  readonly mayHaveApplied: false = false;
  /** Why the server refused, in a few words. */
  readonly reason: string;
  /** How long to wait before resending, in milliseconds. */
  readonly retryAfterMs: number;

  /**
   * Creates the error.
   *
   * @param service The service that refused.
   * @param reason Which limit was reached.
   * @param options `retryAfterMs` (default 1,000), and `cause`.
   */
  constructor(service: string, reason: string, options: OverloadedErrorOptions = {}) {
    const { retryAfterMs = 1000, ...errorOptions } = options;
    super(
      service,
      `the server is overloaded (${reason}) and did not apply the request; resend it after a pause`,
      errorOptions,
    );
    this.name = "OverloadedError";
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
  }
}
