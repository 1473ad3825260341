/**
 * `Replica`: one replica of any service whose state is a deterministic state
 * machine kept in step by a {@linkcode RaftNode}. The KV service, the shard
 * controller and the shard groups are all replicas with different machines.
 *
 * Writes go through the log and are answered once applied, with the result
 * the machine gave. Reads do not touch the log: the leader confirms with a
 * quorum that it still leads (ReadIndex) and waits until it has applied that
 * far, so a deposed leader never answers with stale state. The replica
 * snapshots the machine when the persisted Raft state reaches a limit, and
 * restores it at start and when the leader sends a snapshot.
 *
 * @module
 */
import { deadline, delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import { ArgumentsError } from "../net/errors.ts";
import { KvOverloadedError } from "./errors.ts";
import type { ServiceMethods } from "../net/rpc_server.ts";
import { type Applied, NotLeaderError, RaftNode, type RaftNodeOptions } from "../raft/mod.ts";
import { invariant } from "../raft/invariant.ts";
import { defaultClock } from "../net/env.ts";

/**
 * A deterministic state machine a {@linkcode Replica} applies committed
 * entries to. Every replica must give the same results for the same entries.
 *
 * @example
 * ```ts
 * import type { ReplicaMachine } from "@distkit/distkit/rsm";
 *
 * class Counter implements ReplicaMachine<number> {
 *   n = 0;
 *   apply(entry: unknown): number {
 *     return this.n += typeof entry === "number" ? entry : 0;
 *   }
 *   snapshot(): Uint8Array {
 *     return new TextEncoder().encode(String(this.n));
 *   }
 *   restore(bytes: Uint8Array): void {
 *     this.n = Number(new TextDecoder().decode(bytes));
 *   }
 * }
 * ```
 */
export interface ReplicaMachine<R> {
  /**
   * Applies a committed entry and returns the result for whoever proposed
   * it. The entry comes from the log as it was proposed, but check it
   * anyway (another version, a damaged log): the same verdict on every
   * replica.
   */
  apply(entry: unknown): R;
  /** The whole state, encoded. */
  snapshot(): Uint8Array;
  /**
   * Optional: the same bytes as `snapshot()` would give now, encoded a slice
   * at a time with `pause()` awaited in between, so a large state does not
   * hold up the replica's event loop. Used instead of `snapshot()` when given.
   */
  snapshotInSlices?(pause: () => Promise<void>): Promise<Uint8Array>;
  /** Replaces the whole state with one from {@linkcode ReplicaMachine.snapshot}. */
  restore(bytes: Uint8Array): void;
  /**
   * For an entry proposed here whose index a snapshot from the leader
   * covered: its result if the machine knows it applied (a deduplication
   * table), else undefined (the proposer is told to retry).
   */
  recall?(entry: unknown): R | undefined;
}

/**
 * Options of {@linkcode Replica.start}: those of the Raft node underneath,
 * plus the replica's own.
 *
 * @example
 * ```ts
 * import type { ReplicaOptions } from "@distkit/distkit/rsm";
 *
 * const extra: Partial<ReplicaOptions> = { maxRaftState: 1 << 20, requestTimeoutMs: 1000 };
 * ```
 */
export interface ReplicaOptions extends RaftNodeOptions {
  /**
   * Snapshot once the persisted Raft state reaches this many bytes, so the
   * log stays small. Default: never (the log grows without bound).
   */
  maxRaftState?: number;
  /**
   * How long a request waits to be committed (or, for a read, confirmed)
   * before the replica tells the client to retry. Default: two election
   * timeouts.
   */
  requestTimeoutMs?: number;
  /**
   * Writes proposed and not yet applied, at most; beyond it a write is
   * refused at once with an `overloaded` answer (certainly not applied)
   * instead of waiting in memory. Default 1,024.
   */
  maxPendingWrites?: number;
  /**
   * Bytes (estimated: strings and byte arrays in the entry) of the writes
   * proposed and not yet applied, at most; beyond it a write is refused as
   * with `maxPendingWrites`. One write is always admitted when none is
   * pending, whatever its size. Default 4 MiB: what a busy disk commits in
   * a fraction of `requestTimeoutMs`, and what a leader encodes and sends
   * in one turn without holding up its heartbeats (8 MiB cost elections on
   * a loaded 2-core machine).
   */
  maxPendingWriteBytes?: number;
  /**
   * The longest the oldest write in progress may have waited before new
   * ones are refused as with `maxPendingWrites`: a limit that follows the
   * disk's and the followers' actual pace, so an admitted write is answered
   * within `requestTimeoutMs` on a slow machine too. Default: a quarter of
   * `requestTimeoutMs`.
   */
  maxQueueDelayMs?: number;
}

/** Default of {@linkcode ReplicaOptions.maxPendingWrites}. */
const DEFAULT_MAX_PENDING_WRITES = 1024;
/** Default of {@linkcode ReplicaOptions.maxPendingWriteBytes}. */
const DEFAULT_MAX_PENDING_WRITE_BYTES = 4 * 1024 * 1024;
/**
 * Entries applied in a row before the applier yields to the event loop, so
 * a long backlog (a follower catching up) does not hold up heartbeats,
 * votes and status requests.
 */
const APPLY_SLICE = 64;

/**
 * How a replica answers a client: `ok` with the payload, or where to go
 * instead.
 *
 * - `not-leader`: this server cannot serve it; `leader` is a hint (may be null);
 * - `retry`: this server could not finish it in time (it may have lost
 *   leadership or a quorum); try again, here or elsewhere;
 * - `wrong-group`: this replica group does not serve that data (sharded
 *   services); ask the directory which group does;
 * - `overloaded`: this server has too many writes in progress and refused
 *   this one before proposing it (certainly not applied); retry after
 *   `retryAfterMs`.
 *
 * @example
 * ```ts
 * import type { ReplicaReply } from "@distkit/distkit/rsm";
 *
 * const reply: ReplicaReply<{ value: string }> = { status: "ok", value: "1" };
 * ```
 */
export type ReplicaReply<T extends object = Record<never, never>> =
  | ({ status: "ok" } & T)
  | {
    status: "not-leader";
    leader: string | null;
    /** The leader's address as clients reach it, when the server knows it (the KV service). */
    leaderAddress?: string | null;
    /** The voters' addresses as clients reach them: how a client given one node finds the rest. */
    members?: string[];
  }
  | { status: "retry"; reason: string }
  | { status: "wrong-group" }
  | { status: "overloaded"; reason: string; retryAfterMs: number };

/**
 * Counters and gauges of a {@linkcode Replica}, for monitoring.
 *
 * @example
 * ```ts
 * import type { ReplicaStats } from "@distkit/distkit/rsm";
 *
 * function line(s: ReplicaStats): string {
 *   return `${s.reads} reads, ${s.writes} writes, ${s.pendingRequests} pending`;
 * }
 * ```
 */
export interface ReplicaStats {
  /** Reads answered. */
  reads: number;
  /** Writes answered (applied now, or found already applied). */
  writes: number;
  /** Requests sent elsewhere because this server does not lead. */
  notLeader: number;
  /** Requests this server could not finish in time (lost leadership or quorum). */
  retries: number;
  /** Malformed or oversized requests refused. */
  badRequests: number;
  /** Writes refused because too many were in progress (nothing proposed for them). */
  overloaded: number;
  /** Writes proposed and not yet applied, now. */
  pendingWrites: number;
  /** Their estimated bytes, now. */
  pendingWriteBytes: number;
  /** Snapshots this server took. */
  snapshots: number;
  /** Snapshots this server installed from the leader (it was too far behind for entries). */
  installs: number;
  /** Requests waiting now. */
  pendingRequests: number;
  /** Highest log index the state reflects. */
  appliedIndex: number;
}

/**
 * The RPC service a replica serves: its name and, given the replica, its
 * methods. It is registered once the replica has started and removed when
 * it stops.
 *
 * @example
 * ```ts
 * import type { ReplicaService } from "@distkit/distkit/rsm";
 *
 * const service: ReplicaService<number> = {
 *   name: "Counter",
 *   methods: (replica) => ({
 *     Add: (n: unknown) =>
 *       replica.serve<{ result: number }>("writes", async () => {
 *         const result = await replica.submit(n);
 *         if (result === null) return { status: "retry", reason: "lost to a new leader" };
 *         return { status: "ok", result };
 *       }),
 *   }),
 * };
 * ```
 */
export interface ReplicaService<R> {
  /** The service's name on the RPC server. */
  name: string;
  /** The methods, built once the replica exists. */
  methods(replica: Replica<R>): ServiceMethods;
}

/** A proposal waiting to come out of the log at its index. */
interface PendingWrite<R> {
  term: number;
  entry: unknown;
  /** Null when another entry took the index: the client must retry. */
  resolve: (result: R | null) => void;
}

/** A read waiting for the state machine to reach `index`. */
interface PendingRead {
  index: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * A replica: a {@linkcode ReplicaMachine} kept in step by a Raft node, with
 * the means to serve it ({@linkcode Replica.submit}, {@linkcode Replica.read},
 * {@linkcode Replica.serve}).
 *
 * @example
 * ```ts
 * import { Replica, type ReplicaMachine } from "@distkit/distkit/rsm";
 * import { MemoryStorage } from "@distkit/distkit/raft";
 * import { delay, RpcServer, simulate } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * class Counter implements ReplicaMachine<number> {
 *   n = 0;
 *   apply(entry: unknown): number {
 *     return this.n += entry as number;
 *   }
 *   snapshot(): Uint8Array {
 *     return Uint8Array.of(this.n);
 *   }
 *   restore(bytes: Uint8Array): void {
 *     this.n = bytes[0];
 *   }
 * }
 *
 * await simulate(async ({ clock, net, random }) => {
 *   const server = new RpcServer();
 *   net.addServer("a", server);
 *   const replica = await Replica.start(new Counter(), {
 *     id: "a",
 *     peers: ["a"],
 *     transport: net.transportFor("a"),
 *     server,
 *     storage: new MemoryStorage(),
 *     clock,
 *     random,
 *   });
 *   let result: number | null = null;
 *   while (result === null) {
 *     try {
 *       result = await replica.submit(2);
 *     } catch {
 *       await delay(10, { clock }); // not the leader yet
 *     }
 *   }
 *   assert.equal(result, 2);
 *   await replica.stop();
 * }, { seed: 1 });
 * ```
 */
export class Replica<R> {
  readonly #raft: RaftNode;
  readonly #machine: ReplicaMachine<R>;
  readonly #options: ReplicaOptions;
  readonly #service: string | undefined;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  #appliedIndex = 0;
  #writes = new Map<number, PendingWrite<R>[]>();
  /** The term of the last item applied (see `#dropStaleWrites`). */
  #appliedTerm = 0;
  #reads: PendingRead[] = [];
  #snapshotting = false;
  /** The Raft state size that triggers the next snapshot (see firstSnapshotAt). */
  #snapshotAt: number;
  #counts = {
    reads: 0,
    writes: 0,
    notLeader: 0,
    retries: 0,
    badRequests: 0,
    overloaded: 0,
    snapshots: 0,
    installs: 0,
  };
  readonly #maxPendingWrites: number;
  readonly #maxPendingWriteBytes: number;
  /** Writes proposed here and not yet settled, and their estimated bytes. */
  #pendingWrites = 0;
  #pendingWriteBytes = 0;
  readonly #maxQueueDelayMs: number;
  /** When each write in progress was admitted, oldest first (a Set keeps insertion order). */
  #admittedAt = new Set<{ at: number }>();
  readonly #listeners = new Set<() => void>();
  #applier: Promise<void>;
  #stopped = false;

  private constructor(
    raft: RaftNode,
    machine: ReplicaMachine<R>,
    options: ReplicaOptions & { service?: ReplicaService<R> },
  ) {
    this.#raft = raft;
    this.#machine = machine;
    this.#options = options;
    this.#service = options.service?.name;
    this.#clock = options.clock ?? defaultClock("Replica");
    this.#timeoutMs = options.requestTimeoutMs ??
      2 * (options.electionTicks ?? 10) * (options.tickMs ?? 50);
    this.#snapshotAt = firstSnapshotAt(options);
    this.#maxPendingWrites = options.maxPendingWrites ?? DEFAULT_MAX_PENDING_WRITES;
    this.#maxPendingWriteBytes = options.maxPendingWriteBytes ?? DEFAULT_MAX_PENDING_WRITE_BYTES;
    this.#maxQueueDelayMs = options.maxQueueDelayMs ?? this.#timeoutMs / 4;
    if (
      !(this.#maxPendingWrites >= 1) || !(this.#maxPendingWriteBytes >= 1) ||
      !(this.#maxQueueDelayMs >= 0)
    ) {
      throw new RangeError(
        "maxPendingWrites and maxPendingWriteBytes must be at least 1, maxQueueDelayMs at least 0",
      );
    }
    this.#applier = this.#apply();
  }

  /**
   * Starts the Raft node (restoring the machine from its latest snapshot and
   * log) and registers `options.service` on the RPC server.
   */
  static async start<R>(
    machine: ReplicaMachine<R>,
    options: ReplicaOptions & { service?: ReplicaService<R> },
  ): Promise<Replica<R>> {
    const raft = await RaftNode.start(options);
    const replica = new Replica(raft, machine, options);
    if (options.service) {
      options.server.addService(options.service.name, options.service.methods(replica));
    }
    return replica;
  }

  /**
   * Resolves once the replica has stopped: by {@linkcode Replica.stop}, or
   * on its own when its Raft node failed (storage, an invariant; already
   * reported on stderr), after which {@linkcode Replica.stopped} is true.
   */
  get finished(): Promise<void> {
    return this.#applier;
  }

  /** Whether the replica has stopped serving. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** The Raft node underneath (status, leadership transfer, membership). */
  get raft(): RaftNode {
    return this.#raft;
  }

  /** The clock the replica times requests with. */
  get clock(): Clock {
    return this.#clock;
  }

  /** How long a request may wait to be committed or confirmed before the client is told to retry. */
  get requestTimeoutMs(): number {
    return this.#timeoutMs;
  }

  /** The highest log index the machine reflects. */
  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** Requests waiting for the log: writes to be applied, reads to be confirmed. */
  get pendingRequests(): number {
    let n = this.#reads.length;
    for (const list of this.#writes.values()) n += list.length;
    return n;
  }

  /** Counters and gauges for monitoring. */
  stats(): ReplicaStats {
    return {
      ...this.#counts,
      pendingRequests: this.pendingRequests,
      pendingWrites: this.#pendingWrites,
      pendingWriteBytes: this.#pendingWriteBytes,
      appliedIndex: this.#appliedIndex,
    };
  }

  /**
   * Calls `listener` after every batch of entries applied (and after a
   * snapshot is restored); returns a function that stops the calls. For
   * code that reacts to the machine's state (the shard groups' migrations).
   */
  onApplied(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops serving and stops the Raft node. Pending requests are told to retry elsewhere. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#service) this.#options.server.removeService(this.#service);
    await this.#raft.stop();
    await this.#applier;
    this.#failPending();
  }

  /**
   * Proposes `entry` and resolves with the machine's result once it is
   * applied, or null when a new leader's entry took its index (nothing was
   * applied for it; retry).
   *
   * @throws {NotLeaderError} when this replica does not lead.
   */
  async submit(entry: unknown): Promise<R | null> {
    const bytes = approximateBytes(entry);
    this.#admit(bytes);
    this.#pendingWrites++;
    this.#pendingWriteBytes += bytes;
    const admitted = { at: this.#clock.now() };
    this.#admittedAt.add(admitted);
    let settled = false;
    const release = () => {
      if (settled) return;
      settled = true;
      this.#pendingWrites--;
      this.#pendingWriteBytes -= bytes;
      this.#admittedAt.delete(admitted);
      invariant(
        this.#pendingWrites >= 0 && this.#pendingWriteBytes >= 0,
        "pending write accounting went negative",
      );
    };
    let proposed: { index: number; term: number };
    try {
      proposed = await this.#raft.propose(entry);
    } catch (err) {
      release();
      throw err;
    }
    const { index, term } = proposed;
    return await new Promise<R | null>((resolve) => {
      const list = this.#writes.get(index) ?? [];
      list.push({
        term,
        entry,
        resolve: (result) => {
          release();
          resolve(result);
        },
      });
      this.#writes.set(index, list);
    });
  }

  /**
   * Refuses a write of `bytes` at once when the writes in progress are at
   * their limit: queued instead, they piled up in memory until heartbeats
   * missed their deadlines (issue 16).
   *
   * @throws {KvOverloadedError} when a limit is reached (nothing was proposed).
   */
  #admit(bytes: number): void {
    const reason = this.refusal(bytes);
    if (reason === undefined) return;
    this.#counts.overloaded++;
    throw new KvOverloadedError(reason, { retryAfterMs: this.#retryAfterMs() });
  }

  /**
   * Why a write of about `bytes` would be refused as overloaded now, or
   * undefined when it would be admitted: for a front end (HTTP) to refuse
   * before it reads a body it would only throw away. Advisory: the write
   * itself is checked again when submitted.
   */
  refusal(bytes: number): string | undefined {
    // Only a leader admits: elsewhere the proposal is refused as "not the
    // leader", which sends the client on (writes left pending from an
    // earlier leadership must not hold the node's refusals for ever).
    if (this.#raft.status().role !== "leader") return undefined;
    let reason: string | undefined;
    if (this.#pendingWrites >= this.#maxPendingWrites) {
      reason = `${this.#pendingWrites} writes are in progress, the limit`;
    } else if (
      this.#pendingWrites > 0 && this.#pendingWriteBytes + bytes > this.#maxPendingWriteBytes
    ) {
      reason = `${this.#pendingWriteBytes} bytes of writes are in progress and this one has ` +
        `${bytes}; the limit is ${this.#maxPendingWriteBytes}`;
    }
    if (reason === undefined && this.#pendingWrites > 0) {
      const oldest = this.#admittedAt.values().next().value!;
      const waited = this.#clock.now() - oldest.at;
      if (waited > this.#maxQueueDelayMs) {
        reason = `the oldest write in progress has waited ${Math.round(waited)} ms, over the ` +
          `limit of ${Math.round(this.#maxQueueDelayMs)} ms`;
      }
    }
    return reason;
  }

  /** A pause long enough for the writes in progress to drain: about one commit round. */
  #retryAfterMs(): number {
    return Math.max(100, 2 * (this.#options.tickMs ?? 50) * (this.#options.heartbeatTicks ?? 2));
  }

  /**
   * Resolves once this replica has confirmed it leads (ReadIndex) and has
   * applied everything committed before the call: its machine may then be
   * read as of a moment within the call.
   *
   * @throws {NotLeaderError} when this replica does not lead.
   */
  async read(): Promise<void> {
    const index = await this.#raft.readIndex();
    if (index <= this.#appliedIndex) return;
    await new Promise<void>((resolve, reject) => this.#reads.push({ index, resolve, reject }));
  }

  /**
   * Runs a request against the deadline, turning "not the leader", "stopped"
   * and "too slow" into answers that send the client elsewhere, and counts
   * the outcome as a read or a write. A request that throws `ArgumentsError` (malformed) is counted and rethrown, for the
   * RPC layer to report to the caller.
   */
  async serve<T extends object>(
    kind: "reads" | "writes",
    work: () => Promise<ReplicaReply<T>>,
  ): Promise<ReplicaReply<T>> {
    let reply: ReplicaReply<T>;
    try {
      reply = await deadline(work(), { clock: this.#clock, timeoutMs: this.#timeoutMs });
    } catch (err) {
      if (err instanceof ArgumentsError) {
        this.#counts.badRequests++;
        throw err;
      }
      if (err instanceof KvOverloadedError) {
        return { status: "overloaded", reason: err.reason, retryAfterMs: err.retryAfterMs };
      }
      // Not leading, stopped (RaftStoppedError) or too slow: elsewhere, or later.
      reply = err instanceof NotLeaderError
        ? { status: "not-leader", leader: err.leader }
        : { status: "retry", reason: (err as Error).message };
    }
    if (reply.status === "ok") this.#counts[kind]++;
    else if (reply.status === "not-leader") this.#counts.notLeader++;
    else if (reply.status === "retry") this.#counts.retries++;
    return reply;
  }

  #failPending(): void {
    for (const list of this.#writes.values()) for (const w of list) w.resolve(null);
    this.#writes.clear();
    const stopped = new Error("server stopped");
    for (const r of this.#reads.splice(0)) r.reject(stopped);
  }

  async #apply(): Promise<void> {
    try {
      let run = 0;
      for await (const item of this.#raft.applied()) {
        this.#applyOne(item);
        for (const listener of this.#listeners) listener();
        // A backlog comes out of the stream without a turn of the event loop
        // in between: a follower catching up on thousands of entries went
        // deaf to heartbeats, votes and /status for seconds (issue 16).
        if (this.#raft.appliedBacklog === 0) run = 0;
        else if (++run >= APPLY_SLICE) {
          run = 0;
          await delay(0, { clock: this.#clock });
        }
      }
    } catch (err) {
      // A replica that cannot apply what Raft committed must not serve.
      console.error(`replica ${this.#raft.id} stopped: ${(err as Error).message}`);
      await this.#raft.stop();
    }
    // The stream ends when the Raft node stops: by stop(), or on its own
    // after a failure (storage, an invariant), which it has reported.
    if (!this.#stopped) {
      this.#stopped = true;
      if (this.#service) this.#options.server.removeService(this.#service);
      this.#failPending();
    }
  }

  #applyOne(item: Applied): void {
    if (item.type === "snapshot") {
      this.#machine.restore(item.data);
      this.#appliedIndex = item.index;
      this.#counts.installs++;
      // The leader's snapshot replaced the log: snapshotting again a whole
      // threshold later would keep the leader's turn; take this replica's own.
      this.#snapshotAt = nextSnapshotAfterInstall(this.#options, this.#raft.status().leader);
      // Proposals whose entries the snapshot covers: the machine may know.
      for (const [index, list] of this.#writes) {
        if (index > item.index) continue;
        this.#writes.delete(index);
        for (const w of list) w.resolve(this.#machine.recall?.(w.entry) ?? null);
      }
    } else if (item.type === "internal") {
      this.#appliedIndex = item.index;
      // A proposal at this index lost it to a new leader's own entry.
      this.#settleWrites(item.index, null);
    } else {
      const result = this.#machine.apply(item.command);
      this.#appliedIndex = item.index;
      this.#settleWrites(item.index, { term: item.term, result });
    }
    if (item.term > this.#appliedTerm) {
      this.#appliedTerm = item.term;
      this.#dropStaleWrites(item.index);
    }
    this.#wakeReads();
    this.#maybeSnapshot();
  }

  /** Answers the proposals at `index`: with `applied`'s result if it is their entry, else null. */
  #settleWrites(index: number, applied: { term: number; result: R } | null): void {
    const list = this.#writes.get(index);
    if (list === undefined) return;
    this.#writes.delete(index);
    for (const w of list) w.resolve(applied?.term === w.term ? applied.result : null);
  }

  /**
   * Proposals beyond `index` of a term older than the one just applied can
   * never be committed (the terms along a log never decrease): nothing will
   * be applied for them. Left waiting for an entry at their index, they held
   * a leader's admission limits for good once no write came to fill it.
   */
  #dropStaleWrites(index: number): void {
    for (const [at, list] of this.#writes) {
      if (at <= index || list.every((w) => w.term >= this.#appliedTerm)) continue;
      const live = list.filter((w) => w.term >= this.#appliedTerm);
      if (live.length > 0) this.#writes.set(at, live);
      else this.#writes.delete(at);
      for (const w of list) if (w.term < this.#appliedTerm) w.resolve(null);
    }
  }

  #wakeReads(): void {
    if (this.#reads.length === 0) return;
    const still: PendingRead[] = [];
    for (const r of this.#reads) {
      if (r.index <= this.#appliedIndex) r.resolve();
      else still.push(r);
    }
    this.#reads = still;
  }

  /** Snapshots once the persisted Raft state has reached the limit. */
  #maybeSnapshot(): void {
    const max = this.#options.maxRaftState;
    if (max === undefined || max < 0 || this.#snapshotting) return;
    if (this.#options.storage.raftStateSize() < this.#snapshotAt) return;
    if (this.#appliedIndex <= this.#raft.status().snapshotIndex) return;
    this.#snapshotAt = max;
    this.#snapshotting = true;
    this.#counts.snapshots++;
    const index = this.#appliedIndex;
    // Encoded a slice per turn of the event loop when the machine can: encoded
    // at once, a large state held up this replica for tens of milliseconds.
    const data = this.#machine.snapshotInSlices
      ? this.#machine.snapshotInSlices(() => delay(0, { clock: this.#clock }))
      : Promise.resolve().then(() => this.#machine.snapshot());
    data
      .then((bytes) => this.#raft.snapshot(index, bytes))
      // Stopped meanwhile (even before the call): the next start snapshots again if needed.
      .catch(() => {})
      .finally(() => {
        this.#snapshotting = false;
        // Entries applied meanwhile found a snapshot in progress: an idle log applies no more.
        if (!this.#stopped) this.#maybeSnapshot();
      });
  }
}

/**
 * The Raft state size at which a replica that installed the leader's
 * snapshot snapshots next: where its own turn falls after the leader's (the
 * k-th of n voters snapshots at (n - k) / n of the threshold past each
 * multiple of it, see {@linkcode firstSnapshotAt}), so an install does not
 * leave it snapshotting in step with the leader.
 */
function nextSnapshotAfterInstall(options: ReplicaOptions, leader: string | null): number {
  const max = options.maxRaftState ?? -1;
  const voters = [...options.peers].sort();
  const k = voters.indexOf(options.id);
  const l = leader === null ? -1 : voters.indexOf(leader);
  if (max < 0 || k < 0 || l < 0) return max;
  const n = voters.length;
  return max * (((l - k) % n + n) % n || n) / n;
}

/**
 * The Raft state size of a replica's first snapshot: the threshold, but
 * (n - k) / n of it on the k-th of n initial voters (by id). Replicas have
 * alike logs, so with one threshold they all snapshot at about the same
 * index, each encoding and writing the whole state at the same moment (a
 * burst of CPU and disk the cluster's writes wait behind); staggered once,
 * they stay staggered, as their logs then grow alike.
 */
function firstSnapshotAt(options: ReplicaOptions): number {
  const max = options.maxRaftState ?? -1;
  const voters = [...options.peers].sort();
  const k = voters.indexOf(options.id);
  if (max < 0 || k < 0) return max;
  return max * (voters.length - k) / voters.length;
}

/**
 * About how many bytes an entry holds: its strings and byte arrays (and 8
 * per other leaf), walked through arrays and plain objects. What the
 * admission limit counts; exactness does not matter, proportion does.
 */
function approximateBytes(value: unknown, depth = 0): number {
  if (typeof value === "string") return value.length;
  if (value instanceof Uint8Array) return value.byteLength;
  if (value === null || typeof value !== "object" || depth > 8) return 8;
  let n = 8;
  if (Array.isArray(value)) {
    for (const item of value) n += approximateBytes(item, depth + 1);
  } else {
    for (const [k, v] of Object.entries(value)) n += k.length + approximateBytes(v, depth + 1);
  }
  return n;
}
