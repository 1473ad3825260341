/**
 * An in-memory file system for simulations, with the faults of a real disk
 * under a power loss: {@linkcode SimFs.crash} keeps what was made durable
 * (data by `fdatasync`/`fsync`, a folder's creations, renames and removals
 * by a sync of the folder) and of the rest only what a disk may keep: for
 * each 4 KiB page of a file (pages are written back in any order), a prefix
 * of the unsynced writes to it, the next one torn at 512-byte sectors (some
 * of its sectors in the page landed, in any order, the rest holds the old
 * bytes), and a prefix of each folder's unsynced changes. On request, damage beyond any
 * contract ({@linkcode SimFs.damage}: a flipped bit in data, a synced write
 * rolled back, a folder wiped) and a full disk ({@linkcode SimFs.full}).
 *
 * Syncs take virtual time on the {@linkcode Clock} given; every choice comes
 * from the {@linkcode Random} given: the same seed, the same faults.
 *
 * @module
 */
import type { Clock } from "../net/clock.ts";
import type { Random } from "../net/random.ts";
import {
  parentOf,
  type SegmentFile,
  type SegmentFs,
  type SegmentOpenOptions,
} from "./segment_fs.ts";
import {
  apply,
  type Change,
  type Disk,
  HISTORY,
  Inode,
  Queue,
  rebuild,
  SimFile,
} from "./sim_file.ts";

/** Bytes a disk writes atomically: a torn write keeps some of these. */
export const SECTOR_BYTES = 512;
/** Bytes the page cache writes back at a time, in any order at a power loss. */
const PAGE_BYTES = 4096;

/**
 * Damage beyond any storage contract, for {@linkcode SimFs.damage}: a
 * flipped bit in a file's data, a synced write rolled back (a lost write),
 * the folder gone.
 *
 * @example
 * ```ts
 * import type { SimFsDamage } from "@distkit/distkit/raft";
 *
 * const kinds: SimFsDamage[] = ["flip", "lose", "wipe"];
 * ```
 */
export type SimFsDamage = "flip" | "lose" | "wipe";

/**
 * What a {@linkcode SimFs} and the copies its crashes made have seen.
 *
 * @example
 * ```ts
 * import { Random, VirtualClock } from "@distkit/distkit/net";
 * import { SimFs } from "@distkit/distkit/raft";
 *
 * const fs = new SimFs({ clock: new VirtualClock(), random: new Random(1) });
 * fs.stats.crashes; // 0
 * ```
 */
export interface SimFsStats {
  /** Crashes ({@linkcode SimFs.crash}). */
  crashes: number;
  /** Unsynced writes a crash dropped (a torn one counts here too). */
  lostWrites: number;
  /** Writes a crash tore: some of their sectors landed, not all. */
  tornWrites: number;
  /** Unsynced folder changes (create, rename, remove) a crash dropped. */
  lostFolderChanges: number;
  /** Damage done on request ({@linkcode SimFs.damage}) that found something to damage. */
  damaged: number;
  /** Calls refused for a full disk. */
  noSpace: number;
}

/**
 * Options of {@linkcode SimFs}.
 *
 * @example
 * ```ts
 * import { Random, VirtualClock } from "@distkit/distkit/net";
 * import type { SimFsOptions } from "@distkit/distkit/raft";
 *
 * const options: SimFsOptions = { clock: new VirtualClock(), random: new Random(1), syncMs: [1, 2] };
 * ```
 */
export interface SimFsOptions {
  /** The simulation's clock: syncs take time on it. */
  clock: Clock;
  /** Where the crash's and the damage's choices come from (fork one per disk). */
  random: Random;
  /** Virtual milliseconds a sync takes, drawn evenly from `[min, max]`. Default `[1, 3]`. */
  syncMs?: readonly [number, number];
  /** The chance that a crash tears the first unsynced write it drops. Default 0.5. */
  tearChance?: number;
}

/**
 * Options of {@linkcode SimFs.crash}.
 *
 * @example
 * ```ts
 * import type { SimFsCrashOptions } from "@distkit/distkit/raft";
 *
 * const killNine: SimFsCrashOptions = { powerLoss: false };
 * ```
 */
export interface SimFsCrashOptions {
  /**
   * A power loss (what was not synced may be lost, in part), or with
   * `false` a process crash (all written reads back, still unsynced).
   * Default true.
   */
  powerLoss?: boolean;
}

/**
 * Options of {@linkcode SimFs.damage}.
 *
 * @example
 * ```ts
 * import type { SimFsDamageOptions } from "@distkit/distkit/raft";
 *
 * const options: SimFsDamageOptions = { target: (name) => name.endsWith(".seg") };
 * ```
 */
export interface SimFsDamageOptions {
  /** Which files (by name in the folder) a flip or a rollback may hit. Default: all. */
  target?: (name: string) => boolean;
}

type Entry = { dir: true } | { inode: Inode };

/**
 * A folder change not yet synced, applied whole or not at all: each path
 * now names its entry (undefined: nothing). A rename is two.
 */
type FolderChange = [path: string, entry: Entry | undefined][];

/**
 * An in-memory {@linkcode SegmentFs} with a power loss's and a bad disk's
 * faults (see the module doc). Paths are absolute (`/a/b`); `/` exists.
 *
 * @example A synced write survives a crash; an unsynced one may not
 * ```ts
 * import { Random, VirtualClock } from "@distkit/distkit/net";
 * import { SimFs } from "@distkit/distkit/raft";
 * import assert from "node:assert/strict";
 *
 * const clock = new VirtualClock();
 * await clock.run(async () => {
 *   const fs = new SimFs({ clock, random: new Random(3) });
 *   await fs.mkdir("/d");
 *   await fs.syncFolder("/");
 *   const file = await fs.open("/d/f", { write: true, create: true });
 *   await file.write(new Uint8Array([1, 2, 3]), 0);
 *   await file.syncData();
 *   await fs.syncFolder("/d");
 *   file.writeSync(new Uint8Array([9]), 3); // not synced
 *   const after = fs.crash();
 *   const bytes = await after.readFile("/d/f");
 *   assert.deepEqual([...bytes.subarray(0, 3)], [1, 2, 3]);
 * });
 * ```
 */
export class SimFs implements SegmentFs {
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #syncMs: readonly [number, number];
  readonly #tearChance: number;
  /** Names as reads see them. */
  #names = new Map<string, Entry>([["/", { dir: true }]]);
  /** Names that survive a crash for sure. */
  #durable = new Map<string, Entry>([["/", { dir: true }]]);
  /** Per folder, its changes not yet synced, in order. */
  #changes = new Map<string, Queue<FolderChange>>();
  #stats: SimFsStats;
  /** While true, a write that grows a file and a file's creation fail with ENOSPC. */
  full = false;

  /**
   * Creates an empty disk.
   *
   * @param options Its clock, random source and sync time.
   */
  constructor(options: SimFsOptions) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#syncMs = options.syncMs ?? [1, 3];
    this.#tearChance = options.tearChance ?? 0.5;
    this.#stats = SimFs.noStats();
  }

  /**
   * Counts of nothing yet (to add disks' {@linkcode SimFs.stats} up in).
   *
   * @example
   * ```ts
   * import { SimFs } from "@distkit/distkit/raft";
   *
   * SimFs.noStats().tornWrites; // 0
   * ```
   */
  static noStats(): SimFsStats {
    return {
      crashes: 0,
      lostWrites: 0,
      tornWrites: 0,
      lostFolderChanges: 0,
      damaged: 0,
      noSpace: 0,
    };
  }

  /** What this disk and every copy its crashes made have seen (one record, shared). */
  get stats(): SimFsStats {
    return this.#stats;
  }

  // ---- SegmentFs ----

  // deno-lint-ignore require-await
  async open(path: string, options: SegmentOpenOptions): Promise<SegmentFile> {
    path = normal(path);
    let entry = this.#names.get(path);
    if (entry === undefined) {
      if (!options.create) throw notFound("open", path);
      this.#folder(parentOf(path), "open");
      if (this.full) throw this.#noSpace(path);
      entry = { inode: new Inode(new Uint8Array(0)) };
      this.#change([path, entry]);
    }
    if ("dir" in entry) {
      throw new Deno.errors.IsADirectory(`Is a directory (os error 21): open '${path}'`);
    }
    const file = new SimFile(this.#disk, entry.inode, { path, write: !!options.write });
    if (options.truncate) file.truncate();
    return file;
  }

  // deno-lint-ignore require-await
  async readFile(path: string): Promise<Uint8Array> {
    const inode = this.#file(normal(path), "readfile");
    return inode.data.slice(0, inode.size);
  }

  // deno-lint-ignore require-await
  async readDir(path: string): Promise<string[]> {
    path = normal(path);
    this.#folder(path, "readdir");
    const prefix = path === "/" ? "/" : `${path}/`;
    const names: string[] = [];
    for (const name of this.#names.keys()) {
      if (name !== "/" && parentOf(name) === path) names.push(name.slice(prefix.length));
    }
    return names;
  }

  async mkdir(path: string): Promise<void> {
    path = normal(path);
    const entry = this.#names.get(path);
    if (entry !== undefined) {
      if ("dir" in entry) return;
      throw new Deno.errors.AlreadyExists(`File exists (os error 17): mkdir '${path}'`);
    }
    await this.mkdir(parentOf(path));
    this.#change([path, { dir: true }]);
  }

  // deno-lint-ignore require-await
  async rename(from: string, to: string): Promise<void> {
    [from, to] = [normal(from), normal(to)];
    const entry = this.#names.get(from);
    if (entry === undefined) throw notFound("rename", from);
    if (parentOf(from) !== parentOf(to) || "dir" in entry) {
      throw new Error(`SimFs renames files within a folder only, not ${from} to ${to}`);
    }
    this.#change([from, undefined], [to, entry]);
  }

  // deno-lint-ignore require-await
  async remove(path: string): Promise<void> {
    path = normal(path);
    const entry = this.#names.get(path);
    if (entry === undefined) throw notFound("remove", path);
    if ("dir" in entry && [...this.#names.keys()].some((n) => n !== "/" && parentOf(n) === path)) {
      throw new Error(`Directory not empty (os error 39): remove '${path}'`);
    }
    this.#change([path, undefined]);
  }

  // deno-lint-ignore require-await
  async exists(path: string): Promise<boolean> {
    return this.#names.has(normal(path));
  }

  async syncFolder(path: string): Promise<void> {
    path = normal(path);
    this.#folder(path, "open");
    const changes = this.#changes.get(path);
    const end = changes?.end ?? 0;
    await this.#syncTime();
    for (const change of changes?.take(end) ?? []) setOrDelete(this.#durable, change);
  }

  /**
   * Whether a write a crash could tear (it spans more than one sector) is
   * being synced now: a crash now lands inside a save, and may tear it.
   *
   * @example
   * ```ts
   * import { Random, VirtualClock } from "@distkit/distkit/net";
   * import { SECTOR_BYTES, SimFs } from "@distkit/distkit/raft";
   * import assert from "node:assert/strict";
   *
   * const clock = new VirtualClock();
   * await clock.run(async () => {
   *   const fs = new SimFs({ clock, random: new Random(1) });
   *   await fs.mkdir("/d");
   *   const file = await fs.open("/d/f", { write: true, create: true });
   *   file.writeSync(new Uint8Array(2 * SECTOR_BYTES), 0);
   *   const syncing = file.syncData();
   *   assert.equal(fs.tearable, true);
   *   await syncing;
   *   assert.equal(fs.tearable, false);
   * });
   * ```
   */
  get tearable(): boolean {
    const spans = (c: Change) =>
      "bytes" in c &&
      Math.floor(c.offset / SECTOR_BYTES) <
        Math.floor((c.offset + c.bytes.length - 1) / SECTOR_BYTES);
    for (const entry of this.#names.values()) {
      if ("inode" in entry && entry.inode.syncing > 0 && entry.inode.pending.items.some(spans)) {
        return true;
      }
    }
    return false;
  }

  // ---- faults ----

  /**
   * What a machine restarted after a power loss at this moment finds: a new
   * disk (same options, a random stream forked from this one's) holding
   * what was durable and, of the rest, what a disk may keep (see the module
   * doc). With `powerLoss: false`, a process crash (kill -9) instead: the
   * page cache outlives the process, so everything written reads back, but
   * what was not synced stays unsynced (a later power loss may still take
   * it). This disk goes on for whoever still holds it (a zombie): nothing
   * written to it from now on reaches the copy. A full disk stays full.
   *
   * @example A process crash keeps an unsynced write readable, not durable
   * ```ts
   * import { Random, VirtualClock } from "@distkit/distkit/net";
   * import { SimFs } from "@distkit/distkit/raft";
   * import assert from "node:assert/strict";
   *
   * const clock = new VirtualClock();
   * await clock.run(async () => {
   *   const fs = new SimFs({ clock, random: new Random(1) });
   *   await fs.mkdir("/d");
   *   await fs.syncFolder("/");
   *   const file = await fs.open("/d/f", { write: true, create: true });
   *   await file.write(new Uint8Array([1]), 0); // neither it nor its name synced
   *   const killed = fs.crash({ powerLoss: false });
   *   assert.equal((await killed.readFile("/d/f"))[0], 1);
   *   const powerLost = killed.crash(); // may or may not hold /d/f
   *   assert.equal(typeof (await powerLost.exists("/d/f")), "boolean");
   * });
   * ```
   */
  crash(options: SimFsCrashOptions = {}): SimFs {
    this.stats.crashes++;
    if (!(options.powerLoss ?? true)) {
      const next = this.copy();
      next.#stats = this.#stats;
      return next;
    }
    const random = this.#random.fork();
    const names = new Map(this.#durable);
    for (const changes of this.#changes.values()) {
      const kept = random.int(changes.items.length + 1);
      for (const change of changes.items.slice(0, kept)) setOrDelete(names, change);
      this.stats.lostFolderChanges += changes.items.length - kept;
    }
    // A name whose folder's creation was lost is lost with it (shortest paths first).
    for (const path of [...names.keys()].sort((a, b) => a.length - b.length)) {
      if (path !== "/" && !names.has(parentOf(path))) names.delete(path);
    }
    const next = this.#sibling(random);
    next.#stats = this.#stats;
    const copies = new Map<Inode, Inode>();
    for (const [path, entry] of names) {
      if ("dir" in entry) continue;
      let copy = copies.get(entry.inode);
      if (copy === undefined) {
        copy = this.#survivor(entry.inode, random);
        copies.set(entry.inode, copy);
      }
      names.set(path, { inode: copy });
    }
    next.#names = names;
    next.#durable = new Map(names);
    return next;
  }

  /**
   * An exact copy of this disk as it is now (unsynced writes and folder
   * changes still unsynced, a full disk full), to look at without touching
   * this one: what it does is its own. Its counts start at zero.
   *
   * @example
   * ```ts
   * import { Random, VirtualClock } from "@distkit/distkit/net";
   * import { SimFs } from "@distkit/distkit/raft";
   * import assert from "node:assert/strict";
   *
   * const clock = new VirtualClock();
   * await clock.run(async () => {
   *   const fs = new SimFs({ clock, random: new Random(1) });
   *   await fs.mkdir("/d");
   *   const copy = fs.copy();
   *   await copy.remove("/d");
   *   assert.equal(await fs.exists("/d"), true);
   * });
   * ```
   */
  copy(): SimFs {
    const next = this.#sibling(this.#random.fork());
    const copies = new Map<Inode, Inode>();
    const copyOf = (entry: Entry): Entry => {
      if ("dir" in entry) return entry;
      let copy = copies.get(entry.inode);
      if (copy === undefined) {
        copy = new Inode(entry.inode.durable.slice());
        copy.data = entry.inode.data.slice();
        copy.size = entry.inode.size;
        copy.pending = entry.inode.pending.copy();
        copy.synced = entry.inode.synced.slice();
        copies.set(entry.inode, copy);
      }
      return { inode: copy };
    };
    const copyNames = (names: Map<string, Entry>) =>
      new Map([...names].map(([path, entry]) => [path, copyOf(entry)]));
    next.#names = copyNames(this.#names);
    next.#durable = copyNames(this.#durable);
    for (const [folder, changes] of this.#changes) {
      next.#changes.set(
        folder,
        changes.copy((change) =>
          change.map(([path, entry]) =>
            [path, entry && copyOf(entry)] as [string, Entry | undefined]
          )
        ),
      );
    }
    return next;
  }

  /** An empty disk with this one's options (and fullness), on `random`. */
  #sibling(random: Random): SimFs {
    const next = new SimFs({
      clock: this.#clock,
      random,
      syncMs: this.#syncMs,
      tearChance: this.#tearChance,
    });
    next.full = this.full;
    return next;
  }

  /**
   * An inode after a power loss: its durable bytes and, page by page (the
   * page cache writes pages back in any order), a prefix of the unsynced
   * writes to that page, the next one maybe torn (some of its sectors in
   * the page landed, in any order). With a truncation among the unsynced
   * changes: a prefix of all of them, in order (`#inOrder`).
   */
  #survivor(inode: Inode, random: Random): Inode {
    const pending = inode.pending.items;
    if (pending.some((c) => "truncate" in c)) return this.#inOrder(inode, random);
    const writes = pending as { offset: number; bytes: Uint8Array }[];
    const pages = new Map<number, number[]>();
    for (const [k, w] of writes.entries()) {
      const last = Math.floor((w.offset + w.bytes.length - 1) / PAGE_BYTES);
      for (let page = Math.floor(w.offset / PAGE_BYTES); page <= last; page++) {
        const touching = pages.get(page);
        if (touching === undefined) pages.set(page, [k]);
        else touching.push(k);
      }
    }
    // A copy: the zombie's later syncs change the old inode's bytes in place.
    let bytes: Uint8Array = inode.durable.slice();
    const lost = new Set<number>();
    const torn = new Set<number>();
    for (const [page, touching] of [...pages].sort((a, b) => a[0] - b[0])) {
      const lo = page * PAGE_BYTES;
      const hi = lo + PAGE_BYTES;
      const kept = random.int(touching.length + 1);
      for (const k of touching.slice(0, kept)) bytes = within(bytes, writes[k], [lo, hi]);
      for (const k of touching.slice(kept)) lost.add(k);
      const next = touching[kept];
      if (next === undefined || !random.chance(this.#tearChance)) continue;
      const w = writes[next];
      const from = Math.max(lo, w.offset);
      const to = Math.min(hi, w.offset + w.bytes.length);
      const sectors: number[] = [];
      for (let s = Math.floor(from / SECTOR_BYTES) * SECTOR_BYTES; s < to; s += SECTOR_BYTES) {
        sectors.push(s);
      }
      const landed = sectors.filter(() => random.chance(0.5));
      if (landed.length === 0 || landed.length === sectors.length) continue;
      for (const s of landed) {
        bytes = within(bytes, w, [Math.max(s, from), Math.min(s + SECTOR_BYTES, to)]);
      }
      torn.add(next);
    }
    this.stats.lostWrites += lost.size;
    this.stats.tornWrites += torn.size;
    const copy = new Inode(bytes);
    // The history a lost-write damage picks from: the writes that landed whole
    // (their bytes before them as the durable state held them: approximate
    // when two overlap, enough for damage beyond the contract).
    copy.synced = [
      ...inode.synced,
      ...writes.flatMap((w, k) =>
        lost.has(k) ? [] : [{ offset: w.offset, before: before(inode.durable, w), after: w.bytes }]
      ),
    ].slice(-HISTORY);
    return copy;
  }

  /** An inode's durable bytes, a prefix of its unsynced changes, maybe the next one torn. */
  #inOrder(inode: Inode, random: Random): Inode {
    const pending = inode.pending.items;
    const kept = random.int(pending.length + 1);
    // A copy: the zombie's later syncs change the old inode's bytes in place.
    let bytes: Uint8Array = inode.durable.slice();
    const synced = inode.synced.slice();
    for (const change of pending.slice(0, kept)) {
      const applied = apply(bytes, change);
      bytes = applied.bytes;
      if (applied.synced) synced.push(applied.synced);
    }
    this.stats.lostWrites += pending.length - kept;
    const next = pending[kept];
    if (next !== undefined && "bytes" in next && random.chance(this.#tearChance)) {
      // A prefix of its sectors landed: cut at a sector boundary inside it.
      const cuts: number[] = [];
      const first = Math.floor(next.offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
      for (let b = first; b < next.offset + next.bytes.length; b += SECTOR_BYTES) cuts.push(b);
      if (cuts.length > 0) {
        const cut = random.pick(cuts);
        bytes = apply(bytes, {
          offset: next.offset,
          bytes: next.bytes.subarray(0, cut - next.offset),
        }).bytes;
        this.stats.tornWrites++;
      }
    }
    const copy = new Inode(bytes);
    copy.synced = synced.slice(-HISTORY);
    return copy;
  }

  /**
   * Damage beyond any contract to what is under the folder `dir`, on a disk
   * fresh from {@linkcode SimFs.crash}: `"flip"` flips one bit of a file's
   * data (up to its last non-zero byte; durable or not, the bit stays
   * flipped), `"lose"` rolls back one of the last synced writes to a file
   * (its bytes become what they were before it, under any later unsynced
   * write), `"wipe"` removes the folder and all in it. Only files whose name
   * `options.target` accepts are flipped or rolled back. Returns what was
   * done, or undefined when nothing could be.
   *
   * @example
   * ```ts
   * import { Random, VirtualClock } from "@distkit/distkit/net";
   * import { SimFs } from "@distkit/distkit/raft";
   * import assert from "node:assert/strict";
   *
   * const clock = new VirtualClock();
   * await clock.run(async () => {
   *   const fs = new SimFs({ clock, random: new Random(1) });
   *   await fs.mkdir("/d");
   *   const file = await fs.open("/d/a.seg", { write: true, create: true });
   *   await file.write(new Uint8Array([1, 2, 3]), 0);
   *   await file.syncData();
   *   const done = fs.damage("flip", "/d", { target: (name) => name.endsWith(".seg") });
   *   assert.ok(done?.includes("/d/a.seg"));
   * });
   * ```
   */
  damage(kind: SimFsDamage, dir: string, options: SimFsDamageOptions = {}): string | undefined {
    const target = options.target ?? (() => true);
    dir = normal(dir);
    const files: [string, Inode][] = [];
    for (const [path, entry] of this.#names) {
      if (parentOf(path) === dir && "inode" in entry && target(path.slice(dir.length + 1))) {
        files.push([path, entry.inode]);
      }
    }
    let done: string | undefined;
    if (kind === "wipe") {
      const inside = (p: string) => p === dir || p.startsWith(`${dir}/`);
      for (const names of [this.#names, this.#durable]) {
        for (const path of [...names.keys()]) if (inside(path)) names.delete(path);
      }
      done = `wiped ${dir}`;
    } else if (kind === "flip") {
      const data = files.filter(([, inode]) => lastNonZero(inode.data, inode.size) >= 0);
      if (data.length > 0) {
        const [path, inode] = this.#random.pick(data);
        const bit = this.#random.int((lastNonZero(inode.data, inode.size) + 1) * 8);
        const at = bit >> 3;
        if (at < inode.durable.length) inode.durable[at] ^= 1 << (bit & 7);
        // An unsynced write over it lands flipped too: the bit stays flipped after its sync.
        for (const c of inode.pending.items) {
          if ("bytes" in c && c.offset <= at && at < c.offset + c.bytes.length) {
            c.bytes[at - c.offset] ^= 1 << (bit & 7);
          }
        }
        rebuild(inode);
        done = `flipped bit ${bit & 7} of byte ${bit >> 3} of ${path}`;
      }
    } else {
      // A write that changed something: rolling it back is a real loss.
      const writes = files.flatMap(([path, inode]) =>
        inode.synced.filter((w) => !equal(w.before, w.after)).map((w) => ({ path, inode, w }))
      );
      if (writes.length > 0) {
        const { path, inode, w } = this.#random.pick(writes);
        const bytes = inode.durable;
        if (w.offset < bytes.length) {
          bytes.set(w.before.subarray(0, bytes.length - w.offset), w.offset);
        }
        rebuild(inode);
        done = `rolled back the write of ${w.after.length} bytes at ${w.offset} of ${path}`;
      }
    }
    if (done !== undefined) this.stats.damaged++;
    return done;
  }

  // ---- for SimFile ----

  /** What a file of this disk asks of it. */
  readonly #disk: Disk = {
    syncTime: () => this.#syncTime(),
    noSpace: (path) => this.#noSpace(path),
    full: () => this.full,
  };

  /** Waits the virtual time a sync takes. */
  #syncTime(): Promise<void> {
    const ms = this.#random.between(this.#syncMs[0], this.#syncMs[1]);
    return new Promise((resolve) => this.#clock.setTimer(ms, resolve));
  }

  /** Refuses a call on a full disk (counted). */
  #noSpace(path: string): Error {
    this.stats.noSpace++;
    return new Error(`No space left on device (os error 28): write '${path}'`);
  }

  /** Changes names of one folder, at once. */
  #change(...change: FolderChange): void {
    setOrDelete(this.#names, change);
    const folder = parentOf(change[0][0]);
    const changes = this.#changes.get(folder);
    if (changes === undefined) {
      const queue = new Queue<FolderChange>();
      queue.push(change);
      this.#changes.set(folder, queue);
    } else changes.push(change);
  }

  #folder(path: string, call: string): void {
    const entry = this.#names.get(path);
    if (entry === undefined) throw notFound(call, path);
    if (!("dir" in entry)) {
      throw new Deno.errors.NotADirectory(`Not a directory (os error 20): ${call} '${path}'`);
    }
  }

  #file(path: string, call: string): Inode {
    const entry = this.#names.get(path);
    if (entry === undefined) throw notFound(call, path);
    if ("dir" in entry) {
      throw new Deno.errors.IsADirectory(`Is a directory (os error 21): ${call} '${path}'`);
    }
    return entry.inode;
  }
}

/** `bytes` with the part of write `w` inside [range[0], range[1]) applied. */
function within(
  bytes: Uint8Array,
  w: { offset: number; bytes: Uint8Array },
  range: [number, number],
): Uint8Array {
  const from = Math.max(range[0], w.offset);
  const to = Math.min(range[1], w.offset + w.bytes.length);
  if (to <= from) return bytes;
  return apply(bytes, {
    offset: from,
    bytes: w.bytes.subarray(from - w.offset, to - w.offset),
  }).bytes;
}

/** The bytes `durable` held where write `w` goes (zeros past its end). */
function before(durable: Uint8Array, w: { offset: number; bytes: Uint8Array }): Uint8Array {
  const out = new Uint8Array(w.bytes.length);
  out.set(durable.subarray(w.offset, Math.min(durable.length, w.offset + w.bytes.length)));
  return out;
}

function setOrDelete(names: Map<string, Entry>, change: FolderChange): void {
  for (const [path, entry] of change) {
    if (entry === undefined) names.delete(path);
    else names.set(path, entry);
  }
}

function lastNonZero(bytes: Uint8Array, size: number): number {
  for (let k = size - 1; k >= 0; k--) if (bytes[k] !== 0) return k;
  return -1;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, k) => x === b[k]);
}

function normal(path: string): string {
  if (!path.startsWith("/")) {
    throw new Error(`SimFs takes absolute paths (starting with /), got ${JSON.stringify(path)}`);
  }
  const trimmed = path.replace(/\/+/g, "/").replace(/\/$/, "");
  return trimmed === "" ? "/" : trimmed;
}

function notFound(call: string, path: string): Error {
  return new Deno.errors.NotFound(`No such file or directory (os error 2): ${call} '${path}'`);
}
