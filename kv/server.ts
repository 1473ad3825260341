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
import type { RaftNode } from "../raft/mod.ts";
import { DISTKIT_VERSION } from "../net/version.ts";
import {
  DEFAULT_KV_LIMITS,
  type KvLimits,
  type KvReply,
  parseGet,
  parseWrite,
} from "../kvstate/protocol.ts";
import {
  Replica,
  type ReplicaMachine,
  type ReplicaOptions,
  type ReplicaReply,
  type ReplicaServeOptions,
  type ReplicaStats,
} from "../rsm/replica.ts";
import { type KvCommand, type KvResult, KvStateMachine, writeDigest } from "../kvstate/state.ts";
import { localWriteDigest } from "../kvstate/local_digest.ts";
import type { KvValue } from "../kvstate/value.ts";
import type { KvWrite } from "../kvstate/kv_types.ts";
import { StoredKvState } from "../kvstate/stored_state.ts";
import { isMemorySnapshot, memorySnapshotOfPages } from "../kvstate/stored_convert.ts";
import type { StateStore } from "../store/state_store.ts";

/** The state a server answers from: in memory, or in a store. */
type KvState = KvStateMachine | StoredKvState;

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
export interface KvServerOptions extends ReplicaOptions {
  /** Key and value limits; every server of a cluster must use the same. */
  limits?: Partial<KvLimits>;
  /**
   * The address clients reach server `id` at, for the "not the leader"
   * answer (which names the leader and the voters so that a client given
   * one node finds the others). Default: the id itself (a simulated
   * network, where clients call servers by id).
   */
  addressOf?: (id: string) => string | undefined;
  /**
   * Keep the state in this store instead of in memory (issue 19): written
   * with the applied index it reflects, so a restart replays only the log
   * after it, and the log is compacted without encoding the state. The
   * store is the caller's (on the node's `raft.kv`, or a `SimKv` in a
   * simulation), opened before the server and closed after it. Default:
   * in memory. Servers of one cluster may differ (a rolling move to disk,
   * a new folder among old ones): the two send their snapshots in different
   * forms (a stored state's pages; the in-memory state's encoding), and
   * each takes the other's.
   */
  stateStore?: StateStore;
}

/**
 * What `KV.Status` answers: one node's view of the cluster, for `distkit kv
 * status` and `health`.
 *
 * @example
 * ```ts
 * import type { KvNodeStatus } from "@distkit/distkit/kv";
 *
 * function line(s: KvNodeStatus): string {
 *   return `${s.address} ${s.role} term ${s.term}, leader ${s.leader ?? "none"}`;
 * }
 * ```
 */
export interface KvNodeStatus {
  /** The node's Raft id. */
  id: string;
  /** Its address as clients reach it. */
  address: string;
  /** `leader`, `follower`, `candidate`... */
  role: string;
  /** Its current term. */
  term: number;
  /** The leader's address as far as it knows (null: none known). */
  leader: string | null;
  /** Its highest committed log index. */
  commitIndex: number;
  /** The highest log index its state reflects. */
  appliedIndex: number;
  /** Bytes of Raft state it stores (log and metadata; the snapshot apart). */
  raftStateSize: number;
  /** Keys in its store. */
  keys: number;
  /** The voters' addresses. */
  members: string[];
  /**
   * The data folder incarnation each bound voter is, by node id
   * (`Membership.bindings`: votes and acknowledgements count only from it);
   * absent while none is bound.
   */
  bindings?: Record<string, string>;
  /** The distkit version it runs. */
  version: string;
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
export interface KvServerStats extends ReplicaStats {
  /** Keys in the store. */
  keys: number;
}

/**
 * Options of {@linkcode KvServer.serveWrite}.
 *
 * @example
 * ```ts
 * import type { KvServeWriteOptions } from "@distkit/distkit/kv";
 *
 * const options: KvServeWriteOptions = { signal: AbortSignal.timeout(1000), ownSession: true };
 * ```
 */
export interface KvServeWriteOptions extends ReplicaServeOptions {
  /**
   * The request's session is this process's own: named by it alone (ids
   * made at its start) and never resent from elsewhere, so its digest may
   * be one only this process computes (a native CRC-32 instead of FNV-1a:
   * 0.09 against 2.2 ms per MiB of value). Default false: a client's
   * session, whose resend may reach another node of another version.
   */
  ownSession?: boolean;
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
 * await simulate(async ({ clock, net, random }) => {
 *   const server = new RpcServer();
 *   net.addServer("a", server);
 *   const kv = await KvServer.start({
 *     id: "a",
 *     peers: ["a"],
 *     transport: net.transportFor("a"),
 *     server,
 *     storage: new MemoryStorage(),
 *     clock,
 *     random,
 *   });
 *   await kv.stop();
 * }, { seed: 1 });
 * ```
 */
export class KvServer {
  readonly #replica: Replica<KvResult>;
  readonly #state: KvState;
  readonly #limits: KvLimits;

  private constructor(replica: Replica<KvResult>, state: KvState, limits: KvLimits) {
    this.#replica = replica;
    this.#state = state;
    this.#limits = limits;
  }

  /**
   * Starts the Raft node (restoring the state from its latest snapshot and
   * log) and begins serving `KV.Get` and `KV.Write`.
   */
  static async start(options: KvServerOptions): Promise<KvServer> {
    const limits = { ...DEFAULT_KV_LIMITS, ...options.limits };
    const state = options.stateStore
      ? await StoredKvState.open(options.stateStore, { limits })
      : new KvStateMachine({ maxValueBytes: limits.maxValueBytes });
    const addressOf = (id: string) => options.addressOf?.(id) ?? id;
    const machine = state instanceof StoredKvState ? state : new KvMachine(state, limits);
    const replica = await Replica.start(machine, {
      ...options,
      // The machine keeps its own dedup table (in its state and snapshots).
      exactlyOnce: false,
      service: {
        name: "KV",
        methods: (replica) => ({
          Get: async (args: unknown) =>
            withMembers(
              await replica.serve("reads", () => get(replica, state, args, limits)),
              replica,
              addressOf,
            ),
          Write: async (args: unknown) =>
            withMembers(
              await replica.serve(
                "writes",
                () => write(replica, state, args, { limits, digest: writeDigest }),
              ),
              replica,
              addressOf,
            ),
          Status: (): KvNodeStatus => {
            const raft = replica.raft.status();
            return {
              id: raft.id,
              address: addressOf(raft.id),
              role: raft.role,
              term: raft.term,
              leader: raft.leader === null ? null : addressOf(raft.leader),
              commitIndex: raft.commitIndex,
              appliedIndex: replica.appliedIndex,
              raftStateSize: options.storage.raftStateSize(),
              keys: state.size,
              members: raft.membership.voters.map(addressOf),
              ...(raft.membership.bindings ? { bindings: { ...raft.membership.bindings } } : {}),
              version: DISTKIT_VERSION,
            };
          },
        }),
      },
    });
    return new KvServer(replica, state, limits);
  }

  /**
   * Resolves once the server has stopped: by {@linkcode KvServer.stop}, or
   * on its own when its Raft node failed (storage, an invariant; already
   * reported on stderr), after which {@linkcode KvServer.stopped} is true.
   */
  get finished(): Promise<void> {
    return this.#replica.finished;
  }

  /** Whether the server has stopped serving. */
  get stopped(): boolean {
    return this.#replica.stopped;
  }

  /** The Raft node underneath (status, leadership transfer, membership). */
  get raft(): RaftNode {
    return this.#replica.raft;
  }

  /** Counters and gauges for monitoring. */
  stats(): KvServerStats {
    return { ...this.#replica.stats(), keys: this.#state.size };
  }

  /**
   * Why a write of about `bytes` would be refused as overloaded now, or
   * undefined: lets a front end refuse before reading a body (advisory; the
   * write is checked again when proposed).
   */
  overloadRefusal(bytes: number): string | undefined {
    return this.#replica.refusal(bytes);
  }

  /**
   * Serves a `KV.Write` request (`{ client, seq, write }`) in process: what
   * the RPC method answers, without the RPC layer and its copy of the
   * request, for a front end in the same process (the node's HTTP API). The
   * wait ends at `options.signal` (answered `retry`) instead of the
   * replica's own deadline, which the caller keeps: pass a signal that
   * fires within {@linkcode KvServer.requestTimeoutMs}, or a write that
   * can never commit here (this node lost its followers) waits for it.
   *
   * @example
   * ```ts ignore
   * const reply = await kv.serveWrite(
   *   { client: "web-1", seq: 1, write: { type: "put", key: "x", value: "1" } },
   *   { signal: AbortSignal.timeout(kv.requestTimeoutMs) },
   * );
   * if (reply.status === "ok") console.log(reply.result); // { ok: true }
   * ```
   *
   * @throws {ArgumentsError} when the request is malformed or over the limits (nothing was proposed).
   */
  serveWrite(request: unknown, options: KvServeWriteOptions = {}): Promise<KvReply> {
    const replica = this.#replica;
    const { ownSession = false, ...serve } = options;
    const digest = ownSession ? localWriteDigest : writeDigest;
    return replica.serve(
      "writes",
      () => write(replica, this.#state, request, { limits: this.#limits, digest }),
      serve,
    );
  }

  /**
   * Serves a `KV.Get` request (`{ key }`) in process, as
   * {@linkcode KvServer.serveWrite} serves a write: a linearizable read
   * (ReadIndex), answered `ok` with the value, `not-leader` or `retry`.
   *
   * @example
   * ```ts ignore
   * const reply = await kv.serveGet({ key: "x" }, { signal: AbortSignal.timeout(1000) });
   * if (reply.status === "ok") console.log(reply.value ?? "absent");
   * ```
   *
   * @throws {ArgumentsError} when the key is malformed or over the limit.
   */
  serveGet(request: unknown, options: ReplicaServeOptions = {}): Promise<KvReply> {
    const replica = this.#replica;
    return replica.serve("reads", () => get(replica, this.#state, request, this.#limits), options);
  }

  /** How long the replica lets a request wait to be committed or confirmed before it answers `retry`. */
  get requestTimeoutMs(): number {
    return this.#replica.requestTimeoutMs;
  }

  /** Requests waiting for the log: writes to be applied, reads to be confirmed. */
  get pendingRequests(): number {
    return this.#replica.pendingRequests;
  }

  /** The highest log index this replica's state reflects. */
  get appliedIndex(): number {
    return this.#replica.appliedIndex;
  }

  /**
   * This replica's value of `key`, without any check that it is current
   * (a follower may lag): for inspection and tests. Clients read through
   * the clerk.
   */
  localGet(key: string): KvValue | null {
    if (this.#state instanceof StoredKvState) {
      throw new Error("this server's state is stored: read it with localRead");
    }
    return this.#state.get(key);
  }

  /** {@linkcode KvServer.localGet} for either kind of state (a stored one is read from its store). */
  async localRead(key: string): Promise<KvValue | null> {
    return await this.#state.get(key);
  }

  /** Stops serving and stops the Raft node. Pending requests are told to retry elsewhere. */
  stop(): Promise<void> {
    return this.#replica.stop();
  }
}

async function get(
  replica: Replica<KvResult>,
  state: KvState,
  args: unknown,
  limits: KvLimits,
): Promise<KvReply> {
  const key = parseGet(args, limits);
  await replica.read();
  return { status: "ok", value: await state.get(key) };
}

async function write(
  replica: Replica<KvResult>,
  state: KvState,
  args: unknown,
  options: { limits: KvLimits; digest: (w: KvWrite) => number },
): Promise<KvReply> {
  const command = parseWrite(args, options.limits);
  // Computed here, once: the log entry carries it to every replica. A client's own is not trusted.
  command.digest = options.digest(command.write);
  // A retry of a write already applied is answered from the table.
  const result = await state.applied(command) ?? await replica.submit(command);
  if (result === null) {
    return { status: "retry", reason: "its log entry went to another command (a new leader's)" };
  }
  return { status: "ok", result };
}

/** The store as a {@linkcode ReplicaMachine}: log entries are checked writes. */
class KvMachine implements ReplicaMachine<KvResult> {
  readonly #state: KvStateMachine;
  readonly #limits: KvLimits;

  constructor(state: KvStateMachine, limits: KvLimits) {
    this.#state = state;
    this.#limits = limits;
  }

  /**
   * Leaders check requests before proposing them; this check is for entries
   * from elsewhere (another version, a damaged log), and gives the same
   * verdict on every replica.
   */
  apply(entry: unknown): KvResult {
    let command: KvCommand;
    try {
      command = parseWrite(entry, this.#limits);
    } catch (err) {
      return { ok: false, refused: `malformed log entry: ${(err as Error).message}` };
    }
    return this.#state.apply(command);
  }

  recall(entry: unknown): KvResult | undefined {
    return this.#state.applied(entry as KvCommand);
  }

  snapshot(): Uint8Array {
    return this.#state.snapshot();
  }

  snapshotInSlices(pause: () => Promise<void>): Promise<Uint8Array> {
    return this.#state.snapshotInSlices(pause);
  }

  /** A leader's snapshot: the in-memory form, or a stored state's pages (a leader on disk). */
  restore(bytes: Uint8Array): void {
    this.#state.restore(isMemorySnapshot(bytes) ? bytes : memorySnapshotOfPages(bytes));
  }
}

/**
 * A "not the leader" answer with the leader's address and the voters'
 * addresses added, so a client that knows one node learns the others.
 */
function withMembers<T extends object>(
  reply: ReplicaReply<T>,
  replica: Replica<KvResult>,
  addressOf: (id: string) => string,
): ReplicaReply<T> {
  if (reply.status !== "not-leader") return reply;
  const voters = replica.raft.status().membership.voters;
  return {
    ...reply,
    leaderAddress: reply.leader === null ? null : addressOf(reply.leader),
    members: voters.map(addressOf),
  };
}
