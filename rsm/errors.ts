/**
 * The errors the KV clerk throws.
 *
 * @module
 */

/**
 * The request itself is wrong (a key or value over the limits, a value of the
 * wrong type, an append that would grow a value past the limit): it was not
 * applied, and retrying it will not help.
 *
 * @example
 * ```ts
 * import { KvRequestError } from "@distkit/distkit/rsm";
 *
 * const err = new KvRequestError("key is 3000 bytes; the limit is 1024");
 * err.message; // "KV request refused: key is 3000 bytes; the limit is 1024"
 * ```
 */
export class KvRequestError extends Error {
  /**
   * Creates the error.
   *
   * @param problem What is wrong with the request.
   */
  constructor(problem: string, options?: ErrorOptions) {
    super(`KV request refused: ${problem}`, options);
    this.name = "KvRequestError";
  }
}

/**
 * The caller's `AbortSignal` fired before the clerk knew the outcome. A read
 * simply did not happen. A write may or may not have taken effect, and may
 * still take effect later (it may be in the log) until the clerk's next
 * write completes: that write reuses the abandoned write's session, and once
 * it is applied the abandoned one never will be. Read back after that.
 *
 * @example
 * ```ts
 * import { KvAbortedError } from "@distkit/distkit/rsm";
 *
 * const err = new KvAbortedError("put", true);
 * err.mayHaveApplied; // true
 * ```
 */
export class KvAbortedError extends Error {
  /** Whether the operation was a write that a server may have applied. */
  readonly mayHaveApplied: boolean;

  /**
   * Creates the error.
   *
   * @param operation The operation abandoned (`get`, `put`, ...).
   * @param mayHaveApplied Whether it was a write that a server may have applied.
   */
  constructor(operation: string, mayHaveApplied: boolean, options?: ErrorOptions) {
    super(
      `KV ${operation} abandoned: the caller's signal fired` +
        (mayHaveApplied ? "; the write may or may not have taken effect, read to find out" : ""),
      options,
    );
    this.name = "KvAbortedError";
    this.mayHaveApplied = mayHaveApplied;
  }
}

/**
 * What a client last heard from one server, for the message of a
 * {@linkcode KvTimeoutError}.
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
 * The client's deadline passed before it knew the outcome (a
 * {@linkcode KvAbortedError}, so `mayHaveApplied` means the same): its
 * message says how long it waited and what each server last answered.
 * Clients have a default deadline (`deadlineMs`, 30 s); pass
 * `deadlineMs: Infinity` to wait for ever.
 *
 * @example
 * ```ts
 * import { KvTimeoutError } from "@distkit/distkit/rsm";
 *
 * const err = new KvTimeoutError("get", false, {
 *   deadlineMs: 30_000,
 *   tried: [{ server: "127.0.0.1:7001", error: "connection refused" }],
 * });
 * err.message; // "KV get: no answer within 30000 ms; tried 127.0.0.1:7001 (connection refused)"
 * ```
 */
export class KvTimeoutError extends KvAbortedError {
  /** The deadline that passed, in milliseconds. */
  readonly deadlineMs: number;
  /** Each server and its last failure. */
  readonly tried: readonly ServerAttempt[];

  /**
   * Creates the error.
   *
   * @param operation The operation abandoned (`get`, `put`, ...).
   * @param mayHaveApplied Whether it was a write that a server may have applied.
   */
  constructor(
    operation: string,
    mayHaveApplied: boolean,
    options: ErrorOptions & { deadlineMs: number; tried: readonly ServerAttempt[] },
  ) {
    super(operation, mayHaveApplied, options);
    this.name = "KvTimeoutError";
    this.deadlineMs = options.deadlineMs;
    this.tried = options.tried;
    const tried = options.tried.map((t) => `${t.server} (${t.error})`).join(", ");
    this.message = `KV ${operation}: no answer within ${options.deadlineMs} ms` +
      (tried === "" ? "" : `; tried ${tried}`) +
      (mayHaveApplied ? "; the write may or may not have taken effect, read to find out" : "");
  }
}

/**
 * Runs a request parser, turning its complaint into a
 * {@linkcode KvRequestError}: how clerks refuse a bad request before
 * sending it.
 *
 * @example
 * ```ts
 * import { checkString, refuseBadRequest } from "@distkit/distkit/rsm";
 *
 * refuseBadRequest(() => checkString("x", { field: "key", maxBytes: 1024 })); // "x"
 * ```
 */
export function refuseBadRequest<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new KvRequestError((err as Error).message);
  }
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
 * import { KvOutcomeUnknownError } from "@distkit/distkit/rsm";
 *
 * const err = new KvOutcomeUnknownError("append", "the server asked no longer leads");
 * err.mayHaveApplied; // true
 * ```
 */
export class KvOutcomeUnknownError extends Error {
  /** Always true: the write may have been applied (the property every ambiguous error has). */
  readonly mayHaveApplied: true = true;
  /** The operation (`put`, `append`...). */
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
   * @param operation The write whose outcome is unknown (`put`, `append`...).
   * @param reason Why no answer came, in a few words.
   * @param options `cause`, and `superseded` when the session has applied a later write.
   */
  constructor(
    operation: string,
    reason: string,
    options: ErrorOptions & { superseded?: boolean } = {},
  ) {
    super(
      `KV ${operation}: outcome unknown (${reason}); the write may or may not have taken ` +
        `effect: read to find out before writing again, or resend it in the same session ` +
        `(client id and number), which applies it at most once`,
      options,
    );
    this.name = "KvOutcomeUnknownError";
    this.operation = operation;
    this.reason = reason;
    this.superseded = options.superseded ?? false;
  }
}

/**
 * The server asked does not lead, and the caller asked not to be sent on to
 * the leader (the client option `followLeader: false`): the
 * request was not proposed there. `leader` is the server's hint (null: none
 * known).
 *
 * @example
 * ```ts
 * import { KvNotLeaderError } from "@distkit/distkit/rsm";
 *
 * new KvNotLeaderError("2").message; // "the server asked does not lead (the leader is 2)"
 * ```
 */
export class KvNotLeaderError extends Error {
  /** The leader the server named, or null when it knows none. */
  readonly leader: string | null;

  /**
   * Creates the error.
   *
   * @param leader The leader the server named, or null.
   */
  constructor(leader: string | null, options?: ErrorOptions) {
    super(
      `the server asked does not lead (${
        leader === null ? "no leader is known yet" : `the leader is ${leader}`
      })`,
      options,
    );
    this.name = "KvNotLeaderError";
    this.leader = leader;
  }
}

/**
 * Whether an error a clerk threw for a write leaves the write's outcome open:
 * true for an error with `mayHaveApplied` true, false for one with it false
 * or a refusal of the request itself ({@linkcode KvRequestError}, a refused
 * connection...), which certainly did not apply.
 *
 * @example
 * ```ts
 * import { KvAbortedError, mayHaveApplied } from "@distkit/distkit/rsm";
 *
 * mayHaveApplied(new KvAbortedError("put", true)); // true
 * mayHaveApplied(new KvAbortedError("put", false)); // false
 * ```
 */
export function mayHaveApplied(err: unknown): boolean {
  return (err as { mayHaveApplied?: unknown } | null)?.mayHaveApplied === true;
}

/**
 * The server is at its limit of writes in progress (by count or bytes) and
 * refused this one at once, before proposing it: it was certainly not
 * applied. Resend it after a pause (`retryAfterMs`), here or at the leader.
 *
 * @example
 * ```ts
 * import { KvOverloadedError } from "@distkit/distkit/rsm";
 *
 * const err = new KvOverloadedError("64 writes are in progress, the limit");
 * err.mayHaveApplied; // false
 * ```
 */
export class KvOverloadedError extends Error {
  /** Always false: the write was refused before it was proposed. */
  readonly mayHaveApplied: false = false;
  /** Why the server refused, in a few words. */
  readonly reason: string;
  /** How long to wait before resending, in milliseconds. */
  readonly retryAfterMs: number;

  /**
   * Creates the error.
   *
   * @param reason Which limit was reached.
   * @param options `cause`, and `retryAfterMs` (default 1,000).
   */
  constructor(reason: string, options: ErrorOptions & { retryAfterMs?: number } = {}) {
    super(
      `the server is overloaded (${reason}) and did not apply the request; resend it after a pause`,
      options,
    );
    this.name = "KvOverloadedError";
    this.reason = reason;
    this.retryAfterMs = options.retryAfterMs ?? 1000;
  }
}
