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
