/**
 * What distkit's Raft does beyond the course's lab, tested on whole nodes in
 * simulation: PreVote and CheckQuorum, ReadIndex reads, leadership transfer,
 * and membership changes with learners.
 */
import assert from "node:assert/strict";
import { simulate } from "../net/mod.ts";
import {
  MembershipBusyError,
  NotLeaderError,
  type RaftObserver,
  RaftRequestError,
} from "../raft/mod.ts";
import { Cluster, type ClusterOptions } from "./raft_cluster.ts";

function featureTest(
  name: string,
  n: number,
  options: ClusterOptions,
  body: (cfg: Cluster) => Promise<void>,
) {
  Deno.test(`raft: ${name}`, async () => {
    await simulate(async (sim) => {
      const cfg = await Cluster.start(sim, n, options);
      try {
        await body(cfg);
      } finally {
        await cfg.cleanup();
      }
    }, { limitMs: 10 * 60_000 });
  });
}

featureTest(
  "PreVote: a partitioned node that rejoins does not disrupt a healthy leader",
  5,
  {},
  async (cfg) => {
    const leader = await cfg.checkOneLeader();
    const term = cfg.node(leader).status().term;
    const loner = (leader + 1) % 5;
    cfg.disconnect(loner);
    await cfg.sleep(10_000); // many election timeouts: without PreVote its term would climb
    assert.equal(cfg.node(loner).status().term, term, "the isolated node's term grew");
    cfg.connect(loner);
    await cfg.one(42, 5, true);
    assert.equal(await cfg.checkOneLeader(), leader, "the leader changed");
    assert.equal(cfg.node(leader).status().term, term, "the term changed");
  },
);

featureTest("CheckQuorum: a leader cut off from its quorum steps down", 3, {}, async (cfg) => {
  const leader = await cfg.checkOneLeader();
  cfg.disconnect(leader);
  await cfg.sleep(2_500); // up to two election timeouts
  assert.notEqual(
    cfg.node(leader).status().role,
    "leader",
    "a leader without a quorum kept leading",
  );
  await assert.rejects(cfg.node(leader).propose(1), NotLeaderError);
});

featureTest(
  "ReadIndex: reads are confirmed by a quorum, refused on followers and cut-off leaders",
  3,
  {},
  async (cfg) => {
    await cfg.one(1, 3, true);
    const leader = await cfg.checkOneLeader();
    const written = await cfg.one(2, 3, true);
    const index = await cfg.node(leader).readIndex();
    assert.ok(
      index >= written,
      `read index ${index} is before the acknowledged write at ${written}`,
    );
    const follower = (leader + 1) % 3;
    await assert.rejects(cfg.node(follower).readIndex(), NotLeaderError);
    // A leader cut off from the others cannot confirm a read: it is refused once it steps down.
    cfg.disconnect(leader);
    const pending = cfg.node(leader).readIndex().then(() => "confirmed", (e) => e);
    await cfg.sleep(3_000);
    const outcome = await pending;
    assert.ok(outcome instanceof NotLeaderError, `a cut-off leader answered a read: ${outcome}`);
    // The majority elects a new leader that serves reads after its own writes.
    const leader2 = await cfg.checkOneLeader();
    const after = await cfg.one(3, 2, true);
    assert.ok((await cfg.node(leader2).readIndex()) >= after);
  },
);

featureTest("leadership transfer hands over to a chosen voter", 5, {}, async (cfg) => {
  await cfg.one(1, 5, true);
  const leader = await cfg.checkOneLeader();
  const target = (leader + 2) % 5;
  await cfg.node(leader).transferLeadership(String(target));
  assert.equal(cfg.node(target).status().role, "leader");
  assert.equal(await cfg.checkOneLeader(), target);
  await cfg.one(2, 5, true);
  await assert.rejects(cfg.node(target).transferLeadership("nobody"), RaftRequestError);
});

featureTest("membership: a learner catches up, then votes; a removed leader steps down", 4, {
  initialVoters: 3,
}, async (cfg) => {
  for (let i = 0; i < 20; i++) await cfg.one(100 + i, 3, true);
  const leader = await cfg.checkOneLeader();
  await cfg.node(leader).addVoter("3");
  assert.deepEqual([...cfg.node(leader).status().membership.voters].sort(), ["0", "1", "2", "3"]);
  // The new voter has the whole log and counts for commits.
  await cfg.one(200, 4, true);
  // A second change while one is pending is refused; one at a time.
  const removeLeader = cfg.node(leader).changeMembership({ type: "remove", node: String(leader) });
  await assert.rejects(
    cfg.node(leader).changeMembership({ type: "addLearner", node: "9" }),
    RaftRequestError,
  );
  await removeLeader;
  await cfg.sleep(100);
  assert.notEqual(cfg.node(leader).status().role, "leader", "a removed leader kept leading");
  // The remaining three elect a leader and commit without the removed node.
  cfg.disconnect(leader);
  const leader2 = await cfg.checkOneLeader();
  assert.notEqual(leader2, leader);
  await cfg.one(300, 3, true);
  assert.ok(!cfg.node(leader2).status().membership.voters.includes(String(leader)));
});

Deno.test("raft: membership: a new leader refuses a change until its no-op commits (retryable), then takes it", async () => {
  await simulate(async (sim) => {
    // Ask every new leader for a change the moment it is elected.
    const refusals: unknown[] = [];
    // Set once started; a leader may be elected before Cluster.start returns.
    const started: { cfg?: Cluster } = {};
    const observer: RaftObserver = {
      leader: (node) =>
        queueMicrotask(() => {
          started.cfg?.node(Number(node)).changeMembership({ type: "addLearner", node: "3" }).then(
            () => refusals.push("accepted"),
            (err) => refusals.push(err),
          );
        }),
    };
    const cfg = started.cfg = await Cluster.start(sim, 4, { initialVoters: 3, node: { observer } });
    try {
      const leader = await cfg.checkOneLeader();
      assert.ok(refusals.length > 0, "no leader was elected");
      const first = refusals[0];
      assert.ok(first instanceof MembershipBusyError, `a change before the no-op: ${first}`);
      assert.equal(first.reason, "term-not-committed");
      assert.equal(first.retryable, true);
      assert.ok(first instanceof RaftRequestError);
      // Nothing was proposed; once the no-op commits the same change goes through.
      assert.deepEqual(cfg.node(leader).status().membership.learners, []);
      await cfg.node(leader).addVoter("3");
      assert.deepEqual(cfg.node(leader).status().membership.voters, ["0", "1", "2", "3"]);
      await cfg.one(7, 4, true);
    } finally {
      await cfg.cleanup();
    }
  }, { limitMs: 10 * 60_000 });
});

for (const snapshotEvery of [undefined, 5]) {
  featureTest(
    `an idle cluster repairs a follower restarted with an empty log, with no client writes${
      snapshotEvery ? " (by snapshot)" : ""
    }`,
    3,
    { snapshotEvery },
    async (cfg) => {
      for (let k = 1; k <= 12; k++) await cfg.one(k, 3, true);
      const leader = await cfg.checkOneLeader();
      const follower = (leader + 1) % 3;
      const commit = cfg.node(leader).status().commitIndex;
      await cfg.wipe(follower);
      await cfg.startServer(follower);
      cfg.connect(follower);
      assert.equal(cfg.node(follower).status().appliedIndex, 0);
      // Nothing is proposed from here on: heartbeats alone must bring it back.
      await cfg.sleep(5_000);
      assert.equal(cfg.node(leader).status().role, "leader", "the leader changed");
      assert.equal(
        cfg.node(follower).status().appliedIndex,
        commit,
        "the wiped follower did not catch up while the cluster was idle",
      );
      assert.equal(cfg.node(leader).status().commitIndex, commit, "something was proposed");
    },
  );
}
