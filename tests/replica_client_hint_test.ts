/**
 * A client is not sent back and forth for ever between a server that names
 * a dead leader and that dead leader.
 *
 * Found by the randomized KV simulation with membership changes: a server
 * outside the cluster (its removal committed, then started again on an
 * empty folder) still named the leader it had known, which was down for
 * good; a clerk that tried it went to the dead leader, then to the next
 * server in its list, which was the stale one again, and so on, never
 * reaching the live leader. A follower cut off from the majority naming a
 * dead leader does the same, and so does a stale server naming a removed
 * leader that answers "no leader known" (seed 17000276).
 */
import assert from "node:assert/strict";
import { ReplicaClient } from "../kv/mod.ts";
import { RpcServer, simulate } from "../net/mod.ts";

/**
 * Clients of servers a (the leader), b and c, where c names b as the
 * leader and b is `down` (unreachable) or answers that no leader is known:
 * each must reach a, whichever server it tries first.
 */
async function reachesLeader(b: "down" | "no-leader", seed: number): Promise<void> {
  await simulate(async (sim) => {
    const a = new RpcServer();
    a.addService("Svc", { Do: () => ({ status: "ok", by: "a" }) });
    sim.net.addServer("a", a);
    if (b === "no-leader") {
      const server = new RpcServer();
      server.addService("Svc", { Do: () => ({ status: "not-leader", leader: null }) });
      sim.net.addServer("b", server);
    }
    const c = new RpcServer();
    c.addService("Svc", { Do: () => ({ status: "not-leader", leader: "b" }) });
    sim.net.addServer("c", c);
    const starts = new Set<string>();
    for (let k = 0; k < 8; k++) {
      const client = new ReplicaClient(sim.net.transportFor(`client${k}`), ["a", "b", "c"], {
        clock: sim.clock,
        random: sim.random.fork(),
        deadlineMs: 30_000,
      });
      starts.add(client.leader);
      const reply = await client.call<{ by: string }>("Svc.Do", {}, {
        operation: "do",
        write: false,
      });
      assert.ok(reply?.status === "ok", `client ${k}: ${JSON.stringify(reply)}`);
      assert.equal(reply.by, "a");
    }
    // The cycle needs a first try at b or c.
    assert.ok(starts.has("b") && starts.has("c"), `clients started at ${[...starts]}`);
  }, { seed });
}

Deno.test("replica client: a hint naming a dead server it asked already is not followed again", async () => {
  await reachesLeader("down", 3);
});

Deno.test("replica client: a hint naming a server that does not lead, asked already, is not followed again", async () => {
  await reachesLeader("no-leader", 3);
});
