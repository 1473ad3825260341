/**
 * Where a Raft node keeps what must survive a crash, and an in-memory
 * implementation with the course's crash semantics.
 *
 * @module
 */
import { type Codec, defaultCodec } from "../net/codec.ts";
import { checkBatchFollows } from "./batch_check.ts";
import type { Entry, HardState, Snapshot } from "./types.ts";

/**
 * Everything a node persisted, as read back at start-up.
 *
 * @example
 * ```ts
 * import type { StoredState } from "@distkit/distkit/raft";
 *
 * const empty: StoredState = { hardState: { term: 0, vote: null, commit: 0 }, entries: [] };
 * ```
 */
export interface StoredState {
  /** Term, vote and commit index. */
  hardState: HardState;
  /** The latest snapshot, if one was saved. */
  snapshot?: Snapshot;
  /** The entries after the snapshot, in order. */
  entries: Entry[];
}

/**
 * Options of {@linkcode RaftStorage.load}.
 *
 * @example
 * ```ts
 * import type { LoadOptions } from "@distkit/distkit/raft";
 *
 * const options: LoadOptions = {
 *   accept: (state) => {
 *     if ((state.entries.at(-1)?.index ?? 0) < 7) throw new Error("the log ends below 7");
 *   },
 * };
 * ```
 */
export interface LoadOptions {
  /**
   * Runs on the state read back, before the storage writes anything at
   * load (a torn end zeroed, leftover files removed): throwing refuses the
   * load before those repairs (so a second start, or an operator's tool,
   * sees the same evidence; a segment log is left byte for byte, while a
   * Deno KV store's SQLite may still checkpoint its WAL when it closes). A node passes the checks
   * that refuse a start here (its service's applied index against the log).
   */
  accept?: (state: StoredState) => void;
}

/**
 * One write: all of it is durable when `save` resolves. What a crash during
 * the `save` leaves (a prefix of its commits) is described at
 * {@linkcode RaftStorage}.
 *
 * @example
 * ```ts
 * import type { StorageBatch } from "@distkit/distkit/raft";
 *
 * const batch: StorageBatch = { hardState: { term: 2, vote: "a", commit: 0 }, entries: [], resetLog: false };
 * ```
 */
export interface StorageBatch {
  /** A new hard state to store. */
  hardState?: HardState;
  /**
   * Entries to store. Stored entries from `entries[0].index` on are replaced,
   * including any beyond the last new one.
   */
  entries: Entry[];
  /** A new snapshot; stored entries up to its index are dropped. */
  snapshot?: Snapshot;
  /** Drop every stored entry first (an installed snapshot replaced the whole log). */
  resetLog: boolean;
}

/**
 * Stable storage for one Raft node. A node never answers a peer (or a
 * client) about state that `save` has not made durable, and never starts a
 * `save` before the previous one resolved.
 *
 * A save is written as one or more commits, in order: the first holds the
 * new hard state, the new snapshot, the removal of the entries the batch
 * drops or replaces (`resetLog`, the entries the snapshot covers, the stored
 * entries from `entries[0].index` on) and the first new entries; each
 * later commit appends the next new entries. {@linkcode MemoryStorage} makes
 * one commit of every save; `DenoKvStorage` splits a save larger than one
 * Deno KV commit; {@linkcode SimStorage} splits saves of more than a few
 * entries, so that simulations crash between commits.
 *
 * Exactly this survives a crash:
 * - every `save` that resolved, all of it;
 * - of the one `save` that had not resolved: a prefix of its commits, any
 *   number from none to all. So a restarted node finds its old state, or the
 *   new hard state and snapshot with the log cut where the batch said and
 *   the new entries up to some index; never a mix of old and new at one
 *   index, never a gap. Each such state says less than the save would have,
 *   and nothing of it was acknowledged (the save had not resolved), so Raft
 *   may start from it.
 *
 * `load` returns a commit index no higher than the last index it holds (its
 * log's, or its snapshot's): a crash can keep a new hard state without the
 * entries its commit index counts.
 *
 * Anything else (a resolved save lost: SQLite dropping WAL frames that fail
 * their checksum, a deleted database; any changed bit) breaks Raft's
 * assumptions and is not survivable: an implementation must detect it at
 * `load` and throw there (`StorageCorruptionError` for what fails a
 * checksum, `StorageLossError` for a store below its durable high-water
 * mark), never return the damaged or shortened state. A node that cannot
 * load must not start (it fail-stops): it is removed and added back as a
 * new member. `DenoKvStorage` detects all of it but one narrow case: after
 * a power loss or kernel crash (not a process crash), its high-water mark
 * may lack the saves of the last `MARK_SYNC_MS` (50 ms; the mark is written
 * into the page cache before each save resolves and fsynced in the
 * background), so a database that lost those same saves at the same time
 * goes unseen. A new term or vote is fsynced in the mark before its save
 * resolves, so it is always covered.
 *
 * @example
 * ```ts
 * import { MemoryStorage, type RaftStorage } from "@distkit/distkit/raft";
 *
 * const storage: RaftStorage = new MemoryStorage();
 * await storage.save({ hardState: { term: 1, vote: null, commit: 0 }, entries: [], resetLog: false });
 * (await storage.load()).hardState.term; // 1
 * ```
 */
export interface RaftStorage {
  /**
   * Reads back everything saved; `options.accept` decides whether the state
   * read is acceptable before anything is repaired (see {@linkcode LoadOptions}).
   */
  load(options?: LoadOptions): Promise<StoredState>;
  /** Makes `batch` durable (see the crash rules above). Saves do not overlap. */
  save(batch: StorageBatch): Promise<void>;
  /**
   * Optional: writes a snapshot's data ahead of the `save` that switches to
   * it (the one whose `snapshot.data` is this very array), so that save has
   * less to write; it may run while other saves do. Nothing read changes
   * until that save; data no save switches to is discarded.
   */
  prepareSnapshot?(data: Uint8Array): Promise<void>;
  /** Bytes of persisted Raft state (hard state and log, not the snapshot). */
  raftStateSize(): number;
  /** Bytes of the stored snapshot's data. */
  snapshotSize(): number;
  /** Releases the storage; later calls fail. */
  close(): Promise<void>;
}

/**
 * Storage in memory, for tests and simulations. Everything is kept encoded,
 * so what `load` returns shares nothing with what was saved, and
 * {@linkcode MemoryStorage.copy} gives a restarted node its own copy: a
 * crashed ("zombie") instance that keeps writing to the old storage can
 * never reach its successor's state.
 *
 * @example Crash and restart
 * ```ts
 * import { MemoryStorage } from "@distkit/distkit/raft";
 * import assert from "node:assert/strict";
 *
 * const before = new MemoryStorage();
 * await before.save({ hardState: { term: 3, vote: "b", commit: 0 }, entries: [], resetLog: false });
 * const after = before.copy(); // what a restarted node gets
 * await before.save({ hardState: { term: 9, vote: null, commit: 0 }, entries: [], resetLog: false }); // the zombie
 * assert.equal((await after.load()).hardState.term, 3);
 * ```
 */
export class MemoryStorage implements RaftStorage {
  #codec: Codec;
  #hardState: Uint8Array;
  #entries: Uint8Array[] = [];
  /** Index of the first stored entry (`#entries[0]`). */
  #first = 1;
  #snapshot: Uint8Array | undefined;
  #snapshotDataBytes = 0;
  #entryBytes = 0;
  #closed = false;

  /**
   * Creates an empty storage.
   *
   * @param options The codec entries are encoded with (default: the shared one).
   */
  constructor(options: { codec?: Codec } = {}) {
    this.#codec = options.codec ?? defaultCodec;
    this.#hardState = this.#codec.encode({ term: 0, vote: null, commit: 0 });
  }

  /** A copy of everything saved so far, independent of this one. */
  copy(): MemoryStorage {
    const c = new MemoryStorage({ codec: this.#codec });
    c.#hardState = this.#hardState;
    c.#entries = this.#entries.slice();
    c.#first = this.#first;
    c.#snapshot = this.#snapshot;
    c.#snapshotDataBytes = this.#snapshotDataBytes;
    c.#entryBytes = this.#entryBytes;
    return c;
  }

  // deno-lint-ignore require-await
  async load(options: LoadOptions = {}): Promise<StoredState> {
    this.#check();
    const state: StoredState = {
      hardState: this.#codec.decode(this.#hardState) as HardState,
      entries: this.#entries.map((b) => this.#codec.decode(b) as Entry),
    };
    if (this.#snapshot) state.snapshot = this.#codec.decode(this.#snapshot) as Snapshot;
    options.accept?.(state);
    return state;
  }

  // deno-lint-ignore require-await
  async save(batch: StorageBatch): Promise<void> {
    this.#check();
    checkBatchFollows({ first: this.#first, count: this.#entries.length }, batch, "MemoryStorage");
    if (batch.resetLog) this.#dropAll(batch.snapshot ? batch.snapshot.meta.index + 1 : 1);
    if (batch.snapshot) {
      this.#snapshot = this.#codec.encode(batch.snapshot);
      this.#snapshotDataBytes = batch.snapshot.data.length;
      this.#dropThrough(batch.snapshot.meta.index);
    }
    if (batch.entries.length > 0) {
      const from = batch.entries[0].index;
      if (this.#entries.length === 0) this.#first = from;
      this.#truncateFrom(from);
      if (from !== this.#first + this.#entries.length) {
        throw new Error(
          `MemoryStorage: entry ${from} does not follow the stored log ` +
            `(${this.#first}..${this.#first + this.#entries.length - 1})`,
        );
      }
      for (const e of batch.entries) {
        const bytes = this.#codec.encode(e);
        this.#entries.push(bytes);
        this.#entryBytes += bytes.length;
      }
    }
    if (batch.hardState) this.#hardState = this.#codec.encode(batch.hardState);
  }

  raftStateSize(): number {
    return this.#hardState.length + this.#entryBytes;
  }

  snapshotSize(): number {
    return this.#snapshotDataBytes;
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #check(): void {
    if (this.#closed) throw new Error("MemoryStorage is closed; open a copy to read it again");
  }

  #dropAll(nextFirst: number): void {
    this.#entries = [];
    this.#entryBytes = 0;
    this.#first = nextFirst;
  }

  #dropThrough(index: number): void {
    const n = Math.min(this.#entries.length, Math.max(0, index - this.#first + 1));
    for (let i = 0; i < n; i++) this.#entryBytes -= this.#entries[i].length;
    this.#entries = this.#entries.slice(n);
    this.#first = Math.max(this.#first, index + 1);
    if (this.#entries.length === 0) this.#first = index + 1;
  }

  #truncateFrom(index: number): void {
    const keep = Math.max(0, index - this.#first);
    for (let i = keep; i < this.#entries.length; i++) this.#entryBytes -= this.#entries[i].length;
    this.#entries.length = Math.min(this.#entries.length, keep);
  }
}
