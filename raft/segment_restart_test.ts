/**
 * Restarts of a segment log on a disk in trouble. A process killed (kill -9)
 * in the middle of a save, restarted, and then a power loss: what the
 * restart loaded must still be there. After a kill the
 * page cache keeps the save's write though its `fdatasync` never returned;
 * the restart reads it back and Raft acts on it (re-grants the vote it
 * holds, acknowledges its entries) without a save of its own, so the load
 * itself must make it durable. A start on a full disk: it loads all that
 * was acknowledged, and a write it cannot make fails that call with
 * ENOSPC and stops the storage (fail-stop), losing nothing.
 */
import assert from "node:assert/strict";
import { SegmentLogStorage } from "./segment_storage.ts";
import { SimFs, type SimFsOptions } from "./sim_fs.ts";
import { VirtualClock } from "../net/clock.ts";
import { delay } from "../net/async.ts";
import { Random } from "../net/random.ts";
import { entries } from "./test_util.ts";

const SEGMENT = 65536;
const DIR = "/data/raft.log";

/** A simulated disk whose `/data` folder is already durable. */
async function disk(
  clock: VirtualClock,
  seed: number,
  options: Partial<SimFsOptions> = {},
): Promise<SimFs> {
  const fs = new SimFs({ clock, random: new Random(seed), ...options });
  await fs.mkdir("/data");
  await fs.syncFolder("/");
  return fs;
}

Deno.test("segment log: a restart after kill -9 makes what it loads durable before returning it", async () => {
  let unsyncedLoaded = 0;
  for (let seed = 1; seed <= 100; seed++) {
    const clock = new VirtualClock();
    await clock.run(async () => {
      const fs = await disk(clock, seed);
      const options = { clock, segmentBytes: SEGMENT };
      const s = await SegmentLogStorage.open(DIR, { fs, ...options });
      await s.load();
      await s.save({
        hardState: { term: 1, vote: "a", commit: 0 },
        entries: entries(1, 3, 1),
        resetLog: false,
      });
      // The second save's write is in the page cache, its fdatasync under way: kill -9.
      const saving = s.save({
        hardState: { term: 2, vote: "b", commit: 0 },
        entries: entries(4, 6, 2),
        resetLog: false,
      });
      await delay(0, { clock });
      const killed = fs.crash({ powerLoss: false });
      const restarted = await SegmentLogStorage.open(DIR, {
        fs: killed,
        ...options,
        expectState: true,
      });
      const loaded = await restarted.load();
      const last = loaded.entries.at(-1)?.index ?? 0;
      assert.ok(last === 3 || last === 6, `seed ${seed}: loaded up to ${last}`);
      if (last === 6) {
        unsyncedLoaded++;
        assert.deepEqual(loaded.hardState, { term: 2, vote: "b", commit: 0 }, `seed ${seed}`);
      }
      // The new process acts on what it loaded; then the power goes.
      const after = killed.crash();
      const again = await SegmentLogStorage.open(DIR, { fs: after, ...options, expectState: true });
      const reloaded = await again.load();
      assert.equal(reloaded.entries.at(-1)?.index, last, `seed ${seed}: the loaded log was lost`);
      assert.deepEqual(
        reloaded.hardState,
        loaded.hardState,
        `seed ${seed}: the loaded vote was lost`,
      );
      await Promise.all([again.close(), restarted.close(), saving, s.close()]);
    });
  }
  // The case the test is for happened (the kill landed after the save's write).
  assert.ok(unsyncedLoaded > 0, "no seed loaded the killed save's unsynced records");
});

Deno.test("segment log: a start on a full disk loads everything acknowledged; a save that needs space fail-stops", async () => {
  for (let seed = 1; seed <= 20; seed++) {
    const clock = new VirtualClock();
    await clock.run(async () => {
      const fs = await disk(clock, seed);
      const options = { clock, segmentBytes: 4096 };
      const s = await SegmentLogStorage.open(DIR, { fs, ...options });
      await s.load();
      const hardState = { term: 1, vote: "a", commit: 0 };
      await s.save({ hardState, entries: entries(1, 3, 1), resetLog: false });
      await s.close();
      fs.full = true;
      const after = fs.crash(); // still full
      assert.equal(after.full, true);
      const r = await SegmentLogStorage.open(DIR, { fs: after, ...options, expectState: true });
      const loaded = await r.load();
      assert.deepEqual(loaded.entries, entries(1, 3, 1), `seed ${seed}`);
      assert.deepEqual(loaded.hardState, hardState);
      // Writes go on inside the zero-filled segment until it is used up; then the
      // next segment cannot be made, and the storage stops.
      let index = 4;
      let failure: Error | undefined;
      while (failure === undefined && index < 200) {
        await r.save({ entries: entries(index, index, 1), resetLog: false }).then(
          () => index++,
          (err: Error) => (failure = err),
        );
      }
      assert.ok(failure, `seed ${seed}: 200 entries saved into a 4 KiB segment on a full disk`);
      assert.match(failure.message, /No space left on device/);
      assert.match(failure.message, /refuses all further work/);
      await assert.rejects(() => r.load(), /refuses all further work/);
      await r.close();
      // Space back, restarted: every entry whose save resolved is there.
      after.full = false;
      const back = await SegmentLogStorage.open(DIR, { fs: after.crash(), ...options });
      const all = await back.load();
      assert.deepEqual(all.entries, entries(1, index - 1, 1), `seed ${seed}`);
      await back.close();
    });
  }
});

Deno.test("segment log: a new store on a full disk is refused with the disk's error", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const fs = await disk(clock, 1);
    fs.full = true;
    await assert.rejects(
      () => SegmentLogStorage.open(DIR, { fs, clock, segmentBytes: 4096 }),
      /No space left on device/,
    );
  });
});

Deno.test("segment log: a new folder's id comes from the random source given (a seed replays)", async () => {
  const idOf = async (seed: number) => {
    const clock = new VirtualClock();
    return await clock.run(async () => {
      const fs = new SimFs({ clock, random: new Random(1) });
      const s = await SegmentLogStorage.open(DIR, { fs, clock, random: new Random(seed) });
      await s.close();
      return JSON.parse(new TextDecoder().decode(await fs.readFile(`${DIR}/format.json`))).id;
    });
  };
  assert.equal(await idOf(7), await idOf(7));
  assert.notEqual(await idOf(7), await idOf(8));
  assert.match(await idOf(7), /^[0-9a-f]{32}$/);
});

Deno.test("segment log: a save whose later pages reached the disk before its first loads as the state before it", async () => {
  let holes = 0;
  for (let seed = 1; seed <= 64; seed++) {
    const clock = new VirtualClock();
    await clock.run(async () => {
      const fs = await disk(clock, seed, { tearChance: 0 });
      const options = { clock, segmentBytes: 65536 };
      const s = await SegmentLogStorage.open(DIR, { fs, ...options });
      await s.load();
      const hardState = { term: 1, vote: "a", commit: 0 };
      await s.save({ hardState, entries: entries(1, 3, 1), resetLog: false });
      const segment = `${DIR}/${"1".padStart(16, "0")}.seg`;
      const bytes = await fs.readFile(segment);
      let from = bytes.length;
      while (from > 0 && bytes[from - 1] === 0) from--;
      // One save of about 12 KiB: its write spans four pages, unsynced at the power loss.
      const saving = s.save({ entries: entries(4, 15, 1, 1000), resetLog: false }).catch(() => {});
      await delay(0, { clock });
      const after = fs.crash();
      const found = await after.readFile(segment);
      const firstPage = (Math.floor(from / 4096) + 1) * 4096;
      const zero = (a: number, b: number) => found.subarray(a, b).every((x) => x === 0);
      if (zero(from, firstPage) && !zero(firstPage, from + 12000)) holes++;
      const r = await SegmentLogStorage.open(DIR, { fs: after, ...options, expectState: true });
      const loaded = await r.load();
      const last = loaded.entries.at(-1)?.index ?? 0;
      // A prefix of the save, never a refusal: nothing of it was acknowledged.
      assert.ok(last >= 3 && last <= 15, `seed ${seed}: loaded up to ${last}`);
      assert.deepEqual(loaded.entries, entries(1, 3, 1).concat(entries(4, last, 1, 1000)));
      await Promise.all([r.close(), saving]);
      await s.close();
    });
  }
  assert.ok(holes > 0, "no seed had a later page of the save on disk without its first");
});

Deno.test("segment log: a spare segment whose making failed on a full disk is made again at the rollover, once space is back", async () => {
  for (let seed = 1; seed <= 8; seed++) {
    const clock = new VirtualClock();
    await clock.run(async () => {
      const fs = await disk(clock, seed);
      const options = { clock, segmentBytes: 4096 };
      const s = await SegmentLogStorage.open(DIR, { fs, ...options });
      await s.load();
      await delay(100, { clock }); // the first segment made ahead
      fs.full = true;
      await s.save({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [], resetLog: false });
      assert.ok(fs.stats.noSpace > 0, `seed ${seed}: the next segment's making was not refused`);
      fs.full = false;
      // Enough to need the next segment: made now, nothing stops.
      for (let index = 1; index <= 60; index++) {
        await s.save({ entries: entries(index, index, 1, 100), resetLog: false });
      }
      await s.close();
      const names = await fs.readDir(DIR);
      assert.ok(names.includes(`${"2".padStart(16, "0")}.seg`), `seed ${seed}: ${names}`);
      const again = await SegmentLogStorage.open(DIR, { fs: fs.crash(), ...options });
      assert.deepEqual((await again.load()).entries, entries(1, 60, 1, 100));
      await again.close();
    });
  }
});
