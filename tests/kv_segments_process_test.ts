/**
 * The KV service as `deno` processes with the segment log (`kv serve --log
 * segments`): leaders and followers killed with SIGKILL and restarted from
 * their folders under concurrent client load, with snapshots compacting the
 * log (64 KiB of Raft state); every acknowledged write must be there exactly
 * once, the history linearizable. And a folder of one log kind is refused
 * when started as the other.
 */
import assert from "node:assert/strict";
import { checkOperations, kvModel } from "../checker/mod.ts";
import { connectKv, startKvNode } from "../kv/mod.ts";
import { AppendWorkload, LocalCluster } from "../cli.ts";
import { delay } from "../net/mod.ts";
import { StorageKindError } from "../raft/mod.ts";

const ROUNDS = Number(Deno.env.get("KV_CRASH_ROUNDS") ?? 6);

Deno.test("kv processes (segment log): kill -9 of leaders and followers under load loses nothing", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-kv-seg-test-" });
  const cluster = await LocalCluster.start({
    dataDir,
    maxRaftState: 64 * 1024,
    serveArgs: ["--log", "segments"],
  });
  try {
    const workload = new AppendWorkload({ keys: 3 });
    const connections = Array.from({ length: 6 }, () => connectKv(cluster.peers));
    const running = workload.start(connections.map((c) => c.clerk));
    const log: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const leader = await cluster.leader();
      const victim = round % 2 === 0 ? leader : (leader + 1 + (round % 3 === 1 ? 0 : 1)) % 3;
      await delay(200);
      await cluster.kill(victim);
      log.push(`round ${round}: killed ${victim === leader ? "leader" : "follower"} ${victim}`);
      await delay(300 + 100 * (round % 4));
      await cluster.restart(victim);
    }
    await delay(500);
    await running.stop();
    const lost = await workload.lostAppends(connections[0].clerk);
    assert.equal(lost, 0, `${lost} acknowledged appends missing or doubled (${log.join("; ")})`);
    for (const c of connections) await c.close();
    const result = checkOperations(kvModel, workload.history, { timeoutMs: 60_000 });
    assert.equal(result.verdict, "linearizable");
    const total = workload.acknowledged.reduce((a, b) => a + b, 0);
    assert.ok(total > 100, `only ${total} appends acknowledged`);
    // Each node kept its log in segments, not in Deno KV.
    for (let i = 0; i < 3; i++) {
      const names = [...Deno.readDirSync(`${cluster.dataDir(i)}/raft.log`)].map((e) => e.name);
      assert.ok(names.some((n) => n.endsWith(".seg")), `node ${i}: ${names}`);
      assert.throws(() => Deno.statSync(`${cluster.dataDir(i)}/raft.kv`), Deno.errors.NotFound);
    }
    console.log(`  ${ROUNDS} kill -9 rounds, ${total} appends acknowledged and present`);
  } finally {
    await cluster.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("kv node: a folder of one Raft log kind is refused when started as the other", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-kv-kind-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peers = [`127.0.0.1:${listener.addr.port}`];
  listener.close();
  try {
    for (const [first, second] of [["segments", "kv"], ["kv", "segments"]] as const) {
      const folder = `${dataDir}/${first}`;
      const node = await startKvNode({
        id: 0,
        peers,
        dataDir: folder,
        httpOffset: null,
        raftLog: first,
      });
      await node.close();
      await assert.rejects(
        startKvNode({ id: 0, peers, dataDir: folder, httpOffset: null, raftLog: second }),
        (err: Error) => {
          assert.ok(err instanceof StorageKindError, String(err));
          assert.match(err.message, new RegExp(`start the node with --log ${first}`));
          return true;
        },
      );
      // Started as its own kind again, it serves.
      const again = await startKvNode({
        id: 0,
        peers,
        dataDir: folder,
        httpOffset: null,
        raftLog: first,
      });
      await again.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
