/**
 * Runtime membership of the KV service in virtual time: the `Member` RPC
 * service and the HTTP API's `/members` on simulated nodes. A node added
 * while the cluster is idle catches up by the leader's snapshot (no client
 * write needed), `promote` refuses it until then, every change is
 * idempotent, and every refusal says whether it may have been applied.
 */
import assert from "node:assert/strict";
import {
  changeMember,
  KvClerk,
  kvHttpHandler,
  KvServer,
  type MemberList,
  MemberRefusedError,
  type MemberReply,
  memberRequest,
  serveMembers,
} from "../kv/mod.ts";
import { delay, RpcServer, simulate, type Simulation } from "../net/mod.ts";
import { MemoryStorage, NotLeaderError } from "../raft/mod.ts";

const IDS = ["a", "b", "c", "d"];
const ADDRESSES: Record<string, string> = Object.fromEntries(
  IDS.map((id) => [id, `${id}.test:80`]),
);

interface SimNode {
  id: string;
  kv: KvServer;
  http: (req: Request) => Promise<Response>;
}

/** A node: a founding voter of {a, b, c}, or (`join`) a node with no membership yet. */
async function startNode(sim: Simulation, id: string, join = false): Promise<SimNode> {
  const rpc = new RpcServer();
  const kv = await KvServer.start({
    id,
    peers: join ? [] : ["a", "b", "c"],
    transport: sim.net.transportFor(id),
    server: rpc,
    storage: new MemoryStorage(),
    clock: sim.clock,
    random: sim.random.fork(),
    maxRaftState: 2048,
  });
  serveMembers(rpc, kv.raft, {
    clock: sim.clock,
    checkNode: (node) => IDS.includes(node) ? undefined : `node ${node} has no known address`,
  });
  sim.net.addServer(id, rpc);
  const http = kvHttpHandler(kv, rpc, {
    clock: sim.clock,
    random: sim.random.fork(),
    clerkId: sim.newId(),
    addresses: ADDRESSES,
  });
  return { id, kv, http };
}

async function leaderOf(sim: Simulation, nodes: SimNode[]): Promise<SimNode> {
  for (let waited = 0; waited < 20_000; waited += 50) {
    const leader = nodes.find((n) => !n.kv.stopped && n.kv.raft.status().role === "leader");
    if (leader) return leader;
    await delay(50, { clock: sim.clock });
  }
  throw new Error("no leader within 20 s of virtual time");
}

async function call(node: SimNode, path: string, method = "GET") {
  const res = await node.http(new Request(`http://${ADDRESSES[node.id]}${path}`, { method }));
  return { status: res.status, headers: res.headers, body: await res.json() };
}

Deno.test("kv members: add while idle, catch up by snapshot, promote, remove over HTTP", async () => {
  await simulate(async (sim) => {
    const nodes = await Promise.all(["a", "b", "c"].map((id) => startNode(sim, id)));
    try {
      const leader = await leaderOf(sim, nodes);
      const follower = nodes.find((n) => n !== leader)!;
      // Enough writes for the leader to snapshot (and compact its log).
      const clerk = new KvClerk(sim.net.transportFor("client"), ["a", "b", "c"], {
        clock: sim.clock,
        id: sim.newId(),
        random: sim.random.fork(),
      });
      for (let k = 0; k < 60; k++) await clerk.put(`key${k}`, "x".repeat(64));
      await delay(1000, { clock: sim.clock });
      assert.ok(leader.kv.raft.status().snapshotIndex > 0, "the leader has compacted its log");

      // A follower sends the client to the leader; GET is not a write.
      const redirected = await call(follower, "/members");
      assert.equal(redirected.status, 307);
      assert.equal(redirected.headers.get("location"), `http://${ADDRESSES[leader.id]}/members`);
      const listed = await call(leader, "/members");
      assert.equal(listed.status, 200);
      assert.deepEqual(
        (listed.body as MemberList).members.map((m) => [m.id, m.role]),
        [["a", "voter"], ["b", "voter"], ["c", "voter"]],
      );

      const added = await call(leader, "/members/d", "POST");
      assert.equal(added.status, 200, JSON.stringify(added.body));
      assert.equal(added.body.changed, true);
      const again = await call(leader, "/members/d", "POST");
      assert.deepEqual([again.status, again.body.changed, again.body.note], [
        200,
        false,
        "node d is already a learner",
      ]);

      // d does not run yet: promote is refused, retryably, and nothing was proposed.
      const early = await call(leader, "/members/d?op=promote", "POST");
      assert.equal(early.status, 409);
      assert.equal(early.body.retryable, true);
      assert.equal(early.body.mayHaveApplied, false);
      assert.match(early.body.error, /learner d has not caught up/);

      // d starts on an empty folder; the cluster stays idle (no client writes).
      const commit = leader.kv.raft.status().commitIndex;
      const d = await startNode(sim, "d", true);
      nodes.push(d);
      for (let waited = 0; d.kv.appliedIndex < commit; waited += 100) {
        assert.ok(waited < 10_000, `d applied ${d.kv.appliedIndex} of ${commit} while idle`);
        await delay(100, { clock: sim.clock });
      }
      assert.equal(leader.kv.raft.status().commitIndex, commit, "nothing was written meanwhile");
      assert.ok(d.kv.stats().installs >= 1, "d caught up by the leader's snapshot");
      assert.equal(d.kv.localGet("key59"), "x".repeat(64));

      const promoted = await call(leader, "/members/d?op=promote", "POST");
      assert.equal(promoted.status, 200, JSON.stringify(promoted.body));
      assert.deepEqual(leader.kv.raft.status().membership, {
        voters: ["a", "b", "c", "d"],
        learners: [],
      });
      assert.equal((await call(leader, "/members/d?op=promote", "POST")).body.changed, false);

      // Remove a follower; removing it again is answered as done.
      const gone = nodes.find((n) => n !== leader && n !== d)!;
      const removed = await call(leader, `/members/${gone.id}`, "DELETE");
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
      assert.equal((await call(leader, `/members/${gone.id}`, "DELETE")).body.changed, false);
      assert.equal(leader.kv.raft.status().membership.voters.length, 3);

      // Bad requests: definite refusals.
      const put = await call(leader, "/members/d", "PUT");
      assert.deepEqual([put.status, put.body.mayHaveApplied], [405, false]);
      const op = await call(leader, "/members/d?op=nope", "POST");
      assert.deepEqual([op.status, op.body.mayHaveApplied], [400, false]);
      const unknown = await call(leader, "/members/zz", "POST");
      assert.deepEqual(
        [unknown.status, unknown.body.error, unknown.body.retryable, unknown.body.mayHaveApplied],
        [409, "node zz has no known address", false, false],
      );
      const noId = await call(leader, "/members", "POST");
      assert.equal(noId.status, 405);
      await clerk.put("after", "yes");
      assert.equal(await clerk.get("after"), "yes");
    } finally {
      for (const n of nodes) await n.kv.stop();
    }
  }, { seed: 11 });
});

Deno.test("kv members: a leader that removes itself answers the members as they are after it", async () => {
  await simulate(async (sim) => {
    const nodes = await Promise.all(["a", "b", "c"].map((id) => startNode(sim, id)));
    try {
      const leader = await leaderOf(sim, nodes);
      const { changed, members } = await changeMember(
        leader.kv.raft,
        { op: "remove", node: leader.id },
        { clock: sim.clock },
      );
      assert.ok(changed);
      // Before, it answered the list from before the change: itself still a voter.
      assert.deepEqual(
        members.members.map((m) => `${m.id} ${m.role}`),
        nodes.filter((n) => n !== leader).map((n) => `${n.id} voter`),
      );
      assert.deepEqual(leader.kv.raft.status().membership.voters.includes(leader.id), false);
    } finally {
      for (const n of nodes) await n.kv.stop();
    }
  }, { seed: 13 });
});

Deno.test("kv members: the Member RPC service answers not-leader, refusals and outcomes", async () => {
  await simulate(async (sim) => {
    const nodes = await Promise.all(["a", "b", "c"].map((id) => startNode(sim, id)));
    try {
      const leader = await leaderOf(sim, nodes);
      const follower = nodes.find((n) => n !== leader)!;
      const end = (n: SimNode) => sim.net.transportFor("admin").connect(n.id);
      const reply = (n: SimNode, method: string, args: unknown = {}) =>
        end(n).call<MemberReply>(`Member.${method}`, args, { timeoutMs: 10_000 });
      assert.deepEqual(await reply(follower, "List"), { status: "not-leader", leader: leader.id });
      const list = await reply(leader, "List");
      assert.ok("list" in list && list.list.members.length === 3);
      const refused = await reply(leader, "Promote", { node: "zz" });
      assert.deepEqual(refused, {
        status: "ok",
        refused: {
          reason: "node zz is not a member; add it first (it joins as a learner)",
          retryable: false,
        },
      });
      await assert.rejects(reply(leader, "Add", { node: 7 }), /node/);
      const add = await reply(leader, "Add", { node: "d" });
      assert.ok("outcome" in add && add.outcome.changed);

      // In code: not the leader, and the last voter.
      await assert.rejects(
        changeMember(follower.kv.raft, { op: "add", node: "e" }, { clock: sim.clock }),
        NotLeaderError,
      );
      for (const id of nodes.filter((n) => n !== leader).map((n) => n.id)) {
        await changeMember(leader.kv.raft, { op: "remove", node: id }, { clock: sim.clock });
      }
      await changeMember(leader.kv.raft, { op: "remove", node: "d" }, { clock: sim.clock });
      const last = changeMember(leader.kv.raft, { op: "remove", node: leader.id }, {
        clock: sim.clock,
      });
      await assert.rejects(last, (err) => err instanceof MemberRefusedError && !err.retryable);

      // A stopped node proposes nothing: "retry", definite.
      await leader.kv.stop();
      const outside = nodes.find((n) => n !== leader)!.id; // removed above
      const request = { op: "add" as const, node: outside };
      assert.deepEqual(await memberRequest(leader.kv.raft, request, { clock: sim.clock }), {
        status: "retry",
        reason: "this node has stopped",
      });
    } finally {
      for (const n of nodes) await n.kv.stop();
    }
  }, { seed: 12 });
});
