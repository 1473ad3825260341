/**
 * Errors of an exactly-once write that the replicated state machine itself
 * answered: its `apply` threw, or two clients wrote under one session.
 * Both are final answers, the same on every replica: retrying the same
 * command gets the same answer.
 *
 * @module
 */

/**
 * The machine's `apply` threw on this command: the replicas answered it with
 * this error instead of a result, every one alike, and went on serving. The
 * entry is in the log, so it counts as applied (a retry gets this answer
 * again); what it changed is whatever `apply` did before it threw, which is
 * why `apply` should check a command before it changes anything (or refuse
 * it before proposing, with a `validate` hook).
 *
 * @example
 * ```ts
 * import { ApplyError } from "@distkit/distkit/rsm";
 *
 * const err = new ApplyError("take", "poison pill");
 * err.message; // "take was applied as an error: poison pill (the service's apply refused it; fix the command, retrying gets the same answer)"
 * err.reason; // "poison pill"
 * ```
 */
export class ApplyError extends Error {
  /** What the machine's `apply` said (the message of what it threw). */
  readonly reason: string;

  /**
   * Creates the error.
   *
   * @param operation The operation that was applied.
   * @param reason The message of what `apply` threw.
   */
  constructor(operation: string, reason: string, options?: ErrorOptions) {
    super(
      `${operation} was applied as an error: ${reason} (the service's apply refused it; ` +
        `fix the command, retrying gets the same answer)`,
      options,
    );
    this.name = "ApplyError";
    this.reason = reason;
  }
}

/**
 * The replicas recorded another write under this write's session and number
 * (or a later one): two clients share a client id. The write was not
 * applied; give every client its own `id`.
 *
 * @example
 * ```ts
 * import { SessionConflictError } from "@distkit/distkit/rsm";
 *
 * new SessionConflictError("take", "c1", 4).session; // "c1"
 * ```
 */
export class SessionConflictError extends Error {
  /** The session's id. */
  readonly session: string;
  /** The write's number in it. */
  readonly seq: number;

  /**
   * Creates the error.
   *
   * @param operation The operation refused.
   * @param session The session's id.
   * @param seq The write's number in the session.
   */
  constructor(operation: string, session: string, seq: number) {
    super(
      `${operation} was not applied: session "${session}" already applied another write ` +
        `numbered ${seq} or later, so two clients share the id; give each client its own id`,
    );
    this.name = "SessionConflictError";
    this.session = session;
    this.seq = seq;
  }
}
