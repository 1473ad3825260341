import assert from "node:assert/strict";
import { cmd, run } from "./test_util.ts";
import { Random } from "../net/random.ts";
import { RaftInvariantError } from "./invariant.ts";
import { RaftLog } from "./log.ts";
import type { Entry, Membership, SnapshotMeta } from "./types.ts";

const M0: Membership = { voters: ["a"], learners: [] };

function meta(index: number, term: number, membership: Membership = M0): SnapshotMeta {
  return { index, term, membership };
}

function mem(index: number, term: number, membership: Membership): Entry {
  return { index, term, kind: "membership", membership };
}

function terms(log: RaftLog): number[] {
  return log.entries.map((e) => e.term);
}

Deno.test("log: an empty log has first 1, last 0 and term 0 at index 0", () => {
  const log = new RaftLog(meta(0, 0), []);
  assert.equal(log.firstIndex(), 1);
  assert.equal(log.lastIndex(), 0);
  assert.equal(log.lastTerm(), 0);
  assert.equal(log.term(0), 0);
  assert.equal(log.term(1), undefined);
  assert.equal(log.entry(1), undefined);
  assert.deepEqual(log.unstable(), []);
});

Deno.test("log: term lookups across the snapshot boundary", () => {
  const log = new RaftLog(meta(10, 3), [...run(11, 12, 3), ...run(13, 14, 5)]);
  assert.equal(log.firstIndex(), 11);
  assert.equal(log.lastIndex(), 14);
  assert.equal(log.lastTerm(), 5);
  assert.equal(log.term(9), undefined, "compacted");
  assert.equal(log.term(10), 3, "the snapshot's own index has the snapshot's term");
  assert.equal(log.term(11), 3);
  assert.equal(log.term(13), 5);
  assert.equal(log.term(14), 5);
  assert.equal(log.term(15), undefined, "beyond the end");
  assert.equal(log.entry(10), undefined, "the snapshot's entry itself is gone");
  assert.deepEqual(log.entry(12), cmd(12, 3));
  assert.equal(log.matches(10, 3), true);
  assert.equal(log.matches(10, 2), false);
  assert.equal(log.matches(15, 5), false);
  // A compacted log with no entries: last term is the snapshot's.
  const bare = new RaftLog(meta(7, 2), []);
  assert.equal(bare.lastIndex(), 7);
  assert.equal(bare.lastTerm(), 2);
});

Deno.test("log: stored entries at or before the snapshot are skipped at start-up", () => {
  const log = new RaftLog(meta(3, 1), run(1, 6, 1));
  assert.equal(log.firstIndex(), 4);
  assert.deepEqual(log.entries.map((e) => e.index), [4, 5, 6]);
  assert.equal(log.stableIndex, 6, "what storage gave back is stable");
  assert.deepEqual(log.unstable(), []);
});

Deno.test("log: a gap or a term going back in stored entries is an invariant violation", () => {
  assert.throws(() => new RaftLog(meta(0, 0), [cmd(1, 1), cmd(3, 1)]), RaftInvariantError);
  assert.throws(() => new RaftLog(meta(0, 0), [cmd(1, 2), cmd(2, 1)]), RaftInvariantError);
  assert.throws(() => new RaftLog(meta(5, 4), [cmd(6, 3)]), RaftInvariantError);
});

Deno.test("log: slice clips to the log on both sides", () => {
  const log = new RaftLog(meta(4, 1), run(5, 9, 2));
  const idx = (es: Entry[]) => es.map((e) => e.index);
  assert.deepEqual(idx(log.slice(5, 9)), [5, 6, 7, 8, 9]);
  assert.deepEqual(idx(log.slice(0, 100)), [5, 6, 7, 8, 9]);
  assert.deepEqual(idx(log.slice(1, 6)), [5, 6], "compacted part clipped");
  assert.deepEqual(idx(log.slice(8, 20)), [8, 9], "end clipped");
  assert.deepEqual(idx(log.slice(7, 7)), [7]);
  assert.deepEqual(log.slice(7, 6), [], "empty range");
  assert.deepEqual(log.slice(10, 20), [], "beyond the end");
  assert.deepEqual(log.slice(1, 4), [], "entirely compacted");
});

Deno.test("log: isUpToDate compares last term first, then last index", () => {
  const log = new RaftLog(meta(0, 0), [...run(1, 3, 1), ...run(4, 5, 2)]);
  assert.equal(log.isUpToDate(5, 2), true, "identical");
  assert.equal(log.isUpToDate(6, 2), true, "longer, same term");
  assert.equal(log.isUpToDate(4, 2), false, "shorter, same term");
  assert.equal(log.isUpToDate(1, 3), true, "higher term wins even if shorter");
  assert.equal(log.isUpToDate(100, 1), false, "lower term loses even if longer");
});

Deno.test("log: appendAfterMatch is a no-op when every entry already matches", () => {
  const log = new RaftLog(meta(0, 0), run(1, 5, 1));
  log.appendAfterMatch([cmd(2, 1), cmd(3, 1)], 0);
  assert.equal(log.lastIndex(), 5, "matching entries must not truncate the suffix");
  assert.deepEqual(terms(log), [1, 1, 1, 1, 1]);
  assert.equal(log.stableIndex, 5);
  log.appendAfterMatch([], 0);
  assert.equal(log.lastIndex(), 5);
});

Deno.test("log: appendAfterMatch appends the new tail after matching entries", () => {
  const log = new RaftLog(meta(0, 0), run(1, 3, 1));
  log.appendAfterMatch([cmd(3, 1), cmd(4, 2), cmd(5, 2)], 0);
  assert.deepEqual(terms(log), [1, 1, 1, 2, 2]);
  assert.deepEqual(log.unstable().map((e) => e.index), [4, 5]);
});

Deno.test("log: appendAfterMatch truncates from the first conflicting entry", () => {
  const log = new RaftLog(meta(0, 0), run(1, 6, 1));
  log.appendAfterMatch([cmd(3, 1), cmd(4, 2)], 2);
  assert.equal(log.lastIndex(), 4, "5 and 6 (term 1) are gone");
  assert.deepEqual(terms(log), [1, 1, 1, 2]);
  assert.equal(log.stableIndex, 3, "only 1..3 are still known to be on storage");
  assert.deepEqual(log.unstable(), [cmd(4, 2)]);
});

Deno.test("log: appendAfterMatch refuses to truncate a committed entry", () => {
  const log = new RaftLog(meta(0, 0), run(1, 5, 1));
  assert.throws(() => log.appendAfterMatch([cmd(3, 2)], 3), RaftInvariantError);
  assert.deepEqual(terms(log), [1, 1, 1, 1, 1], "the log is untouched");
  // One above the commit index is fine.
  log.appendAfterMatch([cmd(4, 2)], 3);
  assert.deepEqual(terms(log), [1, 1, 1, 2]);
});

Deno.test("log: appendAfterMatch refuses a gap after the log", () => {
  const log = new RaftLog(meta(0, 0), run(1, 2, 1));
  assert.throws(() => log.appendAfterMatch([cmd(4, 1)], 0), RaftInvariantError);
  assert.equal(log.lastIndex(), 2);
});

Deno.test("log: append refuses entries that do not follow the log", () => {
  const log = new RaftLog(meta(0, 0), run(1, 2, 2));
  assert.throws(() => log.append([cmd(4, 2)]), RaftInvariantError);
  assert.throws(() => log.append([cmd(3, 1)]), RaftInvariantError, "term went back");
  log.append([cmd(3, 2)]);
  assert.equal(log.lastIndex(), 3);
});

Deno.test("log: markStable never goes back nor beyond the end", () => {
  const log = new RaftLog(meta(0, 0), []);
  log.append(run(1, 4, 1));
  assert.equal(log.stableIndex, 0);
  log.markStable(2);
  assert.equal(log.stableIndex, 2);
  log.markStable(1);
  assert.equal(log.stableIndex, 2);
  log.markStable(99);
  assert.equal(log.stableIndex, 4);
  assert.deepEqual(log.unstable(), []);
});

Deno.test("log: compact drops entries up to the index and keeps the rest", () => {
  const log = new RaftLog(meta(0, 0), [...run(1, 3, 1), ...run(4, 6, 2)]);
  log.compact(4);
  assert.equal(log.snapshotIndex, 4);
  assert.equal(log.snapshotTerm, 2);
  assert.equal(log.firstIndex(), 5);
  assert.equal(log.lastIndex(), 6);
  assert.equal(log.term(4), 2);
  assert.equal(log.term(3), undefined);
  assert.deepEqual(log.entries.map((e) => e.index), [5, 6]);
  log.compact(2); // older than the snapshot: nothing to do
  assert.equal(log.snapshotIndex, 4);
  log.compact(6);
  assert.equal(log.entries.length, 0);
  assert.equal(log.lastIndex(), 6);
  assert.equal(log.lastTerm(), 2);
  assert.throws(() => log.compact(7), RaftInvariantError, "beyond the last index");
});

Deno.test("log: restore keeps the suffix after a snapshot whose last entry it has", () => {
  const log = new RaftLog(meta(0, 0), [...run(1, 5, 1), ...run(6, 8, 2)]);
  const kept = log.restore(meta(5, 1));
  assert.equal(kept, true);
  assert.equal(log.snapshotIndex, 5);
  assert.equal(log.snapshotTerm, 1);
  assert.deepEqual(log.entries.map((e) => e.index), [6, 7, 8]);
  assert.equal(log.lastTerm(), 2);
});

Deno.test("log: restore discards the log when the snapshot's last entry differs or is missing", () => {
  const conflicting = new RaftLog(meta(0, 0), [...run(1, 5, 1), ...run(6, 8, 2)]);
  assert.equal(conflicting.restore(meta(7, 3, { voters: ["x"], learners: [] })), false);
  assert.equal(conflicting.snapshotIndex, 7);
  assert.equal(conflicting.snapshotTerm, 3);
  assert.equal(conflicting.lastIndex(), 7);
  assert.equal(conflicting.entries.length, 0);
  assert.equal(conflicting.stableIndex, 7);
  assert.deepEqual(conflicting.membership(), { voters: ["x"], learners: [] });

  const short = new RaftLog(meta(0, 0), run(1, 3, 1));
  assert.equal(short.restore(meta(10, 2)), false);
  assert.equal(short.lastIndex(), 10);
  assert.equal(short.term(10), 2);
  assert.equal(short.term(3), undefined);
});

Deno.test("log: membershipAt follows the history through appends, truncation and compaction", () => {
  const m1: Membership = { voters: ["a", "b"], learners: [] };
  const m2: Membership = { voters: ["a", "b"], learners: ["c"] };
  const m3: Membership = { voters: ["a", "b", "c"], learners: [] };
  const log = new RaftLog(meta(0, 0), [
    cmd(1, 1),
    cmd(2, 1),
    mem(3, 1, m1),
    cmd(4, 1),
    mem(5, 2, m2),
    cmd(6, 2),
    mem(7, 2, m3),
  ]);
  assert.deepEqual(log.membershipAt(2), M0);
  assert.deepEqual(log.membershipAt(3), m1);
  assert.deepEqual(log.membershipAt(4), m1);
  assert.deepEqual(log.membershipAt(5), m2);
  assert.deepEqual(log.membershipAt(6), m2);
  assert.deepEqual(log.membershipAt(7), m3);
  assert.deepEqual(log.membershipAt(100), m3);
  assert.deepEqual(log.membership(), m3);
  assert.equal(log.membershipIndex(), 7);

  // Truncation forgets memberships from the truncated entries.
  log.appendAfterMatch([cmd(6, 3)], 5);
  assert.deepEqual(log.membership(), m2);
  assert.equal(log.membershipIndex(), 5);
  assert.deepEqual(log.membershipAt(7), m2);
  log.truncateFrom(5);
  assert.deepEqual(log.membership(), m1);
  assert.equal(log.membershipIndex(), 3);

  // Compaction keeps the membership in force at the snapshot as its first one.
  log.append([mem(5, 3, m3), cmd(6, 3)]);
  log.compact(4);
  assert.deepEqual(log.membershipAt(4), m1);
  assert.deepEqual(log.membershipAt(1), m1, "before the snapshot: the snapshot's membership");
  assert.deepEqual(log.membershipAt(5), m3);
  assert.equal(log.membershipIndex(), 5);
  log.compact(6);
  assert.deepEqual(log.membership(), m3);
  assert.equal(log.membershipIndex(), 6, "no membership entry after the snapshot");
  // Truncating never removes the snapshot's membership.
  log.append([cmd(7, 3)]);
  log.truncateFrom(7);
  assert.deepEqual(log.membership(), m3);
});

/** A random log: a snapshot somewhere, then runs of non-decreasing terms. */
function randomLog(random: Random): RaftLog {
  const snapIndex = random.int(4) === 0 ? 0 : random.int(20);
  let term = snapIndex === 0 ? 0 : 1 + random.int(3);
  const snap = meta(snapIndex, term);
  const entries: Entry[] = [];
  const n = random.int(40);
  for (let i = 1; i <= n; i++) {
    if (term === 0 || random.int(4) === 0) term += 1 + random.int(2);
    entries.push(cmd(snapIndex + i, term));
  }
  return new RaftLog(snap, entries);
}

function bruteFirstIndexOfTerm(log: RaftLog, index: number): number {
  let i = index;
  while (i - 1 >= log.firstIndex() && log.term(i - 1) === log.term(index)) i--;
  return i;
}

function bruteLastIndexOfTerm(log: RaftLog, term: number): number {
  for (let i = log.lastIndex(); i >= log.snapshotIndex; i--) if (log.term(i) === term) return i;
  return 0;
}

Deno.test("log: firstIndexOfTerm and lastIndexOfTerm agree with brute force on random logs", () => {
  const random = new Random(20240611);
  let checked = 0;
  for (let trial = 0; trial < 300; trial++) {
    const log = randomLog(random);
    for (let i = log.firstIndex(); i <= log.lastIndex(); i++) {
      assert.equal(log.firstIndexOfTerm(i), bruteFirstIndexOfTerm(log, i), `trial ${trial} i ${i}`);
      checked++;
    }
    for (let t = 0; t <= log.lastTerm() + 2; t++) {
      assert.equal(log.lastIndexOfTerm(t), bruteLastIndexOfTerm(log, t), `trial ${trial} t ${t}`);
      checked++;
    }
  }
  assert.ok(checked > 3000, `only ${checked} checks`);
});

Deno.test("log: firstIndexOfTerm and lastIndexOfTerm on a known log", () => {
  // Terms: 1 1 1 | 2 2 | 4 4 4 4 (indexes 1..9).
  const log = new RaftLog(meta(0, 0), [...run(1, 3, 1), ...run(4, 5, 2), ...run(6, 9, 4)]);
  assert.equal(log.firstIndexOfTerm(3), 1);
  assert.equal(log.firstIndexOfTerm(5), 4);
  assert.equal(log.firstIndexOfTerm(9), 6);
  assert.equal(log.lastIndexOfTerm(1), 3);
  assert.equal(log.lastIndexOfTerm(2), 5);
  assert.equal(log.lastIndexOfTerm(3), 0, "a term the log does not hold");
  assert.equal(log.lastIndexOfTerm(4), 9);
  assert.equal(log.lastIndexOfTerm(5), 0);
  // After compaction the search stays inside the log.
  log.compact(4);
  assert.equal(log.firstIndexOfTerm(5), 5, "first index of the log, term 2 continues the snapshot");
  assert.equal(log.lastIndexOfTerm(1), 0, "term 1 is compacted away");
  assert.equal(log.lastIndexOfTerm(2), 5);
});

Deno.test("log: the index of the entry that set a membership survives compaction and snapshots", () => {
  const founding = { voters: ["a", "b", "c"], learners: [] };
  const log = new RaftLog({ index: 0, term: 0, membership: founding }, [
    { index: 1, term: 1, kind: "noop" },
    { index: 2, term: 1, kind: "membership", membership: { voters: ["a", "b"], learners: [] } },
    { index: 3, term: 1, kind: "noop" },
    { index: 4, term: 1, kind: "noop" },
  ]);
  assert.equal(log.membershipIndexAt(1), 0);
  assert.equal(log.membershipIndexAt(3), 2);
  log.compact(3);
  assert.equal(log.membershipIndexAt(4), 2, "compacted past it: still the entry's index");
  const restored = new RaftLog(
    { index: 9, term: 2, membership: { voters: ["a"], learners: [] }, membershipIndex: 7 },
    [],
  );
  assert.equal(restored.membershipIndexAt(9), 7);
  const old = new RaftLog({ index: 9, term: 2, membership: founding }, []);
  assert.equal(old.membershipIndexAt(9), 9, "a snapshot without it: its own index");
});
