/**
 * The Raft algorithm as a pure state machine, in the style of etcd's raft:
 * messages, ticks and proposals go in; what to persist, what to send and
 * what is committed come out of {@linkcode RaftCore.ready}. No I/O, timers or
 * hidden randomness: the same inputs give the same outputs.
 *
 * The parts live beside it: the leader half (`leader.ts`: per-follower
 * progress in `progress.ts` and `inflights.ts`, snapshots sent in chunks in
 * `snapshot_send.ts`), the follower's answers (`follower.ts`,
 * `snapshot_receive.ts`), elections (`election.ts`), ReadIndex state
 * (`read_only.ts`), membership changes (`confchange.ts`), the outbox
 * (`outbox.ts`) and the log (`log.ts`).
 *
 * @module
 */
import type { Random } from "../net/random.ts";
import {
  bindVoters,
  type ChangeContext,
  type MembershipChange,
  nextMembership,
} from "./confchange.ts";
import { type CoreOptions, resolveCoreOptions, type ResolvedCoreOptions } from "./core_options.ts";
import type { Refusal } from "./errors.ts";
import { invariant } from "./invariant.ts";
import { RaftLog } from "./log.ts";
import { mayCampaign, tallyVotes } from "./election.ts";
import { acceptAppend, answerHeartbeat, receiveSnapshot } from "./follower.ts";
import { Leader, type LeaderHost, type Outgoing } from "./leader.ts";
import { Outbox } from "./outbox.ts";
import { ReadOnly } from "./read_only.ts";
import type { InitialState, Ready } from "./ready.ts";
import { SnapshotReceiver } from "./snapshot_receive.ts";
import type {
  Entry,
  HardState,
  Membership,
  Message,
  NodeId,
  Role,
  Snapshot,
  SnapshotMeta,
  VoteMessage,
} from "./types.ts";

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
  #options: ResolvedCoreOptions;

  #term = 0;
  #vote: NodeId | null = null;
  #role: Role = "follower";
  #leader: NodeId | null = null;
  #log: RaftLog;
  #commit = 0;
  #applied = 0;
  #snapshot: Snapshot | undefined;
  #pendingSnapshot: { snapshot: Snapshot; install: boolean; resetLog: boolean } | undefined;
  #receiver: SnapshotReceiver;

  #electionElapsed = 0;
  #randomizedTimeout = 0;
  #votes = new Map<NodeId, boolean>();
  /** The leader half, while this node leads. */
  #lead: Leader | undefined;
  #reads = new ReadOnly();
  #outbox: Outbox;
  /**
   * The data folder incarnation each member last answered this leader as
   * (`CoreOptions.incarnation`): what it binds a voter to. Kept only while
   * leading, and for members: a folder heard before a removal is not the one
   * to bind after the re-add.
   */
  #heard = new Map<NodeId, string>();
  /** The peers whose folders said they joined the cluster (`CoreOptions.joined`). */
  #heardJoined = new Set<NodeId>();
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
    this.#options = resolveCoreOptions(options);
    this.#receiver = new SnapshotReceiver({ streamed: this.#options.streamSnapshots });
    const inc = this.#options.incarnation;
    this.#outbox = new Outbox(
      inc === undefined ? undefined : { inc, ...(this.#options.joined ? { joined: true } : {}) },
    );
    const meta = initial.snapshot?.meta ?? { index: 0, term: 0, membership: EMPTY_MEMBERSHIP };
    this.#snapshot = initial.snapshot;
    this.#log = new RaftLog(meta, initial.entries);
    const observer = this.#options.observer;
    if (observer?.removed) this.#log.onRemove = (entries) => observer.removed!(id, entries);
    this.#term = initial.hardState.term;
    this.#vote = initial.hardState.vote;
    // What the service applied was committed (the stored commit index may lag: it need not be durable).
    const applied = Math.max(meta.index, initial.applied ?? 0);
    this.#commit = Math.max(initial.hardState.commit, applied);
    invariant(
      this.#commit <= this.#log.lastIndex(),
      `stored commit ${this.#commit} is beyond the stored log (last index ${this.#log.lastIndex()})`,
    );
    this.#applied = applied;
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
    return this.#lead?.transferee ?? null;
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
   * Takes the answers to the request stepped with `requestId` out of the
   * next ready, when there are some and all are of `type`; else takes
   * nothing and returns undefined. For a driver that sends an answer needing
   * no write (a heartbeat's) ahead of a write in progress.
   */
  takeReplies(requestId: number, type: Message["type"]): Message[] | undefined {
    return this.#outbox.takeReplies(requestId, type);
  }
  /** The match index of each peer (leader only). */
  matchIndexes(): Map<NodeId, number> {
    return this.#lead?.matchIndexes() ?? new Map();
  }

  // ---- inputs ----

  /** Advances logical time by one tick. */
  tick(): void {
    this.#electionElapsed++;
    if (this.#lead !== undefined) {
      const electionDue = this.#electionElapsed >= this.#options.electionTicks;
      if (electionDue) this.#electionElapsed = 0;
      if (!this.#lead.tick(electionDue)) this.#becomeFollower(this.#term, null);
      else this.#bindHeardVoters();
      return;
    }
    if (this.#mayCampaign() && this.#electionElapsed >= this.#randomizedTimeout) {
      this.#electionElapsed = 0;
      this.#campaign(this.#options.preVote ? "pre" : "real", false);
    }
  }

  /**
   * Appends a command to the log if this node is the leader; returns its
   * index and term, or why it was refused.
   */
  propose(command: unknown): { index: number; term: number } | Refusal {
    if (this.#lead === undefined) return { reason: "not-leader", leader: this.#leader };
    const transferee = this.#lead.transferee;
    if (transferee !== null) return { reason: "transferring", leader: transferee };
    return this.#appendOwn({ kind: "command", command });
  }

  /**
   * Proposes a one-server membership change (leader only; one at a time,
   * and only once this leader has committed an entry of its own term: see
   * {@linkcode nextMembership}).
   */
  proposeMembership(change: MembershipChange): { index: number; term: number } | Refusal {
    if (this.#lead === undefined) return { reason: "not-leader", leader: this.#leader };
    const transferee = this.#lead.transferee;
    if (transferee !== null) return { reason: "transferring", leader: transferee };
    const next = nextMembership(change, this.#changeContext((n) => this.#heardAs(n)));
    if ("reason" in next) return { ...next, leader: this.#leader };
    return this.#appendOwn({ kind: "membership", membership: next });
  }

  /** What a membership change is decided on; `heard` only when folders are bound. */
  #changeContext(heard: (node: NodeId) => string | undefined): ChangeContext {
    return {
      current: this.#log.membership(),
      committedInTerm: this.#committedInTerm(),
      pending: this.#log.membershipIndex() > this.#commit,
      ...(this.#options.incarnation === undefined ? {} : { heard }),
    };
  }

  /**
   * Starts a linearizable read tagged `context` (leader only). The read shows
   * up in a later ready's `reads` once a quorum confirmed this node is still
   * the leader; the service may answer it once it has applied `index`.
   */
  readIndex(context: number): Refusal | undefined {
    if (this.#lead === undefined) return { reason: "not-leader", leader: this.#leader };
    this.#lead.readIndex(context);
    return undefined;
  }

  /** Hands leadership to `to` (leader only): catch it up, then tell it to campaign. */
  transferLeadership(to: NodeId): Refusal | undefined {
    if (this.#lead === undefined) return { reason: "not-leader", leader: this.#leader };
    if (to === this.id) return undefined;
    if (!this.#log.membership().voters.includes(to)) {
      return { reason: "invalid", leader: this.#leader, detail: `${to} is not a voter` };
    }
    this.#lead.transfer(to);
    return undefined;
  }

  /**
   * What a snapshot through `index` would say: its term and the membership
   * then. For an index from the snapshot's to the last applied.
   */
  snapshotMeta(index: number): SnapshotMeta {
    invariant(
      index >= this.#log.snapshotIndex && index <= this.#applied,
      `no snapshot meta at ${index}: outside ${this.#log.snapshotIndex}..${this.#applied}`,
    );
    return {
      index,
      term: this.#log.term(index)!,
      membership: this.#log.membershipAt(index),
      membershipIndex: this.#log.membershipIndexAt(index),
    };
  }

  /**
   * The service took a snapshot of its state through `index` (which it has
   * applied): drop the log up to there. `data` is empty for a service whose
   * state is stored (it streams its state itself: `RaftNodeOptions.snapshotSource`).
   */
  compact(index: number, data: Uint8Array): void {
    invariant(
      index <= this.#applied,
      `snapshot at ${index} is beyond the applied index ${this.#applied}`,
    );
    if (index <= this.#log.snapshotIndex) return;
    const meta = this.snapshotMeta(index);
    this.#log.compact(index);
    this.#snapshot = { meta, data };
    this.#pendingSnapshot = { snapshot: this.#snapshot, install: false, resetLog: false };
  }

  /**
   * Reports that `peer`'s process is gone (every connection from it closed,
   * as when it crashed). A follower whose leader that is stops honouring
   * the leader's lease and campaigns within a few ticks (the first survivor
   * by id after one), instead of after a whole election timeout. Only with `preVote`: the campaign starts
   * with a PreVote, which a leader that is in fact alive survives (it and
   * the followers that still hear from it refuse), so a wrong report costs
   * a round of messages, never a term. A heartbeat from the leader restores
   * the usual timeout.
   */
  peerGone(peer: NodeId): void {
    if (!this.#options.preVote || this.#role !== "follower" || this.#leader !== peer) return;
    this.#leader = null;
    // The survivors all saw the leader go at about the same moment: each
    // waits by its place among them (1, 3, 5... ticks), two ticks apart, so
    // that they do not campaign at once and split the vote (at random waits
    // of 1-2 ticks one failover in five split, in measurement).
    const rank = this.#log.membership().voters.filter((v) => v !== peer).indexOf(this.id);
    const wait = Math.min(1 + 2 * Math.max(0, rank), this.#randomizedTimeout);
    this.#electionElapsed = Math.max(this.#electionElapsed, this.#randomizedTimeout - wait);
    invariant(this.#electionElapsed >= 0, "the early election wait went below zero");
  }

  /** Reports that a message to `peer` could not be delivered. */
  reportUnreachable(peer: NodeId, type: Message["type"]): void {
    this.#lead?.unreachable(peer, type);
  }

  /**
   * Feeds a message from a peer into the state machine. With a `requestId`
   * its answers come out in the ready's `replies` under that id (for a
   * driver that carries them back on the request's RPC), else in `messages`.
   */
  step(m: Message, options: { requestId?: number } = {}): void {
    if (m.to !== this.id) return;
    const { requestId } = options;
    if (!this.#countable(m)) return;
    if (m.inc !== undefined && this.#lead !== undefined && this.#heard.get(m.from) !== m.inc) {
      this.#heard.set(m.from, m.inc);
      if (m.joined === true) this.#heardJoined.add(m.from);
      else this.#heardJoined.delete(m.from);
    }
    const request = requestId === undefined ? undefined : { id: requestId, from: m.from };
    this.#outbox.answering(request, () => this.#stepTerm(m));
  }

  // ---- folder identities (CoreOptions.incarnation) ----

  /**
   * Whether an answer (a vote, an acknowledgement) may count: one from a
   * voter the latest membership binds must come from that folder, and one
   * from an unbound voter (a founding member not bound yet) from a founding
   * folder, not one that joined since. Learners' answers count (for their
   * catch-up). Requests are always taken: a leader elected in its own
   * membership may be one this node's log does not know yet, and following
   * it is safe.
   */
  #countable(m: Message): boolean {
    if (
      m.type !== "voteResp" && m.type !== "appendResp" && m.type !== "heartbeatResp" &&
      m.type !== "snapshotResp"
    ) return true;
    const membership = this.#log.membership();
    if (membership.bindings === undefined && m.joined !== true) return true; // nothing bound
    const bound = membership.bindings?.[m.from];
    if (bound !== undefined) return bound === m.inc;
    return m.joined !== true || !membership.voters.includes(m.from);
  }

  /** The incarnation `node` last spoke as (this node's own for itself), if known. */
  #heardAs(node: NodeId): string | undefined {
    return node === this.id ? this.#options.incarnation : this.#heard.get(node);
  }

  /**
   * A leader binds the voters it has heard from that its membership does
   * not bind yet (founding voters), in a membership entry of its own, once
   * it may propose one (see {@linkcode nextMembership}).
   */
  #bindHeardVoters(): void {
    if (this.#lead?.transferee !== null) return;
    // Only founding folders: a joining one is bound by the change that makes it a voter.
    const next = bindVoters(
      this.#changeContext((node) => this.#heardJoined.has(node) ? undefined : this.#heardAs(node)),
    );
    if (next !== undefined) this.#appendOwn({ kind: "membership", membership: next });
  }

  /**
   * Whether this folder may campaign as its node id: not while its
   * membership binds the id to another folder, and a joining folder not
   * before its membership binds the id to it (its log may still name an
   * earlier folder of the id, or the id unbound, as a voter). It votes
   * regardless, as Raft has a server that was added before it knows it
   * (dissertation §4.2.1): the candidate decides whether the vote counts.
   */
  #isNamedFolder(): boolean {
    const inc = this.#options.incarnation;
    if (inc === undefined) return true;
    // A latest membership that removes this node does not bind it, and a voter of the committed
    // one may still campaign until the removal commits (`mayCampaign`): then that one's binding.
    const bound = this.#log.membership().bindings?.[this.id] ??
      this.#log.membershipAt(this.#commit).bindings?.[this.id];
    return bound === undefined ? !this.#options.joined : bound === inc;
  }

  #stepTerm(m: Message): void {
    if (m.term > this.#term) {
      const isVote = m.type === "vote";
      if (isVote && !m.transfer && this.#inLease()) return; // a live leader: ignore the disruptor
      if ((isVote && m.pre) || (m.type === "voteResp" && m.pre && m.granted)) {
        // PreVotes and granted PreVote answers carry a future term without changing ours.
      } else {
        const fromLeader = m.type === "append" || m.type === "heartbeat" || m.type === "snapshot";
        // A vote request only moves the term: the election timer runs on unless the vote is
        // granted (Raft's Figure 2). Reset by every stale candidate's new term, the node with the
        // longest log never timed out while two stale ones took turns (Raft random test seed
        // 163629773, without PreVote: no leader for good).
        const keepTimer = isVote && this.#role !== "leader";
        this.#becomeFollower(m.term, fromLeader ? m.from : null, keepTimer);
      }
    } else if (m.term < this.#term) {
      if (m.type === "append" || m.type === "heartbeat" || m.type === "snapshot") {
        // A stale leader: tell it the new term so it steps down.
        const refusal = { success: false, index: 0, conflictTerm: 0, conflictIndex: 0, seq: 0 };
        this.#send({ type: "appendResp", to: m.from, ...refusal });
      } else if (m.type === "vote") {
        this.#send({ type: "voteResp", to: m.from, pre: m.pre, granted: false });
      }
      return;
    }
    if (m.type === "vote") this.#handleVote(m);
    else if (this.#lead !== undefined) this.#lead.step(m);
    else if (this.#role === "follower") this.#stepFollower(m);
    else this.#stepCandidate(m);
  }

  // ---- output ----

  /** Whether {@linkcode RaftCore.ready} has anything to do. */
  hasReady(): boolean {
    if (this.#lead?.hasAppendsToSend()) return true;
    return this.#outbox.size > 0 || this.#log.stableIndex < this.#log.lastIndex() ||
      this.#pendingSnapshot !== undefined || this.#receiver.hasChunks ||
      this.#reads.hasReady() || this.#commit > this.#applied ||
      !sameHardState(this.#persisted, this.#hardState());
  }

  /**
   * Takes everything the driver must do now (see {@linkcode Ready}), and
   * assumes it will be done: entries count as persisted and committed
   * entries as applied.
   */
  ready(): Ready {
    this.#lead?.sendAppends();
    const hs = this.#hardState();
    const rd: Ready = {
      entries: this.#log.unstable(),
      ...this.#outbox.take(),
      committed: [],
      reads: this.#reads.takeReady(),
      installSnapshot: false,
      resetLog: false,
      lastIndex: this.#log.lastIndex(),
      lastTerm: this.#log.lastTerm(),
    };
    if (!sameHardState(hs, this.#persisted)) {
      rd.hardState = hs;
      this.#persisted = hs;
    }
    if (this.#receiver.hasChunks) rd.streamed = this.#receiver.take();
    if (this.#pendingSnapshot !== undefined) {
      rd.snapshot = this.#pendingSnapshot.snapshot;
      rd.installSnapshot = this.#pendingSnapshot.install;
      rd.resetLog = this.#pendingSnapshot.resetLog;
      this.#pendingSnapshot = undefined;
      if (rd.installSnapshot) this.#options.observer?.installed?.(this.id, rd.snapshot.meta);
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
      this.#options.observer?.applied?.(this.id, rd.committed);
    }
    invariant(this.#applied <= this.#commit, `applied ${this.#applied} > commit ${this.#commit}`);
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
    this.#lead?.persisted(this.#log.durableIndex);
  }

  // ---- elections ----

  #campaign(kind: "pre" | "real", transfer: boolean): void {
    if (kind === "real") {
      this.#setTerm(this.#term + 1);
      this.#vote = this.id;
    }
    this.#role = kind === "pre" ? "precandidate" : "candidate";
    this.#leader = null;
    this.#votes = new Map([[this.id, true]]);
    this.#resetElectionTimeout();
    if (this.#tally() === "won") {
      this.#afterWin(kind);
      return;
    }
    const term = kind === "pre" ? this.#term + 1 : this.#term;
    const [lastIndex, lastTerm] = [this.#log.lastIndex(), this.#log.lastTerm()];
    const request = { type: "vote", from: this.id, term, pre: kind === "pre", transfer } as const;
    for (const to of this.#log.membership().voters) {
      if (to !== this.id) this.#outbox.push({ ...request, to, lastIndex, lastTerm });
    }
  }

  #afterWin(kind: "pre" | "real"): void {
    if (kind === "pre") this.#campaign("real", false);
    else this.#becomeLeader();
  }

  #handleVote(m: VoteMessage): void {
    const canVote = this.#vote === m.from || (this.#vote === null && this.#leader === null) ||
      (m.pre && m.term > this.#term);
    if (!canVote || !this.#log.isUpToDate(m.lastIndex, m.lastTerm)) {
      this.#send({ type: "voteResp", to: m.from, pre: m.pre, granted: false });
      return;
    }
    // Answered in the term asked about: a PreVote's is one this node has not reached.
    const granted = { type: "voteResp", to: m.from, pre: m.pre, granted: true } as const;
    this.#outbox.push({ ...granted, from: this.id, term: m.term });
    if (!m.pre) {
      this.#electionElapsed = 0;
      this.#vote = m.from;
    }
  }

  #stepCandidate(m: Message): void {
    if (m.type === "voteResp") {
      if (m.pre !== (this.#role === "precandidate")) return;
      this.#votes.set(m.from, m.granted);
      const outcome = this.#tally();
      if (outcome === "won") this.#afterWin(m.pre ? "pre" : "real");
      else if (outcome === "lost") this.#becomeFollower(this.#term, null);
    } else if (m.type === "append" || m.type === "heartbeat" || m.type === "snapshot") {
      // A leader of this term exists.
      this.#becomeFollower(this.#term, m.from);
      this.#stepFollower(m);
    }
  }

  #tally(): "won" | "lost" | "pending" {
    return tallyVotes(this.#votes, this.#log.membership().voters);
  }

  #becomeFollower(term: number, leader: NodeId | null, keepTimer = false): void {
    const wasLeader = this.#role === "leader";
    if (term > this.#term) {
      this.#setTerm(term);
      this.#vote = null;
    }
    this.#role = "follower";
    this.#leader = leader;
    this.#lead?.depose();
    this.#lead = undefined;
    if (!keepTimer) this.#resetElectionTimeout();
    if (wasLeader) this.#reads.reset();
  }

  #becomeLeader(): void {
    invariant(this.#role === "candidate", `became leader from ${this.#role}`);
    invariant(!this.#leaderOfTerm.get(this.#term), `became leader twice in term ${this.#term}`);
    this.#leaderOfTerm.clear();
    this.#leaderOfTerm.set(this.#term, true);
    this.#role = "leader";
    this.#leader = this.id;
    this.#electionElapsed = 0;
    this.#lead = new Leader(this.#leaderHost());
    this.#heard.clear();
    this.#heardJoined.clear();
    this.#options.observer?.leader?.(this.id, this.#term);
    if (this.#options.leaderNoop) this.#appendOwn({ kind: "noop" });
    else this.#lead.maybeCommit();
  }

  #setTerm(term: number): void {
    invariant(term >= this.#term, `term went back from ${this.#term} to ${term}`);
    this.#term = term;
  }

  #resetElectionTimeout(): void {
    this.#electionElapsed = 0;
    this.#randomizedTimeout = this.#options.electionTicks +
      this.#random.int(this.#options.electionTicks);
  }

  #promotable(): boolean {
    return this.#log.membership().voters.includes(this.id);
  }

  #mayCampaign(): boolean {
    // A log that ends below an index the cluster committed may hold a stale membership.
    const floor = this.#options.campaignAfter?.() ?? 0;
    return this.#log.lastIndex() >= floor && this.#isNamedFolder() &&
      mayCampaign(this.id, this.#log, { commit: this.#commit });
  }

  /** A follower that heard from a leader within the election timeout refuses to help depose it. */
  #inLease(): boolean {
    return this.#options.checkQuorum && this.#leader !== null &&
      this.#electionElapsed < this.#options.electionTicks;
  }

  // ---- leader ----

  #leaderHost(): LeaderHost {
    return {
      id: this.id,
      log: this.#log,
      reads: this.#reads,
      options: this.#options,
      term: () => this.#term,
      commit: () => this.#commit,
      snapshot: () => this.#snapshot,
      send: (m) => this.#send(m),
      dropHeartbeats: (peer) => this.#outbox.dropHeartbeats(peer),
      commitTo: (index) => this.#commitTo(index),
    };
  }

  #appendOwn(fields: DistributiveOmit<Entry, "index" | "term">): { index: number; term: number } {
    invariant(
      this.#role === "leader" && this.#lead !== undefined,
      `${this.id} appended its own entry as ${this.#role}`,
    );
    invariant(
      fields.kind !== "membership" || this.#committedInTerm(),
      `leader ${this.id} appended a membership entry before committing in its term ${this.#term}`,
    );
    const entry: Entry = { index: this.#log.lastIndex() + 1, term: this.#term, ...fields };
    this.#log.append([entry]);
    this.#lead.appended(entry);
    if (entry.kind === "membership") {
      const { voters, learners } = entry.membership;
      for (const node of this.#heard.keys()) {
        if (voters.includes(node) || learners.includes(node)) continue;
        this.#heard.delete(node);
        this.#heardJoined.delete(node);
      }
    }
    return { index: entry.index, term: entry.term };
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

  // ---- follower ----

  #stepFollower(m: Message): void {
    if (m.type === "append" || m.type === "heartbeat" || m.type === "snapshot") {
      // Only the leader of this term sends these: it is alive.
      this.#electionElapsed = 0;
      this.#leader = m.from;
    }
    switch (m.type) {
      case "append":
      case "heartbeat": {
        const { answer, commit } = m.type === "append"
          ? acceptAppend(this.#log, m, this.#commit)
          : answerHeartbeat(this.#log, m);
        this.#commitTo(commit);
        this.#send(answer);
        return;
      }
      case "snapshot": {
        const { answer, installed } = receiveSnapshot(this.#receiver, this.#log, m, {
          commit: this.#commit,
        });
        if (installed !== undefined) {
          this.#snapshot = installed.snapshot;
          this.#commit = this.#applied = installed.snapshot.meta.index;
          this.#pendingSnapshot = { ...installed, install: true };
        }
        this.#send(answer);
        return;
      }
      case "timeoutNow":
        if (this.#mayCampaign()) this.#campaign("real", true);
        return;
    }
  }

  // ---- helpers ----

  #send(partial: Outgoing): void {
    this.#outbox.push({ ...partial, from: this.id, term: this.#term } as Message);
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.#commit };
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
