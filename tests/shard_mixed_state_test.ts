/**
 * A shard group whose servers keep their state differently (issue 19): one
 * in memory, two in stores, as while a group's folders move to
 * `shard group serve --state disk` one at a time. A follower that fell
 * behind the leader's compacted log takes the leader's snapshot in the
 * leader's form, in both directions, and then serves every value as leader.
 */
import assert from "node:assert/strict";
import { simulate } from "../net/mod.ts";
import { type ShardClerk, StoredShardGroupState } from "../shard/mod.ts";
import { text } from "./kv_cluster.ts";
import { ShardKvCluster } from "./shard_cluster.ts";

/** Waits (virtual time) until `check` holds, or fails saying `what`. */
async function until(cfg: ShardKvCluster, what: string, check: () => boolean): Promise<void> {
  for (let waited = 0; !check(); waited += 50) {
    assert.ok(waited < 60_000, `${what}: not within 60 s`);
    await cfg.sleep(50);
  }
}

/** Makes server `to` of the group lead, by leadership transfers from the current leader. */
async function lead(cfg: ShardKvCluster, to: number): Promise<void> {
  const group = cfg.groups[0];
  await until(cfg, "a leader", () => group.leader() !== undefined);
  for (let attempt = 0; group.leader() !== to; attempt++) {
    assert.ok(attempt < 20, `server ${to} did not take the lead`);
    const from = group.leader();
    if (from !== undefined) {
      await group.server(from).raft.transferLeadership(group.ids[to]).catch(() => {});
    }
    await cfg.sleep(500);
  }
}

const value = (round: number, i: number) => `${round}:${i} `.repeat(10);

/** Cuts `lagging` off, writes past the leader's compaction, heals, and waits for it to install. */
async function catchUp(
  cfg: ShardKvCluster,
  ck: ShardClerk,
  route: { leader: number; lagging: number; round: number },
): Promise<void> {
  const { leader, lagging, round } = route;
  const group = cfg.groups[0];
  cfg.sim.net.partition(group.ids.filter((_, i) => i !== lagging), [group.ids[lagging]]);
  const behind = group.server(lagging).stats().appliedIndex;
  for (let i = 0; i < 60; i++) await ck.put(`r${round}k${i}`, value(round, i));
  assert.ok(
    group.server(leader).raft.status().snapshotIndex > behind,
    "the leader's log was not compacted past the lagging server",
  );
  const installs = group.server(lagging).stats().installs;
  cfg.sim.net.heal();
  const target = group.server(leader).raft.status().commitIndex;
  await until(
    cfg,
    `server ${lagging} catching up`,
    () => group.server(lagging).stats().appliedIndex >= target,
  );
  assert.ok(group.server(lagging).stats().installs > installs, "it caught up without a snapshot");
  // It serves what it installed: as leader, every key of the round.
  await lead(cfg, lagging);
  for (let i = 0; i < 60; i++) {
    assert.equal(text(await ck.get(`r${round}k${i}`)), value(round, i), `r${round}k${i}`);
  }
}

Deno.test("shard kv: servers of a group keeping their state in memory and on disk take each other's snapshots", async () => {
  await simulate(async (sim) => {
    // Server 0 in memory, 1 and 2 in stores.
    const cfg = await ShardKvCluster.start(sim, {
      groups: 1,
      maxRaftState: 1000,
      storedState: (i) => i !== 0,
    });
    const stored = cfg.groups[0].ids.map((_, i) =>
      cfg.groups[0].server(i).state instanceof StoredShardGroupState
    );
    assert.deepEqual(stored, [false, true, true]);
    const ck = cfg.makeClient();
    await cfg.join(0);
    await ck.put("first", "1");
    // A memory leader's snapshot to a stored follower.
    await lead(cfg, 0);
    await catchUp(cfg, ck, { leader: 0, lagging: 1, round: 1 });
    // A stored leader's snapshot to a memory follower.
    await lead(cfg, 2);
    await catchUp(cfg, ck, { leader: 2, lagging: 0, round: 2 });
    assert.equal(text(await ck.get("first")), "1");
    assert.equal(text(await ck.get("r1k5")), value(1, 5));
    await cfg.cleanup();
  }, { seed: 19, limitMs: 10 * 60_000 });
});
