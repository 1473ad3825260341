/**
 * A KV cluster whose servers keep their state differently (issue 19): some
 * in memory, some in a store, as during a rolling move to `--state disk` or
 * when a new `--state disk` folder joins a cluster of memory ones. A
 * follower that fell behind the leader's compacted log takes the leader's
 * snapshot in the leader's form, in both directions, and serves the same
 * values.
 */
import assert from "node:assert/strict";
import { simulate } from "../net/mod.ts";
import { get, KvCluster, put } from "./kv_cluster.ts";

/** Waits (virtual time) until `check` holds, or fails saying `what`. */
async function until(cfg: KvCluster, what: string, check: () => boolean): Promise<void> {
  for (let waited = 0; !check(); waited += 50) {
    assert.ok(waited < 60_000, `${what}: not within 60 s`);
    await cfg.sleep(50);
  }
}

/** Makes server `to` lead, by a leadership transfer from the current leader. */
async function lead(cfg: KvCluster, to: number): Promise<void> {
  await until(cfg, "a leader", () => cfg.leader() !== undefined);
  for (let attempt = 0; cfg.leader() !== to; attempt++) {
    assert.ok(attempt < 20, `server ${to} did not take the lead`);
    const from = cfg.leader();
    if (from !== undefined) {
      await cfg.server(from).raft.transferLeadership(cfg.ids[to]).catch(() => {});
    }
    await cfg.sleep(500);
  }
}

/** Cuts `lagging` off, writes past the leader's compaction, heals, and waits for it to install. */
async function catchUp(cfg: KvCluster, leader: number, lagging: number, round: number) {
  const others = [0, 1, 2].filter((i) => i !== lagging);
  cfg.partition(others, [lagging]);
  const { clerk } = cfg.makeClient(others);
  for (let i = 0; i < 80; i++) {
    await put(cfg, clerk, { key: `r${round}k${i}`, value: `${round}:${i} `.repeat(10) });
  }
  assert.ok(
    cfg.server(leader).raft.status().snapshotIndex > cfg.server(lagging).appliedIndex,
    "the leader's log was not compacted past the lagging server",
  );
  const installs = cfg.server(lagging).stats().installs;
  cfg.connectAll();
  const target = cfg.server(leader).raft.status().commitIndex;
  await until(
    cfg,
    `server ${lagging} catching up`,
    () => cfg.server(lagging).appliedIndex >= target,
  );
  assert.ok(cfg.server(lagging).stats().installs > installs, "it caught up without a snapshot");
  for (const i of [0, 41, 79]) {
    assert.equal(
      await cfg.server(lagging).localRead(`r${round}k${i}`),
      `${round}:${i} `.repeat(10),
    );
  }
  // A stored server counts its keys as of its last batch stored (answered entries are staged up
  // to 250 ms before): the counts agree once both have stored what they applied.
  await until(
    cfg,
    `the key counts of servers ${lagging} and ${leader} agreeing`,
    () => cfg.server(lagging).stats().keys === cfg.server(leader).stats().keys,
  );
}

Deno.test("kv: servers keeping their state in memory and on disk take each other's snapshots", async () => {
  await simulate(async (sim) => {
    // Server 0 in memory, 1 and 2 in stores.
    const cfg = await KvCluster.start(sim, 3, { maxRaftState: 4000, storedState: (i) => i !== 0 });
    const { clerk } = cfg.makeClient();
    await put(cfg, clerk, { key: "first", value: "1" });
    // A memory leader's snapshot to a stored follower.
    await lead(cfg, 0);
    await catchUp(cfg, 0, 1, 1);
    // A stored leader's snapshot to a memory follower.
    await lead(cfg, 2);
    await catchUp(cfg, 2, 0, 2);
    assert.equal(await get(cfg, clerk, "first"), "1");
    assert.equal(await get(cfg, clerk, "r1k5"), "1:5 ".repeat(10));
    await cfg.cleanup();
  }, { seed: 19, limitMs: 10 * 60_000 });
});
