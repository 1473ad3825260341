/**
 * The shard test harnesses, after the course's shardctrler and shardkv
 * config.go: a controller group ("ctrler-0".."ctrler-2") and, for the
 * sharded service, replica groups ("g100-0"...) on one simulated network.
 */
import assert from "node:assert/strict";
import type { Simulation } from "../net/mod.ts";
import { CtrlerClerk, gidsOf, N_SHARDS, type ShardConfig, ShardCtrler } from "../shard/mod.ts";
import { ReplicaCluster } from "./replica_cluster.ts";

/** The controller's replicas, and clerks for them. */
export class CtrlerCluster {
  readonly group: ReplicaCluster<ShardCtrler>;
  readonly sim: Simulation;
  #clients = 0;

  constructor(sim: Simulation, n: number, options: { maxRaftState?: number } = {}) {
    this.sim = sim;
    this.group = new ReplicaCluster(sim, n, {
      prefix: "ctrler-",
      start: (context) => ShardCtrler.start({ ...context, maxRaftState: options.maxRaftState }),
    });
  }

  static async start(sim: Simulation, n = 3): Promise<CtrlerCluster> {
    const cfg = new CtrlerCluster(sim, n);
    await cfg.group.startAll();
    return cfg;
  }

  get ids(): string[] {
    return this.group.ids;
  }

  /** A clerk reaching every controller replica. */
  makeClerk(): CtrlerClerk {
    const name = `ctrler-ck${this.#clients++}`;
    return new CtrlerClerk(
      this.group.wiring.clientTransport(name, this.group.wiring.all),
      this.ids,
      {
        clock: this.sim.clock,
        random: this.group.random.fork(),
        id: name,
      },
    );
  }
}

/**
 * The course's check(): the latest configuration has exactly `gids`, every
 * shard is on one of them, and the assignment is balanced.
 */
export async function checkConfig(ck: CtrlerClerk, gids: number[]): Promise<ShardConfig> {
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
