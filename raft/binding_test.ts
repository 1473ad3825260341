/**
 * Folder bindings (`CoreOptions.incarnation`, `Membership.bindings`): a voter
 * is counted only as the data folder its membership binds, so a node that
 * lost its folder (a new incarnation) is not counted in the old folder's place.
 */
import assert from "node:assert/strict";
import { Random } from "../net/random.ts";
import { RaftCore } from "./core.ts";
import type { CoreOptions } from "./core_options.ts";
import type { Message, NodeId } from "./types.ts";

/** Cores by id, and messages moved by hand between those not cut off. */
class Cluster {
  readonly cores = new Map<NodeId, RaftCore>();
  readonly cut = new Set<NodeId>();
  #seed = 1;

  constructor(voters: NodeId[], options: (id: NodeId) => CoreOptions | undefined) {
    for (const id of voters) this.start(id, voters, options(id));
  }

  /** Starts (or replaces) `id` on an empty folder whose founding membership is `voters`. */
  start(id: NodeId, voters: NodeId[], options: CoreOptions = {}): RaftCore {
    const core = new RaftCore(id, {
      hardState: { term: 0, vote: null, commit: 0 },
      snapshot: {
        meta: { index: 0, term: 0, membership: { voters, learners: [] } },
        data: new Uint8Array(),
      },
      entries: [],
    }, { random: new Random(this.#seed++), ...options });
    this.cores.set(id, core);
    return core;
  }

  get(id: NodeId): RaftCore {
    return this.cores.get(id)!;
  }

  /** Takes every ready (its writes count as done) and delivers the messages, until quiet. */
  settle(): void {
    for (let round = 0; round < 200; round++) {
      const out: Message[] = [];
      for (const core of this.cores.values()) {
        if (!core.hasReady()) continue;
        const rd = core.ready();
        core.persisted(rd.lastIndex, rd.lastTerm);
        out.push(...rd.messages);
      }
      if (out.length === 0) return;
      for (const m of out) {
        if (this.cut.has(m.from) || this.cut.has(m.to)) continue;
        this.cores.get(m.to)?.step(m);
      }
    }
    throw new Error("no quiescence");
  }

  /** Ticks `id` until it campaigns, then settles; returns whether it won. */
  campaign(id: NodeId): boolean {
    const core = this.get(id);
    for (let i = 0; i < 100 && core.role === "follower"; i++) core.tick();
    this.settle();
    return core.role === "leader";
  }

  /** Ticks the leader (its binder runs on ticks) and settles. */
  tickLeader(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) {
      this.get(id).tick();
      this.settle();
    }
  }
}

const withFolders = (id: NodeId): CoreOptions => ({ incarnation: `${id}#1` });

/** a leads a, b, c (every folder its first), has bound all three, and committed `x`. */
function boundCluster(options: (id: NodeId) => CoreOptions | undefined = withFolders): Cluster {
  const net = new Cluster(["a", "b", "c"], options);
  assert.ok(net.campaign("a"));
  net.tickLeader("a", 2);
  net.get("a").propose("x");
  net.tickLeader("a", 2); // heartbeats tell the followers the commit index
  return net;
}

Deno.test("core: bindings: a leader binds the founding voters it heard from, once its no-op commits", () => {
  const net = boundCluster();
  const a = net.get("a");
  assert.deepEqual(a.membership.bindings, { a: "a#1", b: "b#1", c: "c#1" });
  for (const id of ["b", "c"]) {
    assert.deepEqual(net.get(id).membership, a.membership, `${id} has the binding`);
    assert.equal(
      net.get(id).commitIndex,
      a.commitIndex,
      `${id}: ${net.get(id).commitIndex} ${a.commitIndex} ${a.lastIndex}`,
    );
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
function staleCandidateScenario(options: (id: NodeId) => CoreOptions | undefined) {
  const net = boundCluster(options);
  net.cut.add("c");
  net.get("a").propose("y");
  net.tickLeader("a", 2);
  const committed = net.get("a").commitIndex;
  assert.equal(net.get("b").commitIndex, committed, "y is committed with a and b");
  const replaced = options("b") === undefined ? undefined : { incarnation: "b#2" };
  net.start("b", ["a", "b", "c"], replaced);
  net.cut.clear();
  net.cut.add("a");
  return { net, committed, won: net.campaign("c") };
}

Deno.test("core: bindings: a stale candidate does not count the vote of a replaced folder", () => {
  const { net, committed, won } = staleCandidateScenario(withFolders);
  assert.equal(won, false, "c has no majority: b's new folder is not the one bound");
  assert.ok(net.get("c").lastIndex < committed, "c's log lacks y");
  // The same history without folder bindings: c wins with the empty folder's vote and y is gone.
  const plain = staleCandidateScenario(() => undefined);
  assert.equal(plain.won, true, "without bindings the stale candidate wins");
  plain.net.get("c").propose("z");
  plain.net.settle();
  assert.notEqual(plain.net.get("b").termAt(plain.committed), net.get("a").termAt(committed));
});

Deno.test("core: bindings: a leader does not count acknowledgements of a replaced folder", () => {
  const net = boundCluster();
  const a = net.get("a");
  net.cut.add("c");
  net.start("b", ["a", "b", "c"], { incarnation: "b#2" });
  a.propose("y");
  net.settle();
  net.tickLeader("a", 3);
  const y = a.lastIndex;
  assert.ok(a.commitIndex < y, "y is not committed on the word of b's new folder");
  // c comes back: a and c commit it.
  net.cut.clear();
  net.tickLeader("a", 3);
  assert.equal(a.commitIndex, a.lastIndex);
});

Deno.test("core: bindings: promotion binds the folder heard; a removal drops the binding", () => {
  const net = boundCluster();
  const a = net.get("a");
  assert.deepEqual(
    a.proposeMembership({ type: "addVoter", node: "d" }),
    { reason: "folder-unheard", leader: "a" },
    "a voter is bound to the folder its leader hears; d was never heard",
  );
  net.start("d", [], { incarnation: "d#1", joined: true });
  assert.ok(!("reason" in a.proposeMembership({ type: "addLearner", node: "d" })));
  net.tickLeader("a", 2);
  assert.equal(a.membership.bindings?.d, undefined, "a learner is not bound");
  assert.ok(!("reason" in a.proposeMembership({ type: "addVoter", node: "d" })));
  net.tickLeader("a", 2);
  assert.equal(a.membership.bindings?.d, "d#1", "bound to the folder the leader heard");
  assert.deepEqual(net.get("d").membership, a.membership);
  assert.ok(!("reason" in a.proposeMembership({ type: "remove", node: "d" })));
  net.tickLeader("a", 2);
  assert.equal(a.membership.bindings?.d, undefined);
  assert.deepEqual(Object.keys(a.membership.bindings ?? {}).sort(), ["a", "b", "c"]);
});

/**
 * p campaigns in its founding membership {p, q, d}, not bound yet, with q
 * away; d answers from a folder that `joined` (or not). Returns whether p won.
 */
function foundingSlotVote(joined: boolean): boolean {
  const net = new Cluster([], () => undefined);
  net.start("p", ["p", "q", "d"], { incarnation: "p#1", preVote: false });
  net.start("d", ["p", "q", "d"], { incarnation: "d#2", joined });
  net.cut.add("q");
  return net.campaign("p");
}

Deno.test("core: bindings: a joining folder's vote does not count in a founding voter's unbound place", () => {
  assert.equal(foundingSlotVote(true), false, "d's folder joined: not the founding d");
  assert.equal(foundingSlotVote(false), true, "a founding folder's vote counts");
});

Deno.test("core: bindings: a joining folder campaigns only once its membership binds it", () => {
  const net = new Cluster([], () => undefined);
  const d = net.start("d", ["d"], { incarnation: "d#2", joined: true });
  for (let i = 0; i < 100; i++) d.tick();
  assert.equal(d.role, "follower", "its membership names d, but not this folder");
  const founding = new Cluster([], () => undefined).start("d", ["d"], { incarnation: "d#1" });
  for (let i = 0; i < 100 && founding.role === "follower"; i++) founding.tick();
  assert.notEqual(founding.role, "follower", "a founding folder campaigns");
});
