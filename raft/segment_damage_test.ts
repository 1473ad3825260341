/**
 * Damage anywhere in a {@linkcode SegmentLogStorage}'s folder, one bit at a
 * time: in every segment (headers, payloads, CRCs, base and truncation
 * records, the zero tail), the snapshot's data, the mark and the format
 * record. Each load either returns the whole acknowledged state (the flip
 * hit bytes nothing depends on) or refuses with a typed error; it never
 * returns another state and never fails with an untyped one.
 */
import assert from "node:assert/strict";
import { SegmentFormatError, SegmentLogStorage } from "./segment_storage.ts";
import { MarkCorruptionError } from "./high_water_mark.ts";
import { StorageCorruptionError } from "../store/storage_errors.ts";
import type { StoredState } from "./storage.ts";
import { entries as commandEntries, snapshotAt } from "./test_util.ts";

const SEGMENT = 4096;

/** Entries with commands of 60 characters. */
const entries = (from: number, to: number, term: number) => commandEntries(from, to, term, 60);
/**
 * Every byte of the first `DENSE` of each file, then one in `STRIDE` (the
 * suite runs on a busy machine); `SEGMENT_DAMAGE_STRIDE=1` flips every byte.
 */
const DENSE = 300;
const STRIDE = Number(Deno.env.get("SEGMENT_DAMAGE_STRIDE") ?? 11);

async function image(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name !== "lock") files.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return files;
}

async function restore(dir: string, files: Map<string, Uint8Array>): Promise<void> {
  await Deno.remove(dir, { recursive: true });
  await Deno.mkdir(dir);
  for (const [name, bytes] of files) await Deno.writeFile(`${dir}/${name}`, bytes);
}

/** The load's outcome: the state, or the error it refused with. */
async function outcome(dir: string): Promise<StoredState | Error> {
  let s: SegmentLogStorage | undefined;
  try {
    s = await SegmentLogStorage.open(dir, { segmentBytes: SEGMENT });
    return await s.load();
  } catch (err) {
    return err as Error;
  } finally {
    await s?.close();
  }
}

function typed(err: Error): boolean {
  return err instanceof StorageCorruptionError || err instanceof SegmentFormatError ||
    err instanceof MarkCorruptionError;
}

Deno.test("segment storage: a flipped bit anywhere is refused with a typed error or changes nothing", async () => {
  const root = await Deno.makeTempDir({ prefix: "distkit-segdmg-" });
  const dir = `${root}/raft.log`;
  try {
    const s = await SegmentLogStorage.open(dir, { segmentBytes: SEGMENT });
    await s.load();
    await s.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: entries(1, 60, 1),
      resetLog: false,
    });
    await s.save({ entries: [], snapshot: snapshotAt(30, 1, 700), resetLog: false });
    // A new leader's entries replace 55..60: a truncation record.
    await s.save({
      hardState: { term: 2, vote: "b", commit: 50 },
      entries: entries(55, 70, 2),
      resetLog: false,
    });
    await s.save({ entries: entries(71, 75, 2), resetLog: false });
    const full = await s.load();
    await s.close();
    const good = await image(dir);
    const used = [...good.keys()].filter((n) => n.endsWith(".seg") && good.get(n)!.some((b) => b));
    assert.ok(used.length >= 2, `the log spans segments: ${[...good.keys()]}`);
    let flips = 0;
    for (const [name, bytes] of good) {
      const end = Math.min(bytes.length, bytes.findLastIndex((b) => b !== 0) + 64);
      for (let at = 0; at < end; at += at < DENSE ? 1 : STRIDE) {
        const files = new Map(good);
        const copy = bytes.slice();
        copy[at] ^= 1 << (at % 8);
        files.set(name, copy);
        await restore(dir, files);
        const got = await outcome(dir);
        flips++;
        const where = `${name}, bit ${at % 8} of byte ${at}`;
        if (got instanceof Error) {
          assert.ok(typed(got), `${where}: an untyped error: ${got.stack}`);
        } else {
          assert.deepEqual(got, full, `${where}: loaded another state`);
        }
      }
    }
    assert.ok(flips > 1000, `${flips} flips`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
