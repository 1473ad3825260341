import assert from "node:assert/strict";
import { append, cmd, isRefusal, makeCore, Net, run } from "./test_util.ts";
import { AppliedLedger, RaftInvariantError } from "./invariant.ts";
import type { AppendMessage, Entry, Message, NodeId } from "./types.ts";

function appendsTo(messages: Message[], to: NodeId): AppendMessage[] {
  return messages.filter((m): m is AppendMessage => m.type === "append" && m.to === to);
}

function commands(entries: Entry[]): unknown[] {
  return entries.filter((e) => e.kind === "command").map((e) => e.command);
}

/**
 * a and c hold 1..3 of term 1 and 4..40 of term 4 (a commit index of 3);
 * b shares 1..3 and then has `bTail` of older terms: the leader must back up.
 */
function divergedAfter3(bTail: Entry[]): Net {
  const leaderLog = [...run(1, 3, 1), ...run(4, 40, 4)];
  return new Net(["a", "b", "c"], {
    specs: {
      a: { hardState: { term: 4, vote: null, commit: 3 }, entries: leaderLog },
      b: { hardState: { term: 3, vote: null, commit: 3 }, entries: [...run(1, 3, 1), ...bTail] },
      c: { hardState: { term: 4, vote: null, commit: 3 }, entries: leaderLog },
    },
  });
}

// ---- elections ----

Deno.test("core: a single voter elects itself and commits a proposal", () => {
  const a = makeCore("a", ["a"]);
  for (let i = 0; i < 30 && a.role !== "leader"; i++) a.tick();
  assert.equal(a.role, "leader");
  assert.equal(a.term, 1);
  assert.equal(a.leader, "a");
  const r = a.propose("hello");
  assert.deepEqual(r, { index: 2, term: 1 }, "index 1 is the leader's no-op");
  assert.equal(a.commitIndex, 0, "nothing commits before the leader's own write");
  const written = a.ready();
  assert.deepEqual(written.entries.map((e) => [e.index, e.kind]), [[1, "noop"], [2, "command"]]);
  assert.deepEqual(written.committed, []);
  assert.deepEqual([written.lastIndex, written.lastTerm], [2, 1]);
  a.persisted(written.lastIndex, written.lastTerm);
  assert.equal(a.commitIndex, 2);
  const rd = a.ready();
  assert.deepEqual(rd.hardState, { term: 1, vote: "a", commit: 2 });
  assert.deepEqual(rd.entries, []);
  assert.deepEqual(rd.committed.map((e) => e.index), [1, 2]);
  assert.deepEqual(commands(rd.committed), ["hello"]);
  assert.deepEqual(rd.messages, []);
  assert.equal(a.appliedIndex, 2);
  assert.equal(a.hasReady(), false);
  // A write that no longer matches the log (index 2 is not of term 9) counts for nothing.
  a.propose("again");
  const more = a.ready();
  a.persisted(more.lastIndex, 9);
  assert.equal(a.commitIndex, 2);
  a.persisted(more.lastIndex, more.lastTerm);
  assert.equal(a.commitIndex, 3);
});

Deno.test("core: three nodes elect one leader through PreVote; everyone learns it", () => {
  const net = new Net(["a", "b", "c"]);
  const a = net.get("a");
  const prevotes = net.tickUntilCampaign("a");
  assert.equal(a.role, "precandidate");
  assert.equal(a.term, 0, "a PreVote does not change the term");
  assert.deepEqual(
    prevotes.map((m) => m.type === "vote" && [m.to, m.term, m.pre, m.transfer]),
    [["b", 1, true, false], ["c", 1, true, false]],
  );
  // b and c grant the PreVote without changing their term.
  net.deliver(prevotes);
  assert.equal(net.get("b").term, 0);
  assert.equal(net.get("c").term, 0);
  const grants = net.collect();
  assert.deepEqual(
    grants.map((m) => m.type === "voteResp" && [m.from, m.term, m.pre, m.granted]),
    [["b", 1, true, true], ["c", 1, true, true]],
  );
  // One grant is a quorum: a becomes a candidate in term 1 and asks for real votes.
  net.deliver(grants.slice(0, 1));
  assert.equal(a.role, "candidate");
  assert.equal(a.term, 1);
  net.deliver(grants.slice(1)); // a late PreVote grant changes nothing
  assert.equal(a.role, "candidate");
  const votes = net.collect();
  assert.deepEqual(
    votes.map((m) => m.type === "vote" && [m.to, m.term, m.pre]),
    [["b", 1, false], ["c", 1, false]],
  );
  net.deliver(votes);
  assert.equal(net.get("b").term, 1);
  assert.equal(net.get("b").leader, null, "voting does not make a leader known");
  net.settle();
  assert.equal(a.role, "leader");
  assert.equal(a.commitIndex, 1, "a committed its no-op");
  net.tickAll(); // the heartbeat tells the followers the commit index
  for (const id of ["a", "b", "c"]) {
    const core = net.get(id);
    assert.equal(core.term, 1, id);
    assert.equal(core.leader, "a", id);
    assert.equal(core.commitIndex, 1, `${id} committed the no-op`);
  }
  assert.equal(net.get("b").role, "follower");
  // The vote was persisted before it was answered.
  const bHard = net.readies.get("b")!.find((rd) => rd.hardState?.term === 1)!;
  assert.equal(bHard.hardState!.vote, "a");
  assert.equal(bHard.messages.some((m) => m.type === "voteResp" && !m.pre && m.granted), true);
});

Deno.test("core: a (pre)candidate that a quorum rejects goes back to follower", () => {
  // b and c are in a's term but their logs are ahead: they refuse a's PreVote.
  const hs = { term: 1, vote: null, commit: 0 };
  const net = new Net(["a", "b", "c"], {
    specs: {
      a: { hardState: hs },
      b: { hardState: hs, entries: [cmd(1, 1)] },
      c: { hardState: hs, entries: [cmd(1, 1)] },
    },
  });
  const a = net.get("a");
  net.deliver(net.tickUntilCampaign("a"));
  assert.equal(a.role, "precandidate");
  const refusals = net.collect();
  assert.deepEqual(
    refusals.map((m) => m.type === "voteResp" && [m.from, m.term, m.pre, m.granted]),
    [["b", 1, true, false], ["c", 1, true, false]],
  );
  net.deliver(refusals.slice(0, 1));
  assert.equal(a.role, "precandidate", "one refusal of three is not yet a lost election");
  net.deliver(refusals.slice(1));
  assert.equal(a.role, "follower");
  assert.equal(a.term, 1, "never campaigned for real");
  // Same without PreVote: a real candidate that loses.
  const net2 = new Net(["a", "b", "c"], {
    specs: {
      a: { hardState: hs },
      b: { hardState: hs, entries: [cmd(1, 1)] },
      c: { hardState: hs, entries: [cmd(1, 1)] },
    },
    options: { preVote: false },
  });
  const a2 = net2.get("a");
  net2.deliver(net2.tickUntilCampaign("a"));
  assert.equal(a2.role, "candidate");
  assert.equal(a2.term, 2);
  net2.settle();
  assert.equal(a2.role, "follower");
  assert.equal(a2.term, 2);
  assert.equal(a2.leader, null);
});

Deno.test("core: PreVote keeps an isolated node's term, so it cannot disrupt the leader when it rejoins", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  const c = net.get("c");
  const term = a.term;
  net.cut.add("c");
  for (let i = 0; i < 100; i++) net.tickAll();
  const cPrevotes = net.dropped.filter((m) => m.from === "c" && m.type === "vote");
  assert.ok(cPrevotes.length >= 6, `c campaigned repeatedly (${cPrevotes.length} vote requests)`);
  assert.deepEqual(
    new Set(cPrevotes.map((m) => m.type === "vote" && `pre=${m.pre} term=${m.term}`)),
    new Set([`pre=true term=${term + 1}`]),
    "every one a PreVote for the next term",
  );
  assert.equal(c.role, "precandidate");
  assert.equal(c.term, term, "c's term did not grow");
  assert.equal(a.role, "leader");
  assert.equal(a.term, term);
  // c rejoins: its PreVote reaches a and b first; both still hear from the leader.
  net.cut.delete("c");
  net.deliver([cPrevotes.at(-1)!, { ...cPrevotes.at(-1)!, to: "b" } as Message]);
  const answers = net.collect().filter((m) => m.type === "voteResp");
  assert.deepEqual(answers, [], "a live leader's followers ignore the PreVote");
  net.tickAll();
  net.tickAll();
  assert.equal(a.role, "leader");
  assert.equal(a.term, term, "the leader's term stays the same");
  assert.equal(c.role, "follower");
  assert.equal(c.leader, "a");
  assert.equal(c.term, term);
});

Deno.test("core: without PreVote an isolated node's term grows (control for the PreVote test)", () => {
  const net = new Net(["a", "b", "c"], { options: { preVote: false } });
  net.elect("a");
  const term = net.get("a").term;
  net.cut.add("c");
  for (let i = 0; i < 100; i++) net.tickAll();
  assert.ok(net.get("c").term >= term + 3, `term ${net.get("c").term}`);
  assert.equal(net.get("c").role, "candidate");
});

Deno.test("core: followers told their leader is gone elect another after a tick, without a split vote", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const term = net.get("a").term;
  net.cut.add("a");
  net.get("b").peerGone("a");
  net.get("c").peerGone("a");
  assert.equal(net.get("b").leader, null);
  assert.equal(net.get("c").leader, null);
  // b, first of the survivors, campaigns after one tick (PreVote first); c would after three.
  net.get("b").tick();
  assert.equal(net.get("b").role, "precandidate");
  net.get("c").tick();
  assert.equal(net.get("c").role, "follower");
  net.settle();
  assert.equal(net.get("b").role, "leader");
  assert.equal(net.get("b").term, term + 1, "elected in the next term");
  assert.equal(net.get("c").leader, "b");
  for (let i = 0; i < 5; i++) net.tickAll();
  assert.equal(net.get("b").role, "leader");
  assert.equal(net.get("b").term, term + 1, "c did not campaign too");
  const votes = net.delivered.filter((m) => m.type === "vote" && m.term > term);
  assert.ok(votes.some((m) => m.type === "vote" && m.pre), "the campaign started with a PreVote");
  assert.ok(votes.every((m) => m.from === "b"));
});

Deno.test("core: a wrong report that the leader is gone deposes nobody (PreVote refused in the lease)", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  const b = net.get("b");
  const term = a.term;
  // b alone is told a is gone (say one connection closed); a and c are fine.
  b.peerGone("a");
  net.deliver(net.tickUntilCampaign("b", 2));
  const answers = net.collect();
  assert.deepEqual(
    answers.filter((m) => m.type === "voteResp" && m.granted),
    [],
    "a leads and c hears from it: neither grants the PreVote",
  );
  net.deliver(answers);
  for (let i = 0; i < 30; i++) net.tickAll();
  assert.equal(a.role, "leader");
  assert.equal(a.term, term, "no new term");
  assert.equal(b.role, "follower");
  assert.equal(b.leader, "a");
  assert.equal(b.term, term);
  // After a heartbeat b waits a whole timeout again: no second early campaign.
  assert.equal(net.delivered.filter((m) => m.type === "vote" && m.from === "b").length, 2);
});

Deno.test("core: peerGone is ignored without PreVote, for a peer that does not lead, and by a leader", () => {
  const net = new Net(["a", "b", "c"], { options: { preVote: false } });
  net.elect("a");
  const b = net.get("b");
  b.peerGone("a");
  assert.equal(b.leader, "a", "without PreVote an early campaign could depose a live leader");
  const withPreVote = new Net(["a", "b", "c"]);
  withPreVote.elect("a");
  withPreVote.get("b").peerGone("c");
  assert.equal(withPreVote.get("b").leader, "a");
  withPreVote.get("a").peerGone("b");
  assert.equal(withPreVote.get("a").role, "leader");
  for (let i = 0; i < 5; i++) withPreVote.tickAll();
  assert.equal(withPreVote.get("b").role, "follower");
  assert.equal(withPreVote.get("a").role, "leader");
});

Deno.test("core: a vote refused leaves the election timer running: stale candidates taking turns do not hold off the longest log", () => {
  // Without PreVote, b (stale) asks for a vote in a new term every 9 ticks, under the election
  // timeout (10-19 ticks). c, whose log is longer, refuses each time; it must still time out and
  // campaign, as Raft's Figure 2 has it: only a granted vote resets the timer.
  const net = new Net(["a", "b", "c"], {
    options: { preVote: false },
    specs: { c: { hardState: { term: 1, vote: null, commit: 0 }, entries: run(1, 3, 1) } },
  });
  const c = net.get("c");
  let campaignedAt: number | undefined;
  for (let tick = 1; tick <= 40 && campaignedAt === undefined; tick++) {
    if (tick % 9 === 0) {
      const term = c.term + 1;
      c.step({
        type: "vote",
        from: "b",
        to: "c",
        term,
        pre: false,
        transfer: false,
        lastIndex: 0,
        lastTerm: 0,
      });
      assert.equal(c.term, term, "the request moves c's term");
      assert.equal(c.role, "follower");
    }
    c.tick();
    if (c.role === "candidate") campaignedAt = tick;
  }
  assert.ok(
    campaignedAt !== undefined && campaignedAt < 20,
    `c campaigned at tick ${campaignedAt}`,
  );
  const refused = net.readyOf("c").messages.filter((m) => m.type === "voteResp" && m.to === "b");
  assert.ok(refused.length > 0 && refused.every((m) => m.type === "voteResp" && !m.granted));
});

// ---- leader lease and CheckQuorum ----

Deno.test("core: a follower in its leader lease ignores a higher-term vote request", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const b = net.get("b");
  const term = b.term;
  const disrupt: Message = {
    type: "vote",
    from: "c",
    to: "b",
    term: term + 5,
    pre: false,
    transfer: false,
    lastIndex: 100,
    lastTerm: term,
  };
  b.step(disrupt);
  assert.equal(b.term, term, "b heard from a within the election timeout");
  assert.equal(b.leader, "a");
  assert.deepEqual(b.ready().messages, []);
  // Once b has not heard from the leader for an election timeout, the same request wins its vote.
  for (let i = 0; i < 10; i++) b.tick();
  b.step(disrupt);
  assert.equal(b.term, term + 5);
  const rd = b.ready();
  assert.deepEqual(rd.hardState?.vote, "c");
  assert.deepEqual(
    rd.messages.filter((m) => m.type === "voteResp").map((m) =>
      m.type === "voteResp" && [m.to, m.term, m.granted]
    ),
    [["c", term + 5, true]],
  );
});

Deno.test("core: CheckQuorum: a leader that hears from no quorum steps down", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  const term = a.term;
  // While b answers heartbeats, a keeps leading however long it runs (c is gone).
  net.cut.add("c");
  for (let i = 0; i < 50; i++) net.tickAll();
  assert.equal(a.role, "leader");
  assert.equal(a.term, term);
  // Now a hears from no one.
  net.cut.add("b");
  let steppedDownAt = -1;
  for (let i = 1; i <= 20 && steppedDownAt < 0; i++) {
    a.tick();
    net.collect();
    if (a.role !== "leader") steppedDownAt = i;
  }
  assert.ok(
    steppedDownAt >= 10,
    `not before an election timeout (stepped down at tick ${steppedDownAt})`,
  );
  assert.ok(steppedDownAt > 0 && steppedDownAt <= 20, "within two election timeouts");
  assert.equal(a.role, "follower");
  assert.equal(a.leader, null);
  assert.equal(a.term, term, "stepping down does not change the term");
  assert.ok(isRefusal(a.propose("x")));
});

// ---- commitment ----

Deno.test("core: Figure 8: an old-term entry is not committed by counting replicas", () => {
  // a holds index 2 from term 2, never committed; it is elected leader in term 4.
  const net = new Net(["a", "b", "c"], {
    specs: {
      a: { hardState: { term: 3, vote: null, commit: 1 }, entries: [cmd(1, 1), cmd(2, 2)] },
      b: { hardState: { term: 3, vote: null, commit: 1 }, entries: [cmd(1, 1)] },
      c: { hardState: { term: 3, vote: null, commit: 1 }, entries: [cmd(1, 1)] },
    },
  });
  const a = net.get("a");
  net.electVotesOnly("a");
  assert.equal(a.term, 4);
  assert.equal(a.lastIndex, 3, "the no-op of term 4 is at index 3");
  assert.equal(a.commitIndex, 1);
  const ack = (from: NodeId, index: number): Message => ({
    type: "appendResp",
    seq: 0,
    from,
    to: "a",
    term: 4,
    success: true,
    index,
    conflictTerm: 0,
    conflictIndex: 0,
  });
  a.step(ack("b", 2));
  a.step(ack("c", 2));
  assert.equal(a.matchIndexes().get("b"), 2);
  assert.equal(a.matchIndexes().get("c"), 2);
  assert.equal(a.commitIndex, 1, "index 2 is on all three nodes but from term 2: not committed");
  a.step(ack("b", 3));
  assert.equal(a.commitIndex, 1, "a's own no-op is not written yet: only b has index 3");
  const written = a.ready();
  a.persisted(written.lastIndex, written.lastTerm);
  assert.equal(a.commitIndex, 3, "index 3 (term 4) on a majority commits it and everything before");
  const rd = a.ready();
  assert.deepEqual(rd.committed.map((e) => [e.index, e.term]), [[2, 2], [3, 4]]);
});

Deno.test("core: fast back-off skips a conflicting suffix a term at a time", () => {
  // a (and c): 1..3 @1, 4..8 @2, 9..40 @4.  b: 1..3 @1, 4..25 @2, 26..35 @3.
  const leaderLog = [...run(1, 3, 1), ...run(4, 8, 2), ...run(9, 40, 4)];
  const net = new Net(["a", "b", "c"], {
    specs: {
      a: { hardState: { term: 4, vote: null, commit: 3 }, entries: leaderLog },
      b: {
        hardState: { term: 3, vote: null, commit: 3 },
        entries: [...run(1, 3, 1), ...run(4, 25, 2), ...run(26, 35, 3)],
      },
      c: { hardState: { term: 4, vote: null, commit: 3 }, entries: leaderLog },
    },
  });
  const a = net.get("a");
  const b = net.get("b");
  net.elect("a");
  assert.equal(a.term, 5);
  const toB = appendsTo(net.delivered, "b");
  const rejections = net.delivered.filter((m) =>
    m.type === "appendResp" && m.from === "b" && !m.success
  );
  assert.deepEqual(
    rejections.map((m) => m.type === "appendResp" && [m.index, m.conflictTerm, m.conflictIndex]),
    [[40, 0, 36], [35, 3, 26], [25, 2, 4]],
    "b names the term of its entry at prevIndex and that term's first index",
  );
  assert.deepEqual(
    toB.map((m) => m.prevIndex),
    [40, 35, 25, 8],
    "one round trip per conflicting term (not one per entry: 32 would be needed)",
  );
  assert.deepEqual(toB[3].entries.map((e) => e.index)[0], 9, "the final append carries 9..41");
  assert.equal(toB[3].entries.at(-1)!.index, 41);
  assert.equal(b.lastIndex, 41);
  assert.equal(a.matchIndexes().get("b"), 41);
  assert.equal(a.commitIndex, 41);
  net.tickAll();
  assert.equal(b.commitIndex, 41);
  // b's log is now a's: same terms at every index.
  const bApplied = net.applied.get("b")!;
  const aApplied = net.applied.get("a")!;
  assert.deepEqual(
    bApplied.map((e) => [e.index, e.term]),
    aApplied.map((e) => [e.index, e.term]),
  );
});

Deno.test("core: fast back-off: a delayed duplicate rejection does not make the leader back up again", () => {
  const net = divergedAfter3(run(4, 20, 2));
  const a = net.get("a");
  net.electVotesOnly("a");
  const probe1 = appendsTo(net.collect(), "b");
  assert.deepEqual(probe1.map((m) => m.prevIndex), [40]);
  net.deliver(probe1);
  const reject1 = net.readyOf("b").messages;
  assert.deepEqual(
    reject1.map((m) => m.type === "appendResp" && [m.success, m.conflictTerm, m.conflictIndex]),
    [[false, 0, 21]],
  );
  net.deliver(reject1);
  const probe2 = appendsTo(net.collect(), "b");
  assert.deepEqual(probe2.map((m) => m.prevIndex), [20]);
  // The first rejection arrives again, late: the probe for 20 is still the one in flight.
  net.deliver(reject1);
  assert.deepEqual(appendsTo(net.collect(), "b"), []);
  net.deliver(probe2);
  net.settle();
  assert.equal(net.get("b").lastIndex, 41);
  assert.equal(a.matchIndexes().get("b"), 41);
});

Deno.test("core: a node votes for at most one candidate per term", () => {
  const net = new Net(["a", "b", "c"], { options: { preVote: false } });
  const b = net.get("b");
  const vote = (from: NodeId, term: number): Message => ({
    type: "vote",
    from,
    to: "b",
    term,
    pre: false,
    transfer: false,
    lastIndex: 0,
    lastTerm: 0,
  });
  const answers = () =>
    net.readyOf("b").messages.map((m) => m.type === "voteResp" && [m.to, m.term, m.granted]);
  b.step(vote("a", 1));
  assert.deepEqual(answers(), [["a", 1, true]]);
  b.step(vote("c", 1));
  assert.deepEqual(answers(), [["c", 1, false]], "already voted for a in term 1");
  b.step(vote("a", 1));
  assert.deepEqual(answers(), [["a", 1, true]], "a repeated request from the same candidate");
  b.step(vote("c", 2));
  assert.deepEqual(answers(), [["c", 2, true]], "a new term, a new vote");
  assert.equal(b.term, 2);
  // A restarted b remembers its vote.
  const restarted = makeCore("b", ["a", "b", "c"], [], {
    hardState: { term: 2, vote: "c", commit: 0 },
  }, { preVote: false });
  restarted.step(vote("a", 2));
  assert.deepEqual(
    restarted.ready().messages.map((m) => m.type === "voteResp" && m.granted),
    [false],
  );
});

Deno.test("core: a follower never truncates committed entries", () => {
  const b = makeCore("b", ["a", "b", "c"], [], {
    hardState: { term: 1, vote: null, commit: 5 },
    entries: run(1, 5, 1),
  });
  // An append that conflicts below b's commit index (from a confused leader of term 2).
  b.step(append({
    from: "a",
    to: "b",
    term: 2,
    prevIndex: 2,
    prevTerm: 1,
    entries: [cmd(3, 2), cmd(4, 2)],
    commit: 0,
  }));
  const rd = b.ready();
  assert.deepEqual(rd.entries, [], "nothing rewritten");
  assert.deepEqual(
    rd.messages.map((m) => m.type === "appendResp" && [m.success, m.index]),
    [[true, 5]],
    "b answers with its commit index",
  );
  assert.equal(b.lastIndex, 5);
  assert.equal(b.commitIndex, 5);
  // Uncommitted entries after the commit index are replaced when they conflict.
  b.step(append({
    from: "a",
    to: "b",
    term: 2,
    prevIndex: 5,
    prevTerm: 1,
    entries: [cmd(6, 1)],
    commit: 5,
  }));
  b.step(append({
    from: "a",
    to: "b",
    term: 2,
    prevIndex: 5,
    prevTerm: 1,
    entries: [cmd(6, 2), cmd(7, 2)],
    commit: 6,
  }));
  const rd2 = b.ready();
  assert.deepEqual(rd2.entries.map((e) => [e.index, e.term]), [[6, 2], [7, 2]]);
  assert.equal(b.commitIndex, 6);
  assert.deepEqual(rd2.committed.map((e) => [e.index, e.term]), [[6, 2]]);
  // A stale append (an older prefix) does not truncate 7.
  b.step(append({
    from: "a",
    to: "b",
    term: 2,
    prevIndex: 6,
    prevTerm: 2,
    entries: [],
    commit: 6,
  }));
  assert.equal(b.lastIndex, 7);
  const last = b.ready().messages.at(-1)!;
  assert.deepEqual(last.type === "appendResp" && [last.success, last.index], [true, 6]);
});

Deno.test("core: a follower commits no further than what the leader showed it matches", () => {
  // b holds 1..5 from term 1, none committed; the leader of term 2 has other entries after 2.
  const b = makeCore("b", ["a", "b", "c"], [], {
    hardState: { term: 2, vote: null, commit: 0 },
    entries: run(1, 5, 1),
  });
  b.step(append({
    from: "a",
    to: "b",
    term: 2,
    prevIndex: 2,
    prevTerm: 1,
    entries: [],
    commit: 5,
  }));
  assert.equal(b.commitIndex, 2, "3..5 may differ from the leader's 3..5");
  b.step({ type: "heartbeat", from: "a", to: "b", term: 2, commit: 2, context: 0 });
  assert.equal(b.commitIndex, 2);
  assert.deepEqual(b.ready().committed.map((e) => e.index), [1, 2]);
});

Deno.test("core: a heartbeat carries no commit index beyond the follower's match", () => {
  // b's log diverges from a's after 3; a commits 41 with c while b is still unmatched.
  const net = divergedAfter3(run(4, 50, 2));
  const a = net.get("a");
  const b = net.get("b");
  net.electVotesOnly("a");
  net.cut.add("b");
  net.settle();
  assert.equal(a.commitIndex, 41);
  assert.equal(a.matchIndexes().get("b"), 0);
  net.cut.delete("b");
  a.tick();
  const hb = net.collect().filter((m) => m.type === "heartbeat" && m.to === "b");
  assert.deepEqual(hb.map((m) => m.type === "heartbeat" && m.commit), [0]);
  net.deliver(hb);
  assert.equal(b.commitIndex, 3, "b must not commit its own (term 2) entries 4..41");
});

Deno.test("core: duplicate and stale append responses never move match back", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  for (const x of ["x", "y", "z"]) {
    a.propose(x);
    net.settle();
  }
  const term = a.term;
  assert.equal(a.matchIndexes().get("b"), 4);
  assert.equal(a.commitIndex, 4);
  const resp = (success: boolean, index: number, conflictIndex = 0): Message => ({
    type: "appendResp",
    seq: 0,
    from: "b",
    to: "a",
    term,
    success,
    index,
    conflictTerm: success ? 0 : 1,
    conflictIndex,
  });
  a.step(resp(true, 2)); // a duplicate of an old ack
  assert.equal(a.matchIndexes().get("b"), 4);
  a.step(resp(true, 4)); // a duplicate of the latest ack
  assert.equal(a.matchIndexes().get("b"), 4);
  a.step(resp(false, 3, 1)); // a stale rejection, from before b matched
  assert.equal(a.matchIndexes().get("b"), 4);
  assert.equal(a.commitIndex, 4);
  // b is still replicating (not probing): appends follow index 4 and are pipelined.
  net.cut.add("b");
  a.propose("w");
  const first = appendsTo(net.collect(), "b");
  a.propose("v");
  const second = appendsTo(net.collect(), "b");
  assert.deepEqual(
    [...first, ...second].map((m) => [m.prevIndex, m.entries.map((e) => e.index)]),
    [[4, [5]], [5, [6]]],
  );
});

Deno.test({
  name: "core: a late rejection reaching a probing leader does not move match back",
  fn() {
    const net = new Net(["a", "b", "c"]);
    net.elect("a");
    const a = net.get("a");
    a.propose("x");
    net.settle();
    assert.equal(a.matchIndexes().get("b"), 2);
    // b's append was lost: a probes b again from its match.
    a.reportUnreachable("b", "append");
    // A long-delayed answer of b to an old probe for 2, from when b's log ended at 1.
    a.step({
      type: "appendResp",
      seq: 0,
      from: "b",
      to: "a",
      term: a.term,
      success: false,
      index: 2,
      conflictTerm: 0,
      conflictIndex: 2,
    });
    assert.equal(a.matchIndexes().get("b"), 2, "b acknowledged 2; a stale answer cannot undo it");
  },
});

Deno.test("core: a follower that lost acknowledged entries is probed back down, not for ever", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  a.propose("x");
  net.settle();
  assert.equal(a.matchIndexes().get("b"), 2);
  a.reportUnreachable("b", "append");
  // b "restarts" with an empty log: it rejects the probe for index 2.
  a.propose("y");
  const probe = appendsTo(net.collect(), "b")[0];
  assert.equal(probe.prevIndex, 2);
  a.step({
    type: "appendResp",
    from: "b",
    to: "a",
    term: a.term,
    success: false,
    index: probe.prevIndex,
    conflictTerm: 0,
    conflictIndex: 1,
    seq: probe.seq,
  });
  assert.equal(a.matchIndexes().get("b"), 0, "the lost match is forgotten");
  const next = appendsTo(net.collect(), "b")[0];
  assert.equal(next.prevIndex, 0, "the next probe starts where b's log really ends");
});

Deno.test("core: an idle leader repairs a follower that restarted with an empty log (heartbeats alone)", () => {
  for (const compacted of [false, true]) {
    const net = new Net(["a", "b", "c"], { options: { snapshotChunkBytes: 4 } });
    net.elect("a");
    const a = net.get("a");
    for (const x of ["x", "y", "z"]) a.propose(x);
    net.settle();
    net.tickAll();
    assert.equal(a.matchIndexes().get("b"), 4);
    if (compacted) a.compact(4, new Uint8Array([1, 2, 3, 4, 5, 6]));
    net.settle();
    // b comes back with nothing (a lost folder); a still counts 4 as b's match
    // and has nothing new to send. No proposal follows: only heartbeats.
    net.add(makeCore("b", ["a", "b", "c"], [], {}, {}, 7));
    for (let i = 0; i < 5; i++) net.tickAll();
    const b = net.get("b");
    assert.equal(b.commitIndex, 4, `b caught up (compacted: ${compacted})`);
    assert.equal(a.matchIndexes().get("b"), 4);
    if (compacted) assert.equal(b.snapshotIndex, 4, "by the snapshot");
    else assert.deepEqual(commands(net.applied.get("b")!), ["x", "y", "z"]);
  }
});

Deno.test("core: a heartbeat answer from a follower behind its match sends the leader back to probing", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  a.propose("x");
  net.settle();
  assert.equal(a.matchIndexes().get("b"), 2);
  // A follower whose log ends at 2 says nothing: a heartbeat answer without lastIndex.
  a.step({ type: "heartbeatResp", from: "b", to: "a", term: a.term, context: 0 });
  assert.equal(a.matchIndexes().get("b"), 2);
  assert.deepEqual(appendsTo(net.collect(), "b"), [], "nothing to send while b is matched");
  a.step({ type: "heartbeatResp", from: "b", to: "a", term: a.term, context: 0, lastIndex: 0 });
  assert.equal(a.matchIndexes().get("b"), 0, "the lost match is forgotten");
  const probe = appendsTo(net.collect(), "b");
  assert.equal(probe.length, 1);
  assert.equal(probe[0].prevIndex, 0, "probed from where b's log really ends");
});

Deno.test("core: a follower says where its log ends only when a heartbeat's commit is beyond it", () => {
  const b = makeCore("b", ["a", "b", "c"]);
  const beat = (commit: number): Message => ({
    type: "heartbeat",
    from: "a",
    to: "b",
    term: 1,
    commit,
    context: 0,
  });
  b.step(beat(0));
  b.step(beat(3));
  assert.deepEqual(
    b.ready().messages.map((m) => m.type === "heartbeatResp" && m.lastIndex),
    [undefined, 0],
  );
});

// ---- replication flow control ----

Deno.test("core: pipelining: in replicate state at most maxInflight appends are unanswered", () => {
  const net = new Net(["a", "b", "c"], { options: { maxInflight: 3 } });
  net.elect("a");
  const a = net.get("a");
  net.cut.add("b");
  const sentToB: AppendMessage[] = [];
  for (let i = 1; i <= 6; i++) {
    a.propose(`p${i}`);
    const messages = net.collect();
    sentToB.push(...appendsTo(messages, "b"));
    net.deliver(messages); // c answers, b's are lost
    net.settle();
  }
  assert.equal(a.commitIndex, 7, "c's acks commit every proposal");
  assert.deepEqual(
    sentToB.map((m) => [m.prevIndex, m.entries.map((e) => e.index)]),
    [[1, [2]], [2, [3]], [3, [4]]],
    "three appends sent back to back without waiting, then the window is full",
  );
  assert.equal(a.matchIndexes().get("b"), 1);
  // b answers the first one: one slot frees up, and the next append carries everything new.
  net.cut.delete("b");
  net.get("b").step(sentToB[0]);
  const reply = net.get("b").ready().messages;
  assert.equal(reply.length, 1);
  net.deliver(reply);
  const next = appendsTo(net.collect(), "b");
  assert.deepEqual(next.map((m) => [m.prevIndex, m.entries.map((e) => e.index)]), [[4, [5, 6, 7]]]);
});

Deno.test("core: pipelining: a heartbeat answer frees one slot of a full window", () => {
  const net = new Net(["a", "b", "c"], { options: { maxInflight: 2 } });
  net.elect("a");
  const a = net.get("a");
  net.cut.add("b");
  for (let i = 1; i <= 4; i++) {
    a.propose(`p${i}`);
    net.settle();
  }
  assert.deepEqual(appendsTo(net.dropped, "b").map((m) => m.prevIndex), [1, 2]);
  assert.deepEqual(appendsTo(net.collect(), "b"), [], "the window is full");
  // b is alive (it answers a heartbeat) though its appends were lost.
  a.step({ type: "heartbeatResp", from: "b", to: "a", term: a.term, context: 0 });
  const resumed = appendsTo(net.collect(), "b");
  assert.deepEqual(resumed.map((m) => [m.prevIndex, m.entries.map((e) => e.index)]), [[3, [4, 5]]]);
  assert.deepEqual(appendsTo(net.collect(), "b"), [], "one slot only");
});

Deno.test("core: reportUnreachable sends a replicating follower back to probing", () => {
  const net = new Net(["a", "b", "c"], { options: { maxInflight: 4 } });
  net.elect("a");
  const a = net.get("a");
  const b = net.get("b");
  net.cut.add("b");
  for (let i = 1; i <= 2; i++) {
    a.propose(`p${i}`);
    net.settle();
  }
  assert.equal(appendsTo(net.dropped, "b").length, 2, "two pipelined appends lost");
  a.reportUnreachable("b", "append");
  // Probe: one append from match + 1 with everything, then silence until it is answered.
  const probe = appendsTo(net.collect(), "b");
  assert.deepEqual(probe.map((m) => [m.prevIndex, m.entries.map((e) => e.index)]), [[1, [2, 3]]]);
  a.propose("p3");
  assert.deepEqual(appendsTo(net.collect(), "b"), [], "paused while the probe is unanswered");
  // The probe is lost too: reported, nothing more goes out (a dead peer
  // must not cost a batch per turn) until b answers a heartbeat.
  a.reportUnreachable("b", "append");
  assert.deepEqual(appendsTo(net.collect(), "b"), [], "no new probe for an unreachable peer");
  net.cut.delete("b");
  a.tick();
  a.tick();
  const heartbeats = net.collect();
  assert.ok(heartbeats.some((m) => m.type === "heartbeat" && m.to === "b"));
  net.deliver(heartbeats);
  net.deliver(net.collect()); // b's answer releases the probe
  const again = appendsTo(net.collect(), "b");
  assert.deepEqual(again.map((m) => [m.prevIndex, m.entries.map((e) => e.index)]), [[1, [
    2,
    3,
    4,
  ]]]);
  net.deliver(again);
  net.settle();
  assert.equal(b.lastIndex, 4);
  assert.equal(a.matchIndexes().get("b"), 4);
  // Back to replicate: two proposals go out back to back.
  net.cut.add("b");
  a.propose("p4");
  net.settle();
  a.propose("p5");
  net.settle();
  assert.deepEqual(
    appendsTo(net.dropped, "b").slice(-2).map((m) => m.prevIndex),
    [4, 5],
  );
});

// ---- ReadIndex ----

Deno.test("core: ReadIndex waits for the no-op, then for a quorum to ack the heartbeat carrying it", () => {
  const net = new Net(["a", "b", "c", "d", "e"]);
  const a = net.get("a");
  net.electVotesOnly("a");
  assert.equal(a.commitIndex, 0, "the no-op is not committed yet");
  assert.equal(a.readIndex(7), undefined);
  let out = net.collect();
  assert.deepEqual(
    out.filter((m) => m.type === "heartbeat"),
    [],
    "no read round before the no-op commits",
  );
  assert.equal(appendsTo(out, "b").length, 1);
  assert.deepEqual(net.readies.get("a")!.at(-1)!.reads, []);
  // Replicate the no-op (appends and their answers only).
  const appendTraffic = (m: Message) => m.type === "append" || m.type === "appendResp";
  net.deliver(out, appendTraffic);
  net.deliver(net.collect(), appendTraffic);
  assert.equal(a.commitIndex, 1);
  // Now a heartbeat round confirms the read.
  out = net.collect();
  assert.deepEqual(net.readies.get("a")!.at(-1)!.reads, []);
  const heartbeats = out.filter((m) => m.type === "heartbeat");
  assert.deepEqual(heartbeats.map((m) => m.to), ["b", "c", "d", "e"]);
  const context = heartbeats[0].type === "heartbeat" ? heartbeats[0].context : -1;
  assert.ok(context > 0, "the heartbeat carries the read round");
  /** Delivers the heartbeat to `to` and its answer back; returns a's reads. */
  const ackFrom = (to: NodeId) => {
    net.deliver(heartbeats.filter((m) => m.to === to));
    net.deliver(net.readyOf(to).messages);
    return net.readyOf("a").reads;
  };
  assert.deepEqual(ackFrom("b"), [], "a and b: not yet a quorum of 5");
  // An answer to a heartbeat of no read round does not confirm it.
  a.step({ type: "heartbeatResp", from: "c", to: "a", term: a.term, context: 0 });
  assert.deepEqual(net.readyOf("a").reads, []);
  assert.deepEqual(ackFrom("d"), [{ context: 7, index: 1 }], "a, b and d are a quorum");
  assert.deepEqual(ackFrom("e"), [], "released once only");
});

Deno.test("core: ReadIndex after the no-op committed: one heartbeat round, index is the commit index", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  a.propose("x");
  net.settle();
  assert.equal(a.commitIndex, 2);
  assert.equal(a.readIndex(1), undefined);
  assert.equal(a.readIndex(2), undefined);
  const out = net.collect();
  assert.deepEqual(out.map((m) => [m.type, m.to]), [["heartbeat", "b"], ["heartbeat", "c"]]);
  assert.deepEqual(net.readies.get("a")!.at(-1)!.reads, []);
  net.deliver(out.filter((m) => m.to === "c"));
  net.deliver(net.readyOf("c").messages);
  assert.deepEqual(net.readyOf("a").reads, [
    { context: 1, index: 2 },
    { context: 2, index: 2 },
  ]);
});

Deno.test("core: ReadIndex: only answers to heartbeats sent after a read started confirm it", () => {
  const net = new Net(["a", "b", "c", "d", "e"]);
  net.elect("a");
  const a = net.get("a");
  assert.equal(a.readIndex(1), undefined);
  const round1 = net.collect().filter((m) => m.type === "heartbeat");
  assert.equal(a.readIndex(2), undefined);
  const round2 = net.collect().filter((m) => m.type === "heartbeat");
  const contexts = (
    hbs: Message[],
  ) => [...new Set(hbs.map((m) => m.type === "heartbeat" && m.context))];
  assert.equal(contexts(round1).length, 1);
  assert.equal(contexts(round2).length, 1);
  assert.notDeepEqual(contexts(round1), contexts(round2));
  // b and c answer the first round: read 1 is confirmed, read 2 (started later) is not.
  net.deliver(round1.filter((m) => m.to === "b" || m.to === "c"));
  net.deliver([...net.readyOf("b").messages, ...net.readyOf("c").messages]);
  assert.deepEqual(net.readyOf("a").reads, [{ context: 1, index: 1 }]);
  // d and e answer the second round: read 2 is confirmed.
  net.deliver(round2.filter((m) => m.to === "d"));
  net.deliver(net.readyOf("d").messages);
  assert.deepEqual(net.readyOf("a").reads, [], "a and d only");
  net.deliver(round2.filter((m) => m.to === "e"));
  net.deliver(net.readyOf("e").messages);
  assert.deepEqual(net.readyOf("a").reads, [{ context: 2, index: 1 }]);
});

Deno.test("core: a follower's readIndex is refused with not-leader", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  assert.deepEqual(net.get("b").readIndex(1), { reason: "not-leader", leader: "a" });
  assert.deepEqual(makeCore("z", ["z", "y"]).readIndex(1), { reason: "not-leader", leader: null });
});

Deno.test({
  name: "core: ReadIndex: a learner's heartbeat ack does not count toward the read quorum",
  fn() {
    const net = new Net(["a", "b", "c"], { learners: ["d", "e"] });
    net.elect("a");
    const a = net.get("a");
    assert.equal(a.commitIndex, 1);
    // a is cut off from the other voters (they may elect a new leader), but still reaches d.
    assert.equal(a.readIndex(9), undefined);
    const heartbeats = net.collect().filter((m) => m.type === "heartbeat");
    assert.deepEqual(heartbeats.map((m) => m.to).sort(), ["b", "c", "d", "e"]);
    net.deliver(heartbeats.filter((m) => m.to === "d" || m.to === "e"));
    net.deliver(net.readyOf("d").messages);
    net.deliver(net.readyOf("e").messages);
    assert.deepEqual(
      net.readyOf("a").reads,
      [],
      "only voters confirm leadership: a plus learners is no quorum",
    );
  },
});

// ---- leadership transfer ----

Deno.test("core: leadership transfer: timeoutNow once caught up, proposals refused meanwhile, no PreVote", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  const b = net.get("b");
  const c = net.get("c");
  const term = a.term;
  net.cut.add("b");
  a.propose("x");
  a.propose("y");
  net.settle();
  assert.equal(a.commitIndex, 3);
  assert.equal(a.matchIndexes().get("b"), 1, "b is behind");
  assert.equal(a.transferLeadership("b"), undefined);
  assert.equal(a.transferee, "b");
  assert.deepEqual(
    net.collect().filter((m) => m.type === "timeoutNow"),
    [],
    "b must catch up first",
  );
  assert.deepEqual(a.propose("z"), { reason: "transferring", leader: "b" });
  assert.deepEqual(a.proposeMembership({ type: "addLearner", node: "d" }), {
    reason: "transferring",
    leader: "b",
  });
  // c heard from a just now: it is in its lease and ignores an ordinary vote request.
  c.step({
    type: "vote",
    from: "b",
    to: "c",
    term: term + 1,
    pre: false,
    transfer: false,
    lastIndex: 3,
    lastTerm: term,
  });
  assert.equal(c.term, term);
  assert.deepEqual(net.readyOf("c").messages, []);
  // b comes back.
  net.heal("b");
  const traffic = net.settle();
  const timeoutNows = traffic.filter((m) => m.type === "timeoutNow");
  assert.deepEqual(timeoutNows.map((m) => [m.from, m.to, m.term]), [["a", "b", term]]);
  // It came after b's ack of the last index.
  const at = traffic.indexOf(timeoutNows[0]);
  const lastAck = traffic.slice(0, at).findLast((m) => m.type === "appendResp" && m.from === "b");
  assert.ok(lastAck?.type === "appendResp" && lastAck.success && lastAck.index === 3);
  // b campaigned for real straight away, flagged as a transfer.
  const bVotes = traffic.filter((m) => m.type === "vote" && m.from === "b");
  assert.deepEqual(
    bVotes.map((m) => m.type === "vote" && [m.to, m.term, m.pre, m.transfer]),
    [["a", term + 1, false, true], ["c", term + 1, false, true]],
  );
  assert.equal(b.role, "leader");
  assert.equal(b.term, term + 1);
  assert.equal(a.role, "follower");
  assert.equal(a.leader, "b");
  assert.equal(a.transferee, null);
  assert.equal(c.leader, "b");
  assert.equal(c.term, term + 1);
});

Deno.test("core: leadership transfer to an up-to-date follower sends timeoutNow at once; bad targets are refused", () => {
  const net = new Net(["a", "b", "c"], { learners: ["d"] });
  net.elect("a");
  const a = net.get("a");
  assert.equal(a.transferLeadership("a"), undefined, "to itself: nothing to do");
  assert.equal(a.transferee, null);
  assert.deepEqual(a.transferLeadership("d"), {
    reason: "invalid",
    leader: "a",
    detail: "d is not a voter",
  });
  assert.deepEqual(net.get("b").transferLeadership("c"), { reason: "not-leader", leader: "a" });
  assert.equal(a.transferLeadership("c"), undefined);
  assert.deepEqual(net.collect().filter((m) => m.type === "timeoutNow").map((m) => m.to), ["c"]);
});

Deno.test("core: a leadership transfer that does not complete is abandoned after an election timeout", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  net.cut.add("b");
  a.propose("x");
  net.settle();
  a.transferLeadership("b");
  assert.ok(isRefusal(a.propose("y")));
  for (let i = 0; i < 10; i++) net.tickAll();
  assert.equal(a.role, "leader");
  assert.equal(a.transferee, null);
  assert.deepEqual(a.propose("y"), { index: 3, term: a.term });
});

// ---- membership ----

Deno.test("core: membership: addLearner, then addVoter; one change at a time; learners do not count", () => {
  const net = new Net(["a", "b", "c"], { extra: ["d"] });
  net.elect("a");
  const a = net.get("a");
  const d = net.get("d");
  assert.deepEqual(a.proposeMembership({ type: "addLearner", node: "a" }), {
    reason: "invalid",
    leader: "a",
    detail: "a is already a voter",
  });
  assert.deepEqual(a.proposeMembership({ type: "addLearner", node: "d" }), { index: 2, term: 1 });
  assert.deepEqual(a.membership, { voters: ["a", "b", "c"], learners: ["d"] }, "in force at once");
  assert.deepEqual(a.proposeMembership({ type: "addVoter", node: "d" }), {
    reason: "membership-pending",
    leader: "a",
  });
  assert.deepEqual(net.get("b").proposeMembership({ type: "addVoter", node: "d" }), {
    reason: "not-leader",
    leader: "a",
  });
  net.settle();
  assert.equal(a.commitIndex, 2);
  assert.equal(d.lastIndex, 2, "the learner received the log");
  assert.deepEqual(d.membership, { voters: ["a", "b", "c"], learners: ["d"] });
  // A learner's ack does not count: with b and c cut off, nothing commits.
  net.cut.add("b");
  net.cut.add("c");
  a.propose("x");
  net.settle();
  assert.equal(d.lastIndex, 3);
  assert.equal(a.matchIndexes().get("d"), 3);
  assert.equal(a.commitIndex, 2, "a and the learner d are no quorum of {a, b, c}");
  // Learners never campaign.
  for (let i = 0; i < 50; i++) d.tick();
  assert.equal(d.role, "follower");
  net.heal("b");
  net.heal("c");
  net.settle();
  assert.equal(a.commitIndex, 3);
  // Promote d.
  assert.deepEqual(a.proposeMembership({ type: "addVoter", node: "d" }), { index: 4, term: 1 });
  assert.deepEqual(a.membership, { voters: ["a", "b", "c", "d"], learners: [] });
  net.settle();
  assert.equal(a.commitIndex, 4);
  for (const id of ["a", "b", "c", "d"]) {
    assert.deepEqual(net.get(id).membership.voters, ["a", "b", "c", "d"], id);
  }
  // Now a quorum is 3 of 4: a and b are not enough.
  net.cut.add("c");
  net.cut.add("d");
  a.propose("y");
  net.settle();
  assert.equal(a.matchIndexes().get("b"), 5);
  assert.equal(a.commitIndex, 4);
  net.heal("d");
  net.settle();
  assert.equal(a.commitIndex, 5);
});

Deno.test("core: membership: a leader that removes itself steps down once the change commits", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  assert.deepEqual(a.proposeMembership({ type: "remove", node: "a" }), { index: 2, term: 1 });
  assert.deepEqual(a.membership, { voters: ["b", "c"], learners: [] });
  assert.equal(a.role, "leader", "still leading until the change commits");
  // The new configuration {b, c} needs both: b alone is not enough.
  net.cut.add("c");
  net.settle();
  assert.equal(a.matchIndexes().get("b"), 2);
  assert.equal(a.commitIndex, 1);
  assert.equal(a.role, "leader");
  net.heal("c");
  net.settle();
  assert.equal(a.commitIndex, 2);
  assert.equal(a.role, "follower");
  assert.equal(a.leader, null);
  // A removed node never campaigns.
  for (let i = 0; i < 50; i++) a.tick();
  assert.equal(a.role, "follower");
  assert.deepEqual(net.collect().filter((m) => m.from === "a"), []);
});

Deno.test("core: membership: removing a follower; removing the last voter is refused", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  assert.deepEqual(a.proposeMembership({ type: "remove", node: "c" }), { index: 2, term: 1 });
  assert.deepEqual([...a.matchIndexes().keys()].sort(), ["a", "b"], "c is no longer tracked");
  net.settle();
  assert.equal(a.commitIndex, 2);
  assert.deepEqual(a.proposeMembership({ type: "remove", node: "b" }), { index: 3, term: 1 });
  net.settle();
  assert.equal(a.commitIndex, 3);
  assert.deepEqual(a.membership, { voters: ["a"], learners: [] });
  assert.deepEqual(a.proposeMembership({ type: "remove", node: "a" }), {
    reason: "invalid",
    leader: "a",
    detail: "cannot remove the last voter",
  });
  // A single voter commits alone, once its write is done.
  assert.deepEqual(a.propose("solo"), { index: 4, term: 1 });
  net.collect();
  assert.equal(a.commitIndex, 4);
});

Deno.test("core: membership: a new leader changes membership only after committing in its term (Ongaro 2015)", () => {
  // Voters a, b, c, d and a fifth node e; every core reports to one ledger,
  // which fails the moment an entry applied anywhere is removed anywhere.
  const ledger = new AppliedLedger();
  const net = new Net(["a", "b", "c", "d"], { extra: ["e"], options: { observer: ledger } });
  const [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map((id) => net.get(id));
  net.elect("a"); // term 1; its no-op (index 1) is committed ...
  a.tick();
  net.settle(); // ... and every member knows it (e is none yet)
  assert.deepEqual([a, b, c, d, e].map((x) => x.commitIndex), [1, 1, 1, 1, 0]);
  // a proposes adding e (index 2, term 1): only e receives it.
  for (const id of ["b", "c", "d"]) net.cut.add(id);
  assert.deepEqual(a.proposeMembership({ type: "addVoter", node: "e" }), { index: 2, term: 1 });
  net.settle();
  assert.deepEqual(
    e.entries(2, 2).map((x) => x.kind === "membership" ? x.membership.voters : undefined),
    [["a", "b", "c", "d", "e"]],
  );
  assert.equal(a.commitIndex, 1, "a and e are no quorum of {a, b, c, d, e}");
  // b wins term 2 with c and d under the old configuration {a, b, c, d},
  // once their lease from a has run out.
  net.cut.add("a");
  net.cut.add("e");
  for (let i = 0; i < 10; i++) for (const x of [c, d]) x.tick();
  net.deliver(net.collect());
  for (const id of ["b", "c", "d"]) net.heal(id);
  net.electVotesOnly("b");
  assert.equal(b.term, 2);
  assert.equal(b.commitIndex, 1, "b's no-op (index 2) is not committed yet");
  // At once b proposes removing d. Were it accepted (index 3, term 2), the
  // configuration {a, b, c} would commit it with b and c alone.
  const early = b.proposeMembership({ type: "remove", node: "d" });
  net.cut.add("d");
  net.settle(); // b's appends reach c only
  const appliedOnB = net.applied.get("b")!.filter((x) => x.term === 2);
  // Then c is cut off (before it hears of any commit), and a comes back: it
  // learns term 2 from b, then campaigns for term 3 and wins with d and e
  // under its configuration {a, b, c, d, e}.
  net.cut.add("c");
  net.heal("a");
  net.heal("e");
  net.heal("d");
  net.cut.add("b");
  b.tick(); // a heartbeat of term 2 ...
  net.cut.delete("b");
  net.deliver(net.collect().filter((m) => m.from === "b" && m.to === "a")); // ... reaches a only
  net.cut.add("b");
  for (let i = 0; i < 20; i++) e.tick(); // e's lease from a (term 1) runs out
  net.deliver(net.collect());
  assert.equal(a.term, 2);
  net.elect("a");
  assert.equal(a.term, 3);
  // a commits its no-op at index 3 with d and e, and replicates to c, whose
  // entries of term 2 are overwritten. Had b's change been accepted, b would
  // have applied another entry at index 3: the ledger throws here.
  net.heal("c");
  a.tick();
  net.settle();
  assert.deepEqual(c.entries(1, 3).map((x) => x.term), [1, 1, 3], "c follows a's log");
  for (const x of appliedOnB) {
    assert.equal(c.termAt(x.index), x.term, `entry ${x.index} applied by b is gone from c`);
  }
  assert.equal(ledger.violation, undefined);
  // The refusal: typed, retryable, nothing appended.
  assert.deepEqual(early, { reason: "term-not-committed", leader: "b" });
  assert.deepEqual(appliedOnB, [], "b applied nothing of term 2");
  assert.equal(d.term, 3);
});

Deno.test("core: membership: a refused change succeeds once the leader's no-op commits", () => {
  const net = new Net(["a", "b", "c"], { extra: ["d"] });
  net.electVotesOnly("a");
  const a = net.get("a");
  assert.deepEqual(a.proposeMembership({ type: "addLearner", node: "d" }), {
    reason: "term-not-committed",
    leader: "a",
  });
  assert.equal(a.lastIndex, 1, "nothing was appended");
  net.settle();
  assert.equal(a.commitIndex, 1);
  assert.deepEqual(a.proposeMembership({ type: "addLearner", node: "d" }), { index: 2, term: 1 });
  // Without a no-op on election, a command of the leader's term does the same.
  const quiet = new Net(["a", "b", "c"], { options: { leaderNoop: false } });
  quiet.elect("a");
  const q = quiet.get("a");
  assert.deepEqual(q.proposeMembership({ type: "remove", node: "c" }), {
    reason: "term-not-committed",
    leader: "a",
  });
  q.propose("x");
  quiet.settle();
  assert.deepEqual(q.proposeMembership({ type: "remove", node: "c" }), { index: 2, term: 1 });
});

// ---- snapshots ----

Deno.test("core: snapshots: compact drops the log; a lagging follower gets the snapshot in chunks", () => {
  const net = new Net(["a", "b", "c"], { options: { snapshotChunkBytes: 4 } });
  net.elect("a");
  const a = net.get("a");
  const c = net.get("c");
  net.cut.add("c");
  for (const x of ["x", "y", "z"]) a.propose(x);
  net.settle();
  assert.equal(a.commitIndex, 4);
  assert.equal(a.appliedIndex, 4);
  const data = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  a.compact(4, data);
  assert.equal(a.snapshotIndex, 4);
  assert.equal(a.lastIndex, 4);
  const rdA = net.readyOf("a");
  assert.deepEqual(rdA.snapshot?.meta, {
    index: 4,
    term: 1,
    membership: { voters: ["a", "b", "c"], learners: [] },
    // The founding membership: set by no entry, at index 0.
    membershipIndex: 0,
  });
  assert.equal(rdA.installSnapshot, false, "a's own snapshot is not re-applied");
  assert.equal(rdA.resetLog, false);
  assert.throws(() => a.compact(5, data), RaftInvariantError, "beyond the applied index");

  // c is back: its next entry (2) is compacted away, so it gets the snapshot.
  net.heal("c");
  const chunks = (messages: Message[]) =>
    messages.flatMap((m) => m.type === "snapshot" ? [[m.to, m.offset, m.size, [...m.chunk]]] : []);
  let out = net.collect();
  assert.deepEqual(chunks(out), [["c", 0, 10, [0, 1, 2, 3]]]);
  net.deliver(out);
  net.deliver(net.collect()); // c asks for offset 4
  out = net.collect();
  assert.deepEqual(chunks(out), [["c", 4, 10, [4, 5, 6, 7]]]);
  // The second chunk is lost; once the driver reports it, a sends it again.
  net.deliver(out, (m) => m.type !== "snapshot");
  assert.deepEqual(chunks(net.collect()), [], "one chunk in flight: nothing until it is answered");
  a.reportUnreachable("c", "snapshot");
  assert.deepEqual(
    chunks(net.collect()),
    [],
    "not at once: to a peer that fails every call at once, chunks would go in a hot loop",
  );
  // As for a chunk lost without a report: again after an election timeout of heartbeat answers.
  let ticks = 0;
  for (out = []; ticks < 40 && chunks(out).length === 0; ticks++) {
    a.tick();
    out = net.collect();
    while (out.length > 0 && chunks(out).length === 0) {
      net.deliver(out);
      out = net.collect();
    }
  }
  assert.ok(ticks >= 10, `again after ${ticks} ticks, not an election timeout`);
  assert.deepEqual(chunks(out), [["c", 4, 10, [4, 5, 6, 7]]]);
  net.deliver(out);
  net.deliver(net.collect()); // c asks for offset 8
  out = net.collect();
  assert.deepEqual(chunks(out), [["c", 8, 10, [8, 9]]]);
  net.deliver(out);
  const installed = net.readies.get("c")!.filter((rd) => rd.snapshot !== undefined);
  assert.equal(installed.length, 0, "not before c's next ready");
  const rdC = net.readyOf("c");
  assert.equal(rdC.installSnapshot, true);
  assert.equal(rdC.resetLog, true, "c's log (the no-op) did not hold entry 4");
  assert.deepEqual(rdC.snapshot?.meta.index, 4);
  assert.deepEqual([...rdC.snapshot!.data], [...data]);
  assert.deepEqual(rdC.committed, [], "the snapshot replaces applying 2..4");
  assert.equal(rdC.hardState?.commit, 4);
  assert.equal(c.snapshotIndex, 4);
  assert.equal(c.commitIndex, 4);
  assert.equal(c.appliedIndex, 4);
  net.deliver(rdC.messages);
  net.settle();
  assert.equal(a.matchIndexes().get("c"), 4);
  // From here on c gets appends, not snapshots.
  a.propose("after");
  const traffic = net.settle();
  assert.deepEqual(traffic.filter((m) => m.type === "snapshot"), []);
  assert.equal(c.lastIndex, 5);
  net.tickAll();
  assert.deepEqual(commands(net.applied.get("c")!), ["after"]);
});

Deno.test("core: snapshots: a chunk lost without a report is sent again after an election timeout of heartbeats", () => {
  const net = new Net(["a", "b", "c"], {
    options: { snapshotChunkBytes: 4, electionTicks: 4, heartbeatTicks: 1 },
  });
  net.elect("a");
  const a = net.get("a");
  net.cut.add("c");
  for (const x of ["x", "y", "z"]) a.propose(x);
  net.settle();
  a.compact(4, new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
  net.cut.delete("c");
  net.dropped = [];
  // The first chunk is lost and no driver reports it (an RPC layer without
  // failure reports): heartbeats alone must restart the transfer.
  let lostAt = -1;
  const sentAt: number[] = [];
  for (let tick = 0; tick < 20 && net.get("c").snapshotIndex < 4; tick++) {
    a.tick();
    for (let round = 0; round < 50; round++) {
      const out = net.collect();
      if (out.length === 0) break;
      if (out.some((m) => m.type === "snapshot")) sentAt.push(tick);
      net.deliver(out, (m) => {
        if (m.type !== "snapshot" || lostAt >= 0) return true;
        lostAt = tick;
        return false;
      });
    }
  }
  assert.equal(net.get("c").snapshotIndex, 4, "c installed the snapshot");
  const again = sentAt.find((t) => t > lostAt)!;
  assert.ok(again - lostAt >= 3, `resent ${again - lostAt} ticks after the loss`);
});

Deno.test("core: snapshots: a follower that already has the snapshot's entries answers done at once", () => {
  const net = new Net(["a", "b", "c"], { options: { snapshotChunkBytes: 4 } });
  net.elect("a");
  const a = net.get("a");
  a.propose("x");
  net.settle();
  net.tickAll();
  assert.equal(net.get("c").commitIndex, 2);
  // A snapshot chunk for index 2 reaching c, which has committed 2 already.
  net.get("c").step({
    type: "snapshot",
    from: "a",
    to: "c",
    term: a.term,
    meta: { index: 2, term: 1, membership: { voters: ["a", "b", "c"], learners: [] } },
    offset: 0,
    size: 10,
    chunk: new Uint8Array(4),
  });
  const rd = net.readyOf("c");
  assert.equal(rd.snapshot, undefined);
  assert.deepEqual(
    rd.messages.map((m) => m.type === "snapshotResp" && [m.index, m.done]),
    [[2, true]],
  );
});

// ---- invariants and terms ----

Deno.test("core: invariants: an append of the leader's own term from another node throws", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  const from = (sender: NodeId) =>
    append({ from: sender, to: "a", term: a.term, prevIndex: 0, prevTerm: 0 });
  assert.throws(() => a.step(from("b")), RaftInvariantError);
  assert.throws(() => a.step(from("zz")), RaftInvariantError, "also from a stranger");
  assert.throws(
    () => a.step({ type: "heartbeat", from: "c", to: "a", term: a.term, commit: 0, context: 0 }),
    RaftInvariantError,
  );
});

Deno.test("core: invariants: a stored commit index beyond the stored log is refused", () => {
  assert.throws(
    () =>
      makeCore("a", ["a"], [], {
        hardState: { term: 1, vote: null, commit: 3 },
        entries: [cmd(1, 1)],
      }),
    RaftInvariantError,
  );
  assert.throws(
    () => makeCore("a", ["a"], [], {}, { electionTicks: 2, heartbeatTicks: 2 }),
    RaftInvariantError,
  );
});

Deno.test("core: a stale leader learns the new term from a follower's answer and steps down", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  const term = a.term;
  net.cut.add("a");
  for (let i = 0; i < 40 && net.get("b").role !== "leader" && net.get("c").role !== "leader"; i++) {
    net.tickAll();
  }
  const leader = net.get("b").role === "leader" ? "b" : "c";
  assert.equal(net.get(leader).role, "leader");
  assert.equal(net.get(leader).term, term + 1);
  // a still thinks it leads; its next heartbeat is answered with the new term.
  assert.equal(a.role, "leader");
  net.cut.delete("a");
  a.tick();
  const hb = net.collect().filter((m) => m.from === "a" && m.type === "heartbeat");
  assert.ok(hb.length > 0);
  net.deliver(hb);
  net.deliver(net.collect().filter((m) => m.to === "a" && m.type === "appendResp"));
  assert.equal(a.role, "follower");
  assert.equal(a.term, term + 1);
  net.tickAll();
  assert.equal(a.leader, leader);
  assert.ok(isRefusal(a.propose("late")));
});

Deno.test("core: the same inputs give the same outputs", () => {
  const trace = () => {
    const net = new Net(["a", "b", "c"]);
    for (let i = 0; i < 60; i++) {
      net.tickAll();
      if (i % 7 === 0) { for (const core of net.cores.values()) core.propose(i); }
    }
    return JSON.stringify(net.delivered);
  };
  const first = trace();
  assert.ok(first.length > 1000);
  assert.equal(trace(), first);
});

Deno.test("core: a node holding its own uncommitted removal still campaigns; once the removal is committed it does not", () => {
  const removal: Entry = {
    index: 2,
    term: 1,
    kind: "membership",
    membership: { voters: ["b", "c"], learners: [] },
  };
  const node = (commit: number) =>
    makeCore("a", ["a", "b", "c"], [], {
      hardState: { term: 1, vote: "a", commit },
      entries: [cmd(1, 1), removal],
    });
  // Its log may be the only one with the removal, and the longest: if it
  // waited, and the others could not win without its vote, no one would lead.
  const pending = node(1);
  for (let i = 0; i < 100 && pending.role === "follower"; i++) pending.tick();
  assert.notEqual(pending.role, "follower", "a did not campaign");
  const removed = node(2);
  for (let i = 0; i < 100; i++) removed.tick();
  assert.equal(removed.role, "follower");
});

// ---- answers matched to requests ----

Deno.test("core: an answer stays tagged with its request while a ReadIndex re-sends heartbeats", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.get("a");
  a.tick(); // heartbeats to b and c wait in the outbox
  // A stale vote request, stepped as RPC 7: its refusal is an answer.
  a.step(
    {
      type: "vote",
      from: "b",
      to: "a",
      term: 0,
      pre: false,
      transfer: false,
      lastIndex: 0,
      lastTerm: 0,
    },
    { requestId: 7 },
  );
  // A read re-sends the heartbeats, dropping the earlier ones from the outbox:
  // an answer found by its position in the outbox would now be a heartbeat.
  assert.equal(a.readIndex(1), undefined);
  const rd = a.ready();
  assert.deepEqual(
    rd.replies.map((r) => [r.requestId, r.message.type, r.message.to]),
    [[7, "voteResp", "b"]],
  );
  assert.equal(rd.messages.some((m) => m.type === "voteResp"), false);
  assert.deepEqual(
    rd.messages.filter((m) => m.type === "heartbeat").map((m) => m.to).sort(),
    ["b", "c"],
    "one heartbeat per peer",
  );
});

Deno.test("core: a follower's heartbeat answer is taken by request id, other answers stay", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const b = net.get("b");
  const term = b.term;
  b.step({ type: "heartbeat", from: "a", to: "b", term, commit: 0, context: 3 }, { requestId: 1 });
  b.step(
    {
      type: "append",
      from: "a",
      to: "b",
      term,
      prevIndex: 1,
      prevTerm: term,
      entries: [],
      commit: 1,
      seq: 9,
    },
    { requestId: 2 },
  );
  assert.equal(
    b.takeReplies(2, "heartbeatResp"),
    undefined,
    "request 2 was answered by an appendResp",
  );
  assert.deepEqual(b.takeReplies(1, "heartbeatResp")?.map((m) => m.type), ["heartbeatResp"]);
  assert.equal(b.takeReplies(1, "heartbeatResp"), undefined, "taken once");
  const rd = b.ready();
  assert.deepEqual(rd.replies.map((r) => [r.requestId, r.message.type]), [[2, "appendResp"]]);
  b.step({ type: "heartbeat", from: "a", to: "b", term, commit: 0, context: 4 });
  assert.deepEqual(
    b.ready().messages.map((m) => m.type),
    ["heartbeatResp"],
    "untagged: in messages",
  );
});

Deno.test("core: campaignAfter: a node whose log ends below a committed index it was told of does not campaign", () => {
  let floor = 3;
  const a = makeCore("a", ["a", "b", "c"], [], { entries: [cmd(1, 1), cmd(2, 1)] }, {
    campaignAfter: () => floor,
  });
  const campaigned = () => {
    for (let t = 0; t < 100; t++) {
      a.tick();
      if (a.role !== "follower") return true;
    }
    return false;
  };
  assert.equal(campaigned(), false, "log ends at 2, below 3: it waits for a leader");
  floor = 2;
  assert.equal(campaigned(), true, "its log reaches the floor: it campaigns");
  // Control: the same node without the option campaigns at once.
  const b = makeCore("b", ["a", "b", "c"], [], { entries: [cmd(1, 1)] });
  let ticks = 0;
  while (b.role === "follower" && ticks++ < 100) b.tick();
  assert.notEqual(b.role, "follower");
});
