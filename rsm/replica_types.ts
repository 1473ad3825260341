/**
 * The types a service author meets around a `Replica`: the state
 * machine it replicates, its options, the replies its methods give, its
 * counters and its status.
 *
 * @module
 */
import type { Logger } from "../net/logger.ts";
import type { RpcServer } from "../net/rpc_server.ts";
import type { Transport } from "../net/transport.ts";
import type { RaftNodeOptions, RaftStatus } from "../raft/mod.ts";
import type { WriteOutcome } from "./exactly_once.ts";
import type { ValuesInLogOptions } from "./stored_logged.ts";

/**
 * A deterministic state machine a `Replica` applies committed
 * entries to. Every replica must give the same results for the same entries.
 *
 * The author writes `apply`, `snapshot` and `restore`; by default the
 * replica makes every write sent with `ReplicaClient.submit` take effect
 * once (`exactlyOnce` in {@linkcode ReplicaOptions}): `apply` is called once
 * per write however often the client retries, and the dedup table travels
 * in the snapshots beside the machine's bytes, so neither `snapshot` nor
 * `restore` needs to know of it.
 *
 * @typeParam R What `apply` returns: the result the proposer gets back. It
 * travels to the client and is kept in the dedup table (and its snapshots),
 * so keep it to values the codec encodes (plain data, byte arrays).
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
   *
   * When it throws, the replica answers the write with the error (the
   * client gets an `ApplyError` with its message), logs it, and goes on:
   * every replica applies the same entry and throws the same way, so the
   * cluster stays in step and keeps serving. Only a `RaftInvariantError`
   * stops the replica. Check before changing anything, or what `apply`
   * changed before it threw stays changed.
   */
  apply(entry: unknown): R;
  /**
   * Optional: refuses a command before it is proposed, by throwing (an
   * `ArgumentsError` names the problem; anything else is wrapped in one).
   * The client gets a `RequestError` and nothing enters the log. Keep it
   * a pure check of the command alone: it runs on the leader only, against
   * no state.
   */
  validate?(command: unknown): void;
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
   * table of its own, with `exactlyOnce: false`), else undefined (the
   * proposer is told to retry). Not needed with `exactlyOnce`: the
   * replica's own table answers.
   */
  recall?(entry: unknown): R | undefined;
}

/**
 * Options of `Replica.start`: those of the Raft node underneath,
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
  /** How to reach the other nodes by id (services call each other on it too). */
  transport: Transport;
  /** The RPC server peers and clients call; the node registers `Raft` and the service on it. */
  server: RpcServer;
  /**
   * Whether the replica makes writes take effect once: it keeps a dedup
   * table of the writes stamped with a client session (by
   * `ReplicaClient.submit`; served with `Replica.write`), calls `apply` for
   * each once, answers retries with the recorded outcome, and keeps the
   * table in its snapshots. `false`: the machine does its own (the KV
   * service and the shard groups keep their tables in their state); the
   * snapshots are then the machine's bytes alone. Every replica of a
   * service must use the same setting, for good (it shapes the snapshots).
   * Default true.
   */
  exactlyOnce?: boolean;
  /** Where the replica reports what it has to say (an `apply` that threw, a stop). Default: silent. */
  logger?: Logger;
  /**
   * Snapshot once the persisted Raft state reaches this many bytes, so the
   * log stays small; with a {@linkcode snapshotLogRatio}, once it reaches
   * this or that multiple of the last snapshot's size, whichever is larger.
   * Default: never (the log grows without bound).
   */
  maxRaftState?: number;
  /**
   * How much log a snapshot must be worth, as a multiple of the last
   * snapshot's size: the replica snapshots when the persisted Raft state
   * reaches max(`maxRaftState`, ratio × last snapshot bytes). Each snapshot
   * encodes and writes the whole state, so at a fixed threshold a state much
   * larger than it is written again and again (10–20× the bytes applied for
   * a 70 MiB state at 4 MiB); with ratio r the bytes snapshotted stay within
   * about 1/r of the bytes applied, at the cost of a log up to r × the state.
   * 0 (the default): `maxRaftState` alone, a hard bound on the log as the
   * course's tests check (persisted Raft state ≤ 8 × maxraftstate). The KV
   * and shard node processes use 1.
   */
  snapshotLogRatio?: number;
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
   * pending, whatever its size. A write over 64 KiB may take all of it but
   * an eighth, kept for smaller writes, so that they get in while large ones
   * fill it. Default 8 MiB: what a busy disk commits in a fraction of
   * `requestTimeoutMs`. With 4 MiB only three 1 MiB writes were in
   * progress at once, and 200 clients of 1 MiB values got 0.43 of the
   * disk's rate (issue 16, BENCHMARKS "Tenth round"); 8 MiB gave 0.53 with
   * no leader change, on a quiet and on a loaded 2-core machine (where an
   * earlier version of the node lost its leader at 8 MiB); 16 MiB left a
   * follower behind and doubled the leader's memory for 0.03 more.
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
  /**
   * For a machine whose state is stored: answer an entry once it is
   * applied into a batch, and store the batches in the background (see
   * `stored_layers.ts`), instead of answering once its batch is stored.
   * Safe either way (the entry is in a majority's log; reads see the
   * staged writes, through the staged layers or, for a machine that reads
   * its store itself, by each write's index until the store reaches it; the
   * log is kept from the stored index on; a commit that fails stops the
   * replica, and a restart replays the log from the stored index). Commits are
   * then fewer and larger (with runs of 1–8 entries, 40–80% less CPU per
   * put, bench/apply_cpu.ts). First measured slower on a leader (19–49%
   * fewer puts/s at 16–64 clients: its reads waited behind the background
   * commits on the one Deno KV handle); since the store reads through a
   * handle of its own (`StateStoreOptions.readKv`) and a put no longer
   * reads its key, a 3-node cluster on 2 cores answered 8–42% more puts/s
   * at 16 connections (every round; 10–28% less leader CPU per put), and
   * more at 64 in 3 rounds of 4 (bench/http_cpu.ts, diskapply30).
   * Default: true on every replica.
   * `false`: answer once stored.
   */
  answerBeforeStore?: boolean;
  /**
   * For a machine whose state is stored, on a node whose Raft log is a
   * `SegmentLogStorage`: keep a large value a command carries
   * (`StoredMachine.loggedValue`) in its log entry instead of copying it
   * into the state (`stored_logged.ts`); `true` for the defaults. Rows that
   * point into the log are read whatever this says. Default false.
   */
  valuesInLog?: boolean | ValuesInLogOptions;
}

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
 *
 * @typeParam T The fields of an `ok` answer beside `status` (the payload:
 * `{ value }` for a read, `{ result }` for a write...); none by default.
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
 * Counters and gauges of a `Replica`, for monitoring.
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
 * One replica's view of its group, from `Replica.status()`: what a
 * custom node's status method answers (the KV node's `KV.Status` says the
 * same and more).
 *
 * @example
 * ```ts
 * import type { ReplicaStatus } from "@distkit/distkit/rsm";
 *
 * function line(s: ReplicaStatus): string {
 *   return `${s.id} ${s.role} term ${s.term}, leader ${s.leader ?? "none"}, applied ${s.appliedIndex}`;
 * }
 * ```
 */
export interface ReplicaStatus {
  /** The replica's Raft id. */
  id: string;
  /** `leader`, `follower`, `candidate`... */
  role: RaftStatus["role"];
  /** Its current term. */
  term: number;
  /** The leader as far as it knows (null: none known). */
  leader: string | null;
  /** Its highest committed log index. */
  commitIndex: number;
  /** The highest log index its state reflects. */
  appliedIndex: number;
  /** The index its latest snapshot covers. */
  snapshotIndex: number;
  /** The voting members. */
  voters: string[];
  /** Bytes of Raft state it stores (log and metadata; the snapshot apart). */
  raftStateSize: number;
  /** Client sessions in its dedup table (0 with `exactlyOnce: false`). */
  sessions: number;
  /** Whether it has stopped serving. */
  stopped: boolean;
}

// The replica's own bookkeeping (not exported from the module).

/** A write to propose: a command, stamped with its session when sent exactly-once. */
export interface Write {
  client?: string;
  seq?: number;
  command: unknown;
}

/** A proposal waiting to come out of the log at its index. */
export interface PendingWrite<R> {
  term: number;
  write: Write;
  /** Null when another entry took the index: the client must retry. */
  resolve: (outcome: WriteOutcome<R> | null) => void;
}

/** A read waiting for the state machine to reach `index`. */
export interface PendingRead {
  index: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Options of {@linkcode Replica.serve}.
 *
 * @example
 * ```ts
 * import type { ReplicaServeOptions } from "@distkit/distkit/rsm";
 *
 * const options: ReplicaServeOptions = { signal: AbortSignal.timeout(1000) };
 * ```
 */
export interface ReplicaServeOptions {
  /**
   * Ends the wait when it fires (the request is answered `retry`, as when
   * the replica's own deadline passes), in place of that deadline's timer.
   * Default: none; the replica's `requestTimeoutMs` bounds the wait.
   */
  signal?: AbortSignal;
}
