/**
 * Raft storage in append-only segment files: the log and the hard state as
 * records in zero-filled segments of a folder, each save one write of its
 * records and one `fdatasync`, against Deno KV's SQLite transaction and full
 * `fsync` (BENCHMARKS.md, "Storage: Deno KV vs an append-only log").
 *
 * The folder holds:
 * - `format.json`: what the folder is (so it is never read as another kind),
 *   and its random id, which seeds every segment's CRC chain (so a segment
 *   copied in from another folder fails its checks);
 * - `<sequence>.seg`: segments of `segmentBytes` (64 MiB), zero-filled and
 *   synced (with the folder) ahead of need, so an append never grows a file;
 *   each starts with a base record (the state before it but the entries);
 * - `snap-<id>.bin`: snapshot data, written whole and synced before the
 *   record that switches to it;
 * - `mark`: the durable high-water mark (`high_water_mark.ts`);
 * - `lock`: locked (`flock`) while a storage has the folder open, so a
 *   second one is refused (`SegmentLockError`) instead of writing over it.
 *
 * A save writes a head record (new hard state, snapshot switch, log reset,
 * truncation of a conflicting suffix) when it has any of these, then one
 * record per entry; each record's CRC is chained to the previous one's (see
 * `segment_format.ts`). A crash can tear the last write, leaving a prefix of
 * its records and then garbage or zeros: a prefix of a save, as the
 * `RaftStorage` contract allows. So `load` cuts a bad record off only at the
 * end of the last segment, and only when what remains still reaches the
 * high-water mark (so nothing cut was acknowledged: `StorageLossError`
 * otherwise); a bad record anywhere else, a damaged record followed by valid
 * ones, a missing segment or a chain that does not join is
 * `StorageCorruptionError`. Unlike SQLite's WAL, a failing checksum is
 * never read as "the log ends here" below what was acknowledged.
 *
 * Snapshots and the log's bounds are here too, not in Deno KV: a snapshot
 * switch is a record in the same ordered log, so a crash keeps a prefix of
 * the saves with no protocol between two stores, and a node on this storage
 * syncs one file per save. Compaction deletes whole segments whose entries
 * all lie at or below the snapshot, once its record is synced.
 *
 * A failed write or sync (of a segment, a snapshot's data or the mark) fails
 * this save and every later call (fail-stop):
 * after a failed `fdatasync` Linux may drop the dirty pages and report the
 * next one clean, so nothing after it can be trusted; the node must stop and
 * be restarted (its `load` checks what is durable). A segment made ahead
 * whose making failed (a full disk, say) is made again when it is needed:
 * only that second failure stops the storage.
 *
 * @module
 */
import { type Codec, defaultCodec } from "../net/codec.ts";
import { crc32 } from "../net/bytes.ts";
import { checkBatchFollows } from "./batch_check.ts";
import { checkFloor, type Floor, type HighWaterMark, writeFileDurably } from "./high_water_mark.ts";
import {
  type BasePayload,
  type HeadPayload,
  KIND_BASE,
  KIND_ENTRY,
  KIND_HEAD,
  nonZeroEnd,
  RECORD_HEADER_BYTES,
  segmentName,
  segmentSeed,
  type SnapshotFile,
  writeRecord,
} from "./segment_format.ts";
import { changedBounds, LogWindow, type WindowChange, windowFloor } from "./segment_window.ts";
import { readSegments, type Segment } from "./segment_replay.ts";
import { openFolder, openMark, syncLoaded } from "./segment_folder.ts";
import {
  makeZeroedFile,
  realSegmentFs,
  type SegmentFile,
  type SegmentFs,
  writeZeros,
} from "./segment_fs.ts";
import { readLocated, readSnapshotData } from "./segment_read.ts";
import type { LogLocation } from "../store/log_location.ts";
import { StorageCorruptionError, StorageLossError } from "../store/storage_errors.ts";
import type { LoadOptions, RaftStorage, StorageBatch, StoredState } from "./storage.ts";
import type { Entry, HardState } from "./types.ts";

export { SegmentFormatError, SegmentLockError } from "./segment_folder.ts";
export type { SegmentLogStorageOptions, SegmentsKept } from "./segment_options.ts";
import type { SegmentLogStorageOptions, SegmentsKept } from "./segment_options.ts";

/** Default bytes of one segment. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

/** Per stored entry: its term (for the mark's floors), its record's bytes and where it lies. */
interface EntryInfo {
  term: number;
  size: number;
  segment: number;
  offset: number;
  seed: number;
}

/** Where a record was written: its segment, offset, and the CRC it is chained to. */
interface Placed {
  segment: number;
  offset: number;
  seed: number;
}

/** Snapshot data written ahead by `prepareSnapshot`. */
interface Prepared {
  data: Uint8Array;
  file: Omit<SnapshotFile, "meta"> | undefined;
}

/** One record of a save, before it is chained and written. */
interface Pending {
  kind: number;
  index: number;
  term: number;
  payload: Uint8Array;
}

/**
 * Raft storage in append-only segment files (see the module doc). One
 * storage may open a folder at a time: a second is refused with
 * {@linkcode SegmentLockError}. `close` waits for a load or save under way,
 * so nothing is written after it resolves (and the lock is free).
 *
 * @example
 * ```ts
 * import { SegmentLogStorage } from "@distkit/distkit/raft";
 *
 * const dir = await Deno.makeTempDir();
 * const storage = await SegmentLogStorage.open(`${dir}/raft.log`, { segmentBytes: 1 << 20 });
 * await storage.load();
 * await storage.save({
 *   hardState: { term: 1, vote: "a", commit: 0 },
 *   entries: [{ index: 1, term: 1, kind: "command", command: "x" }],
 *   resetLog: false,
 * });
 * (await storage.load()).entries.length; // 1
 * await storage.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class SegmentLogStorage implements RaftStorage {
  readonly #dir: string;
  readonly #codec: Codec;
  readonly #segmentBytes: number;
  readonly #fs: SegmentFs;
  #mark: HighWaterMark | undefined;
  /** The folder's lock, held from open to close (one writer per folder). */
  #lock: SegmentFile | undefined;
  /** The folder's id, in every segment's chain seed (undefined: a folder made before ids). */
  #folderId: string | undefined;
  #loaded = false;
  #closed = false;
  /** A failed write or sync: every later call fails with it. */
  #failure: Error | undefined;
  /** The lowest segment a state still points into (see `retain`). */
  #retain: (() => number | undefined) | undefined;

  #hardState: HardState = { term: 0, vote: null, commit: 0 };
  #hardStateBytes = 0;
  #snapshot: SnapshotFile | null = null;
  #window = new LogWindow<EntryInfo>();
  #entryBytes = 0;

  /** Segments with records, oldest first; the last is the one appended to. */
  #segments: Segment[] = [];
  #file: SegmentFile | undefined;
  /** Where the next record goes in the active segment, and the CRC it chains to. */
  #offset = 0;
  #chain = 0;
  /** End of the active segment's base record: a save that does not fit after it grows the file. */
  #baseEnd = 0;
  /** The next segment, being zero-filled (resolves to its sequence number). */
  #spare: Promise<number> | undefined;

  #nextSnapshotId = 1;
  #prepared: Prepared | undefined;
  #preparing = new Set<Promise<unknown>>();
  /** Loads and saves under way (settled: they never reject). */
  #busy = new Set<Promise<void>>();

  private constructor(dir: string, options: SegmentLogStorageOptions) {
    this.#dir = dir;
    this.#codec = options.codec ?? defaultCodec;
    this.#fs = options.fs ?? realSegmentFs;
    this.#segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isInteger(this.#segmentBytes) || this.#segmentBytes < 4096) {
      throw new RangeError(
        `segmentBytes must be an integer of 4096 or more, got ${this.#segmentBytes}`,
      );
    }
  }

  /**
   * Opens (or creates) the segment log in the folder `dir`.
   *
   * @throws {SegmentFormatError} when the folder holds something else.
   * @throws {StorageCorruptionError} when segments are there without their format record or mark.
   * @throws {StorageLossError} when the folder and its mark are gone though `expectState` says it held state.
   */
  static async open(
    dir: string,
    options: SegmentLogStorageOptions = {},
  ): Promise<SegmentLogStorage> {
    const storage = new SegmentLogStorage(dir, options);
    const fs = storage.#fs;
    const { holdsState, id, lock } = await openFolder(dir, fs, { random: options.random });
    storage.#lock = lock;
    storage.#folderId = id;
    const mark = options.mark === undefined ? `${dir}/mark` : options.mark;
    if (mark !== null) {
      try {
        storage.#mark = await openMark(mark, {
          where: dir,
          holdsState,
          expectState: options.expectState ?? false,
          fs,
          clock: options.clock,
        });
      } catch (err) {
        lock.close();
        throw err;
      }
    }
    return storage;
  }

  load(options: LoadOptions = {}): Promise<StoredState> {
    return this.#track(async () => {
      this.#check();
      const state = await this.#replay(options.accept);
      this.#loaded = true;
      return state;
    });
  }

  save(batch: StorageBatch): Promise<void> {
    return this.#track(() => this.#save(batch));
  }

  /** Runs a load or save as the work `close` waits for (nothing is written after it). */
  #track<T>(work: () => Promise<T>): Promise<T> {
    const running = work();
    const settled = running.then(() => {}, () => {});
    this.#busy.add(settled);
    settled.finally(() => this.#busy.delete(settled));
    return running;
  }

  async #save(batch: StorageBatch): Promise<void> {
    this.#check();
    if (!this.#loaded) {
      await this.#replay();
      this.#loaded = true;
    }
    const window = this.#window;
    checkBatchFollows(
      { first: window.first, count: window.items.length },
      batch,
      "SegmentLogStorage",
    );
    // The change, checked before anything is written.
    const snapshotIndex = batch.snapshot?.meta.index ?? null;
    const moved = changedBounds({ first: window.first, last: window.last }, {
      reset: batch.resetLog,
      snapshotIndex,
      truncate: null,
    });
    let truncate: number | null = null;
    const from = batch.entries[0]?.index;
    if (from !== undefined) {
      if (from < moved.first || from > moved.last + 1) {
        throw new Error(
          `SegmentLogStorage: entry ${from} does not follow the stored log (${moved.first}..${moved.last})`,
        );
      }
      if (from <= moved.last) truncate = from;
      for (const [k, e] of batch.entries.entries()) {
        if (e.index !== from + k) {
          throw new Error(
            `SegmentLogStorage: the batch's entries skip from ${from + k - 1} to ${e.index}`,
          );
        }
      }
    }
    const change: WindowChange = { reset: batch.resetLog, snapshotIndex, truncate };
    // The floor below what this save may replace (as DenoKvStorage's).
    let keepBelow = from ?? Infinity;
    if (batch.resetLog) keepBelow = Math.min(keepBelow, snapshotIndex ?? window.first);
    const floor = this.#floor(keepBelow);
    let snapshot: SnapshotFile | null = null;
    if (batch.snapshot) {
      snapshot = await this.#snapshotFile(batch.snapshot.data, batch.snapshot.meta);
    }
    this.#check();
    const records: Pending[] = [];
    let hardStateBytes: number | undefined;
    if (batch.hardState || snapshot || batch.resetLog || truncate !== null) {
      const head: HeadPayload = {
        hardState: batch.hardState ?? null,
        snapshot,
        reset: batch.resetLog,
        truncate,
      };
      if (batch.hardState) hardStateBytes = this.#codec.encode(batch.hardState).length;
      records.push({
        kind: KIND_HEAD,
        index: truncate ?? 0,
        term: batch.hardState?.term ?? 0,
        payload: this.#codec.encode(head),
      });
    }
    for (const e of batch.entries) {
      records.push({
        kind: KIND_ENTRY,
        index: e.index,
        term: e.term,
        payload: this.#codec.encode(e),
      });
    }
    // A save that replaces stored entries waits for its lower mark first: a
    // mark recorded earlier may name an entry it removes.
    if (keepBelow <= window.last) await this.#markFloor(floor, true);
    const placed = records.length > 0 ? await this.#append(records) : [];
    // The state the records describe.
    const previousSnapshot = this.#snapshot;
    for (const info of window.apply(change)) this.#entryBytes -= info?.size ?? 0;
    for (const [k, e] of batch.entries.entries()) {
      const at = records.length - batch.entries.length + k;
      const size = RECORD_HEADER_BYTES + records[at].payload.length;
      window.append(e.index, { term: e.term, size, ...placed[at] });
      this.#entryBytes += size;
    }
    if (snapshot) this.#snapshot = snapshot;
    const voted = batch.hardState !== undefined &&
      (batch.hardState.term !== this.#hardState.term ||
        batch.hardState.vote !== this.#hardState.vote);
    if (batch.hardState) {
      this.#hardState = { ...batch.hardState };
      this.#hardStateBytes = hardStateBytes!;
    }
    if (snapshot) {
      try {
        await this.#afterSnapshot(previousSnapshot, snapshot);
      } catch (err) {
        throw this.#fail(err as Error, "removing what a snapshot covers failed");
      }
    }
    // The mark covers this save before it resolves (see DenoKvStorage.save).
    await this.#markFloor(this.#floor(), voted);
  }

  /**
   * Records `floor` in the mark (and waits for its sync when `sync`). A
   * failure is the storage's: no later save may write records the mark
   * cannot cover.
   */
  async #markFloor(floor: Floor, sync: boolean): Promise<void> {
    if (!this.#mark) return;
    try {
      if (sync) await this.#mark.write(floor);
      else this.#mark.record(floor);
    } catch (err) {
      throw this.#fail(err as Error, "writing the high-water mark failed");
    }
  }

  /**
   * Writes a snapshot's data file ahead of the save that switches to it
   * (the one whose `snapshot.data` is this very array).
   */
  async prepareSnapshot(data: Uint8Array): Promise<void> {
    this.#check();
    this.#dropPrepared();
    const prepared: Prepared = { data, file: undefined };
    this.#prepared = prepared;
    const writing = this.#writeSnapshotData(data);
    this.#preparing.add(writing);
    try {
      prepared.file = await writing;
    } finally {
      this.#preparing.delete(writing);
    }
    // Replaced while being written: nothing will switch to it.
    if (this.#prepared !== prepared) await this.#removeQuietly(prepared.file!.file);
  }

  raftStateSize(): number {
    return this.#hardStateBytes + this.#entryBytes;
  }

  snapshotSize(): number {
    return this.#snapshot?.size ?? 0;
  }

  /**
   * Where the record of stored entry `index` (of `term`, when given) lies,
   * once its save resolved (so it is synced); undefined for an entry not
   * stored, of another term, or covered by the snapshot. Read it back with {@linkcode SegmentLogStorage.readRecord}
   * while its segment is kept (see {@linkcode SegmentLogStorage.retain}).
   */
  locate(index: number, term?: number): LogLocation | undefined {
    const info = this.#window.at(index);
    if (info === undefined || (term !== undefined && info.term !== term)) return undefined;
    return {
      segment: info.segment,
      offset: info.offset,
      length: info.size,
      seed: info.seed,
      index,
    };
  }

  /**
   * The entry whose record lies at `at` (from {@linkcode SegmentLogStorage.locate}),
   * read and checked alone (the CRC chained to the seed it carries, the kind,
   * the index). Works before `load`; after `close` too (it only reads).
   *
   * @throws {StorageCorruptionError} when the segment is gone or the record fails a check.
   */
  readRecord(at: LogLocation): Promise<Entry> {
    return readLocated(this.#dir, at, { fs: this.#fs, codec: this.#codec });
  }

  /**
   * Keeps segments a state points into: `lowest` answers the lowest segment
   * that still holds a value in use (undefined: none), and compaction never
   * deletes that segment nor any after it. A load keeps whatever segments
   * are there (they read as the start of the log, as before compaction).
   */
  retain(lowest: () => number | undefined): void {
    this.#retain = lowest;
  }

  /** The segments with records, oldest first, and their files' sizes; how many are kept only for a state's values. */
  segments(): SegmentsKept {
    const covered = this.#snapshot?.meta.index ?? 0;
    const kept = this.#segments.slice(0, -1).filter((s) => (s.lastAtClose ?? Infinity) <= covered);
    const sequences = this.#segments.map((s) => s.sequence);
    const bytes = this.#segments.map((s) => s.bytes);
    const segmentBytes = this.#segmentBytes;
    return { sequences, bytes, keptForValues: kept.length, segmentBytes, snapshotIndex: covered };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // A load or save under way finishes first: after close nothing is written.
    await Promise.all([...this.#busy]);
    await Promise.allSettled([...this.#preparing, this.#spare]);
    await this.#mark?.close();
    this.#file?.close();
    this.#file = undefined;
    // Last: until every write above is done, no other storage may open the folder.
    this.#lock?.close();
    this.#lock = undefined;
  }

  // ---- writing ----

  /**
   * Appends `records` in one write and one `fdatasync`, into a new segment
   * when they do not fit; resolves where each record lies (once synced).
   */
  async #append(records: Pending[]): Promise<Placed[]> {
    const bytes = records.reduce((n, r) => n + RECORD_HEADER_BYTES + r.payload.length, 0);
    let base: Pending | undefined;
    let sequence: number | undefined;
    if (
      this.#file === undefined ||
      (this.#offset + bytes > this.#segmentBytes && this.#offset > this.#baseEnd)
    ) {
      sequence = await this.#takeSpare();
      const payload: BasePayload = {
        hardState: this.#hardState,
        snapshot: this.#snapshot,
        first: this.#window.first,
        last: this.#window.last,
        previous: this.#chain,
      };
      base = {
        kind: KIND_BASE,
        index: this.#window.last,
        term: 0,
        payload: this.#codec.encode(payload),
      };
    }
    const all = base ? [base, ...records] : records;
    const out = new Uint8Array(bytes + (base ? RECORD_HEADER_BYTES + base.payload.length : 0));
    let at = 0;
    let chain = base ? segmentSeed(sequence!, this.#folderId) : this.#chain;
    const placed: Placed[] = [];
    for (const r of all) {
      if (r !== base) placed.push({ segment: 0, offset: at, seed: chain });
      chain = writeRecord(out, at, { ...r, seed: chain });
      at += RECORD_HEADER_BYTES + r.payload.length;
    }
    try {
      if (sequence !== undefined) {
        const file = await this.#fs.open(this.#segmentPath(sequence), { read: true, write: true });
        this.#file?.close();
        this.#file = file;
        this.#offset = 0;
        if (this.#segments.length > 0) {
          this.#segments[this.#segments.length - 1].lastAtClose = this.#window.last;
        }
        this.#segments.push({ sequence, lastAtClose: undefined, bytes: this.#segmentBytes });
        this.#baseEnd = RECORD_HEADER_BYTES + base!.payload.length;
        this.#startSpare(sequence + 1);
      }
      const file = this.#file!;
      file.writeSync(out, this.#offset);
      await file.syncData();
    } catch (err) {
      throw this.#fail(err as Error, "a write or sync of the log failed");
    }
    const active = this.#segments[this.#segments.length - 1];
    const segment = active.sequence;
    for (const p of placed) Object.assign(p, { segment, offset: this.#offset + p.offset });
    this.#offset += out.length;
    active.bytes = Math.max(active.bytes, this.#offset); // a record larger than a segment grew it
    this.#chain = chain;
    return placed;
  }

  /** Fail-stop: keeps the failure for every later call. */
  #fail(err: Error, what: string): Error {
    this.#failure ??= new Error(
      `Raft storage ${this.#dir}: ${what} (${err.message}); what reached the disk is unknown, so ` +
        `this storage refuses all further work: stop the node and restart it (its start-up ` +
        `checks what is durable)`,
      { cause: err },
    );
    return this.#failure;
  }

  /**
   * The spare segment's number, made now if none is being made, or made
   * again now if making it ahead failed (the disk was full then, say, and
   * may have space again): a second failure stops the storage.
   */
  async #takeSpare(): Promise<number> {
    const next = (this.#segments[this.#segments.length - 1]?.sequence ?? 0) + 1;
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare !== undefined) {
      const made = await spare.then((sequence) => sequence, () => undefined);
      if (made !== undefined) return made;
    }
    try {
      return await this.#makeSpare(next);
    } catch (err) {
      throw this.#fail(err as Error, "the next segment could not be made");
    }
  }

  #startSpare(sequence: number): void {
    const spare = this.#makeSpare(sequence);
    spare.catch(() => {}); // taken up by the save that needs it
    this.#spare = spare;
  }

  /** Zero-fills segment `sequence` (see `makeZeroedFile`). */
  async #makeSpare(sequence: number): Promise<number> {
    const path = this.#segmentPath(sequence);
    await makeZeroedFile(this.#fs, path, { dir: this.#dir, bytes: this.#segmentBytes });
    return sequence;
  }

  /** The file a snapshot's data goes in: the prepared one, or one written now. */
  async #snapshotFile(data: Uint8Array, meta: SnapshotFile["meta"]): Promise<SnapshotFile> {
    const prepared = this.#prepared;
    if (prepared?.data === data && prepared.file !== undefined) {
      this.#prepared = undefined;
      return { meta, ...prepared.file };
    }
    this.#dropPrepared();
    try {
      return { meta, ...await this.#writeSnapshotData(data) };
    } catch (err) {
      throw this.#fail(err as Error, "a snapshot's data could not be written");
    }
  }

  async #writeSnapshotData(data: Uint8Array): Promise<Omit<SnapshotFile, "meta">> {
    const file = `snap-${this.#nextSnapshotId++}.bin`;
    await writeFileDurably(`${this.#dir}/${file}`, data, { fs: this.#fs });
    return { file, size: data.length, crc: crc32(data) };
  }

  /** Gives up the prepared snapshot: its file goes once written. */
  #dropPrepared(): void {
    const prepared = this.#prepared;
    this.#prepared = undefined;
    if (prepared?.file) this.#background(this.#removeQuietly(prepared.file.file));
  }

  /** After a snapshot's record is synced: the old data file and the segments it covers go. */
  async #afterSnapshot(previous: SnapshotFile | null, current: SnapshotFile): Promise<void> {
    if (previous && previous.file !== current.file) await this.#removeQuietly(previous.file);
    let removed = false;
    while (this.#segments.length > 1) {
      const oldest = this.#segments[0];
      if (oldest.lastAtClose === undefined || oldest.lastAtClose > current.meta.index) break;
      // A segment that still holds a value a state points at stays (and every later one, so
      // that the segments stay a run a load reads in order).
      const pinned = this.#retain?.();
      if (pinned !== undefined && oldest.sequence >= pinned) break;
      await this.#removeQuietly(segmentName(oldest.sequence));
      this.#segments.shift();
      removed = true;
    }
    // Synced, so a crash never brings back an older segment without the ones
    // between it and the log (a gap reads as a lost segment).
    if (removed) await this.#fs.syncFolder(this.#dir);
  }

  /** Work `close` waits for; its failure only leaves a file for the next load to remove. */
  #background(work: Promise<unknown>): void {
    const tracked = work.catch(() => {}).finally(() => this.#preparing.delete(tracked));
    this.#preparing.add(tracked);
  }

  async #removeQuietly(name: string): Promise<void> {
    await this.#fs.remove(`${this.#dir}/${name}`).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }

  // ---- reading ----

  /**
   * Reads every segment back, checks it (and has `accept` check the state),
   * then repairs a torn end and sets the writer's state.
   */
  async #replay(accept?: (state: StoredState) => void): Promise<StoredState> {
    this.#file?.close();
    this.#file = undefined;
    const {
      names,
      window,
      hardState,
      snapshot,
      segments,
      chain,
      offset,
      baseEnd,
      spares,
      cut,
    } = await readSegments(this.#dir, this.#codec, { folder: this.#folderId, fs: this.#fs });
    const corrupt = (problem: string) => new StorageCorruptionError(this.#dir, problem);
    let spare: number | undefined;
    const state: StoredState = {
      hardState: { ...hardState },
      entries: window.items.map((item) => item!.entry),
    };
    if (snapshot) {
      state.snapshot = {
        meta: snapshot.meta,
        data: await readSnapshotData(this.#dir, snapshot, this.#fs),
      };
    }
    // The commit index may have been saved ahead of entries a crash kept from being written.
    const covered = snapshot?.meta.index ?? 0;
    state.hardState.commit = Math.max(covered, Math.min(state.hardState.commit, window.last));
    // Every check that can refuse, before anything is written: a refused store is left as it
    // was found, so a second start (or an operator's tool) sees the same bytes.
    try {
      if (this.#mark) {
        checkFloor(state, window.first, this.#mark.floor, {
          where: this.#dir,
          markPath: this.#mark.path,
        });
      } else if (cut?.damaged) throw corrupt(cut.damaged);
    } catch (err) {
      // What was cut was acknowledged: say what is wrong with it.
      if (cut?.damaged && err instanceof StorageLossError) throw corrupt(cut.damaged);
      throw err;
    }
    accept?.(state);
    // Repairs: zero a torn end (so a later write can never be followed by its
    // remains), remove what a crash left unreferenced.
    if (cut) await this.#zero(cut.sequence, cut.from, cut.to);
    // Only at the first load: later ones may run beside a spare or a snapshot being written.
    if (!this.#loaded) {
      // The spare must be the next segment; any other goes. One with data
      // after a zero header holds a first write torn before its header
      // landed (nothing of it was read): zeroed.
      const next = (segments[segments.length - 1]?.sequence ?? 0) + 1;
      for (const sequence of spares) {
        if (sequence !== next) {
          await this.#removeQuietly(segmentName(sequence));
          continue;
        }
        const bytes = await this.#fs.readFile(this.#segmentPath(sequence));
        const end = nonZeroEnd(bytes, 0);
        if (end > 0) await this.#zero(sequence, 0, end);
        spare = sequence;
      }
      const keep = new Set([snapshot?.file]);
      for (const name of names) {
        const stale = name.endsWith(".tmp") || (/^snap-\d+\.bin$/.test(name) && !keep.has(name));
        if (stale) await this.#removeQuietly(name);
      }
      try {
        await syncLoaded(this.#fs, this.#dir, { segments, spare, snapshot });
      } catch (err) {
        // A failed sync may have dropped the pages it could not write: what was read is not durable.
        throw this.#fail(err as Error, "making what the load read durable failed");
      }
    }
    let maxId = 0;
    for (const name of names) {
      const m = /^snap-(\d+)\.bin$/.exec(name);
      if (m) maxId = Math.max(maxId, Number(m[1]));
    }
    // The writer's state.
    this.#hardState = { ...hardState };
    // As when saved: a store that never saved a hard state counts none.
    const saved = hardState.term !== 0 || hardState.vote !== null || hardState.commit !== 0;
    this.#hardStateBytes = saved ? this.#codec.encode(hardState).length : 0;
    this.#snapshot = snapshot;
    this.#window = new LogWindow<EntryInfo>();
    this.#window.first = window.first;
    this.#window.items = window.items.map((item) => ({
      term: item!.entry.term,
      size: item!.size,
      segment: item!.segment,
      offset: item!.offset,
      seed: item!.seed,
    }));
    this.#entryBytes = this.#window.items.reduce((n, item) => n + item!.size, 0);
    this.#segments = segments;
    this.#chain = chain;
    this.#offset = offset;
    this.#baseEnd = baseEnd;
    this.#nextSnapshotId = Math.max(this.#nextSnapshotId, maxId + 1);
    this.#prepared = undefined;
    const active = segments[segments.length - 1];
    if (active) {
      const path = this.#segmentPath(active.sequence);
      this.#file = await this.#fs.open(path, { read: true, write: true });
    }
    if (this.#spare === undefined) {
      if (spare !== undefined) this.#spare = Promise.resolve(spare);
      else this.#startSpare((active?.sequence ?? 0) + 1);
    }
    return state;
  }

  /** Writes zeros over [from, to) of a segment and syncs it. */
  async #zero(sequence: number, from: number, to: number): Promise<void> {
    const file = await this.#fs.open(this.#segmentPath(sequence), { write: true });
    try {
      await writeZeros(file, from, to);
      await file.syncData();
    } finally {
      file.close();
    }
  }

  /** The floor of the stored state, limited to entries before `keepBelow`. */
  #floor(keepBelow = Infinity): Floor {
    const snapshotIndex = this.#snapshot?.meta.index ?? 0;
    return windowFloor(
      { hardState: this.#hardState, snapshotIndex, window: this.#window },
      keepBelow,
    );
  }

  #segmentPath(sequence: number): string {
    return `${this.#dir}/${segmentName(sequence)}`;
  }

  #check(): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) {
      throw new Error(`Raft storage ${this.#dir} is closed; open it again to use it`);
    }
  }
}
