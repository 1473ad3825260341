/**
 * Wrong operator actions on a {@linkcode SegmentLogStorage}'s folder: two
 * processes on one folder, a folder of something else opened as a segment
 * log. Each is refused with a typed error that says what to do, and leaves
 * the folder as it was.
 */
import assert from "node:assert/strict";
import { SegmentFormatError, SegmentLockError, SegmentLogStorage } from "./segment_storage.ts";
import type { Entry } from "./types.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-segop-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function entries(from: number, to: number, term: number): Entry[] {
  return Array.from({ length: to - from + 1 }, (_, k) => ({
    index: from + k,
    term,
    kind: "command" as const,
    command: `${from + k}`,
  }));
}

async function listing(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("segment storage: a folder open in one process is refused to a second", async () => {
  await withDir(async (root) => {
    const dir = `${root}/raft.log`;
    const first = await SegmentLogStorage.open(dir, { segmentBytes: 4096 });
    await first.load();
    await first.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: entries(1, 3, 1),
      resetLog: false,
    });
    // Flock locks belong to an open file, so a second open in this process
    // meets the same lock a second process would.
    const err = await SegmentLogStorage.open(dir, { segmentBytes: 4096 }).catch((e) => e);
    assert.ok(err instanceof SegmentLockError, String(err));
    assert.match(err.message, /raft\.log/);
    assert.match(err.message, /another process|stop/);
    // The first one goes on, untouched.
    await first.save({ entries: entries(4, 5, 1), resetLog: false });
    assert.deepEqual((await first.load()).entries, entries(1, 5, 1));
    await first.close();
    // Once it is closed, the folder opens again.
    const again = await SegmentLogStorage.open(dir, { segmentBytes: 4096 });
    assert.deepEqual((await again.load()).entries, entries(1, 5, 1));
    await again.close();
  });
});

Deno.test("segment storage: a folder of other files, without a format record, is refused", async () => {
  await withDir(async (root) => {
    // The node's data folder itself (a Deno KV store and a snapshot in it), given as the log.
    await Deno.writeTextFile(`${root}/raft.kv`, "SQLite format 3\0");
    await Deno.writeTextFile(`${root}/notes.txt`, "keep me");
    const before = await listing(root);
    const err = await SegmentLogStorage.open(root).catch((e) => e);
    assert.ok(err instanceof SegmentFormatError, String(err));
    assert.match(err.message, /format\.json/);
    assert.deepEqual(await listing(root), before, "nothing was written into it");
    // A file, not a folder.
    const file = await SegmentLogStorage.open(`${root}/raft.kv`).catch((e) => e);
    assert.ok(file instanceof SegmentFormatError, String(file));
  });
});
