/**
 * The Raft algorithm as a pure state machine, in the style of etcd's raft:
 * messages, ticks and proposals go in; what to persist, what to send and
 * what is committed come out of {@linkcode RaftCore.ready}. No I/O, timers or
 * hidden randomness: the same inputs give the same outputs.
 *
 * The parts live beside it: per-follower progress (`progress.ts`,
 * `inflights.ts`), ReadIndex state (`read_only.ts`), membership changes
 * (`confchange.ts`), snapshots in chunks (`snapshot_send.ts`,
 * `snapshot_receive.ts`), the log (`log.ts`).
 *
 * @module
 */
import type { Random } from "../net/random.ts";
import { type MembershipChange, nextMembership } from "./confchange.ts";
import { type CoreOptions, resolveCoreOptions, type ResolvedCoreOptions } from "./core_options.ts";
import type { Refusal } from "./errors.ts";
import { invariant } from "./invariant.ts";
import { RaftLog } from "./log.ts";
import { Leader, type LeaderHost } from "./leader.ts";
import { ReadOnly } from "./read_only.ts";
import type { InitialState, Ready, Reply } from "./ready.ts";
import { SnapshotReceiver } from "./snapshot_receive.ts";
import type {
  AppendMessage,
  Entry,
  HardState,
  Membership,
  Message,
  NodeId,
  Role,
  Snapshot,
  SnapshotMessage,
  VoteMessage,
} from "./types.ts";

const EMPTY_MEMBERSHIP: Membership = { voters: [], learners: [] };

/** The kinds of message that answer another one. */
const RESPONSE_TYPES: ReadonlySet<Message["type"]> = new Set([
  "voteResp",
  "appendResp",
  "heartbeatResp",
  "snapshotResp",
]);

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
  #receiver = new SnapshotReceiver();

  #electionElapsed = 0;
  #randomizedTimeout = 0;
  #votes = new Map<NodeId, boolean>();
  /** The leader half, while this node leads. */
  #lead: Leader | undefined;
  #reads = new ReadOnly();
  #messages: Message[] = [];
  #replies: Reply[] = [];
  /** The request being stepped, when the driver tagged it: its answers go to `#replies`. */
  #request: { id: number; from: NodeId } | undefined;
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
    const meta = initial.snapshot?.meta ?? { index: 0, term: 0, membership: EMPTY_MEMBERSHIP };
    this.#snapshot = initial.snapshot;
    this.#log = new RaftLog(meta, initial.entries);
    const observer = this.#options.observer;
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
    const mine = this.#replies.filter((r) => r.requestId === requestId);
    if (mine.length === 0 || mine.some((r) => r.message.type !== type)) return undefined;
    this.#replies = this.#replies.filter((r) => r.requestId !== requestId);
    return mine.map((r) => r.message);
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
    const next = nextMembership(change, {
      current: this.#log.membership(),
      committedInTerm: this.#committedInTerm(),
      pending: this.#log.membershipIndex() > this.#commit,
    });
    if ("reason" in next) return { ...next, leader: this.#leader };
    return this.#appendOwn({ kind: "membership", membership: next });
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
    this.#lead?.unreachable(peer, type);
  }

  /**
   * Feeds a message from a peer into the state machine. With a `requestId`
   * its answers come out in the ready's `replies` under that id (for a
   * driver that carries them back on the request's RPC), else in `messages`.
   */
  step(m: Message, options: { requestId?: number } = {}): void {
    if (m.to !== this.id) return;
    this.#request = options.requestId === undefined
      ? undefined
      : { id: options.requestId, from: m.from };
    try {
      this.#stepTerm(m);
    } finally {
      this.#request = undefined;
    }
  }

  #stepTerm(m: Message): void {
    if (m.term > this.#term) {
      const isVote = m.type === "vote";
      if (isVote && !m.transfer && this.#inLease()) return; // a live leader: ignore the disruptor
      if ((isVote && m.pre) || (m.type === "voteResp" && m.pre && m.granted)) {
        // PreVotes and granted PreVote answers carry a future term without changing ours.
      } else {
        const fromLeader = m.type === "append" || m.type === "heartbeat" || m.type === "snapshot";
        this.#becomeFollower(m.term, fromLeader ? m.from : null);
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
    if (m.type === "vote") this.#handleVote(m);
    else if (this.#lead !== undefined) this.#lead.step(m);
    else if (this.#role === "follower") this.#stepFollower(m);
    else this.#stepCandidate(m);
  }

  // ---- output ----

  /** Whether {@linkcode RaftCore.ready} has anything to do. */
  hasReady(): boolean {
    if (this.#lead?.hasAppendsToSend()) return true;
    return this.#messages.length > 0 || this.#replies.length > 0 ||
      this.#log.stableIndex < this.#log.lastIndex() || this.#pendingSnapshot !== undefined ||
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
      messages: this.#messages,
      replies: this.#replies,
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
    this.#messages = [];
    this.#replies = [];
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
    for (const peer of this.#log.membership().voters) {
      if (peer === this.id) continue;
      const pre = kind === "pre";
      this.#emit({
        type: "vote",
        from: this.id,
        to: peer,
        term,
        pre,
        transfer,
        lastIndex,
        lastTerm,
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
    if (!canVote || !this.#log.isUpToDate(m.lastIndex, m.lastTerm)) {
      this.#send({ type: "voteResp", to: m.from, pre: m.pre, granted: false });
      return;
    }
    // Answered in the term asked about: a PreVote's is one this node has not reached.
    this.#emit({
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
    this.#lead?.depose();
    this.#lead = undefined;
    this.#resetElectionTimeout();
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
      dropHeartbeats: (peer) => {
        this.#messages = this.#messages.filter((m) => !(m.type === "heartbeat" && m.to === peer));
      },
      commitTo: (index) => this.#commitTo(index),
    };
  }

  #appendOwn(
    fields: { kind: "command"; command: unknown } | { kind: "noop" } | {
      kind: "membership";
      membership: Membership;
    },
  ): { index: number; term: number } {
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
    }
  }

  #handleAppend(m: AppendMessage): void {
    const answer = { type: "appendResp", to: m.from, seq: m.seq } as const;
    if (m.prevIndex < this.#commit) {
      // Everything up to our commit index matches the leader already.
      const index = this.#commit;
      this.#send({ ...answer, success: true, index, conflictTerm: 0, conflictIndex: 0 });
      return;
    }
    if (this.#log.matches(m.prevIndex, m.prevTerm)) {
      this.#log.appendAfterMatch(m.entries, this.#commit);
      const lastNew = m.prevIndex + m.entries.length;
      this.#commitTo(Math.min(m.commit, lastNew));
      this.#send({ ...answer, success: true, index: lastNew, conflictTerm: 0, conflictIndex: 0 });
      return;
    }
    const hint = this.#log.conflictHint(m.prevIndex);
    this.#send({ ...answer, success: false, index: m.prevIndex, ...hint });
  }

  #handleSnapshot(m: SnapshotMessage): void {
    if (m.meta.index <= this.#commit) {
      this.#send({ type: "snapshotResp", to: m.from, index: this.#commit, offset: 0, done: true });
      this.#receiver.reset();
      return;
    }
    const { answer, snapshot } = this.#receiver.receive(m);
    if (snapshot !== undefined) {
      const { meta } = snapshot;
      invariant(
        meta.index > this.#commit,
        `snapshot through ${meta.index} would move the commit index back from ${this.#commit}`,
      );
      const resetLog = !this.#log.restore(meta);
      this.#snapshot = snapshot;
      this.#commit = meta.index;
      this.#applied = meta.index;
      this.#pendingSnapshot = { snapshot, install: true, resetLog };
    }
    this.#send({ type: "snapshotResp", to: m.from, ...answer });
  }

  // ---- helpers ----

  #send(partial: DistributiveOmit<Message, "from" | "term">): void {
    this.#emit({ ...partial, from: this.id, term: this.#term } as Message);
  }

  /** Queues `m`: an answer to the tagged request being stepped goes to `#replies`. */
  #emit(m: Message): void {
    const request = this.#request;
    if (request !== undefined && m.to === request.from && RESPONSE_TYPES.has(m.type)) {
      this.#replies.push({ requestId: request.id, message: m });
    } else {
      this.#messages.push(m);
    }
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.#commit };
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
