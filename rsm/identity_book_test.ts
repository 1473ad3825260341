import assert from "node:assert/strict";
import { type FolderRecord, IdentityBook } from "./identity_book.ts";

const ids = ["0", "1", "2", "3"];

function book(id: string, extra: Partial<FolderRecord> = {}): IdentityBook {
  return new IdentityBook({
    id,
    cluster: "",
    incarnation: `${id}-a`,
    created: "bootstrap",
    members: {},
    applied: { index: 0, members: ["0", "1", "2"] },
    ...extra,
  }, { members: ids, dir: `data/${id}` });
}

const hello = (node: string, incarnation: string, peerIncarnation: string | null = null) => ({
  node,
  incarnation,
  peerIncarnation,
});

Deno.test("identity book: only a removal retires; a spare never added is not retired by an unrelated change", () => {
  const b = book("0");
  assert.equal(b.check(hello("1", "1-a"), "1"), undefined);
  assert.equal(b.check(hello("3", "3-a"), "3"), undefined, "a spare met before it is added");
  b.applied(["0", "1", "2"], 5); // node 3 was never a member: nothing to retire
  assert.equal(b.known("3"), "3-a");
  b.applied(["0", "2", "3"], 7); // node 1 removed
  assert.equal(b.known("1"), undefined);
  assert.match(b.check(hello("1", "1-a"), "1")!, /was removed from the cluster/);
  assert.equal(
    b.check(hello("3", "3-a"), "3"),
    undefined,
    "the spare, now added, is still accepted",
  );
  b.applied(["0", "2"], 6);
  assert.equal(
    b.known("3"),
    "3-a",
    "a membership at or below the last applied one changes nothing",
  );
  assert.ok(b.take());
  assert.equal(b.take(), false);
});

Deno.test("identity book: a node that missed a replacement learns the removal from a peer that applied it", () => {
  // Node 2 applied the removal of node 1's old folder (index 9) and met the new one.
  const applier = book("2");
  applier.check(hello("1", "1-a"), "1");
  applier.applied(["0", "2"], 9);
  applier.applied(["0", "1", "2"], 11);
  assert.equal(applier.check(hello("1", "1-b"), "1"), undefined);
  // Node 0 was away (or caught up by a snapshot past both changes): it knows the old folder.
  const away = book("0");
  away.check(hello("1", "1-a"), "1");
  away.applied(["0", "1", "2"], 11);
  assert.match(away.check(hello("1", "1-b"), "1")!, /knows node 1 as incarnation 1-a/);
  away.learn("2", applier.describe());
  assert.equal(away.known("1"), "1-b", "the removal heard first, then the new incarnation");
  assert.equal(away.check(hello("1", "1-b"), "1"), undefined);
  assert.match(away.check(hello("1", "1-a"), "1")!, /was removed from the cluster/);
});

Deno.test("identity book: a removal heard already is not applied again to a newer incarnation", () => {
  const lagging = book("0");
  // It hears of the removal at index 9 and of the new folder together, before it applies index 9.
  lagging.learn("2", {
    members: { "1": "1-b" },
    retired: { "1": { index: 9, incarnations: ["1-a"] } },
  });
  assert.equal(lagging.known("1"), "1-b");
  lagging.applied(["0", "2"], 9); // the removal, replayed from its log
  assert.equal(lagging.known("1"), "1-b", "not retired: the removal at 9 was 1-a's");
  lagging.applied(["0", "1", "2"], 11);
  assert.equal(lagging.check(hello("1", "1-b"), "1"), undefined);
});

Deno.test("identity book: a peer's view of a removal this node applied itself changes nothing", () => {
  const b = book("0");
  b.check(hello("1", "1-a"), "1");
  b.applied(["0", "2"], 9); // it retires 1-a itself
  b.check(hello("1", "1-b"), "1"); // and meets the new folder
  b.applied(["0", "1", "2"], 12);
  // A peer that met 1-b before it applied the removal at 9 retired 1-b by mistake.
  b.learn("2", { members: {}, retired: { "1": { index: 9, incarnations: ["1-b"] } } });
  assert.equal(b.known("1"), "1-b");
  // Malformed gossip is ignored.
  b.learn("2", { members: {}, retired: { "1": { index: 20, incarnations: [7] } } as never });
  assert.equal(b.known("1"), "1-b");
  // A later removal heard from a peer is taken in.
  b.learn("2", { members: {}, retired: { "1": { index: 20, incarnations: ["1-b"] } } });
  assert.equal(b.known("1"), undefined);
});

Deno.test("identity book: a bootstrap folder that a peer knows under another incarnation stops; a retired name does not stop it", () => {
  const b = book("1", { incarnation: "1-b" });
  b.learn("2", { members: {}, retired: { "1": { index: 9, incarnations: ["1-a"] } } });
  assert.match(b.check(hello("0", "0-a", "1-a"), "0")!, /a predecessor removed from the cluster/);
  assert.equal(b.conflict, undefined);
  assert.match(b.check(hello("0", "0-a", "1-x"), "0")!, /has stopped/);
  assert.match(b.conflict!.message, /had state in this cluster and lost it/);
  assert.match(b.check(hello("2", "2-a", "1-b"), "2")!, /has stopped/, "and refuses everyone");
});

Deno.test("identity book: removalFloor is the latest removal known, applied or heard", () => {
  const b = book("0");
  assert.equal(b.removalFloor(), 0);
  b.check(hello("1", "1-a"), "1");
  b.applied(["0", "2"], 9);
  assert.equal(b.removalFloor(), 9);
  b.learn("2", { members: {}, retired: { "3": { index: 40, incarnations: ["3-a"] } } });
  assert.equal(b.removalFloor(), 40, "a removal its log lacks: it must not campaign before 40");
});

Deno.test("identity book: a snapshot past a removal and a re-add does not retire the new folder it heard of", () => {
  const b = book("3");
  b.check(hello("0", "0-a"), "0");
  // The removal of 0-a (index 20) and the new folder 0-b, heard from a peer.
  b.learn("4", { members: { "0": "0-b" }, retired: { "0": { index: 20, incarnations: ["0-a"] } } });
  assert.equal(b.known("0"), "0-b");
  // A snapshot at 138 whose membership is the one of index 20 (node 0 not added back yet).
  b.applied(["1", "2", "3", "4"], 138);
  assert.equal(b.known("0"), "0-b", "the removal at 20 was 0-a's, not 0-b's");
  b.applied(["0", "1", "2", "3", "4"], 142);
  assert.equal(b.check(hello("0", "0-b"), "0"), undefined);
  // An entry that removes it later does retire it.
  b.applied(["1", "2", "3", "4"], 150);
  assert.equal(b.known("0"), undefined);
});

Deno.test("identity book: a snapshot that says where its membership was set retires at that index", () => {
  // Heard of the removal at 20 and of the new folder; a snapshot at 138 set at 20: nothing new.
  const b = book("3");
  b.check(hello("0", "0-a"), "0");
  b.learn("4", { members: { "0": "0-b" }, retired: { "0": { index: 20, incarnations: ["0-a"] } } });
  b.applied(["1", "2", "3", "4"], 138, { setAt: 20 });
  assert.equal(b.known("0"), "0-b");
  // A second removal (at 150) that a snapshot at 160 carries it past: 0-b is retired too.
  b.applied(["0", "1", "2", "3", "4"], 142, { setAt: 142 });
  b.applied(["1", "2", "3", "4"], 160, { setAt: 150 });
  assert.equal(b.known("0"), undefined);
  assert.equal(b.removalFloor(), 150);
  assert.match(b.check(hello("0", "0-b"), "0")!, /was removed from the cluster/);
});

Deno.test("identity book: takeRetired names each node whose known folder was retired, applied or heard, once", () => {
  const b = book("0");
  b.check(hello("1", "1-a"), "1");
  b.check(hello("2", "2-a"), "2");
  assert.deepEqual(b.takeRetired(), []);
  b.applied(["0", "2"], 9);
  b.learn("3", { members: {}, retired: { "2": { index: 12, incarnations: ["2-a"] } } });
  assert.deepEqual(b.takeRetired().sort(), ["1", "2"]);
  assert.deepEqual(b.takeRetired(), []);
});

Deno.test("identity book: a binding undoes a wrong retirement of the bound folder, not a later removal", () => {
  const binds = (one: string) => ({ bindings: { "0": "0-a", "1": one, "2": "2-a" } });
  // Node 0 never met node 1's old folder (1-a), and met the new one (1-b) before it applied the
  // removal of the old one (index 9): the removal retires what it knew by then (trust on first use).
  const b = book("0");
  assert.equal(b.check(hello("1", "1-b"), "1"), undefined);
  b.applied(["0", "2"], 9);
  assert.match(b.check(hello("1", "1-b"), "1")!, /was removed from the cluster/, "wrongly retired");
  // The membership that promoted the new folder (index 12) binds node 1 to 1-b: accepted again.
  b.applied(["0", "1", "2"], 12, binds("1-b"));
  assert.equal(b.check(hello("1", "1-b"), "1"), undefined);
  assert.equal(b.known("1"), "1-b");
  assert.match(
    b.check(hello("1", "1-a"), "1")!,
    /knows node 1 as incarnation 1-b/,
    "any other folder stays out",
  );
  // 1-b is replaced by 1-c (removed at 15, promoted at 18); a restart replays index 12: its
  // binding of 1-b is not taken again.
  b.applied(["0", "2"], 15);
  b.applied(["0", "1", "2"], 18, binds("1-c"));
  b.takeRetired();
  b.applied(["0", "1", "2"], 12, binds("1-b"));
  assert.equal(b.known("1"), "1-c");
  assert.deepEqual(b.takeRetired(), [], "1-c's connections stay open");
  // A removal heard from a peer (index 20) stands against a binding set before it (12).
  const away = book("2", { applied: { index: 5, members: ["0", "1", "2"] } });
  away.learn("0", { members: {}, retired: { "1": { index: 20, incarnations: ["1-a", "1-b"] } } });
  away.applied(["0", "1", "2"], 12, binds("1-b"));
  assert.match(away.check(hello("1", "1-b"), "1")!, /was removed from the cluster/);
  // A folder known by first contact gives way to the bound one, and its connections close.
  const c = book("2");
  c.check(hello("3", "3-x"), "3");
  c.takeRetired();
  c.applied(["0", "1", "2", "3"], 20, { bindings: { "3": "3-y" } });
  assert.equal(c.known("3"), "3-y");
  assert.deepEqual(c.takeRetired(), ["3"]);
});

Deno.test("identity book: a peer that dialed another member at this address is refused, and this node serves on", () => {
  // Node 2 started with --peers in another order: it dials node 0 at node 1's address, and says
  // it knows the other end as node 0's incarnation. That is its mistake, not a lost folder here.
  const b = book("1", { members: { "0": "0-a", "2": "2-a" } });
  // It says whom it dialled: refused on that alone, whatever incarnation it knows that node by
  // (this one may never have met it: a spare, say).
  for (const peerIncarnation of ["0-a", "3-a", null]) {
    const misdial = { ...hello("2", "2-a", peerIncarnation), peerNode: "0" };
    assert.match(b.check(misdial, undefined)!, /node 2 dialled node 0 at this address/);
  }
  // An older node does not say: an incarnation this node knows another member by tells it.
  const reason = b.check(hello("2", "2-a", "0-a"), undefined);
  assert.match(
    reason!,
    /node 2 dialled node 0 \(incarnation 0-a\) at this address, which is node 1's/,
  );
  assert.match(reason!, /same --peers list, in the same order/);
  assert.equal(b.conflict, undefined, "a misdialed peer must not stop a healthy node");
  assert.equal(b.check(hello("0", "0-a", "1-a"), undefined), undefined, "it serves the others");
  assert.equal(b.check({ ...hello("0", "0-a", "1-a"), peerNode: "1" }, undefined), undefined);
  assert.equal(b.check(hello("2", "2-a", "1-a"), undefined), undefined, "and node 2 dialing it");
  // An incarnation no member is known by still means this folder was lost and made again.
  assert.match(b.check(hello("2", "2-a", "1-old"), undefined)!, /has stopped/);
});
