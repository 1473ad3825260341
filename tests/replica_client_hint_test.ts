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
 * dead leader does the same.
 */
import assert from "node:assert/strict";
import { ReplicaClient } from "../kv/mod.ts";
import { RpcServer, simulate } from "../net/mod.ts";

Deno.test("replica client: a hint naming a server that did not answer is not followed again", async () => {
  await simulate(async (sim) => {
    // a leads; b is down for good (never reachable); c names b as the leader.
    const a = new RpcServer();
    a.addService("Svc", { Do: () => ({ status: "ok", by: "a" }) });
    sim.net.addServer("a", a);
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
  }, { seed: 3 });
});
