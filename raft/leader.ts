/**
 * What only a leader keeps: the progress of every member, heartbeats and
 * the quorum check, commits by counting matches, ReadIndex rounds, a
 * leadership transfer, and the appends and snapshot chunks it sends. The
 * core creates one when it wins an election and drops it when it steps
 * down (etcd keeps the same in `raft.go`'s leader half and `tracker/`).
 *
 * @module
 */
import type { ResolvedCoreOptions } from "./core_options.ts";
import { invariant } from "./invariant.ts";
import type { RaftLog } from "./log.ts";
import { Progress } from "./progress.ts";
import type { ReadOnly } from "./read_only.ts";
import { nextSnapshotChunk } from "./snapshot_send.ts";
import type {
  AppendResponse,
  Entry,
  HeartbeatResponse,
  Message,
  NodeId,
  Snapshot,
} from "./types.ts";

/** A message as the core sends it: it fills in `from` and `term`. */
export type Outgoing = DistributiveOmit<Message, "from" | "term">;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * What the leader needs of its core: the log, the ReadIndex state, and a
 * few of the core's state and actions.
 */
export interface LeaderHost {
  /** This node's id. */
  readonly id: NodeId;
  /** The node's log. */
  readonly log: RaftLog;
  /** The node's ReadIndex state (kept across terms by the core). */
  readonly reads: ReadOnly;
  /** The core's tuning. */
  readonly options: ResolvedCoreOptions;
  /** The current term. */
  term(): number;
  /** The commit index. */
  commit(): number;
  /** The latest snapshot, if any. */
  snapshot(): Snapshot | undefined;
  /** Queues a message. */
  send(m: Outgoing): void;
  /** Drops the heartbeats to `peer` waiting in the outbox (a newer one follows). */
  dropHeartbeats(peer: NodeId): void;
  /** Moves the commit index (the core may step down: see {@linkcode Leader.depose}). */
  commitTo(index: number): void;
}

/**
 * The leader half of a Raft node, for one term.
 */
export class Leader {
  readonly #host: LeaderHost;
  readonly #progress = new Map<NodeId, Progress>();
  #heartbeatElapsed = 0;
  #transferee: NodeId | null = null;
  #transferElapsed = 0;

  /**
   * Starts leading: tracks every member of the latest membership.
   *
   * @param host The core.
   */
  constructor(host: LeaderHost) {
    this.#host = host;
    for (const peer of this.#members()) this.#addProgress(peer);
  }

  /** The node a leadership transfer is under way to, or null. */
  get transferee(): NodeId | null {
    return this.#transferee;
  }

  /** The match index of each member. */
  matchIndexes(): Map<NodeId, number> {
    return new Map([...this.#progress].map(([id, pr]) => [id, pr.match]));
  }

  /** The core stepped down: nothing more is sent for this leadership. */
  depose(): void {
    this.#transferee = null;
    this.#progress.clear();
  }

  /**
   * One tick: gives up a transfer that took an election timeout, checks
   * (when `electionDue`) that a quorum was heard from, and sends heartbeats
   * when due. Returns false when the leader must step down.
   */
  tick(electionDue: boolean): boolean {
    const { electionTicks, checkQuorum, heartbeatTicks } = this.#host.options;
    this.#heartbeatElapsed++;
    if (this.#transferee !== null && ++this.#transferElapsed >= electionTicks) {
      this.#transferee = null; // the transfer did not complete in time: give up on it
    }
    if (electionDue && checkQuorum && !this.#quorumActive()) return false;
    if (this.#heartbeatElapsed >= heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#broadcastHeartbeat(0);
    }
    return true;
  }

  /** The leader appended its own entry. */
  appended(entry: Entry): void {
    // A new membership takes effect when appended: track the right peers.
    if (entry.kind === "membership") this.#syncMembers();
    const self = this.#progress.get(this.#host.id);
    // Our own entry counts toward a commit once persisted (see `persisted`).
    if (self) self.next = entry.index + 1;
  }

  /** The leader's own log is durable through `index`: it counts toward a commit. */
  persisted(index: number): void {
    const self = this.#progress.get(this.#host.id);
    if (self !== undefined && index > self.match) {
      self.match = index;
      this.maybeCommit();
    }
  }

  /** Starts (or, until this leader commits in its term, holds) the read tagged `context`. */
  readIndex(context: number): void {
    // Nothing of this term committed yet: the commit index may be stale (§6.4).
    if (!this.committedInTerm()) this.#host.reads.defer(context);
    else this.#startRead(context);
  }

  /** Hands leadership to the voter `to`: catch it up, then tell it to campaign. */
  transfer(to: NodeId): void {
    this.#transferee = to;
    this.#transferElapsed = 0;
    const pr = this.#progress.get(to)!;
    if (pr.match === this.#host.log.lastIndex()) this.#host.send({ type: "timeoutNow", to });
  }

  /** A message to `peer` was not delivered. */
  unreachable(peer: NodeId, type: Message["type"]): void {
    this.#progress.get(peer)?.unreachable(type);
  }

  /** Whether an entry of the current term is committed (so the commit index is this leader's own). */
  committedInTerm(): boolean {
    return this.#host.log.term(this.#host.commit()) === this.#host.term();
  }

  /** Takes a message of this term from a peer. */
  step(m: Message): void {
    const pr = this.#progress.get(m.from);
    const term = this.#host.term();
    if (pr === undefined) {
      invariant(m.type !== "append" && m.type !== "heartbeat", `two leaders in term ${term}`);
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
        if (pr.snapshotAnswered(m)) this.maybeCommit();
        return;
      case "append":
      case "heartbeat":
      case "snapshot":
        invariant(false, `two leaders in term ${term}: ${this.#host.id} and ${m.from}`);
    }
  }

  /** Commits the highest entry of this term a quorum has (Figure 8: only those count). */
  maybeCommit(): void {
    const { log } = this.#host;
    const matches = log.membership().voters.map((v) => this.#progress.get(v)?.match ?? 0)
      .sort((a, b) => b - a);
    const n = matches[this.#quorum() - 1];
    if (n > this.#host.commit() && log.term(n) === this.#host.term()) {
      this.#host.commitTo(n);
      for (const ctx of this.#host.reads.takeDeferred()) this.#startRead(ctx);
    }
  }

  /** Whether an append or snapshot chunk is waiting to go to some member. */
  hasAppendsToSend(): boolean {
    const last = this.#host.log.lastIndex();
    for (const [id, pr] of this.#progress) {
      if (id === this.#host.id) continue;
      if (pr.state === "snapshot") {
        if (!pr.snapshotInflight) return true;
      } else if (!pr.paused() && (pr.next <= last || (pr.state === "probe" && pr.match < last))) {
        return true;
      }
    }
    return false;
  }

  /** Sends every member what it may be sent now. */
  sendAppends(): void {
    for (const [id, pr] of this.#progress) if (id !== this.#host.id) this.#sendAppend(id, pr);
  }

  #members(): NodeId[] {
    const m = this.#host.log.membership();
    return [...m.voters, ...m.learners];
  }

  #addProgress(peer: NodeId): void {
    const { log, options } = this.#host;
    const last = log.lastIndex();
    this.#progress.set(
      peer,
      new Progress({
        match: peer === this.#host.id ? Math.min(log.durableIndex, last) : 0,
        next: last + 1,
        maxInflight: options.maxInflight,
        maxInflightBytes: options.maxInflightBytes,
      }),
    );
  }

  #syncMembers(): void {
    const members = new Set(this.#members());
    for (const id of [...this.#progress.keys()]) if (!members.has(id)) this.#progress.delete(id);
    for (const id of members) if (!this.#progress.has(id)) this.#addProgress(id);
    if (this.#transferee !== null && !members.has(this.#transferee)) this.#transferee = null;
  }

  #handleAppendResponse(m: AppendResponse, pr: Progress): void {
    if (!m.success) {
      pr.refused(m, (term) => this.#host.log.lastIndexOfTerm(term));
      return;
    }
    if (!pr.acknowledged(m.index)) return;
    this.maybeCommit(); // may depose this leader, which clears the transferee
    if (m.from === this.#transferee && pr.match === this.#host.log.lastIndex()) {
      this.#host.send({ type: "timeoutNow", to: m.from });
    }
  }

  #handleHeartbeatResponse(m: HeartbeatResponse, pr: Progress): void {
    const { log, options } = this.#host;
    pr.heartbeatAnswered(m.lastIndex, options.electionTicks / options.heartbeatTicks);
    const last = log.lastIndex();
    if (pr.state === "replicate" && pr.match < last && pr.next > last) {
      // Everything was sent but not all acknowledged: an append may have been
      // lost just before the log went idle. An empty append at the end shows
      // it (the follower refuses it if it lacks `last`, and the peer is probed).
      this.#host.send({
        type: "append",
        to: m.from,
        prevIndex: last,
        prevTerm: log.term(last)!,
        entries: [],
        commit: this.#host.commit(),
        seq: ++pr.seq,
      });
    }
    if (m.context === 0 || !log.membership().voters.includes(m.from)) return;
    this.#host.reads.acknowledge(m.from, m.context, this.#quorum());
  }

  #quorum(): number {
    return Math.floor(this.#host.log.membership().voters.length / 2) + 1;
  }

  #quorumActive(): boolean {
    let active = 0;
    for (const v of this.#host.log.membership().voters) {
      const pr = this.#progress.get(v);
      if (v === this.#host.id || pr?.active) active++;
    }
    for (const pr of this.#progress.values()) pr.active = false;
    return active >= this.#quorum();
  }

  #startRead(context: number): void {
    const { id, log, reads } = this.#host;
    const acks = log.membership().voters.includes(id) ? [id] : [];
    const round = reads.start({
      context,
      index: this.#host.commit(),
      acks,
      quorum: this.#quorum(),
    });
    if (round !== undefined) this.#broadcastHeartbeat(round);
  }

  #broadcastHeartbeat(context: number): void {
    // Reads started in this turn share the heartbeat of the latest round.
    if (context === 0) context = this.#host.reads.round;
    const commit = this.#host.commit();
    for (const [id, pr] of this.#progress) {
      if (id === this.#host.id) continue;
      // Only the latest heartbeat to a peer is worth sending. Answers are
      // kept apart from the outbox, so dropping a message moves no answer.
      this.#host.dropHeartbeats(id);
      this.#host.send({ type: "heartbeat", to: id, commit: Math.min(pr.match, commit), context });
    }
  }

  #sendAppend(to: NodeId, pr: Progress): void {
    if (pr.state === "snapshot") {
      this.#sendSnapshotChunk(to, pr);
      return;
    }
    if (pr.paused()) return;
    const { log, options } = this.#host;
    const last = log.lastIndex();
    if (pr.next > last && !(pr.state === "probe" && pr.match < last)) return;
    const prevIndex = pr.next - 1;
    const prevTerm = log.term(prevIndex);
    if (prevTerm === undefined) {
      // The entries this follower needs are compacted: send the snapshot.
      const snapshot = this.#host.snapshot();
      invariant(snapshot !== undefined, `no snapshot covers index ${prevIndex}`);
      pr.becomeSnapshot(snapshot.meta.index);
      this.#sendSnapshotChunk(to, pr);
      return;
    }
    const { entries, bytes } = log.batch(pr.next, {
      maxEntries: options.maxAppendEntries,
      maxBytes: options.maxAppendBytes,
    });
    const commit = this.#host.commit();
    this.#host.send({ type: "append", to, prevIndex, prevTerm, entries, commit, seq: ++pr.seq });
    pr.sentEntries(prevIndex + entries.length, bytes);
  }

  #sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const snapshot = this.#host.snapshot();
    if (snapshot === undefined) return;
    const chunkBytes = this.#host.options.snapshotChunkBytes;
    const message = nextSnapshotChunk(snapshot, pr, { to, chunkBytes });
    if (message !== undefined) this.#host.send(message);
  }
}
