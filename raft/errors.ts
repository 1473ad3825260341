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
 * Why the core refused a proposal or request: `not-leader`; `transferring`
 * (the leader is handing leadership over); `membership-pending` (another
 * membership change is not committed yet) and `term-not-committed` (this
 * leader has not yet committed an entry of its own term, so it may not
 * change membership), `folder-unheard` (a voter is bound to the data folder
 * the leader hears it from, and it has not heard from this one yet), all of
 * which pass: retry shortly on the same leader;
 * `invalid` (the request makes no sense: see the detail).
 *
 * @example
 * ```ts
 * import type { RefusalReason } from "@distkit/distkit/raft";
 *
 * const reason: RefusalReason = "membership-pending";
 * ```
 */
export type RefusalReason =
  | "not-leader"
  | "transferring"
  | "membership-pending"
  | "term-not-committed"
  | "folder-unheard"
  | "invalid";

/**
 * Why a proposal or request was refused.
 *
 * @example
 * ```ts
 * import type { Refusal } from "@distkit/distkit/raft";
 *
 * const r: Refusal = { reason: "not-leader", leader: "b" };
 * ```
 */
export interface Refusal {
  /** The kind of refusal. */
  reason: RefusalReason;
  /** The leader this node knows of, if any. */
  leader: NodeId | null;
  /** Details for `invalid`. */
  detail?: string;
}

/**
 * Why a {@linkcode RaftRequestError} was raised:
 * - `membership-pending`, `term-not-committed`: a membership change the
 *   leader cannot take yet (a {@linkcode MembershipBusyError}); nothing was
 *   proposed, retry shortly;
 * - `invalid`: the request was refused as it stands (adding a voter as a
 *   learner, removing the last voter, transferring to a non-voter); nothing
 *   was proposed;
 * - `overwritten`: the entry was replaced by a new leader's before it
 *   committed; propose it again;
 * - `compacted`: the entry went into a snapshot before this node saw it;
 *   its outcome is unknown here;
 * - `transfer-timeout`: a leadership transfer did not complete in time;
 * - `catch-up-timeout`: a learner did not catch up in time to become a voter.
 *
 * @example
 * ```ts
 * import type { RaftRequestReason } from "@distkit/distkit/raft";
 *
 * const reason: RaftRequestReason = "overwritten";
 * ```
 */
export type RaftRequestReason =
  | "membership-pending"
  | "term-not-committed"
  | "folder-unheard"
  | "invalid"
  | "overwritten"
  | "compacted"
  | "transfer-timeout"
  | "catch-up-timeout";

/**
 * Why a leader cannot take a membership change now (see
 * {@linkcode MembershipBusyError}): each passes, so the same change may be
 * sent again shortly.
 *
 * @example
 * ```ts
 * import type { MembershipBusyReason } from "@distkit/distkit/raft";
 *
 * const reason: MembershipBusyReason = "folder-unheard";
 * ```
 */
export type MembershipBusyReason = "membership-pending" | "term-not-committed" | "folder-unheard";

const BUSY_MESSAGES: Record<MembershipBusyReason, (leader: NodeId) => string> = {
  "membership-pending": (leader) =>
    `${leader} has a membership change in progress; nothing was proposed: retry once it has ` +
    "committed",
  "term-not-committed": (leader) =>
    `${leader} was just elected and has not yet committed an entry of its term, so it may not ` +
    "change membership yet; nothing was proposed: retry shortly",
  "folder-unheard": (leader) =>
    `${leader} has not heard from the new voter's data folder yet (a voter is bound to the ` +
    "folder its leader hears: Membership.bindings); nothing was proposed: retry once it " +
    "has caught up",
};

/**
 * A request was refused or did not complete; `reason` says which way (see
 * {@linkcode RaftRequestReason}), the message says what to do.
 *
 * @example
 * ```ts
 * import { RaftRequestError } from "@distkit/distkit/raft";
 *
 * const err = new RaftRequestError("overwritten", "entry 7 was overwritten by a new leader; propose it again");
 * err.reason; // "overwritten"
 * ```
 */
export class RaftRequestError extends Error {
  /** Which refusal or failure this is. */
  readonly reason: RaftRequestReason;

  /**
   * Creates the error.
   *
   * @param reason Which refusal or failure.
   * @param message What went wrong and what to do.
   */
  constructor(reason: RaftRequestReason, message: string) {
    super(message);
    this.name = "RaftRequestError";
    this.reason = reason;
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
  declare readonly reason: MembershipBusyReason;
  /** The leader that refused. */
  readonly leader: NodeId;

  /**
   * Creates the error.
   *
   * @param leader The leader that refused.
   * @param reason Why.
   */
  constructor(leader: NodeId, reason: MembershipBusyReason) {
    super(reason, BUSY_MESSAGES[reason](leader));
    this.name = "MembershipBusyError";
    this.leader = leader;
  }
}
