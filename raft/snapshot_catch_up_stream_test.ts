/**
 * What a leader holds for a follower catching up from a stream,
 * once that follower is removed, or stops answering mid-stream.
 */
import assert from "node:assert/strict";
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import { simulate } from "../net/sim/simulate.ts";
import type { SimNetwork } from "../net/sim/network.ts";
import { RpcServer } from "../net/rpc_server.ts";
import type { Random } from "../net/random.ts";
import { RaftNode } from "./node.ts";
import type { RaftTransport } from "./node_options.ts";
import { MemoryStorage } from "./storage.ts";
import type { Message } from "./types.ts";
import { StreamedList } from "./test_util.ts";

/** Counts the snapshot chunks sent to each peer. */
function counting(inner: RaftTransport, chunks: Map<string, number>): RaftTransport {
  return {
    connect(peer: string) {
      const end = inner.connect(peer);
      return {
        call<T>(method: string, args?: unknown, options?: { timeoutMs?: number }) {
          if ((args as Message).type === "snapshot") chunks.set(peer, (chunks.get(peer) ?? 0) + 1);
          return end.call<T>(method, args, options);
        },
      };
    },
  };
}

interface Member {
  node: RaftNode;
  service: StreamedList;
  server: RpcServer;
  done: Promise<void>;
}

async function startMember(
  id: string,
  sim: { net: SimNetwork; clock: Clock; random: Random },
  chunks: Map<string, number>,
): Promise<Member> {
  const server = new RpcServer();
  sim.net.addServer(id, server);
  const service = new StreamedList(8);
  const node = await RaftNode.start({
    id,
    peers: ["a", "b", "c"],
    server,
    transport: counting(sim.net.transportFor(id), chunks),
    storage: new MemoryStorage(),
    clock: sim.clock,
    random: sim.random.fork(),
    applied: service.applied,
    snapshotSource: service.source(),
    snapshotChunkBytes: 8,
    snapshotWindowBytes: 8,
  });
  return { node, service, server, done: service.consume(node) };
}

async function leaderOf(members: Member[], clock: Clock): Promise<Member> {
  while (true) {
    const leader = members.find((m) => m.node.status().role === "leader");
    if (leader) return leader;
    await delay(20, { clock });
  }
}

/** a and b hold 3,000 items, compacted; c starts empty and is being streamed them. */
async function streamingToC(sim: { net: SimNetwork; clock: Clock; random: Random }) {
  const { clock } = sim;
  const chunks = new Map<string, number>();
  sim.net.setLatency([2, 2]);
  const a = await startMember("a", sim, chunks);
  const b = await startMember("b", sim, chunks);
  const leader = await leaderOf([a, b], clock);
  let last = 0;
  for (let i = 1; i <= 3000; i++) {
    const { index, term } = await leader.node.propose(`value-${i}`);
    if (i === 3000) await leader.node.waitApplied(index, term);
    last = index;
  }
  while (a.service.applied < last || b.service.applied < last) await delay(10, { clock });
  await Promise.all([a.node.compact(last), b.node.compact(last)]);
  const c = await startMember("c", sim, chunks);
  while ((chunks.get("c") ?? 0) < 20) await delay(1, { clock });
  assert.ok(leader.node.status().catchUpIndex !== undefined, "the stream holds the log");
  return { a, b, c, leader, chunks };
}

Deno.test("review32s: nothing is held for a follower removed while it is streamed the state (its stream goes on to the end)", async () => {
  await simulate(async (sim) => {
    const { clock } = sim;
    const { a, b, c, leader, chunks } = await streamingToC(sim);
    await leader.node.changeMembership({ type: "remove", node: "c" });
    assert.ok(!leader.node.status().membership.voters.includes("c"));
    const sentAtRemoval = chunks.get("c")!;
    // A few election timeouts: c is no member, it needs nothing of the log.
    await delay(2_000, { clock });
    const held = leader.node.status().catchUpIndex;
    const sentSince = chunks.get("c")! - sentAtRemoval;
    await Promise.all([a, b, c].map((m) => m.node.stop()));
    await Promise.all([a, b, c].map((m) => m.done));
    assert.equal(
      held,
      undefined,
      `2 s after c's removal the leader still holds its log at ${held} for c ` +
        `(${sentSince} chunks of the state sent to c since it was removed)`,
    );
  }, { seed: 3201, limitMs: 600_000 });
});

Deno.test("review32s: a stream that fails (the follower stops mid-stream) holds nothing any more", async () => {
  await simulate(async (sim) => {
    const { clock } = sim;
    const { a, b, c, leader } = await streamingToC(sim);
    await c.node.stop();
    await c.done;
    sim.net.deleteServer("c");
    // The stream's next chunk goes unanswered (its call times out): it fails.
    const deadline = clock.now() + 10_000;
    while (leader.node.status().catchUpIndex !== undefined && clock.now() < deadline) {
      await delay(50, { clock });
    }
    const held = leader.node.status().catchUpIndex;
    await Promise.all([a, b].map((m) => m.node.stop()));
    await Promise.all([a, b].map((m) => m.done));
    assert.equal(held, undefined, `the leader still holds its log at ${held} for a dead stream`);
  }, { seed: 3202, limitMs: 600_000 });
});
