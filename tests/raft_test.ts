/**
 * The 24 Raft scenarios of LABS.md §2 (the course's 2A–2D tests), on the
 * simulated network in virtual time, with the course's limits.
 *
 * Adaptation: a new leader appends a no-op entry (so it can commit, and serve
 * ReadIndex reads, in its own term). The course's checks of absolute indexes
 * ("the first command is at index 1") are kept relative to the log: each
 * command lands at the next free index, and no-ops are not commands.
 */
import assert from "node:assert/strict";
import { simulate, type Simulation } from "../net/mod.ts";
import { Cluster, type ClusterOptions, type Command } from "./raft_cluster.ts";

const ELECTION_TIMEOUT = 1000;

function raftTest(
  name: string,
  n: number,
  options: ClusterOptions,
  body: (cfg: Cluster, sim: Simulation) => Promise<void>,
): void {
  Deno.test(`raft: ${name}`, async () => {
    await simulate(async (sim) => {
      const cfg = await Cluster.start(sim, n, options);
      cfg.begin();
      try {
        await body(cfg, sim);
        cfg.end(name);
      } finally {
        await cfg.cleanup();
      }
    }, { limitMs: 30 * 60_000 });
  });
}

function rand(cfg: Cluster): number {
  return cfg.random.int(2 ** 31);
}

/** The last index on a server that holds a command (or 0). */
function lastCommandIndex(cfg: Cluster): number {
  return Math.max(0, ...cfg.logs.flatMap((log) => [...log.keys()]));
}

// ---- 2A: leader election ----

raftTest("initial election (2A)", 3, {}, async (cfg) => {
  await cfg.checkOneLeader();
  await cfg.sleep(50);
  const term1 = cfg.checkTerms();
  assert.ok(term1 >= 1, `term is ${term1}, but should be at least 1`);
  await cfg.sleep(2 * ELECTION_TIMEOUT);
  const term2 = cfg.checkTerms();
  assert.equal(term2, term1, "term changed even though there were no failures");
  await cfg.checkOneLeader();
});

raftTest("election after network failure (2A)", 3, {}, async (cfg) => {
  const leader1 = await cfg.checkOneLeader();
  cfg.disconnect(leader1);
  await cfg.checkOneLeader();
  // The old leader rejoins without disturbing the new one.
  cfg.connect(leader1);
  const leader2 = await cfg.checkOneLeader();
  // No quorum: no leader.
  cfg.disconnect(leader2);
  cfg.disconnect((leader2 + 1) % 3);
  await cfg.sleep(2 * ELECTION_TIMEOUT);
  cfg.checkNoLeader();
  cfg.connect((leader2 + 1) % 3);
  await cfg.checkOneLeader();
  cfg.connect(leader2);
  await cfg.checkOneLeader();
});

raftTest("multiple elections (2A)", 7, {}, async (cfg) => {
  await cfg.checkOneLeader();
  for (let iter = 1; iter < 10; iter++) {
    const victims = [cfg.random.int(7), cfg.random.int(7), cfg.random.int(7)];
    for (const v of victims) cfg.disconnect(v);
    await cfg.checkOneLeader();
    for (const v of victims) cfg.connect(v);
  }
  await cfg.checkOneLeader();
});

// ---- 2B: log replication ----

raftTest("basic agreement (2B)", 3, {}, async (cfg) => {
  let expected = 0;
  for (let k = 1; k <= 3; k++) {
    const [nd] = cfg.nCommitted(expected + 1);
    assert.equal(nd, 0, "some have committed before propose");
    const index = await cfg.one(k * 100, 3, false);
    if (expected > 0) {
      assert.equal(index, expected + 1, `got index ${index}, expected ${expected + 1}`);
    }
    expected = index;
  }
});

raftTest("RPC byte count (2B)", 3, {}, async (cfg, sim) => {
  await cfg.one(99, 3, false);
  const bytes0 = sim.net.totalBytes;
  let sent = 0;
  for (let i = 0; i < 10; i++) {
    const cmd = "x".repeat(4990) + String(cfg.random.int(1e9)).padStart(10, "0");
    await cfg.one(cmd, 3, false);
    sent += cmd.length;
  }
  const got = sim.net.totalBytes - bytes0;
  const limit = 3 * sent + 50_000;
  assert.ok(got <= limit, `too many RPC bytes; got ${got}, expected at most ${limit}`);
});

raftTest("agreement despite follower disconnection (2B)", 3, {}, async (cfg) => {
  await cfg.one(101, 3, false);
  const leader = await cfg.checkOneLeader();
  cfg.disconnect((leader + 1) % 3);
  await cfg.one(102, 2, false);
  await cfg.one(103, 2, false);
  await cfg.sleep(ELECTION_TIMEOUT);
  await cfg.one(104, 2, false);
  await cfg.one(105, 2, false);
  cfg.connect((leader + 1) % 3);
  await cfg.one(106, 3, true);
  await cfg.sleep(ELECTION_TIMEOUT);
  await cfg.one(107, 3, true);
});

raftTest("no agreement if too many followers disconnect (2B)", 5, {}, async (cfg) => {
  const first = await cfg.one(10, 5, false);
  const leader = await cfg.checkOneLeader();
  for (let k = 1; k <= 3; k++) cfg.disconnect((leader + k) % 5);
  const { index } = await cfg.node(leader).propose(20);
  assert.equal(index, first + 1, `expected index ${first + 1}, got ${index}`);
  await cfg.sleep(2 * ELECTION_TIMEOUT);
  const [n] = cfg.nCommitted(index);
  assert.equal(n, 0, `${n} committed but no majority`);
  for (let k = 1; k <= 3; k++) cfg.connect((leader + k) % 5);
  const leader2 = await cfg.checkOneLeader();
  const { index: index2 } = await cfg.node(leader2).propose(30);
  // The entry at `index` may survive or be replaced; a new leader adds a no-op.
  assert.ok(index2 >= index + 1 && index2 <= index + 2, `unexpected index ${index2}`);
  await cfg.one(1000, 5, true);
});

raftTest("concurrent proposals (2B)", 3, {}, async (cfg) => {
  let success = false;
  for (let attempt = 0; attempt < 5 && !success; attempt++) {
    if (attempt > 0) await cfg.sleep(3000);
    const leader = await cfg.checkOneLeader();
    let term: number;
    try {
      term = (await cfg.node(leader).propose(1)).term;
    } catch {
      continue;
    }
    const proposals = await Promise.all(
      Array.from({ length: 5 }, (_, i) => cfg.node(leader).propose(100 + i).catch(() => undefined)),
    );
    if (proposals.some((p) => p === undefined || p.term !== term)) continue;
    if (cfg.ids.some((_, j) => cfg.node(j).status().term !== term)) continue;
    let failed = false;
    const got: Command[] = [];
    for (const p of proposals) {
      const cmd = await cfg.wait(p!.index, 3, term);
      if (cmd === -1) {
        failed = true;
        break;
      }
      got.push(cmd!);
    }
    if (failed) continue;
    assert.deepEqual([...got].sort(), [100, 101, 102, 103, 104]);
    success = true;
  }
  assert.ok(success, "term changed too often");
});

raftTest("rejoin of partitioned leader (2B)", 3, {}, async (cfg) => {
  await cfg.one(101, 3, true);
  const leader1 = await cfg.checkOneLeader();
  cfg.disconnect(leader1);
  // The old leader takes proposals it can never commit.
  for (const c of [102, 103, 104]) await cfg.node(leader1).propose(c).catch(() => {});
  const leader2 = await cfg.checkOneLeader();
  await cfg.one(103, 2, true);
  cfg.disconnect(leader2);
  cfg.connect(leader1);
  await cfg.one(104, 2, true);
  cfg.connect(leader2);
  await cfg.one(105, 3, true);
});

raftTest("leader backs up quickly over incorrect follower logs (2B)", 5, {}, async (cfg) => {
  await cfg.one(rand(cfg), 5, true);
  const leader1 = await cfg.checkOneLeader();
  for (const k of [2, 3, 4]) cfg.disconnect((leader1 + k) % 5);
  for (let i = 0; i < 50; i++) await cfg.node(leader1).propose(rand(cfg)).catch(() => {});
  await cfg.sleep(ELECTION_TIMEOUT / 2);
  cfg.disconnect(leader1);
  cfg.disconnect((leader1 + 1) % 5);
  for (const k of [2, 3, 4]) cfg.connect((leader1 + k) % 5);
  for (let i = 0; i < 50; i++) await cfg.one(rand(cfg), 3, true);
  const leader2 = await cfg.checkOneLeader();
  let other = (leader1 + 2) % 5;
  if (leader2 === other) other = (leader2 + 1) % 5;
  cfg.disconnect(other);
  for (let i = 0; i < 50; i++) await cfg.node(leader2).propose(rand(cfg)).catch(() => {});
  await cfg.sleep(ELECTION_TIMEOUT / 2);
  for (let i = 0; i < 5; i++) cfg.disconnect(i);
  cfg.connect(leader1);
  cfg.connect((leader1 + 1) % 5);
  cfg.connect(other);
  for (let i = 0; i < 50; i++) await cfg.one(rand(cfg), 3, true);
  for (let i = 0; i < 5; i++) cfg.connect(i);
  await cfg.one(rand(cfg), 5, true);
});

raftTest("RPC counts aren't too high (2B)", 3, {}, async (cfg, sim) => {
  const rpcs = () => cfg.ids.reduce((sum, id) => sum + sim.net.count(id), 0);
  await cfg.checkOneLeader();
  const total1 = rpcs();
  assert.ok(
    total1 >= 1 && total1 <= 30,
    `too many or few RPCs (${total1}) to elect initial leader`,
  );
  let success = false;
  let total2 = 0;
  for (let attempt = 0; attempt < 5 && !success; attempt++) {
    if (attempt > 0) await cfg.sleep(3000);
    const leader = await cfg.checkOneLeader();
    const before = rpcs();
    const iters = 10;
    let start: { index: number; term: number };
    try {
      start = await cfg.node(leader).propose(1);
    } catch {
      continue;
    }
    const cmds: number[] = [];
    let changed = false;
    for (let i = 1; i < iters + 2; i++) {
      const x = rand(cfg);
      cmds.push(x);
      const r = await cfg.node(leader).propose(x).catch(() => undefined);
      if (r === undefined || r.term !== start.term) {
        changed = true;
        break;
      }
      assert.equal(r.index, start.index + i, "propose() failed");
    }
    if (changed) continue;
    for (let i = 1; i < iters + 2; i++) {
      const cmd = await cfg.wait(start.index + i, 3, start.term);
      if (cmd === -1) {
        changed = true;
        break;
      }
      assert.equal(cmd, cmds[i - 1], `wrong value ${cmd} committed for index ${start.index + i}`);
    }
    if (changed || cfg.ids.some((_, j) => cfg.node(j).status().term !== start.term)) continue;
    total2 = rpcs();
    assert.ok(
      total2 - before <= (iters + 1 + 3) * 3,
      `too many RPCs (${total2 - before}) for ${iters} entries`,
    );
    success = true;
  }
  assert.ok(success, "term changed too often");
  await cfg.sleep(ELECTION_TIMEOUT);
  const total3 = rpcs();
  assert.ok(
    total3 - total2 <= 3 * 20,
    `too many RPCs (${total3 - total2}) for 1 second of idleness`,
  );
});

// ---- 2C: persistence ----

raftTest("basic persistence (2C)", 3, {}, async (cfg) => {
  await cfg.one(11, 3, true);
  for (let i = 0; i < 3; i++) await cfg.startServer(i);
  for (let i = 0; i < 3; i++) cfg.connect(i);
  await cfg.one(12, 3, true);
  const leader1 = await cfg.checkOneLeader();
  await cfg.startServer(leader1);
  cfg.connect(leader1);
  await cfg.one(13, 3, true);
  const leader2 = await cfg.checkOneLeader();
  cfg.disconnect(leader2);
  const index14 = await cfg.one(14, 2, true);
  await cfg.startServer(leader2);
  cfg.connect(leader2);
  await cfg.wait(index14, 3, -1);
  const i3 = ((await cfg.checkOneLeader()) + 1) % 3;
  cfg.disconnect(i3);
  await cfg.one(15, 2, true);
  await cfg.startServer(i3);
  cfg.connect(i3);
  await cfg.one(16, 3, true);
});

raftTest("more persistence (2C)", 5, {}, async (cfg) => {
  let index = 1;
  for (let iters = 0; iters < 5; iters++) {
    await cfg.one(10 + index++, 5, true);
    const leader1 = await cfg.checkOneLeader();
    cfg.disconnect((leader1 + 1) % 5);
    cfg.disconnect((leader1 + 2) % 5);
    await cfg.one(10 + index++, 3, true);
    cfg.disconnect(leader1);
    cfg.disconnect((leader1 + 3) % 5);
    cfg.disconnect((leader1 + 4) % 5);
    await cfg.startServer((leader1 + 1) % 5);
    await cfg.startServer((leader1 + 2) % 5);
    cfg.connect((leader1 + 1) % 5);
    cfg.connect((leader1 + 2) % 5);
    await cfg.sleep(ELECTION_TIMEOUT);
    await cfg.startServer((leader1 + 3) % 5);
    cfg.connect((leader1 + 3) % 5);
    await cfg.one(10 + index++, 3, true);
    cfg.connect((leader1 + 4) % 5);
    cfg.connect(leader1);
  }
  await cfg.one(1000, 5, true);
});

raftTest("partitioned leader and one follower crash, leader restarts (2C)", 3, {}, async (cfg) => {
  await cfg.one(101, 3, true);
  const leader = await cfg.checkOneLeader();
  cfg.disconnect((leader + 2) % 3);
  await cfg.one(102, 2, true);
  await cfg.crash(leader % 3);
  await cfg.crash((leader + 1) % 3);
  cfg.connect((leader + 2) % 3);
  await cfg.startServer(leader % 3);
  cfg.connect(leader % 3);
  await cfg.one(103, 2, true);
  await cfg.startServer((leader + 1) % 3);
  cfg.connect((leader + 1) % 3);
  await cfg.one(104, 3, true);
});

raftTest("Figure 8 (2C)", 5, {}, async (cfg) => {
  await cfg.one(rand(cfg), 1, true);
  let nup = 5;
  for (let iters = 0; iters < 1000; iters++) {
    let leader = -1;
    for (let i = 0; i < 5; i++) {
      if (!cfg.isRunning(i)) continue;
      const ok = await cfg.node(i).propose(rand(cfg)).then(() => true, () => false);
      if (ok) leader = i;
    }
    if (cfg.random.int(1000) < 100) await cfg.sleep(cfg.random.int(ELECTION_TIMEOUT / 2));
    else await cfg.sleep(cfg.random.int(13));
    if (leader !== -1) {
      await cfg.crash(leader);
      nup--;
    }
    if (nup < 3) {
      const s = cfg.random.int(5);
      if (!cfg.isRunning(s)) {
        await cfg.startServer(s);
        cfg.connect(s);
        nup++;
      }
    }
  }
  for (let i = 0; i < 5; i++) {
    if (!cfg.isRunning(i)) {
      await cfg.startServer(i);
      cfg.connect(i);
    }
  }
  await cfg.one(rand(cfg), 5, true);
});

raftTest("unreliable agreement (2C)", 5, { unreliable: true }, async (cfg, sim) => {
  for (let iters = 1; iters < 50; iters++) {
    const concurrent = Array.from({ length: 4 }, (_, j) => cfg.one(100 * iters + j, 1, true));
    await cfg.one(iters, 1, true);
    await Promise.all(concurrent);
  }
  sim.net.setReliable(true);
  await cfg.one(100, 5, true);
});

raftTest("Figure 8 (unreliable) (2C)", 5, { unreliable: true }, async (cfg, sim) => {
  await cfg.one(cfg.random.int(10_000), 1, true);
  let nup = 5;
  for (let iters = 0; iters < 1000; iters++) {
    if (iters === 200) sim.net.setLongReordering(true);
    let leader = -1;
    for (let i = 0; i < 5; i++) {
      const ok = await cfg.node(i).propose(cfg.random.int(10_000)).then(() => true, () => false);
      if (ok && cfg.connected[i]) leader = i;
    }
    if (cfg.random.int(1000) < 100) await cfg.sleep(cfg.random.int(ELECTION_TIMEOUT / 2));
    else await cfg.sleep(cfg.random.int(13));
    if (leader !== -1 && cfg.random.int(1000) < ELECTION_TIMEOUT / 2) {
      cfg.disconnect(leader);
      nup--;
    }
    if (nup < 3) {
      const s = cfg.random.int(5);
      if (!cfg.connected[s]) {
        cfg.connect(s);
        nup++;
      }
    }
  }
  for (let i = 0; i < 5; i++) if (!cfg.connected[i]) cfg.connect(i);
  await cfg.one(cfg.random.int(10_000), 5, true);
});

async function churn(cfg: Cluster, unreliable: boolean): Promise<void> {
  const { sim } = cfg;
  let stop = false;
  const client = async (me: number): Promise<number[]> => {
    const values: number[] = [];
    while (!stop) {
      const x = rand(cfg);
      let index = -1;
      for (let i = 0; i < 5; i++) {
        if (!cfg.isRunning(i)) continue;
        const r = await cfg.node(i).propose(x).catch(() => undefined);
        if (r) index = r.index;
      }
      if (index !== -1) {
        for (const to of [10, 20, 50, 100, 200]) {
          const [nd, cmd] = cfg.nCommitted(index);
          if (nd > 0) {
            if (cmd === x) values.push(x);
            break;
          }
          await cfg.sleep(to);
        }
      } else {
        await cfg.sleep(79 + me * 17);
      }
    }
    return values;
  };
  const clients = [0, 1, 2].map(client);
  // How long a majority was up and connected, in a row: the clients must have
  // committed something if it was long enough (several election timeouts; some
  // schedules never allow it).
  let streak = 0;
  let longestStreak = 0;
  for (let iters = 0; iters < 20; iters++) {
    const up = cfg.ids.filter((_, i) => cfg.isRunning(i) && cfg.connected[i]).length;
    streak = up >= 3 ? streak + 1 : 0;
    longestStreak = Math.max(longestStreak, streak);
    if (cfg.random.int(1000) < 200) cfg.disconnect(cfg.random.int(5));
    if (cfg.random.int(1000) < 500) {
      const i = cfg.random.int(5);
      if (!cfg.isRunning(i)) await cfg.startServer(i);
      cfg.connect(i);
    }
    if (cfg.random.int(1000) < 200) {
      const i = cfg.random.int(5);
      if (cfg.isRunning(i)) await cfg.crash(i);
    }
    await cfg.sleep((ELECTION_TIMEOUT * 7) / 10);
  }
  await cfg.sleep(ELECTION_TIMEOUT);
  if (unreliable) sim.net.setReliable(true);
  for (let i = 0; i < 5; i++) {
    if (!cfg.isRunning(i)) await cfg.startServer(i);
    cfg.connect(i);
  }
  stop = true;
  const values = (await Promise.all(clients)).flat();
  await cfg.sleep(ELECTION_TIMEOUT);
  const lastIndex = await cfg.one(rand(cfg), 5, true);
  await cfg.wait(lastIndex, 5, -1);
  const really = new Set<Command>();
  for (const log of cfg.logs) {
    for (const [index, cmd] of log) if (index <= lastIndex) really.add(cmd);
  }
  for (let index = 1; index <= lastIndex; index++) cfg.nCommitted(index); // all servers agree
  for (const v of values) {
    assert.ok(really.has(v), `didn't find a value ${v} a client saw committed`);
  }
  if (longestStreak >= 5) {
    assert.ok(
      values.length > 0,
      `clients committed nothing in ${longestStreak} rounds of a majority`,
    );
  }
  assert.ok(lastCommandIndex(cfg) >= lastIndex);
}

raftTest("churn (2C)", 5, {}, (cfg) => churn(cfg, false));
raftTest("unreliable churn (2C)", 5, { unreliable: true }, (cfg) => churn(cfg, true));

// ---- 2D: snapshots ----

const MAX_LOG_SIZE = 2000;
const SNAPSHOT_INTERVAL = 10;

async function snapshotScenario(
  cfg: Cluster,
  options: { disconnect: boolean; crash: boolean },
): Promise<void> {
  const servers = 3;
  await cfg.one(rand(cfg), servers, true);
  let leader1 = await cfg.checkOneLeader();
  for (let i = 0; i < 30; i++) {
    let victim = (leader1 + 1) % servers;
    let sender = leader1;
    if (i % 3 === 1) {
      sender = (leader1 + 1) % servers;
      victim = leader1;
    }
    if (options.disconnect) {
      cfg.disconnect(victim);
      await cfg.one(rand(cfg), servers - 1, true);
    }
    if (options.crash) {
      await cfg.crash(victim);
      await cfg.one(rand(cfg), servers - 1, true);
    }
    // Enough entries for a snapshot.
    for (let k = 0; k < SNAPSHOT_INTERVAL + 1; k++) {
      if (cfg.isRunning(sender)) await cfg.node(sender).propose(rand(cfg)).catch(() => {});
    }
    await cfg.one(rand(cfg), servers - 1, true);
    const size = Math.max(...cfg.ids.map((_, j) => cfg.storage(j).raftStateSize()));
    assert.ok(size < MAX_LOG_SIZE, `log size too large: ${size} bytes`);
    if (options.disconnect) {
      cfg.connect(victim);
      await cfg.one(rand(cfg), servers, true);
      leader1 = await cfg.checkOneLeader();
    }
    if (options.crash) {
      await cfg.startServer(victim);
      cfg.connect(victim);
      await cfg.one(rand(cfg), servers, true);
      leader1 = await cfg.checkOneLeader();
    }
  }
  if (options.disconnect || options.crash) {
    assert.ok(cfg.snapshotsInstalled > 0, "no lagging server ever restored from a snapshot");
  }
}

const snap = { snapshotEvery: SNAPSHOT_INTERVAL };
raftTest(
  "snapshots basic (2D)",
  3,
  snap,
  (cfg) => snapshotScenario(cfg, { disconnect: false, crash: false }),
);
raftTest(
  "install snapshots (disconnect) (2D)",
  3,
  snap,
  (cfg) => snapshotScenario(cfg, { disconnect: true, crash: false }),
);
raftTest(
  "install snapshots (disconnect+unreliable) (2D)",
  3,
  { ...snap, unreliable: true },
  (cfg) => snapshotScenario(cfg, { disconnect: true, crash: false }),
);
raftTest(
  "install snapshots (crash) (2D)",
  3,
  snap,
  (cfg) => snapshotScenario(cfg, { disconnect: false, crash: true }),
);
raftTest(
  "install snapshots (unreliable+crash) (2D)",
  3,
  { ...snap, unreliable: true },
  (cfg) => snapshotScenario(cfg, { disconnect: false, crash: true }),
);
