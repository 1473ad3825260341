/**
 * The durable high-water mark of a Raft store: a small file beside the Deno
 * KV database that says how far the store must reach, so that state the
 * database lost after it was made durable (a WAL frame whose checksum fails
 * is silently dropped by SQLite, and every frame after it with it; a deleted
 * `raft.kv`) is detected at start-up instead of being voted and acknowledged
 * from.
 *
 * The mark is a floor: a term, the vote of that term, and one log position
 * (index and term) that the store must still hold, in its log or covered by
 * its snapshot. A save records the floor it leaves as soon as its database
 * commits are synced and before it resolves, so before anything the save
 * enables is acknowledged: a 512-byte write into the page cache, which a
 * crashed or killed process cannot take back. The file is fsynced in the
 * background, at most {@linkcode MARK_SYNC_MS} after a record, never on the
 * path of a write. Two kinds of record wait for their fsync: a new term or
 * vote (so a vote is never granted twice in a term, even across a power
 * loss), and a lower floor before a save that replaces entries an earlier
 * floor names (so a store is never refused for a loss that did not happen).
 * What a power loss can cost is the floors of the last {@linkcode MARK_SYNC_MS}:
 * the mark then falls back to an older floor, and a database loss inside that
 * window, at the same time, would go unseen.
 *
 * The file has two slots of {@linkcode SLOT_BYTES} bytes, written in turn,
 * each with a sequence number and a CRC-32: a write torn by a crash spoils
 * one slot, and the other still holds the previous, lower floor.
 *
 * @module
 */
import { crc32 } from "../net/bytes.ts";
import { Codec } from "../net/codec.ts";
import type { NodeId } from "./types.ts";
import type { StoredState } from "./storage.ts";
import { StorageLossError } from "../store/storage_errors.ts";
import type { Clock, Timer } from "../net/clock.ts";
import { parentOf, realSegmentFs, type SegmentFile, type SegmentFs } from "./segment_fs.ts";

/** Longest a recorded floor waits for its fsync (milliseconds). */
export const MARK_SYNC_MS = 50;

/** Bytes of one slot of the mark file. */
export const SLOT_BYTES = 512;
const MAGIC = 0x444b4857; // "DKHW"
const VERSION = 1;
/** magic (4), version (1), sequence (8), payload length (2) */
const HEAD_BYTES = 15;
const codec = new Codec({ maxMessageBytes: SLOT_BYTES });

/**
 * What a store must still hold: everything up to here was acknowledged.
 *
 * @example
 * ```ts
 * import type { Floor } from "@distkit/distkit/raft";
 *
 * const floor: Floor = { term: 3, vote: "b", index: 10, logTerm: 3 };
 * ```
 */
export interface Floor {
  /** The store's term is at least this. */
  term: number;
  /** When the store's term is `term`: the vote it holds (null: none required). */
  vote: NodeId | null;
  /** A log position the store holds (or its snapshot covers); 0: none. */
  index: number;
  /** The term of the entry at `index`; -1 when only a snapshot's coverage is required. */
  logTerm: number;
}

/**
 * Options of {@linkcode HighWaterMark.open}.
 *
 * @example
 * ```ts
 * import { type HighWaterMarkOptions, realSegmentFs } from "@distkit/distkit/raft";
 *
 * const options: HighWaterMarkOptions = { fs: realSegmentFs };
 * ```
 */
export interface HighWaterMarkOptions {
  /** The file system the mark is on. Default: the real one. */
  fs?: SegmentFs;
  /**
   * The clock the background fsync waits on. Default: the real one, on a
   * timer that does not keep the process alive.
   */
  clock?: Clock;
}

/** The floor of a store that holds nothing. */
export const EMPTY_FLOOR: Floor = { term: 0, vote: null, index: 0, logTerm: -1 };

/**
 * The mark file of one store: reads the floor at start-up, writes new ones
 * (one write at a time, in order).
 *
 * @example
 * ```ts ignore
 * import { HighWaterMark } from "@distkit/distkit/raft";
 *
 * const mark = await HighWaterMark.open("data/raft.kv.mark");
 * await mark.write({ term: 1, vote: "a", index: 0, logTerm: -1 });
 * mark.close();
 * ```
 */
export class HighWaterMark {
  /** The mark file. */
  readonly path: string;
  #file: SegmentFile;
  readonly #clock: Clock | undefined;
  #sequence: number;
  #floor: Floor;
  /** The sequence number of the last slot written, and of the last one known synced. */
  #synced: number;
  /** The fsync in progress, and the sequence it covers. */
  #syncing: { promise: Promise<void>; upTo: number } | undefined;
  /** The background fsync's timer, while one is due. */
  #syncTimer: Timer | undefined;
  /** A failed write or fsync: every later record and write fails with it (the file's state is unknown). */
  #failure: Error | undefined;
  #closed = false;
  /** Whether the file was created by {@linkcode HighWaterMark.open} (it did not exist). */
  readonly created: boolean;

  private constructor(
    path: string,
    file: SegmentFile,
    found: { sequence: number; floor: Floor },
    opened: { created: boolean; clock: Clock | undefined },
  ) {
    this.path = path;
    this.#file = file;
    this.#clock = opened.clock;
    this.#sequence = found.sequence;
    this.#synced = found.sequence;
    this.#floor = found.floor;
    this.created = opened.created;
  }

  /**
   * Opens the mark at `path`, creating it (empty, synced, with its folder)
   * when missing, or syncing it (and its folder) as found: a process killed
   * before its sync leaves a floor readable but not yet durable.
   *
   * @throws {MarkCorruptionError} when neither slot holds a valid mark.
   */
  static async open(path: string, options: HighWaterMarkOptions = {}): Promise<HighWaterMark> {
    const fs = options.fs ?? realSegmentFs;
    let file: SegmentFile;
    let created = false;
    try {
      file = await fs.open(path, { read: true, write: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      // Whole or not at all: a crash while creating it must not leave an
      // empty mark, which would read as a damaged one for ever. Both slots
      // (the second empty): a record never grows the file, so a full disk
      // cannot refuse it.
      const slots = new Uint8Array(2 * SLOT_BYTES);
      slots.set(encodeSlot(0, EMPTY_FLOOR));
      await writeFileDurably(path, slots, { fs });
      file = await fs.open(path, { read: true, write: true });
      created = true;
    }
    try {
      const found = await readSlots(file, path);
      // What a killed process wrote may still be only in the page cache: it
      // reads back now, and a power loss later could take it away. Synced
      // (with its name) before the store it guards is trusted.
      await file.syncData();
      await fs.syncFolder(parentOf(path));
      return new HighWaterMark(path, file, found, { created, clock: options.clock });
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /** The floor read at open, or the last one written. */
  get floor(): Floor {
    return this.#floor;
  }

  /**
   * Records `floor`: written into the file at once (it survives the process
   * from now on), fsynced within {@linkcode MARK_SYNC_MS}.
   *
   * @throws {RangeError} when the floor does not fit a slot (a vote of more than ~400 bytes).
   * @throws {Error} the failure of an earlier write or fsync of this mark.
   */
  record(floor: Floor): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw new Error(`the high-water mark ${this.path} is closed`);
    if (sameFloor(this.#floor, floor)) return;
    const sequence = this.#sequence + 1;
    const bytes = encodeSlot(sequence, floor);
    try {
      // 512 bytes into the page cache: synchronous is cheaper than two async ops.
      this.#file.writeSync(bytes, (sequence % 2) * SLOT_BYTES);
    } catch (err) {
      this.#failure = err as Error;
      throw err;
    }
    this.#sequence = sequence;
    this.#floor = floor;
    if (this.#syncTimer === undefined) {
      const due = () => {
        this.#syncTimer = undefined;
        // A failure is kept and fails the next record or write.
        this.#sync().catch(() => {});
      };
      if (this.#clock) this.#syncTimer = this.#clock.setTimer(MARK_SYNC_MS, due);
      else {
        const timer = setTimeout(due, MARK_SYNC_MS);
        Deno.unrefTimer(timer);
        this.#syncTimer = { cancel: () => clearTimeout(timer) };
      }
    }
  }

  /**
   * Records `floor` and waits until it is synced.
   *
   * @throws {RangeError} when the floor does not fit a slot.
   * @throws {Error} when the write or its fsync fails.
   */
  async write(floor: Floor): Promise<void> {
    this.record(floor);
    await this.#sync();
  }

  /** Resolves once every slot written so far is synced. */
  async #sync(): Promise<void> {
    while (this.#synced < this.#sequence) {
      if (this.#failure) throw this.#failure;
      if (this.#syncing === undefined) {
        const upTo = this.#sequence;
        const promise = this.#file.syncData().then(
          () => {
            this.#synced = Math.max(this.#synced, upTo);
          },
          (err) => {
            this.#failure = err as Error;
          },
        ).finally(() => {
          this.#syncing = undefined;
        });
        this.#syncing = { promise, upTo };
      }
      await this.#syncing.promise;
    }
    if (this.#failure) throw this.#failure;
  }

  /** Syncs what was recorded and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#syncTimer?.cancel();
    this.#syncTimer = undefined;
    try {
      await this.#sync().catch(() => {});
    } finally {
      this.#closed = true;
      this.#file.close();
    }
  }
}

/**
 * The mark file cannot be read: both slots fail their checksum.
 *
 * @example
 * ```ts
 * import { MarkCorruptionError } from "@distkit/distkit/raft";
 *
 * new MarkCorruptionError("data/raft.kv.mark").message.includes("raft.kv.mark"); // true
 * ```
 */
export class MarkCorruptionError extends Error {
  /**
   * Creates the error.
   *
   * @param path The mark file.
   */
  constructor(path: string) {
    super(
      `the high-water mark ${path} is unreadable (both of its slots fail their checksum), so ` +
        `nothing tells how much of the store was acknowledged; do not start this node from it: ` +
        `remove it from the cluster and add it back as a new member with an empty data folder`,
    );
    this.name = "MarkCorruptionError";
  }
}

function sameFloor(a: Floor, b: Floor): boolean {
  return a.term === b.term && a.vote === b.vote && a.index === b.index && a.logTerm === b.logTerm;
}

function encodeSlot(sequence: number, floor: Floor): Uint8Array {
  const payload = codec.encode([floor.term, floor.vote, floor.index, floor.logTerm]);
  if (HEAD_BYTES + payload.length + 4 > SLOT_BYTES) {
    throw new RangeError(`a high-water mark of ${payload.length} bytes does not fit a slot`);
  }
  const slot = new Uint8Array(SLOT_BYTES);
  const view = new DataView(slot.buffer);
  view.setUint32(0, MAGIC);
  view.setUint8(4, VERSION);
  view.setFloat64(5, sequence);
  view.setUint16(13, payload.length);
  slot.set(payload, HEAD_BYTES);
  const end = HEAD_BYTES + payload.length;
  view.setUint32(end, crc32(slot.subarray(0, end)));
  return slot;
}

function decodeSlot(slot: Uint8Array): { sequence: number; floor: Floor } | undefined {
  if (slot.length < HEAD_BYTES + 4) return undefined;
  const view = new DataView(slot.buffer, slot.byteOffset, slot.length);
  if (view.getUint32(0) !== MAGIC || view.getUint8(4) !== VERSION) return undefined;
  const length = view.getUint16(13);
  const end = HEAD_BYTES + length;
  if (end + 4 > slot.length) return undefined;
  if (view.getUint32(end) !== crc32(slot.subarray(0, end))) return undefined;
  try {
    const [term, vote, index, logTerm] = codec.decode(slot.subarray(HEAD_BYTES, end)) as [
      number,
      NodeId | null,
      number,
      number,
    ];
    return { sequence: view.getFloat64(5), floor: { term, vote, index, logTerm } };
  } catch {
    return undefined;
  }
}

async function readSlots(
  file: SegmentFile,
  path: string,
): Promise<{ sequence: number; floor: Floor }> {
  const bytes = new Uint8Array(2 * SLOT_BYTES);
  const at = await file.read(bytes, 0);
  const slots = [0, 1]
    .map((k) => decodeSlot(bytes.subarray(k * SLOT_BYTES, Math.min(at, (k + 1) * SLOT_BYTES))))
    .filter((s) => s !== undefined);
  if (slots.length === 0) throw new MarkCorruptionError(path);
  return slots.reduce((a, b) => (b.sequence > a.sequence ? b : a));
}

/**
 * Options of {@linkcode writeFileDurably}.
 *
 * @example
 * ```ts ignore
 * const options: WriteFileDurablyOptions = { fs: realSegmentFs };
 * ```
 */
export interface WriteFileDurablyOptions {
  /** The file system to write on. Default: the real disk. */
  fs?: SegmentFs;
}

/**
 * Writes `bytes` to `path` whole or not at all, durably: a synced temporary
 * file renamed over `path`, then its folder synced (a crash leaves the old
 * file or the new one, never a part), on `options.fs` (default the real
 * disk). For small files only.
 *
 * @example
 * ```ts ignore
 * await writeFileDurably("data/node.json", new TextEncoder().encode("{}"), { fs: realSegmentFs });
 * ```
 */
export async function writeFileDurably(
  path: string,
  bytes: Uint8Array,
  options: WriteFileDurablyOptions = {},
): Promise<void> {
  const fs = options.fs ?? realSegmentFs;
  const tmp = `${path}.tmp`;
  const file = await fs.open(tmp, { write: true, create: true, truncate: true });
  try {
    await file.write(bytes, 0);
    await file.sync();
  } finally {
    file.close();
  }
  await fs.rename(tmp, path);
  await fs.syncFolder(parentOf(path));
}

/**
 * Refuses a loaded store that ends below its mark's floor: a lower term, a
 * changed vote in the same term, or a log that lacks (or has another term
 * for) an entry it had stored. The commit index is not checked: it need not
 * be durable (a node learns it again). One rule for every durable storage.
 *
 * @param state What the storage loaded.
 * @param first The index of `state.entries[0]`.
 * @param floor The mark's floor.
 * @param where The storage (its path), and the mark's path, for the error.
 * @throws {StorageLossError} when the store ends below the floor.
 *
 * @example
 * ```ts ignore
 * checkFloor(state, first, mark.floor, { where: path, markPath: mark.path });
 * ```
 */
export function checkFloor(
  state: StoredState,
  first: number,
  floor: Floor,
  where: { where: string; markPath: string },
): void {
  const { term, vote } = state.hardState;
  const lost = (problem: string) => new StorageLossError(where.where, problem);
  if (term < floor.term) {
    throw lost(`its term is ${term}, below the term ${floor.term} it had reached`);
  }
  if (term === floor.term && floor.vote !== null && vote !== floor.vote) {
    throw lost(
      `its vote in term ${term} is ${JSON.stringify(vote)}, not ${
        JSON.stringify(floor.vote)
      } as it had voted`,
    );
  }
  const covered = state.snapshot?.meta.index ?? 0;
  if (floor.index <= covered) return;
  const entry = state.entries[floor.index - first];
  if (entry === undefined) {
    throw lost(
      `its log ends at ${first + state.entries.length - 1}, below entry ${floor.index} it had ` +
        `stored (its high-water mark ${where.markPath})`,
    );
  }
  if (floor.logTerm >= 0 && entry.term !== floor.logTerm) {
    throw lost(`its entry ${floor.index} has term ${entry.term}, not ${floor.logTerm} as stored`);
  }
}
