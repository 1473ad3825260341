/**
 * The files of a `SimFs`: an inode's bytes as reads see them and
 * as a crash keeps them for sure, its unsynced changes (numbered, so a sync
 * covers only those made before it began) and an open file's calls. Not
 * published: `sim_fs.ts` is the disk.
 *
 * @module
 */
import type { SegmentFile } from "./segment_fs.ts";

/** Synced writes a file remembers, for a lost write. */
export const HISTORY = 8;

/** A write or truncation not yet synced. */
export type Change = { offset: number; bytes: Uint8Array } | { truncate: number };

/**
 * Changes not yet synced, in order, each with a sequence number (its
 * position in everything ever queued): a sync covers what was queued when
 * it started, up to that number, so of two overlapping syncs the one that
 * ends first never takes a change made after the other began.
 */
export class Queue<T> {
  items: T[] = [];
  /** How many were ever taken (the sequence number of `items[0]`). */
  taken = 0;

  /** The sequence number the next change gets: a sync started now covers everything below it. */
  get end(): number {
    return this.taken + this.items.length;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** Takes (in order) the changes numbered below `end` not taken yet. */
  take(end: number): T[] {
    const count = end - this.taken;
    if (count <= 0) return [];
    this.taken = end;
    return this.items.splice(0, count);
  }

  copy(map: (item: T) => T = (item) => item): Queue<T> {
    const next = new Queue<T>();
    next.items = this.items.map(map);
    next.taken = this.taken;
    return next;
  }
}

/** A synced write, with the bytes it replaced (for a lost write). */
export interface Synced {
  offset: number;
  before: Uint8Array;
  after: Uint8Array;
}

export class Inode {
  /** What reads see. */
  data: Uint8Array;
  size: number;
  /** What survives a crash for sure. */
  durable: Uint8Array;
  pending = new Queue<Change>();
  synced: Synced[] = [];
  /** Syncs of it under way. */
  syncing = 0;
  lockedBy: SimFile | undefined;

  constructor(durable: Uint8Array) {
    this.durable = durable;
    this.data = durable.slice();
    this.size = durable.length;
  }
}

/** What a {@linkcode SimFile} asks of its disk. */
export interface Disk {
  /** Waits the virtual time a sync takes. */
  syncTime(): Promise<void>;
  /** Refuses a call on a full disk (counted). */
  noSpace(path: string): Error;
  /** Whether the disk is full. */
  full(): boolean;
}

/** An open file of a `SimFs`. */
export class SimFile implements SegmentFile {
  readonly #fs: Disk;
  readonly #inode: Inode;
  readonly #path: string;
  readonly #write: boolean;
  #closed = false;

  constructor(fs: Disk, inode: Inode, how: { path: string; write: boolean }) {
    this.#fs = fs;
    this.#inode = inode;
    this.#path = how.path;
    this.#write = how.write;
  }

  // deno-lint-ignore require-await
  async read(into: Uint8Array, offset: number): Promise<number> {
    this.#check();
    const inode = this.#inode;
    const n = Math.max(0, Math.min(into.length, inode.size - offset));
    into.set(inode.data.subarray(offset, offset + n));
    return n;
  }

  writeSync(bytes: Uint8Array, offset: number): void {
    this.#check();
    if (!this.#write) throw new Deno.errors.BadResource(`${this.#path} is not open for writing`);
    const inode = this.#inode;
    if (this.#fs.full() && offset + bytes.length > inode.size) throw this.#fs.noSpace(this.#path);
    const change = { offset, bytes: bytes.slice() };
    const applied = apply(inode.data.subarray(0, inode.size), change).bytes;
    inode.data = applied;
    inode.size = applied.length;
    inode.pending.push(change);
  }

  // deno-lint-ignore require-await
  async write(bytes: Uint8Array, offset: number): Promise<void> {
    this.writeSync(bytes, offset);
  }

  /** Empties the file (as opening it with `truncate`). */
  truncate(): void {
    const inode = this.#inode;
    inode.size = 0;
    inode.data = new Uint8Array(0);
    inode.pending.push({ truncate: 0 });
  }

  async syncData(): Promise<void> {
    this.#check();
    const inode = this.#inode;
    const end = inode.pending.end;
    inode.syncing++;
    try {
      await this.#fs.syncTime();
    } finally {
      inode.syncing--;
    }
    for (const change of inode.pending.take(end)) {
      const applied = apply(inode.durable, change);
      inode.durable = applied.bytes;
      if (applied.synced) inode.synced.push(applied.synced);
    }
    if (inode.synced.length > HISTORY) inode.synced.splice(0, inode.synced.length - HISTORY);
  }

  sync(): Promise<void> {
    return this.syncData();
  }

  // deno-lint-ignore require-await
  async tryLock(): Promise<boolean> {
    this.#check();
    if (this.#inode.lockedBy !== undefined && this.#inode.lockedBy !== this) return false;
    this.#inode.lockedBy = this;
    return true;
  }

  close(): void {
    this.#check();
    this.#closed = true;
    if (this.#inode.lockedBy === this) this.#inode.lockedBy = undefined;
  }

  #check(): void {
    if (this.#closed) throw new Deno.errors.BadResource(`${this.#path} is closed`);
  }
}

/** `bytes` with `change` applied (a new array when it grows), and what a write replaced. */
export function apply(bytes: Uint8Array, change: Change): { bytes: Uint8Array; synced?: Synced } {
  if ("truncate" in change) return { bytes: bytes.slice(0, change.truncate) };
  const end = change.offset + change.bytes.length;
  const before = new Uint8Array(change.bytes.length);
  before.set(bytes.subarray(change.offset, Math.min(end, bytes.length)));
  let out = bytes;
  if (end > bytes.length) {
    out = new Uint8Array(end);
    out.set(bytes);
  }
  out.set(change.bytes, change.offset);
  return { bytes: out, synced: { offset: change.offset, before, after: change.bytes } };
}

/** Makes what reads see the durable bytes with the unsynced changes over them, again. */
export function rebuild(inode: Inode): void {
  let bytes: Uint8Array = inode.durable.slice();
  for (const change of inode.pending.items) bytes = apply(bytes, change).bytes;
  inode.data = bytes;
  inode.size = bytes.length;
}
