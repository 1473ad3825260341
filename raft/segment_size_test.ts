/**
 * Sizes at the edges of a {@linkcode SegmentLogStorage}: 1 MiB values across
 * segment rollovers, saves larger than a segment, thousands of tiny saves
 * across hundreds of rollovers with compaction, and an entry over the
 * codec's limit (refused before anything is written; the storage goes on).
 */
import assert from "node:assert/strict";
import { Codec } from "../net/codec.ts";
import { FrameTooLargeError } from "../net/errors.ts";
import { SegmentLogStorage } from "./segment_storage.ts";
import { MemoryStorage, type StorageBatch } from "./storage.ts";
import type { Entry } from "./types.ts";
import { snapshotAt, withTempDir } from "./test_util.ts";

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  return withTempDir(fn, { prefix: "distkit-segsize-", child: "raft.log" });
}

function entry(index: number, term: number, size: number): Entry {
  return { index, term, kind: "command", command: `${index}:`.padEnd(size, "v") };
}

function segmentFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".seg"));
}

/** Saves `batch` in both, then checks the storage loads what the model does. */
async function both(s: SegmentLogStorage, model: MemoryStorage, batch: StorageBatch) {
  await model.save(structuredClone(batch));
  await s.save(batch);
}

async function same(s: SegmentLogStorage, model: MemoryStorage, where: string): Promise<void> {
  const [got, want] = [await s.load(), await model.load()];
  want.hardState.commit = got.hardState.commit; // clamped to the log by durable stores
  assert.deepEqual(got, want, where);
}

Deno.test("segment storage: 1 MiB values and saves larger than a segment cross rollovers and reopen whole", async () => {
  await withDir(async (dir) => {
    const options = { segmentBytes: 4 << 20 };
    const model = new MemoryStorage();
    let s = await SegmentLogStorage.open(dir, options);
    await s.load();
    await both(s, model, {
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: [entry(1, 1, 1 << 20)],
      resetLog: false,
    });
    for (let i = 2; i <= 12; i++) {
      await both(s, model, { entries: [entry(i, 1, 1 << 20)], resetLog: false });
    }
    // One save of 9 MiB: more than a segment, in a segment of its own.
    await both(s, model, {
      entries: [entry(13, 1, 3 << 20), entry(14, 1, 3 << 20), entry(15, 1, 3 << 20)],
      resetLog: false,
    });
    await both(s, model, { entries: [entry(16, 1, 100)], resetLog: false });
    assert.ok(segmentFiles(dir).length >= 5, `${segmentFiles(dir)}`);
    await s.close();
    s = await SegmentLogStorage.open(dir, options);
    await same(s, model, "reopened");
    // A snapshot past the big ones leaves only the segments after it.
    await both(s, model, { entries: [], snapshot: snapshotAt(15, 1, 1 << 20), resetLog: false });
    await s.close();
    s = await SegmentLogStorage.open(dir, options);
    await same(s, model, "after the snapshot");
    assert.ok(segmentFiles(dir).length <= 3, `${segmentFiles(dir)}`);
    await s.close();
  });
});

Deno.test("segment storage: 2000 tiny saves across some 50 rollovers, compacted now and then", async () => {
  await withDir(async (dir) => {
    const options = { segmentBytes: 4096 };
    const model = new MemoryStorage();
    let s = await SegmentLogStorage.open(dir, options);
    await s.load();
    let most = 0;
    for (let i = 1; i <= 2000; i++) {
      await both(s, model, {
        hardState: i % 7 === 0
          ? { term: 1 + Math.floor(i / 300), vote: "a", commit: i - 1 }
          : undefined,
        entries: [entry(i, 1 + Math.floor(i / 300), 40)],
        resetLog: false,
      });
      if (i % 250 === 0) {
        await both(s, model, {
          entries: [],
          snapshot: snapshotAt(i - 30, 1 + Math.floor((i - 30) / 300), 64),
          resetLog: false,
        });
      }
      most = Math.max(most, segmentFiles(dir).length);
      if (i % 500 === 0) {
        await s.close();
        s = await SegmentLogStorage.open(dir, options);
        await same(s, model, `reopened after ${i} saves`);
      }
    }
    // ~2000 records of ~100 bytes went through ~50 segments; compaction kept few at once.
    assert.ok(most <= 20, `${most} segment files at once`);
    await s.close();
  });
});

Deno.test("segment storage: an entry over the codec's limit is refused before anything is written", async () => {
  await withDir(async (dir) => {
    const options = { segmentBytes: 4096, codec: new Codec({ maxMessageBytes: 64 * 1024 }) };
    let s = await SegmentLogStorage.open(dir, options);
    await s.load();
    await s.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: [entry(1, 1, 100)],
      resetLog: false,
    });
    await assert.rejects(
      s.save({ entries: [entry(2, 1, 100), entry(3, 1, 100 * 1024)], resetLog: false }),
      FrameTooLargeError,
    );
    // Nothing of it was written, and the storage goes on.
    await s.save({ entries: [entry(2, 1, 50)], resetLog: false });
    await s.close();
    s = await SegmentLogStorage.open(dir, options);
    assert.deepEqual((await s.load()).entries, [entry(1, 1, 100), entry(2, 1, 50)]);
    await s.close();
  });
});
