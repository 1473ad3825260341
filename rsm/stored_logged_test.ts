/**
 * `LogValues` on the real pieces: a `SegmentLogStorage` on a simulated disk
 * and a `StateStore` on a `SimKv`. Entries saved, then applied with their
 * values kept in the log; a start refuses (typed) a log that lost the
 * segment the state points into or whose record was damaged, and reads the
 * values back when the log is whole.
 */
import assert from "node:assert/strict";
import { VirtualClock } from "../net/clock.ts";
import { Random } from "../net/random.ts";
import { SegmentLogStorage } from "../raft/segment_storage.ts";
import { segmentName } from "../raft/segment_format.ts";
import { SimFs } from "../raft/sim_fs.ts";
import { SimKv } from "../store/sim_kv.ts";
import { StateStore } from "../store/state_store.ts";
import { StorageCorruptionError } from "../store/storage_errors.ts";
import { LogValues } from "./stored_logged.ts";

const DIR = "/data/raft.log";

/** A machine whose commands are `{ key, value }` puts. */
function machine(store: StateStore) {
  return {
    store,
    loggedValue: (c: unknown) => (c as { value?: string })?.value,
  };
}

/** A log with 30 puts applied into a store with their values kept in the log; the disk and the database. */
async function written(clock: VirtualClock): Promise<{ fs: SimFs; kv: SimKv }> {
  const fs = new SimFs({ clock, random: new Random(3) });
  await fs.mkdir("/data");
  await fs.syncFolder("/");
  const storage = await SegmentLogStorage.open(DIR, { fs, clock, segmentBytes: 4096 });
  await storage.load();
  const kv = new SimKv();
  const store = await StateStore.open(kv);
  const log = await LogValues.attach(machine(store), { storage, valuesInLog: { threshold: 0 } });
  assert.ok(log);
  await storage.save({
    hardState: { term: 1, vote: "a", commit: 0 },
    entries: [],
    resetLog: false,
  });
  for (let index = 1; index <= 30; index++) {
    const command = { key: `k${index % 7}`, value: `value ${index} `.padEnd(200, "v") };
    await storage.save({
      entries: [{ index, term: 1, kind: "command", command }],
      resetLog: false,
    });
    const batch = store.batch();
    batch.put(command.key, command.value);
    const logged = log.valueOf({ index, term: 1, command });
    assert.ok(logged, `entry ${index} is located`);
    batch.endEntry({ index, term: 1 }, { logged });
    await batch.commit();
  }
  assert.ok(store.lowestLoggedSegment() !== undefined);
  await log.close();
  await store.close();
  await storage.close();
  kv.close();
  return { fs, kv };
}

/**
 * The start of a node on `fs` and `kv`: the log values attached (where a
 * start refuses what it finds), then, with `read`, the values read.
 */
async function start(
  fs: SimFs,
  kv: SimKv,
  options: { clock: VirtualClock; read: boolean },
): Promise<string[]> {
  const storage = await SegmentLogStorage.open(DIR, {
    fs,
    clock: options.clock,
    segmentBytes: 4096,
  });
  const store = await StateStore.open(kv, { cacheBytes: 0 });
  try {
    const log = await LogValues.attach(machine(store), { storage, valuesInLog: true });
    const values = [];
    for (let k = 0; k < 7 && options.read; k++) values.push(await store.get(`k${k}`) as string);
    await log?.close();
    return values;
  } finally {
    await store.close();
    await storage.close();
  }
}

Deno.test("values in the log: a start reads them back from a whole log", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const { fs, kv } = await written(clock);
    const values = await start(fs, kv.reopen(), { clock, read: true });
    assert.deepEqual(
      values,
      [28, 29, 30, 24, 25, 26, 27].map((i) => `value ${i} `.padEnd(200, "v")),
    );
  });
});

Deno.test("values in the log: a start refuses a log that lost the segment the state points into", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const { fs, kv } = await written(clock);
    const store = await StateStore.open(kv.reopen());
    const lowest = store.lowestLoggedSegment()!;
    await store.close();
    kv.close();
    // The lowest segment: the log's own load would read on from the next one and not notice.
    await fs.remove(`${DIR}/${segmentName(lowest)}`);
    await assert.rejects(start(fs, kv.reopen(), { clock, read: false }), (err) => {
      assert.ok(err instanceof StorageCorruptionError, String(err));
      assert.match(err.message, new RegExp(`segment ${lowest}\\b.*the segment is gone`));
      return true;
    });
  });
});

Deno.test("values in the log: a start refuses a log whose record the state points at was damaged", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const { fs, kv } = await written(clock);
    const store = await StateStore.open(kv.reopen());
    const lowest = store.lowestLoggedSegment()!;
    await store.close();
    kv.close();
    // Every value byte of the segment's records changed ('v' → 'w'): whichever row is checked.
    const path = `${DIR}/${segmentName(lowest)}`;
    const bytes = await fs.readFile(path);
    const file = await fs.open(path, { read: true, write: true });
    for (let at = 0; at < bytes.length; at++) {
      if (bytes[at] === 0x76) await file.write(new Uint8Array([0x77]), at);
    }
    await file.syncData();
    file.close();
    await assert.rejects(start(fs, kv.reopen(), { clock, read: false }), StorageCorruptionError);
  });
});

Deno.test("values in the log: rows pointing into a segment log refuse another kind of log", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const { kv } = await written(clock);
    const store = await StateStore.open(kv.reopen());
    const { MemoryStorage } = await import("../raft/storage.ts");
    await assert.rejects(
      LogValues.attach(machine(store), { storage: new MemoryStorage() }),
      /not a segment log: start it with the log it was written with/,
    );
    await store.close();
  });
});

Deno.test("values in the log: the threshold counts a value's UTF-8 bytes", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const fs = new SimFs({ clock, random: new Random(5) });
    await fs.mkdir("/data");
    await fs.syncFolder("/");
    const storage = await SegmentLogStorage.open(DIR, { fs, clock, segmentBytes: 4096 });
    await storage.load();
    const kv = new SimKv();
    const store = await StateStore.open(kv);
    const log = await LogValues.attach(machine(store), { storage, valuesInLog: { threshold: 10 } });
    const values = [
      "abcdefghij",
      "abcdefghi",
      "ééééé",
      "éééé",
      "€€€€",
      "€€€",
      "😀😀😀",
      "😀😀",
      "",
    ];
    await storage.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: values.map((value, k) => ({
        index: k + 1,
        term: 1,
        kind: "command" as const,
        command: { key: "k", value },
      })),
      resetLog: false,
    });
    const kept = values.filter((value, k) =>
      log!.valueOf({ index: k + 1, term: 1, command: { key: "k", value } }) !== undefined
    );
    assert.deepEqual(kept, ["abcdefghij", "ééééé", "€€€€", "😀😀😀"]);
    await log!.close();
    await store.close();
    await storage.close();
  });
});

Deno.test("values in the log: the budget counts the segments' real sizes, one grown by a large record too", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const fs = new SimFs({ clock, random: new Random(9) });
    await fs.mkdir("/data");
    await fs.syncFolder("/");
    const storage = await SegmentLogStorage.open(DIR, { fs, clock, segmentBytes: 4096 });
    await storage.load();
    const store = await StateStore.open(new SimKv());
    const attach = (budgetBytes: number) =>
      LogValues.attach(machine(store), { storage, valuesInLog: { threshold: 0, budgetBytes } });
    const first = await attach(1 << 30);
    await storage.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: [],
      resetLog: false,
    });
    // A value of 12 KB (its record grows a 4 KiB segment to hold it whole), then small ones.
    for (let index = 1; index <= 30; index++) {
      const size = index === 1 ? 12_000 : 200;
      // Keys written once (big, once10, once20) keep rows in the older segments.
      const key = index === 1 ? "big" : index % 10 === 0 ? `once${index}` : `k${index % 5}`;
      const command = { key, value: `${index} `.padEnd(size) };
      await storage.save({
        entries: [{ index, term: 1, kind: "command", command }],
        resetLog: false,
      });
      const batch = store.batch();
      batch.put(command.key, command.value);
      batch.endEntry({ index, term: 1 }, { logged: first!.valueOf({ index, term: 1, command }) });
      await batch.commit();
    }
    // A snapshot covers every entry: the segments stay only for the values the rows point at.
    const membership = { voters: ["a"], learners: [] };
    await storage.save({
      entries: [],
      snapshot: { meta: { index: 30, term: 1, membership }, data: new Uint8Array() },
      resetLog: false,
    });
    await first!.close();
    const kept = storage.segments();
    const lowest = store.lowestLoggedSegment()!;
    assert.equal(kept.sequences[0], lowest, "the big value's segment, kept");
    const counted = kept.keptForValues * kept.segmentBytes;
    const real = kept.bytes.slice(0, kept.keptForValues).reduce((a, b) => a + b, 0);
    assert.ok(real > counted, `${real} bytes on disk, ${counted} counted by segments`);
    // A budget the segments pass only by their real size: the oldest one's rows move, though
    // a view (a snapshot being streamed) is open and keeps the segment until it closes.
    const view = await store.view();
    const log = await attach(counted);
    let failure: unknown;
    log!.afterStored((err) => failure = err);
    await log!.idle(); // the copy runs in the background, to its end
    await log!.close();
    assert.equal(failure, undefined);
    assert.ok(!store.loggedRows.has(lowest), `segment ${lowest}'s rows copied forward`);
    // And no more than that: the segments from the lowest a row points into on fit the budget.
    const next = Math.min(...store.loggedRows.keys());
    const rest = kept.sequences.slice(0, kept.keptForValues).reduce(
      (sum, s, k) => s >= next ? sum + kept.bytes[k] : sum,
      0,
    );
    assert.ok(rest <= counted, `${rest} bytes left from segment ${next} on, budget ${counted}`);
    assert.ok(rest > 0, "rows still point into segments kept for them");
    assert.equal(store.lowestLoggedSegment(), lowest, "pinned by the view");
    view.close();
    assert.ok(store.lowestLoggedSegment()! > lowest, "released once the view closed");
    assert.equal(await store.get("big"), "1 ".padEnd(12_000));
    await store.close();
    await storage.close();
  });
});
