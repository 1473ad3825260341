/**
 * Admission control of a KV leader (issue 16 §1), in virtual time: beyond
 * its limits a write is refused at once, definitely (`mayHaveApplied:
 * false`, never applied), instead of waiting; and keys are taken literally.
 */
import assert from "node:assert/strict";
import { KvClerk, kvHttpHandler, KvServer, OverloadedError } from "../kv/mod.ts";
import { delay, RpcServer, simulate, type Simulation } from "../net/mod.ts";
import { MemoryStorage } from "../raft/mod.ts";

const IDS = ["a", "b", "c"];

interface SimNode {
  id: string;
  kv: KvServer;
  http: (req: Request) => Promise<Response>;
}

async function startNodes(
  sim: Simulation,
  options: {
    maxPendingWrites?: number;
    maxPendingWriteBytes?: number;
    maxBufferedBodyBytes?: number;
    refusalPaceMs?: number;
  } = {},
): Promise<SimNode[]> {
  return await Promise.all(IDS.map(async (id) => {
    const rpc = new RpcServer();
    const kv = await KvServer.start({
      id,
      peers: IDS,
      transport: sim.net.transportFor(id),
      server: rpc,
      storage: new MemoryStorage(),
      clock: sim.clock,
      random: sim.random.fork(),
      maxPendingWrites: options.maxPendingWrites,
      maxPendingWriteBytes: options.maxPendingWriteBytes,
    });
    sim.net.addServer(id, rpc);
    const http = kvHttpHandler(kv, rpc, {
      clock: sim.clock,
      random: sim.random.fork(),
      clerkId: sim.newId(),
      timeoutMs: 30_000,
      maxBufferedBodyBytes: options.maxBufferedBodyBytes,
      refusalPaceMs: options.refusalPaceMs,
    });
    return { id, kv, http };
  }));
}

async function leaderOf(sim: Simulation, nodes: SimNode[]): Promise<SimNode> {
  for (let waited = 0; waited < 20_000; waited += 50) {
    const leader = nodes.find((n) => n.kv.raft.status().role === "leader");
    if (leader) return leader;
    await delay(50, { clock: sim.clock });
  }
  throw new Error("no leader");
}

/** A PUT as Deno.serve hands it over: with the body's Content-Length. */
function put(node: SimNode, key: string, value: string): Promise<Response> {
  const headers = { "content-length": String(new TextEncoder().encode(value).length) };
  return node.http(
    new Request(`http://node.test/kv/${key}`, { method: "PUT", body: value, headers }),
  );
}

Deno.test("kv http: a leader at its limit of writes in progress refuses more at once, as not applied, and applies none of them", async () => {
  await simulate(async (sim) => {
    const nodes = await startNodes(sim, { maxPendingWrites: 4 });
    const leader = await leaderOf(sim, nodes);
    assert.equal((await put(leader, "warm", "1")).status, 204);
    // Cut off from its followers, the leader commits nothing: its writes stay in progress.
    sim.net.partition([leader.id], IDS.filter((id) => id !== leader.id));
    const waiting = [0, 1, 2, 3].map((i) => put(leader, `held-${i}`, "v"));
    await delay(1, { clock: sim.clock });
    const asked = sim.clock.now();
    const refused = await put(leader, "refused", "v");
    assert.equal(sim.clock.now(), asked, "a small write is refused at once");
    assert.equal(refused.status, 503);
    assert.match(refused.headers.get("retry-after") ?? "", /^[1-9][0-9]*$/);
    const body = await refused.json();
    assert.equal(body.mayHaveApplied, false);
    assert.equal(body.overloaded, true);
    assert.match(body.error, /4 writes are in progress, the limit/);
    const metrics = await (await leader.http(new Request("http://node.test/metrics"))).text();
    assert.match(metrics, /distkit_http_overloaded_total 1\n/);
    sim.net.heal();
    await Promise.all(waiting.map(async (r) => await (await r).body?.cancel()));
    const now = await leaderOf(sim, nodes);
    const absent = await now.http(new Request("http://node.test/kv/refused"));
    assert.equal(absent.status, 404, "the write refused as not applied was not applied");
    for (const n of nodes) await n.kv.stop();
  }, { seed: 16, limitMs: 120_000 });
});

Deno.test("kv http: a write is refused when the oldest in progress has waited too long", async () => {
  await simulate(async (sim) => {
    const nodes = await startNodes(sim);
    const leader = await leaderOf(sim, nodes);
    assert.equal((await put(leader, "warm", "1")).status, 204);
    sim.net.partition([leader.id], IDS.filter((id) => id !== leader.id));
    const waiting = put(leader, "held", "v");
    // The default limit: a quarter of the request timeout (1 s here).
    await delay(300, { clock: sim.clock });
    const refused = await put(leader, "late", "v");
    assert.equal(refused.status, 503);
    const body = await refused.json();
    assert.equal(body.mayHaveApplied, false);
    assert.match(body.error, /oldest write in progress has waited 30\d ms/);
    sim.net.heal();
    await (await waiting).body?.cancel();
    for (const n of nodes) await n.kv.stop();
  }, { seed: 17, limitMs: 120_000 });
});

Deno.test("kv http: small writes are not refused because large ones have waited too long; large ones are", async () => {
  await simulate(async (sim) => {
    const nodes = await startNodes(sim);
    const leader = await leaderOf(sim, nodes);
    assert.equal((await put(leader, "warm", "1")).status, 204);
    sim.net.partition([leader.id], IDS.filter((id) => id !== leader.id));
    const held = put(leader, "held", "x".repeat(100_000));
    await delay(300, { clock: sim.clock });
    // The oldest large write has waited past the limit (250 ms here): another large one is
    // refused; a small one is admitted, and waits with it.
    let late: Response | undefined;
    const lateDone = put(leader, "late", "y".repeat(100_000)).then((r) => late = r);
    let small: Response | undefined;
    const smallDone = put(leader, "small", "canary").then((r) => small = r);
    await delay(1, { clock: sim.clock });
    assert.equal(small, undefined, "the small write was answered at once: refused");
    sim.net.heal();
    await Promise.all([smallDone, lateDone]);
    assert.equal(small!.status, 204);
    assert.equal((await held).status, 204);
    assert.equal(late!.status, 503);
    const body = await late!.json();
    assert.equal(body.mayHaveApplied, false);
    assert.match(body.error, /oldest write in progress has waited \d+ ms/);
    for (const n of nodes) await n.kv.stop();
  }, { seed: 21, limitMs: 120_000 });
});

Deno.test("kv http: a body over the memory budget is refused before it is read", async () => {
  await simulate(async (sim) => {
    const nodes = await startNodes(sim, { maxBufferedBodyBytes: 100 });
    const leader = await leaderOf(sim, nodes);
    const request = new Request("http://node.test/kv/big", {
      method: "PUT",
      body: "x".repeat(101),
      headers: { "content-length": "101" },
    });
    const refused = await leader.http(request);
    assert.equal(refused.status, 503);
    assert.equal(request.bodyUsed, false);
    // The handler leaves the body unread and the connection to the listener, which drops a small
    // body and keeps the connection, and closes rather than read a large one (http_server_test).
    assert.equal(refused.headers.get("connection"), null);
    const body = await refused.json();
    assert.equal(body.mayHaveApplied, false);
    assert.match(body.error, /this one needs 101; the limit is 100/);
    // Within the budget, and once the budget is given back, writes go through.
    assert.equal((await put(leader, "small", "x".repeat(100))).status, 204);
    assert.equal((await put(leader, "small", "y".repeat(100))).status, 204);
    for (const n of nodes) await n.kv.stop();
  }, { seed: 18, limitMs: 120_000 });
});

Deno.test("kv http: large bodies leave a part of the memory budget to small ones, so a small write gets in", async () => {
  await simulate(async (sim) => {
    // Bodies over 64 KiB may hold 400,000 bytes less an eighth: three of 100,000.
    const nodes = await startNodes(sim, {
      maxBufferedBodyBytes: 400_000,
      maxPendingWriteBytes: 64 << 20,
    });
    const leader = await leaderOf(sim, nodes);
    assert.equal((await put(leader, "warm", "1")).status, 204);
    // Cut off from its followers, the leader commits nothing: the bodies stay held.
    sim.net.partition([leader.id], IDS.filter((id) => id !== leader.id));
    const held = [0, 1, 2].map((i) => put(leader, `large-${i}`, "x".repeat(100_000)));
    await delay(1, { clock: sim.clock });
    const asked = sim.clock.now();
    let answeredAt = NaN;
    const refusing = put(leader, "large-3", "x".repeat(100_000)).then((r) => {
      answeredAt = sim.clock.now();
      return r;
    });
    // A small write is not refused: it waits, in progress, like the large ones.
    let small: Response | undefined;
    const smallDone = put(leader, "small", "canary").then((r) => small = r);
    await delay(1, { clock: sim.clock });
    assert.equal(small, undefined, "the small write was answered at once: refused");
    sim.net.heal();
    await smallDone;
    assert.equal(small!.status, 204);
    for (const r of held) assert.equal((await r).status, 204);
    const refused = await refusing;
    assert.equal(refused.status, 503);
    // A large body refused unread is answered after its Retry-After (1 s), not at once.
    assert.equal(refused.headers.get("retry-after"), "1");
    assert.equal(answeredAt - asked, 1000, "the refusal of a large write is paced");
    const body = await refused.json();
    assert.equal(body.mayHaveApplied, false);
    assert.match(body.error, /less 50000 kept for bodies of 65536 bytes or less/);
    for (const n of nodes) await n.kv.stop();
  }, { seed: 19, limitMs: 120_000 });
});

Deno.test("kv http: refusals of large writes are paced only up to their bound, and not at all with refusalPaceMs 0", async () => {
  for (const refusalPaceMs of [0, 250]) {
    await simulate(async (sim) => {
      const nodes = await startNodes(sim, { maxBufferedBodyBytes: 100_000, refusalPaceMs });
      const leader = await leaderOf(sim, nodes);
      const asked = sim.clock.now();
      const refused = await put(leader, "large", "x".repeat(100_001));
      assert.equal(refused.status, 503);
      assert.equal((await refused.json()).mayHaveApplied, false);
      // Paced for the shorter of the option and Retry-After (1 s).
      assert.equal(sim.clock.now() - asked, refusalPaceMs);
      for (const n of nodes) await n.kv.stop();
    }, { seed: 20 + refusalPaceMs, limitMs: 120_000 });
  }
});

Deno.test("kv clerk: an overloaded answer is a definite refusal; a clerk that follows leaders pauses and resends", async () => {
  await simulate(async (sim) => {
    const nodes = await startNodes(sim, { maxPendingWrites: 1 });
    const leader = await leaderOf(sim, nodes);
    const direct = new KvClerk(sim.net.transportFor("client-1"), [leader.id], {
      clock: sim.clock,
      id: sim.newId(),
      random: sim.random.fork(),
      followLeader: false,
    });
    sim.net.partition([leader.id, "client-1"], IDS.filter((id) => id !== leader.id));
    const held = direct.put("held", "1").catch((err) => err);
    await delay(1, { clock: sim.clock });
    const err = await direct.put("refused", "1").catch((e) => e);
    assert.ok(err instanceof OverloadedError, `got ${err}`);
    assert.equal(err.mayHaveApplied, false);
    sim.net.heal();
    await held;
    const before = leader.kv.stats().overloaded;
    // Three clients, the leader first in their lists: its own refusals are
    // what is tested, not the search for it.
    const servers = [leader.id, ...IDS.filter((id) => id !== leader.id)];
    const names = ["p1", "p2", "p3"];
    const patients = names.map((name) =>
      new KvClerk(sim.net.transportFor(name), servers, {
        clock: sim.clock,
        id: sim.newId(),
        random: sim.random.fork(),
      })
    );
    // The leader commits nothing for a while: one put is held, the others are refused (and resent).
    sim.net.partition([leader.id, ...names], IDS.filter((id) => id !== leader.id));
    const puts = Promise.all(patients.map((c, i) => c.put(names[i], String(i))));
    // (Within the leader's quorum check, 500 ms: cut off longer, it steps down.)
    for (let t = 0; t < 400 && leader.kv.stats().overloaded < before + 2; t += 10) {
      await delay(10, { clock: sim.clock });
    }
    assert.ok(leader.kv.stats().overloaded >= before + 2, "the held put's companions were refused");
    sim.net.heal();
    await puts;
    const patient = patients[0];
    assert.deepEqual(
      await Promise.all(names.map((k) => patient.get(k))),
      ["0", "1", "2"],
    );
    assert.equal(await patient.get("refused"), null, "the refused put was not applied");
    for (const n of nodes) await n.kv.stop();
  }, { seed: 19, limitMs: 120_000 });
});

Deno.test("kv http: keys are literal: a/../b and NUL are keys like any other", async () => {
  await simulate(async (sim) => {
    const nodes = await startNodes(sim);
    const leader = await leaderOf(sim, nodes);
    // Percent-encoded, so the Request's own URL parsing leaves them alone
    // (Deno.serve hands the path over as sent; see the process test).
    for (const [path, key] of [["a%2F..%2Fb", "a/../b"], ["nul%00x", "nul\0x"]]) {
      assert.equal((await put(leader, path, key)).status, 204);
      const got = await leader.http(new Request(`http://node.test/kv/${path}`));
      assert.equal(await got.text(), key);
      assert.equal(leader.kv.localGet(key), key);
    }
    assert.equal(leader.kv.localGet("b"), null, "a/../b is not b");
    for (const n of nodes) await n.kv.stop();
  }, { seed: 20, limitMs: 120_000 });
});
