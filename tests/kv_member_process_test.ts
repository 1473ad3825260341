/**
 * Runtime membership on real clusters: `distkit kv serve` processes on
 * 127.0.0.1 whose membership is changed with `distkit kv member`.
 *
 * - A node killed for good (SIGKILL, its folder gone) under client load is
 *   replaced at a new address: removed, added back (`member add --address`)
 *   on a new folder with `--join`, listening at another port, caught up by
 *   the leader's snapshot (which the leader can only send once it dials the
 *   new address), promoted. The clients' history must be linearizable and
 *   every acknowledged append present exactly once.
 * - A node that lost its folder is refused by its peers (it stops, exit 4);
 *   `member remove` + `member add` under the same id and address bring it
 *   back, and it votes again (the cluster survives losing another node).
 */
import assert from "node:assert/strict";
import { checkOperations, kvModel } from "../checker/mod.ts";
import { connectKv } from "../kv/mod.ts";
import { AppendWorkload, LocalCluster } from "../cli.ts";
import { delay, TcpClient } from "../net/mod.ts";
import { runCli } from "./node_process.ts";

interface Status {
  role: string;
  leader: string | null;
  commitIndex: number;
  snapshotIndex: number;
  membership: { voters: string[]; learners: string[] };
  kv: { appliedIndex: number; installs: number };
}

async function withCluster(body: (cluster: LocalCluster) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-kv-member-test-" });
  // A small snapshot threshold: the new node catches up by the leader's snapshot.
  const cluster = await LocalCluster.start({ dataDir, maxRaftState: 32 * 1024 });
  try {
    await body(cluster);
  } finally {
    await cluster.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
}

async function status(cluster: LocalCluster, i: number): Promise<Status | undefined> {
  return await cluster.status(i) as unknown as Status | undefined;
}

/** `distkit kv member ...` against the cluster; fails the test on an unexpected exit code. */
async function member(cluster: LocalCluster, expect: number, ...args: string[]) {
  const [op, ...rest] = args;
  const out = await runCli(
    "kv",
    "member",
    op,
    "--endpoints",
    cluster.peers.join(","),
    "--timeout",
    "60000",
    ...rest,
  );
  assert.equal(out.code, expect, `kv member ${args.join(" ")}: ${out.stdout}\n${out.stderr}`);
  return out;
}

/** Waits (bounded) until `check` holds, polling; fails with `what` otherwise. */
async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await delay(100);
  }
}

/** Every node's status and node.json, for a failure's message. */
async function dump(cluster: LocalCluster): Promise<string> {
  const lines = [];
  for (let i = 0; i < cluster.peers.length; i++) {
    const record = await Deno.readTextFile(`${cluster.dataDir(i)}/node.json`).catch(() => "none");
    lines.push(`node ${i}: ${JSON.stringify(await cluster.status(i))}\n${record}`);
  }
  return lines.join("\n");
}

async function incarnation(cluster: LocalCluster, i: number): Promise<string> {
  return JSON.parse(await Deno.readTextFile(`${cluster.dataDir(i)}/node.json`)).incarnation;
}

Deno.test("kv member processes: a node killed for good is replaced under load; nothing acknowledged is lost", async () => {
  await withCluster(async (cluster) => {
    const workload = new AppendWorkload({ keys: 3 });
    const connections = Array.from({ length: 4 }, () => connectKv(cluster.peers));
    const running = workload.start(connections.map((c) => c.clerk));
    const sum = () => workload.acknowledged.reduce((a, b) => a + b, 0);
    await until("some appends are acknowledged", () => sum() >= 50);

    // The leader dies for good: SIGKILL, and its folder is gone.
    const victim = await cluster.leader();
    const old = await incarnation(cluster, victim);
    await cluster.kill(victim);
    await Deno.remove(cluster.dataDir(victim), { recursive: true });
    const before = sum();
    await until("the others serve again", () => sum() > before + 20);

    const removed = await member(cluster, 0, "remove", String(victim));
    assert.match(removed.stdout, new RegExp(`node ${victim} removed`));
    assert.match(removed.stdout, /every node has forgotten/);
    const list = await member(cluster, 0, "list");
    assert.doesNotMatch(list.stdout, new RegExp(`node ${victim} `));

    // Every survivor has compacted its log (the 32 KiB threshold, under load): whichever leads
    // can bring the new node up to date only by its snapshot.
    await until("the survivors have compacted their logs", async () => {
      const s = await Promise.all(
        [0, 1, 2].filter((i) => i !== victim).map((i) => status(cluster, i)),
      );
      return s.every((x) => (x?.snapshotIndex ?? 0) > 0);
    });

    // It comes back on another machine: a new address.
    const oldAddress = cluster.peers[victim];
    const endpoints = cluster.peers.join(",");
    const newAddress = await cluster.move(victim);
    assert.notEqual(newAddress, oldAddress);
    const added = await member(cluster, 0, "add", "--address", newAddress, String(victim));
    assert.match(added.stdout, new RegExp(`node ${victim} added as a learner`));
    assert.match(
      added.stdout,
      new RegExp(`distkit kv serve --id ${victim} --peers ${cluster.peers.join(",")} .*--join`),
    );
    assert.ok(cluster.peers.join(",") !== endpoints);
    // Adding it again is answered as done (idempotent), and changes nothing.
    assert.match((await member(cluster, 0, "add", String(victim))).stdout, /already a learner/);

    await cluster.restart(victim, { join: true });
    assert.notEqual(await incarnation(cluster, victim), old, "a new folder, a new incarnation");
    await member(cluster, 0, "promote", "--wait", String(victim));
    // Adding a voter is answered as done, with no instructions to start it on a new folder
    // (which would start a second node under a voter's id).
    const voter = await member(cluster, 0, "add", String(victim));
    assert.match(voter.stdout, /already a voter/);
    assert.doesNotMatch(voter.stdout, /new, empty folder|--join|promote it/);
    const after = await member(cluster, 0, "list");
    assert.match(after.stdout, new RegExp(`node ${victim}\\s+voter`));
    const caughtUp = sum();
    await until(
      "more appends are acknowledged with the new voter",
      () => sum() > caughtUp + 20,
    );

    await running.stop();
    const lost = await workload.lostAppends(connections[0].clerk);
    assert.equal(lost, 0, `${lost} acknowledged appends missing, doubled or reordered`);
    for (const c of connections) await c.close();
    const result = checkOperations(kvModel, workload.history, { timeoutMs: 60_000 });
    assert.equal(result.verdict, "linearizable");

    // Every node, the new one included, has applied the same log.
    let applied: number[] = [];
    await until("every node has applied the same index", async () => {
      const s = await Promise.all([0, 1, 2].map((i) => status(cluster, i)));
      applied = s.map((x) => x?.kv.appliedIndex ?? -1);
      return applied.every((a) => a === applied[0] && a > 0);
    });
    const fresh = (await status(cluster, victim))!;
    // Raft pushes: the leader sent the snapshot to the new address, which no node was started with.
    assert.ok(fresh.kv.installs >= 1, "the new node caught up by the leader's snapshot");
    assert.deepEqual([...fresh.membership.voters].sort(), ["0", "1", "2"]);
    console.log(
      `  node ${victim} replaced under load at a new address: ${sum()} appends acknowledged and present, ` +
        `${workload.completed} operations linearizable; applied index ${applied[0]} on all nodes`,
    );
  });
});

Deno.test("kv member processes: a node that lost its folder is refused, then brought back by remove + add", async () => {
  await withCluster(async (cluster) => {
    const { clerk, close } = connectKv(cluster.peers);
    try {
      for (let k = 0; k < 30; k++) await clerk.put(`k${k}`, `v${k}`);
      // Peers know a node's folder once they have heard from it (trust on first use).
      for (const i of [0, 1, 2]) {
        await until(`node ${i} knows both peers`, async () => {
          const record = JSON.parse(await Deno.readTextFile(`${cluster.dataDir(i)}/node.json`));
          return Object.keys(record.members).length === 2;
        });
      }
      const leader = await cluster.leader();
      const lost = (leader + 1) % 3;
      await cluster.kill(lost);
      await Deno.remove(cluster.dataDir(lost), { recursive: true });

      // Started on an empty folder as before: its peers know another incarnation; it stops.
      await cluster.restart(lost).catch(() => {}); // it may stop before it answers
      await until("the node with a lost folder stops", () => !cluster.isRunning(lost)).catch(
        async (err) => {
          throw new Error(
            `${err.message} (node ${lost}; leader ${leader}):\n${await dump(cluster)}`,
          );
        },
      );
      assert.match(cluster.stderr(lost), /had state in this cluster and lost it/);
      // Writes go on meanwhile, with the two others.
      await clerk.put("during", "yes");

      await member(cluster, 0, "remove", String(lost));
      await member(cluster, 0, "add", String(lost));
      await Deno.remove(cluster.dataDir(lost), { recursive: true });
      await cluster.restart(lost, { join: true });
      await member(cluster, 0, "promote", "--wait", String(lost));

      // A node id with no address in --peers is refused (the leader could not send it the log).
      // Asked of the leader now: the promotion may have moved leadership (a CI run under load saw
      // "not-leader" from the one found at the start).
      const tcp = new TcpClient(cluster.peers[await cluster.leader()], { timeoutMs: 5000 });
      assert.deepEqual(await tcp.call("Member.Add", { node: "9" }), {
        status: "ok",
        refused: {
          reason: 'node "9" is not a position in --peers (0..2); a node is added under its ' +
            "position in the list every node was started with",
          retryable: false,
        },
      });
      tcp.close();

      // It votes: with another node down, it and the remaining one still make a quorum.
      const other = [0, 1, 2].find((i) => i !== lost && i !== leader)!;
      await cluster.kill(leader);
      await clerk.put("after", "still");
      assert.equal(await clerk.get("k7"), "v7");
      assert.equal(await clerk.get("during"), "yes");
      const s = (await status(cluster, lost))!;
      assert.ok(
        s.role === "leader" || s.leader === String(other) || s.leader === String(lost),
        `node ${lost} follows a live leader: ${JSON.stringify(s)}`,
      );
    } finally {
      await close();
    }
  });
});

Deno.test("kv member processes: usage errors exit 2, nothing listening exits 3", async () => {
  const none = await runCli("kv", "member", "list");
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--endpoints is required/);
  const op = await runCli("kv", "member", "frob", "--endpoints", "127.0.0.1:1");
  assert.equal(op.code, 2);
  assert.match(op.stderr, /expected one of list, add, remove, promote, got frob/);
  const id = await runCli("kv", "member", "add", "--endpoints", "127.0.0.1:1,127.0.0.1:2", "5");
  assert.equal(id.code, 2);
  assert.match(id.stderr, /node "5" is not a position in --endpoints \(0\.\.1\)/);
  const missing = await runCli("kv", "member", "promote", "--endpoints", "127.0.0.1:1");
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /promote takes a node id/);
  // Port 1 of the loopback: nothing listens there.
  const down = await runCli("kv", "member", "list", "--endpoints", "127.0.0.1:1");
  assert.equal(down.code, 3, down.stderr);
  assert.match(down.stderr, /connection refused/);
});
