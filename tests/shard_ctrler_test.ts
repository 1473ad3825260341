/**
 * The 11 shard controller stages of LABS.md §4 (the course's shardctrler
 * tests), 3 replicas on the simulated network in virtual time. The
 * minimal-transfer stages check the real pre-existing groups (the guard).
 */
import assert from "node:assert/strict";
import { delay, simulate, type Simulation } from "../net/mod.ts";
import { RequestError } from "../kv/mod.ts";
import { N_SHARDS, type ShardConfig } from "../shard/mod.ts";
import {
  checkConfig,
  checkMinimalAfterJoin,
  checkMinimalAfterLeave,
  checkSameConfig,
  ControllerCluster,
} from "./shard_cluster.ts";

const NPARA = 10;

function ctrlerTest(
  name: string,
  body: (cfg: ControllerCluster, sim: Simulation) => Promise<void>,
) {
  Deno.test(`shard ctrler: ${name}`, async () => {
    await simulate(async (sim) => {
      const cfg = await ControllerCluster.start(sim);
      const start = sim.clock.now();
      const rpcs = sim.net.totalCalls;
      await body(cfg, sim);
      console.log(
        `  ${name}: ${((sim.clock.now() - start) / 1000).toFixed(1)} s virtual, ` +
          `${sim.net.totalCalls - rpcs} RPCs`,
      );
      await cfg.group.shutdownAll();
    }, { limitMs: 10 * 60_000 });
  });
}

const servers = (gid: number) => [`${gid}a`, `${gid}b`, `${gid}c`];

/** The course's basic sequence; returns the configurations it went through. */
async function basicJoinLeave(cfg: ControllerCluster): Promise<ShardConfig[]> {
  const ck = cfg.makeClerk();
  const seen: ShardConfig[] = [await checkConfig(ck, [])];
  await ck.join({ 1: ["x", "y", "z"] });
  seen.push(await checkConfig(ck, [1]));
  await ck.join({ 2: ["a", "b", "c"] });
  seen.push(await checkConfig(ck, [1, 2]));
  await ck.join({ 5: ["5a"] });
  seen.push(await checkConfig(ck, [1, 2, 5]));
  const c = await ck.query(-1);
  assert.deepEqual(c.groups[1], ["x", "y", "z"], "wrong servers for gid 1");
  assert.deepEqual(c.groups[2], ["a", "b", "c"], "wrong servers for gid 2");
  await ck.leave([1]);
  seen.push(await checkConfig(ck, [2, 5]));
  await ck.leave([2]);
  seen.push(await checkConfig(ck, [5]));
  await ck.leave([5]);
  seen.push(await checkConfig(ck, []));
  return seen;
}

ctrlerTest("basic leave/join", async (cfg) => {
  const seen = await basicJoinLeave(cfg);
  assert.deepEqual(seen.map((c) => c.num), [0, 1, 2, 3, 4, 5, 6]);
});

ctrlerTest("historical queries", async (cfg) => {
  const seen = await basicJoinLeave(cfg);
  const ck = cfg.makeClerk();
  for (let s = 0; s < cfg.group.n; s++) {
    await cfg.group.shutdownServer(s);
    for (const c of seen) checkSameConfig(c, await ck.query(c.num));
    await cfg.group.startServer(s);
    cfg.group.connectAll();
  }
});

ctrlerTest("move", async (cfg) => {
  const ck = cfg.makeClerk();
  await ck.join({ 503: servers(503) });
  await ck.join({ 504: servers(504) });
  for (let i = 0; i < N_SHARDS; i++) {
    const before = await ck.query(-1);
    const gid = i < N_SHARDS / 2 ? 503 : 504;
    const num = await ck.move(i, gid);
    const after = await ck.query(-1);
    assert.equal(num, before.num + 1, "each move makes the next configuration");
    assert.equal(after.num, num, "Move should increase Config.Num");
  }
  const c = await ck.query(-1);
  for (let i = 0; i < N_SHARDS; i++) {
    assert.equal(c.shards[i], i < N_SHARDS / 2 ? 503 : 504, `shard ${i} not where moved`);
  }
  await assert.rejects(
    ck.move(0, 999),
    (err) => err instanceof RequestError && err.service === "shard controller",
    "a move to a missing group is refused",
  );
  await ck.leave([503]);
  await ck.leave([504]);
  await checkConfig(ck, []);
});

/** 10 clerks at once: each joins its group and another, then leaves the other. */
async function concurrentJoinLeave(cfg: ControllerCluster, multi: boolean): Promise<number[]> {
  const gids = Array.from({ length: NPARA }, (_, i) => i * 10 + 100);
  await Promise.all(gids.map(async (gid) => {
    const ck = cfg.makeClerk();
    if (multi) {
      await ck.join({ [gid]: servers(gid), [gid + 1000]: servers(gid + 1000) });
      await ck.join({ [gid + 2000]: servers(gid + 2000) });
      await ck.leave([gid + 1000, gid + 2000]);
    } else {
      await ck.join({ [gid]: servers(gid) });
      await ck.join({ [gid + 1000]: servers(gid + 1000) });
      await ck.leave([gid + 1000]);
    }
  }));
  await checkConfig(cfg.makeClerk(), gids);
  return gids;
}

ctrlerTest("concurrent leave/join", async (cfg) => {
  await concurrentJoinLeave(cfg, false);
});

/** Joins 5 groups (one call or five), then leaves them, checking minimal transfers. */
async function minimalTransfers(cfg: ControllerCluster, multi: boolean, stage: "join" | "leave") {
  const gids = await concurrentJoinLeave(cfg, multi);
  const ck = cfg.makeClerk();
  const extra = Array.from({ length: 5 }, (_, i) => 2 + i);
  const c1 = await ck.query(-1);
  if (multi) await ck.join(Object.fromEntries(extra.map((g) => [g, servers(g)])));
  else for (const g of extra) await ck.join({ [g]: servers(g) });
  const c2 = await checkConfig(ck, [...gids, ...extra]);
  checkMinimalAfterJoin(c1, c2);
  if (stage === "join") return;
  if (multi) await ck.leave(extra);
  else for (const g of extra) await ck.leave([g]);
  const c3 = await checkConfig(ck, gids);
  checkMinimalAfterLeave(c2, c3);
}

ctrlerTest("minimal transfers after joins", (cfg) => minimalTransfers(cfg, false, "join"));
ctrlerTest("minimal transfers after leaves", (cfg) => minimalTransfers(cfg, false, "leave"));

ctrlerTest("multi-group join/leave", async (cfg) => {
  const ck = cfg.makeClerk();
  await ck.join({ 1: ["x", "y", "z"], 2: ["a", "b", "c"] });
  await checkConfig(ck, [1, 2]);
  const c = await ck.query(-1);
  assert.deepEqual(c.groups[1], ["x", "y", "z"]);
  assert.deepEqual(c.groups[2], ["a", "b", "c"]);
  await ck.join({ 3: ["3a"], 4: ["4a"], 5: ["5a"] });
  await checkConfig(ck, [1, 2, 3, 4, 5]);
  await ck.leave([1, 3]);
  await checkConfig(ck, [2, 4, 5]);
  await ck.leave([2, 4, 5]);
  await checkConfig(ck, []);
  assert.equal((await ck.query(-1)).num, 4, "one configuration per call");
});

ctrlerTest("concurrent multi leave/join", async (cfg) => {
  await concurrentJoinLeave(cfg, true);
});

ctrlerTest("minimal transfers after multijoins", (cfg) => minimalTransfers(cfg, true, "join"));
ctrlerTest("minimal transfers after multileaves", (cfg) => minimalTransfers(cfg, true, "leave"));

ctrlerTest("same config on servers after the leader is killed", async (cfg, sim) => {
  const ck = cfg.makeClerk();
  await ck.join({ 1: servers(1), 2: servers(2) });
  await ck.leave([1]);
  const leader = cfg.group.leader();
  assert.ok(leader !== undefined, "leader not found");
  const c = await ck.query(-1);
  await cfg.group.shutdownServer(leader);
  let next: number | undefined;
  for (let attempt = 0; (next = cfg.group.leader()) === undefined; attempt++) {
    assert.ok(attempt < 3, "no new leader after 3 s");
    await delay(1000, { clock: sim.clock });
  }
  assert.notEqual(next, leader);
  checkSameConfig(c, await ck.query(-1));
  // Every surviving replica holds the same history.
  for (let i = 0; i < cfg.group.n; i++) {
    if (i === leader) continue;
    checkSameConfig(c, cfg.group.server(i).localQuery(c.num));
  }
});

Deno.test("shard ctrler: the minimal-transfer checks catch a needless move", () => {
  const groups = { 1: ["a"], 2: ["b"], 3: ["c"] };
  const before: ShardConfig = { num: 1, shards: [1, 1, 1, 1, 1, 2, 2, 2, 2, 2], groups };
  const swapped: ShardConfig = { num: 2, shards: [2, 1, 1, 1, 3, 1, 2, 2, 3, 3], groups };
  assert.throws(() => checkMinimalAfterJoin(before, swapped), /non-minimal transfer after joins/);
  const left: ShardConfig = {
    num: 3,
    shards: [2, 2, 2, 2, 2, 2, 2, 2, 3, 3],
    groups: { 2: ["b"], 3: ["c"] },
  };
  assert.throws(() => checkMinimalAfterLeave(swapped, left), /non-minimal transfer after leaves/);
});
