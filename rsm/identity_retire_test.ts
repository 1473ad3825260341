import assert from "node:assert/strict";
import { NodeIdentity } from "./identity.ts";

const members = ["0", "1", "2"];

Deno.test("identity: a node removed from the cluster is accepted again only under a new incarnation", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distkit-identity-retire-" });
  try {
    const node = await NodeIdentity.open(dir, { id: "0", members });
    const hello = (incarnation: string) => ({ node: "1", incarnation, peerIncarnation: null });
    assert.equal(await node.check(hello("old"), "1"), undefined, "first contact: admitted");
    assert.equal(node.knownIncarnation("1"), "old");

    // The membership entry at index 9 drops node 1: its folder is retired.
    await node.retire("1", 9);
    assert.equal(node.knownIncarnation("1"), undefined);
    assert.match((await node.check(hello("old"), "1"))!, /was removed from the cluster/);
    await node.learn("2", { members: { "1": "old" } });
    assert.equal(node.knownIncarnation("1"), undefined, "a peer that lags cannot teach it back");

    // Added back on a new folder: accepted on first contact, and only that one.
    assert.equal(await node.check(hello("new"), "1"), undefined);
    assert.equal(node.knownIncarnation("1"), "new");
    assert.match((await node.check(hello("other"), "1"))!, /knows node 1 as incarnation new/);

    // The same entry applied again (a restart replays the log) retires nothing.
    await node.retire("1", 9);
    assert.equal(node.knownIncarnation("1"), "new");
    // Never this node itself.
    await node.retire("0", 12);
    assert.match(node.incarnation, /^[0-9a-f-]{36}$/);

    // All of it is durable.
    const reopened = await NodeIdentity.open(dir, { id: "0", members });
    assert.equal(reopened.knownIncarnation("1"), "new");
    assert.match((await reopened.check(hello("old"), "1"))!, /was removed from the cluster/);
    await reopened.retire("1", 10);
    assert.equal(reopened.knownIncarnation("1"), undefined, "a later removal retires the new one");
    for (const retired of ["old", "new"]) {
      assert.match((await reopened.check(hello(retired), "1"))!, /was removed from the cluster/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("identity: a founding folder written before memberships were recorded starts from the founding one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distkit-identity-upgrade-" });
  try {
    await Deno.writeTextFile(
      `${dir}/node.json`,
      JSON.stringify({
        id: "0",
        cluster: "",
        incarnation: "me",
        created: "bootstrap",
        members: { "1": "one" },
      }),
    );
    const node = await NodeIdentity.open(dir, { id: "0", members });
    // Its first removal after the upgrade retires, as on a folder made today.
    await node.applied(["0", "2"], 30, { setAt: 30 });
    assert.equal(node.knownIncarnation("1"), undefined);
    assert.equal(node.removalFloor(), 30);
    const record = JSON.parse(await Deno.readTextFile(`${dir}/node.json`));
    assert.deepEqual(record.applied, { index: 30, members: ["0", "2"] });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("identity: onRetired is told of a retired peer once its retirement is on disk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distkit-identity-onretired-" });
  try {
    const told: string[] = [];
    const node = await NodeIdentity.open(dir, { id: "0", members, onRetired: (n) => told.push(n) });
    await node.check({ node: "1", incarnation: "one", peerIncarnation: null }, "1");
    await node.applied(["0", "2"], 9, { setAt: 9 });
    await Promise.resolve();
    assert.deepEqual(told, ["1"]);
    const record = JSON.parse(await Deno.readTextFile(`${dir}/node.json`));
    assert.deepEqual(record.retired["1"].incarnations, ["one"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
