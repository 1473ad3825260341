/**
 * The view service's scenarios (6.824's viewservice tests), on the
 * simulated network in virtual time: servers are pinging clerks, a crash is
 * a server that stops pinging, a restart one that pings with view 0.
 */
import assert from "node:assert/strict";
import { delay, RpcServer, type SimNetwork, simulate, type VirtualClock } from "../net/mod.ts";
import { DEAD_PINGS, PING_INTERVAL_MS, type View, ViewClerk, ViewServer } from "../pb/mod.ts";

interface Cluster {
  clerk(name: string): ViewClerk;
  /** Pings as each `[server, num]` (num "view": the current view's number) once per interval until `done` holds of the view, at most `rounds` times. */
  pingUntil(
    pings: [string, number | "view"][],
    done: (v: View) => boolean,
    rounds?: number,
  ): Promise<View>;
  get(): Promise<View>;
}

function cluster(net: SimNetwork, clock: VirtualClock): Cluster {
  const server = new RpcServer();
  const vs = new ViewServer({ clock });
  server.addService("View", vs.methods());
  net.addServer("vs", server);
  const clerks = new Map<string, ViewClerk>();
  const clerk = (name: string) => {
    let c = clerks.get(name);
    if (c === undefined) clerks.set(name, c = new ViewClerk(net.transportFor(name).connect("vs")));
    return c;
  };
  const get = () => clerk("observer").get();
  return {
    clerk,
    get,
    async pingUntil(pings, done, rounds = DEAD_PINGS * 3) {
      for (let i = 0; i < rounds; i++) {
        const current = await get();
        for (const [name, num] of pings) {
          await clerk(name).ping(name, num === "view" ? current.num : num);
        }
        const v = await get();
        if (done(v)) return v;
        await delay(PING_INTERVAL_MS, { clock });
      }
      return await get();
    },
  };
}

function expectView(v: View, primary: string, backup: string, num: number): void {
  assert.deepEqual(v, { num, primary, backup }, `expected view ${num} (${primary}, ${backup})`);
}

Deno.test("pb view service: the 6.824 scenarios in order", async (t) => {
  await simulate(async ({ net, clock }) => {
    const c = cluster(net, clock);
    expectView(await c.get(), "", "", 0);

    await t.step("first primary", async () => {
      const v = await c.pingUntil([["s1", 0]], (v) => v.primary === "s1");
      expectView(v, "s1", "", 1);
    });

    await t.step("first backup", async () => {
      const v = await c.pingUntil([["s1", 1], ["s2", 0]], (v) => v.backup === "s2");
      expectView(v, "s1", "s2", 2);
    });

    await t.step("backup takes over if primary fails", async () => {
      await c.clerk("s1").ping("s1", 2); // s1 acknowledges view 2, then stops
      const v = await c.pingUntil([["s2", 2]], (v) => v.primary === "s2", DEAD_PINGS * 2 + 2);
      expectView(v, "s2", "", 3);
    });

    await t.step("restarted server becomes backup", async () => {
      const v = await c.pingUntil([["s2", 3], ["s1", 0]], (v) => v.backup === "s1");
      expectView(v, "s2", "s1", 4);
    });

    await t.step("idle third server becomes backup if primary fails", async () => {
      // s3 joins while the view is full: it stays idle.
      let v = await c.pingUntil([["s2", 4], ["s1", 4], ["s3", 0]], () => false, 3);
      expectView(v, "s2", "s1", 4);
      v = await c.pingUntil([["s1", 4], ["s3", 0]], (v) => v.primary === "s1");
      expectView(v, "s1", "s3", 5);
    });

    await t.step("restarted primary treated as dead", async () => {
      await c.clerk("s1").ping("s1", 5); // acknowledged
      const v = await c.pingUntil([["s1", 0], ["s3", 5]], (v) => v.primary !== "s1");
      expectView(v, "s3", "s1", 6);
    });

    await t.step("dead backup is removed from view", async () => {
      await c.clerk("s3").ping("s3", 6);
      const v = await c.pingUntil([["s3", 6]], (v) => v.backup === "");
      expectView(v, "s3", "", 7);
    });

    await t.step("view service waits for the primary to acknowledge a view", async () => {
      // s1 restarts and becomes backup in view 8, which s3 never acknowledges.
      let v = await c.pingUntil([["s1", 0], ["s3", 7]], (v) => v.num > 7);
      expectView(v, "s3", "s1", 8);
      // s3 dies without acknowledging: s1 must not be promoted.
      v = await c.pingUntil([["s1", 8]], (v) => v.num > 8, DEAD_PINGS * 3);
      expectView(v, "s3", "s1", 8);
    });
  }, { seed: 1 });
});

Deno.test("pb view service: an uninitialized server cannot become primary", async () => {
  await simulate(async ({ net, clock }) => {
    const c = cluster(net, clock);
    await c.pingUntil([["s1", "view"]], (v) => v.primary === "s1");
    await c.pingUntil([["s1", "view"], ["s2", 0]], (v) => v.backup === "s2");
    // All three ping (s3 idle, uninitialized); the primary acknowledges.
    let v = await c.pingUntil([["s1", "view"], ["s2", "view"], ["s3", 0]], () => false, 5);
    expectView(v, "s1", "s2", 2);
    // Primary and backup die together: s3 has no data and must not be primary.
    v = await c.pingUntil([["s3", 0]], (v) => v.primary === "s3", DEAD_PINGS * 3);
    assert.notEqual(v.primary, "s3", "uninitialized server promoted to primary");
    assert.equal(v.primary, "s1");
  }, { seed: 2 });
});
