/**
 * Raft storage on Deno KV: the embedded default for real nodes.
 *
 * Layout under a key prefix (default `["raft"]`):
 * - `[..., "hs"]`: the hard state;
 * - `[..., "meta"]`: the log bounds and the current snapshot's pointer;
 * - `[..., "log", index, part]`: one entry per index, split in parts of at
 *   most 60 KiB (Deno KV values are limited to 64 KiB), with a CRC-32;
 * - `[..., "snap", id, chunk]`: snapshot data in chunks of at most 60 KiB,
 *   switched in by the final write of the pointer in `meta`.
 *
 * Deno KV makes one fsync per atomic commit, so a save is packed into as few
 * commits as its limits allow (1,000 mutations, 800 KiB). A save larger than
 * one commit is split so that every commit leaves a valid log: the hard state
 * and the first entries go first, and the log's last index only ever covers
 * entries already written. Keys a crash left outside the meta (entries outside
 * [first, last], other snapshots' chunks) are deleted by `load`. Corruption (a
 * checksum mismatch, a gap, an entry at the wrong index, a file SQLite cannot
 * read) is reported at start-up with {@linkcode StorageCorruptionError}.
 *
 * What the checksums cannot see is state that is simply gone: SQLite drops a
 * WAL frame whose checksum fails, and every frame after it, so a flipped bit
 * rolls fsynced commits back; a deleted `raft.kv` reads as a new node. So a
 * store keeps a high-water mark beside the database (`<path>.mark`, see
 * `high_water_mark.ts`), recorded after each save's commits and before the
 * save resolves, and `load` refuses a store that ends below it with
 * {@linkcode StorageLossError} (before writing anything). A store with state
 * and no mark is refused too.
 *
 * @module
 */
import { type Codec, defaultCodec } from "../net/codec.ts";
import { crc32 } from "../net/bytes.ts";
import { checkFloor, type Floor, HighWaterMark } from "./high_water_mark.ts";
import {
  COMMIT_BYTES,
  COMMIT_MUTATIONS,
  GARBAGE_PER_SAVE,
  HEADER_BYTES,
  KvLayout,
  markPath,
  type Meta,
  type Mutation,
  pack,
  PART_BYTES,
  partCount,
  PARTS_PER_COMMIT,
  PREPARE_CHUNKS_PER_COMMIT,
  type SnapshotPointer,
} from "./kv_layout.ts";
import { StorageCorruptionError, StorageLossError } from "../store/storage_errors.ts";
import type { KvLike } from "../store/kv_like.ts";
import type { LoadOptions, RaftStorage, StorageBatch, StoredState } from "./storage.ts";
import type { Entry, HardState, NodeId } from "./types.ts";

/**
 * Options for {@linkcode DenoKvStorage.open}.
 *
 * @example
 * ```ts
 * import type { DenoKvStorageOptions } from "@distkit/distkit/raft";
 *
 * const options: DenoKvStorageOptions = { prefix: ["cluster-a", "node-1"] };
 * ```
 */
export interface DenoKvStorageOptions {
  /** Key prefix, so several stores can share one database. Default `["raft"]`. */
  prefix?: Deno.KvKeyPart[];
  /** Codec for entries and state. Default: the shared 64 MiB codec. */
  codec?: Codec;
  /**
   * The high-water mark file (see the module doc); `null`: none (a store
   * whose losses go undetected). Default: `<path>.mark` (with the default
   * prefix; `<path>.<prefix parts joined by ".">.mark` with another), none
   * for `":memory:"`.
   */
  mark?: string | null;
  /**
   * The caller knows the store has held state (its node has met its peers,
   * so it may have voted and acknowledged): a missing mark is then a loss
   * even when the store is empty too (both deleted). Default false.
   */
  expectState?: boolean;
}

/** An entry encoded for storage, and the part count of the entry it overwrites (0 if none). */
interface EncodedEntry {
  index: number;
  parts: Uint8Array[];
  /** Stored bytes (header and body), for raftStateSize. */
  size: number;
  staleParts: number;
}

/** Snapshot data written ahead by `prepareSnapshot`, for the save that switches to it. */
interface Prepared {
  data: Uint8Array;
  pointer: Omit<SnapshotPointer, "meta">;
  /** Every chunk is committed. */
  written: boolean;
  /** No save will switch to it: its chunks are garbage once no longer being written. */
  dropped: boolean;
}

/**
 * Stored keys the meta no longer reaches, not deleted yet: entries `from` to
 * `to` (from part `part` of entry `from` on), or chunks `from` to `to` of
 * snapshot `id`.
 */
type Garbage =
  | { kind: "log"; from: number; to: number; part: number }
  | { kind: "snap"; id: number; from: number; to: number };

/**
 * Raft storage in a Deno KV database (needs `"unstable": ["kv"]` or
 * `--unstable-kv`). One process may open a file at a time.
 *
 * @example
 * ```ts
 * import { DenoKvStorage } from "@distkit/distkit/raft";
 *
 * const path = await Deno.makeTempFile({ suffix: ".kv" });
 * const storage = await DenoKvStorage.open(path);
 * await storage.save({
 *   hardState: { term: 1, vote: "a", commit: 0 },
 *   entries: [{ index: 1, term: 1, kind: "command", command: "x" }],
 *   resetLog: false,
 * });
 * (await storage.load()).entries.length; // 1
 * await storage.close();
 * await Deno.remove(path);
 * ```
 */
export class DenoKvStorage implements RaftStorage {
  readonly #kv: KvLike;
  readonly #where: string;
  readonly #prefix: Deno.KvKeyPart[];
  readonly #codec: Codec;
  readonly #layout: KvLayout;
  #meta: Meta = { first: 1, last: 0, snapshot: null };
  #hardStateBytes = 0;
  /** Encoded size of each stored entry, by index (for raftStateSize). */
  #entrySizes = new Map<number, number>();
  #entryBytes = 0;
  /**
   * Compacted entries and replaced snapshots, oldest first, that later saves
   * delete a slice at a time; all of it lies below the log's first index.
   * A crash forgets it: `load` deletes what is left.
   */
  #garbage: Garbage[] = [];
  /** Part counts of the garbage entries with more than one part. */
  #garbageParts = new Map<number, number>();
  /** The id the next snapshot's chunks are written under (never one in use or in the garbage). */
  #nextSnapshotId = 1;
  #prepared: Prepared | undefined;
  /** Preparations writing, which `close` waits for. */
  #preparing = new Set<Promise<void>>();
  #closed = false;
  /** The high-water mark, unless disabled. */
  #mark: HighWaterMark | undefined;
  /** The stored term and vote. */
  #term = 0;
  #vote: NodeId | null = null;
  /** The term of each stored entry, by index (for the mark's floors). */
  #entryTerms = new Map<number, number>();

  private constructor(kv: KvLike, where: string, options: DenoKvStorageOptions) {
    this.#kv = kv;
    this.#where = where;
    this.#prefix = options.prefix ?? ["raft"];
    this.#codec = options.codec ?? defaultCodec;
    this.#layout = new KvLayout(kv, { where, prefix: this.#prefix, codec: this.#codec });
  }

  /**
   * Opens (or creates) the database at `path`.
   *
   * @throws {Error} when the file cannot be opened, for example because another process has it open.
   */
  static async open(path: string, options: DenoKvStorageOptions = {}): Promise<DenoKvStorage> {
    let kv: Deno.Kv;
    try {
      kv = await Deno.openKv(path);
    } catch (err) {
      throw new Error(
        `cannot open Raft storage ${path}: ${(err as Error).message}; ` +
          `check the path and that no other process has it open (one process per file)`,
        { cause: err },
      );
    }
    const storage = new DenoKvStorage(kv, path, options);
    try {
      await storage.#openMark(markPath(path, options), options.expectState ?? false);
    } catch (err) {
      kv.close();
      throw err;
    }
    return storage;
  }

  /**
   * Opens the high-water mark. A missing one is created only for an empty
   * store: a store with state and no mark lost it (or is from before marks).
   */
  async #openMark(path: string | null, expectState: boolean): Promise<void> {
    if (path === null) return;
    const exists = await Deno.stat(path).then(() => true, (err) => {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    });
    if (!exists && expectState) {
      throw new StorageLossError(
        this.#where,
        `the store and its high-water mark ${path} are both gone, though this node has taken ` +
          `part in its cluster`,
      );
    }
    if (!exists) {
      const [hs, meta] = await this.#kv.getMany([this.#layout.key("hs"), this.#layout.key("meta")]);
      if (hs.value !== null || meta.value !== null) {
        throw new StorageCorruptionError(
          this.#where,
          `its high-water mark ${path} is missing, though the store holds state, so nothing ` +
            `tells whether the store still holds all it acknowledged`,
        );
      }
    }
    this.#mark = await HighWaterMark.open(path);
  }

  async load(options: LoadOptions = {}): Promise<StoredState> {
    this.#check();
    let state: StoredState;
    try {
      state = await this.#load();
    } catch (err) {
      if (err instanceof StorageCorruptionError) throw err;
      // SQLite's own verdict on a damaged file ("database disk image is malformed").
      throw new StorageCorruptionError(
        this.#where,
        `the database cannot be read (${(err as Error).message})`,
      );
    }
    // Nothing is written at load: the caller's checks run on what was read.
    options.accept?.(state);
    return state;
  }

  async #load(): Promise<StoredState> {
    const [hsEntry, metaEntry] = await this.#kv.getMany<[Uint8Array, Uint8Array]>([
      this.#layout.key("hs"),
      this.#layout.key("meta"),
    ]);
    let hardState: HardState = { term: 0, vote: null, commit: 0 };
    if (hsEntry.value !== null) {
      hardState = this.#layout.decodeChecked(hsEntry.value, "the hard state") as HardState;
      this.#hardStateBytes = hsEntry.value.length;
    }
    this.#meta = metaEntry.value === null
      ? { first: 1, last: 0, snapshot: null }
      : this.#layout.decodeChecked(metaEntry.value, "the log bounds") as Meta;
    const state: StoredState = { hardState, entries: [] };
    const pointer = this.#meta.snapshot;
    if (pointer !== null) {
      state.snapshot = { meta: pointer.meta, data: await this.#layout.readSnapshot(pointer) };
    }
    state.entries = await this.#readEntries();
    this.#term = hardState.term;
    this.#vote = hardState.vote;
    // Before anything is written: a refused store is left as it was found.
    if (this.#mark) {
      checkFloor(state, this.#meta.first, this.#mark.floor, {
        where: this.#where,
        markPath: this.#mark.path,
      });
    }
    await this.#removeLeftovers();
    // After a process crash (kill -9), WAL frames the dead process wrote but
    // had not synced read back from the page cache; Raft acts on them (re-grants
    // the vote, acknowledges the entries) without a save of its own, and a power
    // loss would then take them away. A commit fsyncs the WAL file, all of it:
    // one of the values just read, written back as it is, makes them durable.
    const found: Mutation[] = [];
    for (const entry of [hsEntry, metaEntry]) {
      if (entry.value !== null) found.push({ type: "set", key: entry.key, value: entry.value });
    }
    await this.#layout.commit(found.slice(0, 1));
    this.#garbage = [];
    this.#garbageParts.clear();
    this.#nextSnapshotId = (pointer?.id ?? 0) + 1;
    this.#prepared = undefined;
    // The commit index may have been saved ahead of entries a crash kept from being written.
    const floor = pointer?.meta.index ?? 0;
    hardState.commit = Math.max(floor, Math.min(hardState.commit, this.#meta.last));
    return state;
  }

  /**
   * The floor of the state the last save left, limited to entries before
   * `keepBelow` (a save that replaces entries from there on may take them).
   */
  #floor(keepBelow = Infinity): Floor {
    const covered = this.#meta.snapshot?.meta.index ?? 0;
    let index = Math.min(this.#meta.last, keepBelow - 1);
    // An emptied log (a reset without a snapshot) holds nothing past the snapshot.
    if (index < this.#meta.first) index = Math.min(index, covered);
    const floor: Floor = { term: this.#term, vote: this.#vote, index: 0, logTerm: -1 };
    if (index <= 0) return floor;
    floor.index = index;
    if (index <= covered) return floor;
    const logTerm = this.#entryTerms.get(index);
    if (logTerm === undefined) {
      throw new Error(`DenoKvStorage invariant: entry ${index} is stored but its term is unknown`);
    }
    floor.logTerm = logTerm;
    return floor;
  }

  async save(batch: StorageBatch): Promise<void> {
    this.#check();
    const bodies = await this.#layout.encodeEntries(batch.entries);
    this.#check();
    // The floor below what this save may replace (see the module doc).
    let keepBelow = batch.entries.length > 0 ? batch.entries[0].index : Infinity;
    if (batch.resetLog) {
      keepBelow = Math.min(keepBelow, batch.snapshot?.meta.index ?? this.#meta.first);
    }
    const floor = this.#floor(keepBelow);
    const old = { ...this.#meta };
    const meta: Meta = { ...this.#meta };
    const commits: Mutation[][] = [];
    // 1. Snapshot chunks, under a fresh id: invisible until the pointer switches.
    let pointer: SnapshotPointer | undefined;
    const prepared = this.#prepared;
    if (batch.snapshot && prepared?.written && prepared.data === batch.snapshot.data) {
      pointer = { ...prepared.pointer, meta: batch.snapshot.meta };
      this.#prepared = undefined;
    } else if (batch.snapshot) {
      pointer = { ...this.#chunking(batch.snapshot.data), meta: batch.snapshot.meta };
      commits.push(...pack(this.#layout.snapshotMutations(pointer, batch.snapshot.data)));
    }
    // 2. Hard state, the pointer switch and the entries, each commit leaving a valid log.
    const head: Mutation[] = [];
    if (batch.hardState) {
      head.push({
        type: "set",
        key: this.#layout.key("hs"),
        value: this.#layout.encodeChecked(batch.hardState),
      });
    }
    if (batch.resetLog) {
      meta.first = (pointer?.meta.index ?? meta.last) + 1;
      meta.last = meta.first - 1;
    }
    if (pointer) {
      meta.snapshot = pointer;
      meta.first = Math.max(meta.first, pointer.meta.index + 1);
      if (meta.last < pointer.meta.index) meta.last = pointer.meta.index;
    }
    const entryGroups = this.#entryGroups(batch.entries, bodies);
    if (batch.entries.length > 0) {
      const from = batch.entries[0].index;
      if (meta.last < meta.first - 1 || from > meta.last + 1 || from < meta.first) {
        throw new Error(
          `DenoKvStorage: entry ${from} does not follow the stored log (${meta.first}..${meta.last})`,
        );
      }
      meta.last = from - 1;
    }
    let first = true;
    const groups = entryGroups.length > 0 ? entryGroups : [[]];
    for (const group of groups) {
      let mutations: Mutation[] = first ? [...head] : [];
      for (const { index, parts, staleParts } of group) {
        // An overwritten entry that had more parts loses the extra ones
        // first: left behind, they would read as part of the new entry.
        const writes: Mutation[] = this.#partDeletes(index, parts.length, staleParts);
        writes.push(...parts.map((value, part) => ({
          type: "set" as const,
          key: this.#layout.key("log", index, part),
          value,
        })));
        // An entry too big for one commit sends its first parts ahead, each
        // commit with the meta still ending before it (so a crash leaves them
        // invisible, and an entry being overwritten is dropped, not mixed).
        while (writes.length > PARTS_PER_COMMIT) {
          mutations.push(...writes.splice(0, PARTS_PER_COMMIT));
          mutations.push({
            type: "set",
            key: this.#layout.key("meta"),
            value: this.#layout.encodeChecked({ ...meta }),
          });
          commits.push(mutations);
          mutations = [];
        }
        mutations.push(...writes);
        meta.last = index;
      }
      mutations.push({
        type: "set",
        key: this.#layout.key("meta"),
        value: this.#layout.encodeChecked({ ...meta }),
      });
      commits.push(mutations);
      first = false;
    }
    // 3. Garbage this save may write over (after a reset to an older
    // snapshot) goes first, or deleting it later would hit the new keys.
    // Then a slice of the rest rides on the last commit: the meta hides it,
    // before and after this save.
    const overwritten = pack(this.#takeGarbageFrom(meta.first));
    const last = commits[commits.length - 1];
    const writes = commits.reduce((n, c) => n + c.length, 0);
    const room = COMMIT_MUTATIONS - last.length;
    last.push(...this.#takeGarbage(Math.min(GARBAGE_PER_SAVE + writes, room)));
    commits.unshift(...overwritten);
    // A save that replaces stored entries (a new leader's, or a snapshot
    // reset) waits for its lower mark before it commits: a mark recorded
    // earlier may name an entry it removes.
    if (this.#mark && keepBelow <= this.#meta.last) await this.#mark.write(floor);
    for (const mutations of commits) await this.#layout.commit(mutations);
    // 4. Clean-up, after the switch. A dropped suffix goes at once: a later
    // save may write there again. Compacted entries and the replaced
    // snapshot become garbage, for later saves to delete.
    const dropped: Mutation[] = [];
    for (let i = Math.max(meta.last + 1, old.first); i <= old.last; i++) {
      dropped.push(...this.#entryDeletes(i));
    }
    for (const mutations of pack(dropped)) await this.#layout.commit(mutations);
    this.#addGarbage(old, meta, pointer !== undefined);
    // Bookkeeping for raftStateSize. Only the ranges this save dropped can
    // leave (walking every stored entry cost a measurable share of a put).
    if (batch.hardState) this.#hardStateBytes = head[0].type === "set" ? head[0].value.length : 0;
    for (let i = old.first; i < meta.first && i <= old.last; i++) this.#forget(i);
    for (let i = Math.max(meta.last + 1, old.first); i <= old.last; i++) this.#forget(i);
    for (const group of entryGroups) {
      for (const { index, size } of group) {
        this.#entryBytes += size - (this.#entrySizes.get(index) ?? 0);
        this.#entrySizes.set(index, size);
      }
    }
    for (const e of batch.entries) this.#entryTerms.set(e.index, e.term);
    // The mark covers this save before it resolves, so before anything it
    // enables is acknowledged. A new term or vote waits for the mark's fsync:
    // a vote lost with the last WAL frames could otherwise be given twice in
    // one term, even after a power loss. Elections are rare; ordinary writes
    // do not wait for it.
    const voted = batch.hardState !== undefined &&
      (batch.hardState.term !== this.#term || batch.hardState.vote !== this.#vote);
    if (batch.hardState) {
      this.#term = batch.hardState.term;
      this.#vote = batch.hardState.vote;
    }
    this.#meta = meta;
    if (this.#mark) {
      if (voted) await this.#mark.write(this.#floor());
      else this.#mark.record(this.#floor());
    }
  }

  /**
   * Writes the chunks of a snapshot's data under a fresh id, in small
   * commits beside the log's saves; the save whose snapshot has this `data`
   * then only switches to them. Replaces an earlier preparation.
   */
  async prepareSnapshot(data: Uint8Array): Promise<void> {
    this.#check();
    this.#dropPrepared();
    const prepared: Prepared = {
      data,
      pointer: this.#chunking(data),
      written: false,
      dropped: false,
    };
    this.#prepared = prepared;
    const writes = this.#layout.snapshotMutations(prepared.pointer, data);
    const writing = (async () => {
      for (const mutations of pack(writes, PREPARE_CHUNKS_PER_COMMIT)) {
        await this.#layout.commit(mutations);
      }
    })();
    this.#preparing.add(writing);
    try {
      await writing;
      prepared.written = true;
    } finally {
      this.#preparing.delete(writing);
      if (!prepared.written) {
        prepared.dropped = true;
        if (this.#prepared === prepared) this.#prepared = undefined;
      }
      // Dropped while being written: only now can its chunks be deleted.
      if (prepared.dropped) this.#addSnapshotGarbage(prepared.pointer);
    }
  }

  /**
   * The database the storage is in, for state that shares the file under
   * its own key prefix (a KV node's `StateStore`, under `["state"]`): one
   * process, one handle per file. {@linkcode DenoKvStorage.close} closes it.
   */
  get database(): KvLike {
    return this.#kv;
  }

  raftStateSize(): number {
    return this.#hardStateBytes + this.#entryBytes;
  }

  snapshotSize(): number {
    return this.#meta.snapshot?.size ?? 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled(this.#preparing);
    await this.#mark?.close();
    this.#kv.close();
  }

  // ---- internals ----

  #forget(index: number): void {
    this.#entryTerms.delete(index);
    const size = this.#entrySizes.get(index);
    if (size === undefined) return;
    this.#entryBytes -= size;
    this.#entrySizes.delete(index);
  }

  /** Records as garbage the entries compacted by a save from `old` to `meta`, and the replaced snapshot. */
  #addGarbage(old: Meta, meta: Meta, switched: boolean): void {
    const to = Math.min(meta.first - 1, old.last);
    if (to >= old.first) {
      this.#garbage.push({ kind: "log", from: old.first, to, part: 0 });
      for (let i = old.first; i <= to; i++) {
        const parts = partCount(this.#entrySizes.get(i) ?? 0);
        if (parts > 1) this.#garbageParts.set(i, parts);
      }
    }
    if (switched && old.snapshot) this.#addSnapshotGarbage(old.snapshot);
  }

  #addSnapshotGarbage(pointer: { id: number; chunks: number }): void {
    this.#garbage.push({ kind: "snap", id: pointer.id, from: 0, to: pointer.chunks - 1 });
  }

  /**
   * Gives up the prepared snapshot: its chunks become garbage, at once if
   * written, else when its writing ends (deleted earlier, they could be
   * written again after).
   */
  #dropPrepared(): void {
    const prepared = this.#prepared;
    if (prepared === undefined) return;
    this.#prepared = undefined;
    prepared.dropped = true;
    if (prepared.written) this.#addSnapshotGarbage(prepared.pointer);
  }

  /** Deletes of up to `limit` garbage keys, oldest first, taken off the garbage. */
  #takeGarbage(limit: number): Mutation[] {
    const deletes: Mutation[] = [];
    while (deletes.length < limit && this.#garbage.length > 0) {
      const g = this.#garbage[0];
      if (g.kind === "snap") {
        deletes.push({ type: "delete", key: this.#layout.key("snap", g.id, g.from++) });
      } else {
        deletes.push({ type: "delete", key: this.#layout.key("log", g.from, g.part++) });
        if (g.part >= (this.#garbageParts.get(g.from) ?? 1)) {
          this.#garbageParts.delete(g.from);
          g.from++;
          g.part = 0;
        }
      }
      if (g.from > g.to) this.#garbage.shift();
    }
    return deletes;
  }

  /** Deletes of every garbage entry at `index` or above, taken off the garbage. */
  #takeGarbageFrom(index: number): Mutation[] {
    const deletes: Mutation[] = [];
    for (const g of this.#garbage) {
      if (g.kind === "snap" || g.to < index) continue;
      for (let i = Math.max(g.from, index); i <= g.to; i++) {
        deletes.push(...this.#partDeletes(i, 0, this.#garbageParts.get(i) ?? 1));
        this.#garbageParts.delete(i);
      }
      g.to = index - 1;
    }
    this.#garbage = this.#garbage.filter((g) => g.from <= g.to);
    return deletes;
  }

  #check(): void {
    if (this.#closed) {
      throw new Error(`Raft storage ${this.#where} is closed; open it again to use it`);
    }
  }

  /**
   * Groups encoded entries so each group fits one commit (with the
   * head and meta). `staleParts`: how many parts the stored entry at the same
   * index has (0 if none), so an overwrite can delete the ones beyond its own.
   */
  #entryGroups(
    entries: Entry[],
    bodies: { body: Uint8Array; crc: number }[],
  ): EncodedEntry[][] {
    const groups: EncodedEntry[][] = [];
    let group: EncodedEntry[] = [];
    let mutations = 4; // head and meta
    let bytes = 1024;
    for (const [k, entry] of entries.entries()) {
      const { body, crc } = bodies[k];
      const parts: Uint8Array[] = [];
      const count = partCount(body.length + HEADER_BYTES);
      if (count > 0xffff) {
        throw new Error(`entry ${entry.index} is too large to store (${body.length} bytes)`);
      }
      const header = new Uint8Array(HEADER_BYTES);
      const view = new DataView(header.buffer);
      view.setUint32(0, crc);
      view.setUint16(4, count);
      const first = Math.min(body.length, PART_BYTES - HEADER_BYTES);
      const part0 = new Uint8Array(HEADER_BYTES + first);
      part0.set(header);
      part0.set(body.subarray(0, first), HEADER_BYTES);
      parts.push(part0);
      for (let at = first; at < body.length; at += PART_BYTES) {
        parts.push(body.subarray(at, at + PART_BYTES));
      }
      const size = body.length + HEADER_BYTES;
      const stored = this.#entrySizes.get(entry.index);
      const staleParts = stored === undefined ? 0 : partCount(stored);
      const writes = parts.length + Math.max(0, staleParts - parts.length);
      if (
        group.length > 0 &&
        (mutations + writes > COMMIT_MUTATIONS || bytes + size > COMMIT_BYTES)
      ) {
        groups.push(group);
        group = [];
        mutations = 4;
        bytes = 1024;
      }
      group.push({ index: entry.index, parts, size, staleParts });
      mutations += writes;
      bytes += size + 64;
    }
    if (group.length > 0) groups.push(group);
    return groups;
  }

  #entryDeletes(index: number): Mutation[] {
    const size = this.#entrySizes.get(index);
    return this.#partDeletes(index, 0, size === undefined ? 1 : partCount(size));
  }

  /** Deletes of parts `from` to `to - 1` of the entry at `index`. */
  #partDeletes(index: number, from: number, to: number): Mutation[] {
    return Array.from(
      { length: Math.max(0, to - from) },
      (_, k) => ({ type: "delete" as const, key: this.#layout.key("log", index, from + k) }),
    );
  }

  async #readEntries(): Promise<Entry[]> {
    const { first, last } = this.#meta;
    this.#entrySizes.clear();
    this.#entryTerms.clear();
    this.#entryBytes = 0;
    if (last < first) return [];
    const entries: Entry[] = [];
    let parts: Uint8Array[] = [];
    let current = first;
    const finish = () => {
      const entry = this.#layout.assembleEntry(current, parts);
      entries.push(entry.entry);
      this.#entryTerms.set(current, entry.entry.term);
      this.#entrySizes.set(current, entry.size);
      this.#entryBytes += entry.size;
      parts = [];
      current++;
    };
    const iter = this.#kv.list<Uint8Array>({
      start: this.#layout.key("log", first),
      end: this.#layout.key("log", last + 1),
    });
    for await (const { key, value } of iter) {
      const index = key[this.#prefix.length + 1] as number;
      const part = key[this.#prefix.length + 2] as number;
      if (index !== current) {
        if (parts.length > 0) finish(); // every part of `current` is in: assemble it
        if (index !== current) {
          throw new StorageCorruptionError(
            this.#where,
            `entry ${current} is missing (found ${index} next)`,
          );
        }
      }
      if (part !== parts.length) {
        throw new StorageCorruptionError(
          this.#where,
          `entry ${index} is missing part ${parts.length}`,
        );
      }
      parts.push(value);
    }
    if (parts.length > 0) finish();
    if (current !== last + 1) {
      throw new StorageCorruptionError(this.#where, `entries ${current}..${last} are missing`);
    }
    return entries;
  }

  /**
   * Deletes what a crash can leave outside the meta: entries below `first`
   * (compacted) or above `last` (a dropped suffix), and chunks of snapshots
   * other than the current one (the one it replaced, or one whose pointer
   * switch never happened, under the id the next snapshot takes). None of it
   * is read, but a later write at the same key would be mixed with it.
   */
  async #removeLeftovers(): Promise<void> {
    const { first, last, snapshot } = this.#meta;
    const id = snapshot?.id ?? 0;
    const log = this.#layout.key("log");
    const snap = this.#layout.key("snap");
    const outside: Deno.KvListSelector[] = [
      { prefix: log, end: this.#layout.key("log", first) },
      { prefix: log, start: this.#layout.key("log", last + 1) },
      { prefix: snap, end: this.#layout.key("snap", id) },
      { prefix: snap, start: this.#layout.key("snap", id + 1) },
    ];
    const deletes: Mutation[] = [];
    for (const selector of outside) {
      for await (const { key } of this.#kv.list(selector)) deletes.push({ type: "delete", key });
    }
    for (const mutations of pack(deletes)) await this.#layout.commit(mutations);
  }

  /** A fresh id for `data`, and what its pointer records of it. */
  #chunking(data: Uint8Array): Omit<SnapshotPointer, "meta"> {
    return {
      id: this.#nextSnapshotId++,
      size: data.length,
      crc: crc32(data),
      chunks: Math.max(1, Math.ceil(data.length / PART_BYTES)),
    };
  }
}
