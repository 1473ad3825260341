import assert from "node:assert/strict";
import { RefusedError, RpcServer, serveTcp, TcpClient } from "../net/mod.ts";
import { NodeIdentity } from "./identity.ts";
import type { IdentityConflictError } from "./identity_book.ts";
import { StorageLossError } from "../store/storage_errors.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-identity-unit-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const members = ["0", "1", "2"];

Deno.test("identity: a folder gets an incarnation once; another node or cluster is refused", async () => {
  await withDir(async (dir) => {
    const first = await NodeIdentity.open(`${dir}/a`, { id: "0", members, cluster: "c" });
    assert.ok(first.created);
    assert.match(first.incarnation, /^[0-9a-f-]{36}$/);
    const again = await NodeIdentity.open(`${dir}/a`, { id: "0", members, cluster: "c" });
    assert.equal(again.created, false);
    assert.equal(again.incarnation, first.incarnation);
    await assert.rejects(
      NodeIdentity.open(`${dir}/a`, { id: "1", members, cluster: "c" }),
      /belongs to node "0", not 1; give every node its own folder/,
    );
    await assert.rejects(
      NodeIdentity.open(`${dir}/a`, { id: "0", members, cluster: "d" }),
      /belongs to cluster "c", not "d"/,
    );
    // A folder from before identities ({"id"} only) gets one, and keeps it.
    await Deno.mkdir(`${dir}/old`);
    await Deno.writeTextFile(`${dir}/old/node.json`, `{"id":"2"}\n`);
    const upgraded = await NodeIdentity.open(`${dir}/old`, { id: "2", members, cluster: "c" });
    assert.equal(upgraded.created, false);
    const record = JSON.parse(await Deno.readTextFile(`${dir}/old/node.json`));
    assert.deepEqual(record, {
      id: "2",
      cluster: "c",
      incarnation: upgraded.incarnation,
      created: "bootstrap",
      members: {},
      applied: { index: 0, members },
    });
  });
});

Deno.test("identity: peers are recorded when first heard; another incarnation is refused; a forgotten node stops", async () => {
  await withDir(async (dir) => {
    const lines: string[] = [];
    const conflicts: IdentityConflictError[] = [];
    const node = await NodeIdentity.open(dir, {
      id: "0",
      members,
      log: (line) => lines.push(line),
      onConflict: (e) => conflicts.push(e),
    });
    assert.equal(await node.check(undefined, undefined), undefined, "a client");
    assert.match((await node.check(undefined, "1"))!, /did not say which node it is/);
    const one = { node: "1", incarnation: "inc-1", peerIncarnation: null };
    assert.equal(await node.check(one, "1"), undefined);
    assert.match((await node.check(one, "2"))!, /it is node "1", not node 2/);
    assert.match((await node.check({ ...one, node: "7" }, undefined))!, /not another member/);
    const reopened = await NodeIdentity.open(dir, { id: "0", members });
    assert.equal(reopened.knownIncarnation("1"), "inc-1", "recorded durably");

    const replaced = { node: "1", incarnation: "inc-1b", peerIncarnation: null };
    const reason = await node.check(replaced, undefined);
    assert.match(
      reason!,
      /node 1 presents data folder incarnation inc-1b, and node 0 knows node 1/,
    );
    assert.match(reason!, /add it back as a new member/);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /^refused node 1: /);

    // Node 2 knows this node as another incarnation: this node stops, once.
    const two = { node: "2", incarnation: "inc-2", peerIncarnation: "not-me" };
    assert.match((await node.check(two, undefined))!, /it has stopped/);
    assert.equal(conflicts.length, 1);
    assert.match(conflicts[0].message, /node 0 had state in this cluster and lost it/);
    assert.match(conflicts[0].message, /node 2 knows node 0 as incarnation not-me/);
    assert.match((await node.check(one, "1"))!, /has stopped/, "it refuses everyone from then on");
    assert.equal(conflicts.length, 1);
  });
});

Deno.test("identity: learned incarnations fill gaps only; what a peer knows of this node is checked", async () => {
  await withDir(async (dir) => {
    const conflicts: IdentityConflictError[] = [];
    const node = await NodeIdentity.open(dir, {
      id: "0",
      members,
      onConflict: (e) => conflicts.push(e),
    });
    await node.admit("1", "a");
    await node.learn("1", { members: { "1": "b", "2": "c", "9": "x" } });
    assert.equal(node.knownIncarnation("1"), "a", "kept");
    assert.equal(node.knownIncarnation("2"), "c", "learned");
    assert.equal(node.knownIncarnation("9"), undefined, "not a member");
    await node.learn("1", { members: { "0": node.incarnation } });
    assert.equal(conflicts.length, 0);
    await node.learn("1", { members: { "0": "old" } });
    assert.equal(conflicts.length, 1);
    assert.match(conflicts[0].message, /node 0 had state in this cluster and lost it/);
  });
});

Deno.test("identity: a folder made to join is refused, not stopped, by a peer that still knows its predecessor", async () => {
  await withDir(async (dir) => {
    const conflicts: IdentityConflictError[] = [];
    const node = await NodeIdentity.open(dir, {
      id: "0",
      members,
      mode: "join",
      onConflict: (e) => conflicts.push(e),
    });
    // A peer that has not applied the removal of node 0's old folder yet.
    await node.learn("1", { members: { "0": "old" } });
    const stale = await node.check({ node: "1", incarnation: "b", peerIncarnation: "old" }, "1");
    assert.match(stale!, /still knows node 0 as incarnation old, maybe a predecessor/);
    assert.equal(conflicts.length, 0, "it keeps running: the peer catches up with the removal");
    assert.equal(node.conflict, undefined);
    // Once it learns the removal, the old name is a predecessor for certain.
    await node.learn("2", { members: {}, retired: { "0": { index: 7, incarnations: ["old"] } } });
    const known = await node.check({ node: "1", incarnation: "b", peerIncarnation: "old" }, "1");
    assert.match(known!, /a predecessor removed from the cluster/);
    // A peer that knows it by its own incarnation is accepted.
    const fresh = { node: "1", incarnation: "b", peerIncarnation: node.incarnation };
    assert.equal(await node.check(fresh, "1"), undefined);
    assert.equal(conflicts.length, 0);
  });
});

Deno.test("identity: over TCP, a node under another incarnation is refused at the handshake, both ways", async () => {
  await withDir(async (dir) => {
    const server = await NodeIdentity.open(`${dir}/0`, { id: "0", members });
    const rpc = new RpcServer();
    rpc.addService("Echo", { Say: (x: unknown) => x });
    const listener = serveTcp(rpc, { member: server });
    const first = await NodeIdentity.open(`${dir}/1`, { id: "1", members });
    const client = new TcpClient(listener.address, { peer: "0", member: first });
    assert.equal(await client.call("Echo.Say", "hi"), "hi");
    await client.close();
    assert.equal(server.knownIncarnation("1"), first.incarnation);
    assert.equal(first.knownIncarnation("0"), server.incarnation);

    // Node 1's folder is lost: the new one is refused, and learns why.
    await Deno.remove(`${dir}/1`, { recursive: true });
    const conflicts: IdentityConflictError[] = [];
    const second = await NodeIdentity.open(`${dir}/1`, {
      id: "1",
      members,
      onConflict: (e) => conflicts.push(e),
    });
    const refused = new TcpClient(listener.address, { peer: "0", member: second });
    await assert.rejects(
      refused.call("Echo.Say", "again"),
      (e) => e instanceof RefusedError && /node 0 knows node 1 as incarnation/.test(e.message),
    );
    await refused.close();
    // Node 0 dials the new node 1: its hello names the incarnation it knows, so node 1 stops.
    const rpc1 = new RpcServer();
    const listener1 = serveTcp(rpc1, { member: second });
    const back = new TcpClient(listener1.address, { peer: "1", member: server });
    await assert.rejects(back.call("Echo.Say", "x"), RefusedError);
    await back.close();
    assert.equal(conflicts.length, 1);
    await listener1.close();
    await listener.close();
  });
});

Deno.test("identity: a first contact and a learned incarnation arriving together: the first recorded wins, the other is refused", async () => {
  await withDir(async (dir) => {
    const node = await NodeIdentity.open(dir, { id: "0", members });
    // Gossip says node 1 is "gossiped" while a node 1 under "wiped" connects.
    const [, refusal] = await Promise.all([
      node.learn("2", { members: { "1": "gossiped" } }),
      node.check({ node: "1", incarnation: "wiped", peerIncarnation: null }, "1"),
    ]);
    assert.equal(node.knownIncarnation("1"), "gossiped");
    assert.match(refusal!, /node 1 presents data folder incarnation wiped/);
  });
});

Deno.test("identity: a folder whose node.json is gone beside its Raft log is refused, not made new", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distkit-identity-lost-" });
  try {
    for (const store of ["raft.kv", "raft.log"]) {
      const folder = `${dir}/${store}-folder`;
      await Deno.mkdir(`${folder}/${store}`, { recursive: true });
      await assert.rejects(
        NodeIdentity.open(folder, { id: "0", members: ["0", "1", "2"] }),
        (err: Error) =>
          err instanceof StorageLossError && /identity record is gone/.test(err.message),
      );
      assert.throws(() => Deno.statSync(`${folder}/node.json`), Deno.errors.NotFound);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
