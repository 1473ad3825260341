/**
 * The KV service as separate `deno` processes on 127.0.0.1 (`distkit kv
 * serve` with Deno KV storage): leaders and followers killed with SIGKILL
 * and restarted from their data folders in a loop under concurrent client
 * load; afterwards every acknowledged write must be there exactly once and
 * the whole history must be linearizable. And bad input over HTTP and TCP.
 */
import assert from "node:assert/strict";
import { checkOperations, kvModel } from "../checker/mod.ts";
import { connectKv, startKvNode } from "../kv/mod.ts";
import { AppendWorkload, LocalCluster } from "../cli.ts";
import { BadArgumentsError, delay, RefusedError, TcpClient } from "../net/mod.ts";

const ROUNDS = Number(Deno.env.get("KV_CRASH_ROUNDS") ?? 10);

async function withCluster(
  body: (cluster: LocalCluster) => Promise<void>,
  options: { cluster?: string; secret?: string } = {},
): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-kv-test-" });
  const cluster = await LocalCluster.start({ dataDir, maxRaftState: 64 * 1024, ...options });
  try {
    await body(cluster);
  } finally {
    await cluster.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("kv processes: kill -9 of leaders and followers under load loses nothing", async () => {
  await withCluster(async (cluster) => {
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
    assert.equal(
      lost,
      0,
      `${lost} acknowledged appends missing, doubled or reordered (${log.join("; ")})`,
    );
    for (const c of connections) await c.close();
    const result = checkOperations(kvModel, workload.history, { timeoutMs: 60_000 });
    assert.equal(result.verdict, "linearizable");
    const total = workload.acknowledged.reduce((a, b) => a + b, 0);
    assert.ok(total > 100, `only ${total} appends acknowledged`);

    // The restarted nodes catch up from their files and the leader: every node answers and
    // they reach one applied index (polled, bounded: a busy machine only makes it slower).
    let applied: (number | undefined)[] = [];
    const deadline = Date.now() + 60_000;
    while (true) {
      const statuses = await Promise.all([0, 1, 2].map((i) => cluster.status(i)));
      applied = statuses.map((s) =>
        (s as unknown as { kv?: { appliedIndex: number } } | undefined)?.kv?.appliedIndex
      );
      if (applied.every((a) => a !== undefined && a === applied[0])) break;
      if (Date.now() > deadline) {
        const running = [0, 1, 2].map((i) => cluster.isRunning(i));
        assert.fail(
          `nodes applied ${applied} (undefined: no answer; running ${running}); ` +
            `stderr: ${[0, 1, 2].map((i) => cluster.stderr(i).slice(-3000)).join(" | ")}`,
        );
      }
      await delay(100);
    }
    console.log(
      `  ${ROUNDS} kill -9 rounds, ${total} appends acknowledged and present, ` +
        `${workload.completed} operations linearizable; applied index ${applied[0]} on all nodes`,
    );
  });
});

Deno.test("kv processes: malformed HTTP and TCP requests get clear errors; nodes keep serving", async () => {
  await withCluster(async (cluster) => {
    const leader = await cluster.leader();
    const http = `http://${cluster.httpAddress(leader)}`;
    const expect = async (req: Request, status: number, message: RegExp) => {
      const res = await fetch(req);
      const body = await res.text();
      assert.equal(res.status, status, `${req.method} ${req.url}: ${body}`);
      assert.match(JSON.parse(body).error, message);
    };
    await expect(new Request(`${http}/kv/`), 404, /use \/kv\/<key>/);
    await expect(new Request(`${http}/kv/%E0%A4%A`), 400, /percent-encoded/);
    await expect(new Request(`${http}/kv/x`, { method: "PATCH" }), 405, /not supported/);
    await expect(new Request(`${http}/kv/x?op=nope`, { method: "POST" }), 400, /op=append/);
    await expect(
      new Request(`${http}/kv/x?op=cas`, { method: "POST", body: "{" }),
      400,
      /JSON body/,
    );
    await expect(
      new Request(`${http}/kv/x`, { method: "PUT", body: new Uint8Array([0xff, 0xfe]) }),
      400,
      /not valid UTF-8/,
    );
    await expect(
      new Request(`${http}/kv/x`, { method: "PUT", body: "v".repeat(2 * 1024 * 1024) }),
      413,
      /over the limit/,
    );
    await expect(new Request(`${http}/kv/${"k".repeat(2000)}`), 400, /key is 2000 bytes/);
    await expect(
      new Request(`${http}/kv/x`, { headers: { "x-distkit-cluster": "other" } }),
      421,
      /serves cluster "", not "other"/,
    );

    const tcp = new TcpClient(cluster.peers[leader], { timeoutMs: 2000 });
    await assert.rejects(tcp.call("KV.Get", { key: 7 }), BadArgumentsError);
    await assert.rejects(
      tcp.call("KV.Write", { client: "c", seq: -1, write: {} }),
      BadArgumentsError,
    );
    await assert.rejects(tcp.call("KV.Nope", {}), /UnknownMethod|unknown method|no method/i);
    tcp.close();
    // Raw garbage on a TCP connection: the node drops that connection only.
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: Number(cluster.peers[leader].split(":")[1]),
    });
    await conn.write(new Uint8Array([0, 0, 0, 5, 1, 2, 3, 4, 5, 0xff, 0xff, 0xff, 0xff]));
    const buffer = new Uint8Array(1024);
    while ((await conn.read(buffer).catch(() => null)) !== null) { /* until the node closes it */ }
    conn.close();

    // Values near the limit (over Deno KV's 800 KiB per commit) are stored.
    const big = "b".repeat(1000 * 1000);
    const put = await fetch(`${http}/kv/big`, { method: "PUT", body: big });
    assert.equal(put.status, 204, await put.text());
    assert.equal((await (await fetch(`${http}/kv/big`)).text()).length, big.length);
    await expect(new Request(`${http}/status`, { method: "POST" }), 405, /answers GET only/);
    const cas = await fetch(`${http}/kv/c?op=cas`, {
      method: "POST",
      body: JSON.stringify({ expected: null, value: "v" }),
    });
    assert.deepEqual(await cas.json(), { ok: true });

    // Still serving, over both.
    const { clerk, close } = connectKv(cluster.peers);
    await clerk.put("x", "fine");
    assert.equal(await clerk.get("x"), "fine");
    await close();
    const res = await fetch(`${http}/kv/x`);
    assert.equal(await res.text(), "fine");
  });
});

Deno.test("kv processes: the command-line client", async () => {
  await withCluster(async (cluster) => {
    const cli = new URL("../cli.ts", import.meta.url).pathname;
    const run = async (...args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-net=127.0.0.1", cli, "kv", ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
      return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
    };
    const list = cluster.peers.join(",");
    assert.equal((await run("put", "--endpoints", list, "k", "hello")).code, 0);
    assert.equal((await run("append", "--endpoints", list, "k", ", world")).code, 0);
    assert.deepEqual(await run("get", "--endpoints", list, "k"), {
      code: 0,
      stdout: "hello, world",
      stderr: "",
    });
    const cas = await run("cas", "--endpoints", list, "k", "nope", "x");
    assert.equal(cas.code, 1);
    assert.match(cas.stderr, /not set: the value is "hello, world"/);
    assert.equal((await run("cas", "--endpoints", list, "--absent", "lock", "me")).code, 0);
    assert.equal((await run("del", "--endpoints", list, "k")).code, 0);
    const missing = await run("get", "--endpoints", list, "k");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no key "k"/);
    const usage = await run("get", "k");
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--endpoints is required/);
    const tooBig = await run("put", "--endpoints", list, "x".repeat(2000), "v");
    assert.equal(tooBig.code, 2, "a key over the limit is a usage error");
    assert.match(tooBig.stderr, /key is 2000 bytes/);
  });
});

Deno.test("kv processes: a node of another cluster and clients without the secret are refused", async () => {
  const secret = "s3cret-for-the-test";
  await withCluster(async (cluster) => {
    const { clerk, close } = connectKv(cluster.peers, { cluster: "blue", secret });
    await clerk.put("x", "1");
    const leader = await cluster.leader();
    const term = (await cluster.status(leader))!.term;

    // Clients lacking the secret, or naming another cluster, are refused with a typed error.
    for (
      const options of [{ cluster: "blue" }, { cluster: "green", secret }, {
        cluster: "blue",
        secret: "wrong",
      }]
    ) {
      const outsider = connectKv(cluster.peers, options);
      await assert.rejects(outsider.clerk.get("x"), (err) => err instanceof RefusedError);
      await outsider.close();
    }
    // Over HTTP too.
    const http = `http://${cluster.httpAddress(leader)}/kv/x`;
    const anonymous = await fetch(http);
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const ok = await fetch(http, { headers: { authorization: `Bearer ${secret}` } });
    assert.equal(await ok.text(), "1");

    // A node of another cluster, listing the real nodes as its peers, gets
    // nowhere: its votes are refused, and the real cluster's term does not move.
    const foreignDir = await Deno.makeTempDir({ prefix: "distkit-kv-foreign-" });
    const port = freePort();
    // It takes the leader's id, so its messages are addressed as the real nodes expect.
    const foreign = await startKvNode({
      id: leader,
      peers: cluster.peers.map((p, i) => i === leader ? `127.0.0.1:${port}` : p),
      dataDir: foreignDir,
      cluster: "green",
      secret,
      httpOffset: null,
    });
    await delay(3000);
    assert.notEqual(foreign.server.raft.status().role, "leader");
    assert.equal((await cluster.status(leader))!.term, term, "the foreign node disturbed the term");
    await foreign.close();
    await Deno.remove(foreignDir, { recursive: true });

    // What stops it: its connections are refused before any message is read.
    const follower = (leader + 1) % 3;
    const step = { type: "heartbeat", from: String(leader), to: String(follower), term: 99 };
    const impostor = new TcpClient(cluster.peers[follower], { cluster: "green", secret });
    await assert.rejects(
      impostor.call("Raft.Step", step),
      (err) =>
        err instanceof RefusedError && /serves cluster "blue", not "green"/.test(err.message),
    );
    impostor.close();

    await clerk.put("x", "2");
    assert.equal(await clerk.get("x"), "2");
    await close();
  }, { cluster: "blue", secret });
});

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("kv node: a data folder serves one node, and a node runs once", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-kv-claim-" });
  const peers = [`127.0.0.1:${freePort()}`, `127.0.0.1:${freePort()}`];
  const node = await startKvNode({ id: 0, peers, dataDir, httpOffset: null });
  try {
    await assert.rejects(
      startKvNode({ id: 0, peers, dataDir, httpOffset: null }),
      (err: Error) => {
        assert.match(err.message, /cannot listen on .*: .*is node 0 already running\?/);
        assert.doesNotMatch(err.message, /cannot listen on .*cannot listen on/, "a doubled prefix");
        assert.doesNotMatch(err.message, /0 picks a free one/, "advice that does not apply");
        return true;
      },
    );
    await assert.rejects(
      startKvNode({ id: 1, peers, dataDir, httpOffset: null }),
      /belongs to node "0", not 1; give every node its own folder/,
    );
  } finally {
    await node.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
