/**
 * `ShardGroupServer`: one replica of a shard group. It serves the keys of
 * the shards its group owns (`ShardKV.Get`, `ShardKV.Write`, answering
 * `wrong-group` for the others), and, while it leads, follows the
 * controller one configuration at a time: it pulls each shard that becomes
 * its group's from the group that held it (`ShardKV.Pull`), installs it
 * through the log, then tells that group to delete its copy
 * (`ShardKV.Delete`).
 *
 * @module
 */
import { deadline, delay } from "../net/async.ts";
import { RequestError } from "../rsm/errors.ts";
import {
  DEFAULT_KV_LIMITS,
  type KvLimits,
  type KvReply,
  parseGet,
  parseWrite,
} from "../kvstate/protocol.ts";
import { Replica, type ReplicaOptions, type ReplicaStats } from "../rsm/replica.ts";
import { ReplicaClients } from "../rsm/replica_client.ts";
import { ArgumentsError } from "../net/errors.ts";
import { expectShape } from "../net/rpc_server.ts";
import type { RaftNode } from "../raft/mod.ts";
import { keyToShard, type ShardConfig } from "./config.ts";
import { ShardControllerClerk } from "./controller.ts";
import {
  type GroupEntry,
  type GroupResult,
  ShardGroupState,
  type ShardSource,
  type ShardStatus,
} from "./group_state.ts";
import { StoredShardGroupState } from "./stored_group_state.ts";
import { groupSnapshotOfPages } from "./stored_group_convert.ts";
import { isMemorySnapshot } from "../kvstate/stored_convert.ts";
import type { StateStore } from "../store/state_store.ts";

/** The name of the groups' RPC service. */
export const SHARD_SERVICE = "ShardKV";

/**
 * Options of {@linkcode ShardGroupServer.start}: a replica's, plus the
 * group's id and how to reach the controller.
 *
 * @example
 * ```ts
 * import type { ShardGroupOptions } from "@distkit/distkit/shard";
 *
 * const extra: Partial<ShardGroupOptions> = { gid: 100, ctrlers: ["c0", "c1", "c2"] };
 * ```
 */
export interface ShardGroupOptions extends ReplicaOptions {
  /** This group's id (as the controller knows it). */
  gid: number;
  /** The controller replicas' names (reached through `transport`). */
  ctrlers: string[];
  /** Key and value limits; every server of every group must use the same. */
  limits?: Partial<KvLimits>;
  /** How often the leader polls the controller and retries migrations. Default 100 ms. */
  pollMs?: number;
  /**
   * A migrating shard moves in pages of about this many bytes of keys and
   * values (each a message and a log entry). Default 1 MiB.
   */
  migrationPageBytes?: number;
  /**
   * Called whenever this replica answers a request for a key (for tests
   * that check no shard is served by two groups in one configuration).
   */
  onServe?: (event: { shard: number; num: number; gid: number }) => void;
  /**
   * Told of a migration step (a shard's pull, or the release of a shard at
   * the group that held it) that has kept failing for 5 s, then every 5 s
   * with the latest reason, and of its end. Default: nothing.
   */
  log?: (line: string) => void;
  /**
   * Keep the group's state in this store instead of in memory (issue 19,
   * see {@linkcode StoredShardGroupState}): written with the applied index
   * it reflects, so a restart replays only the log after it, and the log is
   * compacted without encoding the state. The store is the caller's (on
   * the node's `raft.kv`, or a `SimKv` in a simulation), opened before the
   * server and closed after it. Default: in memory. Servers of a group may
   * differ (during a move to disk, one server at a time): a follower takes
   * a snapshot in either form, converting it (`stored_group_convert.ts`);
   * groups may differ too (shard transfer pages are the same).
   */
  stateStore?: StateStore;
}

/** A migration step failing this long is reported, and again every as long. */
const SLOW_MIGRATION_MS = 5000;

/**
 * Counters and gauges of a {@linkcode ShardGroupServer}.
 *
 * @example
 * ```ts
 * import type { ShardGroupStats } from "@distkit/distkit/shard";
 *
 * const line = (s: ShardGroupStats) => `config ${s.configNum}, ${s.writes} writes`;
 * ```
 */
export interface ShardGroupStats extends ReplicaStats {
  /** The configuration the group has reached. */
  configNum: number;
  /** The status of each shard the group holds. */
  shards: Record<number, ShardStatus>;
}

/**
 * One replica of a shard group.
 *
 * @example
 * ```ts
 * import { ShardGroupServer } from "@distkit/distkit/shard";
 * import { MemoryStorage } from "@distkit/distkit/raft";
 * import { RpcServer, simulate } from "@distkit/distkit/net";
 *
 * await simulate(async ({ clock, net, random }) => {
 *   const server = new RpcServer();
 *   net.addServer("g100-0", server);
 *   const group = await ShardGroupServer.start({
 *     gid: 100,
 *     ctrlers: ["c0"],
 *     id: "g100-0",
 *     peers: ["g100-0"],
 *     transport: net.transportFor("g100-0"),
 *     server,
 *     storage: new MemoryStorage(),
 *     clock,
 *     random,
 *   });
 *   await group.stop();
 * }, { seed: 1 });
 * ```
 */
export class ShardGroupServer {
  readonly #replica: Replica<GroupResult>;
  readonly #state: ShardGroupState | StoredShardGroupState;
  readonly #options: ShardGroupOptions;
  readonly #ctrler: ShardControllerClerk;
  readonly #groups: ReplicaClients;
  readonly #configs = new Map<number, ShardConfig>();
  readonly #stopLoop = new AbortController();
  readonly #pageBytes: number;
  #loop: Promise<void> = Promise.resolve();
  /** The migration tasks running (pulls and releases), by name. */
  readonly #tasks = new Map<string, Promise<void>>();
  /** Migration tasks that failed: since when (their first attempt began), and when last reported. */
  readonly #failing = new Map<string, { since: number; reported: number | undefined }>();

  private constructor(
    replica: Replica<GroupResult>,
    state: ShardGroupState | StoredShardGroupState,
    options: ShardGroupOptions,
  ) {
    this.#replica = replica;
    this.#state = state;
    this.#options = options;
    this.#groups = new ReplicaClients(options.transport, {
      clock: options.clock,
      random: options.random?.fork(),
    });
    this.#pageBytes = options.migrationPageBytes ?? 1024 * 1024;
    this.#ctrler = new ShardControllerClerk(options.transport, options.ctrlers, {
      clock: options.clock,
      random: options.random?.fork(),
      id: `group-${options.gid}-${options.id}`,
    });
  }

  /** Starts the replica (restoring its state) and its migration loop, and begins serving. */
  static async start(options: ShardGroupOptions): Promise<ShardGroupServer> {
    const limits = { ...DEFAULT_KV_LIMITS, ...options.limits };
    const state = options.stateStore
      ? await StoredShardGroupState.open(options.stateStore, { gid: options.gid, limits })
      : new ShardGroupState({ gid: options.gid, limits });
    // The service methods need the server, which needs the replica: tied up after.
    const ref: { self?: ShardGroupServer } = {};
    const replica = await Replica.start(
      state instanceof StoredShardGroupState ? state : {
        apply: (entry: unknown) => state.apply(entry),
        recall: (entry: unknown) => state.recall(entry),
        snapshot: () => state.snapshot(),
        // A stored leader's snapshot is its store's pages (servers of a group moving to disk).
        restore: (bytes: Uint8Array) =>
          state.restore(
            isMemorySnapshot(bytes)
              ? bytes
              : groupSnapshotOfPages(bytes, { gid: options.gid, limits }),
          ),
      },
      {
        ...options,
        // The machine keeps its own dedup table (in its state and snapshots).
        exactlyOnce: false,
        service: {
          name: SHARD_SERVICE,
          methods: (replica) => ({
            Get: (args: unknown) => replica.serve("reads", () => ref.self!.#get(args, limits)),
            Write: (args: unknown) => replica.serve("writes", () => ref.self!.#write(args, limits)),
            Pull: (args: unknown) => replica.serve("reads", () => ref.self!.#pull(args)),
            Delete: (args: unknown) => replica.serve("writes", () => ref.self!.#delete(args)),
            // Who this server is, from any replica (no leader needed): `distkit shard join`
            // asks before the controller is told of a group (shard/group_probe.ts).
            Status: () => {
              const { voters, learners } = replica.raft.status().membership;
              return {
                gid: options.gid,
                configNum: state.config.num,
                members: [...voters, ...learners],
              };
            },
          }),
        },
      },
    );
    const self = new ShardGroupServer(replica, state, options);
    ref.self = self;
    self.#loop = self.#run();
    return self;
  }

  /** The Raft node underneath. */
  get raft(): RaftNode {
    return this.#replica.raft;
  }

  /** Resolves once the replica has stopped: by `stop`, or on its own after a failure (reported). */
  get finished(): Promise<void> {
    return this.#replica.finished;
  }

  /** The group's state on this replica (for inspection and tests): in memory, or stored. */
  get state(): ShardGroupState | StoredShardGroupState {
    return this.#state;
  }

  /** Counters and gauges for monitoring. */
  stats(): ShardGroupStats {
    return {
      ...this.#replica.stats(),
      configNum: this.#state.config.num,
      shards: Object.fromEntries(this.#state.statuses()),
    };
  }

  /** Stops the migration loop, serving, and the Raft node. */
  async stop(): Promise<void> {
    this.#stopLoop.abort();
    await this.#replica.stop();
    await this.#loop;
    await Promise.all(this.#tasks.values());
  }

  #served(shard: number, num = this.#state.config.num): void {
    this.#options.onServe?.({ shard, num, gid: this.#state.gid });
  }

  async #get(args: unknown, limits: KvLimits): Promise<KvReply> {
    const key = parseGet(args, limits);
    await this.#replica.read();
    const shard = keyToShard(key);
    const state = this.#state;
    const read = state instanceof StoredShardGroupState
      ? await state.read(key)
      : state.store(shard) && { value: state.store(shard)!.get(key), num: state.config.num };
    if (read === undefined) return { status: "wrong-group" };
    this.#served(shard, read.num);
    return { status: "ok", value: read.value };
  }

  async #write(args: unknown, limits: KvLimits): Promise<KvReply> {
    const command = parseWrite(args, limits);
    const entry: GroupEntry = { kind: "op", command };
    const state = this.#state;
    const recalled = state instanceof StoredShardGroupState
      ? await state.recall(entry)
      : state.recall(entry);
    const outcome = recalled ?? await this.#replica.submit(entry);
    if (outcome === null) {
      return { status: "retry", reason: "its log entry went to another command (a new leader's)" };
    }
    if (outcome.kind === "wrong-group") return { status: "wrong-group" };
    if (outcome.kind !== "write") {
      throw new RequestError("shard", "a write was applied as another entry");
    }
    this.#served(keyToShard(command.write.key), outcome.num);
    return { status: "ok", result: outcome.result };
  }

  /** Hands over a page of the data of a shard that left this group, once it has. */
  async #pull(
    args: unknown,
  ): Promise<{ status: "ok"; data: Uint8Array; next: string | null } | KvRetry> {
    const { shard, leftAt, after } = expectShape<
      { shard: number; leftAt: number; after: string | null }
    >(args, { shard: "integer", leftAt: "integer", after: "any" });
    if (after !== null && typeof after !== "string") {
      throw new ArgumentsError("after must be a key or null");
    }
    await this.#replica.read();
    const state = this.#state;
    const range = { after, maxBytes: this.#pageBytes };
    const page = state instanceof StoredShardGroupState
      ? await state.leavingPage(shard, leftAt, range)
      : state.leavingPage(shard, leftAt, range);
    if (page === undefined) {
      return {
        status: "retry",
        reason: `shard ${shard} has not left this group at configuration ${leftAt} yet ` +
          `(this group is at ${this.#state.config.num})`,
      };
    }
    return { status: "ok", ...page };
  }

  /** Drops this group's copy of a shard its new owner has installed. */
  async #delete(args: unknown): Promise<{ status: "ok" } | KvRetry> {
    const { shard, leftAt } = expectShape<{ shard: number; leftAt: number }>(
      args,
      { shard: "integer", leftAt: "integer" },
    );
    if (this.#state.config.num < leftAt) {
      return { status: "retry", reason: `this group has not reached configuration ${leftAt}` };
    }
    const outcome = await this.#replica.submit({ kind: "delete", shard, leftAt });
    if (outcome === null) return { status: "retry", reason: "entry lost to a new leader" };
    return { status: "ok" };
  }

  /** While this replica leads: follow the controller, pull shards, release sources. */
  async #run(): Promise<void> {
    const signal = this.#stopLoop.signal;
    const pollMs = this.#options.pollMs ?? 100;
    while (!signal.aborted) {
      try {
        if (this.#replica.raft.status().role === "leader") await this.#step(signal);
      } catch {
        // A failed round (unreachable controller or group, lost leadership) is retried.
      }
      try {
        await delay(pollMs, { clock: this.#replica.clock, signal });
      } catch {
        return;
      }
    }
  }

  async #step(signal: AbortSignal): Promise<void> {
    const state = this.#state;
    const num = state.config.num;
    // Each shard's pull or release goes on its own: a slow or dead group (its
    // calls time out) must not hold up the shards that can move now.
    const scheduled = new Set<string>();
    for (const { shard, source } of state.pulling()) {
      const from = `group ${source.gid} (${source.servers.join(", ")})`;
      this.#once(
        scheduled,
        `the pull of shard ${shard} from ${from} for configuration ${num}`,
        async () => {
          // Page after page, each installed through the log before the next is asked for.
          while (!signal.aborted && state.config.num === num) {
            const progress = state.pulling().find((p) => p.shard === shard);
            if (progress === undefined) return;
            const reply = await this.#groups.for(source.servers).call<{ data: Uint8Array }>(
              `${SHARD_SERVICE}.Pull`,
              { shard, leftAt: source.leftAt, after: progress.after },
              { operation: "pull", write: false, rounds: 1, signal },
            );
            if (reply?.status !== "ok" || !(reply.data instanceof Uint8Array)) {
              throw new Error(`it answered ${describeReply(reply)}`);
            }
            await this.#propose({
              kind: "install",
              num,
              shard,
              page: progress.pages,
              data: reply.data,
            });
          }
        },
      );
    }
    for (const { shard, source } of state.received()) {
      const from = `group ${source.gid} (${source.servers.join(", ")})`;
      this.#once(
        scheduled,
        `the release of shard ${shard} at ${from} for configuration ${num}`,
        async () => {
          const reply = await this.#groups.for(source.servers).call(
            `${SHARD_SERVICE}.Delete`,
            { shard, leftAt: source.leftAt },
            { operation: "delete", write: true, rounds: 1, signal },
          );
          if (reply?.status !== "ok") throw new Error(`it answered ${describeReply(reply)}`);
          await this.#propose({ kind: "released", num, shard });
        },
      );
    }
    // Steps no longer due (their shard arrived, or the group moved on) are no longer failing.
    for (const name of this.#failing.keys()) {
      if (!scheduled.has(name) && !this.#tasks.has(name)) this.#failing.delete(name);
    }
    if (!state.settled || state.config.num !== num) return;
    const next = await this.#config(num + 1, signal);
    if (next.num !== num + 1) return;
    const sources: Record<number, ShardSource> = {};
    for (let shard = 0; shard < next.shards.length; shard++) {
      if (next.shards[shard] !== state.gid || state.config.shards[shard] === state.gid) continue;
      const source = await this.#sourceOf(shard, num, signal);
      if (source) sources[shard] = source;
    }
    await this.#propose({ kind: "config", config: next, sources });
  }

  /**
   * Runs `task` unless one of that name is still running; a failure is
   * retried on a later turn, and reported when it goes on (see `log`).
   */
  #once(scheduled: Set<string>, name: string, task: () => Promise<void>): void {
    scheduled.add(name);
    if (this.#tasks.has(name)) return;
    const startedAt = this.#replica.clock.now();
    const running = task()
      .then(() => this.#succeeded(name), (err) => this.#failed(name, err, startedAt))
      .finally(() => this.#tasks.delete(name));
    this.#tasks.set(name, running);
  }

  /** A step that began at `startedAt` failed with `err`. */
  #failed(name: string, err: unknown, startedAt: number): void {
    if (this.#stopLoop.signal.aborted) return;
    const now = this.#replica.clock.now();
    let failing = this.#failing.get(name);
    if (failing === undefined) {
      this.#failing.set(name, failing = { since: startedAt, reported: undefined });
    }
    const due = failing.reported === undefined
      ? now - failing.since >= SLOW_MIGRATION_MS
      : now - failing.reported >= SLOW_MIGRATION_MS;
    if (!due) return;
    failing.reported = now;
    this.#options.log?.(
      `group ${this.#options.gid}: ${name} has failed for ` +
        `${((now - failing.since) / 1000).toFixed(0)} s (last: ${(err as Error).message}); ` +
        `retrying`,
    );
  }

  #succeeded(name: string): void {
    const failing = this.#failing.get(name);
    if (failing === undefined) return;
    this.#failing.delete(name);
    if (failing.reported === undefined) return;
    const secs = (this.#replica.clock.now() - failing.since) / 1000;
    this.#options.log?.(`group ${this.#options.gid}: ${name} succeeded after ${secs.toFixed(0)} s`);
  }

  /**
   * Proposes an entry of the migration loop, giving up after the request
   * timeout: an entry of a deposed leader may never come out of the log
   * (nothing else written at its index), and the loop must go on.
   */
  async #propose(entry: GroupEntry): Promise<void> {
    await deadline(this.#replica.submit(entry), {
      clock: this.#replica.clock,
      timeoutMs: this.#replica.requestTimeoutMs,
    });
  }

  /**
   * The group that last held `shard` before configuration `num + 1`, and
   * the configuration that took it away; undefined when no group ever did.
   */
  async #sourceOf(
    shard: number,
    num: number,
    signal: AbortSignal,
  ): Promise<ShardSource | undefined> {
    for (let k = num; k > 0; k--) {
      const c = await this.#config(k, signal);
      const gid = c.shards[shard];
      if (gid !== 0) return { gid, servers: c.groups[gid], leftAt: k + 1 };
    }
    return undefined;
  }

  /** Configuration `num` from the controller (cached: past configurations never change). */
  async #config(num: number, signal: AbortSignal): Promise<ShardConfig> {
    const cached = this.#configs.get(num);
    if (cached) return cached;
    const config = await this.#ctrler.query(num, { signal });
    if (config.num === num) this.#configs.set(num, config);
    return config;
  }
}

type KvRetry = { status: "retry"; reason: string };

/** A reply that was not "ok", in a few words. */
function describeReply(reply: unknown): string {
  if (reply === undefined) return "nothing in time";
  const r = reply as { status?: unknown; reason?: unknown };
  return r.reason === undefined ? String(r.status) : `${r.status}: ${r.reason}`;
}
