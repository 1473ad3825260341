/**
 * Invariants, checked always, not only in tests: a broken invariant means the
 * node's state can no longer be trusted, so it stops rather than going on.
 *
 * @module
 */

/**
 * A Raft safety invariant was violated: a bug, or storage that lost or
 * altered acknowledged data. The node that throws it must not go on.
 *
 * @example
 * ```ts
 * import { RaftInvariantError } from "@distkit/distkit/raft";
 *
 * new RaftInvariantError("commit index went back from 7 to 5").message;
 * // "Raft invariant violated: commit index went back from 7 to 5 (this is a bug or corrupted storage; stop this node and report it)"
 * ```
 */
export class RaftInvariantError extends Error {
  /**
   * Creates the error.
   *
   * @param what The invariant that was broken.
   */
  constructor(what: string) {
    super(
      `Raft invariant violated: ${what} (this is a bug or corrupted storage; stop this node and report it)`,
    );
    this.name = "RaftInvariantError";
  }
}

/** Throws a {@linkcode RaftInvariantError} when `condition` is false. */
export function invariant(condition: boolean, what: string): asserts condition {
  if (!condition) throw new RaftInvariantError(what);
}
