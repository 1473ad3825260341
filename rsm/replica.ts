/**
 * `Replica`: one replica of any service whose state is a deterministic state machine kept in
 * step by a {@linkcode RaftNode}. The KV service, the shard controller and the shard groups are
 * all replicas with different machines.
 *
 * Writes go through the log and are answered once applied, with the result the machine gave; by
 * default each write sent with `ReplicaClient.submit` is applied once however often it is retried
 * (see `exactly_once.ts`), and an `apply` that throws answers its write with the error instead of
 * stopping the replica. Reads do not touch the log: the leader confirms with a quorum that it
 * still leads (ReadIndex) and waits until it has applied that far, so a deposed leader never
 * answers with stale state. The replica snapshots the machine when the persisted Raft state
 * reaches a limit, and restores it at start and when the leader sends a snapshot.
 *
 * @module
 */
import { deadline, delay } from "../net/async.ts";
import { approximateBytes } from "../net/bytes.ts";
import type { Clock } from "../net/clock.ts";
import { ArgumentsError } from "../net/errors.ts";
import { type Logger, silentLogger } from "../net/logger.ts";
import { OverloadedError } from "./errors.ts";
import type { ServiceMethods } from "../net/rpc_server.ts";
import { type Applied, NotLeaderError, RaftNode } from "../raft/mod.ts";
import { invariant } from "../raft/invariant.ts";
import { defaultClock } from "../net/env.ts";
import { ApplyError } from "./apply_error.ts";
import { StorageCorruptionError } from "../store/storage_errors.ts";
import { type ExactlyOnce, onceOf, parseStampedWrite, type WriteOutcome } from "./exactly_once.ts";
import { LogValues } from "./stored_logged.ts";
import { CompactionPolicy, storedHost } from "./replica_compaction.ts";
import * as stored from "./stored_machine.ts";
import { applyEntry } from "./replica_apply.ts";
import {
  APPLY_SLICE,
  DEFAULT_MAX_PENDING_WRITE_BYTES,
  DEFAULT_MAX_PENDING_WRITES,
  limitReached,
  oldestWaitMs,
} from "./replica_sizing.ts";
import type {
  PendingRead,
  PendingWrite,
  ReplicaMachine,
  ReplicaOptions,
  ReplicaReply,
  ReplicaServeOptions,
  ReplicaStats,
  ReplicaStatus,
  Write,
} from "./replica_types.ts";

export type {
  ReplicaMachine,
  ReplicaOptions,
  ReplicaReply,
  ReplicaServeOptions,
  ReplicaStats,
  ReplicaStatus,
} from "./replica_types.ts";

/**
 * The RPC service a replica serves: its name and, given the replica, its
 * methods. It is registered once the replica has started and removed when
 * it stops.
 *
 * @typeParam R What the machine's `apply` returns.
 *
 * @example
 * ```ts
 * import type { ReplicaService } from "@distkit/distkit/rsm";
 *
 * // `Add` takes what `ReplicaClient.submit` sends: each write applied once.
 * // `Status` is the generic status method a node's tooling can call.
 * const service: ReplicaService<number> = {
 *   name: "Counter",
 *   methods: (replica) => ({
 *     Add: (request: unknown) => replica.write(request),
 *     Status: () => replica.status(),
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

/**
 * A replica: a {@linkcode ReplicaMachine} kept in step by a Raft node, with
 * the means to serve it ({@linkcode Replica.write} for exactly-once writes,
 * {@linkcode Replica.submit}, {@linkcode Replica.read}, {@linkcode Replica.serve}).
 *
 * @typeParam R What the machine's `apply` returns: a write's result.
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
  readonly #logger: Logger;
  /** The dedup table and its log and snapshot formats; undefined with `exactlyOnce: false`. */
  readonly #once: ExactlyOnce<R> | undefined;
  /** Applies through the store, for a machine whose state is stored. */
  readonly #stored: stored.StoredApplier<R> | undefined;
  #appliedIndex: number;
  #writes = new Map<number, PendingWrite<R>[]>();
  /** The term of the last item applied (see `#dropStaleWrites`). */
  #appliedTerm = 0;
  #reads: PendingRead[] = [];
  /** When to snapshot (in memory) or compact the log (stored). */
  readonly #compaction: CompactionPolicy<R>;
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
  #admittedAt = new Set<{ at: number; bytes: number }>();
  readonly #listeners = new Set<() => void>();
  #applier: Promise<void>;
  #stopped = false;

  private constructor(
    raft: RaftNode,
    machine: ReplicaMachine<R> | stored.StoredMachine<R>,
    options: ReplicaOptions & { service?: ReplicaService<R> },
    log?: LogValues,
  ) {
    this.#raft = raft;
    const isStored = stored.isStoredMachine(machine);
    this.#machine = isStored ? stored.storedFacade(machine) : machine;
    this.#options = options;
    this.#service = options.service?.name;
    this.#clock = options.clock ?? defaultClock("Replica");
    this.#logger = options.logger ?? silentLogger;
    this.#once = onceOf<R>(options);
    const report = { logger: this.#logger, node: raft.id };
    this.#stored = isStored
      ? new stored.StoredApplier(machine, {
        once: this.#once,
        ...report,
        clock: this.#clock,
        // A batch the store could not take: it failed, and this replica stops as for an apply.
        onFailure: (err) => void this.#fail(err),
        // The log may be compacted through what is stored now.
        onStored: () => this.#compaction?.maybe(),
        // By default every replica answers once staged and stores in batches sealed by their
        // bounds, not one commit per run: a commit's fixed cost is most of a small run's CPU
        // (bench/apply_cpu.ts), and the apply loop's reads no longer wait behind commits (readKv).
        early: options.answerBeforeStore ?? true,
        log,
      })
      : undefined;
    this.#appliedIndex = this.#stored?.durableIndex ?? 0;
    this.#timeoutMs = options.requestTimeoutMs ??
      2 * (options.electionTicks ?? 10) * (options.tickMs ?? 50);
    this.#compaction = new CompactionPolicy({
      options,
      raft,
      machine: this.#machine,
      once: this.#once,
      clock: this.#clock,
      logger: this.#logger,
      applied: () => this.#appliedIndex,
      ...(this.#stored ? storedHost(this.#stored) : {}),
      stopped: () => this.#stopped,
      counted: () => void this.#counts.snapshots++,
    });
    this.#maxPendingWrites = options.maxPendingWrites ?? DEFAULT_MAX_PENDING_WRITES;
    this.#maxPendingWriteBytes = options.maxPendingWriteBytes ?? DEFAULT_MAX_PENDING_WRITE_BYTES;
    this.#maxQueueDelayMs = options.maxQueueDelayMs ?? this.#timeoutMs / 4;
    if (
      !(this.#maxPendingWrites >= 1) || !(this.#maxPendingWriteBytes >= 1) ||
      !(this.#maxQueueDelayMs >= 0) || !((options.snapshotLogRatio ?? 0) >= 0)
    ) {
      throw new RangeError(
        "maxPendingWrites and maxPendingWriteBytes must be at least 1, maxQueueDelayMs and " +
          "snapshotLogRatio at least 0",
      );
    }
    this.#applier = this.#apply();
  }

  /**
   * Starts the Raft node (restoring the machine from its latest snapshot and
   * log) and registers `options.service` on the RPC server.
   *
   * To crash and restart a replica inside `simulate`: take its server off
   * the network (its calls in flight fail), keep what survived in its
   * storage (`SimStorage.crash()`: a save in progress may be cut short),
   * stop it, and start a new replica on a fresh RPC server and transport
   * (fresh end names, so the dead instance's calls are never delivered on
   * its successor's behalf) from that storage, with a fresh machine. A node
   * process on real machines gets the same from {@linkcode hostNode}.
   *
   * @example Crash and restart a replica in the simulation
   * ```ts
   * import { Replica, type ReplicaMachine } from "@distkit/distkit/rsm";
   * import { SimStorage } from "@distkit/distkit/raft";
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
   *   const start = async (storage: SimStorage) => {
   *     const server = new RpcServer();
   *     const machine = new Counter();
   *     const replica = await Replica.start(machine, {
   *       id: "a",
   *       peers: ["a"],
   *       transport: net.transportFor("a"), // a fresh one per incarnation
   *       server,
   *       storage,
   *       clock,
   *       random: random.fork(),
   *     });
   *     net.addServer("a", server);
   *     return { replica, machine };
   *   };
   *   const submit = async (replica: Replica<number>, n: number) => {
   *     while (true) {
   *       try {
   *         const result = await replica.submit(n);
   *         if (result !== null) return result;
   *       } catch {
   *         await delay(10, { clock }); // not the leader yet
   *       }
   *     }
   *   };
   *   let storage = new SimStorage({ clock, random: random.fork(), name: "a" });
   *   let { replica } = await start(storage);
   *   assert.equal(await submit(replica, 2), 2);
   *   // Crash: off the network, keep what survived, stop.
   *   net.deleteServer("a");
   *   storage = storage.crash();
   *   await replica.stop();
   *   // Restart from what survived: the log is applied again.
   *   let machine: Counter;
   *   ({ replica, machine } = await start(storage));
   *   assert.equal(await submit(replica, 3), 5);
   *   assert.equal(machine.n, 5);
   *   await replica.stop();
   * }, { seed: 1 });
   * ```
   */
  static async start<R>(
    machine: ReplicaMachine<R> | stored.StoredMachine<R>,
    options: ReplicaOptions & { service?: ReplicaService<R> },
  ): Promise<Replica<R>> {
    const isStored = stored.isStoredMachine(machine);
    // Before the node reads its log: a state pointing into a lost or damaged log is refused.
    const log = isStored
      ? await LogValues.attach(machine, { ...options, once: onceOf(options) })
      : undefined;
    const raft = await RaftNode.start(isStored ? stored.raftOptions(machine, options) : options);
    const replica = new Replica(raft, machine, options, log);
    if (options.service) {
      options.server.addService(options.service.name, options.service.methods(replica));
    }
    return replica;
  }

  /**
   * Resolves once the replica has stopped: by {@linkcode Replica.stop}, or
   * on its own when its Raft node failed (storage, an invariant; reported
   * to the `logger`), after which {@linkcode Replica.stopped} is true.
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
   * This replica's view of its group: what a custom node's status method
   * answers (`Status: () => replica.status()` among the service's methods).
   */
  status(): ReplicaStatus {
    const raft = this.#raft.status();
    return {
      id: raft.id,
      role: raft.role,
      term: raft.term,
      leader: raft.leader,
      commitIndex: raft.commitIndex,
      appliedIndex: this.#appliedIndex,
      snapshotIndex: raft.snapshotIndex,
      voters: [...raft.membership.voters],
      raftStateSize: this.#options.storage.raftStateSize(),
      sessions: this.#once?.sessions ?? 0,
      stopped: this.#stopped,
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
   * applied for it; retry). No session: a retry of it applies again. For
   * writes that take effect once, serve {@linkcode Replica.write} and call
   * it with `ReplicaClient.submit`.
   *
   * @throws {NotLeaderError} when this replica does not lead.
   * @throws {ArgumentsError} when the machine's `validate` refuses it (nothing was proposed).
   * @throws {ApplyError} when the machine's `apply` threw on it (on every replica alike).
   */
  submit(entry: unknown): Promise<R | null> {
    return this.#propose({ command: entry }, (outcome) => {
      if (outcome === null) return null;
      if ("error" in outcome) throw new ApplyError("the command", outcome.message);
      return outcome.result;
    });
  }

  /**
   * Serves an exactly-once write as `ReplicaClient.submit` sends it
   * (`{ client, seq, command }`): a write the table knows applied is
   * answered with its recorded outcome at once; any other is checked with
   * the machine's `validate`, proposed, and answered once applied. The
   * answer is an `ok` with the {@linkcode WriteOutcome} (the result, or the
   * error `apply` threw) or where to go instead, as from
   * {@linkcode Replica.serve}; the client turns an error outcome into an
   * `ApplyError`.
   *
   * @throws {ArgumentsError} when the request is malformed or `validate`
   * refuses the command (the client gets a `RequestError`).
   * @throws {Error} when the replica was started with `exactlyOnce: false`.
   */
  async write(request: unknown): Promise<ReplicaReply<WriteOutcome<R>>> {
    const once = this.#once;
    if (once === undefined) {
      throw new Error(
        "Replica.write needs exactly-once writes, and this replica was started with " +
          "exactlyOnce: false: propose with Replica.submit, or drop the option",
      );
    }
    return await this.serve<WriteOutcome<R>>("writes", async () => {
      const write = parseStampedWrite(request);
      const outcome = once.recall(write) ?? await this.#propose(write, (o) => o);
      if (outcome === null) {
        return { status: "retry", reason: "a new leader's entry took this write's place" };
      }
      return { status: "ok", ...outcome };
    });
  }

  /** Runs the machine's `validate` on a command: a refusal is an `ArgumentsError`. */
  #validate(command: unknown): void {
    if (this.#machine.validate === undefined) return;
    try {
      this.#machine.validate(command);
    } catch (err) {
      if (err instanceof ArgumentsError) throw err;
      throw new ArgumentsError(err instanceof Error ? err.message : String(err));
    }
  }

  /**
   * Validates, admits and proposes a write; resolves with `answer(outcome)`
   * once applied (rejects with what `answer` throws). `answer` runs as the
   * outcome arrives, so the caller resumes on the same turn as it would on
   * the outcome itself: code after `await submit()` sees the state just
   * after its entry, as it always has (the shard groups rely on it).
   */
  async #propose<T>(write: Write, answer: (outcome: WriteOutcome<R> | null) => T): Promise<T> {
    this.#validate(write.command);
    const entry = this.#once ? this.#once.entry(write) : write.command;
    const bytes = approximateBytes(entry);
    this.#admit(bytes);
    this.#pendingWrites++;
    this.#pendingWriteBytes += bytes;
    const admitted = { at: this.#clock.now(), bytes };
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
    return await new Promise<T>((resolve, reject) => {
      const list = this.#writes.get(index) ?? [];
      list.push({
        term,
        write,
        resolve: (outcome) => {
          release();
          try {
            resolve(answer(outcome));
          } catch (err) {
            reject(err);
          }
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
   * @throws {OverloadedError} when a limit is reached (nothing was proposed).
   */
  #admit(bytes: number): void {
    const reason = this.refusal(bytes);
    if (reason === undefined) return;
    this.#counts.overloaded++;
    throw new OverloadedError(this.#service ?? "replica", reason, {
      retryAfterMs: this.#retryAfterMs(),
    });
  }

  /**
   * Why a write of about `bytes` would be refused as overloaded now, or
   * undefined when it would be admitted: for a front end (HTTP) to refuse
   * before it reads a body it would only throw away. Advisory: the write
   * itself is checked again when submitted.
   */
  refusal(bytes: number): string | undefined {
    // Only a leader admits: elsewhere the proposal is refused as "not the leader", which sends the
    // client on (writes left pending from an earlier leadership must not hold refusals for ever).
    if (this.#raft.status().role !== "leader") return undefined;
    const reason = this.#limitReached(bytes);
    // Writes this node proposed while it led before may be past its log's end now: left pending,
    // they would hold every write off while nothing new could be appended to settle them.
    if (reason === undefined || !this.#settleLostWrites()) return reason;
    return this.#limitReached(bytes);
  }

  /** Which limit a write of `bytes` would pass now, if any. */
  #limitReached(bytes: number): string | undefined {
    return limitReached(bytes, {
      writes: this.#pendingWrites,
      writeBytes: this.#pendingWriteBytes,
      oldestWaitMs: oldestWaitMs(this.#admittedAt, bytes, this.#clock.now()),
      maxWrites: this.#maxPendingWrites,
      maxWriteBytes: this.#maxPendingWriteBytes,
      maxQueueDelayMs: this.#maxQueueDelayMs,
    });
  }

  /**
   * On a leader: answers null (certainly not applied) the writes proposed in
   * an earlier term at indexes past the end of its log. A leader's log keeps
   * all it has during its term, and every entry it appends carries this
   * term, so an entry of an earlier term at those indexes can never be
   * committed. Whether any was settled.
   */
  #settleLostWrites(): boolean {
    const { role, term, lastIndex } = this.#raft.status();
    if (role !== "leader") return false;
    let settled = false;
    for (const [index, list] of this.#writes) {
      if (index <= lastIndex) continue;
      const lost = list.filter((w) => w.term < term);
      if (lost.length === 0) continue;
      const kept = list.filter((w) => w.term >= term);
      if (kept.length === 0) this.#writes.delete(index);
      else this.#writes.set(index, kept);
      for (const w of lost) w.resolve(null);
      settled = true;
    }
    return settled;
  }

  /** A pause long enough for the writes in progress to drain: about one commit round. */
  #retryAfterMs(): number {
    return Math.max(100, 2 * (this.#options.tickMs ?? 50) * (this.#options.heartbeatTicks ?? 2));
  }

  /**
   * Resolves once this replica has confirmed it leads (ReadIndex) and has applied everything
   * committed before the call: its machine may then be read as of a moment within the call.
   *
   * @throws {NotLeaderError} when this replica does not lead.
   */
  async read(): Promise<void> {
    const index = await this.#raft.readIndex();
    if (index <= this.#appliedIndex) return;
    await new Promise<void>((resolve, reject) => this.#reads.push({ index, resolve, reject }));
  }

  /**
   * Runs a request against the deadline ({@linkcode Replica.requestTimeoutMs}, or `options.signal`
   * without a timer of its own), turning "not the leader", "stopped" and "too slow" into answers
   * that send the client elsewhere, and counts the outcome as a read or a write. A request that
   * throws `ArgumentsError` (malformed) is counted and rethrown, for the RPC layer to report.
   */
  async serve<T extends object>(
    kind: "reads" | "writes",
    work: () => Promise<ReplicaReply<T>>,
    options: ReplicaServeOptions = {},
  ): Promise<ReplicaReply<T>> {
    let reply: ReplicaReply<T>;
    try {
      const bound = options.signal ? options : { timeoutMs: this.#timeoutMs, clock: this.#clock };
      reply = await deadline(work(), bound);
    } catch (err) {
      if (err instanceof ArgumentsError) {
        this.#counts.badRequests++;
        throw err;
      }
      // Applied, as an error: a final answer, not a reason to retry elsewhere.
      if (err instanceof ApplyError) throw err;
      if (err instanceof OverloadedError) {
        return { status: "overloaded", reason: err.reason, retryAfterMs: err.retryAfterMs };
      }
      // Damage under the state (a logged value's record): stop, so an intact replica serves.
      if (err instanceof StorageCorruptionError) {
        void this.#fail(err, "it could not read its state");
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
        if (this.#stored === undefined) this.#applyOne(item);
        else {
          const last = this.#raft.appliedBacklog === 0;
          await this.#stored.take(item, { last, done: (it, outcome) => this.#settle(it, outcome) });
        }
        for (const listener of this.#listeners) listener();
        // A backlog comes out of the stream without a turn of the event loop in between: a follower
        // catching up on thousands of entries went deaf for seconds (issue 16).
        if (this.#raft.appliedBacklog === 0) run = 0;
        else if (++run >= APPLY_SLICE) {
          run = 0;
          await delay(0, { clock: this.#clock });
        }
      }
    } catch (err) {
      await this.#fail(err);
    }
    await this.#stored?.close();
    // The stream ends when the Raft node stops: by stop(), or on its own
    // after a failure (storage, an invariant), which it has reported.
    if (!this.#stopped) {
      this.#stopped = true;
      if (this.#service) this.#options.server.removeService(this.#service);
      this.#failPending();
    }
  }

  /** A replica that cannot apply (or store) what Raft committed must not serve. */
  async #fail(err: unknown, what = "it could not apply what Raft committed"): Promise<void> {
    this.#logger.log("error", `replica stopped: ${what}`, {
      node: this.#raft.id,
      error: (err as Error)?.message ?? String(err),
    });
    await this.#raft.stop();
  }

  #applyOne(item: Applied): void {
    const once = this.#once;
    if (item.type === "snapshot") this.#machine.restore(once ? once.restore(item.data) : item.data);
    const at = { once, logger: this.#logger, node: this.#raft.id, index: item.index };
    const command = item.type === "command" ? item.command : undefined;
    this.#settle(
      item,
      item.type === "command" ? applyEntry(this.#machine, command, at) : undefined,
    );
  }

  /** What follows applying `item` (its `outcome`, for a command): answers, reads, a snapshot. */
  #settle(item: Applied, outcome: WriteOutcome<R> | undefined): void {
    if (item.type === "snapshot") {
      this.#appliedIndex = item.index;
      this.#counts.installs++;
      // The leader's snapshot replaced the log: snapshotting again a whole
      // threshold later would keep the leader's turn; take this replica's own.
      this.#compaction.installed(item.data.byteLength);
      // Proposals whose entries the snapshot covers: the machine may know.
      for (const [index, list] of this.#writes) {
        if (index > item.index) continue;
        this.#writes.delete(index);
        for (const w of list) w.resolve(this.#recall(w.write));
      }
    } else if (item.type === "internal") {
      this.#appliedIndex = item.index;
      // A proposal at this index lost it to a new leader's own entry.
      this.#settleWrites(item.index, null);
    } else {
      this.#appliedIndex = item.index;
      this.#settleWrites(item.index, { term: item.term, outcome: outcome! });
    }
    if (item.term > this.#appliedTerm) {
      this.#appliedTerm = item.term;
      this.#dropStaleWrites(item.index);
    }
    this.#wakeReads();
    this.#compaction.maybe();
  }

  /** The outcome of a write whose index a snapshot covered, if the state knows it; else null. */
  #recall(write: Write): WriteOutcome<R> | null {
    if (this.#once) return this.#once.recall(write) ?? null;
    const result = this.#machine.recall?.(write.command);
    return result === undefined ? null : { result };
  }

  /** Answers the proposals at `index`: with `applied`'s outcome if it is their entry, else null. */
  #settleWrites(
    index: number,
    applied: { term: number; outcome: WriteOutcome<R> } | null,
  ): void {
    const list = this.#writes.get(index);
    if (list === undefined) return;
    this.#writes.delete(index);
    for (const w of list) w.resolve(applied?.term === w.term ? applied.outcome : null);
  }

  /**
   * Proposals beyond `index` of a term older than the one just applied can never be committed
   * (the terms along a log never decrease): nothing will be applied for them. Left waiting for
   * an entry at their index, they held a leader's admission limits for good.
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
}
