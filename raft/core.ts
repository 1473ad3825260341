/**
 * The Raft algorithm as a pure state machine, in the style of etcd's raft:
 * messages, ticks and proposals go in; what to persist, what to send and
 * what is committed come out of {@linkcode RaftCore.ready}. No I/O, timers or
 * hidden randomness: the same inputs give the same outputs.
 *
 * @module
 */
import { concatBytes } from "../net/bytes.ts";
import type { Random } from "../net/random.ts";
import { invariant, type RaftObserver } from "./invariant.ts";
import { RaftLog } from "./log.ts";
import type {
  AppendMessage,
  AppendResponse,
  Entry,
  HardState,
  HeartbeatResponse,
  Membership,
  Message,
  NodeId,
  Role,
  Snapshot,
  SnapshotMessage,
  SnapshotResponse,
  VoteMessage,
} from "./types.ts";

/**
 * Tuning of the Raft core. Times are in ticks; the driver decides how long a
 * tick is.
 *
 * @example
 * ```ts
 * import type { CoreOptions } from "@distkit/distkit/raft";
 *
 * const options: CoreOptions = { electionTicks: 10, heartbeatTicks: 2, preVote: true, checkQuorum: true };
 * ```
 */
export interface CoreOptions {
  /** A follower waits a random [electionTicks, 2·electionTicks) ticks without a leader before campaigning. Default 10. */
  electionTicks?: number;
  /** The leader sends heartbeats every this many ticks. Default 1. */
  heartbeatTicks?: number;
  /** Ask for PreVotes before a real election, so a rejoining node cannot disrupt a leader. Default true. */
  preVote?: boolean;
  /** A leader that has not heard from a quorum for an election timeout steps down. Default true. */
  checkQuorum?: boolean;
  /** Append messages in flight per follower while replicating. Default 16. */
  maxInflight?: number;
  /**
   * Bytes of entries (estimated) in flight per follower while replicating;
   * one append is always allowed. Bounds what a follower receives and must
   * write in one turn. Default 4 MiB.
   */
  maxInflightBytes?: number;
  /** Largest total command size (bytes, estimated) in one append message. Default 1 MiB. */
  maxAppendBytes?: number;
  /**
   * Most entries in one append message. A follower decodes and writes an
   * append in one turn of its event loop: 1 MiB of small entries (≈10,000)
   * held a catching-up follower deaf for 100–300 ms. Default 512.
   */
  maxAppendEntries?: number;
  /** Snapshot chunk size in bytes. Default 512 KiB. */
  snapshotChunkBytes?: number;
  /** Append a no-op entry on election, so the new leader can commit and serve reads. Default true. */
  leaderNoop?: boolean;
  /**
   * Told of leaders, applies and log truncations, for checks across a whole
   * simulated run (`AppliedLedger`). Default: none.
   */
  observer?: RaftObserver;
}

/**
 * A linearizable read confirmed by a quorum: once the service has applied
 * `index`, it may answer the read tagged `context`.
 *
 * @example
 * ```ts
 * import type { ReadState } from "@distkit/distkit/raft";
 *
 * const rs: ReadState = { context: 7, index: 120 };
 * ```
 */
export interface ReadState {
  /** The caller's tag from {@linkcode RaftCore.readIndex}. */
  context: number;
  /** The commit index at the time of the read. */
  index: number;
}

/**
 * What the driver must do next, in this order: persist `hardState`,
 * `entries` (replacing any stored entries from `entries[0].index` on) and
 * `snapshot`, then report it with {@linkcode RaftCore.persisted}; send
 * `messages`; then apply `committed` (and `installSnapshot` first when set)
 * to the service; then release `reads`. Messages must wait for the write,
 * except a leader's when the ready changes neither term nor vote: a leader
 * may replicate while it writes its own log (Raft thesis §10.2.1), because
 * it counts its own entries toward a commit only once they are persisted.
 *
 * @example
 * ```ts
 * import type { Ready } from "@distkit/distkit/raft";
 *
 * function summary(rd: Ready): string {
 *   return `${rd.entries.length} to persist, ${rd.messages.length} to send, ${rd.committed.length} to apply`;
 * }
 * ```
 */
export interface Ready {
  /** The new hard state, when it changed. */
  hardState?: HardState;
  /** Entries to append to stable storage. */
  entries: Entry[];
  /** A snapshot to persist (the log up to its index is dropped). */
  snapshot?: Snapshot;
  /** Whether `snapshot` came from the leader and must be applied to the service. */
  installSnapshot: boolean;
  /**
   * Whether every stored entry must be dropped before `entries` are written:
   * an installed snapshot did not match the log, which it replaced whole.
   */
  resetLog: boolean;
  /** Messages to send once the above is persisted. */
  messages: Message[];
  /** Committed entries to apply, in order. */
  committed: Entry[];
  /** Confirmed linearizable reads. */
  reads: ReadState[];
  /**
   * The log's last index and its term when this ready was taken: once the
   * ready is written, call {@linkcode RaftCore.persisted} with them.
   */
  lastIndex: number;
  /** The term of the entry at `lastIndex`. */
  lastTerm: number;
}

/**
 * What a node restarts from: its stored hard state, snapshot and entries.
 *
 * @example
 * ```ts
 * import type { InitialState } from "@distkit/distkit/raft";
 *
 * const fresh: InitialState = {
 *   hardState: { term: 0, vote: null, commit: 0 },
 *   entries: [],
 * };
 * ```
 */
export interface InitialState {
  /** The stored hard state. */
  hardState: HardState;
  /** The stored snapshot, if any. */
  snapshot?: Snapshot;
  /** The stored entries after the snapshot. */
  entries: Entry[];
}

/**
 * A change of membership, one server at a time (Raft dissertation §4.1).
 *
 * @example
 * ```ts
 * import type { MembershipChange } from "@distkit/distkit/raft";
 *
 * const change: MembershipChange = { type: "addLearner", node: "d" };
 * ```
 */
export type MembershipChange =
  | { type: "addLearner"; node: NodeId }
  | { type: "addVoter"; node: NodeId }
  | { type: "remove"; node: NodeId };

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
  /**
   * The kind of refusal. `membership-pending` (another membership change is
   * not committed yet) and `term-not-committed` (this leader has not yet
   * committed an entry of its own term, so it may not change membership)
   * pass: retry shortly on the same leader.
   */
  reason: "not-leader" | "transferring" | "membership-pending" | "term-not-committed" | "invalid";
  /** The leader this node knows of, if any. */
  leader: NodeId | null;
  /** Details for `invalid`. */
  detail?: string;
}

interface Progress {
  match: number;
  next: number;
  state: "probe" | "replicate" | "snapshot";
  /** Last indexes of append messages in flight (replicate state). */
  inflight: number[];
  /** The estimated bytes of the append in flight ending at each index (stale keys are ignored). */
  inflightSizes: Map<number, number>;
  /** An append was sent in probe state and is unanswered. */
  probeSent: boolean;

  /** Sequence number of the latest append to this peer; a probe's answer must echo it. */
  seq: number;
  /** Heard from since the last quorum check. */
  active: boolean;
  /** Snapshot being sent: its index, the next offset, and whether a chunk is in flight. */
  snapshotIndex: number;
  snapshotOffset: number;
  snapshotInflight: boolean;
  /** Heartbeat answers since the chunk in flight was sent. */
  snapshotWaits: number;
}

interface PendingRead {
  context: number;
  index: number;
  round: number;
  acks: Set<NodeId>;
}

const EMPTY_MEMBERSHIP: Membership = { voters: [], learners: [] };

/**
 * The Raft state machine of one node.
 *
 * Drive it with {@linkcode RaftCore.tick}, {@linkcode RaftCore.step},
 * {@linkcode RaftCore.propose} and friends, then take
 * {@linkcode RaftCore.ready} and carry it out. `RaftNode` does that for you;
 * use the core directly to embed Raft in your own I/O loop or to test it.
 *
 * @example A single-voter cluster elects itself and commits
 * ```ts
 * import { RaftCore } from "@distkit/distkit/raft";
 * import { Random } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const core = new RaftCore("a", {
 *   hardState: { term: 0, vote: null, commit: 0 },
 *   snapshot: { meta: { index: 0, term: 0, membership: { voters: ["a"], learners: [] } }, data: new Uint8Array() },
 *   entries: [],
 * }, { random: new Random(1) });
 * while (core.role !== "leader") core.tick();
 * core.propose("hello");
 * const written = core.ready(); // persist written.entries, then:
 * core.persisted(written.lastIndex, written.lastTerm);
 * const rd = core.ready();
 * assert.deepEqual(rd.committed.filter((e) => e.kind === "command").map((e) => e.command), ["hello"]);
 * ```
 */
export class RaftCore {
  /** This node's id. */
  readonly id: NodeId;
  #random: Random;
  #electionTicks: number;
  #heartbeatTicks: number;
  #preVote: boolean;
  #checkQuorum: boolean;
  #maxInflight: number;
  #maxInflightBytes: number;
  #maxAppendBytes: number;
  #maxAppendEntries: number;
  #chunkBytes: number;
  #leaderNoop: boolean;
  #observer: RaftObserver | undefined;

  #term = 0;
  #vote: NodeId | null = null;
  #role: Role = "follower";
  #leader: NodeId | null = null;
  #log: RaftLog;
  #commit = 0;
  #applied = 0;
  #snapshot: Snapshot | undefined;
  #pendingSnapshot: { snapshot: Snapshot; install: boolean; resetLog: boolean } | undefined;
  #incoming:
    | { meta: Snapshot["meta"]; size: number; chunks: Uint8Array[]; received: number }
    | undefined;

  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedTimeout = 0;
  #votes = new Map<NodeId, boolean>();
  #progress = new Map<NodeId, Progress>();
  #transferee: NodeId | null = null;
  #transferElapsed = 0;
  #reads: PendingRead[] = [];
  #readsAwaitingCommit: number[] = [];
  #readRound = 0;
  #heartbeatRound = 0;
  #readyReads: ReadState[] = [];
  #messages: Message[] = [];
  #persisted: HardState;
  #leaderOfTerm = new Map<number, boolean>();

  /**
   * Creates the core from what storage holds.
   *
   * @param id This node's id.
   * @param initial The stored state; a new node passes its initial membership in `snapshot.meta`.
   * @param options Tuning, plus the seeded randomness for election timeouts.
   */
  constructor(id: NodeId, initial: InitialState, options: CoreOptions & { random: Random }) {
    this.id = id;
    this.#random = options.random;
    this.#electionTicks = options.electionTicks ?? 10;
    this.#heartbeatTicks = options.heartbeatTicks ?? 1;
    this.#preVote = options.preVote ?? true;
    this.#checkQuorum = options.checkQuorum ?? true;
    this.#maxInflight = options.maxInflight ?? 16;
    this.#maxInflightBytes = options.maxInflightBytes ?? 4 * 1024 * 1024;
    this.#maxAppendBytes = options.maxAppendBytes ?? 1024 * 1024;
    this.#maxAppendEntries = options.maxAppendEntries ?? 512;
    this.#chunkBytes = options.snapshotChunkBytes ?? 512 * 1024;
    this.#leaderNoop = options.leaderNoop ?? true;
    this.#observer = options.observer;
    invariant(
      this.#heartbeatTicks < this.#electionTicks,
      "heartbeatTicks must be below electionTicks",
    );
    invariant(
      this.#maxAppendEntries >= 1 && this.#maxInflightBytes >= 1,
      "maxAppendEntries and maxInflightBytes must be at least 1",
    );
    const meta = initial.snapshot?.meta ?? { index: 0, term: 0, membership: EMPTY_MEMBERSHIP };
    this.#snapshot = initial.snapshot;
    this.#log = new RaftLog(meta, initial.entries);
    const observer = this.#observer;
    if (observer?.removed) this.#log.onRemove = (entries) => observer.removed!(id, entries);
    this.#term = initial.hardState.term;
    this.#vote = initial.hardState.vote;
    this.#commit = Math.max(initial.hardState.commit, meta.index);
    invariant(
      this.#commit <= this.#log.lastIndex(),
      `stored commit ${this.#commit} is beyond the stored log (last index ${this.#log.lastIndex()})`,
    );
    this.#applied = meta.index;
    this.#persisted = this.#hardState();
    this.#resetElectionTimeout();
  }

  // ---- read-only state ----

  /** The current term. */
  get term(): number {
    return this.#term;
  }
  /** The current role. */
  get role(): Role {
    return this.#role;
  }
  /** The leader this node knows of, or null. */
  get leader(): NodeId | null {
    return this.#leader;
  }
  /** The highest committed index. */
  get commitIndex(): number {
    return this.#commit;
  }
  /** The highest index handed out for applying. */
  get appliedIndex(): number {
    return this.#applied;
  }
  /** The last index in the log. */
  get lastIndex(): number {
    return this.#log.lastIndex();
  }
  /** The index the log starts after (the latest snapshot's). */
  get snapshotIndex(): number {
    return this.#log.snapshotIndex;
  }
  /** The latest membership (committed or not). */
  get membership(): Membership {
    return this.#log.membership();
  }
  /** The node a leadership transfer is under way to, or null. */
  get transferee(): NodeId | null {
    return this.#transferee;
  }
  /** The entries in [lo, hi] still in the log (for inspection and tests). */
  entries(lo: number, hi: number): Entry[] {
    return this.#log.slice(lo, hi);
  }
  /** The term of the entry at `index`, or undefined when compacted or beyond the end. */
  termAt(index: number): number | undefined {
    return this.#log.term(index);
  }
  /**
   * How many messages are waiting for the next {@linkcode RaftCore.ready}.
   * Messages a `step` produces are appended in order, so a driver can tell
   * which of `ready().messages` answer which request.
   */
  get pendingMessages(): number {
    return this.#messages.length;
  }
  /**
   * Takes the pending messages from position `start` on out of the next
   * ready, when there are some and all are of `type`; else takes nothing
   * and returns undefined. For a driver that sends an answer needing no
   * write (a heartbeat's) ahead of a write in progress.
   */
  takeMessagesFrom(start: number, type: Message["type"]): Message[] | undefined {
    const tail = this.#messages.slice(start);
    if (start < 0 || tail.length === 0 || tail.some((m) => m.type !== type)) return undefined;
    this.#messages.length = start;
    return tail;
  }
  /** The match index of each peer (leader only). */
  matchIndexes(): Map<NodeId, number> {
    return new Map([...this.#progress].map(([id, pr]) => [id, pr.match]));
  }

  // ---- inputs ----

  /** Advances logical time by one tick. */
  tick(): void {
    this.#electionElapsed++;
    if (this.#role === "leader") {
      this.#heartbeatElapsed++;
      if (this.#transferee !== null && ++this.#transferElapsed >= this.#electionTicks) {
        this.#transferee = null; // the transfer did not complete in time: give up on it
      }
      if (this.#electionElapsed >= this.#electionTicks) {
        this.#electionElapsed = 0;
        if (this.#checkQuorum && !this.#quorumActive()) {
          this.#becomeFollower(this.#term, null);
          return;
        }
      }
      if (this.#heartbeatElapsed >= this.#heartbeatTicks) {
        this.#heartbeatElapsed = 0;
        this.#broadcastHeartbeat(0);
      }
      return;
    }
    if (this.#mayCampaign() && this.#electionElapsed >= this.#randomizedTimeout) {
      this.#electionElapsed = 0;
      this.#campaign(this.#preVote ? "pre" : "real", false);
    }
  }

  /**
   * Appends a command to the log if this node is the leader; returns its
   * index and term, or why it was refused.
   */
  propose(command: unknown): { index: number; term: number } | Refusal {
    if (this.#role !== "leader") return { reason: "not-leader", leader: this.#leader };
    if (this.#transferee !== null) return { reason: "transferring", leader: this.#transferee };
    return this.#appendOwn({ kind: "command", command });
  }

  /**
   * Proposes a one-server membership change (leader only; one at a time,
   * and only once this leader has committed an entry of its own term).
   *
   * A new leader may hold an uncommitted membership entry of an earlier
   * term that some nodes have and it has not (or the other way round): a
   * change of its own, made before it commits in its term, could then be
   * decided by a quorum that does not overlap the other configuration's,
   * and a committed entry could be overwritten (Ongaro, raft-dev 2015; the
   * Raft dissertation's erratum). Committing an entry of its term first
   * (the no-op of its election) settles which configuration is in force.
   */
  proposeMembership(change: MembershipChange): { index: number; term: number } | Refusal {
    if (this.#role !== "leader") return { reason: "not-leader", leader: this.#leader };
    if (this.#transferee !== null) return { reason: "transferring", leader: this.#transferee };
    if (!this.#committedInTerm()) return { reason: "term-not-committed", leader: this.#leader };
    if (this.#log.membershipIndex() > this.#commit) {
      return { reason: "membership-pending", leader: this.#leader };
    }
    const current = this.#log.membership();
    const voters = current.voters.filter((v) => v !== change.node);
    const learners = current.learners.filter((v) => v !== change.node);
    if (change.type === "addVoter") voters.push(change.node);
    if (change.type === "addLearner") {
      if (current.voters.includes(change.node)) {
        return {
          reason: "invalid",
          leader: this.#leader,
          detail: `${change.node} is already a voter`,
        };
      }
      learners.push(change.node);
    }
    if (voters.length === 0) {
      return { reason: "invalid", leader: this.#leader, detail: "cannot remove the last voter" };
    }
    return this.#appendOwn({ kind: "membership", membership: { voters, learners } });
  }

  /**
   * Starts a linearizable read tagged `context` (leader only). The read shows
   * up in a later ready's `reads` once a quorum confirmed this node is still
   * the leader; the service may answer it once it has applied `index`.
   */
  readIndex(context: number): Refusal | undefined {
    if (this.#role !== "leader") return { reason: "not-leader", leader: this.#leader };
    if (!this.#committedInTerm()) {
      // Nothing of this term is committed yet, so the commit index may be stale (§6.4).
      this.#readsAwaitingCommit.push(context);
      return undefined;
    }
    this.#startRead(context);
    return undefined;
  }

  /** Hands leadership to `to` (leader only): catch it up, then tell it to campaign. */
  transferLeadership(to: NodeId): Refusal | undefined {
    if (this.#role !== "leader") return { reason: "not-leader", leader: this.#leader };
    if (to === this.id) return undefined;
    if (!this.#log.membership().voters.includes(to)) {
      return { reason: "invalid", leader: this.#leader, detail: `${to} is not a voter` };
    }
    this.#transferee = to;
    this.#transferElapsed = 0;
    const pr = this.#progress.get(to)!;
    if (pr.match === this.#log.lastIndex()) this.#send({ type: "timeoutNow", to });
    return undefined;
  }

  /**
   * The service took a snapshot of its state through `index` (which it has
   * applied): drop the log up to there.
   */
  compact(index: number, data: Uint8Array): void {
    invariant(
      index <= this.#applied,
      `snapshot at ${index} is beyond the applied index ${this.#applied}`,
    );
    if (index <= this.#log.snapshotIndex) return;
    const meta = { index, term: this.#log.term(index)!, membership: this.#log.membershipAt(index) };
    this.#log.compact(index);
    this.#snapshot = { meta, data };
    this.#pendingSnapshot = { snapshot: this.#snapshot, install: false, resetLog: false };
  }

  /** Reports that a message to `peer` could not be delivered. */
  reportUnreachable(peer: NodeId, type: Message["type"]): void {
    const pr = this.#progress.get(peer);
    if (this.#role !== "leader" || pr === undefined) return;
    if (type === "snapshot") {
      pr.snapshotInflight = false;
    } else if (type === "append" && pr.state === "replicate") {
      // One probe now; if that is lost too, the next waits for the peer to
      // answer a heartbeat (as in etcd): a dead peer must not cost an
      // encoded batch of entries per turn.
      this.#becomeProbe(pr);
    }
  }

  /** Feeds a message from a peer into the state machine. */
  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term > this.#term) {
      const isVote = m.type === "vote";
      if (isVote && !m.transfer && this.#inLease()) return; // a live leader: ignore the disruptor
      if ((isVote && m.pre) || (m.type === "voteResp" && m.pre && m.granted)) {
        // PreVotes and granted PreVote answers carry a future term without changing ours.
      } else {
        const leader = m.type === "append" || m.type === "heartbeat" || m.type === "snapshot"
          ? m.from
          : null;
        this.#becomeFollower(m.term, leader);
      }
    } else if (m.term < this.#term) {
      if (m.type === "append" || m.type === "heartbeat" || m.type === "snapshot") {
        // A stale leader: tell it the new term so it steps down.
        this.#send({
          type: "appendResp",
          to: m.from,
          success: false,
          index: 0,
          conflictTerm: 0,
          conflictIndex: 0,
          seq: 0,
        });
      } else if (m.type === "vote") {
        this.#send({ type: "voteResp", to: m.from, pre: m.pre, granted: false });
      }
      return;
    }

    if (m.type === "vote") {
      this.#handleVote(m);
      return;
    }
    switch (this.#role) {
      case "leader":
        this.#stepLeader(m);
        break;
      case "candidate":
      case "precandidate":
        this.#stepCandidate(m);
        break;
      case "follower":
        this.#stepFollower(m);
        break;
    }
  }

  // ---- output ----

  /** Whether {@linkcode RaftCore.ready} has anything to do. */
  hasReady(): boolean {
    if (this.#role === "leader" && this.#hasAppendsToSend()) return true;
    return this.#messages.length > 0 || this.#log.stableIndex < this.#log.lastIndex() ||
      this.#pendingSnapshot !== undefined || this.#readyReads.length > 0 ||
      this.#commit > this.#applied || !sameHardState(this.#persisted, this.#hardState());
  }

  /**
   * Takes everything the driver must do now (see {@linkcode Ready}), and
   * assumes it will be done: entries count as persisted and committed
   * entries as applied.
   */
  ready(): Ready {
    if (this.#role === "leader") {
      for (const [id, pr] of this.#progress) if (id !== this.id) this.#sendAppend(id, pr);
    }
    const hs = this.#hardState();
    const rd: Ready = {
      entries: this.#log.unstable(),
      messages: this.#messages,
      committed: [],
      reads: this.#readyReads,
      installSnapshot: false,
      resetLog: false,
      lastIndex: this.#log.lastIndex(),
      lastTerm: this.#log.lastTerm(),
    };
    if (!sameHardState(hs, this.#persisted)) {
      rd.hardState = hs;
      this.#persisted = hs;
    }
    if (this.#pendingSnapshot !== undefined) {
      rd.snapshot = this.#pendingSnapshot.snapshot;
      rd.installSnapshot = this.#pendingSnapshot.install;
      rd.resetLog = this.#pendingSnapshot.resetLog;
      this.#pendingSnapshot = undefined;
      if (rd.installSnapshot) this.#observer?.installed?.(this.id, rd.snapshot.meta);
    }
    this.#log.markStable(this.#log.lastIndex());
    if (this.#commit > this.#applied) {
      invariant(this.#applied >= this.#log.snapshotIndex, "applied index fell behind the snapshot");
      rd.committed = this.#log.slice(this.#applied + 1, this.#commit);
      invariant(
        rd.committed.length === this.#commit - this.#applied,
        `committed entries ${this.#applied + 1}..${this.#commit} are not all in the log`,
      );
      this.#applied = this.#commit;
      this.#observer?.applied?.(this.id, rd.committed);
    }
    invariant(this.#applied <= this.#commit, `applied ${this.#applied} > commit ${this.#commit}`);
    this.#messages = [];
    this.#readyReads = [];
    return rd;
  }

  /**
   * The driver wrote a ready whose log ended at (`index`, `term`). A leader
   * counts its own log toward commits only up to there. If the log changed
   * at `index` meanwhile (a follower's log was overwritten), nothing is
   * assumed.
   */
  persisted(index: number, term: number): void {
    if (this.#log.term(index) !== term) return;
    this.#log.markDurable(index);
    const self = this.#progress.get(this.id);
    if (this.#role === "leader" && self !== undefined && this.#log.durableIndex > self.match) {
      self.match = this.#log.durableIndex;
      this.#maybeCommit();
    }
  }

  // ---- elections ----

  #campaign(kind: "pre" | "real", transfer: boolean): void {
    if (kind === "pre") {
      this.#role = "precandidate";
      this.#leader = null;
    } else {
      this.#setTerm(this.#term + 1);
      this.#vote = this.id;
      this.#role = "candidate";
      this.#leader = null;
    }
    this.#votes = new Map([[this.id, true]]);
    this.#resetElectionTimeout();
    if (this.#tally() === "won") {
      this.#afterWin(kind);
      return;
    }
    const term = kind === "pre" ? this.#term + 1 : this.#term;
    for (const peer of this.#log.membership().voters) {
      if (peer === this.id) continue;
      this.#messages.push({
        type: "vote",
        from: this.id,
        to: peer,
        term,
        pre: kind === "pre",
        transfer,
        lastIndex: this.#log.lastIndex(),
        lastTerm: this.#log.lastTerm(),
      });
    }
  }

  #afterWin(kind: "pre" | "real"): void {
    if (kind === "pre") this.#campaign("real", false);
    else this.#becomeLeader();
  }

  #handleVote(m: VoteMessage): void {
    const canVote = this.#vote === m.from || (this.#vote === null && this.#leader === null) ||
      (m.pre && m.term > this.#term);
    if (canVote && this.#log.isUpToDate(m.lastIndex, m.lastTerm)) {
      this.#messages.push({
        type: "voteResp",
        from: this.id,
        to: m.from,
        term: m.term,
        pre: m.pre,
        granted: true,
      });
      if (!m.pre) {
        this.#electionElapsed = 0;
        this.#vote = m.from;
      }
    } else {
      this.#send({ type: "voteResp", to: m.from, pre: m.pre, granted: false });
    }
  }

  #stepCandidate(m: Message): void {
    switch (m.type) {
      case "voteResp": {
        if (m.pre !== (this.#role === "precandidate")) return;
        this.#votes.set(m.from, m.granted);
        const outcome = this.#tally();
        if (outcome === "won") this.#afterWin(m.pre ? "pre" : "real");
        else if (outcome === "lost") this.#becomeFollower(this.#term, null);
        return;
      }
      case "append":
      case "heartbeat":
      case "snapshot":
        // A leader of this term exists.
        this.#becomeFollower(this.#term, m.from);
        this.#stepFollower(m);
        return;
      default:
        return;
    }
  }

  #tally(): "won" | "lost" | "pending" {
    const voters = this.#log.membership().voters;
    let granted = 0;
    let rejected = 0;
    for (const v of voters) {
      const vote = this.#votes.get(v);
      if (vote === true) granted++;
      else if (vote === false) rejected++;
    }
    const quorum = Math.floor(voters.length / 2) + 1;
    if (granted >= quorum) return "won";
    if (rejected > voters.length - quorum) return "lost";
    return "pending";
  }

  #becomeFollower(term: number, leader: NodeId | null): void {
    const wasLeader = this.#role === "leader";
    if (term > this.#term) {
      this.#setTerm(term);
      this.#vote = null;
    }
    this.#role = "follower";
    this.#leader = leader;
    this.#progress.clear();
    this.#transferee = null;
    this.#resetElectionTimeout();
    if (wasLeader) {
      this.#reads = [];
      this.#readsAwaitingCommit = [];
    }
  }

  #becomeLeader(): void {
    invariant(this.#role === "candidate", `became leader from ${this.#role}`);
    invariant(!this.#leaderOfTerm.get(this.#term), `became leader twice in term ${this.#term}`);
    this.#leaderOfTerm.clear();
    this.#leaderOfTerm.set(this.#term, true);
    this.#role = "leader";
    this.#leader = this.id;
    this.#heartbeatElapsed = 0;
    this.#electionElapsed = 0;
    this.#transferee = null;
    this.#progress.clear();
    for (const peer of this.#members()) this.#addProgress(peer);
    this.#observer?.leader?.(this.id, this.#term);
    if (this.#leaderNoop) this.#appendOwn({ kind: "noop" });
    else this.#maybeCommit();
  }

  #setTerm(term: number): void {
    invariant(term >= this.#term, `term went back from ${this.#term} to ${term}`);
    this.#term = term;
  }

  #resetElectionTimeout(): void {
    this.#electionElapsed = 0;
    this.#randomizedTimeout = this.#electionTicks + this.#random.int(this.#electionTicks);
  }

  #promotable(): boolean {
    return this.#log.membership().voters.includes(this.id);
  }

  /**
   * Whether this node starts elections: a voter of its latest configuration,
   * or of the committed one while a change that removes it is not committed
   * yet (as etcd, which applies a change only once committed). Otherwise a
   * node holding the only copy of its own uncommitted removal, with the
   * longest log, would neither campaign nor vote for the shorter logs, and
   * the cluster could stall for good. Votes are still counted in the
   * candidate's latest configuration, its own only if it is in it.
   */
  #mayCampaign(): boolean {
    if (this.#promotable()) return true;
    return this.#log.membershipIndex() > this.#commit &&
      this.#log.membershipAt(this.#commit).voters.includes(this.id);
  }

  /** A follower that heard from a leader within the election timeout refuses to help depose it. */
  #inLease(): boolean {
    return this.#checkQuorum && this.#leader !== null &&
      this.#electionElapsed < this.#electionTicks;
  }

  // ---- leader ----

  #members(): NodeId[] {
    const m = this.#log.membership();
    return [...m.voters, ...m.learners];
  }

  #addProgress(peer: NodeId): void {
    const last = this.#log.lastIndex();
    this.#progress.set(peer, {
      match: peer === this.id ? Math.min(this.#log.durableIndex, last) : 0,
      next: last + 1,
      state: "probe",
      inflight: [],
      inflightSizes: new Map(),
      probeSent: false,
      seq: 0,
      active: true,
      snapshotIndex: 0,
      snapshotOffset: 0,
      snapshotInflight: false,
      snapshotWaits: 0,
    });
  }

  #appendOwn(fields: Omit<Entry, "index" | "term">): { index: number; term: number } {
    invariant(this.#role === "leader", `${this.id} appended its own entry as ${this.#role}`);
    invariant(
      fields.kind !== "membership" || this.#committedInTerm(),
      `leader ${this.id} appended a membership entry before committing in its term ${this.#term}`,
    );
    const entry: Entry = { index: this.#log.lastIndex() + 1, term: this.#term, ...fields };
    this.#log.append([entry]);
    if (entry.kind === "membership") this.#membershipChanged();
    const self = this.#progress.get(this.id);
    // Our own entry counts toward a commit once persisted (see `persisted`).
    if (self) self.next = entry.index + 1;
    return { index: entry.index, term: entry.term };
  }

  /** A new membership takes effect when appended: track the right peers. */
  #membershipChanged(): void {
    if (this.#role !== "leader") return;
    const members = new Set(this.#members());
    for (const id of [...this.#progress.keys()]) if (!members.has(id)) this.#progress.delete(id);
    for (const id of members) if (!this.#progress.has(id)) this.#addProgress(id);
    if (this.#transferee !== null && !members.has(this.#transferee)) this.#transferee = null;
  }

  #stepLeader(m: Message): void {
    const pr = this.#progress.get(m.from);
    if (pr === undefined) {
      invariant(m.type !== "append" && m.type !== "heartbeat", `two leaders in term ${this.#term}`);
      return;
    }
    pr.active = true;
    switch (m.type) {
      case "appendResp":
        this.#handleAppendResponse(m, pr);
        return;
      case "heartbeatResp":
        this.#handleHeartbeatResponse(m, pr);
        return;
      case "snapshotResp":
        this.#handleSnapshotResponse(m, pr);
        return;
      case "append":
      case "heartbeat":
      case "snapshot":
        invariant(false, `two leaders in term ${this.#term}: ${this.id} and ${m.from}`);
        return;
      default:
        return;
    }
  }

  #handleAppendResponse(m: AppendResponse, pr: Progress): void {
    if (m.success) {
      if (m.index > pr.match) {
        pr.match = m.index;
        if (pr.state === "probe") {
          pr.state = "replicate";
          pr.inflight = [];
        }
        if (pr.state === "snapshot") this.#becomeProbe(pr);
        pr.next = Math.max(pr.next, m.index + 1);
        this.#maybeCommit();
        if (m.from === this.#transferee && pr.match === this.#log.lastIndex()) {
          this.#send({ type: "timeoutNow", to: m.from });
        }
      }
      pr.inflight = pr.inflight.filter((i) => i > m.index);
      pr.probeSent = false;
      return;
    }
    // Rejected: ignore answers to stale requests.
    if (m.index === 0 && m.conflictIndex === 0) return; // a term bump answer, already handled
    if (pr.state === "replicate") {
      if (m.index <= pr.match) return;
      this.#becomeProbe(pr);
    } else if (pr.state !== "probe" || m.seq !== pr.seq) {
      return; // not the answer to the latest probe
    }
    if (m.index <= pr.match) {
      // The answer to the latest probe rejects an index the follower had
      // acknowledged: it lost durable state. Forget the match, or the same
      // probe would be sent, and rejected, for ever.
      pr.match = Math.max(0, Math.min(m.index, m.conflictIndex) - 1);
    }
    let next = m.conflictIndex;
    if (m.conflictTerm > 0) {
      const last = this.#log.lastIndexOfTerm(m.conflictTerm);
      if (last > 0) next = last + 1;
    }
    pr.next = Math.max(pr.match + 1, Math.min(next, m.index));
    pr.probeSent = false;
  }

  #handleHeartbeatResponse(m: HeartbeatResponse, pr: Progress): void {
    pr.probeSent = false;
    if (m.lastIndex !== undefined && m.lastIndex < pr.match) {
      // The follower's log ends below its match: it lost entries (a folder
      // restored or emptied). Probe from where its log really ends, or an
      // idle leader would send it nothing for ever.
      pr.match = m.lastIndex;
      this.#becomeProbe(pr);
    }
    if (pr.state === "snapshot" && pr.snapshotInflight) {
      // A chunk whose answer was lost without the driver reporting it would
      // stall the snapshot for ever: after an election timeout of heartbeat
      // answers without a chunk answer, send the chunk again (a duplicate
      // is answered with the offset the follower expects).
      if (++pr.snapshotWaits >= this.#electionTicks / this.#heartbeatTicks) {
        pr.snapshotInflight = false;
        pr.snapshotWaits = 0;
      }
    }
    if (pr.state === "replicate" && this.#paused(pr)) {
      // A lost append may have filled the window: free one slot so replication resumes.
      pr.inflight.shift();
    }
    const last = this.#log.lastIndex();
    if (pr.state === "replicate" && pr.match < last && pr.next > last) {
      // Everything was sent but not all acknowledged: an append may have been
      // lost just before the log went idle. An empty append at the end shows
      // it (the follower refuses it if it lacks `last`, and the peer is probed).
      this.#send({
        type: "append",
        to: m.from,
        prevIndex: last,
        prevTerm: this.#log.term(last)!,
        entries: [],
        commit: this.#commit,
        seq: ++pr.seq,
      });
    }
    if (m.context === 0 || !this.#log.membership().voters.includes(m.from)) return;
    for (const read of this.#reads) if (read.round <= m.context) read.acks.add(m.from);
    // Release, in order, every read a quorum has confirmed.
    let n = 0;
    while (n < this.#reads.length && this.#reads[n].acks.size >= this.#quorum()) n++;
    for (const read of this.#reads.splice(0, n)) {
      this.#readyReads.push({ context: read.context, index: read.index });
    }
  }

  #handleSnapshotResponse(m: SnapshotResponse, pr: Progress): void {
    if (pr.state !== "snapshot") return;
    pr.snapshotInflight = false;
    if (m.done) {
      pr.match = Math.max(pr.match, m.index);
      pr.next = pr.match + 1;
      this.#becomeProbe(pr);
      this.#maybeCommit();
      return;
    }
    if (m.index !== pr.snapshotIndex) {
      pr.snapshotOffset = 0; // the follower lost track: start over
    } else {
      pr.snapshotOffset = m.offset;
    }
  }

  #becomeProbe(pr: Progress): void {
    pr.state = "probe";
    pr.next = pr.match + 1;
    pr.inflight = [];
    pr.probeSent = false;
    pr.snapshotInflight = false;
  }

  #quorum(): number {
    return Math.floor(this.#log.membership().voters.length / 2) + 1;
  }

  #quorumActive(): boolean {
    let active = 0;
    for (const v of this.#log.membership().voters) {
      const pr = this.#progress.get(v);
      if (v === this.id || pr?.active) active++;
    }
    for (const pr of this.#progress.values()) pr.active = false;
    return active >= this.#quorum();
  }

  #maybeCommit(): void {
    const voters = this.#log.membership().voters;
    const matches = voters.map((v) => this.#progress.get(v)?.match ?? 0).sort((a, b) => b - a);
    const n = matches[this.#quorum() - 1];
    // Figure 8: only an entry of the current term is committed by counting replicas.
    if (n > this.#commit && this.#log.term(n) === this.#term) {
      this.#commitTo(n);
      if (this.#readsAwaitingCommit.length > 0) {
        for (const ctx of this.#readsAwaitingCommit.splice(0)) this.#startRead(ctx);
      }
    }
  }

  /** Whether an entry of the current term is committed (so the commit index is this leader's own). */
  #committedInTerm(): boolean {
    return this.#log.term(this.#commit) === this.#term;
  }

  /** The commit index only moves forward (within one run of this core). */
  #commitTo(index: number): void {
    if (index <= this.#commit) return;
    invariant(
      index <= this.#log.lastIndex(),
      `commit ${index} beyond last index ${this.#log.lastIndex()}`,
    );
    this.#commit = index;
    // A leader that is not in the committed membership steps down (§4.2.2).
    if (this.#role === "leader" && !this.#promotable() && this.#log.membershipIndex() <= index) {
      this.#becomeFollower(this.#term, null);
    }
  }

  #startRead(context: number): void {
    const read: PendingRead = {
      context,
      index: this.#commit,
      round: ++this.#readRound,
      acks: new Set(this.#promotable() ? [this.id] : []),
    };
    if (read.acks.size >= this.#quorum()) {
      this.#readyReads.push({ context, index: read.index });
      return;
    }
    this.#reads.push(read);
    this.#broadcastHeartbeat(read.round);
  }

  #broadcastHeartbeat(context: number): void {
    // Reads started in this turn share the heartbeat of the latest round.
    if (context === 0 && this.#reads.length > 0) context = this.#readRound;
    for (const [id, pr] of this.#progress) {
      if (id === this.id) continue;
      this.#messages = this.#messages.filter((m) => !(m.type === "heartbeat" && m.to === id));
      this.#send({ type: "heartbeat", to: id, commit: Math.min(pr.match, this.#commit), context });
    }
  }

  #hasAppendsToSend(): boolean {
    const last = this.#log.lastIndex();
    for (const [id, pr] of this.#progress) {
      if (id === this.id) continue;
      if (pr.state === "snapshot") {
        if (!pr.snapshotInflight) return true;
      } else if (
        !this.#paused(pr) && (pr.next <= last || (pr.state === "probe" && pr.match < last))
      ) {
        return true;
      }
    }
    return false;
  }

  #paused(pr: Progress): boolean {
    if (pr.state === "probe") return pr.probeSent;
    if (pr.state === "replicate") {
      return pr.inflight.length >= this.#maxInflight ||
        this.#inflightBytes(pr) >= this.#maxInflightBytes;
    }
    return true;
  }

  /** Bytes of the appends in flight to a follower; forgets the sizes of those no longer in flight. */
  #inflightBytes(pr: Progress): number {
    if (pr.inflightSizes.size > pr.inflight.length) {
      const live = new Set(pr.inflight);
      for (const index of pr.inflightSizes.keys()) {
        if (!live.has(index)) pr.inflightSizes.delete(index);
      }
    }
    let bytes = 0;
    for (const index of pr.inflight) bytes += pr.inflightSizes.get(index) ?? 0;
    return bytes;
  }

  #sendAppend(to: NodeId, pr: Progress): void {
    if (pr.state === "snapshot") {
      this.#sendSnapshotChunk(to, pr);
      return;
    }
    if (this.#paused(pr)) return;
    const last = this.#log.lastIndex();
    if (pr.next > last && !(pr.state === "probe" && pr.match < last)) return;
    const prevIndex = pr.next - 1;
    const prevTerm = this.#log.term(prevIndex);
    if (prevTerm === undefined) {
      // The entries this follower needs are compacted: send the snapshot.
      invariant(this.#snapshot !== undefined, `no snapshot covers index ${prevIndex}`);
      pr.state = "snapshot";
      pr.snapshotIndex = this.#snapshot.meta.index;
      pr.snapshotOffset = 0;
      pr.snapshotInflight = false;
      this.#sendSnapshotChunk(to, pr);
      return;
    }
    const entries: Entry[] = [];
    let bytes = 0;
    let sent = 0;
    for (let i = pr.next; i <= last && entries.length < this.#maxAppendEntries; i++) {
      const e = this.#log.entry(i)!;
      bytes += approximateSize(e);
      if (entries.length > 0 && bytes > this.#maxAppendBytes) break;
      entries.push(e);
      sent = bytes;
    }
    const message: Omit<AppendMessage, "from" | "term"> = {
      type: "append",
      to,
      prevIndex,
      prevTerm,
      entries,
      commit: this.#commit,
      seq: ++pr.seq,
    };
    this.#send(message);
    if (pr.state === "probe") {
      pr.probeSent = true;
    } else if (entries.length > 0) {
      pr.next = entries[entries.length - 1].index + 1;
      pr.inflight.push(pr.next - 1);
      pr.inflightSizes.set(pr.next - 1, sent);
    }
  }

  #sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const snap = this.#snapshot;
    if (snap === undefined || pr.snapshotInflight) return;
    if (pr.snapshotIndex !== snap.meta.index) {
      pr.snapshotIndex = snap.meta.index; // a newer snapshot replaced the one being sent
      pr.snapshotOffset = 0;
    }
    const chunk = snap.data.subarray(pr.snapshotOffset, pr.snapshotOffset + this.#chunkBytes);
    const message: Omit<SnapshotMessage, "from" | "term"> = {
      type: "snapshot",
      to,
      meta: snap.meta,
      offset: pr.snapshotOffset,
      size: snap.data.length,
      chunk,
    };
    this.#send(message);
    pr.snapshotInflight = true;
    pr.snapshotWaits = 0;
  }

  // ---- follower ----

  #stepFollower(m: Message): void {
    if (m.type === "append" || m.type === "heartbeat" || m.type === "snapshot") {
      // Only the leader of this term sends these: it is alive.
      this.#electionElapsed = 0;
      this.#leader = m.from;
    }
    switch (m.type) {
      case "append":
        this.#handleAppend(m);
        return;
      case "heartbeat": {
        const last = this.#log.lastIndex();
        this.#commitTo(Math.min(m.commit, last));
        // The heartbeat's commit is at most what the leader counts as our
        // match: a log ending below it lost entries it had acknowledged, and
        // the leader, believing them here, would send nothing while idle.
        this.#send({
          type: "heartbeatResp",
          to: m.from,
          context: m.context,
          ...(last < m.commit ? { lastIndex: last } : {}),
        });
        return;
      }
      case "snapshot":
        this.#handleSnapshot(m);
        return;
      case "timeoutNow":
        if (this.#mayCampaign()) this.#campaign("real", true);
        return;
      default:
        return;
    }
  }

  #handleAppend(m: AppendMessage): void {
    if (m.prevIndex < this.#commit) {
      // Everything up to our commit index matches the leader already.
      this.#send({
        type: "appendResp",
        to: m.from,
        success: true,
        index: this.#commit,
        conflictTerm: 0,
        conflictIndex: 0,
        seq: m.seq,
      });
      return;
    }
    if (this.#log.matches(m.prevIndex, m.prevTerm)) {
      this.#log.appendAfterMatch(m.entries, this.#commit);
      const lastNew = m.prevIndex + m.entries.length;
      this.#commitTo(Math.min(m.commit, lastNew));
      this.#send({
        type: "appendResp",
        to: m.from,
        success: true,
        index: lastNew,
        conflictTerm: 0,
        conflictIndex: 0,
        seq: m.seq,
      });
      return;
    }
    let conflictTerm = 0;
    let conflictIndex = this.#log.lastIndex() + 1;
    if (m.prevIndex <= this.#log.lastIndex()) {
      conflictTerm = this.#log.term(m.prevIndex)!;
      conflictIndex = this.#log.firstIndexOfTerm(m.prevIndex);
    }
    this.#send({
      type: "appendResp",
      to: m.from,
      success: false,
      index: m.prevIndex,
      conflictTerm,
      conflictIndex,
      seq: m.seq,
    });
  }

  #handleSnapshot(m: SnapshotMessage): void {
    const reply = (fields: { index: number; offset: number; done: boolean }) =>
      this.#send({ type: "snapshotResp", to: m.from, ...fields });
    if (m.meta.index <= this.#commit) {
      reply({ index: this.#commit, offset: 0, done: true });
      this.#incoming = undefined;
      return;
    }
    let inc = this.#incoming;
    if (m.offset === 0) {
      inc = this.#incoming = { meta: m.meta, size: m.size, chunks: [], received: 0 };
    }
    if (
      inc === undefined || inc.meta.index !== m.meta.index || inc.meta.term !== m.meta.term ||
      m.offset !== inc.received
    ) {
      reply({
        index: m.meta.index,
        offset: inc?.meta.index === m.meta.index ? inc.received : 0,
        done: false,
      });
      return;
    }
    inc.chunks.push(m.chunk);
    inc.received += m.chunk.length;
    if (inc.received < inc.size) {
      reply({ index: m.meta.index, offset: inc.received, done: false });
      return;
    }
    this.#incoming = undefined;
    const data = concatBytes(inc.chunks, inc.size);
    const snapshot: Snapshot = { meta: inc.meta, data };
    invariant(
      inc.meta.index > this.#commit,
      `snapshot through ${inc.meta.index} would move the commit index back from ${this.#commit}`,
    );
    const resetLog = !this.#log.restore(inc.meta);
    this.#snapshot = snapshot;
    this.#commit = inc.meta.index;
    this.#applied = inc.meta.index;
    this.#pendingSnapshot = { snapshot, install: true, resetLog };
    reply({ index: inc.meta.index, offset: inc.size, done: true });
  }

  // ---- helpers ----

  #send(partial: DistributiveOmit<Message, "from" | "term">): void {
    this.#messages.push({ ...partial, from: this.id, term: this.#term } as Message);
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.#commit };
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** Estimates already made: entries are immutable, and batched again for every follower. */
const SIZES = new WeakMap<Entry, number>();

/** A cheap estimate of an entry's encoded size, for batching. */
function approximateSize(e: Entry): number {
  const known = SIZES.get(e);
  if (known !== undefined) return known;
  const c = e.command;
  let size: number;
  if (typeof c === "string") size = c.length + 16;
  else if (c instanceof Uint8Array) size = c.length + 16;
  else if (c === undefined || c === null || typeof c !== "object") size = 24;
  else size = JSON.stringify(c)?.length ?? 64;
  SIZES.set(e, size);
  return size;
}
