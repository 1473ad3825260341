/**
 * Folder bindings (`CoreOptions.incarnation`, `Membership.bindings`): a voter
 * is counted only as the data folder its membership binds, so a node that
 * lost its folder (a new incarnation) is not counted in the old folder's place.
 */
import assert from "node:assert/strict";
import type { RaftCore } from "./core.ts";
import type { CoreOptions } from "./core_options.ts";
import { RaftInvariantError } from "./invariant.ts";
import { RaftLog } from "./log.ts";
import { isRefusal, makeCore, Net } from "./test_util.ts";
import type { Entry, NodeId } from "./types.ts";

const VOTERS = ["a", "b", "c"];
const firstFolder = (id: NodeId): CoreOptions => ({ incarnation: `${id}#1` });

/** a leads a, b, c (each on its first folder, or none), has bound all three, and committed `x`. */
function boundCluster(options: (id: NodeId) => CoreOptions | undefined = firstFolder): Net {
  const specs = Object.fromEntries(VOTERS.map((id) => [id, { options: options(id) }]));
  const net = new Net(VOTERS, { specs });
  net.elect("a");
  tickLeader(net, "a", 2); // the binding entry, on a tick once the no-op committed
  net.get("a").propose("x");
  tickLeader(net, "a", 2); // heartbeats tell the followers the commit index
  return net;
}

/** Ticks `id` (its binder runs on ticks) and settles, `times` times. */
function tickLeader(net: Net, id: NodeId, times = 1): void {
  for (let i = 0; i < times; i++) {
    net.get(id).tick();
    net.settle();
  }
}

let seed = 100;
/** Starts `id` on an empty folder whose founding membership is `voters` (replacing any core of `id`). */
function start(net: Net, id: NodeId, voters: NodeId[], options?: CoreOptions): RaftCore {
  const core = makeCore(id, voters, [], { options }, {}, seed++);
  net.add(core);
  return core;
}

/** Ticks `id` until it campaigns (at most 100 ticks), then settles; whether it won. */
function campaign(net: Net, id: NodeId): boolean {
  const core = net.get(id);
  for (let i = 0; i < 100 && core.role === "follower"; i++) core.tick();
  net.settle();
  return core.role === "leader";
}

Deno.test("core: bindings: a leader binds the founding voters it heard from, once its no-op commits", () => {
  const net = boundCluster();
  const a = net.get("a");
  assert.deepEqual(a.membership.bindings, { a: "a#1", b: "b#1", c: "c#1" });
  for (const id of ["b", "c"]) {
    assert.deepEqual(net.get(id).membership, a.membership, `${id} has the binding`);
    assert.equal(net.get(id).commitIndex, a.commitIndex);
  }
  // Without incarnations nothing is bound, and no entry is spent on it.
  const plain = boundCluster(() => undefined);
  assert.equal(plain.get("a").membership.bindings, undefined);
  assert.equal(plain.get("a").lastIndex, 2, "the no-op and x");
});

/**
 * c is away while a and b commit y; b's folder is lost and b comes back on an
 * empty one (a new incarnation); a is away. c's log lacks y, and the empty b
 * would vote for it: counted in the lost folder's place, c would win and
 * overwrite y.
 */
function staleCandidate(options: (id: NodeId) => CoreOptions | undefined) {
  const net = boundCluster(options);
  const a = net.get("a");
  net.cut.add("c");
  a.propose("y");
  tickLeader(net, "a", 2);
  const y = { index: a.lastIndex, term: a.termAt(a.lastIndex)! };
  assert.equal(a.commitIndex, y.index, "y is committed with a and b");
  start(net, "b", VOTERS, options("b") && { incarnation: "b#2" });
  net.cut.clear();
  net.cut.add("a");
  const won = campaign(net, "c");
  if (won) {
    net.get("c").propose("z");
    tickLeader(net, "c", 2);
  }
  return { net, y, won };
}

Deno.test("core: bindings: a stale candidate does not count the vote of a replaced folder", () => {
  const { net, y, won } = staleCandidate(firstFolder);
  assert.equal(won, false, "c has no majority: b's new folder is not the one bound");
  assert.ok(net.get("c").lastIndex < y.index, "c's log lacks y");
  // The same history without folder bindings: c wins with the empty folder's vote, and y,
  // committed, is overwritten on c and b.
  const plain = staleCandidate(() => undefined);
  assert.equal(plain.won, true, "without bindings the stale candidate wins");
  const c = plain.net.get("c");
  assert.ok(c.commitIndex >= plain.y.index);
  assert.notEqual(c.termAt(plain.y.index), plain.y.term, "y is gone");
});

Deno.test("core: bindings: a leader does not count acknowledgements of a replaced folder", () => {
  const net = boundCluster();
  const a = net.get("a");
  net.cut.add("c");
  start(net, "b", VOTERS, { incarnation: "b#2" });
  a.propose("y");
  tickLeader(net, "a", 3);
  assert.ok(a.commitIndex < a.lastIndex, "y is not committed on the word of b's new folder");
  net.cut.clear(); // c is back: a and c commit it
  tickLeader(net, "a", 3);
  assert.equal(a.commitIndex, a.lastIndex);
});

Deno.test("core: bindings: promotion binds the folder heard since the re-add; a removal drops the binding", () => {
  const net = boundCluster();
  const a = net.get("a");
  assert.deepEqual(
    a.proposeMembership({ type: "addVoter", node: "d" }),
    { reason: "folder-unheard", leader: "a" },
    "a voter is bound to the folder its leader hears; d was never heard",
  );
  // b's folder b#1 is removed and b added back as a learner before its new folder answers:
  // b#1, heard before the removal, is not the folder to bind.
  assert.ok(!isRefusal(a.proposeMembership({ type: "remove", node: "b" })));
  tickLeader(net, "a", 2);
  net.cores.delete("b");
  assert.ok(!isRefusal(a.proposeMembership({ type: "addLearner", node: "b" })));
  tickLeader(net, "a", 2);
  assert.deepEqual(a.proposeMembership({ type: "addVoter", node: "b" }), {
    reason: "folder-unheard",
    leader: "a",
  });
  start(net, "b", [], { incarnation: "b#2", joined: true });
  tickLeader(net, "a", 3);
  assert.ok(!isRefusal(a.proposeMembership({ type: "addVoter", node: "b" })));
  tickLeader(net, "a", 2);
  assert.equal(a.membership.bindings?.b, "b#2", "bound to the folder that answered as a learner");
  assert.deepEqual(net.get("b").membership, a.membership);
  assert.ok(!isRefusal(a.proposeMembership({ type: "remove", node: "b" })));
  tickLeader(net, "a", 2);
  assert.equal(a.membership.bindings?.b, undefined);
  assert.deepEqual(Object.keys(a.membership.bindings ?? {}).sort(), ["a", "c"]);
});

Deno.test("core: bindings: addVoter on a voter keeps its folder, heard or not", () => {
  const net = boundCluster();
  const a = net.get("a");
  // b's folder b#1 is cut off, and b is started again on a new folder that a hears from.
  const b1 = net.get("b");
  start(net, "b", [], { incarnation: "b#2", joined: true });
  tickLeader(net, "a", 2);
  assert.ok(!isRefusal(a.proposeMembership({ type: "addVoter", node: "b" })));
  tickLeader(net, "a", 2);
  assert.equal(a.membership.bindings?.b, "b#1", "not swapped for b#2 in one entry");
  // A new leader that has heard nothing from b yet: the promotion again keeps b's folder.
  net.add(b1);
  net.cut.add("b");
  assert.equal(a.transferLeadership("c"), undefined);
  tickLeader(net, "a", 5);
  const c = net.get("c");
  assert.equal(c.role, "leader");
  tickLeader(net, "c", 2);
  assert.ok(!isRefusal(c.proposeMembership({ type: "addVoter", node: "b" })));
  tickLeader(net, "c", 2);
  assert.equal(c.membership.bindings?.b, "b#1", "not unbound by a leader that has not heard it");
  // b#1 is back and a is gone: c and b#1 commit.
  net.cut.clear();
  net.cut.add("a");
  c.propose("y");
  tickLeader(net, "c", 3);
  assert.equal(c.commitIndex, c.lastIndex);
});

Deno.test("core: bindings: a log never takes a membership entry that swaps or drops a voter's folder", () => {
  const bound = { voters: ["a", "b"], learners: [], bindings: { a: "a#1", b: "b#1" } };
  const entry = (index: number, bindings?: Record<string, string>): Entry => ({
    index,
    term: 1,
    kind: "membership",
    membership: { voters: ["a", "b"], learners: [], ...(bindings ? { bindings } : {}) },
  });
  const meta = { index: 0, term: 0, membership: bound };
  assert.throws(
    () => new RaftLog(meta, [entry(1, { a: "a#1", b: "b#2" })]),
    RaftInvariantError,
    "swapped",
  );
  assert.throws(() => new RaftLog(meta, [entry(1, { a: "a#1" })]), RaftInvariantError, "dropped");
  // Binding an unbound voter, and dropping a voter with its binding, are fine.
  const half = { voters: ["a", "b"], learners: [], bindings: { a: "a#1" } };
  new RaftLog({ index: 0, term: 0, membership: half }, [entry(1, { a: "a#1", b: "b#1" })]);
  const removal: Entry = {
    index: 1,
    term: 1,
    kind: "membership",
    membership: { voters: ["a"], learners: [], bindings: { a: "a#1" } },
  };
  new RaftLog(meta, [removal]);
});

/**
 * p campaigns in its founding membership {p, q, d}, not bound yet, with q
 * away; d answers from a folder that `joined` (or not). Whether p won.
 */
function foundingSlotVote(joined: boolean): boolean {
  const net = new Net([]);
  start(net, "p", ["p", "q", "d"], { incarnation: "p#1", preVote: false });
  start(net, "d", ["p", "q", "d"], { incarnation: "d#2", joined });
  net.cut.add("q");
  return campaign(net, "p");
}

Deno.test("core: bindings: a joining folder's vote does not count in a founding voter's unbound place", () => {
  assert.equal(foundingSlotVote(true), false, "d's folder joined: not the founding d");
  assert.equal(foundingSlotVote(false), true, "a founding folder's vote counts");
});

Deno.test("core: bindings: a joining folder campaigns only once its membership binds it", () => {
  const net = new Net([]);
  const joined = start(net, "d", ["d"], { incarnation: "d#2", joined: true });
  for (let i = 0; i < 100; i++) joined.tick();
  assert.equal(joined.role, "follower", "its membership names d, but not this folder");
  const founding = start(new Net([]), "d", ["d"], { incarnation: "d#1" });
  for (let i = 0; i < 100 && founding.role === "follower"; i++) founding.tick();
  assert.notEqual(founding.role, "follower", "a founding folder campaigns");
});
