/**
 * Tests of the Raft test harness itself (tests/raft_cluster.ts): its
 * apply-time checks must hold the library to what it promises, no less and
 * no more.
 */
import assert from "node:assert/strict";
import { simulate } from "../net/mod.ts";
import { Cluster } from "./raft_cluster.ts";

Deno.test("raft cluster: a crashed node's queued items are checked against that node, not its successor", async () => {
  // Seed 3752570988 of the randomized test: a node crashed with committed
  // items still queued for its applier, which handed them out while the
  // restarted node already applied the same indexes again from its
  // snapshot. Each node applies each index once; the harness counted both
  // as one node and reported "applied index 82 again".
  await simulate(async (sim) => {
    const cfg = await Cluster.start(sim, 3);
    for (let k = 0; k < 60; k++) await cfg.one(1000 + k, 3, true);
    // Restarted alone, server 2 applies its stored commit index at once:
    // a backlog queued in one go.
    await cfg.crash(2);
    await cfg.startServer(2);
    const first = cfg.node(2);
    const commit = first.status().commitIndex;
    assert.ok(commit >= 50, `server 2 restarted with commit index ${commit}; wanted >= 50`);
    await first.waitApplied(commit);
    const queued = first.appliedBacklog;
    assert.ok(queued >= 40, `only ${queued} items queued; the test needs a backlog`);
    // Crashed and restarted again before its applier took that backlog.
    await cfg.startServer(2);
    const second = cfg.node(2);
    assert.notEqual(second, first);
    await second.waitApplied(commit);
    await cfg.sleep(100); // the appliers of both nodes drain (virtual time)
    cfg.checkFailure();
    for (const [index, command] of cfg.committed) {
      if (index > commit) continue;
      assert.equal(cfg.logs[2].get(index), command, `server 2's log at ${index}`);
    }
    cfg.connect(2);
    await cfg.one(2000, 3, true);
    await cfg.cleanup();
  }, { seed: 3752570988, limitMs: 120_000 });
});
