/**
 * A resend of a write in the caller's own session (`KvWriteOptions.session`:
 * "a resend of a write repeats its number, so it is applied at most once")
 * whose attempts were never sent must still say it may have applied: the
 * write that session number names was applied by the earlier, ambiguous
 * call (a stranger's review, review31b, found it said "not applied").
 */
import assert from "node:assert/strict";
import { KvClerk, mayHaveApplied } from "../kv/mod.ts";
import { simulate } from "../net/mod.ts";
import { KvCluster, text } from "./kv_cluster.ts";

Deno.test("kv session resend: a resend in the caller's session, never sent, does not say 'not applied'", async () => {
  await simulate(async (sim) => {
    const cfg = await KvCluster.start(sim, 3);
    const clerk = new KvClerk(cfg.wiring.clientTransport("web", cfg.wiring.all), cfg.ids, {
      clock: sim.clock,
      random: cfg.random.fork(),
      id: "web",
    });
    await clerk.put("warm", "up"); // the clerk learns the leader
    const session = { id: "proxy-7", seq: 1 };
    // Sent, then cut off by a short deadline: the outcome is unknown.
    const first = await clerk.put("k", "v", { session, deadlineMs: 5 }).catch((e) => e);
    assert.ok(mayHaveApplied(first), `first: ${first}`);
    // The caller resends it, as the docs say, while no server is reachable.
    cfg.connectClient("web", []);
    const resend = await clerk.put("k", "v", { session, deadlineMs: 2000 }).catch((e) => e);
    assert.ok(resend instanceof Error, "the resend cannot succeed without a route");
    cfg.connectClient("web", cfg.wiring.all);
    const reader = cfg.makeClient().clerk;
    const applied = text(await reader.get("k")) === "v";
    assert.ok(applied, "the first call applied the write (else this test proves nothing)");
    // The write named by (proxy-7, 1) was applied: its resend must not deny it.
    assert.ok(
      mayHaveApplied(resend),
      `the write was applied, but its resend says mayHaveApplied false: ${resend}`,
    );
    await cfg.cleanup();
  }, { seed: 31 });
});
