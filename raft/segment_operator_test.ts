/**
 * Wrong operator actions on a {@linkcode SegmentLogStorage}'s folder: two
 * processes on one folder, a folder of something else opened as a segment
 * log. Each is refused with a typed error that says what to do, and leaves
 * the folder as it was.
 */
import assert from "node:assert/strict";
import { SegmentFormatError, SegmentLockError, SegmentLogStorage } from "./segment_storage.ts";
import { StorageCorruptionError } from "../store/storage_errors.ts";
import type { Entry } from "./types.ts";
import { entries, withTempDir } from "./test_util.ts";

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  return withTempDir(fn, { prefix: "distkit-segop-" });
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

/** A store of `count` entries of term 1 with `tag` in their commands, in 4 KiB segments; its files. */
async function store(dir: string, count: number, tag: string): Promise<Map<string, Uint8Array>> {
  const s = await SegmentLogStorage.open(dir, { segmentBytes: 4096 });
  await s.load();
  await s.save({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [], resetLog: false });
  for (let i = 1; i <= count; i++) {
    await s.save({
      entries: [{ index: i, term: 1, kind: "command", command: `${tag}${i}`.padEnd(120, "x") }],
      resetLog: false,
    });
  }
  await s.close();
  const files = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    if (e.name.endsWith(".seg")) files.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return files;
}

Deno.test("segment storage: a segment copied in from another node's folder is refused", async () => {
  await withDir(async (root) => {
    // Two nodes with logs alike in shape (same terms, votes and lengths), not in content.
    const mine = await store(`${root}/mine`, 60, "mine");
    const theirs = await store(`${root}/theirs`, 60, "theirs");
    const used = [...mine.keys()].filter((n) => mine.get(n)!.some((b) => b !== 0)).sort();
    assert.ok(used.length >= 3, `${used}`);
    for (const name of [used[0], used[1], used.at(-1)!]) {
      const dir = `${root}/copy`;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.mkdir(dir);
      for await (const e of Deno.readDir(`${root}/mine`)) {
        if (e.name === "lock") continue;
        await Deno.copyFile(`${root}/mine/${e.name}`, `${dir}/${e.name}`);
      }
      await Deno.writeFile(`${dir}/${name}`, theirs.get(name)!);
      const s = await SegmentLogStorage.open(dir, { segmentBytes: 4096 });
      const got = await s.load().then((state) => state, (err) => err);
      await s.close();
      assert.ok(got instanceof StorageCorruptionError, `their ${name} in my folder: ${got}`);
    }
    // A log of a single segment, replaced whole by theirs: only the folder tells.
    const one = `${root}/one`;
    const oneTheirs = `${root}/one-theirs`;
    const [a] = [await store(one, 5, "mine"), await store(oneTheirs, 6, "theirs")];
    const first = [...a.keys()].sort()[0];
    await Deno.copyFile(`${oneTheirs}/${first}`, `${one}/${first}`);
    const s = await SegmentLogStorage.open(one, { segmentBytes: 4096 });
    const got = await s.load().then((state) => state, (err) => err);
    await s.close();
    assert.ok(
      got instanceof StorageCorruptionError,
      `their only segment in my folder: ${JSON.stringify(got).slice(0, 200)}`,
    );
  });
});

Deno.test("segment storage: a folder made before folder ids (no id in format.json) still loads", async () => {
  await withDir(async (root) => {
    const dir = `${root}/raft.log`;
    await Deno.mkdir(dir);
    await Deno.writeTextFile(
      `${dir}/format.json`,
      '{"format":"distkit-raft-segments","version":1}\n',
    );
    const s = await SegmentLogStorage.open(dir, { segmentBytes: 4096 });
    await s.load();
    await s.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: entries(1, 40, 1),
      resetLog: false,
    });
    await s.close();
    const again = await SegmentLogStorage.open(dir, { segmentBytes: 4096 });
    assert.deepEqual((await again.load()).entries, entries(1, 40, 1));
    await again.close();
    // A malformed id is refused.
    await Deno.writeTextFile(
      `${dir}/format.json`,
      '{"format":"distkit-raft-segments","version":1,"id":"nope"}\n',
    );
    const err = await SegmentLogStorage.open(dir).catch((e) => e);
    assert.ok(err instanceof SegmentFormatError, String(err));
  });
});

/** Every file of `dir` but the lock, name and bytes. */
async function files(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    if (e.name !== "lock") out.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return out;
}

Deno.test("segment storage: close during a save waits for it; nothing is written after close resolves", async () => {
  await withDir(async (root) => {
    const dir = `${root}/raft.log`;
    const big = (i: number): Entry => ({
      index: i,
      term: 1,
      kind: "command",
      command: `${i}`.padEnd(3000, "x"),
    });
    const s = await SegmentLogStorage.open(dir, { segmentBytes: 4096 });
    await s.load();
    await s.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: [big(1)],
      resetLog: false,
    });
    // This save needs the next segment, so it waits for it: close comes in meanwhile.
    const saving = s.save({ entries: [big(2)], resetLog: false }).then(() => true, () => false);
    await s.close();
    const atClose = await files(dir);
    const resolved = await saving;
    assert.deepEqual(await files(dir), atClose, "the folder changed after close resolved");
    // What close left is what a reopen loads: the save whole if it resolved.
    const again = await SegmentLogStorage.open(dir, { segmentBytes: 4096 });
    const state = await again.load();
    await again.close();
    assert.deepEqual(state.entries, resolved ? [big(1), big(2)] : state.entries.slice(0, 1));
  });
});
