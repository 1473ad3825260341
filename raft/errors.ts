/**
 * Errors a Raft node reports to its callers.
 *
 * @module
 */
import type { NodeId } from "./types.ts";

/**
 * This node is not the leader (or is handing leadership over); retry on
 * `leader` when it is known.
 *
 * @example
 * ```ts
 * import { NotLeaderError } from "@distkit/distkit/raft";
 *
 * const err = new NotLeaderError("a", "c");
 * err.leader; // "c"
 * ```
 */
export class NotLeaderError extends Error {
  /** The leader this node knows of, or null when it knows none. */
  readonly leader: NodeId | null;

  /**
   * Creates the error.
   *
   * @param node The node that refused.
   * @param leader The leader it knows of, or null.
   * @param reason Why, when it is not simply "not the leader".
   */
  constructor(node: NodeId, leader: NodeId | null, reason = "is not the leader") {
    super(
      `${node} ${reason}; ` +
        (leader === null
          ? "no leader is known yet: retry shortly"
          : `retry on the leader, ${leader}`),
    );
    this.name = "NotLeaderError";
    this.leader = leader;
  }
}

/**
 * The node was stopped (or failed); it takes no more requests.
 *
 * @example
 * ```ts
 * import { RaftStoppedError } from "@distkit/distkit/raft";
 *
 * new RaftStoppedError("a").message; // "Raft node a is stopped; start a new RaftNode from its storage"
 * ```
 */
export class RaftStoppedError extends Error {
  /**
   * Creates the error.
   *
   * @param node The node.
   * @param options The failure that stopped it, as `cause`.
   */
  constructor(node: NodeId, options?: ErrorOptions) {
    super(`Raft node ${node} is stopped; start a new RaftNode from its storage`, options);
    this.name = "RaftStoppedError";
  }
}

/**
 * A request was refused or did not complete: an invalid membership change, a
 * change while another is pending, a leadership transfer that timed out, or
 * an entry that was overwritten by a new leader before it committed.
 *
 * @example
 * ```ts
 * import { RaftRequestError } from "@distkit/distkit/raft";
 *
 * new RaftRequestError("membership change refused: another change is pending").name; // "RaftRequestError"
 * ```
 */
export class RaftRequestError extends Error {
  /**
   * Creates the error.
   *
   * @param message What went wrong and what to do.
   */
  constructor(message: string) {
    super(message);
    this.name = "RaftRequestError";
  }
}

/**
 * A membership change the leader cannot take yet, and will take shortly:
 * another change is not committed yet (`membership-pending`), or the leader
 * was just elected and has not committed an entry of its own term
 * (`term-not-committed`; until it has, a change could be decided by a
 * quorum that misses an earlier leader's pending configuration). Nothing was
 * proposed: retry the same change on the same leader after a short wait.
 *
 * @example
 * ```ts
 * import { MembershipBusyError, RaftRequestError } from "@distkit/distkit/raft";
 *
 * const err = new MembershipBusyError("a", "term-not-committed");
 * err.retryable; // true
 * err instanceof RaftRequestError; // true
 * ```
 */
export class MembershipBusyError extends RaftRequestError {
  /** Always true: the same request succeeds once the leader is ready for it. */
  readonly retryable = true;
  /** Why the leader cannot take the change now. */
  readonly reason: "membership-pending" | "term-not-committed";
  /** The leader that refused. */
  readonly leader: NodeId;

  /**
   * Creates the error.
   *
   * @param leader The leader that refused.
   * @param reason Why.
   */
  constructor(leader: NodeId, reason: "membership-pending" | "term-not-committed") {
    super(
      reason === "membership-pending"
        ? `${leader} has a membership change in progress; nothing was proposed: ` +
          "retry once it has committed"
        : `${leader} was just elected and has not yet committed an entry of its term, so it ` +
          "may not change membership yet; nothing was proposed: retry shortly",
    );
    this.name = "MembershipBusyError";
    this.reason = reason;
    this.leader = leader;
  }
}
