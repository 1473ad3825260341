import assert from "node:assert/strict";
import { ArgumentsError, Random, RpcServer, VirtualClock } from "../net/mod.ts";
import { parseView, type View, ViewServer, ViewService } from "./view.ts";

Deno.test("pb ViewService: random pings and ticks keep the view rules", () => {
  let changes = 0;
  let promotions = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const random = new Random(seed);
    const vs = new ViewService({ pingIntervalMs: 100, deadPings: 5 });
    const servers = ["a", "b", "c", "d"];
    const known = new Map<string, number>(); // the view number each server last heard
    let view: View = vs.view;
    let ackedNum = 0; // the latest view its primary pinged with
    for (let now = 0; now < 20_000; now += 10 + random.int(40)) {
      const server = random.pick(servers);
      if (random.chance(0.3)) {
        vs.tick(now);
      } else if (random.chance(0.8)) {
        // Alive: pings with what it knows, sometimes as if just restarted.
        const num = random.chance(0.05) ? 0 : known.get(server) ?? 0;
        if (server === view.primary && num === view.num) ackedNum = view.num;
        known.set(server, vs.ping(server, num, now).num);
      }
      const next = vs.view;
      if (next === view) continue;
      const why = `seed ${seed}: ${JSON.stringify(view)} -> ${JSON.stringify(next)}`;
      assert.equal(next.num, view.num + 1, `views go one at a time; ${why}`);
      assert.ok(view.num === 0 || ackedNum === view.num, `moved before the ack; ${why}`);
      assert.notEqual(next.primary, "", why);
      assert.notEqual(next.primary, next.backup, why);
      if (next.primary !== view.primary && view.num > 0) {
        assert.equal(next.primary, view.backup, `only the backup is promoted; ${why}`);
        promotions++;
      }
      changes++;
      view = next;
    }
  }
  assert.ok(changes > 3000 && promotions > 300, `${changes} changes, ${promotions} promotions`);
});

Deno.test("pb ViewService: a 0 from the backup before the ack is a server learning its role", () => {
  const vs = new ViewService();
  vs.ping("a", 0, 0);
  vs.ping("a", 1, 10);
  assert.equal(vs.ping("b", 0, 10).backup, "b"); // view 2, not yet acknowledged
  vs.ping("b", 0, 20); // b has not heard of view 2 yet
  vs.ping("a", 2, 30); // acknowledged
  assert.deepEqual(vs.view, { num: 2, primary: "a", backup: "b" });
  // Now b restarts: it gets a new view (as backup again), so a brings it up to date.
  vs.ping("b", 0, 40);
  assert.deepEqual(vs.view, { num: 3, primary: "a", backup: "b" });
});

Deno.test("pb ViewService: a promoted backup that restarts before its ack is not taken at its word", () => {
  const vs = new ViewService(); // dead after 500 ms
  vs.ping("a", 0, 0);
  vs.ping("a", 1, 0);
  vs.ping("b", 0, 0); // view 2 {a, b}
  vs.ping("a", 2, 0); // acknowledged: b has the data
  let now = 0;
  for (; vs.view.num === 2; now += 100) vs.ping("b", 2, now); // a dies
  assert.deepEqual(vs.view, { num: 3, primary: "b", backup: "" });
  vs.ping("b", 0, now); // b restarts: its data is gone
  vs.ping("b", 3, now + 100); // it learns view 3 from the reply and pings it
  vs.ping("c", 0, now + 100);
  assert.equal(vs.acked, false, "a restarted primary's acknowledgement does not count");
  assert.deepEqual(vs.view, { num: 3, primary: "b", backup: "" }, "waits; no view on lost data");
});

Deno.test("pb ViewService: a backup that restarts after learning its role, before the ack, is noticed", () => {
  const vs = new ViewService();
  vs.ping("a", 0, 0);
  vs.ping("a", 1, 0);
  vs.ping("b", 0, 0); // view 2 {a, b}
  vs.ping("b", 2, 50); // b knows view 2
  vs.ping("b", 0, 80); // b restarted
  vs.ping("a", 2, 100); // acknowledged: b is then replaced (by itself, in a new view a brings up to date)
  assert.deepEqual(vs.view, { num: 3, primary: "a", backup: "b" });
  assert.throws(() => vs.ping("", 0, 100), RangeError);
  assert.throws(() => vs.ping("a", -1, 100), RangeError);
});

Deno.test("pb ViewServer: serves the view, ticks on its clock, refuses bad pings", async () => {
  const clock = new VirtualClock();
  const vs = new ViewServer({ clock });
  const server = new RpcServer();
  server.addService("View", vs.methods());
  await server.dispatch("View.Ping", { server: "a", num: 0 });
  await server.dispatch("View.Ping", { server: "a", num: 1 });
  await server.dispatch("View.Ping", { server: "b", num: 0 });
  assert.deepEqual(await server.dispatch("View.Get", {}), { num: 2, primary: "a", backup: "b" });
  await server.dispatch("View.Ping", { server: "a", num: 2 });
  // b stops pinging: after 5 intervals the ticker removes it.
  for (let i = 0; i < 6; i++) {
    await clock.advance(100);
    await server.dispatch("View.Ping", { server: "a", num: vs.view.num });
  }
  assert.deepEqual(vs.view, { num: 3, primary: "a", backup: "" });
  await assert.rejects(server.dispatch("View.Ping", { server: 7, num: 0 }), ArgumentsError);
  await assert.rejects(server.dispatch("View.Ping", { server: "x", num: 0.5 }), ArgumentsError);
  await assert.rejects(server.dispatch("View.Ping", { server: "", num: 0 }), /1 to 256 characters/);
  await assert.rejects(
    server.dispatch("View.Ping", { server: "x".repeat(257), num: 0 }),
    ArgumentsError,
  );
  await assert.rejects(server.dispatch("View.Ping", { server: "x", num: -5 }), /from 0/);
  assert.equal(vs.view.primary, "a", "refused pings change nothing");
  vs.close();
  assert.equal(clock.pendingTimers, 0, "the ticker is stopped");
  assert.throws(() => parseView({ num: -1, primary: "", backup: "" }), TypeError);
  assert.throws(() => parseView("view"), /expected a view/);
  assert.throws(() => new ViewService({ deadPings: 0 }), RangeError);
});
