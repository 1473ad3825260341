/**
 * A write proposed by a leader whose entries were then cut short by a new
 * leader is answered (nothing was applied for it) as soon as an entry of a
 * later term is applied before its index: it can never be committed, as
 * the terms along a log never decrease.
 *
 * Found by the randomized KV simulation with membership changes (seed
 * 16000473): a leader cut off with writes in progress lost its uncommitted
 * tail to a new leader whose log was shorter; it led again later, and its
 * old writes, waiting for indexes no entry had reached, counted as the
 * oldest writes in progress: every new write was refused as overloaded, so
 * no entry ever reached those indexes, for good.
 */
import assert from "node:assert/strict";
import { IDS, leaderOf, startNode } from "./sim_kv_servers.ts";
import { KvClerk } from "../kv/mod.ts";
import { delay, simulate } from "../net/mod.ts";

Deno.test("kv replica: writes of a leader cut short are answered once a later term's entry is applied", async () => {
  await simulate(async (sim) => {
    const nodes = await Promise.all(IDS.map((id) => startNode(sim, id)));
    try {
      const old = await leaderOf(sim, nodes);
      await delay(500, { clock: sim.clock }); // its no-op committed
      const others = IDS.filter((id) => id !== old.raft.id);
      sim.net.partition([old.raft.id], others);
      // Writes on the cut-off leader: proposed, never committed.
      const clerk = new KvClerk(sim.net.transportFor("client"), [old.raft.id], {
        clock: sim.clock,
        random: sim.random.fork(),
        id: sim.newId(),
        deadlineMs: 300,
        attemptTimeoutMs: 100,
      });
      for (let k = 0; k < 3; k++) await clerk.put(`k${k}`, "v").catch(() => {});
      const cut = old.raft.status();
      assert.ok(cut.lastIndex >= cut.commitIndex + 3, "three writes or more are uncommitted");
      assert.ok(old.stats().pendingWrites >= 3);
      // The others elect a leader of a later term, with a shorter log; then
      // the old leader rejoins and takes it. Nothing else is written.
      const rest = nodes.filter((n) => n !== old);
      await leaderOf(sim, rest);
      sim.net.heal();
      await delay(2000, { clock: sim.clock });
      const now = old.raft.status();
      assert.ok(now.lastIndex < cut.lastIndex, `its log was cut short: ${now.lastIndex}`);
      assert.equal(
        old.stats().pendingWrites,
        0,
        "writes whose entries can never be committed are still counted as in progress",
      );
    } finally {
      for (const n of nodes) await n.stop();
    }
  }, { seed: 16 });
});
