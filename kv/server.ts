/**
 * `KvServer`: one replica of the key/value service, a
 * {@linkcode KvStateMachine} kept in step by a {@linkcode RaftNode}.
 *
 * Writes go through the log and are answered once applied, with the result
 * the deduplication table recorded, so a retried write is applied once.
 * Reads do not touch the log: the leader confirms with a quorum that it is
 * still the leader (ReadIndex), waits until it has applied that far, and
 * answers from its state, so a deposed leader never answers a stale read.
 *
 * @module
 */
import { deadline, delay } from "../net/async.ts";
import { type Clock, realClock } from "../net/clock.ts";
import { type Applied, NotLeaderError, RaftNode, type RaftNodeOptions } from "../raft/mod.ts";
import {
  DEFAULT_KV_LIMITS,
  type KvLimits,
  type KvReply,
  parseGet,
  parseWrite,
} from "./protocol.ts";
import { type KvCommand, type KvResult, KvStateMachine } from "./state.ts";
import type { KvValue } from "./value.ts";

/**
 * Options of {@linkcode KvServer.start}: those of the Raft node underneath,
 * plus the service's own.
 *
 * @example
 * ```ts
 * import type { KvServerOptions } from "@distkit/distkit/kv";
 *
 * const extra: Partial<KvServerOptions> = { maxRaftState: 1 << 20, requestTimeoutMs: 1000 };
 * ```
 */
export interface KvServerOptions extends RaftNodeOptions {
  /**
   * Snapshot once the persisted Raft state reaches this many bytes, so the
   * log stays small. Default: never (the log grows without bound).
   */
  maxRaftState?: number;
  /** Key and value limits; every server of a cluster must use the same. */
  limits?: Partial<KvLimits>;
  /**
   * How long a request waits to be committed (or, for a read, confirmed)
   * before the server tells the clerk to retry. Default: two election
   * timeouts.
   */
  requestTimeoutMs?: number;
}

/**
 * Counters and gauges of a {@linkcode KvServer}, for monitoring.
 *
 * @example
 * ```ts
 * import type { KvServerStats } from "@distkit/distkit/kv";
 *
 * function line(s: KvServerStats): string {
 *   return `${s.reads} reads, ${s.writes} writes, ${s.pendingRequests} pending`;
 * }
 * ```
 */
export interface KvServerStats {
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
  /** Snapshots this server took. */
  snapshots: number;
  /** Requests waiting now. */
  pendingRequests: number;
  /** Keys in the store. */
  keys: number;
  /** Highest log index the state reflects. */
  appliedIndex: number;
}

/** A write waiting to come out of the log at `index`. */
interface PendingWrite {
  term: number;
  command: KvCommand;
  /** Null when another entry took the index: the clerk must retry. */
  resolve: (result: KvResult | null) => void;
}

/** A read waiting for the state machine to reach `index`. */
interface PendingRead {
  index: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * A replica of the KV service. It registers a `KV` service (`Get`, `Write`)
 * on the RPC server, next to the Raft node's own.
 *
 * @example
 * ```ts
 * import { KvServer } from "@distkit/distkit/kv";
 * import { MemoryStorage } from "@distkit/distkit/raft";
 * import { RpcServer, SimNetwork, simulate } from "@distkit/distkit/net";
 *
 * await simulate(async ({ clock, net }) => {
 *   const server = new RpcServer();
 *   net.addServer("a", server);
 *   const kv = await KvServer.start({
 *     id: "a",
 *     peers: ["a"],
 *     transport: net.transportFor("a"),
 *     server,
 *     storage: new MemoryStorage(),
 *     clock,
 *   });
 *   await kv.stop();
 * }, { seed: 1 });
 * ```
 */
export class KvServer {
  readonly #raft: RaftNode;
  readonly #options: KvServerOptions;
  readonly #limits: KvLimits;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #state: KvStateMachine;
  #appliedIndex = 0;
  #writes = new Map<number, PendingWrite[]>();
  #reads: PendingRead[] = [];
  #snapshotting = false;
  /** The Raft state size that triggers the next snapshot (see firstSnapshotAt). */
  #snapshotAt: number;
  #counts = { reads: 0, writes: 0, notLeader: 0, retries: 0, badRequests: 0, snapshots: 0 };
  #applier: Promise<void>;
  #stopped = false;

  private constructor(raft: RaftNode, options: KvServerOptions, limits: KvLimits) {
    this.#raft = raft;
    this.#options = options;
    this.#limits = limits;
    this.#clock = options.clock ?? realClock;
    this.#timeoutMs = options.requestTimeoutMs ??
      2 * (options.electionTicks ?? 10) * (options.tickMs ?? 50);
    this.#state = new KvStateMachine({ maxValueBytes: limits.maxValueBytes });
    this.#snapshotAt = firstSnapshotAt(options);
    this.#applier = this.#apply();
  }

  /**
   * Starts the Raft node (restoring the state from its latest snapshot and
   * log) and begins serving `KV.Get` and `KV.Write`.
   */
  static async start(options: KvServerOptions): Promise<KvServer> {
    const limits = { ...DEFAULT_KV_LIMITS, ...options.limits };
    const raft = await RaftNode.start(options);
    const kv = new KvServer(raft, options, limits);
    options.server.addService("KV", {
      Get: (args: unknown) => kv.#count(() => kv.#get(args), "reads"),
      Write: (args: unknown) => kv.#count(() => kv.#write(args), "writes"),
    });
    return kv;
  }

  /**
   * Resolves once the server has stopped: by {@linkcode KvServer.stop}, or
   * on its own when its Raft node failed (storage, an invariant; already
   * reported on stderr), after which {@linkcode KvServer.stopped} is true.
   */
  get finished(): Promise<void> {
    return this.#applier;
  }

  /** Whether the server has stopped serving. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** The Raft node underneath (status, leadership transfer, membership). */
  get raft(): RaftNode {
    return this.#raft;
  }

  /** Counters and gauges for monitoring. */
  stats(): KvServerStats {
    return {
      ...this.#counts,
      pendingRequests: this.pendingRequests,
      keys: this.#state.size,
      appliedIndex: this.#appliedIndex,
    };
  }

  /** Requests waiting for the log: writes to be applied, reads to be confirmed. */
  get pendingRequests(): number {
    let n = this.#reads.length;
    for (const list of this.#writes.values()) n += list.length;
    return n;
  }

  /** The highest log index this replica's state reflects. */
  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /**
   * This replica's value of `key`, without any check that it is current
   * (a follower may lag): for inspection and tests. Clients read through
   * the clerk.
   */
  localGet(key: string): KvValue | null {
    return this.#state.get(key);
  }

  /** Stops serving and stops the Raft node. Pending requests are told to retry elsewhere. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#options.server.removeService("KV");
    await this.#raft.stop();
    await this.#applier;
    this.#failPending();
  }

  #failPending(): void {
    for (const list of this.#writes.values()) for (const w of list) w.resolve(null);
    this.#writes.clear();
    const stopped = new Error("server stopped");
    for (const r of this.#reads.splice(0)) r.reject(stopped);
  }

  async #count(handle: () => Promise<KvReply>, kind: "reads" | "writes"): Promise<KvReply> {
    let reply: KvReply;
    try {
      reply = await handle();
    } catch (err) {
      this.#counts.badRequests++;
      throw err;
    }
    if (reply.status === "ok") this.#counts[kind]++;
    else if (reply.status === "not-leader") this.#counts.notLeader++;
    else this.#counts.retries++;
    return reply;
  }

  async #get(args: unknown): Promise<KvReply> {
    const key = parseGet(args, this.#limits);
    return await this.#serve(async () => {
      const index = await this.#raft.readIndex();
      await this.#reachApplied(index);
      return { status: "ok", value: this.#state.get(key) };
    });
  }

  async #write(args: unknown): Promise<KvReply> {
    const command = parseWrite(args, this.#limits);
    // A retry of a write already applied is answered from the table.
    const done = this.#state.applied(command);
    if (done) return { status: "ok", result: done };
    return await this.#serve(async () => {
      const { index, term } = await this.#raft.propose(command);
      const result = await new Promise<KvResult | null>((resolve) => {
        const list = this.#writes.get(index) ?? [];
        list.push({ term, command, resolve });
        this.#writes.set(index, list);
      });
      if (result === null) {
        return { status: "retry", reason: `entry ${index} went to another command` };
      }
      return { status: "ok", result };
    });
  }

  /**
   * Runs a request against the deadline, turning "not the leader", "stopped"
   * and "too slow" into answers that send the clerk elsewhere.
   */
  async #serve(work: () => Promise<KvReply>): Promise<KvReply> {
    if (this.#stopped) return { status: "retry", reason: "server stopped" };
    try {
      return await deadline(work(), { clock: this.#clock, timeoutMs: this.#timeoutMs });
    } catch (err) {
      if (err instanceof NotLeaderError) return { status: "not-leader", leader: err.leader };
      return { status: "retry", reason: (err as Error).message };
    }
  }

  #reachApplied(index: number): Promise<void> {
    if (index <= this.#appliedIndex) return Promise.resolve();
    return new Promise((resolve, reject) => this.#reads.push({ index, resolve, reject }));
  }

  async #apply(): Promise<void> {
    try {
      for await (const item of this.#raft.applied()) this.#applyOne(item);
    } catch (err) {
      // A replica that cannot apply what Raft committed must not serve.
      console.error(`KV server ${this.#raft.id} stopped: ${(err as Error).message}`);
      await this.#raft.stop();
    }
    // The stream ends when the Raft node stops: by stop(), or on its own
    // after a failure (storage, an invariant), which it has reported.
    if (!this.#stopped) {
      this.#stopped = true;
      this.#options.server.removeService("KV");
      this.#failPending();
    }
  }

  #applyOne(item: Applied): void {
    if (item.type === "snapshot") {
      this.#state.restore(item.data);
      this.#appliedIndex = item.index;
      // Writes whose entries the snapshot covers: the table says whether they happened.
      for (const [index, list] of this.#writes) {
        if (index > item.index) continue;
        this.#writes.delete(index);
        for (const w of list) w.resolve(this.#state.applied(w.command) ?? null);
      }
    } else if (item.type === "internal") {
      this.#appliedIndex = item.index;
      // A write proposed at this index lost it to a new leader's own entry.
      this.#settleWrites(item.index, null);
    } else {
      const result = this.#applyCommand(item.command);
      this.#appliedIndex = item.index;
      this.#settleWrites(item.index, { term: item.term, result });
    }
    this.#wakeReads();
    this.#maybeSnapshot();
  }

  /** Answers the writes proposed at `index`: with `applied`'s result if it is their entry, else "retry". */
  #settleWrites(index: number, applied: { term: number; result: KvResult } | null): void {
    const list = this.#writes.get(index);
    if (list === undefined) return;
    this.#writes.delete(index);
    for (const w of list) w.resolve(applied?.term === w.term ? applied.result : null);
  }

  /**
   * Applies a committed command. Leaders check requests before proposing
   * them; this check is for entries from elsewhere (another version, a
   * damaged log), and gives the same verdict on every replica.
   */
  #applyCommand(entry: unknown): KvResult {
    let command: KvCommand;
    try {
      command = parseWrite(entry, this.#limits);
    } catch (err) {
      return { ok: false, refused: `malformed log entry: ${(err as Error).message}` };
    }
    return this.#state.apply(command);
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
    this.#snapshotAt = max;
    this.#snapshotting = true;
    this.#counts.snapshots++;
    const index = this.#appliedIndex;
    // Encoded a slice per turn of the event loop: encoded at once, a large
    // state held up this node (every replica snapshots at about one index,
    // so all of them at once) for tens of milliseconds.
    this.#state.snapshotInSlices(() => delay(0, { clock: this.#clock }))
      .then((data) => this.#raft.snapshot(index, data))
      // Stopped meanwhile (even before the call): the next start snapshots again if needed.
      .catch(() => {})
      .finally(() => (this.#snapshotting = false));
  }
}

/**
 * The Raft state size of a server's first snapshot: the threshold, but
 * (n - k) / n of it on the k-th of n initial voters (by id). Replicas have
 * alike logs, so with one threshold they all snapshot at about the same
 * index, each encoding and writing the whole state at the same moment (a
 * burst of CPU and disk the cluster's writes wait behind); staggered once,
 * they stay staggered, as their logs then grow alike.
 */
function firstSnapshotAt(options: KvServerOptions): number {
  const max = options.maxRaftState ?? -1;
  const voters = [...options.peers].sort();
  const k = voters.indexOf(options.id);
  if (max < 0 || k < 0) return max;
  return max * (voters.length - k) / voters.length;
}
