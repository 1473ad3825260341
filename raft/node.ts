/**
 * `RaftNode`: the driver that wires the pure {@linkcode RaftCore} to a
 * transport, a storage and a clock.
 *
 * Each turn it takes everything the core has ready, persists it in one
 * storage write, sends one message per peer and hands committed entries to
 * the service. No vote or answer leaves before what it depends on is
 * durable; a leader sends its new entries while it writes them, and counts
 * them toward a commit only once written.
 *
 * @module
 */
import type { Clock } from "../net/clock.ts";
import { ArgumentsError } from "../net/errors.ts";
import { type Logger, silentLogger } from "../net/logger.ts";
import type { MembershipChange } from "./confchange.ts";
import { RaftCore } from "./core.ts";
import {
  MembershipBusyError,
  NotLeaderError,
  RaftRequestError,
  RaftStoppedError,
} from "./errors.ts";
import type { Ready } from "./ready.ts";
import { parseMessage } from "./messages.ts";
import { feedSink, type SnapshotSink } from "./snapshot_install.ts";
import { invariant } from "./invariant.ts";
import type {
  Applied,
  RaftNodeOptions,
  RaftPeerEnd,
  RaftRpcHost,
  RaftStatus,
  RaftTransport,
} from "./node_options.ts";
import type { RaftStorage } from "./storage.ts";
import { SnapshotStreamer } from "./snapshot_stream.ts";
import {
  type IndexWaiter,
  loadStored,
  parseReplies,
  refusalError,
  sameHardState,
  settleIndexWaiter,
  streamHost,
} from "./node_helpers.ts";
import type { Entry, HardState, Message, NodeId, Role } from "./types.ts";
// Kept: outside a simulation the defaults are the real clock and a seeded
// random; inside one, a missing clock or random must fail loudly.
import { defaultClock, defaultRandom } from "../net/env.ts";

/** An RPC from a peer, waiting for the answers its message produced. */
interface Waiter {
  /** The id the request was stepped with: its answers come back under it. */
  requestId: number;
  resolve: (replies: Message[]) => void;
}

/** The answer each kind of request expects. */
const ANSWER: Partial<Record<Message["type"], Message["type"]>> = {
  vote: "voteResp",
  append: "appendResp",
  heartbeat: "heartbeatResp",
  snapshot: "snapshotResp",
};

/** Waits until a snapshot through `index` is durable. */
interface SnapshotWaiter {
  index: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * A Raft node: a replicated log a service puts its commands on.
 *
 * @example Three nodes on the simulated network
 * ```ts
 * import { MemoryStorage, RaftNode } from "@distkit/distkit/raft";
 * import { delay, RpcServer, simulate } from "@distkit/distkit/net";
 *
 * await simulate(async ({ net, clock, random }) => {
 *   const ids = ["a", "b", "c"];
 *   const nodes = await Promise.all(ids.map(async (id) => {
 *     const server = new RpcServer();
 *     net.addServer(id, server);
 *     return await RaftNode.start({
 *       id, peers: ids, server, transport: net.transportFor(id),
 *       storage: new MemoryStorage(), clock, random: random.fork(),
 *     });
 *   }));
 *   while (!nodes.some((n) => n.status().role === "leader")) await delay(50, { clock });
 *   const leader = nodes.find((n) => n.status().role === "leader")!;
 *   const { index } = await leader.propose("hello");
 *   await leader.waitApplied(index);
 *   await Promise.all(nodes.map((n) => n.stop()));
 * }, { seed: 1 });
 * ```
 */
export class RaftNode {
  readonly #id: NodeId;
  readonly #core: RaftCore;
  readonly #transport: RaftTransport;
  readonly #server: RaftRpcHost;
  readonly #logger: Logger;
  readonly #storage: RaftStorage;
  readonly #clock: Clock;
  readonly #tickMs: number;
  readonly #rpcTimeoutMs: number;
  readonly #electionMs: number;
  #ends = new Map<NodeId, RaftPeerEnd>();
  #waiters: Waiter[] = [];
  #requestSeq = 0;
  #flushScheduled = false;
  #flushing: Promise<void> | undefined;
  #stopped = false;
  #failure: Error | undefined;
  #tickTimer: { cancel(): void } | undefined;
  #applied: Applied[] = [];
  /** Items of `#applied` before this one have been taken (shift() was linear in a long backlog). */
  #appliedHead = 0;
  #appliedWake: (() => void) | undefined;
  #appliedIndex: number;
  #indexWaiters = new Map<number, IndexWaiter[]>();
  #readSeq = 0;
  #reads = new Map<number, { resolve: (index: number) => void; reject: (err: Error) => void }>();
  /** The highest snapshot index written to storage, and who waits for a higher one. */
  #durableSnapshotIndex = 0;
  #snapshotWaiters: SnapshotWaiter[] = [];
  #lastRole: Role = "follower";
  #lastLeader: { leader: NodeId; term: number } | undefined;
  #leaderChanges = 0;
  /** The latest hard state the core handed out, and the last one written. */
  #hardState: HardState = { term: 0, vote: null, commit: 0 };
  #savedHardState: HardState | undefined;
  /** Streams a stored state to followers that need a snapshot (with `snapshotSource`). */
  #streamer: SnapshotStreamer | undefined;
  /** Where a follower writes a stored state streamed to it (with `snapshotSink`). */
  readonly #sink: SnapshotSink | undefined;
  /** Aborted by stop: a streamed install waiting for the service gives up. */
  readonly #stopping = new AbortController();

  private constructor(options: RaftNodeOptions, core: RaftCore, appliedIndex: number) {
    this.#id = options.id;
    this.#core = core;
    this.#transport = options.transport;
    this.#server = options.server;
    this.#storage = options.storage;
    this.#logger = options.logger ?? silentLogger;
    this.#clock = options.clock ?? defaultClock("RaftNode");
    this.#tickMs = options.tickMs ?? 50;
    this.#electionMs = (options.electionTicks ?? 10) * this.#tickMs;
    this.#rpcTimeoutMs = options.rpcTimeoutMs ?? this.#electionMs;
    this.#appliedIndex = appliedIndex;
    this.#sink = options.snapshotSink;
    if (options.snapshotSource === undefined) return;
    this.#streamer = new SnapshotStreamer(streamHost(this.#id, options.snapshotSource, {
      chunkBytes: options.snapshotChunkBytes,
      windowBytes: options.snapshotWindowBytes,
      core,
      live: () => !this.#stopped,
      fail: (err) => this.#fail(err),
      logger: this.#logger,
      call: (m, options) => this.#call(m, options),
      kick: () => this.#kick(),
      step: (m) => this.#step(m),
    }));
  }

  /**
   * Loads the node's state from storage, registers the `Raft` service on the
   * server and starts ticking. A node with a stored snapshot first hands it
   * to the service through {@linkcode RaftNode.applied}.
   */
  static async start(options: RaftNodeOptions): Promise<RaftNode> {
    const { stored, snapshot, applied } = await loadStored(options);
    const core = new RaftCore(options.id, {
      hardState: stored.hardState,
      snapshot,
      entries: stored.entries,
      applied,
    }, {
      ...options,
      heartbeatTicks: options.heartbeatTicks ?? 2,
      streamSnapshots: options.snapshotSink !== undefined,
      random: options.random ?? defaultRandom("RaftNode"),
    });
    const node = new RaftNode(options, core, Math.max(applied, snapshot.meta.index));
    node.#hardState = stored.hardState;
    node.#savedHardState = stored.hardState;
    node.#durableSnapshotIndex = snapshot.meta.index;
    // A service whose state is durable through the snapshot has it already.
    if (snapshot.meta.index > applied) {
      node.#applied.push({
        type: "snapshot",
        index: snapshot.meta.index,
        term: snapshot.meta.term,
        data: snapshot.data,
      });
    }
    options.server.addService("Raft", {
      // The context is the RPC server's CallContext: `member` is who the handshake proved.
      Step: (args: unknown, context?: { member?: string }) => node.#receive(args, context?.member),
    });
    node.#scheduleTick();
    node.#kick();
    return node;
  }

  /** The node's id. */
  get id(): NodeId {
    return this.#id;
  }

  /** How many times this node has seen a new leader (itself included) since it started. */
  get leaderChanges(): number {
    return this.#leaderChanges;
  }

  /** The node's current state. */
  status(): RaftStatus {
    return {
      id: this.#id,
      term: this.#core.term,
      role: this.#core.role,
      leader: this.#core.leader,
      commitIndex: this.#core.commitIndex,
      appliedIndex: this.#appliedIndex,
      lastIndex: this.#core.lastIndex,
      snapshotIndex: this.#core.snapshotIndex,
      catchUpIndex: this.#streamer?.catchUpIndex(),
      membership: this.#core.membership,
      stopped: this.#stopped,
    };
  }

  /**
   * How far each member's log is known to match this node's (leader only;
   * empty on a follower): for deciding whether a learner has caught up.
   */
  matchIndexes(): Map<NodeId, number> {
    return this.#core.role === "leader" ? this.#core.matchIndexes() : new Map();
  }

  /**
   * The entries with indexes in [from, to] still in this node's log
   * (compacted ones are gone), for inspection and tests.
   */
  logEntries(from: number, to: number): Entry[] {
    return this.#core.entries(from, to);
  }

  /**
   * Tells the node that `peer`'s process is gone (every connection from it
   * closed): a follower whose leader that is campaigns within a few ticks
   * instead of waiting out the election timeout (PreVote first, so a leader
   * that is in fact alive is not deposed: see `RaftCore.peerGone`).
   */
  peerGone(peer: NodeId): void {
    if (this.#stopped) return;
    this.#core.peerGone(peer);
  }

  /**
   * Appends `command` to the log if this node is the leader. Resolves with
   * the entry's index and term at once; the command is committed when it
   * comes out of {@linkcode RaftNode.applied} at that index (see
   * {@linkcode RaftNode.waitApplied}).
   *
   * @throws {NotLeaderError} when this node is not the leader.
   */
  propose(command: unknown): Promise<{ index: number; term: number }> {
    this.#checkRunning();
    const result = this.#core.propose(command);
    if ("reason" in result) return Promise.reject(refusalError(this.#id, result));
    this.#kick();
    return Promise.resolve(result);
  }

  /**
   * Resolves once the entry at `index` has been handed to the service
   * (queued for {@linkcode RaftNode.applied}), or rejects if another entry
   * took its place (a new leader overwrote it). The service may not have
   * taken it from `applied()` yet: to answer a read from the service's
   * state, track what the service has applied instead.
   * Pass the `term` from {@linkcode RaftNode.propose} to detect that.
   */
  waitApplied(index: number, term?: number): Promise<void> {
    if (index <= this.#appliedIndex && term === undefined) return Promise.resolve();
    this.#checkRunning();
    return new Promise((resolve, reject) => {
      const list = this.#indexWaiters.get(index) ?? [];
      list.push({ term: term ?? -1, resolve, reject });
      this.#indexWaiters.set(index, list);
      if (index <= this.#appliedIndex) this.#settleIndexWaiters(index, undefined);
    });
  }

  /**
   * A linearizable read point (ReadIndex, without writing to the log):
   * resolves with an index once a quorum has confirmed this node is still
   * the leader. The service may answer the read once it has applied that
   * index.
   *
   * @throws {NotLeaderError} when this node is not (or stops being) the leader.
   */
  readIndex(): Promise<number> {
    this.#checkRunning();
    const context = ++this.#readSeq;
    const refusal = this.#core.readIndex(context);
    if (refusal) return Promise.reject(refusalError(this.#id, refusal));
    this.#kick();
    return new Promise((resolve, reject) => this.#reads.set(context, { resolve, reject }));
  }

  /** Items committed and not yet taken from {@linkcode RaftNode.applied}. */
  get appliedBacklog(): number {
    return this.#applied.length - this.#appliedHead;
  }

  /**
   * The committed commands and installed snapshots, in order, each exactly
   * once. Consume it from one place only; items wait in memory until taken.
   * After {@linkcode RaftNode.stop} the items already queued still come out
   * (they were committed), then the stream ends: a consumer that outlives a
   * crash sees the old node's last items after the next node has started.
   */
  async *applied(): AsyncGenerator<Applied, void, undefined> {
    while (true) {
      if (this.#appliedHead < this.#applied.length) {
        const item = this.#applied[this.#appliedHead++];
        if (this.#appliedHead === this.#applied.length) {
          this.#applied = [];
          this.#appliedHead = 0;
        } else if (this.#appliedHead >= 1024 && 2 * this.#appliedHead >= this.#applied.length) {
          this.#applied = this.#applied.slice(this.#appliedHead);
          this.#appliedHead = 0;
        }
        yield item;
        continue;
      }
      if (this.#stopped) return;
      await new Promise<void>((resolve) => (this.#appliedWake = resolve));
    }
  }

  /**
   * The service has a snapshot of its state through `index` (which it has
   * applied): the log up to there is replaced by it. Resolves once a
   * snapshot through `index` or later is durable (the node keeps serving
   * meanwhile, so a busy node is not held up). With a storage that prepares
   * snapshots, the data is written before the log is compacted.
   */
  snapshot(index: number, data: Uint8Array): Promise<void> {
    // A stopped node rejects (it does not throw): callers chain `.catch`.
    if (this.#stopped) {
      return Promise.reject(new RaftStoppedError(this.#id, { cause: this.#failure }));
    }
    const storage = this.#storage;
    if (storage.prepareSnapshot === undefined) return this.#compact(index, data);
    // The data is written first, beside the log's saves: written by the
    // save that switches to it, it held up every other write of the node.
    // A failed preparation leaves the writing to that save.
    return storage.prepareSnapshot(data).catch(() => {}).then(() => {
      this.#checkRunning();
      return this.#compact(index, data);
    });
  }

  /**
   * For a service whose state is durable through `index` (started with a
   * `snapshotSource`): the log up to there is dropped, without the state's
   * bytes; a follower that needs them is streamed the stored state.
   * Resolves once the compaction is durable.
   *
   * @throws {ArgumentsError} when the node has no `snapshotSource`.
   */
  compact(index: number): Promise<void> {
    if (this.#streamer === undefined) {
      return Promise.reject(
        new ArgumentsError(
          "compact() drops the log without a snapshot's bytes: start the node with a " +
            "snapshotSource (a service whose state is stored), or call snapshot(index, data)",
        ),
      );
    }
    if (this.#stopped) {
      return Promise.reject(new RaftStoppedError(this.#id, { cause: this.#failure }));
    }
    return this.#compact(index, new Uint8Array());
  }

  /**
   * Hands leadership to `to` and resolves once it is the leader this node
   * knows of.
   *
   * @throws {NotLeaderError} when this node is not the leader.
   * @throws {RaftRequestError} when the transfer did not complete within two election timeouts.
   */
  async transferLeadership(to: NodeId): Promise<void> {
    this.#checkRunning();
    const refusal = this.#core.transferLeadership(to);
    if (refusal) throw refusalError(this.#id, refusal);
    this.#kick();
    const deadline = this.#clock.now() + 2 * this.#electionMs;
    while (this.#core.leader !== to) {
      if (this.#clock.now() > deadline || this.#stopped) {
        throw new RaftRequestError(
          "transfer-timeout",
          `leadership transfer to ${to} did not complete; check that ${to} is up`,
        );
      }
      await this.#sleep();
    }
  }

  /**
   * Changes the membership by one server and resolves once the change is
   * committed. To add a voter safely, add it as a learner, wait until it has
   * caught up, then add it as a voter: {@linkcode RaftNode.addVoter} does that.
   *
   * @throws {NotLeaderError} when this node is not the leader.
   * @throws {MembershipBusyError} when the leader cannot take a change yet
   * (another is pending, or it has not committed in its term yet): nothing
   * was proposed; retry shortly.
   * @throws {RaftRequestError} when the change is invalid, or was overwritten
   * by a new leader before it committed.
   */
  async changeMembership(change: MembershipChange): Promise<void> {
    this.#checkRunning();
    const result = this.#core.proposeMembership(change);
    if ("reason" in result) throw refusalError(this.#id, result);
    this.#kick();
    await this.waitApplied(result.index, result.term);
  }

  /**
   * Adds `node` as a voter: first as a learner, then, once its log has
   * caught up with the commit index, as a voter. Resolves once it votes.
   * While the leader cannot take a change yet ({@linkcode MembershipBusyError})
   * it retries, until the timeout (default 20 election timeouts).
   */
  async addVoter(node: NodeId, options: { timeoutMs?: number } = {}): Promise<void> {
    const deadline = this.#clock.now() + (options.timeoutMs ?? 20 * this.#electionMs);
    if (!this.#core.membership.learners.includes(node)) {
      await this.#changeWhenReady({ type: "addLearner", node }, deadline);
    }
    while ((this.#core.matchIndexes().get(node) ?? 0) < this.#core.commitIndex) {
      if (this.#clock.now() > deadline) {
        throw new RaftRequestError(
          "catch-up-timeout",
          `learner ${node} did not catch up in time; check that it is running`,
        );
      }
      this.#checkRunning();
      await this.#sleep();
    }
    await this.#changeWhenReady({ type: "addVoter", node }, deadline);
  }

  /** {@linkcode RaftNode.changeMembership}, retried while the leader is busy, until `deadline`. */
  async #changeWhenReady(change: MembershipChange, deadline: number): Promise<void> {
    while (true) {
      try {
        return await this.changeMembership(change);
      } catch (err) {
        if (!(err instanceof MembershipBusyError) || this.#clock.now() > deadline) throw err;
      }
      await this.#sleep();
    }
  }

  /**
   * Stops the node: no more ticks, RPCs or newly applied items (those
   * already queued still come out of {@linkcode RaftNode.applied}, which
   * then ends). Waits for the storage write in progress, if any. Pending
   * requests reject with {@linkcode RaftStoppedError}.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#tickTimer?.cancel();
    this.#stopping.abort();
    this.#server.removeService("Raft");
    await this.#flushing?.catch(() => {});
    await this.#streamer?.stop();
    const err = new RaftStoppedError(this.#id, { cause: this.#failure });
    for (const w of this.#waiters.splice(0)) w.resolve([]);
    for (const r of this.#reads.values()) r.reject(err);
    this.#reads.clear();
    for (const list of this.#indexWaiters.values()) for (const w of list) w.reject(err);
    this.#indexWaiters.clear();
    for (const w of this.#snapshotWaiters.splice(0)) w.reject(err);
    this.#appliedWake?.();
  }

  // ---- internals ----

  #compact(index: number, data: Uint8Array): Promise<void> {
    this.#core.compact(index, data);
    this.#kick();
    if (index <= this.#durableSnapshotIndex) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#snapshotWaiters.push({ index, resolve, reject });
    });
  }

  /** Waits one tick. */
  #sleep(): Promise<void> {
    return new Promise((resolve) => this.#clock.setTimer(this.#tickMs, resolve));
  }

  #checkRunning(): void {
    if (this.#stopped) throw new RaftStoppedError(this.#id, { cause: this.#failure });
  }

  #scheduleTick(): void {
    this.#tickTimer = this.#clock.setTimer(this.#tickMs, () => {
      if (this.#stopped) return;
      try {
        this.#core.tick();
      } catch (err) {
        this.#fail(err as Error);
        return;
      }
      this.#noticeRoleChange();
      this.#kick();
      this.#scheduleTick();
    });
  }

  /** The RPC handler: step the message, and answer with the responses it produced once durable. */
  #receive(args: unknown, member: string | undefined): Promise<Message[]> {
    if (this.#stopped) return Promise.resolve([]);
    const message = parseMessage(args);
    if (message.to !== this.#id) return Promise.resolve([]);
    // A connection whose handshake proved it is one member speaks only for that member.
    if (member !== undefined && message.from !== member) {
      throw new ArgumentsError(
        `a message from ${JSON.stringify(message.from)} arrived on a connection of member ` +
          `${JSON.stringify(member)}; a node speaks only for itself`,
      );
    }
    const requestId = ++this.#requestSeq;
    this.#step(message, requestId);
    // A heartbeat's answer needs no write (unless the term changed, which
    // must be durable first): answered now, not after the write in progress,
    // which under heavy writes took longer than the leader's quorum check
    // and cost elections (issue 16).
    if (message.type === "heartbeat" && this.#core.term === this.#savedHardState?.term) {
      const answers = this.#core.takeReplies(requestId, "heartbeatResp");
      if (answers !== undefined) {
        this.#kick(); // the heartbeat may have moved the commit index: apply it now
        return Promise.resolve(answers);
      }
    }
    return new Promise((resolve) => {
      this.#waiters.push({ requestId, resolve });
      this.#kick();
    });
  }

  #step(message: Message, requestId?: number): void {
    try {
      this.#core.step(message, { requestId });
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  #kick(): void {
    if (this.#flushScheduled || this.#stopped) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      if (this.#flushing === undefined) {
        this.#flushing = this.#flush().finally(() => {
          this.#flushing = undefined;
          if (!this.#stopped && (this.#core.hasReady() || this.#waiters.length > 0)) this.#kick();
        });
      }
    });
  }

  async #flush(): Promise<void> {
    try {
      while (!this.#stopped && this.#core.hasReady()) {
        const waiters = this.#waiters.splice(0);
        const rd = this.#core.ready();
        // A leader whose term and vote are already durable replicates while
        // it writes its own log (Raft thesis §10.2.1): its own entries count
        // toward a commit only once `persisted` says they are written.
        const early = this.#core.role === "leader" && rd.snapshot === undefined &&
          rd.streamed === undefined && !this.#changesTermOrVote(rd);
        if (early) this.#dispatch(rd, waiters);
        await this.#persist(rd);
        if (this.#stopped) return; // a stopped (crashed) node says nothing more
        this.#core.persisted(rd.lastIndex, rd.lastTerm);
        if (!early) this.#dispatch(rd, waiters);
        this.#apply(rd);
        this.#noticeRoleChange();
      }
      for (const w of this.#waiters.splice(0)) w.resolve([]);
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  #changesTermOrVote(rd: Ready): boolean {
    const [saved, hs] = [this.#savedHardState, rd.hardState];
    return hs !== undefined &&
      (saved === undefined || hs.term !== saved.term || hs.vote !== saved.vote);
  }

  /**
   * Writes the ready's state. A change of the commit index alone is not
   * written on its own: the commit index need not be durable (a restarted
   * node learns it again, and storage clamps it to the stored log), so it
   * rides along with the next write that must happen. That keeps an fsync
   * off the commit path.
   */
  async #persist(rd: Ready): Promise<void> {
    // A streamed snapshot's chunks are written (its state switched) before Raft records it.
    if (rd.streamed) {
      const signal = this.#stopping.signal;
      await feedSink(this.#sink!, rd.streamed, { after: this.#appliedIndex, signal });
    }
    if (rd.hardState) this.#hardState = rd.hardState;
    const saved = this.#savedHardState;
    const hs = this.#hardState;
    const termOrVote = saved === undefined || hs.term !== saved.term || hs.vote !== saved.vote;
    if (!termOrVote && rd.entries.length === 0 && rd.snapshot === undefined) return;
    await this.#storage.save({
      hardState: sameHardState(hs, saved) ? undefined : hs,
      entries: rd.entries,
      snapshot: rd.snapshot,
      resetLog: rd.resetLog,
    });
    this.#savedHardState = hs;
    if (rd.snapshot) this.#snapshotSaved(rd.snapshot.meta.index);
  }

  /**
   * Answers ride back on the RPC whose request produced them, matched by
   * request id (so a lost reply loses exactly that request's answer);
   * everything else is a new RPC. Heartbeats, votes and answers go before
   * appends and snapshot chunks, so they never queue behind data on a
   * connection.
   */
  #dispatch(rd: Ready, waiters: Waiter[]): void {
    const replies = new Map<number, Message[]>();
    for (const { requestId, message } of rd.replies) {
      const list = replies.get(requestId);
      if (list === undefined) replies.set(requestId, [message]);
      else list.push(message);
    }
    for (const w of waiters) {
      w.resolve(replies.get(w.requestId) ?? []);
      replies.delete(w.requestId);
    }
    // An answer whose request is no longer waiting (none today) still goes out.
    for (const list of replies.values()) for (const m of list) this.#send(m);
    const data: Message[] = [];
    for (const m of rd.messages) {
      if (m.type === "append" || m.type === "snapshot") data.push(m);
      else this.#send(m);
    }
    for (const m of data) this.#send(m);
  }

  /** Sends `m` to its peer; resolves with the parsed answers (a malformed one is as good as lost). */
  #call(m: Message, options: { queued: number } = { queued: 0 }): Promise<Message[]> {
    let end = this.#ends.get(m.to);
    if (end === undefined) {
      end = this.#transport.connect(m.to);
      this.#ends.set(m.to, end);
    }
    // A snapshot chunk behind others is answered once they are written too. A vote's answer counts
    // as long as the campaign that asked is open, up to the longest election timeout: given up
    // sooner, a granted vote is lost to both sides for the term, and with answers that take longer
    // than the RPC deadline no campaign won for 10 s (Figure 8 (unreliable), seed 1502721797).
    const timeoutMs = m.type === "vote"
      ? Math.max(this.#rpcTimeoutMs, 2 * this.#electionMs)
      : this.#rpcTimeoutMs * (1 + options.queued);
    return end.call<unknown>("Raft.Step", m, { timeoutMs }).then(parseReplies);
  }

  #send(m: Message): void {
    // A data-less snapshot is a stored state's compaction: the streamer sends the state itself.
    if (m.type === "snapshot" && m.size === 0 && m.meta.index > 0 && this.#streamer) {
      this.#streamer.offer(m);
      return;
    }
    this.#call(m).then(
      (replies) => {
        if (this.#stopped) return;
        let answered = false;
        for (const parsed of replies) {
          if (parsed.type === ANSWER[m.type] || parsed.type === "appendResp") answered = true;
          this.#step(parsed);
        }
        // A request that got no answer is as good as lost: let the core resend.
        if (!answered) this.#core.reportUnreachable(m.to, m.type);
        this.#kick();
      },
      () => {
        if (this.#stopped) return;
        this.#core.reportUnreachable(m.to, m.type);
        this.#kick();
      },
    );
  }

  /**
   * Hands the ready's installed snapshot and committed entries to the
   * service. What one node hands out only grows: a snapshot beyond
   * everything handed out so far, then each entry right after the one
   * before (the service applies each index once per start of the node).
   */
  #apply(rd: Ready): void {
    if (rd.snapshot && rd.installSnapshot) {
      const meta = rd.snapshot.meta;
      invariant(
        meta.index > this.#appliedIndex,
        `installed snapshot at ${meta.index} is not beyond the applied index ${this.#appliedIndex}`,
      );
      this.#push({ type: "snapshot", index: meta.index, term: meta.term, data: rd.snapshot.data });
      this.#appliedIndex = meta.index;
      for (const index of [...this.#indexWaiters.keys()]) {
        if (index <= meta.index) this.#settleIndexWaiters(index, undefined);
      }
    }
    for (const e of rd.committed) {
      invariant(
        e.index === this.#appliedIndex + 1,
        `committed entry ${e.index} does not follow the applied index ${this.#appliedIndex}`,
      );
      this.#push(
        e.kind === "command"
          ? { type: "command", index: e.index, term: e.term, command: e.command }
          : { type: "internal", index: e.index, term: e.term },
      );
      this.#appliedIndex = e.index;
      if (this.#indexWaiters.has(e.index)) this.#settleIndexWaiters(e.index, e.term);
    }
    for (const read of rd.reads) {
      this.#reads.get(read.context)?.resolve(read.index);
      this.#reads.delete(read.context);
    }
  }

  #snapshotSaved(index: number): void {
    this.#durableSnapshotIndex = Math.max(this.#durableSnapshotIndex, index);
    const still: SnapshotWaiter[] = [];
    for (const w of this.#snapshotWaiters) {
      if (w.index <= this.#durableSnapshotIndex) w.resolve();
      else still.push(w);
    }
    this.#snapshotWaiters = still;
  }

  #push(item: Applied): void {
    this.#applied.push(item);
    const wake = this.#appliedWake;
    this.#appliedWake = undefined;
    wake?.();
  }

  /** Settles the waiters for `index`; `term` undefined means the outcome is covered by a snapshot. */
  #settleIndexWaiters(index: number, term: number | undefined): void {
    const list = this.#indexWaiters.get(index);
    if (list === undefined) return;
    this.#indexWaiters.delete(index);
    for (const w of list) settleIndexWaiter(w, index, term);
  }

  /** A leader that steps down fails its pending reads: they can no longer be confirmed. */
  #noticeRoleChange(): void {
    const role = this.#core.role;
    const leader = this.#core.leader;
    const last = this.#lastLeader;
    if (leader !== null && (last?.leader !== leader || last.term !== this.#core.term)) {
      this.#lastLeader = { leader, term: this.#core.term };
      this.#leaderChanges++;
    }
    if (this.#lastRole === "leader" && role !== "leader") {
      const err = new NotLeaderError(this.#id, this.#core.leader);
      for (const r of this.#reads.values()) r.reject(err);
      this.#reads.clear();
    }
    this.#lastRole = role;
  }

  #fail(err: Error): void {
    if (this.#stopped) return;
    this.#failure = err;
    this.#logger.log("error", `Raft node ${this.#id} stopped: ${err.message}`, { node: this.#id });
    this.stop();
  }
}
