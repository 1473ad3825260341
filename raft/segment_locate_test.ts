/**
 * A segment log's located records (what a state row that keeps its value
 * in the log points at): `locate`, `readRecord` and the retention of the
 * segments a state points into, on a simulated disk in virtual time.
 */
import assert from "node:assert/strict";
import { SegmentLogStorage } from "./segment_storage.ts";
import { SimFs } from "./sim_fs.ts";
import { segmentName } from "./segment_format.ts";
import { VirtualClock } from "../net/clock.ts";
import { Random } from "../net/random.ts";
import { StorageCorruptionError } from "../store/storage_errors.ts";
import { entries, snapshotAt } from "./test_util.ts";

const SEGMENT = 4096;
const DIR = "/data/raft.log";

/** Runs `fn` on a fresh simulated disk whose `/data` is durable, in virtual time. */
function onDisk(fn: (fs: SimFs, clock: VirtualClock) => Promise<void>): Promise<void> {
  const clock = new VirtualClock();
  return clock.run(async () => {
    const fs = new SimFs({ clock, random: new Random(7) });
    await fs.mkdir("/data");
    await fs.syncFolder("/");
    await fn(fs, clock);
  });
}

function open(fs: SimFs, clock: VirtualClock): Promise<SegmentLogStorage> {
  return SegmentLogStorage.open(DIR, { fs, clock, segmentBytes: SEGMENT, expectState: false });
}

/** Saves entries 1..n (of ~`size` bytes each) one save at a time. */
async function fill(s: SegmentLogStorage, n: number, size = 300): Promise<void> {
  await s.save({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [], resetLog: false });
  for (let i = 1; i <= n; i++) {
    await s.save({ entries: entries(i, i, 1, size), resetLog: false });
  }
}

/** Writes `byte` at `offset` of a segment, synced: damage beyond the contract. */
async function poke(fs: SimFs, segment: number, offset: number, byte: number): Promise<void> {
  const file = await fs.open(`${DIR}/${segmentName(segment)}`, { read: true, write: true });
  try {
    await file.write(new Uint8Array([byte]), offset);
    await file.syncData();
  } finally {
    file.close();
  }
}

Deno.test("segment log: a saved entry is located, and read back alone, before and after a restart", async () => {
  await onDisk(async (fs, clock) => {
    const s = await open(fs, clock);
    await s.load();
    assert.equal(s.locate(1), undefined, "nothing saved yet");
    await fill(s, 30);
    const locations = Array.from({ length: 30 }, (_, k) => s.locate(k + 1)!);
    assert.ok(new Set(locations.map((l) => l.segment)).size > 1, "the entries span segments");
    for (const [k, at] of locations.entries()) {
      assert.equal(at.index, k + 1);
      assert.deepEqual(await s.readRecord(at), entries(k + 1, k + 1, 1, 300)[0]);
    }
    assert.equal(s.locate(31), undefined);
    assert.equal(s.locate(5, 1)?.index, 5, "of its term");
    assert.equal(s.locate(5, 2), undefined, "another term's entry is not this one");
    await s.close();
    const again = await open(fs, clock);
    await again.load();
    for (const at of locations) {
      assert.deepEqual(again.locate(at.index), at, "as the replay finds it");
    }
    await again.close();
  });
});

Deno.test("segment log: a located record that is damaged, moved or gone is a StorageCorruptionError", async () => {
  await onDisk(async (fs, clock) => {
    const s = await open(fs, clock);
    await s.load();
    await fill(s, 12);
    const at = s.locate(5)!;
    // The seed is what checks the record alone: another seed fails it.
    await assert.rejects(
      s.readRecord({ ...at, seed: (at.seed ^ 1) >>> 0 }),
      StorageCorruptionError,
    );
    // Another entry's place, or a length cut short.
    await assert.rejects(s.readRecord({ ...at, index: 6 }), StorageCorruptionError);
    await assert.rejects(s.readRecord({ ...at, length: at.length - 1 }), StorageCorruptionError);
    await assert.rejects(s.readRecord({ ...at, segment: 99 }), /the segment is gone/);
    // One byte of its payload changed.
    const byte = (await fs.readFile(`${DIR}/${segmentName(at.segment)}`))[at.offset + 40];
    await poke(fs, at.segment, at.offset + 40, byte ^ 0x10);
    await assert.rejects(s.readRecord(at), /fails its checksum/);
    await s.close();
  });
});

Deno.test("segment log: an entry the snapshot covers is not located", async () => {
  await onDisk(async (fs, clock) => {
    const s = await open(fs, clock);
    await s.load();
    await fill(s, 10);
    await s.save({ snapshot: snapshotAt(6, 1, 10), entries: [], resetLog: false });
    assert.equal(s.locate(6), undefined);
    assert.equal(s.locate(7)?.index, 7);
    await s.close();
  });
});

Deno.test("segment log: compaction keeps the segments a state points into, and a load reads them", async () => {
  for (const pinned of [true, false]) {
    await onDisk(async (fs, clock) => {
      const s = await open(fs, clock);
      await s.load();
      await fill(s, 40);
      const at = s.locate(3)!;
      const lowest = s.segments().sequences[0];
      assert.equal(at.segment, lowest);
      if (pinned) s.retain(() => at.segment);
      await s.save({ snapshot: snapshotAt(38, 1, 10), entries: [], resetLog: false });
      const kept = s.segments();
      if (!pinned) {
        // The control: without the pin the segment goes with what the snapshot covers.
        assert.ok(kept.sequences[0] > at.segment);
        await assert.rejects(s.readRecord(at), StorageCorruptionError);
        await s.close();
        return;
      }
      assert.equal(kept.sequences[0], at.segment, "the pinned segment stays");
      assert.ok(kept.keptForValues >= 1, JSON.stringify(kept));
      assert.deepEqual(await s.readRecord(at), entries(3, 3, 1, 300)[0]);
      await s.close();
      // A restart reads the pinned segments as the start of the log, neither garbage nor damage.
      const again = await open(fs, clock);
      const loaded = await again.load();
      assert.equal(loaded.snapshot?.meta.index, 38);
      assert.deepEqual(loaded.entries.map((e) => e.index), [39, 40]);
      assert.deepEqual(again.segments().sequences, kept.sequences);
      assert.deepEqual(await again.readRecord(at), entries(3, 3, 1, 300)[0]);
      // The pin released: the next snapshot's compaction takes them.
      again.retain(() => undefined);
      await again.save({ entries: entries(41, 41, 1, 300), resetLog: false });
      await again.save({ snapshot: snapshotAt(41, 1, 10), entries: [], resetLog: false });
      assert.equal(again.segments().keptForValues, 0);
      await assert.rejects(again.readRecord(at), StorageCorruptionError);
      await again.close();
    });
  }
});

Deno.test("segment log: the segments' sizes are their files', a segment grown by a record larger than a segment too", async () => {
  await onDisk(async (fs, clock) => {
    const s = await open(fs, clock);
    await s.load();
    await fill(s, 5);
    await s.save({ entries: entries(6, 6, 1, 3 * SEGMENT), resetLog: false });
    for (let i = 7; i <= 20; i++) await s.save({ entries: entries(i, i, 1, 300), resetLog: false });
    const sizes = async (kept: { sequences: number[] }) => {
      const out = [];
      for (const sequence of kept.sequences) {
        out.push((await fs.readFile(`${DIR}/${segmentName(sequence)}`)).length);
      }
      return out;
    };
    const kept = s.segments();
    assert.deepEqual(kept.bytes, await sizes(kept));
    assert.ok(kept.bytes.some((b) => b > 3 * SEGMENT), `a grown segment in ${kept.bytes}`);
    assert.ok(kept.bytes.every((b) => b >= SEGMENT));
    await s.close();
    const again = await open(fs, clock);
    await again.load();
    assert.deepEqual(again.segments().bytes, kept.bytes, "as the replay finds them");
    await again.close();
  });
});
