/**
 * The error the primary/backup key/value clerk throws when an operation's
 * deadline passes. (A malformed request throws `KvRequestError` and an
 * aborted one `KvAbortedError`, as with the Raft key/value clerk.)
 *
 * @module
 */

/**
 * Options of {@linkcode PbDeadlineError}.
 *
 * @example
 * ```ts
 * import type { PbDeadlineErrorOptions } from "@distkit/distkit/pb";
 *
 * const options: PbDeadlineErrorOptions = { timeoutMs: 5000, mayHaveApplied: false };
 * ```
 */
export interface PbDeadlineErrorOptions extends ErrorOptions {
  /** The deadline that passed. */
  timeoutMs: number;
  /** Whether the operation was a write that a primary may have applied. */
  mayHaveApplied: boolean;
  /** Why the last attempt failed, in a few words. */
  lastProblem?: string;
}

/**
 * An operation of the primary/backup key/value service ran out of time
 * before any primary answered. A read simply did not happen; a write may or
 * may not have taken effect (`mayHaveApplied`), and may still take effect
 * until the clerk's next write completes: read back after that.
 *
 * @example
 * ```ts
 * import { PbDeadlineError } from "@distkit/distkit/pb";
 *
 * const err = new PbDeadlineError("get", { timeoutMs: 2000, mayHaveApplied: false });
 * err.message.startsWith("pb get gave up after 2000 ms"); // true
 * ```
 */
export class PbDeadlineError extends Error {
  /** The operation (`get`, `put`, `append`). */
  readonly operation: string;
  /** The deadline that passed. */
  readonly timeoutMs: number;
  /** Whether the operation was a write that a primary may have applied. */
  readonly mayHaveApplied: boolean;

  /**
   * Creates the error.
   *
   * @param operation The operation abandoned.
   * @param options The deadline, whether a write may have applied, the last problem, and `cause`.
   */
  constructor(operation: string, options: PbDeadlineErrorOptions) {
    const { timeoutMs, mayHaveApplied, lastProblem, ...errorOptions } = options;
    super(
      `pb ${operation} gave up after ${timeoutMs} ms without an answer from a primary` +
        (lastProblem === undefined ? "" : ` (last: ${lastProblem})`) +
        (mayHaveApplied
          ? "; the write may or may not have taken effect, read to find out"
          : "; check that the view service and the servers are up and reachable"),
      errorOptions,
    );
    this.name = "PbDeadlineError";
    this.operation = operation;
    this.timeoutMs = timeoutMs;
    this.mayHaveApplied = mayHaveApplied;
  }
}
