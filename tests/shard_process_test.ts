/**
 * A small sharded cluster as real processes on 127.0.0.1 (3 controller
 * replicas, 2 groups of 3 servers, `distkit shard ... serve`, Deno KV
 * storage): under concurrent appends it goes through a join, kill -9s of a
 * controller and a group server, a crash of a whole group restarted from
 * its files, and a leave; no acknowledged append is lost and the history is
 * linearizable. Also the `distkit shard` client commands.
 */
import assert from "node:assert/strict";
import { checkOperations, kvModel } from "../checker/mod.ts";
import { AppendWorkload } from "../cli.ts";
import { delay } from "../net/mod.ts";
import { connectShard } from "../shard/mod.ts";
import { freePorts, HOST, NodeProcess, runCli } from "./node_process.ts";

const cli = (...args: string[]) => runCli("shard", ...args);

Deno.test("shard process: join, kill -9, group crash and restart, leave: no acknowledged write lost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distkit-shard-" });
  const ports = freePorts(9);
  const addr = (p: number) => `${HOST}:${p}`;
  const ctrlers = ports.slice(0, 3).map(addr);
  const groups = [ports.slice(3, 6).map(addr), ports.slice(6, 9).map(addr)];
  const gids = [100, 101];
  const nodes = [
    ...ctrlers.map((a, i) =>
      new NodeProcess(a, [
        "shard",
        "ctrler",
        "serve",
        "--listen",
        a,
        "--peers",
        ctrlers.join(","),
        "--data",
        `${dir}/ctrler-${i}`,
      ])
    ),
    ...groups.flatMap((servers, g) =>
      servers.map((a, i) =>
        new NodeProcess(a, [
          "shard",
          "group",
          "serve",
          "--gid",
          String(gids[g]),
          "--ctrlers",
          ctrlers.join(","),
          "--listen",
          a,
          "--peers",
          servers.join(","),
          "--data",
          `${dir}/g${gids[g]}-${i}`,
          "--max-raft-state",
          "20000",
        ])
      )
    ),
  ];
  const group = (g: number) => nodes.slice(3 + 3 * g, 6 + 3 * g);
  const connections = Array.from(
    { length: 5 },
    () => connectShard(ctrlers, { attemptTimeoutMs: 1000 }),
  );
  try {
    await Promise.all(nodes.map((n) => n.start()));
    const { admin } = connections[0];
    await admin.join({ [gids[0]]: groups[0] });
    const workload = new AppendWorkload({ keys: 10, keyPrefix: "" });
    const load = workload.start(connections.slice(1).map((c) => c.clerk));
    const progress = async (what: string) => {
      const before = workload.completed;
      const deadline = Date.now() + 15_000;
      while (workload.completed < before + 20) {
        assert.ok(Date.now() < deadline, `no progress after ${what}`);
        await delay(50);
      }
    };
    await progress("start");
    await admin.join({ [gids[1]]: groups[1] });
    await progress("the join");
    await nodes[0].kill();
    await group(1)[0].kill();
    await progress("kill -9 of a controller and a group server");
    await nodes[0].start();
    await group(1)[0].start();
    for (const n of group(0)) await n.kill();
    await delay(300);
    for (const n of group(0)) await n.start();
    await progress("the crash and restart of group 100");
    await admin.leave([gids[0]]);
    await progress("the leave");
    const config = await admin.query();
    assert.ok(config.shards.every((g) => g === gids[1]), "every shard is on group 101");
    await load.stop();
    const lost = await workload.lostAppends(connections[0].clerk);
    assert.equal(lost, 0, `${lost} acknowledged appends missing, doubled or out of order`);
    const appended = workload.acknowledged.reduce((a, b) => a + b, 0);
    const result = checkOperations(kvModel, workload.history, { timeoutMs: 60_000 });
    assert.equal(result.verdict, "linearizable");
    console.log(
      `  ${workload.completed} operations (${appended} appends acknowledged), all present, ` +
        `history linearizable`,
    );

    // The client commands against the same cluster.
    const list = ctrlers.join(",");
    assert.equal((await cli("put", "--endpoints", list, "greeting", "hello")).code, 0);
    assert.equal((await cli("append", "--endpoints", list, "greeting", ", world")).code, 0);
    const got = await cli("get", "--endpoints", list, "greeting");
    assert.equal(got.stdout.trim(), "hello, world", got.stderr);
    assert.equal((await cli("get", "--endpoints", list, "nothing-here")).code, 1);
    const query = await cli("query", "--endpoints", list);
    assert.equal(JSON.parse(query.stdout).num, config.num, query.stderr);
    const move = await cli("move", "--endpoints", list, "--shard", "3", "--gid", "999");
    assert.equal(move.code, 2, "a move to a missing group is refused: a bad --gid");
    assert.match(move.stderr, /999/);
    assert.equal(
      (await cli("join", "--endpoints", list)).code,
      2,
      "join without --gid is a usage error",
    );
    // A join whose servers do not answer as that group's is refused before the controller
    // hears of it: a mistyped address (nothing listens) or another group's servers.
    const nowhere = freePorts(2).map(addr).join(",");
    const typo = await cli("join", "--endpoints", list, "--gid", "102", "--servers", nowhere);
    assert.equal(typo.code, 3, typo.stderr);
    assert.match(typo.stderr, /fewer than a majority of group 102's servers answer/);
    assert.match(typo.stderr, /nothing was changed/);
    const other = await cli(
      "join",
      "--endpoints",
      list,
      "--gid",
      "102",
      "--servers",
      groups[1].join(","),
    );
    assert.equal(other.code, 1, `every server answered, as another group's: ${other.stderr}`);
    assert.match(other.stderr, /serves group 101, not 102/);
    assert.equal((await admin.query()).num, config.num, "the refused joins changed nothing");
    // Group 101 rejoined with its own servers passes the check (a new server list is given so).
    const again = await cli(
      "join",
      "--endpoints",
      list,
      "--gid",
      "101",
      "--servers",
      groups[1].join(","),
    );
    assert.equal(again.code, 0, again.stderr);
    // A server started alone under group 101's id (a new, empty folder: a Raft group of its
    // own) is not group 101: joined in its place, its empty store would answer for the group's
    // keys ("greeting" would read as absent). Refused, the only server listed or one of three.
    const [stray] = freePorts(1).map(addr);
    const impostor = new NodeProcess(stray, [
      "shard",
      "group",
      "serve",
      "--gid",
      "101",
      "--ctrlers",
      list,
      "--listen",
      stray,
      "--peers",
      stray,
      "--data",
      `${dir}/stray`,
    ]);
    nodes.push(impostor);
    await impostor.start();
    for (
      const [servers, code] of [
        [[stray], 1],
        [[stray, groups[1][0], nowhere.split(",")[0]], 3],
        [[stray, groups[1][0], groups[1][1]], 1],
      ] as const
    ) {
      const swap = await cli(
        "join",
        "--endpoints",
        list,
        "--gid",
        "101",
        "--servers",
        servers.join(","),
      );
      assert.equal(swap.code, code, swap.stderr);
      assert.match(swap.stderr, /serves a group 101 of its own/);
    }
    assert.equal((await cli("get", "--endpoints", list, "greeting")).stdout.trim(), "hello, world");
    const twice = await cli(
      "join",
      "--endpoints",
      list,
      "--gid",
      "101",
      "--servers",
      `${stray},${stray}`,
    );
    assert.equal(twice.code, 2, twice.stderr);
    // --force joins a group whose servers are not there yet.
    const forced = await cli(
      "join",
      "--endpoints",
      list,
      "--gid",
      "102",
      "--servers",
      nowhere,
      "--force",
    );
    assert.equal(forced.code, 0, forced.stderr);
    assert.ok((await admin.query()).groups[102] !== undefined);
  } finally {
    for (const c of connections) await c.close();
    await Promise.all(nodes.map((n) => n.kill("SIGTERM")));
    await Deno.remove(dir, { recursive: true });
  }
});
