/**
 * A segment log that a start refuses is left exactly as it was found: every
 * check that can refuse (the high-water mark, the service's applied index
 * against the log) runs before the load repairs anything (zeroes a torn
 * end, removes leftovers). Zeroing first destroyed the bytes an operator or
 * a recovery tool would need, and a second start saw another folder.
 */
import assert from "node:assert/strict";
import { SegmentLogStorage } from "./segment_storage.ts";
import { SimFs } from "./sim_fs.ts";
import { RaftNode } from "./node.ts";
import { VirtualClock } from "../net/clock.ts";
import { Random } from "../net/random.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { StorageLossError } from "../store/storage_errors.ts";
import { entries } from "./test_util.ts";

const DIR = "/data/raft.log";

function open(fs: SimFs, clock: VirtualClock, expectState = true): Promise<SegmentLogStorage> {
  return SegmentLogStorage.open(DIR, { fs, clock, segmentBytes: 16384, expectState });
}

/** Every file of the folder and its bytes. */
async function files(fs: SimFs): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const name of (await fs.readDir(DIR)).sort()) {
    out.set(name, await fs.readFile(`${DIR}/${name}`));
  }
  return out;
}

/** Writes `bytes` at `offset` of the file `path`, synced. */
async function overwrite(fs: SimFs, path: string, bytes: Uint8Array, offset = 0): Promise<void> {
  const file = await fs.open(path, { read: true, write: true });
  try {
    await file.write(bytes, offset);
    await file.syncData();
  } finally {
    file.close();
  }
}

/**
 * A folder whose last save (entries 8..10) is torn, and whose mark fell
 * back to a floor from before it (a power loss takes the mark's last
 * MARK_SYNC_MS: see high_water_mark.ts), so the mark accepts the cut; but
 * the service's state had applied through 10 (those saves had resolved).
 */
async function tornBelowApplied(fs: SimFs, clock: VirtualClock): Promise<void> {
  const first = await open(fs, clock, false);
  await first.load();
  await first.save({
    hardState: { term: 1, vote: "a", commit: 5 },
    entries: entries(1, 5, 1, 200),
    resetLog: false,
  });
  await first.close();
  const oldMark = await fs.readFile(`${DIR}/mark`);
  const second = await open(fs, clock);
  await second.load();
  await second.save({ entries: entries(6, 7, 1, 200), resetLog: false });
  await second.save({
    hardState: { term: 1, vote: "a", commit: 10 },
    entries: entries(8, 10, 1, 200),
    resetLog: false,
  });
  const from = second.locate(8)!;
  const last = second.locate(10)!;
  assert.equal(from.segment, last.segment, "the last save is one write into one segment");
  await second.close();
  // The torn write: garbage from inside entry 8's record to the end of entry 10's.
  const garbage = new Uint8Array(last.offset + last.length - from.offset - 10);
  const random = new Random(5);
  for (let k = 0; k < garbage.length; k++) garbage[k] = 1 + random.int(255);
  const segment = `${DIR}/${String(from.segment).padStart(16, "0")}.seg`;
  await overwrite(fs, segment, garbage, from.offset + 10);
  await overwrite(fs, `${DIR}/mark`, oldMark);
}

/** Starts a one-node Raft on the folder, its service having applied through `applied`. */
async function start(fs: SimFs, clock: VirtualClock, applied: number): Promise<RaftNode> {
  const storage = await open(fs, clock);
  try {
    return await RaftNode.start({
      id: "a",
      peers: ["a"],
      transport: {
        connect: () => {
          throw new Error("a node alone calls no one");
        },
      },
      server: new RpcServer(),
      storage,
      clock,
      random: new Random(3),
      applied,
    });
  } catch (err) {
    await storage.close();
    throw err;
  }
}

Deno.test("segment log: a start refused for a log cut below the applied index leaves every byte as found", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const fs = new SimFs({ clock, random: new Random(7) });
    await fs.mkdir("/data");
    await fs.syncFolder("/");
    await tornBelowApplied(fs, clock);
    const found = await files(fs);
    const refusal =
      /the service's stored state reflects the log up to 10, but the stored log ends at 7/;
    await assert.rejects(start(fs, clock, 10), (err) => {
      assert.ok(err instanceof StorageLossError, String(err));
      assert.match(err.message, refusal);
      return true;
    });
    assert.deepEqual(await files(fs), found, "the refused folder is as it was found");
    // A second start finds the same folder, and refuses it the same way.
    await assert.rejects(start(fs, clock, 10), refusal);
    assert.deepEqual(await files(fs), found, "and after the second refusal too");
    // A service that applied only through 7 starts: only then is the torn end repaired.
    const node = await start(fs, clock, 7);
    assert.equal(node.status().lastIndex, 7);
    await node.stop();
    assert.notDeepEqual(
      await files(fs),
      found,
      "the torn end is zeroed once the start is accepted",
    );
  });
});
