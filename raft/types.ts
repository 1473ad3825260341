/**
 * The data Raft works with: log entries, hard state, snapshots, membership
 * and the messages peers exchange.
 *
 * @module
 */

/**
 * A node's name: unique in the cluster, stable across restarts.
 *
 * @example
 * ```ts
 * import type { NodeId } from "@distkit/distkit/raft";
 *
 * const id: NodeId = "raft-0";
 * ```
 */
export type NodeId = string;

/**
 * Who is in the cluster: voters decide elections and commits; learners
 * receive the log but do not vote.
 *
 * @example
 * ```ts
 * import type { Membership } from "@distkit/distkit/raft";
 *
 * const membership: Membership = { voters: ["a", "b", "c"], learners: ["d"] };
 * ```
 */
export interface Membership {
  /** The voting members. */
  voters: NodeId[];
  /** The non-voting members. */
  learners: NodeId[];
  /**
   * The data folder incarnation each bound voter is (see `CoreOptions.incarnation`):
   * a node counts a bound voter's votes and acknowledgements only from that
   * incarnation, so a voter whose folder was lost or replaced is not counted
   * in its old folder's place. A voter not named is unbound (a founding
   * member before its leader bound it, or a cluster without incarnations).
   * A voter is bound when it is promoted, and founding voters once a leader
   * has heard from them; a removal drops the binding.
   */
  bindings?: Record<NodeId, string>;
}

/**
 * What a log entry carries: a command of the service, a no-op the leader
 * appends when elected (so it can commit in its own term), or a new
 * membership.
 *
 * @example
 * ```ts
 * import type { EntryKind } from "@distkit/distkit/raft";
 *
 * const kind: EntryKind = "command";
 * ```
 */
export type EntryKind = "command" | "noop" | "membership";

/**
 * One log entry: a union on `kind`, so a `membership` entry always has its
 * membership and a `command` entry its command.
 *
 * @example
 * ```ts
 * import type { Entry } from "@distkit/distkit/raft";
 *
 * function describe(e: Entry): string {
 *   switch (e.kind) {
 *     case "command":
 *       return `command at ${e.index}`;
 *     case "noop":
 *       return `no-op at ${e.index}`;
 *     case "membership":
 *       return `voters ${e.membership.voters.join(",")} from ${e.index}`;
 *   }
 * }
 * ```
 */
export type Entry =
  | {
    /** Position in the log, from 1. */
    index: number;
    /** The leader's term when the entry was created. */
    term: number;
    /** A command of the service. */
    kind: "command";
    /** The service's command; any value the codec can encode. */
    command: unknown;
  }
  | {
    /** Position in the log, from 1. */
    index: number;
    /** The leader's term when the entry was created. */
    term: number;
    /** The no-op a leader appends when elected, so it can commit in its own term. */
    kind: "noop";
  }
  | {
    /** Position in the log, from 1. */
    index: number;
    /** The leader's term when the entry was created. */
    term: number;
    /** A new membership, in force as soon as it is appended. */
    kind: "membership";
    /** The new membership. */
    membership: Membership;
  };

/**
 * What must be on stable storage before a node answers anyone: its term, the
 * vote it cast in that term, and the commit index it knows.
 *
 * @example
 * ```ts
 * import type { HardState } from "@distkit/distkit/raft";
 *
 * const hs: HardState = { term: 3, vote: "b", commit: 17 };
 * ```
 */
export interface HardState {
  /** The latest term this node has seen. */
  term: number;
  /** The candidate voted for in `term`, or null. */
  vote: NodeId | null;
  /** The highest index known to be committed. */
  commit: number;
}

/**
 * Describes a snapshot: the last entry it covers and the membership then.
 *
 * @example
 * ```ts
 * import type { SnapshotMeta } from "@distkit/distkit/raft";
 *
 * const meta: SnapshotMeta = { index: 100, term: 4, membership: { voters: ["a"], learners: [] } };
 * ```
 */
export interface SnapshotMeta {
  /** The index of the last entry the snapshot replaces. */
  index: number;
  /** The term of that entry. */
  term: number;
  /** The membership as of that entry. */
  membership: Membership;
  /**
   * The index of the membership entry that set `membership` (what a
   * service that reacts to removals needs: the snapshot may come long after
   * it). Absent in snapshots made before it was recorded.
   */
  membershipIndex?: number;
}

/**
 * A snapshot of the service's state, replacing the log up to `meta.index`.
 *
 * @example
 * ```ts
 * import type { Snapshot } from "@distkit/distkit/raft";
 *
 * const snap: Snapshot = {
 *   meta: { index: 10, term: 2, membership: { voters: ["a"], learners: [] } },
 *   data: new Uint8Array([1, 2, 3]),
 * };
 * ```
 */
export interface Snapshot {
  /** What the snapshot covers. */
  meta: SnapshotMeta;
  /** The service's state, opaque to Raft. */
  data: Uint8Array;
}

/**
 * The fields every Raft message carries.
 *
 * @example
 * ```ts
 * import type { MessageBase } from "@distkit/distkit/raft";
 *
 * const base: MessageBase = { from: "a", to: "b", term: 3 };
 * ```
 */
export interface MessageBase {
  /** The sender. */
  from: NodeId;
  /** The receiver. */
  to: NodeId;
  /** The sender's term (for a PreVote: the term it would campaign in). */
  term: number;
  /** The incarnation of the sender's data folder, when it has one (`CoreOptions.incarnation`). */
  inc?: string;
  /** The sender's folder joined the cluster rather than founding it (`CoreOptions.joined`). */
  joined?: true;
}

/**
 * A request for a vote. With `pre` it is a PreVote: it asks whether the voter
 * would vote, without anyone changing term. `transfer` marks an election
 * started by a leadership transfer, which voters honour even while they still
 * hear from a leader.
 *
 * @example
 * ```ts
 * import type { VoteMessage } from "@distkit/distkit/raft";
 *
 * const m: VoteMessage = { type: "vote", from: "a", to: "b", term: 4, pre: true, transfer: false, lastIndex: 10, lastTerm: 3 };
 * ```
 */
export interface VoteMessage extends MessageBase {
  /** The message kind. */
  type: "vote";
  /** A PreVote: no term changes hands. */
  pre: boolean;
  /** Started by a leadership transfer: voters grant it even in a leader lease. */
  transfer: boolean;
  /** The candidate's last log index. */
  lastIndex: number;
  /** The term of the candidate's last entry. */
  lastTerm: number;
}

/**
 * The answer to a {@linkcode VoteMessage}.
 *
 * @example
 * ```ts
 * import type { VoteResponse } from "@distkit/distkit/raft";
 *
 * const m: VoteResponse = { type: "voteResp", from: "b", to: "a", term: 4, pre: true, granted: true };
 * ```
 */
export interface VoteResponse extends MessageBase {
  /** The message kind. */
  type: "voteResp";
  /** Whether it answers a PreVote. */
  pre: boolean;
  /** Whether the vote is granted. */
  granted: boolean;
}

/**
 * Entries to append after `prevIndex`, and the leader's commit index.
 *
 * @example
 * ```ts
 * import type { AppendMessage } from "@distkit/distkit/raft";
 *
 * const m: AppendMessage = { type: "append", from: "a", to: "b", term: 4, prevIndex: 9, prevTerm: 3, entries: [], commit: 9, seq: 1 };
 * ```
 */
export interface AppendMessage extends MessageBase {
  /** The message kind. */
  type: "append";
  /** The index of the entry just before `entries`. */
  prevIndex: number;
  /** The term of that entry. */
  prevTerm: number;
  /** Entries to append (empty for a probe). */
  entries: Entry[];
  /** The leader's commit index. */
  commit: number;
  /** The leader's sequence number for this follower, echoed in the answer. */
  seq: number;
}

/**
 * The answer to an {@linkcode AppendMessage}. On success `index` is the last
 * index now known to match the leader; on rejection it is the rejected
 * `prevIndex`, and `conflictTerm`/`conflictIndex` tell the leader where to
 * back up to (the term of the follower's entry at `prevIndex`, 0 when it has
 * none, and the first index of that term, or its last index + 1).
 *
 * @example
 * ```ts
 * import type { AppendResponse } from "@distkit/distkit/raft";
 *
 * const m: AppendResponse = { type: "appendResp", from: "b", to: "a", term: 4, success: true, index: 9, conflictTerm: 0, conflictIndex: 0, seq: 1 };
 * ```
 */
export interface AppendResponse extends MessageBase {
  /** The message kind. */
  type: "appendResp";
  /** Whether the entries were appended. */
  success: boolean;
  /** On success the last matching index; on rejection the rejected `prevIndex`. */
  index: number;
  /** The term of the follower's entry at the rejected index (0: none). */
  conflictTerm: number;
  /** The first index of that term, or the follower's last index + 1. */
  conflictIndex: number;
  /** The `seq` of the append answered (0 for a term-bump answer). */
  seq: number;
}

/**
 * Keeps followers from starting elections and carries a safe commit index.
 *
 * @example
 * ```ts
 * import type { HeartbeatMessage } from "@distkit/distkit/raft";
 *
 * const m: HeartbeatMessage = { type: "heartbeat", from: "a", to: "b", term: 4, commit: 9, context: 0 };
 * ```
 */
export interface HeartbeatMessage extends MessageBase {
  /** The message kind. */
  type: "heartbeat";
  /** The commit index, capped at the follower's match. */
  commit: number;
  /** ReadIndex round being confirmed (0: none). */
  context: number;
}

/**
 * The answer to a {@linkcode HeartbeatMessage}.
 *
 * @example
 * ```ts
 * import type { HeartbeatResponse } from "@distkit/distkit/raft";
 *
 * const m: HeartbeatResponse = { type: "heartbeatResp", from: "b", to: "a", term: 4, context: 0 };
 * ```
 */
export interface HeartbeatResponse extends MessageBase {
  /** The message kind. */
  type: "heartbeatResp";
  /** The `context` of the heartbeat answered. */
  context: number;
  /**
   * The follower's last log index, sent only when it is below the
   * heartbeat's commit: the follower lacks entries the leader counts as
   * matched (it lost its log), so the leader must probe it again.
   */
  lastIndex?: number;
}

/**
 * One chunk of a snapshot being installed on a follower.
 *
 * @example
 * ```ts
 * import type { SnapshotMessage } from "@distkit/distkit/raft";
 *
 * const m: SnapshotMessage = {
 *   type: "snapshot", from: "a", to: "b", term: 4, offset: 0, size: 3, chunk: new Uint8Array([1, 2, 3]),
 *   meta: { index: 9, term: 3, membership: { voters: ["a", "b", "c"], learners: [] } },
 * };
 * ```
 */
export interface SnapshotMessage extends MessageBase {
  /** The message kind. */
  type: "snapshot";
  /** What the snapshot covers. */
  meta: SnapshotMeta;
  /** Byte offset of this chunk in the snapshot's data. */
  offset: number;
  /** Total size of the snapshot's data in bytes (`UNKNOWN_SIZE` before the last chunk of a streamed one). */
  size: number;
  /** The bytes of this chunk. */
  chunk: Uint8Array;
  /**
   * Which of its leader's streams (in its term) the chunk belongs to, for a
   * stored state streamed with chunks sent again (`snapshot_resend.ts`): a
   * chunk at offset 0 of the stream being received is one sent again, not a
   * new stream, and a chunk of an older stream is not taken. Absent: every
   * chunk at offset 0 begins the snapshot again.
   */
  stream?: number;
}

/**
 * The answer to a {@linkcode SnapshotMessage}: `done` when the follower has
 * the whole snapshot (or already had its entries), else the offset it wants
 * next.
 *
 * @example
 * ```ts
 * import type { SnapshotResponse } from "@distkit/distkit/raft";
 *
 * const m: SnapshotResponse = { type: "snapshotResp", from: "b", to: "a", term: 4, index: 9, offset: 3, done: true };
 * ```
 */
export interface SnapshotResponse extends MessageBase {
  /** The message kind. */
  type: "snapshotResp";
  /** The snapshot index answered (or the follower commit index when it had it). */
  index: number;
  /** The offset the follower wants next. */
  offset: number;
  /** Whether the follower now has the whole snapshot. */
  done: boolean;
}

/**
 * Tells the transferee of a leadership transfer to start an election now.
 *
 * @example
 * ```ts
 * import type { TimeoutNowMessage } from "@distkit/distkit/raft";
 *
 * const m: TimeoutNowMessage = { type: "timeoutNow", from: "a", to: "b", term: 4 };
 * ```
 */
export interface TimeoutNowMessage extends MessageBase {
  /** The message kind. */
  type: "timeoutNow";
}

/**
 * Any message between Raft peers.
 *
 * @example
 * ```ts
 * import type { Message } from "@distkit/distkit/raft";
 *
 * function describe(m: Message): string {
 *   return `${m.type} ${m.from}->${m.to} in term ${m.term}`;
 * }
 * ```
 */
export type Message =
  | VoteMessage
  | VoteResponse
  | AppendMessage
  | AppendResponse
  | HeartbeatMessage
  | HeartbeatResponse
  | SnapshotMessage
  | SnapshotResponse
  | TimeoutNowMessage;

/**
 * A node's role.
 *
 * @example
 * ```ts
 * import type { Role } from "@distkit/distkit/raft";
 *
 * const role: Role = "leader";
 * ```
 */
export type Role = "follower" | "precandidate" | "candidate" | "leader";
