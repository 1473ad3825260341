/**
 * The storage contract, run against every `RaftStorage`: `MemoryStorage`,
 * `DenoKvStorage` and `SegmentLogStorage` (each durable one also closed and
 * reopened, which must read back the same). Tests of one kind's own
 * behaviour are in its own test file.
 */
import assert from "node:assert/strict";
import { cmd, run } from "./test_util.ts";
import { MemoryStorage, type RaftStorage } from "./storage.ts";
import { DenoKvStorage } from "./kv_storage.ts";
import { SegmentLogStorage } from "./segment_storage.ts";
import type { Entry, HardState, Snapshot } from "./types.ts";

/** A storage under test, and how to get it back after a clean restart. */
interface Subject {
  kind: Kind;
  storage: RaftStorage;
  /** Closes it and opens what it left (the same object for MemoryStorage). */
  reopen(): Promise<RaftStorage>;
  cleanup(): Promise<void>;
}

interface Kind {
  name: string;
  open(): Promise<Subject>;
}

async function durable(
  kind: Kind,
  openAt: (dir: string) => Promise<RaftStorage>,
): Promise<Subject> {
  const dir = await Deno.makeTempDir({ prefix: `distkit-${kind.name}-` });
  const subject: Subject = {
    kind,
    storage: await openAt(dir),
    async reopen() {
      await subject.storage.close();
      subject.storage = await openAt(dir);
      return subject.storage;
    },
    async cleanup() {
      await subject.storage.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
  return subject;
}

const KINDS: Kind[] = [
  {
    name: "memory",
    open() {
      const storage = new MemoryStorage();
      return Promise.resolve({
        kind: KINDS[0],
        storage,
        reopen: () => Promise.resolve(storage),
        cleanup: () => storage.close(),
      });
    },
  },
  {
    name: "deno-kv",
    open: () => durable(KINDS[1], (dir) => DenoKvStorage.open(`${dir}/raft.kv`)),
  },
  {
    name: "segments",
    // Small segments, so the contract's runs also cross segment boundaries.
    open: () =>
      durable(
        KINDS[2],
        (dir) => SegmentLogStorage.open(`${dir}/raft.log`, { segmentBytes: 4096 }),
      ),
  },
];

/** One contract test per kind; `check` gets the subject and must leave it open. */
function contract(name: string, check: (s: Subject) => Promise<void>): void {
  for (const kind of KINDS) {
    Deno.test(`storage (${kind.name}): ${name}`, async () => {
      const subject = await kind.open();
      try {
        await check(subject);
      } finally {
        await subject.cleanup();
      }
    });
  }
}

/** Whether a reopened storage loads exactly what `s` loads now; returns the reopened one. */
async function sameAfterReopen(subject: Subject): Promise<RaftStorage> {
  const before = await subject.storage.load();
  const size = subject.storage.raftStateSize();
  const snapshotSize = subject.storage.snapshotSize();
  const after = await subject.reopen();
  assert.deepEqual(await after.load(), before, "a reopened storage loads what it held");
  assert.equal(after.raftStateSize(), size, "raftStateSize survives a restart");
  assert.equal(after.snapshotSize(), snapshotSize, "snapshotSize survives a restart");
  return after;
}

function snapshot(index: number, term: number, data: number[]): Snapshot {
  return {
    meta: { index, term, membership: { voters: ["a", "b"], learners: ["c"] } },
    data: new Uint8Array(data),
  };
}

async function indexes(storage: RaftStorage): Promise<number[]> {
  return (await storage.load()).entries.map((e) => e.index);
}

contract("a fresh storage loads term 0, no vote, no entries, no snapshot", async (subject) => {
  const s = subject.storage;
  const state = await s.load();
  assert.deepEqual(state, { hardState: { term: 0, vote: null, commit: 0 }, entries: [] });
  assert.equal(s.snapshotSize(), 0);
  assert.ok(s.raftStateSize() >= 0);
  await sameAfterReopen(subject);
});

contract("save then load round-trips hard state, entries and snapshot", async (subject) => {
  const s = subject.storage;
  const hs: HardState = { term: 4, vote: "b", commit: 6 };
  const entries: Entry[] = [
    cmd(6, 3, { op: "put", key: "k", value: [1, 2] }),
    { index: 7, term: 4, kind: "noop" },
    { index: 8, term: 4, kind: "membership", membership: { voters: ["a"], learners: ["d"] } },
    cmd(9, 4, new Uint8Array([9, 8, 7])),
  ];
  const snap = snapshot(5, 3, [1, 2, 3, 4]);
  await s.save({ hardState: hs, entries, snapshot: snap, resetLog: false });
  const state = await s.load();
  assert.deepEqual(state.hardState, hs);
  assert.deepEqual(state.entries, entries);
  assert.deepEqual(state.snapshot, snap);
  assert.ok(state.snapshot!.data instanceof Uint8Array);
  // What load returns shares nothing with what was saved.
  hs.term = 99;
  entries[0].term = 99;
  snap.data[0] = 99;
  const again = await s.load();
  assert.equal(again.hardState.term, 4);
  assert.equal(again.entries[0].term, 3);
  assert.equal(again.snapshot!.data[0], 1);
  again.entries.pop();
  assert.equal((await s.load()).entries.length, 4);
  await sameAfterReopen(subject);
});

contract("a batch without hardState keeps the stored one", async (subject) => {
  const s = subject.storage;
  await s.save({ hardState: { term: 2, vote: "a", commit: 0 }, entries: [], resetLog: false });
  await s.save({ entries: [cmd(1, 2)], resetLog: false });
  const state = await s.load();
  assert.deepEqual(state.hardState, { term: 2, vote: "a", commit: 0 });
  assert.deepEqual(state.entries, [cmd(1, 2)]);
  await sameAfterReopen(subject);
});

contract(
  "entries replace the stored ones from entries[0].index on, stale ones beyond included",
  async (subject) => {
    const s = subject.storage;
    await s.save({ entries: run(1, 6, 1), resetLog: false });
    await s.save({ entries: [cmd(3, 2, "x"), cmd(4, 2, "y")], resetLog: false });
    const state = await s.load();
    assert.deepEqual(state.entries, [cmd(1, 1), cmd(2, 1), cmd(3, 2, "x"), cmd(4, 2, "y")]);
    // Appending right after the last one keeps everything.
    await s.save({ entries: [cmd(5, 2)], resetLog: false });
    assert.deepEqual(await indexes(s), [1, 2, 3, 4, 5]);
    // Rewriting from the very first entry replaces the whole log.
    await s.save({ entries: [cmd(1, 3)], resetLog: false });
    assert.deepEqual((await s.load()).entries, [cmd(1, 3)]);
    await sameAfterReopen(subject);
  },
);

contract("entries that leave a gap after the stored log are refused", async (subject) => {
  const s = subject.storage;
  await s.save({ entries: run(1, 3, 1), resetLog: false });
  await assert.rejects(
    async () => await s.save({ entries: [cmd(5, 1)], resetLog: false }),
    /entry 5 does not follow the stored log/,
  );
  assert.deepEqual(await indexes(s), [1, 2, 3], "the stored log is unchanged");
  await sameAfterReopen(subject);
});

contract("a snapshot drops the stored entries up to its index", async (subject) => {
  const s = subject.storage;
  await s.save({ entries: run(1, 8, 1), resetLog: false });
  await s.save({ entries: [], snapshot: snapshot(5, 1, [7, 7]), resetLog: false });
  let state = await s.load();
  assert.deepEqual(state.entries.map((e) => e.index), [6, 7, 8]);
  assert.equal(state.snapshot!.meta.index, 5);
  // Entries continue after the remaining ones.
  await s.save({ entries: [cmd(9, 2)], resetLog: false });
  assert.deepEqual(await indexes(s), [6, 7, 8, 9]);
  // A snapshot past every stored entry leaves none, and the log continues after it.
  await s.save({ entries: [], snapshot: snapshot(12, 2, [1]), resetLog: false });
  state = await s.load();
  assert.deepEqual(state.entries, []);
  assert.equal(state.snapshot!.meta.index, 12);
  await s.save({ entries: [cmd(13, 2)], resetLog: false });
  assert.deepEqual(await indexes(s), [13]);
  // A newer snapshot replaces the older one.
  assert.deepEqual((await s.load()).snapshot!.data, new Uint8Array([1]));
  await sameAfterReopen(subject);
});

contract("a snapshot and entries after it in one batch", async (subject) => {
  const s = subject.storage;
  await s.save({ entries: run(1, 4, 1), resetLog: false });
  await s.save({
    entries: [cmd(4, 1), cmd(5, 2)],
    snapshot: snapshot(3, 1, [1, 2]),
    resetLog: false,
  });
  assert.deepEqual(await indexes(s), [4, 5]);
  await sameAfterReopen(subject);
});

contract("resetLog drops every stored entry first", async (subject) => {
  const s = subject.storage;
  await s.save({ entries: run(1, 10, 1), resetLog: false });
  // An installed snapshot that did not match: the log restarts after it.
  await s.save({
    hardState: { term: 3, vote: null, commit: 6 },
    entries: [cmd(7, 3)],
    snapshot: snapshot(6, 3, [5, 5, 5]),
    resetLog: true,
  });
  const state = await s.load();
  assert.deepEqual(state.entries, [cmd(7, 3)], "8..10 of the old log are gone too");
  assert.equal(state.snapshot!.meta.index, 6);
  assert.equal(state.hardState.commit, 6);
  // Without a snapshot, resetLog empties the log.
  await s.save({ entries: [], resetLog: true });
  assert.deepEqual(await indexes(s), []);
  await sameAfterReopen(subject);
});

Deno.test("storage: copy() is isolated: a zombie's writes to the old copy never reach the new one", async () => {
  const old = new MemoryStorage();
  await old.save({
    hardState: { term: 2, vote: "a", commit: 1 },
    entries: run(1, 3, 2),
    resetLog: false,
  });
  const fresh = old.copy();
  assert.equal(fresh.raftStateSize(), old.raftStateSize(), "a copy has the same size");
  // The zombie keeps writing to the old storage: new term, truncation, snapshot.
  await old.save({
    hardState: { term: 7, vote: "z", commit: 2 },
    entries: [cmd(2, 7, "zombie")],
    snapshot: snapshot(1, 2, [0]),
    resetLog: false,
  });
  const state = await fresh.load();
  assert.deepEqual(state.hardState, { term: 2, vote: "a", commit: 1 });
  assert.deepEqual(state.entries, run(1, 3, 2));
  assert.equal(state.snapshot, undefined);
  assert.equal(fresh.snapshotSize(), 0);
  // And the other way round.
  await fresh.save({ entries: [cmd(4, 2)], resetLog: false });
  assert.deepEqual(await indexes(old), [2]);
  assert.deepEqual(await indexes(fresh), [1, 2, 3, 4]);
  // A copy outlives the closing of its original.
  const c = fresh.copy();
  assert.equal(c.raftStateSize(), fresh.raftStateSize());
  await fresh.close();
  assert.deepEqual(await indexes(c), [1, 2, 3, 4]);
});

contract("raftStateSize and snapshotSize track what is stored", async (subject) => {
  const s = subject.storage;
  const empty = s.raftStateSize();
  await s.save({ entries: run(1, 10, 1), resetLog: false });
  const ten = s.raftStateSize();
  assert.ok(ten > empty, `${ten} > ${empty}`);
  await s.save({ entries: [cmd(6, 2)], resetLog: false }); // 6 replaces 6..10
  const six = s.raftStateSize();
  assert.ok(six < ten, `truncation shrinks: ${six} < ${ten}`);
  await s.save({ entries: [], snapshot: snapshot(4, 1, new Array(100).fill(1)), resetLog: false });
  assert.equal(s.snapshotSize(), 100);
  const two = s.raftStateSize();
  assert.ok(two < six, `a snapshot shrinks the log: ${two} < ${six}`);
  await s.save({ entries: [], snapshot: snapshot(6, 2, [1, 2, 3]), resetLog: false });
  assert.equal(s.snapshotSize(), 3);
  assert.equal(s.raftStateSize(), empty, "no entries left: only the hard state");
  // The hard state counts too.
  await s.save({
    hardState: { term: 1, vote: "a-rather-long-node-name", commit: 6 },
    entries: [],
    resetLog: false,
  });
  assert.ok(s.raftStateSize() > empty);
  await sameAfterReopen(subject);
});

contract("entry bytes are accounted exactly over many rewrites", async (subject) => {
  // After any sequence of rewrites, the size equals that of a storage written once.
  const s = subject.storage;
  await s.save({ entries: run(1, 20, 1), resetLog: false });
  await s.save({ entries: run(15, 25, 2), resetLog: false });
  await s.save({ entries: [], snapshot: snapshot(5, 1, [1]), resetLog: false });
  await s.save({ entries: run(10, 12, 3), resetLog: false });
  const state = await s.load();
  const other = await subject.kind.open();
  try {
    await other.storage.load();
    // Durable stores take a log's first entry only at the start or after a snapshot.
    await other.storage.save({ entries: [], snapshot: snapshot(5, 1, [1]), resetLog: false });
    await other.storage.save({ entries: state.entries, resetLog: false });
    assert.deepEqual(state.entries.map((e) => e.index), [6, 7, 8, 9, 10, 11, 12]);
    assert.equal(s.raftStateSize(), other.storage.raftStateSize());
  } finally {
    await other.cleanup();
  }
  await sameAfterReopen(subject);
});

contract("a closed storage refuses load and save", async (subject) => {
  const s = subject.storage;
  await s.save({ hardState: { term: 1, vote: null, commit: 0 }, entries: [], resetLog: false });
  await s.close();
  await assert.rejects(async () => await s.load(), /closed/);
  await assert.rejects(
    async () => await s.save({ entries: [cmd(1, 1)], resetLog: false }),
    /closed/,
  );
});
