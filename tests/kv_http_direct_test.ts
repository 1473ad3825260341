/**
 * The HTTP API goes straight to its node's replica (issue 20): no `KV.*`
 * call through the node's RPC server, the replica's counters as before,
 * and a write the leader cannot commit resent in the same session once per
 * replica deadline, then answered as possibly applied, and applied at most
 * once.
 */
import assert from "node:assert/strict";
import { kvHttpHandler, KvServer } from "../kv/mod.ts";
import { delay, RpcServer, simulate, type Simulation } from "../net/mod.ts";
import { MemoryStorage } from "../raft/mod.ts";

const IDS = ["a", "b", "c"];
const ADDRESSES: Record<string, string> = { a: "a.test:80", b: "b.test:80", c: "c.test:80" };

interface Node {
  id: string;
  kv: KvServer;
  http: (req: Request) => Promise<Response>;
  /** The `KV.*` calls its RPC server dispatched. */
  kvCalls: string[];
}

async function startNode(sim: Simulation, id: string): Promise<Node> {
  const rpc = new RpcServer();
  const kvCalls: string[] = [];
  const dispatch = rpc.dispatch.bind(rpc);
  rpc.dispatch = (method, args, context) => {
    if (method.startsWith("KV.")) kvCalls.push(method);
    return dispatch(method, args, context);
  };
  const kv = await KvServer.start({
    id,
    peers: IDS,
    transport: sim.net.transportFor(id),
    server: rpc,
    storage: new MemoryStorage(),
    clock: sim.clock,
    random: sim.random.fork(),
  });
  sim.net.addServer(id, rpc);
  const http = kvHttpHandler(kv, rpc, {
    clock: sim.clock,
    random: sim.random.fork(),
    clerkId: sim.newId(),
    addresses: ADDRESSES,
    timeoutMs: 4 * kv.requestTimeoutMs,
  });
  return { id, kv, http, kvCalls };
}

async function leaderOf(sim: Simulation, nodes: Node[]): Promise<Node> {
  for (let waited = 0; waited < 20_000; waited += 50) {
    const leader = nodes.find((n) => n.kv.raft.status().role === "leader");
    if (leader) return leader;
    await delay(50, { clock: sim.clock });
  }
  throw new Error("no leader within 20 s of virtual time");
}

function request(node: Node, path: string, init: RequestInit = {}): Promise<Response> {
  return node.http(new Request(`http://${ADDRESSES[node.id]}${path}`, init));
}

Deno.test("kv http: keys and values go to the replica without an RPC dispatch, counted as before", async () => {
  await simulate(async (sim) => {
    const nodes = await Promise.all(IDS.map((id) => startNode(sim, id)));
    const leader = await leaderOf(sim, nodes);
    const before = leader.kv.stats();
    assert.equal((await request(leader, "/kv/k", { method: "PUT", body: "a" })).status, 204);
    const append = await request(leader, "/kv/k?op=append", { method: "POST", body: "b" });
    assert.equal(append.status, 204);
    const cas = await request(leader, "/kv/k?op=cas", {
      method: "POST",
      body: JSON.stringify({ expected: "x", value: "c" }),
    });
    assert.deepEqual(await cas.json(), { ok: false, current: "ab" });
    const got = await request(leader, "/kv/k");
    assert.equal(await got.text(), "ab");
    assert.equal((await request(leader, "/kv/k", { method: "DELETE" })).status, 204);
    assert.equal((await request(leader, "/kv/k")).status, 404);
    const tooLong = await request(leader, `/kv/${"k".repeat(2000)}`, {
      method: "PUT",
      body: "v",
    });
    assert.equal(tooLong.status, 400);
    const refusal = await tooLong.json();
    assert.equal(refusal.mayHaveApplied, false);
    assert.match(refusal.error, /kv: request refused: key/);
    const after = leader.kv.stats();
    assert.equal(after.writes - before.writes, 4);
    assert.equal(after.reads - before.reads, 2);
    assert.equal(after.badRequests - before.badRequests, 1);
    for (const n of nodes) assert.deepEqual(n.kvCalls, [], `${n.id} dispatched no KV call`);
    for (const n of nodes) await n.kv.stop();
  }, { seed: 20, limitMs: 120_000 });
});

Deno.test("kv http: a write the leader cannot commit is resent once per replica deadline, applied at most once", async () => {
  await simulate(async (sim) => {
    const nodes = await Promise.all(IDS.map((id) => startNode(sim, id)));
    const leader = await leaderOf(sim, nodes);
    assert.equal((await request(leader, "/kv/k", { method: "PUT", body: "<0>" })).status, 204);
    const others = nodes.filter((n) => n !== leader).map((n) => n.id);
    sim.net.partition([leader.id], others);
    const retriesBefore = leader.kv.stats().retries;
    const started = sim.clock.now();
    const answer = await request(leader, "/kv/k?op=append", {
      method: "POST",
      body: "<1>",
      headers: { "x-distkit-client": "web-9", "x-distkit-seq": "1" },
    });
    const body = await answer.json();
    assert.equal(answer.status, 503, JSON.stringify(body));
    assert.equal(body.mayHaveApplied, true);
    assert.equal(body.outcome, "unknown");
    assert.ok(
      sim.clock.now() - started <= 4 * leader.kv.requestTimeoutMs,
      "answered by the request's deadline",
    );
    assert.ok(
      leader.kv.stats().retries > retriesBefore,
      "the replica's deadline cut an attempt, and it was resent",
    );
    sim.net.heal();
    // Resent with the same session until acknowledged: applied once, whatever was proposed.
    let status = 0;
    for (let i = 0; i < 20 && status !== 204; i++) {
      const now = await leaderOf(sim, nodes);
      status = (await request(now, "/kv/k?op=append", {
        method: "POST",
        body: "<1>",
        headers: { "x-distkit-client": "web-9", "x-distkit-seq": "1" },
      })).status;
      if (status !== 204) await delay(200, { clock: sim.clock });
    }
    assert.equal(status, 204);
    const now = await leaderOf(sim, nodes);
    assert.equal(await (await request(now, "/kv/k")).text(), "<0><1>");
    for (const n of nodes) assert.deepEqual(n.kvCalls, [], `${n.id} dispatched no KV call`);
    for (const n of nodes) await n.kv.stop();
  }, { seed: 21, limitMs: 120_000 });
});
