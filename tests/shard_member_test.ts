/**
 * Runtime membership of a shard controller's replicas (the same `Member`
 * service as the KV nodes', on any `Replica`): real nodes over TCP on
 * 127.0.0.1, a replica added with `--join`, caught up, promoted.
 */
import assert from "node:assert/strict";
import type { MemberReply } from "../kv/mod.ts";
import { delay, TcpClient } from "../net/mod.ts";
import { startShardNode } from "../shard/mod.ts";
import { freePorts, HOST } from "./node_process.ts";

Deno.test("shard members: a controller replica joins, catches up and is promoted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distkit-shard-member-" });
  const [a, b] = freePorts(2).map((p) => `${HOST}:${p}`);
  const first = await startShardNode({
    role: "ctrler",
    address: a,
    peers: [a],
    dataDir: `${dir}/a`,
    tickMs: 20,
  });
  const second = await startShardNode({
    role: "ctrler",
    address: b,
    peers: [a, b],
    dataDir: `${dir}/b`,
    tickMs: 20,
    join: true,
  });
  const client = new TcpClient(a, { timeoutMs: 5000 });
  const call = (method: string, args: unknown = {}) =>
    client.call<MemberReply>(`Member.${method}`, args);
  try {
    let list = await call("List");
    for (let i = 0; i < 100 && list.status !== "ok"; i++) {
      await delay(50); // until a, alone, has elected itself
      list = await call("List");
    }
    assert.ok("list" in list, JSON.stringify(list));
    assert.deepEqual(list.list.members.map((m) => [m.id, m.role]), [[a, "voter"]]);
    const added = await call("Add", { node: b });
    assert.ok("outcome" in added && added.outcome.changed, JSON.stringify(added));
    let promoted = await call("Promote", { node: b });
    for (let i = 0; i < 200 && "refused" in promoted && promoted.refused.retryable; i++) {
      await delay(50); // until b has caught up
      promoted = await call("Promote", { node: b });
    }
    assert.ok("outcome" in promoted && promoted.outcome.changed, JSON.stringify(promoted));
    list = await call("List");
    assert.ok("list" in list);
    assert.deepEqual(
      list.list.members.map((m) => [m.id, m.role]).sort(),
      [[a, "voter"], [b, "voter"]].sort(),
    );
    // The joined replica answers as a follower: it knows the leader.
    const other = new TcpClient(b, { timeoutMs: 5000 });
    assert.deepEqual(await other.call("Member.List", {}), { status: "not-leader", leader: a });
    other.close();
  } finally {
    client.close();
    await second.close();
    await first.close();
    await Deno.remove(dir, { recursive: true });
  }
});
