import assert from "node:assert/strict";
import { DenoKvStorage } from "./kv_storage.ts";
import { StorageCorruptionError, StorageLossError } from "../store/storage_errors.ts";
import { HighWaterMark, MarkCorruptionError, SLOT_BYTES } from "./high_water_mark.ts";
import type { Entry, Snapshot } from "./types.ts";
import { entries, snapshotAt, withTempDir } from "./test_util.ts";

function withStore(fn: (dir: string) => Promise<void>): Promise<void> {
  return withTempDir(fn, { prefix: "distkit-kv-", child: "raft.kv" });
}

/** How many keys the store at `path` holds under `prefix`. */
async function countKeys(path: string, prefix: Deno.KvKey): Promise<number> {
  const kv = await Deno.openKv(path);
  try {
    let n = 0;
    for await (const _ of kv.list({ prefix })) n++;
    return n;
  } finally {
    kv.close();
  }
}

Deno.test("kv storage: save, close, reopen, load", async () => {
  await withStore(async (path) => {
    const s1 = await DenoKvStorage.open(path);
    assert.deepEqual(await s1.load(), {
      hardState: { term: 0, vote: null, commit: 0 },
      entries: [],
    });
    await s1.save({
      hardState: { term: 2, vote: "a", commit: 3 },
      entries: entries(1, 5, 2),
      resetLog: false,
    });
    await s1.close();
    const s2 = await DenoKvStorage.open(path);
    const state = await s2.load();
    assert.deepEqual(state.hardState, { term: 2, vote: "a", commit: 3 });
    assert.deepEqual(state.entries, entries(1, 5, 2));
    assert.ok(s2.raftStateSize() > 0);
    await s2.close();
  });
});

Deno.test("kv storage: a conflicting suffix is replaced, stale entries beyond it vanish", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await s.save({ entries: entries(1, 10, 1), resetLog: false });
    await s.save({ entries: entries(4, 6, 2), resetLog: false });
    assert.deepEqual((await s.load()).entries, [...entries(1, 3, 1), ...entries(4, 6, 2)]);
    await assert.rejects(s.save({ entries: entries(9, 9, 2), resetLog: false }), /does not follow/);
    await s.close();
  });
});

Deno.test("kv storage: batches over Deno KV's per-commit limits are split", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    // 2,500 entries (over 1,000 mutations) of 1 KiB (over 800 KiB).
    const many = entries(1, 2500, 1, 1024);
    await s.save({
      hardState: { term: 1, vote: null, commit: 2500 },
      entries: many,
      resetLog: false,
    });
    await s.close();
    const again = await DenoKvStorage.open(path);
    const state = await again.load();
    assert.equal(state.entries.length, 2500);
    assert.deepEqual(state.entries[2499], many[2499]);
    assert.equal(state.hardState.commit, 2500);
    await again.close();
  });
});

Deno.test("kv storage: entries and snapshots over 64 KiB are stored in parts", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    const big: Entry = { index: 1, term: 1, kind: "command", command: "y".repeat(200_000) };
    await s.save({ entries: [big, ...entries(2, 3, 1)], resetLog: false });
    const snap = snapshotAt(2, 1, 300_000);
    await s.save({ snapshot: snap, entries: [], resetLog: false });
    await s.close();
    const again = await DenoKvStorage.open(path);
    const state = await again.load();
    assert.deepEqual(state.snapshot, snap);
    assert.deepEqual(state.entries, entries(3, 3, 1), "entries up to the snapshot are dropped");
    assert.equal(again.snapshotSize(), 300_000);
    await again.close();
  });
});

Deno.test("kv storage: an entry over Deno KV's 800 KiB commit limit is stored across commits", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await s.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: entries(1, 3, 1),
      resetLog: false,
    });
    // Entry 2 is overwritten by a new leader's 2 MiB entry (and 3 dropped).
    const huge: Entry = {
      index: 2,
      term: 2,
      kind: "command",
      command: "z".repeat(2 * 1024 * 1024),
    };
    await s.save({
      hardState: { term: 2, vote: "b", commit: 1 },
      entries: [huge, ...entries(3, 4, 2)],
      resetLog: false,
    });
    await s.close();
    const again = await DenoKvStorage.open(path);
    const state = await again.load();
    assert.deepEqual(state.entries, [...entries(1, 1, 1), huge, ...entries(3, 4, 2)]);
    assert.deepEqual(state.hardState, { term: 2, vote: "b", commit: 1 });
    await again.close();
  });
});

Deno.test("kv storage: an entry overwritten by a smaller one leaves none of its parts behind", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    const sized = (index: number, term: number, bytes: number): Entry => ({
      index,
      term,
      kind: "command",
      command: "p".repeat(bytes),
    });
    // Entry 2: 4 parts, then 2, then 1; entry 3: 17 parts (over one commit), then 1.
    await s.save({
      entries: [sized(1, 1, 10), sized(2, 1, 200_000), sized(3, 1, 1_000_000)],
      resetLog: false,
    });
    await s.save({ entries: [sized(2, 2, 100_000)], resetLog: false });
    await s.save({ entries: [sized(2, 3, 10), sized(3, 3, 10)], resetLog: false });
    const expected = [sized(1, 1, 10), sized(2, 3, 10), sized(3, 3, 10)];
    assert.deepEqual((await s.load()).entries, expected);
    await s.close();
    const again = await DenoKvStorage.open(path);
    assert.deepEqual((await again.load()).entries, expected);
    await again.close();
    assert.equal(await countKeys(path, ["raft", "log"]), 3, "one part per entry is left");
  });
});

Deno.test("kv storage: resetLog replaces the whole log with the snapshot", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await s.save({ snapshot: snapshotAt(5, 1, 100), entries: entries(6, 9, 1), resetLog: false });
    await s.save({ snapshot: snapshotAt(20, 3, 50), entries: [], resetLog: true });
    await s.save({ entries: entries(21, 22, 3), resetLog: false });
    const state = await s.load();
    assert.equal(state.snapshot?.meta.index, 20);
    assert.deepEqual(state.entries, entries(21, 22, 3));
    await s.close();
  });
});

/** The raw keys and values under `prefix` in the store at `path`. */
async function rawKeys(path: string, prefix: Deno.KvKey): Promise<Deno.KvEntry<unknown>[]> {
  const kv = await Deno.openKv(path);
  try {
    return await Array.fromAsync(kv.list({ prefix }));
  } finally {
    kv.close();
  }
}

/** Writes `rows` back into the store at `path`, as a crash would have left them. */
async function putRaw(path: string, rows: Deno.KvEntry<unknown>[]): Promise<void> {
  const kv = await Deno.openKv(path);
  try {
    for (const { key, value } of rows) await kv.set(key, value);
  } finally {
    kv.close();
  }
}

Deno.test("kv storage: chunks of a snapshot whose switch a crash cut off are not mixed into the next one", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await s.save({ snapshot: snapshotAt(2, 1, 100), entries: entries(3, 4, 1), resetLog: false });
    await s.close();
    // A snapshot of 5 chunks, written under the next id, then a crash
    // before the pointer switched to it: its chunks are all that is left.
    const other = await DenoKvStorage.open(`${path}.2`);
    await other.save({ snapshot: snapshotAt(2, 1, 100), entries: [], resetLog: false });
    await other.save({ snapshot: snapshotAt(4, 1, 300_000), entries: [], resetLog: false });
    await other.close();
    await putRaw(path, await rawKeys(`${path}.2`, ["raft", "snap", 2]));

    const again = await DenoKvStorage.open(path);
    assert.deepEqual((await again.load()).snapshot, snapshotAt(2, 1, 100));
    const smaller = snapshotAt(4, 1, 1000); // one chunk, under the same id
    await again.save({ snapshot: smaller, entries: [], resetLog: false });
    await again.close();
    const third = await DenoKvStorage.open(path);
    const state = await third.load();
    assert.deepEqual(state.snapshot, smaller);
    assert.deepEqual(state.entries, []);
    await third.close();
    assert.equal(await countKeys(path, ["raft", "snap"]), 1, "only the current snapshot's chunk");
  });
});

Deno.test("kv storage: entries a crash left outside the log are removed when it is loaded", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    const big: Entry = { index: 7, term: 1, kind: "command", command: "q".repeat(150_000) };
    await s.save({ entries: [...entries(1, 6, 1), big], resetLog: false });
    const compacted = await rawKeys(path, ["raft", "log", 1]);
    const dropped = await rawKeys(path, ["raft", "log", 7]);
    assert.equal(dropped.length, 3);
    // A new leader's entries replace 5..7, and a snapshot compacts 1..2;
    // then the keys a crash could have kept from being deleted come back.
    await s.save({ entries: entries(5, 6, 2), resetLog: false });
    await s.save({ snapshot: snapshotAt(2, 1, 100), entries: [], resetLog: false });
    await s.close();
    await putRaw(path, [...compacted, ...dropped]);

    const again = await DenoKvStorage.open(path);
    const expected = [...entries(3, 4, 1), ...entries(5, 6, 2)];
    assert.deepEqual((await again.load()).entries, expected);
    assert.equal(await countKeys(path, ["raft", "log"]), 4, "the leftovers are gone");
    // Entry 7 written again, smaller: nothing of the old one is mixed in.
    await again.save({ entries: entries(7, 7, 2), resetLog: false });
    await again.close();
    const third = await DenoKvStorage.open(path);
    assert.deepEqual((await third.load()).entries, [...expected, ...entries(7, 7, 2)]);
    await third.close();
  });
});

Deno.test("kv storage: compacted entries and replaced snapshots are deleted by later saves, a slice each", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    const big: Entry = { index: 1000, term: 1, kind: "command", command: "g".repeat(150_000) };
    await s.save({
      entries: [...entries(1, 999, 1), big, ...entries(1001, 2000, 1)],
      resetLog: false,
    });
    await s.save({ snapshot: snapshotAt(1990, 1, 100_000), entries: [], resetLog: false });
    // The snapshot's save does not delete 1,990 entries (it stalled the node).
    assert.ok(await countKeys(path, ["raft", "log"]) > 1900);
    await s.save({ snapshot: snapshotAt(2000, 1, 100), entries: [], resetLog: false });
    let saves = 0;
    let last = 2000;
    const stored = async () =>
      await countKeys(path, ["raft", "log"]) + await countKeys(path, ["raft", "snap"]);
    while (await stored() > 1 + (last - 2000)) {
      assert.ok(saves < 120, `garbage left after ${saves} saves of one entry`);
      await s.save({ entries: entries(last + 1, last + 1, 1), resetLog: false });
      last++;
      saves++;
    }
    assert.ok(saves > 50, `${saves} saves: the slices are not small`);
    await s.close();
    const again = await DenoKvStorage.open(path);
    const state = await again.load();
    assert.deepEqual(state.entries, entries(2001, last, 1));
    assert.deepEqual(state.snapshot, snapshotAt(2000, 1, 100));
    await again.close();
  });
});

Deno.test("kv storage: reopened with garbage not yet deleted, the log is right and the garbage goes", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await s.save({
      snapshot: snapshotAt(3, 1, 200_000),
      entries: entries(4, 500, 1),
      resetLog: false,
    });
    await s.save({ snapshot: snapshotAt(400, 1, 100), entries: [], resetLog: false });
    await s.close(); // as a crash would: nothing more is deleted
    assert.ok(await countKeys(path, ["raft", "log"]) > 400);
    const again = await DenoKvStorage.open(path);
    const state = await again.load();
    assert.deepEqual(state.entries, entries(401, 500, 1));
    assert.deepEqual(state.snapshot, snapshotAt(400, 1, 100));
    await again.close();
    assert.equal(await countKeys(path, ["raft", "log"]), 100);
    assert.equal(await countKeys(path, ["raft", "snap"]), 1);
  });
});

Deno.test("kv storage: garbage a reset to an older snapshot writes over is not deleted later", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    const big: Entry = { index: 3, term: 1, kind: "command", command: "g".repeat(150_000) };
    await s.save({ entries: [...entries(1, 2, 1), big, ...entries(4, 6, 1)], resetLog: false });
    await s.save({ snapshot: snapshotAt(6, 1, 100), entries: [], resetLog: false });
    // Entries 1..6 are garbage; a reset to a snapshot at 2 writes 3..4 again.
    await s.save({ snapshot: snapshotAt(2, 2, 100), entries: entries(3, 4, 2), resetLog: true });
    for (let i = 5; i < 50; i++) await s.save({ entries: entries(i, i, 2), resetLog: false });
    await s.close();
    const again = await DenoKvStorage.open(path);
    assert.deepEqual((await again.load()).entries, entries(3, 49, 2));
    await again.close();
  });
});

Deno.test("kv storage: random saves, reopened now and then, read back what was saved", async () => {
  await withStore(async (path) => {
    let s = await DenoKvStorage.open(path);
    let seed = 11;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    // The model: the snapshot and the entries after it.
    let snapshot: Snapshot | undefined;
    let log: Entry[] = [];
    let first = 1;
    const sized = (index: number, term: number): Entry => ({
      index,
      term,
      kind: "command",
      command: `${index}:`.padEnd(rand(8) === 0 ? 70_000 + rand(130_000) : 10 + rand(100), "r"),
    });
    for (let step = 1; step <= 120; step++) {
      const last = first + log.length - 1;
      const roll = rand(10);
      if (roll < 6) {
        // Append, or overwrite a suffix (a new leader's entries).
        const from = log.length > 0 && rand(3) === 0 ? first + rand(log.length) : last + 1;
        const batch = Array.from({ length: 1 + rand(40) }, (_, k) => sized(from + k, step));
        await s.save({ entries: batch, resetLog: false });
        log = [...log.slice(0, from - first), ...batch];
      } else if (roll < 9) {
        const at = first - 1 + rand(log.length + 1);
        snapshot = snapshotAt(at, step, 10 + rand(130_000));
        await s.save({ snapshot, entries: [], resetLog: false });
        log = log.slice(at + 1 - first);
        first = at + 1;
      } else {
        // A leader's snapshot replaces the log, at times older than ours.
        const at = Math.max(1, last - 30 + rand(60));
        snapshot = snapshotAt(at, step, 100);
        const batch = Array.from({ length: rand(5) }, (_, k) => sized(at + 1 + k, step));
        await s.save({ snapshot, entries: batch, resetLog: true });
        log = batch;
        first = at + 1;
      }
      if (rand(5) === 0 || step === 120) {
        await s.close();
        s = await DenoKvStorage.open(path);
        const state = await s.load();
        assert.deepEqual(state.entries, log, `step ${step}`);
        assert.deepEqual(state.snapshot, snapshot, `step ${step}`);
      }
    }
    await s.close();
  });
});

Deno.test("kv storage: a prepared snapshot is written ahead, beside saves; its save only switches to it", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await s.save({ entries: entries(1, 10, 1), resetLog: false });
    const snap = snapshotAt(8, 1, 1_000_000); // 17 chunks
    const preparing = s.prepareSnapshot(snap.data);
    for (let i = 11; i <= 30; i++) await s.save({ entries: entries(i, i, 1), resetLog: false });
    await preparing;
    assert.equal(await countKeys(path, ["raft", "snap"]), 17);
    await s.save({ snapshot: snap, entries: [], resetLog: false });
    assert.equal(await countKeys(path, ["raft", "snap"]), 17, "the save wrote no copy of its own");
    await s.close();
    const again = await DenoKvStorage.open(path);
    const state = await again.load();
    assert.deepEqual(state.snapshot, snap);
    assert.deepEqual(state.entries, entries(9, 30, 1));
    await again.close();
  });
});

Deno.test("kv storage: prepared snapshots no save switches to are deleted", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await s.save({ entries: entries(1, 10, 1), resetLog: false });
    const [a, b, c] = [snapshotAt(5, 1, 200_000), snapshotAt(6, 1, 300_000), snapshotAt(7, 1, 100)];
    // a is dropped while still being written, b once written; the save
    // switches to c, whose data is not the prepared array.
    const preparingA = s.prepareSnapshot(a.data);
    await Promise.all([preparingA, s.prepareSnapshot(b.data)]);
    await s.prepareSnapshot(c.data.slice());
    await s.save({ snapshot: c, entries: [], resetLog: false });
    for (let i = 11; i <= 20; i++) await s.save({ entries: entries(i, i, 1), resetLog: false });
    assert.equal(
      await countKeys(path, ["raft", "snap"]),
      2,
      "c's chunk and the prepared copy of c",
    );
    // A preparation under way when the store closes is waited for, then
    // deleted when the store is loaded again.
    const preparing = s.prepareSnapshot(snapshotAt(9, 1, 500_000).data);
    await s.close();
    await preparing;
    const again = await DenoKvStorage.open(path);
    const state = await again.load();
    assert.deepEqual(state.snapshot, c);
    assert.deepEqual(state.entries, entries(8, 20, 1));
    await again.close();
    assert.equal(await countKeys(path, ["raft", "snap"]), 1);
  });
});

Deno.test("kv storage: the commit index is clamped to the entries actually stored", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path, { prefix: ["x"] });
    await s.save({
      hardState: { term: 1, vote: null, commit: 2 },
      entries: entries(1, 2, 1),
      resetLog: false,
    });
    await s.close();
    // Simulate a crash between two commits of one save: the hard state says
    // commit 9, but only the first entries made it.
    const kv = await Deno.openKv(path);
    const hs = await kv.get<Uint8Array>(["x", "hs"]);
    const other = await DenoKvStorage.open(`${path}.2`, { prefix: ["x"] });
    await other.save({
      hardState: { term: 1, vote: null, commit: 9 },
      entries: [],
      resetLog: false,
    });
    await other.close();
    const kv2 = await Deno.openKv(`${path}.2`);
    const hs9 = await kv2.get<Uint8Array>(["x", "hs"]);
    kv2.close();
    assert.ok(hs.value && hs9.value);
    await kv.set(["x", "hs"], hs9.value);
    kv.close();
    const again = await DenoKvStorage.open(path, { prefix: ["x"] });
    assert.equal((await again.load()).hardState.commit, 2);
    await again.close();
  });
});

Deno.test("kv storage: corruption is reported at start-up, not replayed", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await s.save({
      hardState: { term: 1, vote: null, commit: 0 },
      entries: entries(1, 5, 1),
      resetLog: false,
    });
    await s.close();
    const kv = await Deno.openKv(path);
    const e3 = await kv.get<Uint8Array>(["raft", "log", 3, 0]);
    const flipped = e3.value!.slice();
    flipped[flipped.length - 1] ^= 0xff;
    await kv.set(["raft", "log", 3, 0], flipped);
    kv.close();
    const again = await DenoKvStorage.open(path);
    await assert.rejects(
      again.load(),
      (e) => e instanceof StorageCorruptionError && /entry 3 fails its checksum/.test(e.message),
    );
    await again.close();

    const kv2 = await Deno.openKv(path);
    await kv2.delete(["raft", "log", 3, 0]);
    kv2.close();
    const third = await DenoKvStorage.open(path);
    await assert.rejects(
      third.load(),
      (e) => e instanceof StorageCorruptionError && /entry 3 is missing/.test(e.message),
    );
    await third.close();

    const kv3 = await Deno.openKv(path);
    await kv3.set(["raft", "hs"], new Uint8Array([1, 2, 3, 4, 5]));
    kv3.close();
    const fourth = await DenoKvStorage.open(path);
    await assert.rejects(
      fourth.load(),
      (e) => e instanceof StorageCorruptionError && /hard state/.test(e.message),
    );
    await fourth.close();
  });
});

Deno.test("kv storage: a closed store refuses work; a bad path is a clear error", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await s.close();
    await assert.rejects(s.load(), /closed/);
    await assert.rejects(
      DenoKvStorage.open(`${path}/no/such/dir/x.kv`),
      /cannot open Raft storage/,
    );
  });
});

Deno.test("kv storage: raftStateSize stays what a reopened store counts, over random saves", async () => {
  await withStore(async (path) => {
    let s = await DenoKvStorage.open(path);
    let first = 1;
    let last = 0;
    let seed = 7;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let step = 0; step < 60; step++) {
      const roll = rand(10);
      if (roll < 6 || last < first) {
        // Append, or overwrite a suffix (a new leader's entries).
        const from = last >= first && rand(3) === 0 ? first + rand(last - first + 1) : last + 1;
        const to = from + rand(5);
        await s.save({ entries: entries(from, to, step + 1, 10 + rand(200)), resetLog: false });
        last = to;
      } else if (roll < 9) {
        const at = first + rand(last - first + 1);
        await s.save({ snapshot: snapshotAt(at, step + 1, 100), entries: [], resetLog: false });
        first = at + 1;
      } else {
        const at = last + 5;
        await s.save({ snapshot: snapshotAt(at, step + 1, 50), entries: [], resetLog: true });
        first = at + 1;
        last = at;
      }
      const size = s.raftStateSize();
      await s.close();
      s = await DenoKvStorage.open(path);
      await s.load();
      assert.equal(size, s.raftStateSize(), `step ${step}: bookkeeping drifted`);
    }
    await s.close();
  });
});

// ---- the high-water mark: a store that lost what it acknowledged is refused ----

/** Copies the files of the open store at `path` (database and WAL, as a crash leaves them) to `to`. */
async function crashImage(path: string, to: string): Promise<void> {
  for (const suffix of ["", "-wal", ".mark"]) {
    await Deno.copyFile(`${path}${suffix}`, `${to}${suffix}`).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}

/** Saves a term, a vote and entries in `rounds` saves of 5 entries each. */
async function saveRounds(s: DenoKvStorage, rounds: number, term = 1): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    await s.save({
      hardState: { term, vote: "a", commit: 5 * r },
      entries: entries(5 * r + 1, 5 * r + 5, term),
      resetLog: false,
    });
  }
}

function isLoss(pattern: RegExp): (e: unknown) => boolean {
  return (e) =>
    e instanceof StorageLossError && pattern.test(e.message) &&
    /add it back as a new member/.test(e.message);
}

Deno.test("kv storage: a store rolled back below its mark is refused (older copy of the database)", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await saveRounds(s, 2);
    await s.close();
    const dir = path.slice(0, path.lastIndexOf("/"));
    await Deno.copyFile(path, `${dir}/old.kv`);
    const again = await DenoKvStorage.open(path);
    await again.load();
    await again.save({
      hardState: { term: 2, vote: "b", commit: 10 },
      entries: [],
      resetLog: false,
    });
    await saveRounds(again, 4, 2);
    await again.close();
    // The database goes back to the copy (as if SQLite dropped the later WAL
    // frames); the mark stays.
    await Deno.copyFile(`${dir}/old.kv`, path);
    const third = await DenoKvStorage.open(path);
    await assert.rejects(third.load(), isLoss(/its term is 1, below the term 2/));
    await third.close();
  });
});

Deno.test("kv storage: a log cut below its mark, or a vote lost, is refused", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await saveRounds(s, 3);
    await s.close();
    // The last entries vanish (the meta says the log ends at 7).
    const kv = await Deno.openKv(path);
    const other = await DenoKvStorage.open(`${path}.2`, { mark: null });
    await other.save({ entries: entries(1, 7, 1), resetLog: false });
    await other.close();
    const kv2 = await Deno.openKv(`${path}.2`);
    const meta = await kv2.get<Uint8Array>(["raft", "meta"]);
    const hs = await kv2.get<Uint8Array>(["raft", "hs"]);
    kv2.close();
    const kept = await kv.get<Uint8Array>(["raft", "meta"]);
    await kv.set(["raft", "meta"], meta.value!);
    kv.close();
    const again = await DenoKvStorage.open(path);
    await assert.rejects(again.load(), isLoss(/its log ends at 7, below entry 15/));
    await again.close();
    // The log back, the hard state without its vote: refused too.
    const kv3 = await Deno.openKv(path);
    await kv3.set(["raft", "meta"], kept.value!);
    assert.equal(hs.value, null, "the other store has no hard state");
    const third0 = await DenoKvStorage.open(`${path}.3`, { mark: null });
    await third0.save({
      hardState: { term: 1, vote: null, commit: 0 },
      entries: [],
      resetLog: false,
    });
    await third0.close();
    const kv4 = await Deno.openKv(`${path}.3`);
    const noVote = await kv4.get<Uint8Array>(["raft", "hs"]);
    kv4.close();
    await kv3.set(["raft", "hs"], noVote.value!);
    kv3.close();
    const fourth = await DenoKvStorage.open(path);
    await assert.rejects(fourth.load(), isLoss(/its vote in term 1 is null, not "a"/));
    await fourth.close();
  });
});

Deno.test("kv storage: a deleted database, or a deleted mark beside a database, is refused", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await saveRounds(s, 1);
    await s.close();
    await Deno.rename(path, `${path}.aside`);
    const fresh = await DenoKvStorage.open(path);
    await assert.rejects(fresh.load(), isLoss(/its term is 0, below the term 1/));
    await fresh.close();
    await Deno.remove(path);
    await Deno.rename(`${path}.aside`, path);
    await Deno.remove(`${path}.mark`);
    await assert.rejects(
      DenoKvStorage.open(path),
      (e) => e instanceof StorageCorruptionError && /high-water mark .* is missing/.test(e.message),
    );
    await assert.rejects(Deno.stat(`${path}.mark`), Deno.errors.NotFound, "not created again");
  });
});

Deno.test("kv storage: a torn mark slot falls back to the other; both torn is refused", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await saveRounds(s, 3);
    await s.close();
    const mark = await Deno.readFile(`${path}.mark`);
    assert.equal(mark.length, 2 * SLOT_BYTES);
    const torn = mark.slice();
    torn[3] ^= 0x40; // the first slot's magic
    await Deno.writeFile(`${path}.mark`, torn);
    const again = await DenoKvStorage.open(path);
    assert.equal((await again.load()).entries.length, 15);
    await again.close();
    const both = (await Deno.readFile(`${path}.mark`)).slice();
    both[20] ^= 0x01;
    both[SLOT_BYTES + 20] ^= 0x01;
    await Deno.writeFile(`${path}.mark`, both);
    await assert.rejects(DenoKvStorage.open(path), MarkCorruptionError);
  });
});

Deno.test("kv storage: bit flips in the WAL of a crashed store are refused, not served shortened", async () => {
  await withStore(async (path) => {
    const dir = path.slice(0, path.lastIndexOf("/"));
    const s = await DenoKvStorage.open(path);
    await saveRounds(s, 6);
    // A crash image: the files as they are while the store is open.
    await crashImage(path, `${dir}/crash.kv`);
    await s.close();
    const wal = await Deno.readFile(`${dir}/crash.kv-wal`);
    assert.ok(wal.length > 32 + 24 + 4096, `the WAL holds frames (${wal.length} bytes)`);
    // A flip in the first frame's page: SQLite drops it and every frame after.
    wal[32 + 24 + 200] ^= 0x10;
    await Deno.writeFile(`${dir}/crash.kv-wal`, wal);
    const crashed = await DenoKvStorage.open(`${dir}/crash.kv`);
    await assert.rejects(crashed.load(), isLoss(/below/));
    await crashed.close();
  });
});

Deno.test("kv storage: a truncated or torn database file stays refused", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await saveRounds(s, 40);
    await s.close();
    const db = await Deno.readFile(path);
    assert.ok(db.length >= 4 * 4096, `the database has pages (${db.length} bytes)`);
    const refused = async (bytes: Uint8Array, what: string) => {
      await Deno.writeFile(path, bytes);
      await Deno.remove(`${path}-wal`).catch(() => {});
      await Deno.remove(`${path}-shm`).catch(() => {});
      let store: DenoKvStorage | undefined;
      try {
        store = await DenoKvStorage.open(path);
        await store.load();
      } catch (err) {
        assert.ok(
          err instanceof StorageCorruptionError || /cannot open Raft storage/.test(String(err)),
          `${what}: ${err}`,
        );
        return;
      } finally {
        await store?.close().catch(() => {});
      }
      assert.fail(`${what}: the store loaded`);
    };
    await refused(db.slice(0, db.length / 2), "truncated to half");
    await refused(db.slice(0, 4096), "truncated to its first page");
    const torn = db.slice();
    torn.fill(0, db.length - 2 * 4096); // the last two pages never written
    await refused(torn, "torn (last pages zero)");
    const flipped = db.slice();
    for (let page = 1; page * 4096 < db.length; page++) flipped[page * 4096 + 100] ^= 0xff;
    await refused(flipped, "a byte flipped in every page");
  });
});

Deno.test("kv storage: a store and its mark deleted together are refused when the node has met its peers", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await saveRounds(s, 1);
    await s.close();
    for (const suffix of ["", "-shm", "-wal", ".mark"]) {
      await Deno.remove(`${path}${suffix}`).catch(() => {});
    }
    await assert.rejects(
      DenoKvStorage.open(path, { expectState: true }),
      isLoss(/the store and its high-water mark .* are both gone/),
    );
    // A node that never met anyone may start afresh.
    const fresh = await DenoKvStorage.open(path);
    assert.equal((await fresh.load()).hardState.term, 0);
    await fresh.close();
  });
});

Deno.test("kv storage: a new term or vote is in the mark when its save resolves", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    await s.save({ hardState: { term: 7, vote: "b", commit: 0 }, entries: [], resetLog: false });
    // Read at once, before the mark's delayed raise: the vote is already there.
    const copy = `${path}.copy`;
    await Deno.copyFile(`${path}.mark`, copy);
    const mark = await HighWaterMark.open(copy);
    try {
      assert.deepEqual([mark.floor.term, mark.floor.vote], [7, "b"]);
    } finally {
      await mark.close();
    }
    await s.close();
  });
});

Deno.test("kv storage: the mark is created whole (a crash while creating it leaves none, not an empty one)", async () => {
  await withStore(async (path) => {
    // What a crash part way through creating it leaves: a temporary file only.
    await Deno.writeFile(`${path}.mark.tmp`, new Uint8Array(3));
    const s = await DenoKvStorage.open(path);
    assert.equal((await Deno.stat(`${path}.mark`)).size, 2 * SLOT_BYTES); // both slots, the second empty
    await s.close();
  });
});

Deno.test("kv storage: every save is in the mark when it resolves, before the mark's fsync", async () => {
  await withStore(async (path) => {
    const s = await DenoKvStorage.open(path);
    const copy = `${path}.copy`;
    for (let r = 0; r < 3; r++) {
      await s.save({
        hardState: { term: 2, vote: "a", commit: 5 * r },
        entries: entries(5 * r + 1, 5 * r + 5, 2),
        resetLog: false,
      });
      // Read at once (what a killed process leaves): the save's last entry is the floor.
      await Deno.copyFile(`${path}.mark`, copy);
      const mark = await HighWaterMark.open(copy);
      try {
        assert.deepEqual([mark.floor.index, mark.floor.logTerm], [5 * r + 5, 2]);
      } finally {
        await mark.close();
      }
    }
    await s.close();
  });
});

Deno.test("kv storage: a load commits what it read back (its fsync makes a killed process's unsynced WAL frames durable)", async () => {
  await withStore(async (path) => {
    const s1 = await DenoKvStorage.open(path);
    await s1.load();
    await s1.save({
      hardState: { term: 2, vote: "a", commit: 0 },
      entries: entries(1, 2, 2),
      resetLog: false,
    });
    const before = await s1.database.get(["raft", "hs"]);
    await s1.close();
    const s2 = await DenoKvStorage.open(path);
    const state = await s2.load();
    // A commit's new versionstamp: the load wrote (and so synced the WAL), the value unchanged.
    const after = await s2.database.get(["raft", "hs"]);
    assert.notEqual(after.versionstamp, before.versionstamp);
    assert.deepEqual(after.value, before.value);
    assert.deepEqual(state.hardState, { term: 2, vote: "a", commit: 0 });
    await s2.close();
  });
});
