/**
 * A KV node's `state` option on a real data folder (issue 19): a folder
 * that kept its state in memory moves to disk when asked, keeps every
 * acknowledged write, and is a disk folder from then on.
 */
import assert from "node:assert/strict";
import { connectKv, type KvNode, startKvNode, StateKindError } from "../kv/mod.ts";
import { freePorts, HOST } from "./node_process.ts";

async function led(node: KvNode): Promise<void> {
  for (let i = 0; node.server.raft.status().role !== "leader"; i++) {
    assert.ok(i < 3000, "a one-node cluster did not elect itself in 30 s");
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("kv node: a memory folder moves to disk with --state disk, and stays there", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-kv-state-" });
  const peers = [`${HOST}:${freePorts(1)[0]}`];
  const lines: string[] = [];
  const start = (state?: "disk" | "memory") =>
    startKvNode({
      id: 0,
      peers,
      dataDir,
      httpOffset: null,
      // Small: the memory node snapshots several times, so the migration has a snapshot to move.
      maxRaftState: 16 * 1024,
      ...(state ? { state } : {}),
      log: (line) => lines.push(line),
    });
  try {
    let node = await start("memory");
    await led(node);
    let kv = connectKv(peers);
    for (let i = 0; i < 300; i++) await kv.clerk.put(`k${i}`, `value ${i} `.repeat(8));
    await kv.clerk.append("k0", "+");
    await kv.close();
    assert.ok(node.server.stats().snapshots > 0, "no snapshot to migrate");
    await node.close();
    // Without --state, an existing folder keeps its kind.
    node = await start();
    assert.match(lines.at(-1)!, /state on memory, Raft log in Deno KV\) serving/);
    await node.close();

    node = await start("disk");
    assert.match(lines.join("\n"), /moving the KV state of snapshot \d+ from memory to disk/);
    await led(node);
    kv = connectKv(peers);
    assert.equal(await kv.clerk.get("k0"), `${"value 0 ".repeat(8)}+`);
    assert.equal(await kv.clerk.get("k299"), "value 299 ".repeat(8));
    assert.equal(node.server.stats().keys, 300);
    await kv.clerk.put("after", "1");
    await kv.close();
    await node.close();

    await assert.rejects(start("memory"), StateKindError);
    node = await start();
    assert.match(lines.at(-1)!, /state on disk, Raft log in Deno KV\) serving/);
    await led(node);
    kv = connectKv(peers);
    assert.equal(await kv.clerk.get("after"), "1");
    assert.equal(await kv.clerk.get("k150"), "value 150 ".repeat(8));
    await kv.close();
    await node.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
