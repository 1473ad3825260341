/**
 * The errors the lock clerk throws.
 *
 * @module
 */
import type { LockOpKind } from "./lock_protocol.ts";

/**
 * The request itself is wrong (a name that is empty or too long), or a
 * server refused it for good (two clerks share an id): it was not applied,
 * and retrying it will not help.
 *
 * @example
 * ```ts
 * import { LockRequestError } from "@distkit/distkit/pb";
 *
 * const err = new LockRequestError("name must not be empty");
 * err.message; // "lock request refused: name must not be empty"
 * ```
 */
export class LockRequestError extends Error {
  /**
   * Creates the error.
   *
   * @param problem What is wrong with the request.
   * @param options Standard error options (`cause`).
   */
  constructor(problem: string, options?: ErrorOptions) {
    super(`lock request refused: ${problem}`, options);
    this.name = "LockRequestError";
  }
}

/**
 * The caller's `AbortSignal` fired before the clerk knew the outcome. The
 * operation may or may not have taken effect (`mayHaveApplied` says whether
 * it was sent at all), and may still take effect until the clerk's next
 * operation completes: ask again to find out, for example by unlocking a
 * lock whose `lock` was abandoned.
 *
 * @example
 * ```ts
 * import { LockAbortedError } from "@distkit/distkit/pb";
 *
 * const err = new LockAbortedError({ op: "lock", name: "printer" }, true);
 * err.mayHaveApplied; // true
 * ```
 */
export class LockAbortedError extends Error {
  /** Whether the request was sent, so a server may have applied it. */
  readonly mayHaveApplied: boolean;

  /**
   * Creates the error.
   *
   * @param request The operation abandoned and its lock.
   * @param mayHaveApplied Whether the request was sent.
   * @param options Standard error options (`cause`).
   */
  constructor(
    request: { op: LockOpKind; name: string },
    mayHaveApplied: boolean,
    options?: ErrorOptions,
  ) {
    super(
      `${request.op} of ${JSON.stringify(request.name)} abandoned: the caller's signal fired` +
        (mayHaveApplied ? "; it may or may not have taken effect" : " before it was sent"),
      options,
    );
    this.name = "LockAbortedError";
    this.mayHaveApplied = mayHaveApplied;
  }
}

/**
 * A lock or unlock ended without an answer after an attempt that a server
 * may have applied: both servers then refused the connection, a server
 * failed, answered something this clerk cannot read, or refused a retry
 * because the session's numbering moved past it. It may or may not have
 * taken effect (`mayHaveApplied` is always true), and may still until the
 * clerk's next operation completes: ask again to find out, for example by
 * unlocking a lock whose `lock` this was.
 *
 * @example
 * ```ts
 * import { LockOutcomeUnknownError } from "@distkit/distkit/pb";
 *
 * const err = new LockOutcomeUnknownError({ op: "lock", name: "printer" }, "both servers refused");
 * err.mayHaveApplied; // true
 * ```
 */
export class LockOutcomeUnknownError extends Error {
  /** Always true: the operation may have been applied. */
  readonly mayHaveApplied: true = true;

  /**
   * Creates the error.
   *
   * @param request The operation and its lock.
   * @param reason Why no answer came, in a few words.
   * @param options Standard error options (`cause`).
   */
  constructor(
    request: { op: LockOpKind; name: string },
    reason: string,
    options?: ErrorOptions,
  ) {
    super(
      `${request.op} of ${JSON.stringify(request.name)}: outcome unknown (${reason}); it may or ` +
        `may not have taken effect: ask again to find out`,
      options,
    );
    this.name = "LockOutcomeUnknownError";
  }
}
