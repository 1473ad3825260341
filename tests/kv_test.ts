/**
 * The 23 KV scenarios of LABS.md §3 (the course's 3A and 3B tests), on the
 * simulated network in virtual time. GenericTest runs its 3 iterations as in
 * the course; its history must be found linearizable (a checker timeout is a
 * failure) and every client must have completed operations.
 */
import assert from "node:assert/strict";
import { simulate, type Simulation } from "../net/mod.ts";
import {
  append,
  checkClntAppends,
  checkConcurrentAppends,
  checkValue,
  ELECTION_TIMEOUT_MS,
  type GenericParams,
  genericTest,
  get,
  KvCluster,
  put,
} from "./kv_cluster.ts";

const SIM_LIMIT_MS = 30 * 60_000;

function kvTest(name: string, body: (sim: Simulation) => Promise<void>): void {
  Deno.test(`kv: ${name}`, async () => {
    await simulate(body, { limitMs: SIM_LIMIT_MS });
  });
}

function generic(name: string, params: GenericParams): void {
  kvTest(name, (sim) => genericTest(sim, name, params));
}

// ---- 3A: the service without snapshots ----

generic("one client (3A)", { clients: 1, servers: 5 });

/** The course's TestSpeed: 1,000 sequential appends, at least 3 per heartbeat interval (100 ms). */
function speedTest(name: string, maxRaftState: number): void {
  kvTest(name, async (sim) => {
    const cfg = await KvCluster.start(sim, 3, { maxRaftState });
    const { clerk: ck } = cfg.makeClient();
    cfg.begin();
    // The first operation completes once a leader is elected and serving.
    await get(cfg, ck, "x");
    const numOps = 1000;
    const start = cfg.now();
    const wallStart = performance.now();
    for (let i = 0; i < numOps; i++) await append(cfg, ck, { key: "x", value: `x 0 ${i} y` });
    const perOp = (cfg.now() - start) / numOps;
    const wallPerOp = (performance.now() - wallStart) / numOps;
    checkClntAppends(0, await get(cfg, ck, "x"), numOps);
    const limit = 100 / 3;
    assert.ok(perOp < limit, `operations completed too slowly: ${perOp} ms/op > ${limit} ms/op`);
    console.log(
      `  ${name}: ${perOp.toFixed(2)} ms/op virtual (limit ${limit.toFixed(1)}), ` +
        `${wallPerOp.toFixed(3)} ms/op wall`,
    );
    cfg.end(name);
    await cfg.cleanup();
  });
}

speedTest("ops complete fast enough (3A)", -1);

generic("many clients (3A)", { clients: 5, servers: 5 });

generic("unreliable net, many clients (3A)", { clients: 5, servers: 5, unreliable: true });

kvTest("concurrent append to same key, unreliable (3A)", async (sim) => {
  const name = "concurrent append to same key, unreliable (3A)";
  const cfg = await KvCluster.start(sim, 3, { unreliable: true });
  const { clerk: ck } = cfg.makeClient();
  cfg.begin();
  await put(cfg, ck, { key: "k", value: "" });
  const nclient = 5;
  const upto = 10;
  await Promise.all(Array.from({ length: nclient }, async (_, me) => {
    const { clerk } = cfg.makeClient();
    for (let n = 0; n < upto; n++) await append(cfg, clerk, { key: "k", value: `x ${me} ${n} y` });
  }));
  checkConcurrentAppends(await get(cfg, ck, "k"), new Array(nclient).fill(upto));
  cfg.end(name);
  await cfg.cleanup();
});

kvTest("progress in majority, no progress in minority, completion after heal (3A)", async (sim) => {
  const cfg = await KvCluster.start(sim, 5);
  const { clerk: ck } = cfg.makeClient();
  await put(cfg, ck, { key: "1", value: "13" });

  cfg.begin();
  // The course's make_partition: the leader and one other in the minority.
  const leader = cfg.leader();
  assert.ok(leader !== undefined, "no leader after the first Put");
  const p2 = [leader, (leader + 1) % 5];
  const p1 = cfg.wiring.all.filter((i) => !p2.includes(i));
  cfg.partition(p1, p2);
  const ckp1 = cfg.makeClient(p1).clerk;
  const ckp2a = cfg.makeClient(p2);
  const ckp2b = cfg.makeClient(p2);
  await put(cfg, ckp1, { key: "1", value: "14" });
  await checkValue(cfg, ckp1, { key: "1", value: "14" });
  cfg.end("progress in majority (3A)");

  cfg.begin();
  let done0 = false;
  let done1 = false;
  const put0 = put(cfg, ckp2a.clerk, { key: "1", value: "15" }).then(() => (done0 = true));
  const get1 = get(cfg, ckp2b.clerk, "1").then(() => (done1 = true));
  await cfg.sleep(1000);
  assert.ok(!done0, "Put in minority completed");
  assert.ok(!done1, "Get in minority completed");
  await checkValue(cfg, ckp1, { key: "1", value: "14" });
  await put(cfg, ckp1, { key: "1", value: "16" });
  await checkValue(cfg, ckp1, { key: "1", value: "16" });
  cfg.end("no progress in minority (3A)");

  cfg.begin();
  cfg.connectAll();
  cfg.connectClient(ckp2a.name, cfg.wiring.all);
  cfg.connectClient(ckp2b.name, cfg.wiring.all);
  await cfg.sleep(ELECTION_TIMEOUT_MS);
  const deadline = cfg.now() + 3000;
  while (!done0 && cfg.now() < deadline) await cfg.sleep(10);
  assert.ok(done0, "Put did not complete");
  while (!done1 && cfg.now() < deadline) await cfg.sleep(10);
  assert.ok(done1, "Get did not complete");
  await Promise.all([put0, get1]);
  await checkValue(cfg, ck, { key: "1", value: "15" });
  cfg.end("completion after heal (3A)");
  await cfg.cleanup();
});

generic("partitions, one client (3A)", { clients: 1, servers: 5, partitions: true });
generic("partitions, many clients (3A)", { clients: 5, servers: 5, partitions: true });
generic("restarts, one client (3A)", { clients: 1, servers: 5, crash: true });
generic("restarts, many clients (3A)", { clients: 5, servers: 5, crash: true });
generic("unreliable net, restarts, many clients (3A)", {
  clients: 5,
  servers: 5,
  unreliable: true,
  crash: true,
});
generic("restarts, partitions, many clients (3A)", {
  clients: 5,
  servers: 5,
  crash: true,
  partitions: true,
});
generic("unreliable net, restarts, partitions, many clients (3A)", {
  clients: 5,
  servers: 5,
  unreliable: true,
  crash: true,
  partitions: true,
});
generic("unreliable net, restarts, partitions, random keys, many clients (3A)", {
  clients: 15,
  servers: 7,
  unreliable: true,
  crash: true,
  partitions: true,
  randomKeys: true,
});

// ---- 3B: with snapshots ----

kvTest("InstallSnapshot RPC (3B)", async (sim) => {
  const name = "InstallSnapshot RPC (3B)";
  const maxRaftState = 1000;
  const cfg = await KvCluster.start(sim, 3, { maxRaftState });
  const { clerk: ck } = cfg.makeClient();
  cfg.begin();
  await put(cfg, ck, { key: "a", value: "A" });
  await checkValue(cfg, ck, { key: "a", value: "A" });

  // A bunch of puts into the majority partition.
  cfg.partition([0, 1], [2]);
  {
    const ck1 = cfg.makeClient([0, 1]).clerk;
    for (let i = 0; i < 50; i++) await put(cfg, ck1, { key: String(i), value: String(i) });
    await cfg.sleep(ELECTION_TIMEOUT_MS);
    await put(cfg, ck1, { key: "b", value: "B" });
  }
  // The majority has thrown away most of its log.
  const size = cfg.logSize();
  assert.ok(size <= 8 * maxRaftState, `logs were not trimmed (${size} > 8*${maxRaftState})`);

  // A group that needs the lagging server, which must catch up by snapshot.
  const installedBefore = cfg.server(2).appliedIndex;
  cfg.partition([0, 2], [1]);
  {
    const ck1 = cfg.makeClient([0, 2]).clerk;
    await put(cfg, ck1, { key: "c", value: "C" });
    await put(cfg, ck1, { key: "d", value: "D" });
    await checkValue(cfg, ck1, { key: "a", value: "A" });
    await checkValue(cfg, ck1, { key: "b", value: "B" });
    await checkValue(cfg, ck1, { key: "1", value: "1" });
    await checkValue(cfg, ck1, { key: "49", value: "49" });
  }
  assert.ok(cfg.server(2).appliedIndex > installedBefore, "server 2 did not catch up");
  assert.ok(cfg.server(2).raft.status().snapshotIndex > 0, "server 2 caught up without a snapshot");

  // Now everybody.
  cfg.partition([0, 1, 2], []);
  await put(cfg, ck, { key: "e", value: "E" });
  await checkValue(cfg, ck, { key: "c", value: "C" });
  await checkValue(cfg, ck, { key: "e", value: "E" });
  await checkValue(cfg, ck, { key: "1", value: "1" });
  cfg.end(name);
  await cfg.cleanup();
});

kvTest("snapshot size is reasonable (3B)", async (sim) => {
  const name = "snapshot size is reasonable (3B)";
  const maxRaftState = 1000;
  const maxSnapshotState = 500;
  const cfg = await KvCluster.start(sim, 3, { maxRaftState });
  const { clerk: ck } = cfg.makeClient();
  cfg.begin();
  for (let i = 0; i < 200; i++) {
    await put(cfg, ck, { key: "x", value: "0" });
    await checkValue(cfg, ck, { key: "x", value: "0" });
    await put(cfg, ck, { key: "x", value: "1" });
    await checkValue(cfg, ck, { key: "x", value: "1" });
  }
  const size = cfg.logSize();
  assert.ok(size <= 8 * maxRaftState, `logs were not trimmed (${size} > 8*${maxRaftState})`);
  const snapshot = cfg.snapshotSize();
  assert.ok(snapshot > 0, "no snapshot was taken");
  assert.ok(
    snapshot <= maxSnapshotState,
    `snapshot too large (${snapshot} > ${maxSnapshotState})`,
  );
  console.log(`  ${name}: log ${size} B (limit ${8 * maxRaftState}), snapshot ${snapshot} B`);
  cfg.end(name);
  await cfg.cleanup();
});

speedTest("ops complete fast enough (3B)", 1000);

generic("restarts, snapshots, one client (3B)", {
  clients: 1,
  servers: 5,
  crash: true,
  maxRaftState: 1000,
});
generic("restarts, snapshots, many clients (3B)", {
  clients: 20,
  servers: 5,
  crash: true,
  maxRaftState: 1000,
});
generic("unreliable net, snapshots, many clients (3B)", {
  clients: 5,
  servers: 5,
  unreliable: true,
  maxRaftState: 1000,
});
generic("unreliable net, restarts, snapshots, many clients (3B)", {
  clients: 5,
  servers: 5,
  unreliable: true,
  crash: true,
  maxRaftState: 1000,
});
generic("unreliable net, restarts, partitions, snapshots, many clients (3B)", {
  clients: 5,
  servers: 5,
  unreliable: true,
  crash: true,
  partitions: true,
  maxRaftState: 1000,
});
generic("unreliable net, restarts, partitions, snapshots, random keys, many clients (3B)", {
  clients: 15,
  servers: 7,
  unreliable: true,
  crash: true,
  partitions: true,
  maxRaftState: 1000,
  randomKeys: true,
});
