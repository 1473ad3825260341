/**
 * The shard test harnesses, after the course's shardctrler and shardkv
 * config.go: a controller group ("ctrler-0".."ctrler-2") and, for the
 * sharded service, replica groups ("g100-0"...) on one simulated network.
 */
import assert from "node:assert/strict";
import { delay, type Simulation } from "../net/mod.ts";
import {
  gidsOf,
  N_SHARDS,
  ShardClerk,
  type ShardConfig,
  ShardController,
  ShardControllerClerk,
  ShardGroupServer,
  StoredShardGroupState,
} from "../shard/mod.ts";
import { StateStore } from "../store/mod.ts";
import { LATENCY_MS } from "./kv_cluster.ts";
import { ReplicaCluster } from "./replica_cluster.ts";

/** The controller's replicas, and clerks for them. */
export class ControllerCluster {
  readonly group: ReplicaCluster<ShardController>;
  readonly sim: Simulation;
  #clients = 0;

  constructor(sim: Simulation, n: number, options: { maxRaftState?: number } = {}) {
    this.sim = sim;
    this.group = new ReplicaCluster(sim, n, {
      prefix: "ctrler-",
      start: (context) => ShardController.start({ ...context, maxRaftState: options.maxRaftState }),
    });
  }

  static async start(sim: Simulation, n = 3): Promise<ControllerCluster> {
    const cfg = new ControllerCluster(sim, n);
    await cfg.group.startAll();
    return cfg;
  }

  get ids(): string[] {
    return this.group.ids;
  }

  /** A clerk reaching every controller replica. */
  makeClerk(): ShardControllerClerk {
    const name = `ctrler-ck${this.#clients++}`;
    return new ShardControllerClerk(
      this.group.wiring.clientTransport(name, this.group.wiring.all),
      this.ids,
      {
        clock: this.sim.clock,
        random: this.group.random.fork(),
        id: name,
        // The course's clerks retry until they succeed, through any outage.
        deadlineMs: Infinity,
      },
    );
  }
}

/**
 * The course's check(): the latest configuration has exactly `gids`, every
 * shard is on one of them, and the assignment is balanced.
 */
export async function checkConfig(ck: ShardControllerClerk, gids: number[]): Promise<ShardConfig> {
  const c = await ck.query(-1);
  assert.deepEqual(gidsOf(c), [...gids].sort((a, b) => a - b), "wrong groups");
  if (gids.length > 0) {
    for (let s = 0; s < N_SHARDS; s++) {
      assert.ok(gids.includes(c.shards[s]), `shard ${s} is on ${c.shards[s]}, not a live group`);
    }
  }
  const counts = new Map<number, number>(gids.map((g) => [g, 0]));
  for (const gid of c.shards) if (counts.has(gid)) counts.set(gid, counts.get(gid)! + 1);
  if (counts.size > 0) {
    const loads = [...counts.values()];
    assert.ok(
      Math.max(...loads) - Math.min(...loads) <= 1,
      `unbalanced: ${JSON.stringify([...counts])}`,
    );
  }
  return c;
}

/**
 * The guard of LABS.md §4 on real groups: after joins, no shard moved
 * between groups that were there before; after leaves, the groups that
 * remain kept every shard they had.
 */
export function checkMinimalAfterJoin(before: ShardConfig, after: ShardConfig): void {
  const old = new Set(gidsOf(before));
  assert.ok(old.size > 0, "the check needs groups before the joins");
  let checked = 0;
  for (let s = 0; s < N_SHARDS; s++) {
    if (old.has(after.shards[s])) {
      checked++;
      assert.equal(
        before.shards[s],
        after.shards[s],
        `non-minimal transfer after joins: shard ${s} moved from ${before.shards[s]} to ` +
          `${after.shards[s]}, both there before`,
      );
    }
  }
  assert.ok(checked > 0, "no shard stayed with a pre-existing group: the check saw nothing");
}

/** See {@linkcode checkMinimalAfterJoin}. */
export function checkMinimalAfterLeave(before: ShardConfig, after: ShardConfig): void {
  const remaining = new Set(gidsOf(after));
  assert.ok(remaining.size > 0, "the check needs groups after the leaves");
  let checked = 0;
  for (let s = 0; s < N_SHARDS; s++) {
    if (remaining.has(before.shards[s])) {
      checked++;
      assert.equal(
        after.shards[s],
        before.shards[s],
        `non-minimal transfer after leaves: shard ${s} left remaining group ${before.shards[s]}`,
      );
    }
  }
  assert.ok(checked > 0, "no remaining group held a shard before: the check saw nothing");
}

/** The course's check_same_config. */
export function checkSameConfig(a: ShardConfig, b: ShardConfig): void {
  assert.deepEqual(b, a, `configurations ${a.num} and ${b.num} differ`);
}

/** Options of a {@linkcode ShardKvCluster}. */
export interface ShardKvOptions {
  unreliable?: boolean;
  /** Snapshot at this many bytes of Raft state; -1: never. */
  maxRaftState?: number;
  /** Groups (gids 100, 101, ...). Default 3. */
  groups?: number;
  /** Servers per group. Default 3. */
  n?: number;
  /**
   * Keep each group server's state in a store on its folder's `SimKv`
   * (`ShardGroupOptions.stateStore`, issue 19), which crashes with the
   * server, not in memory; a function: for the servers (by position in
   * their group) it says yes to, the others in memory.
   */
  storedState?: boolean | ((server: number) => boolean);
}

/**
 * The course's shardkv config: 3 controller replicas and groups of servers
 * (gid 100 + i) on one simulated network.
 */
export class ShardKvCluster {
  readonly sim: Simulation;
  readonly ctrlers: ControllerCluster;
  readonly groups: ReplicaCluster<ShardGroupServer>[];
  readonly gids: number[];
  readonly maxRaftState: number;
  /** Whether group servers (some or all) keep their state in stores. */
  readonly storedState: boolean;
  readonly #admin: ShardControllerClerk;
  #clients = 0;
  /** Which group served each shard in each configuration ("num/shard" → gid). */
  readonly #servedBy = new Map<string, number>();
  readonly #doubleServed: string[] = [];
  /** What the group servers logged (migration steps that kept failing). */
  readonly logs: string[] = [];

  constructor(sim: Simulation, options: ShardKvOptions = {}) {
    this.sim = sim;
    this.maxRaftState = options.maxRaftState ?? -1;
    const stored = options.storedState ?? false;
    this.storedState = stored !== false;
    sim.net.setReliable(!options.unreliable);
    sim.net.setLongDelays(true);
    sim.net.setLatency(LATENCY_MS);
    this.ctrlers = new ControllerCluster(sim, 3);
    this.gids = Array.from({ length: options.groups ?? 3 }, (_, i) => 100 + i);
    this.groups = this.gids.map((gid) =>
      new ReplicaCluster(sim, options.n ?? 3, {
        prefix: `g${gid}-`,
        start: async (context) =>
          ShardGroupServer.start({
            ...context,
            ...(typeof stored === "function"
                ? stored(Number(context.id.slice(`g${gid}-`.length)))
                : stored)
              ? { stateStore: await StateStore.open(context.stateKv) }
              : {},
            gid,
            ctrlers: this.ctrlers.ids,
            maxRaftState: this.maxRaftState,
            // Small pages, so every migration of more than a few keys takes several.
            migrationPageBytes: 2048,
            onServe: (e) => this.#served(e),
            log: (line) => this.logs.push(line),
          }),
      })
    );
    this.#admin = this.ctrlers.makeClerk();
  }

  #served({ shard, num, gid }: { shard: number; num: number; gid: number }): void {
    const key = `${num}/${shard}`;
    const other = this.#servedBy.get(key);
    if (other === undefined) this.#servedBy.set(key, gid);
    else if (other !== gid) {
      this.#doubleServed.push(
        `shard ${shard} served by ${other} and ${gid} in configuration ${num}`,
      );
    }
  }

  /** No shard was served by two groups in one configuration. */
  checkSingleOwner(): void {
    assert.deepEqual(this.#doubleServed, [], "a shard was served by two groups at once");
    assert.ok(this.#servedBy.size > 0, "no request was served: the check saw nothing");
  }

  static async start(sim: Simulation, options: ShardKvOptions = {}): Promise<ShardKvCluster> {
    const cfg = new ShardKvCluster(sim, options);
    await cfg.ctrlers.group.startAll();
    for (const g of cfg.groups) await g.startAll();
    return cfg;
  }

  /** A clerk that reaches the controller and every group. */
  makeClient(): ShardClerk {
    const name = `client-${this.#clients++}`;
    return new ShardClerk(this.sim.net.transportFor(name), this.ctrlers.ids, {
      clock: this.sim.clock,
      random: this.ctrlers.group.random.fork(),
      id: name,
      // The course's clerks retry until they succeed, through any outage.
      deadlineMs: Infinity,
    });
  }

  /** The controller clerk the tests use to join and leave groups. */
  get admin(): ShardControllerClerk {
    return this.#admin;
  }

  join(...groups: number[]): Promise<number> {
    return this.#admin.join(
      Object.fromEntries(groups.map((g) => [this.gids[g], this.groups[g].ids])),
    );
  }

  leave(...groups: number[]): Promise<number> {
    return this.#admin.leave(groups.map((g) => this.gids[g]));
  }

  async shutdownGroup(g: number): Promise<void> {
    await this.groups[g].shutdownAll();
  }

  async startGroup(g: number): Promise<void> {
    await this.groups[g].startAll();
  }

  sleep(ms: number): Promise<void> {
    return delay(ms, { clock: this.sim.clock });
  }

  /** The course's checklogs: every server's log within 8 × maxRaftState; no snapshot without one. */
  checkLogs(): void {
    for (const g of this.groups) {
      for (let i = 0; i < g.n; i++) {
        const raft = g.storage(i).raftStateSize();
        const snap = g.storage(i).snapshotSize();
        if (this.maxRaftState >= 0) {
          assert.ok(
            raft <= 8 * this.maxRaftState,
            `${
              g.wiring.name(i)
            }: Raft state ${raft} bytes, but maxRaftState is ${this.maxRaftState}`,
          );
        } else {
          assert.equal(snap, 0, `${g.wiring.name(i)}: maxRaftState is -1, but it has a snapshot`);
        }
      }
    }
  }

  /** Raft state and snapshot bytes persisted by every group server. */
  persistedBytes(): number {
    return this.groups.reduce((sum, g) => sum + g.persistedBytes(), 0);
  }

  /**
   * Bytes of keys and values in the running group servers' state stores
   * (their live rows: data, sessions and meta); 0 when state is in memory.
   */
  async storedBytes(): Promise<number> {
    let total = 0;
    for (const g of this.groups) {
      for (let i = 0; i < g.n; i++) {
        const state = g.running(i)?.state;
        if (!(state instanceof StoredShardGroupState)) continue;
        const view = await state.store.view();
        for await (const page of view.pages()) {
          for (const [, key, value] of page.rows) {
            total += key.length + (typeof value === "string" ? value.length : value.byteLength);
          }
        }
        view.close();
      }
    }
    return total;
  }

  /** Stops everything, then checks that no shard had two groups serving it at once. */
  async cleanup(): Promise<void> {
    for (const g of this.groups) await g.shutdownAll();
    await this.ctrlers.group.shutdownAll();
    this.checkSingleOwner();
  }
}
