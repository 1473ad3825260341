/**
 * Issue 15's amnesia scenario in the simulation: entries committed by a
 * leader and one follower, the follower's storage then loses what it had
 * acknowledged, the leader goes down, and the follower comes back next to
 * the third node, which never had the entries. With the high-water mark's
 * check the follower refuses to start (fail-stop) and nothing is lost; with
 * the check disabled the same run replaces applied entries (the ledger
 * fires), which shows the test can fail.
 */
import assert from "node:assert/strict";
import { simulate } from "../net/mod.ts";
import { AppliedLedger, type StorageDamage, StorageLossError } from "../raft/mod.ts";
import { Cluster } from "./raft_cluster.ts";

/** Runs the scenario; returns the ledger and whether the damaged follower refused to start. */
async function amnesia(
  seed: number,
  damage: StorageDamage,
  detectLoss: boolean,
): Promise<{ ledger: AppliedLedger; refused: boolean; committed: Map<number, string> }> {
  const ledger = new AppliedLedger();
  return await simulate(async (sim) => {
    const cfg = await Cluster.start(sim, 3, {
      node: { observer: ledger, preVote: false },
      storage: { detectLoss },
    });
    const leader = await cfg.checkOneLeader();
    const [follower, third] = [0, 1, 2].filter((i) => i !== leader);
    await cfg.one("before", 3, true);
    cfg.disconnect(third);
    const acked: number[] = [];
    for (let k = 0; k < 5; k++) acked.push(await cfg.one(`acked ${k}`, 2, true));
    // The follower loses what it acknowledged; the leader goes down.
    await cfg.crash(follower, damage);
    await cfg.crash(leader);
    await cfg.startServer(follower);
    const refused = cfg.failed(follower) !== undefined;
    if (refused) {
      assert.ok(cfg.failed(follower) instanceof StorageLossError, String(cfg.failed(follower)));
    }
    try {
      cfg.connect(third);
      if (!refused) cfg.connect(follower);
      // Let the two elect a leader (if they can), and write through it.
      await cfg.sleep(3_000);
      for (let i = 0; i < 3; i++) {
        if (cfg.isRunning(i) && cfg.connected[i] && cfg.node(i).status().role === "leader") {
          await cfg.node(i).propose("after").catch(() => {});
        }
      }
      await cfg.sleep(1_000);
      // The old leader comes back: it must keep (or be made to drop) what it applied.
      await cfg.startServer(leader);
      cfg.connect(leader);
      if (ledger.violation === undefined) await cfg.one("end", refused ? 2 : 3, true);
    } catch (err) {
      // A node that saw the ledger break stops; what fails next is only its consequence.
      if (ledger.violation === undefined) throw err;
    }
    // What the live servers applied at the acknowledged indexes.
    const committed = new Map<number, string>();
    if (ledger.violation === undefined) {
      for (const index of acked) {
        const [count, command] = cfg.nCommitted(index);
        if (count >= 2) committed.set(index, String(command));
      }
    }
    await cfg.cleanup().catch(() => {});
    return { ledger, refused, committed };
  }, { seed });
}

Deno.test("raft storage faults: a follower that lost acknowledged entries refuses to start, and nothing is lost", async () => {
  for (const damage of ["wipe", "lose"] as const) {
    for (let seed = 1; seed <= 3; seed++) {
      const { ledger, refused, committed } = await amnesia(seed, damage, true);
      assert.ok(refused, `seed ${seed}, ${damage}: the damaged follower started`);
      ledger.check();
      const applied = [...committed.values()];
      for (let k = 0; k < 5; k++) {
        assert.ok(applied.includes(`acked ${k}`), `seed ${seed}, ${damage}: acked ${k} is gone`);
      }
    }
  }
});

Deno.test("raft storage faults: without the high-water mark's check, the same runs lose applied entries", async () => {
  let violations = 0;
  for (let seed = 1; seed <= 3; seed++) {
    const { ledger, refused } = await amnesia(seed, "wipe", false);
    assert.equal(refused, false, "with the check disabled the follower starts");
    if (ledger.violation !== undefined) violations++;
  }
  assert.ok(violations > 0, "amnesia went unnoticed by the ledger: the scenario shows nothing");
});
