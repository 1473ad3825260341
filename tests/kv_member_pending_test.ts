/**
 * A membership change is answered as made only once it is committed, also
 * when it is answered as made already (the idempotent "nothing to do").
 *
 * The operator's recipe for a dead disk rests on this: remove the node,
 * and once the removal is answered as made, throw its state away and start
 * it on an empty folder. A removal still uncommitted may be dropped by the
 * next leader; a node that lost its state while still a voter is issue 15's
 * amnesia. Found while widening the randomized KV simulation: a removal
 * whose first answer was lost (the leader was cut off) was sent again and
 * answered "node c is not a member" from the leader's latest, uncommitted,
 * configuration.
 */
import assert from "node:assert/strict";
import { IDS, leaderOf, startNode } from "./sim_kv_servers.ts";
import { changeMember, type KvServer, MemberRefusedError } from "../kv/mod.ts";
import { delay, simulate } from "../net/mod.ts";

/** Whether `raft`'s log holds a membership entry above its commit index. */
function pending(node: KvServer): boolean {
  const { commitIndex, lastIndex } = node.raft.status();
  return node.raft.logEntries(commitIndex + 1, lastIndex).some((e) => e.kind === "membership");
}

Deno.test("kv members: a change already in the leader's log is not answered as made before it commits", async () => {
  await simulate(async (sim) => {
    const nodes = await Promise.all(IDS.map((id) => startNode(sim, id)));
    try {
      const leader = await leaderOf(sim, nodes);
      const victim = IDS.find((id) => id !== leader.raft.id)!;
      // Let the leader commit in its term, then cut it off from both followers.
      await delay(1000, { clock: sim.clock });
      sim.net.partition([leader.raft.id], IDS.filter((id) => id !== leader.raft.id));
      // Short waits: the cut-off leader steps down after an election timeout (500 ms).
      const options = { clock: sim.clock, timeoutMs: 100 };
      await assert.rejects(
        changeMember(leader.raft, { op: "remove", node: victim }, options),
        /may or may not have been made/,
      );
      assert.ok(pending(leader), "the removal is in the leader's log, uncommitted");
      // Sent again: the leader's latest configuration lacks the node, but the
      // removal is not committed, so it must not be answered as made.
      await assert.rejects(
        changeMember(leader.raft, { op: "remove", node: victim }, options),
        (err) => err instanceof MemberRefusedError && err.retryable,
      );
      assert.ok(pending(leader), "still uncommitted");
      sim.net.heal();
      // Whoever leads now: answered as made only with the removal committed
      // (the old leader's entry, or none: then it is made now).
      for (let attempt = 0;; attempt++) {
        assert.ok(attempt < 50, "the removal was never made");
        const now = await leaderOf(sim, nodes);
        try {
          await changeMember(now.raft, { op: "remove", node: victim }, options);
        } catch {
          await delay(100, { clock: sim.clock });
          continue;
        }
        assert.ok(!now.raft.status().membership.voters.includes(victim));
        assert.ok(!pending(now), "answered as made, and committed");
        break;
      }
    } finally {
      for (const n of nodes) await n.stop();
    }
  }, { seed: 15 });
});
