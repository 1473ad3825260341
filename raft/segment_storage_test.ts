import assert from "node:assert/strict";
import { Random } from "../net/random.ts";
import { delay } from "../net/mod.ts";
import { SegmentFormatError, SegmentLogStorage } from "./segment_storage.ts";
import { RECORD_HEADER_BYTES } from "./segment_format.ts";
import { MemoryStorage, type StorageBatch, type StoredState } from "./storage.ts";
import { StorageCorruptionError, StorageLossError } from "../store/storage_errors.ts";
import { type Floor, HighWaterMark } from "./high_water_mark.ts";
import { entries, snapshotAt, withTempDir } from "./test_util.ts";

const SEGMENT = 8192;

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  return withTempDir(fn, { prefix: "distkit-seg-", child: "raft.log" });
}

function open(dir: string, options: { expectState?: boolean } = {}): Promise<SegmentLogStorage> {
  return SegmentLogStorage.open(dir, { segmentBytes: SEGMENT, ...options });
}

/** Every file of the (flat) folder, but a spare being made (`.tmp`, renamed when done). */
async function image(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || e.name.endsWith(".tmp")) continue;
    files.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return files;
}

async function restore(dir: string, files: Map<string, Uint8Array>): Promise<void> {
  await Deno.remove(dir, { recursive: true });
  await Deno.mkdir(dir);
  for (const [name, bytes] of files) await Deno.writeFile(`${dir}/${name}`, bytes);
}

function segmentNames(files: Map<string, Uint8Array>): string[] {
  return [...files.keys()].filter((n) => n.endsWith(".seg")).sort();
}

/** The segments that hold records (not the zero-filled spare). */
function usedSegments(files: Map<string, Uint8Array>): string[] {
  return segmentNames(files).filter((n) => files.get(n)!.some((b) => b !== 0));
}

/** Where `after`'s bytes differ from `before`'s in the segment `name`: [from, to). */
function changed(
  before: Map<string, Uint8Array>,
  after: Map<string, Uint8Array>,
  name: string,
): { from: number; to: number } {
  const a = before.get(name) ?? new Uint8Array(0);
  const b = after.get(name)!;
  let from = 0;
  while (from < b.length && a[from] === b[from]) from++;
  let to = b.length;
  while (to > from && (a[to - 1] ?? 0) === b[to - 1]) to--;
  return { from, to };
}

Deno.test("segment storage: saves cross segments; a snapshot deletes the segments it covers", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.load();
    await s.save({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [], resetLog: false });
    for (let i = 1; i <= 400; i += 10) {
      await s.save({ entries: entries(i, i + 9, 1, 100), resetLog: false });
    }
    const used = usedSegments(await image(dir));
    assert.ok(used.length >= 5, `400 entries of ~130 bytes fill several segments: ${used}`);
    await s.save({ entries: [], snapshot: snapshotAt(380, 1, 5000), resetLog: false });
    const after = usedSegments(await image(dir));
    assert.ok(after.length <= 2, `only the segments holding 381..400 are kept: ${after}`);
    assert.equal(after[after.length - 1], used[used.length - 1]);
    const state = await s.load();
    assert.deepEqual(state.entries, entries(381, 400, 1, 100));
    assert.deepEqual(state.snapshot, snapshotAt(380, 1, 5000));
    await s.close();
    const again = await open(dir);
    assert.deepEqual(await again.load(), state);
    // The log goes on after a restart, into new segments.
    await again.save({ entries: entries(401, 500, 2, 100), resetLog: false });
    assert.deepEqual(
      (await again.load()).entries,
      [...entries(381, 400, 1, 100), ...entries(401, 500, 2, 100)],
    );
    await again.close();
  });
});

Deno.test("segment storage: a save larger than a segment grows its own segment", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.load();
    await s.save({ entries: entries(1, 3, 1, 20 * SEGMENT), resetLog: false });
    await s.save({ entries: entries(4, 5, 1), resetLog: false });
    await s.close();
    const again = await open(dir);
    const state = await again.load();
    assert.deepEqual(state.entries, [...entries(1, 3, 1, 20 * SEGMENT), ...entries(4, 5, 1)]);
    await again.close();
  });
});

/** A random batch that follows `state` (as a Raft node's saves do). */
function randomBatch(rnd: Random, state: StoredState, term: number): StorageBatch {
  const first = (state.snapshot?.meta.index ?? 0) + 1;
  const last = first + state.entries.length - 1;
  const r = rnd.int(20);
  if (r === 0 && last >= first) {
    const at = first + rnd.int(last - first + 1);
    return {
      entries: [],
      snapshot: snapshotAt(at, term, rnd.int(3000)),
      resetLog: false,
    };
  }
  if (r === 1) {
    const at = last + 1 + rnd.int(5);
    return {
      hardState: { term, vote: null, commit: at },
      entries: entries(at + 1, at + 1 + rnd.int(3), term),
      snapshot: snapshotAt(at, term, rnd.int(500)),
      resetLog: true,
    };
  }
  // Append, or replace a suffix (a new leader's entries).
  const from = last >= first && rnd.int(4) === 0 ? first + rnd.int(last - first + 1) : last + 1;
  return {
    hardState: rnd.int(2) === 0 ? { term, vote: "b", commit: Math.max(0, from - 1) } : undefined,
    entries: entries(from, from + rnd.int(12), term, 1 + rnd.int(400)),
    resetLog: false,
  };
}

Deno.test("segment storage: random saves, reopened now and then, load what MemoryStorage loads", async () => {
  for (let seed = 1; seed <= 4; seed++) {
    await withDir(async (dir) => {
      const rnd = new Random(seed);
      const model = new MemoryStorage();
      let s = await open(dir);
      await s.load();
      let term = 1;
      for (let step = 0; step < 150; step++) {
        if (rnd.int(10) === 0) term++;
        const batch = randomBatch(rnd, await model.load(), term);
        await model.save(structuredClone(batch));
        await s.save(batch);
        if (rnd.int(15) === 0) {
          await s.close();
          s = await open(dir);
        }
        const [got, want] = [await s.load(), await model.load()];
        want.hardState.commit = got.hardState.commit; // clamped to the log by durable stores
        assert.deepEqual(got, want, `seed ${seed}, step ${step}`);
      }
      await s.close();
    });
  }
});

/** A mark file holding `floor`, synced (what a save that lowers the mark leaves before it writes). */
async function markBytes(floor: Floor): Promise<Uint8Array> {
  const path = await Deno.makeTempFile();
  try {
    await Deno.remove(path);
    const mark = await HighWaterMark.open(path);
    await mark.write(floor);
    await mark.close();
    return await Deno.readFile(path);
  } finally {
    await Deno.remove(path).catch(() => {});
  }
}

Deno.test("segment storage: a torn last write loads as a prefix of its save, never an error", async () => {
  const cases = [
    // A new leader's entries replace 4..5: the mark was lowered to 3 before the write.
    {
      batch: { hardState: { term: 3, vote: "b", commit: 5 }, entries: entries(4, 9, 3, 50) },
      mark: { term: 2, vote: "a", index: 3, logTerm: 2 },
      keep: 3,
    },
    // An append: the mark is the one the previous save left.
    {
      batch: { hardState: { term: 2, vote: "a", commit: 5 }, entries: entries(6, 9, 2, 50) },
      mark: undefined,
      keep: 5,
    },
  ];
  for (const { batch, mark, keep } of cases) {
    for (const garbage of [false, true]) {
      await withDir(async (dir) => {
        const s = await open(dir);
        await s.load();
        await s.save({
          hardState: { term: 2, vote: "a", commit: 3 },
          entries: entries(1, 5, 2),
          resetLog: false,
        });
        await s.close();
        const before = await image(dir);
        const markAtCrash = mark ? await markBytes(mark) : before.get("mark")!;
        const s2 = await open(dir);
        const old = await s2.load();
        await s2.save({ ...batch, resetLog: false });
        const full = await s2.load();
        await s2.close();
        const after = await image(dir);
        const name = usedSegments(after).at(-1)!;
        const { from, to } = changed(before, after, name);
        assert.ok(to - from > 100, "the save wrote its records");
        const rnd = new Random(garbage ? 2 : 1);
        for (let cut = from; cut < to; cut += 1 + rnd.int(23)) {
          // The crash hit while the save was written.
          const torn = new Map(after);
          torn.set("mark", markAtCrash);
          const bytes = after.get(name)!.slice();
          for (let i = cut; i < to; i++) bytes[i] = garbage ? rnd.int(256) : 0;
          torn.set(name, bytes);
          await restore(dir, torn);
          const t = await open(dir);
          const state = await t.load();
          const where = `cut at ${cut} of ${from}..${to}, garbage ${garbage}`;
          // The old state, or the new hard state with the log cut where the batch
          // says and some of its entries.
          if (JSON.stringify(state.hardState) === JSON.stringify(old.hardState)) {
            assert.deepEqual(state, old, where);
          } else {
            const last = state.entries.length;
            const hs = { ...full.hardState, commit: Math.min(full.hardState.commit, last) };
            assert.deepEqual(state.hardState, hs, where);
            assert.deepEqual(state.entries, full.entries.slice(0, state.entries.length), where);
            assert.ok(state.entries.length >= keep, `${where}: the entries before the batch stay`);
          }
          // What the crash left is zeroed: a new save and a reopen never bring it back.
          const next = state.entries.length + 1;
          await t.save({ entries: entries(next, next, 4), resetLog: false });
          const expected = await t.load();
          await t.close();
          const reopened = await open(dir);
          assert.deepEqual(await reopened.load(), expected, `${where}: after a new save`);
          await reopened.close();
        }
      });
    }
  }
});

Deno.test("segment storage: a torn write whose later pages landed first loads as its prefix", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.load();
    await s.save({
      hardState: { term: 2, vote: "a", commit: 0 },
      entries: entries(1, 3, 2),
      resetLog: false,
    });
    await s.close();
    const before = await image(dir);
    const s2 = await open(dir);
    await s2.save({ entries: entries(4, 20, 2, 60), resetLog: false });
    await s2.close();
    const after = await image(dir);
    const name = usedSegments(after).at(-1)!;
    const { from, to } = changed(before, after, name);
    // The middle of the write never reached the disk; its end did. Not acknowledged.
    const torn = new Map(after);
    torn.set("mark", before.get("mark")!);
    const bytes = after.get(name)!.slice();
    const hole = from + Math.floor((to - from) / 3);
    bytes.fill(0, hole, hole + 40);
    torn.set(name, bytes);
    await restore(dir, torn);
    const t = await open(dir);
    const state = await t.load();
    assert.deepEqual(
      state.entries,
      entries(1, 3, 2).concat(entries(4, state.entries.length, 2, 60)),
    );
    assert.ok(state.entries.length < 20, "the entries from the hole on are cut");
    await t.close();
  });
});

Deno.test("segment storage: a new segment's first write torn before its header landed reads as not written", async () => {
  await withDir(async (dir) => {
    let before: Map<string, Uint8Array>;
    let after: Map<string, Uint8Array>;
    let next = 1;
    // Saves, each between clean restarts, until one goes into a new segment.
    while (true) {
      before = await image(dir).catch(() => new Map());
      const s = await open(dir);
      await s.load();
      await s.save({ entries: entries(next, next + 3, 1, 200), resetLog: false });
      next += 4;
      await s.close();
      after = await image(dir);
      if (usedSegments(after).length > Math.max(1, usedSegments(before).length)) break;
    }
    // The crash hit that save: its header never landed, the rest of it did.
    const name = usedSegments(after).at(-1)!;
    const torn = new Map(after);
    torn.set("mark", before.get("mark")!);
    const bytes = after.get(name)!.slice();
    bytes.fill(0, 0, RECORD_HEADER_BYTES);
    torn.set(name, bytes);
    await restore(dir, torn);
    const t = await open(dir);
    const state = await t.load();
    assert.deepEqual(state.entries, entries(1, next - 5, 1, 200));
    assert.ok((await Deno.readFile(`${dir}/${name}`)).every((b) => b === 0), "its remains zeroed");
    await t.save({ entries: entries(next - 4, next - 4, 2), resetLog: false });
    const expected = await t.load();
    await t.close();
    const reopened = await open(dir);
    assert.deepEqual(await reopened.load(), expected);
    await reopened.close();
  });
});

/** A store with three saves synced and acknowledged; returns its folder image. */
async function acknowledged(dir: string): Promise<Map<string, Uint8Array>> {
  const s = await open(dir);
  await s.load();
  await s.save({
    hardState: { term: 1, vote: "a", commit: 0 },
    entries: entries(1, 4, 1, 40),
    resetLog: false,
  });
  await s.save({ entries: entries(5, 8, 1, 40), resetLog: false });
  await s.save({
    hardState: { term: 1, vote: "a", commit: 8 },
    entries: entries(9, 10, 1, 40),
    resetLog: false,
  });
  await s.close();
  return await image(dir);
}

/** The offset of the `k`-th record (0: the base) of a segment, from the lengths in the headers. */
function recordStart(bytes: Uint8Array, k: number): number {
  let at = 0;
  for (let i = 0; i < k; i++) at += new DataView(bytes.buffer, bytes.byteOffset).getUint32(at + 4);
  return at;
}

async function loadError(dir: string): Promise<unknown> {
  const s = await open(dir).catch((err) => err);
  if (!(s instanceof SegmentLogStorage)) return s;
  try {
    await s.load();
    return undefined;
  } catch (err) {
    return err;
  } finally {
    await s.close();
  }
}

Deno.test("segment storage: damage to acknowledged records is refused, never served shortened", async () => {
  await withDir(async (dir) => {
    const good = await acknowledged(dir);
    const name = usedSegments(good)[0];
    const bytes = good.get(name)!;
    const end = bytes.findLastIndex((b) => b !== 0) + 1;
    const damaged: [string, (b: Uint8Array) => void, typeof StorageCorruptionError][] = [
      // The last record (entry 10), acknowledged: cut, zeroed or flipped.
      ["last record zeroed", (b) => b.fill(0, end - 30, end), StorageLossError],
      ["last record flipped", (b) => (b[end - 5] ^= 0x40), StorageLossError],
      ["file cut before the last record", (b) => b.fill(0, end - 60), StorageLossError],
      // An earlier record: with valid records after it, it is damage, not a torn end.
      ["earlier record flipped", (b) => (b[end - 200] ^= 0x01), StorageCorruptionError],
      ["earlier record's header flipped", (b) => (b[end - 150] ^= 0x01), StorageCorruptionError],
      ["earlier record zeroed", (b) => b.fill(0, 300, 340), StorageCorruptionError],
      ["base record flipped", (b) => (b[10] ^= 0x10), StorageCorruptionError],
    ];
    for (const [what, damage, kind] of damaged) {
      const files = new Map(good);
      const copy = bytes.slice();
      damage(copy);
      files.set(name, copy);
      await restore(dir, files);
      const err = await loadError(dir);
      assert.ok(err instanceof kind, `${what}: ${err}`);
    }
    // The CRC field of an earlier record: the records after it still chain to
    // its content, so it is damage inside the log, not a cut.
    for (const k of [1, 2, 3]) {
      const files = new Map(good);
      const copy = bytes.slice();
      copy[recordStart(copy, k)] ^= 0x01;
      files.set(name, copy);
      await restore(dir, files);
      const err = await loadError(dir);
      assert.ok(
        err instanceof StorageCorruptionError && !(err instanceof StorageLossError),
        `record ${k}'s CRC flipped: ${err}`,
      );
      assert.match(String(err), /damaged record at offset \d+, with valid records after it/);
    }
    await restore(dir, good);
    assert.equal(await loadError(dir), undefined, "the undamaged store loads");
  });
});

Deno.test("segment storage: a write lost after its acknowledged sync is detected by the mark", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.load();
    await s.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: entries(1, 4, 1),
      resetLog: false,
    });
    const older = await image(dir);
    await s.save({ entries: entries(5, 6, 1), resetLog: false });
    await s.close();
    const newer = await image(dir);
    // The disk lost the last save's write (the segment as it was before), the mark kept it.
    const files = new Map(older);
    files.set("mark", newer.get("mark")!);
    await restore(dir, files);
    const err = await loadError(dir);
    assert.ok(err instanceof StorageLossError, String(err));
    assert.match(String(err), /ends at 4, below entry 6/);
    // A lost vote too.
    await restore(dir, newer);
    const t = await open(dir);
    await t.load();
    const beforeVote = await image(dir);
    await t.save({ hardState: { term: 2, vote: "b", commit: 0 }, entries: [], resetLog: false });
    await t.close();
    const voted = await image(dir);
    const lost = new Map(beforeVote);
    lost.set("mark", voted.get("mark")!);
    await restore(dir, lost);
    assert.ok((await loadError(dir)) instanceof StorageLossError);
  });
});

Deno.test("segment storage: a missing segment, snapshot file or mark is refused", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.load();
    await s.save({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [], resetLog: false });
    for (let i = 1; i <= 200; i += 10) {
      await s.save({ entries: entries(i, i + 9, 1, 100), resetLog: false });
    }
    await s.save({ entries: [], snapshot: snapshotAt(20, 1, 3000), resetLog: false });
    await s.close();
    const good = await image(dir);
    const used = usedSegments(good);
    assert.ok(used.length >= 3, `${used}`);
    const cases: [string, (f: Map<string, Uint8Array>) => void, typeof StorageCorruptionError][] = [
      ["a middle segment deleted", (f) => f.delete(used[1]), StorageCorruptionError],
      ["the first segment deleted", (f) => f.delete(used[0]), StorageCorruptionError],
      ["the last segment deleted", (f) => f.delete(used.at(-1)!), StorageLossError],
      ["the snapshot's data deleted", (f) => {
        for (const n of f.keys()) if (n.startsWith("snap-")) f.delete(n);
      }, StorageCorruptionError],
      ["the snapshot's data flipped", (f) => {
        for (const [n, b] of f) if (n.startsWith("snap-")) b[7] ^= 1;
      }, StorageCorruptionError],
      ["the mark deleted", (f) => f.delete("mark"), StorageCorruptionError],
      ["the format record deleted", (f) => f.delete("format.json"), StorageCorruptionError],
    ];
    for (const [what, damage, kind] of cases) {
      const files = new Map([...good].map(([n, b]) => [n, b.slice()]));
      damage(files);
      await restore(dir, files);
      const err = await loadError(dir);
      assert.ok(err instanceof kind, `${what}: ${err}`);
    }
    // Everything gone, though the node has met its peers.
    await Deno.remove(dir, { recursive: true });
    const gone = await open(dir, { expectState: true }).catch((err) => err);
    assert.ok(gone instanceof StorageLossError, String(gone));
  });
});

Deno.test("segment storage: a folder of another format is refused with what to do", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(dir);
    await Deno.writeTextFile(
      `${dir}/format.json`,
      '{"format":"distkit-raft-segments","version":9}',
    );
    const err = await open(dir).catch((e) => e);
    assert.ok(err instanceof SegmentFormatError, String(err));
    assert.match(err.message, /version 9|"version":9/);
    assert.match(err.message, /new member/);
  });
});

Deno.test("segment storage: a closed store refuses work", async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.load();
    await s.close();
    await assert.rejects(() => s.load(), /closed/);
    await assert.rejects(() => s.save({ entries: entries(1, 1, 1), resetLog: false }), /closed/);
  });
});

Deno.test("segment storage: a failure to write fails that save and every later call (fail-stop)", async () => {
  await withDir(async (dir) => {
    const s = await SegmentLogStorage.open(dir, { segmentBytes: 4096 });
    await s.load();
    const first = `${dir}/${"1".padStart(16, "0")}.seg`;
    // The first segment is zero-filled in the background: wait for it, bounded.
    const until = Date.now() + 30_000;
    while (!(await Deno.stat(first).then(() => true, () => false))) {
      assert.ok(Date.now() < until, "the first segment was not made within 30 s");
      await delay(5);
    }
    // The next segment cannot be made: its temporary name is taken by a folder.
    await Deno.mkdir(`${dir}/${"2".padStart(16, "0")}.seg.tmp/blocked`, { recursive: true });
    let failure: Error | undefined;
    for (let i = 1; i <= 200 && failure === undefined; i++) {
      await s.save({ entries: entries(i, i, 1, 100), resetLog: false }).catch((err) => {
        failure = err;
      });
    }
    assert.ok(failure, "the saves never needed the next segment");
    assert.match(failure.message, /refuses all further work: stop the node and restart it/);
    // Sticky: nothing after it is trusted.
    await assert.rejects(() => s.save({ entries: [], resetLog: true }), (err) => err === failure);
    await assert.rejects(() => s.load(), (err) => err === failure);
    await s.close();
    // A restart reads what was durable: every save that resolved.
    await Deno.remove(`${dir}/${"2".padStart(16, "0")}.seg.tmp`, { recursive: true });
    const again = await SegmentLogStorage.open(dir, { segmentBytes: 4096 });
    const state = await again.load();
    assert.ok(state.entries.length > 0);
    assert.deepEqual(state.entries, entries(1, state.entries.length, 1, 100));
    await again.close();
  });
});
