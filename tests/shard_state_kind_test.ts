/**
 * A shard group server's `state` option on a real data folder (issue 19):
 * a folder that kept the group's state in memory moves to disk when asked,
 * keeps every acknowledged write, and is a disk folder from then on; a disk
 * folder asked for memory is refused with `StateKindError`; a controller
 * keeps its state in memory and refuses the option.
 */
import assert from "node:assert/strict";
import {
  connectShard,
  type ShardNodeOptions,
  startShardNode,
  StateKindError,
} from "../shard/mod.ts";
import { freePorts, HOST } from "./node_process.ts";

Deno.test("shard node: a memory group folder moves to disk with state disk, and stays there", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distkit-shard-state-" });
  const [ctrler, server] = freePorts(2).map((p) => `${HOST}:${p}`);
  const lines: string[] = [];
  const ctrl = await startShardNode({
    role: "ctrler",
    address: ctrler,
    peers: [ctrler],
    dataDir: `${dir}/ctrler`,
  });
  const start = (state?: ShardNodeOptions["state"]) =>
    startShardNode({
      role: "group",
      gid: 100,
      address: server,
      peers: [server],
      ctrlers: [ctrler],
      dataDir: `${dir}/g100`,
      // Small: the memory server snapshots several times, so the migration has a snapshot to move.
      maxRaftState: 16 * 1024,
      ...(state ? { state } : {}),
      log: (line) => lines.push(line),
    });
  const value = (i: number) => `value ${i} `.repeat(8);
  try {
    let node = await start("memory");
    assert.equal(node.state, "memory");
    let shard = connectShard([ctrler]);
    await shard.admin.join({ 100: [server] });
    for (let i = 0; i < 300; i++) await shard.clerk.put(`k${i}`, value(i));
    await shard.clerk.append("k0", "+");
    await shard.close();
    await node.close();
    // Without state, an existing folder keeps its kind.
    node = await start();
    assert.equal(node.state, "memory");
    await node.close();

    node = await start("disk");
    assert.equal(node.state, "disk");
    const moved = lines.join("\n").match(
      /moving the shard group state of snapshot (\d+) from memory to disk/,
    );
    assert.ok(moved, `no snapshot was moved to disk:\n${lines.join("\n")}`);
    assert.ok(Number(moved[1]) > 0);
    shard = connectShard([ctrler]);
    assert.equal(await shard.clerk.get("k0"), `${value(0)}+`);
    for (let i = 1; i < 300; i++) assert.equal(await shard.clerk.get(`k${i}`), value(i), `k${i}`);
    await shard.clerk.put("after", "1");
    await shard.close();
    await node.close();

    await assert.rejects(start("memory"), (err) => {
      assert.ok(err instanceof StateKindError, `${err}`);
      assert.equal(err.recorded, "disk");
      assert.equal(err.wanted, "memory");
      assert.match(err.message, /keeps its shard group state on disk .*--state disk/);
      assert.match(err.message, /Member\.Remove/);
      return true;
    });
    // The refused start let go of its port and folder.
    node = await start();
    assert.equal(node.state, "disk");
    shard = connectShard([ctrler]);
    assert.equal(await shard.clerk.get("after"), "1");
    assert.equal(await shard.clerk.get("k150"), value(150));
    await shard.close();
    await node.close();
  } finally {
    await ctrl.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shard node: a controller keeps its state in memory and refuses the state option", async () => {
  const [ctrler] = freePorts(1).map((p) => `${HOST}:${p}`);
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-shard-state-" });
  try {
    await assert.rejects(
      startShardNode({ role: "ctrler", address: ctrler, peers: [ctrler], dataDir, state: "disk" }),
      (err) => err instanceof RangeError && /--state is for a group server/.test(err.message),
    );
    const node = await startShardNode({
      role: "ctrler",
      address: ctrler,
      peers: [ctrler],
      dataDir,
    });
    assert.equal(node.state, "memory");
    await node.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
