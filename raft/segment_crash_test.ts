/**
 * A process crash at every file-system step of a {@linkcode SegmentLogStorage}'s
 * life: saves, segment rollovers, a prepared and an unprepared snapshot
 * switch with the compaction after it, a truncation record, a log reset. The
 * crash is simulated through the segment log's file-system seam (`fs`): its
 * mutating calls (open for writing, write, sync, rename, remove, mkdir,
 * folder sync) count and, at step N, stop: that call does nothing (or, for a
 * write, lands half its bytes) and every later one fails, as when the process
 * dies there. What
 * it had written before stays in the files, as the page cache keeps it. The
 * folder is then reopened with the real calls; its `load` must return a
 * prefix of the saves that holds every save that resolved.
 */
import assert from "node:assert/strict";
import { SegmentLogStorage } from "./segment_storage.ts";
import { SimFs } from "./sim_fs.ts";
import { type Clock, VirtualClock } from "../net/clock.ts";
import { delay } from "../net/async.ts";
import { Random } from "../net/random.ts";
import {
  realSegmentFs,
  type SegmentFile,
  type SegmentFs,
  type SegmentOpenOptions,
} from "./segment_fs.ts";
import { MemoryStorage, type StorageBatch, type StoredState } from "./storage.ts";
import type { Entry } from "./types.ts";
import { entries as commandEntries, snapshotAt } from "./test_util.ts";

const SEGMENT = 4096;

/**
 * A clock whose timers never fire, for the storages whose file steps are
 * counted: the mark's background fsync (a real 50 ms timer otherwise) then
 * happens only where a save or `close` waits for it, so a run takes the same
 * steps however fast the machine is (a count that depended on it made the
 * crash at step N land elsewhere from one run to the next).
 */
const NO_TIMERS: Clock = { now: () => 0, setTimer: () => ({ cancel: () => {} }) };

/** Entries with commands of 100 characters. */
const entries = (from: number, to: number, term: number) => commandEntries(from, to, term, 100);

/** One step of the scenario: a save, or a snapshot prepared ahead of the next save. */
type Step = { save: StorageBatch } | { prepare: Uint8Array };

function scenario(): Step[] {
  const prepared = snapshotAt(20, 1, 3000);
  const installed = snapshotAt(60, 3, 2000);
  return [
    {
      save: {
        hardState: { term: 1, vote: "a", commit: 0 },
        entries: entries(1, 5, 1),
        resetLog: false,
      },
    },
    // Rolls over several 4 KiB segments.
    { save: { entries: entries(6, 40, 1), resetLog: false } },
    { save: { hardState: { term: 1, vote: "a", commit: 30 }, entries: [], resetLog: false } },
    // A prepared snapshot: its switch deletes the segments it covers.
    { prepare: prepared.data },
    { save: { entries: [], snapshot: prepared, resetLog: false } },
    // A new leader's entries replace 35..40: a truncation record.
    {
      save: {
        hardState: { term: 2, vote: "b", commit: 30 },
        entries: entries(35, 50, 2),
        resetLog: false,
      },
    },
    // A snapshot not prepared, then an installed one that resets the log.
    { save: { entries: [], snapshot: snapshotAt(45, 2, 1500), resetLog: false } },
    {
      save: {
        hardState: { term: 3, vote: null, commit: 60 },
        entries: entries(61, 62, 3),
        snapshot: installed,
        resetLog: true,
      },
    },
    {
      save: {
        hardState: { term: 4, vote: "a", commit: 60 },
        entries: entries(63, 100, 4),
        resetLog: false,
      },
    },
  ];
}

/**
 * The real file system through the segment log's seam, counting its
 * mutating calls for a crash at step `crashAt` (0: never).
 */
class Crash implements SegmentFs {
  steps = 0;
  crashed = false;
  readonly crashAt: number;
  readonly tear: boolean;
  /** Not a crash but a full disk: the calls fail with ENOSPC and the process goes on. */
  readonly full: boolean;
  /** After `restore`: every call goes through, uncounted (the space is back, or the test reads). */
  #restored = false;

  constructor(crashAt: number, tear: boolean, full = false) {
    this.crashAt = crashAt;
    this.tear = tear;
    this.full = full;
  }

  /** Counts a step; true when it is the crash (or after it). */
  step(): boolean {
    if (this.#restored) return false;
    if (this.crashed) return true;
    this.steps++;
    if (this.crashAt > 0 && this.steps >= this.crashAt) this.crashed = true;
    return this.crashed;
  }

  dead(): Error {
    if (this.full) return new Error("No space left on device (os error 28)");
    return new Error(`simulated crash at step ${this.crashAt}`);
  }

  /** Runs `call` unless this step is the crash (or after it). */
  #mutate<T>(call: () => Promise<T>): Promise<T> {
    return this.step() ? Promise.reject(this.dead()) : call();
  }

  async open(path: string, options: SegmentOpenOptions): Promise<SegmentFile> {
    const mutating = options.write || options.create || options.truncate;
    if (mutating && this.step()) throw this.dead();
    return new CrashFile(await realSegmentFs.open(path, options), this);
  }

  readFile(path: string): Promise<Uint8Array> {
    return realSegmentFs.readFile(path);
  }

  readDir(path: string): Promise<string[]> {
    return realSegmentFs.readDir(path);
  }

  exists(path: string): Promise<boolean> {
    return realSegmentFs.exists(path);
  }

  mkdir(path: string): Promise<void> {
    return this.#mutate(() => realSegmentFs.mkdir(path));
  }

  rename(from: string, to: string): Promise<void> {
    return this.#mutate(() => realSegmentFs.rename(from, to));
  }

  remove(path: string): Promise<void> {
    return this.#mutate(() => realSegmentFs.remove(path));
  }

  syncFolder(path: string): Promise<void> {
    return this.#mutate(() => realSegmentFs.syncFolder(path));
  }

  restore(): void {
    this.#restored = true;
  }
}

/** A real file whose writes and syncs are steps of its {@linkcode Crash}. */
class CrashFile implements SegmentFile {
  readonly #file: SegmentFile;
  readonly #crash: Crash;

  constructor(file: SegmentFile, crash: Crash) {
    this.#file = file;
    this.#crash = crash;
  }

  read(into: Uint8Array, offset: number): Promise<number> {
    return this.#file.read(into, offset);
  }

  writeSync(bytes: Uint8Array, offset: number): void {
    const wasCrashed = this.#crash.crashed;
    if (this.#crash.step()) {
      // The crash hit inside this write: half of it landed.
      if (!wasCrashed && this.#crash.tear && bytes.length > 1) {
        this.#file.writeSync(bytes.subarray(0, bytes.length >> 1), offset);
      }
      throw this.#crash.dead();
    }
    this.#file.writeSync(bytes, offset);
  }

  // deno-lint-ignore require-await
  async write(bytes: Uint8Array, offset: number): Promise<void> {
    this.writeSync(bytes, offset);
  }

  syncData(): Promise<void> {
    return this.#crash.step() ? Promise.reject(this.#crash.dead()) : this.#file.syncData();
  }

  sync(): Promise<void> {
    return this.#crash.step() ? Promise.reject(this.#crash.dead()) : this.#file.sync();
  }

  tryLock(): Promise<boolean> {
    return this.#file.tryLock();
  }

  close(): void {
    this.#file.close();
  }
}

/** Runs the scenario on `fs` until it ends or crashes; returns how many saves resolved. */
async function run(dir: string, steps: Step[], fs: SegmentFs): Promise<number> {
  let resolved = 0;
  let s: SegmentLogStorage | undefined;
  try {
    s = await SegmentLogStorage.open(dir, { segmentBytes: SEGMENT, fs, clock: NO_TIMERS });
    await s.load();
    for (const step of steps) {
      if ("prepare" in step) await s.prepareSnapshot(step.prepare);
      else {
        await s.save(step.save);
        resolved++;
      }
    }
  } catch {
    // The crash.
  } finally {
    await s?.close().catch(() => {});
  }
  return resolved;
}

/**
 * Runs the scenario until it ends or a call fails for a full disk; then
 * frees the space, tries one more save (refused after a failed save: the
 * storage is fail-stop) and closes. Returns how many saves resolved.
 */
async function runFull(dir: string, steps: Step[], crash: Crash): Promise<number> {
  let resolved = 0;
  let s: SegmentLogStorage | undefined;
  try {
    s = await SegmentLogStorage.open(dir, { segmentBytes: SEGMENT, fs: crash, clock: NO_TIMERS });
    await s.load();
  } catch {
    crash.restore();
    // Opened, and its load's syncs failed: its lock goes.
    await s?.close();
    return 0;
  }
  let failed: "save" | "prepare" | undefined;
  for (const step of steps) {
    if ("prepare" in step) {
      const ok = await s.prepareSnapshot(step.prepare).then(() => true, () => false);
      if (!ok) failed = "prepare";
    } else {
      const ok = await s.save(step.save).then(() => true, () => false);
      if (ok) resolved++;
      else failed = "save";
    }
    if (failed) break;
  }
  crash.restore();
  if (failed === "save") {
    const after = await s.save({
      hardState: { term: 8, vote: "c", commit: 0 },
      entries: [],
      resetLog: false,
    }).then(() => "resolved", (err: Error) => err.message);
    assert.match(after, /refuses all further work/, "a save after a failed one");
  }
  await s.close();
  return resolved;
}

function key(e: Entry): string {
  return JSON.stringify(e);
}

/**
 * Whether `got` is what a crash during save `resolved + 1` may leave: the
 * state after `resolved` saves, or a prefix of the next save (the entries
 * it does not replace all kept).
 */
function check(got: StoredState, states: StoredState[], batches: StorageBatch[], resolved: number) {
  const where = `after ${resolved} resolved saves`;
  const plain = (s: StoredState) => ({
    hardState: { term: s.hardState.term, vote: s.hardState.vote },
    snapshot: s.snapshot,
    entries: s.entries.map(key),
  });
  const g = plain(got);
  // Durable stores clamp the commit index to the log and raise it to the snapshot.
  const commit = got.hardState.commit === (got.snapshot?.meta.index ?? 0)
    ? 0
    : got.hardState.commit;
  const same = JSON.stringify(g) === JSON.stringify(plain(states[resolved]));
  if (same && commit <= states[resolved].hardState.commit) return;
  assert.ok(resolved < batches.length, `${where}: the store holds what no save wrote`);
  const next = plain(states[resolved + 1]);
  const batch = batches[resolved];
  const where2 = `${where}: not the state after them, so a prefix of save ${resolved + 1}`;
  assert.deepEqual(g.snapshot, next.snapshot, where2);
  assert.ok(
    JSON.stringify(g.hardState) === JSON.stringify(next.hardState) ||
      JSON.stringify(g.hardState) === JSON.stringify(plain(states[resolved]).hardState),
    `${where2}: hard state ${JSON.stringify(got.hardState)}`,
  );
  assert.ok(commit <= states[resolved + 1].hardState.commit, `${where2}: commit ${commit}`);
  assert.deepEqual(g.entries, next.entries.slice(0, g.entries.length), where2);
  const keepBelow = batch.entries[0]?.index ?? Infinity;
  const kept = states[resolved + 1].entries.filter((e) => e.index < keepBelow).length;
  assert.ok(g.entries.length >= kept, `${where2}: entries it does not replace are kept`);
}

Deno.test("segment storage: a crash at any file step leaves a prefix of the saves holding every resolved one", async () => {
  const steps = scenario();
  const batches = steps.flatMap((s) => ("save" in s ? [s.save] : []));
  const states = await modelStates(batches);
  const root = await Deno.makeTempDir({ prefix: "distkit-segcrash-" });
  try {
    // A run without a crash counts the steps.
    const counter = new Crash(0, false);
    let total: number;
    try {
      assert.equal(await run(`${root}/count`, steps, counter), batches.length);
      total = counter.steps;
    } finally {
      counter.restore();
    }
    assert.ok(total > 50, `the scenario takes ${total} file steps`);
    let crashes = 0;
    for (const tear of [false, true]) {
      for (let at = 1; at <= total + 5; at++) {
        const dir = `${root}/${tear ? "t" : "c"}${at}`;
        const crash = new Crash(at, tear);
        let resolved: number;
        try {
          resolved = await run(dir, steps, crash);
        } finally {
          crash.restore();
        }
        if (!crash.crashed) continue;
        crashes++;
        const where = `crash at step ${at} of ${total}${tear ? " (torn write)" : ""}`;
        const s = await SegmentLogStorage.open(dir, { segmentBytes: SEGMENT });
        try {
          const got = await loadChecked(s, where, { states, batches, resolved });
          // It goes on: one more save, and a reopen loads it.
          const last = (got.snapshot?.meta.index ?? 0) + got.entries.length;
          await s.save({
            hardState: { term: 9, vote: "c", commit: 0 },
            entries: entries(last + 1, last + 3, 9),
            resetLog: false,
          });
          const expected = await s.load();
          await s.close();
          const again = await SegmentLogStorage.open(dir, { segmentBytes: SEGMENT });
          try {
            assert.deepEqual(await again.load(), expected, `${where}: after one more save`);
          } finally {
            await again.close();
          }
        } finally {
          await s.close();
        }
        await Deno.remove(dir, { recursive: true });
      }
    }
    assert.ok(crashes >= 2 * total, `${crashes} crashes of ${total} steps`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("segment storage: a full disk at any file step fails that call and every later save; a restart holds every resolved save", async () => {
  const steps = scenario();
  const batches = steps.flatMap((s) => ("save" in s ? [s.save] : []));
  const states = await modelStates(batches);
  const root = await Deno.makeTempDir({ prefix: "distkit-segfull-" });
  try {
    let failures = 0;
    for (let at = 1;; at++) {
      const dir = `${root}/f${at}`;
      const crash = new Crash(at, true, true);
      let resolved: number;
      try {
        resolved = await runFull(dir, steps, crash);
      } finally {
        crash.restore();
      }
      if (!crash.crashed) break;
      failures++;
      const where = `disk full from step ${at}`;
      const s = await SegmentLogStorage.open(dir, { segmentBytes: SEGMENT });
      try {
        await loadChecked(s, where, { states, batches, resolved });
      } finally {
        await s.close();
      }
      await Deno.remove(dir, { recursive: true });
    }
    assert.ok(failures > 50, `${failures} steps failed in turn`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Loads `s` and checks it with {@linkcode check}; `where` says which case failed. */
async function loadChecked(
  s: SegmentLogStorage,
  where: string,
  options: { states: StoredState[]; batches: StorageBatch[]; resolved: number },
): Promise<StoredState> {
  const got = await s.load().catch((err) => {
    throw new Error(`${where}: the store does not load: ${err}`, { cause: err });
  });
  try {
    check(got, options.states, options.batches, options.resolved);
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`, { cause: err });
  }
  return got;
}

/** The model's state after each save of `batches` (the first: before any). */
async function modelStates(batches: StorageBatch[]): Promise<StoredState[]> {
  const model = new MemoryStorage();
  const states: StoredState[] = [structuredClone(await model.load())];
  for (const b of batches) {
    await model.save(structuredClone(b));
    states.push(structuredClone(await model.load()));
  }
  return states;
}

/** Runs the scenario on `fs` in virtual time; `resolved` counts the saves that resolved so far. */
async function runOnSimFs(fs: SimFs, clock: VirtualClock, steps: Step[], resolved: number[]) {
  const s = await SegmentLogStorage.open(SIM_DIR, { segmentBytes: SEGMENT, fs, clock });
  try {
    await s.load();
    for (const step of steps) {
      if ("prepare" in step) await s.prepareSnapshot(step.prepare);
      else {
        await s.save(step.save);
        resolved[0]++;
      }
    }
  } finally {
    await s.close();
  }
}

const SIM_DIR = "/data/raft.log";

Deno.test("segment storage on a SimFs: a power loss at any moment leaves a prefix of the saves holding every resolved one", async () => {
  const steps = scenario();
  const batches = steps.flatMap((s) => ("save" in s ? [s.save] : []));
  const states = await modelStates(batches);
  const newDisk = async (clock: VirtualClock, seed: number) => {
    const fs = new SimFs({ clock, random: new Random(seed) });
    await fs.mkdir("/data");
    await fs.syncFolder("/");
    return fs;
  };
  // How long the scenario takes, without a crash.
  const probe = new VirtualClock();
  const total = await probe.run(async () => {
    await runOnSimFs(await newDisk(probe, 0), probe, steps, [0]);
    return probe.now();
  });
  let torn = 0;
  let midSave = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const clock = new VirtualClock();
    await clock.run(async () => {
      const fs = await newDisk(clock, seed);
      const resolved = [0];
      const running = runOnSimFs(fs, clock, steps, resolved).catch(() => {});
      await delay(new Random(seed).int(total + 1), { clock });
      const at = resolved[0];
      const after = fs.crash();
      torn += after.stats.tornWrites;
      await running; // the zombie finishes on the old disk
      if (at < batches.length) midSave++;
      const where = `seed ${seed}: a power loss after ${at} resolved saves`;
      const s = await SegmentLogStorage.open(SIM_DIR, { segmentBytes: SEGMENT, fs: after, clock });
      try {
        await loadChecked(s, where, { states, batches, resolved: at });
      } finally {
        await s.close();
      }
    });
  }
  assert.ok(midSave > 200, `${midSave} of 300 power losses landed before the last save`);
  assert.ok(torn > 0, "no power loss tore a write");
});

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isFile && e.name !== "lock") await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

Deno.test("segment storage: a crash while a restart repairs what an earlier crash left loads the same state", async () => {
  const steps = scenario();
  const root = await Deno.makeTempDir({ prefix: "distkit-segrepair-" });
  try {
    const counter = new Crash(0, false);
    try {
      await run(`${root}/count`, steps, counter);
    } finally {
      counter.restore();
    }
    let repairs = 0;
    // Folders left by torn writes all through the scenario.
    for (let at = 7; at <= counter.steps; at += 6) {
      const base = `${root}/base${at}`;
      const crash = new Crash(at, true);
      try {
        await run(base, steps, crash);
      } finally {
        crash.restore();
      }
      // What a restart without a second crash loads (on a copy).
      await copyDir(base, `${root}/clean`);
      const clean = await SegmentLogStorage.open(`${root}/clean`, { segmentBytes: SEGMENT });
      const expected = await clean.load();
      await clean.close();
      await Deno.remove(`${root}/clean`, { recursive: true });
      const last = (expected.snapshot?.meta.index ?? 0) + expected.entries.length;
      const extra: StorageBatch = {
        hardState: { term: 9, vote: "c", commit: 0 },
        entries: entries(last + 1, last + 2, 9),
        resetLog: false,
      };
      // A second crash at every step of that restart (open, load's repairs, one save).
      for (let again = 1;; again++) {
        const dir = `${root}/r${at}-${again}`;
        await copyDir(base, dir);
        const second = new Crash(again, true);
        let saved = false;
        try {
          const s = await SegmentLogStorage.open(dir, {
            segmentBytes: SEGMENT,
            fs: second,
            clock: NO_TIMERS,
          })
            .catch(() => undefined);
          if (s) {
            saved = await s.load().then(() => s.save(structuredClone(extra))).then(
              () => true,
              () => false,
            );
            await s.close().catch(() => {});
          }
        } finally {
          second.restore();
        }
        const where = `torn at step ${at}, then a crash at step ${again} of the restart`;
        const s = await SegmentLogStorage.open(dir, { segmentBytes: SEGMENT });
        try {
          const got = await s.load().catch((err) => {
            throw new Error(`${where}: the store does not load: ${err}`, { cause: err });
          });
          // The state before, and of the extra save all (it resolved) or a prefix.
          assert.deepEqual(got.snapshot, expected.snapshot, where);
          assert.deepEqual(got.entries.slice(0, expected.entries.length), expected.entries, where);
          const added = got.entries.slice(expected.entries.length);
          assert.deepEqual(added, extra.entries.slice(0, added.length), where);
          // Term and vote (the commit index is clamped to the log and raised to the snapshot).
          const tv = (h: StoredState["hardState"]) => JSON.stringify([h.term, h.vote]);
          const hs = tv(got.hardState);
          const options = [expected.hardState, extra.hardState!].map(tv);
          assert.ok(options.includes(hs), `${where}: hard state ${hs}`);
          if (saved) {
            assert.equal(added.length, extra.entries.length, `${where}: it resolved`);
            assert.equal(hs, options[1], `${where}: it resolved`);
          }
        } finally {
          await s.close();
        }
        await Deno.remove(dir, { recursive: true });
        repairs++;
        if (!second.crashed) break;
      }
      await Deno.remove(base, { recursive: true });
    }
    assert.ok(repairs > 50, `${repairs} restarts crashed`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
