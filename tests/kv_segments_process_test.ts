/**
 * The KV service as `deno` processes with the segment log (`kv serve --log
 * segments`): leaders and followers killed with SIGKILL and restarted from
 * their folders under concurrent client load, with snapshots compacting the
 * log (64 KiB of Raft state); every acknowledged write must be there exactly
 * once, the history linearizable. Damage to a killed node's acknowledged
 * records (a flipped byte inside its log, its last records zeroed as a lost
 * write would leave them) makes it refuse to start, and the others keep every
 * acknowledged put. A folder of one log kind is refused when started as
 * the other, and a second node on a running node's folder is refused.
 */
import assert from "node:assert/strict";
import { checkOperations, kvModel } from "../checker/mod.ts";
import { connectKv, startKvNode } from "../kv/mod.ts";
import { AppendWorkload, LocalCluster } from "../cli.ts";
import { delay } from "../net/mod.ts";
import { SegmentLockError, StorageKindError } from "../raft/mod.ts";
import { freePorts, HOST, NodeProcess } from "./node_process.ts";

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
      // Started as its own kind again, it serves; started without a kind, it opens the kind it
      // holds (a restart needs no --log) and makes nothing of the other kind beside it.
      for (const raftLog of [first, undefined]) {
        const again = await startKvNode({
          id: 0,
          peers,
          dataDir: folder,
          httpOffset: null,
          raftLog,
        });
        await again.close();
      }
      const names = [...Deno.readDirSync(folder)].map((e) => e.name);
      assert.ok(names.includes(first === "kv" ? "raft.kv" : "raft.log"), names.join(", "));
      assert.ok(!names.includes(second === "kv" ? "raft.kv" : "raft.log"), names.join(", "));
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("kv node: a second node on a running node's segment folder is refused, the first serves on", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-kv-twice-" });
  const ports = freePorts(2);
  try {
    const node = await startKvNode({
      id: 0,
      peers: [`${HOST}:${ports[0]}`],
      dataDir,
      httpOffset: null,
      raftLog: "segments",
    });
    try {
      // Another listening address, the same folder (an operator's slip).
      await assert.rejects(
        startKvNode({
          id: 0,
          peers: [`${HOST}:${ports[1]}`],
          dataDir,
          httpOffset: null,
          raftLog: "segments",
        }),
        (err: Error) => {
          assert.ok(err instanceof SegmentLockError, String(err));
          assert.match(err.message, /another process/);
          return true;
        },
      );
      const { clerk, close } = connectKv([`${HOST}:${ports[0]}`]);
      try {
        await clerk.put("k", "still here");
        assert.equal(await clerk.get("k"), "still here");
      } finally {
        await close();
      }
    } finally {
      await node.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

/** Polls `condition` every 50 ms until it holds; fails after `ms`. */
async function until(what: string, condition: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await delay(50);
  }
}

/** The last segment of `folder` holding records, and where its records end. */
async function lastSegment(folder: string): Promise<{ path: string; end: number }> {
  const names = [...Deno.readDirSync(folder)].map((e) => e.name).filter((n) => n.endsWith(".seg"))
    .sort().reverse();
  for (const name of names) {
    const bytes = await Deno.readFile(`${folder}/${name}`);
    const end = bytes.findLastIndex((b) => b !== 0) + 1;
    if (end > 0) return { path: `${folder}/${name}`, end };
  }
  throw new Error(`no segment of ${folder} holds records`);
}

Deno.test("kv processes (segment log): a killed node whose acknowledged records were damaged refuses to start; no acknowledged put is lost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distkit-segdamage-" });
  const peers = freePorts(3).map((p) => `${HOST}:${p}`);
  const nodes = peers.map((address, i) =>
    new NodeProcess(address, [
      "kv",
      "serve",
      ...["--id", String(i), "--peers", peers.join(","), "--data", `${dir}/node${i}`],
      ...["--no-http", "--log", "segments"],
    ])
  );
  const acked = new Map<string, string>();
  let stop = false;
  const connections = Array.from({ length: 4 }, () => connectKv(peers));
  try {
    await Promise.all(nodes.map((n) => n.start()));
    const writers = connections.map(async ({ clerk }, w) => {
      for (let n = 0; !stop; n++) {
        const key = `w${w}-${n}`;
        try {
          await clerk.put(key, `v${n}`, { signal: AbortSignal.timeout(10_000) });
          acked.set(key, `v${n}`);
        } catch {
          // Not acknowledged: it may or may not be there; not checked.
        }
      }
    });
    await until("puts acknowledged under load", () => acked.size >= 500);
    const victim = nodes[1];
    await victim.kill("SIGKILL");
    const { path, end } = await lastSegment(`${dir}/node1/raft.log`);
    assert.ok(end > 8000, `the victim's last segment holds ${end} bytes of records`);
    const original = await Deno.readFile(path);
    const damages: [string, (b: Uint8Array) => void, RegExp][] = [
      // A byte inside the log, with valid records after it (a flip in a
      // record's CRC or length field hides them: then it reads as a cut log,
      // below what the mark says was acknowledged).
      [
        "a flipped byte",
        (b) => (b[Math.floor(end / 2)] ^= 0x5a),
        /is corrupt: .*damaged record|lost state it had made durable/,
      ],
      // The last records gone (acknowledged saves among them): a lost write.
      [
        "its last records zeroed",
        (b) => b.fill(0, end - 4000, end),
        /lost state it had made durable/,
      ],
    ];
    for (const [what, damage, message] of damages) {
      const bytes = original.slice();
      damage(bytes);
      await Deno.writeFile(path, bytes);
      await assert.rejects(victim.start(), /exited at start/, what);
      assert.match(victim.stderr, message, what);
      assert.match(victim.stderr, /new member/, what);
    }
    // The others kept serving all along.
    const during = acked.size;
    await until("puts acknowledged without the victim", () => acked.size > during + 100);
    // Undamaged, the victim starts again from its folder (the kill's torn end, if any, cut).
    await Deno.writeFile(path, original);
    await victim.start();
    const after = acked.size;
    await until("puts acknowledged with the victim back", () => acked.size > after + 100);
    stop = true;
    await Promise.all(writers);
    const { clerk } = connections[0];
    let lost = 0;
    for (const [key, value] of acked) if ((await clerk.get(key)) !== value) lost++;
    assert.equal(lost, 0, `${lost} of ${acked.size} acknowledged puts lost`);
  } finally {
    stop = true;
    for (const c of connections) await c.close();
    for (const n of nodes) await n.kill();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kv processes (segment log): a node whose state.kv was deleted refuses to start; the cluster serves on", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-kv-seg-state-" });
  const cluster = await LocalCluster.start({
    dataDir,
    maxRaftState: 4096,
    serveArgs: ["--log", "segments", "--state", "disk"],
  });
  const { clerk, close } = connectKv(cluster.peers);
  try {
    for (let i = 0; i < 100; i++) await clerk.put(`k${i}`, "v".repeat(100) + i);
    const victim = ((await cluster.leader()) + 1) % 3;
    await cluster.kill(victim);
    const folder = cluster.dataDir(victim);
    for (const e of Deno.readDirSync(folder)) {
      if (e.name.startsWith("state.kv")) Deno.removeSync(`${folder}/${e.name}`);
    }
    // Before, it started as a memory node (no state record: "a new folder") from a log
    // compacted past the state it had stored, and stopped without saying why, or served.
    await assert.rejects(
      cluster.restart(victim),
      /state database beside the segment log is gone, though this node has taken part/,
    );
    assert.throws(() => Deno.statSync(`${folder}/state.kv`), Deno.errors.NotFound);
    await clerk.put("after", "1");
    assert.equal(await clerk.get("k99"), "v".repeat(100) + 99);
  } finally {
    await close();
    await cluster.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
