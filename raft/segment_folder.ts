/**
 * The files around a {@linkcode SegmentLogStorage}'s segments: the folder
 * and its format record, the high-water mark, folder syncs. Not published
 * (but {@linkcode SegmentFormatError}, re-exported by `segment_storage.ts`).
 *
 * @module
 */
import type { Clock } from "../net/clock.ts";
import type { Random } from "../net/random.ts";
import { HighWaterMark, writeFileDurably } from "./high_water_mark.ts";
import { parentOf, type SegmentFile, type SegmentFs } from "./segment_fs.ts";
import {
  FORMAT,
  FORMAT_FILE,
  isZero,
  newFolderId,
  RECORD_HEADER_BYTES,
  segmentName,
  segmentSequence,
  type SnapshotFile,
} from "./segment_format.ts";
import { listNames, readHead, type Segment } from "./segment_replay.ts";
import { StorageCorruptionError, StorageLossError } from "../store/storage_errors.ts";

/**
 * The folder holds something other than this version of the segment log.
 *
 * @example
 * ```ts
 * import { SegmentFormatError } from "@distkit/distkit/raft";
 *
 * new SegmentFormatError("data/raft.log", "format.json says version 9").message.includes("raft.log"); // true
 * ```
 */
export class SegmentFormatError extends Error {
  /**
   * Creates the error.
   *
   * @param where The folder.
   * @param problem What was found.
   */
  constructor(where: string, problem: string) {
    super(
      `${where} is not a Raft segment log this version can read: ${problem}. Open it with the ` +
        `version that wrote it, or move the folder aside and re-add the node as a new member`,
    );
    this.name = "SegmentFormatError";
  }
}

/**
 * The folder is open in another process (or another storage of this one):
 * two writers would write over each other's acknowledged records.
 *
 * @example
 * ```ts
 * import { SegmentLockError } from "@distkit/distkit/raft";
 *
 * new SegmentLockError("data/raft.log").message.includes("another process"); // true
 * ```
 */
export class SegmentLockError extends Error {
  /**
   * Creates the error.
   *
   * @param where The folder.
   */
  constructor(where: string) {
    super(
      `the Raft segment log ${where} is open in another process (its ${LOCK_FILE} is locked): ` +
        `two writers would overwrite each other's records. Stop the other node using this data ` +
        `folder, or give this one its own folder`,
    );
    this.name = "SegmentLockError";
  }
}

/** The file whose lock says the folder is in use. */
export const LOCK_FILE = "lock";

/** The names a segment log's folder may hold. */
const OURS = /^(lock|format\.json|mark|\d{16}\.seg|snap-\d+\.bin)(\.tmp)?$/;

/** A folder opened by {@linkcode openFolder}: whether it holds records, its id and its lock. */
export interface OpenedFolder {
  holdsState: boolean;
  /** The id its segments' chains are seeded with (undefined: a folder made before ids). */
  id: string | undefined;
  /** Locked for as long as it is open: close it to let another storage open the folder. */
  lock: SegmentFile;
}

/**
 * Creates the folder `dir` and its format record, or checks them, and locks
 * it for this storage; returns whether its segments hold records.
 *
 * @throws {SegmentLockError} when another storage has the folder open.
 * @throws {SegmentFormatError} when the format record names another format
 * or version, or is missing from a folder holding other files (or `dir` is a file).
 * @throws {StorageCorruptionError} when segments hold records and the format record is missing.
 */
export async function openFolder(
  dir: string,
  fs: SegmentFs,
  options: { random?: Random } = {},
): Promise<OpenedFolder> {
  const names = await listNames(dir, fs).catch((err) => {
    if (err instanceof Deno.errors.NotADirectory) {
      throw new SegmentFormatError(dir, "it is a file, not a folder");
    }
    throw err;
  });
  if (names === undefined) {
    await fs.mkdir(dir);
    await fs.syncFolder(parentOf(dir));
  }
  // Files none of ours and no format record: not a segment log; refused before anything is written.
  const foreign = (names ?? []).filter((n) => !OURS.test(n));
  if (foreign.length > 0 && !names!.includes(FORMAT_FILE)) {
    throw new SegmentFormatError(
      dir,
      `it holds files (${foreign.slice(0, 3).join(", ")}) but no ${FORMAT_FILE}`,
    );
  }
  // Before anything is read or repaired: another storage may be writing.
  const lock = await fs.open(`${dir}/${LOCK_FILE}`, { read: true, write: true, create: true });
  try {
    if (!(await lock.tryLock())) throw new SegmentLockError(dir);
    return { ...await checkFolder(dir, names ?? [], { fs, random: options.random }), lock };
  } catch (err) {
    lock.close();
    throw err;
  }
}

/** The format record checked (or written, in a new folder); whether segments hold records. */
async function checkFolder(
  dir: string,
  names: string[],
  options: { fs: SegmentFs; random: Random | undefined },
): Promise<{ holdsState: boolean; id: string | undefined }> {
  const fs = options.fs;
  let holdsState = false;
  for (const name of names) {
    if (segmentSequence(name) === undefined) continue;
    const head = await readHead(`${dir}/${name}`, RECORD_HEADER_BYTES, fs);
    if (!isZero(head, 0, head.length)) holdsState = true;
  }
  const formatPath = `${dir}/${FORMAT_FILE}`;
  let text: string;
  try {
    text = new TextDecoder().decode(await fs.readFile(formatPath));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    if (holdsState) {
      throw new StorageCorruptionError(dir, `its format record ${FORMAT_FILE} is missing`);
    }
    const id = newFolderId(options.random);
    const record = JSON.stringify({ ...FORMAT, id }) + "\n";
    await writeFileDurably(formatPath, new TextEncoder().encode(record), { fs });
    return { holdsState: false, id };
  }
  let found: { format?: unknown; version?: unknown; id?: unknown };
  try {
    found = JSON.parse(text);
  } catch {
    throw new SegmentFormatError(dir, `${FORMAT_FILE} is not JSON`);
  }
  if (found?.format !== FORMAT.format || found.version !== FORMAT.version) {
    throw new SegmentFormatError(
      dir,
      `${FORMAT_FILE} says ${JSON.stringify(found)}, expected ${JSON.stringify(FORMAT)}`,
    );
  }
  if (
    found.id !== undefined && (typeof found.id !== "string" || !/^[0-9a-f]{32}$/.test(found.id))
  ) {
    throw new SegmentFormatError(
      dir,
      `${FORMAT_FILE} has a malformed id ${JSON.stringify(found.id)}`,
    );
  }
  return { holdsState, id: found.id };
}

/**
 * Opens the mark of a store: a missing one is created only for a store that
 * holds nothing (and whose node has not met its peers).
 */
export async function openMark(
  path: string,
  options: {
    where: string;
    holdsState: boolean;
    expectState: boolean;
    fs: SegmentFs;
    clock: Clock | undefined;
  },
): Promise<HighWaterMark> {
  const exists = await options.fs.exists(path);
  if (!exists && options.holdsState) {
    throw new StorageCorruptionError(
      options.where,
      `its high-water mark ${path} is missing, though the store holds state, so nothing tells ` +
        `whether the store still holds all it acknowledged`,
    );
  }
  if (!exists && options.expectState) {
    throw new StorageLossError(
      options.where,
      `the store and its high-water mark ${path} are both gone, though this node has taken part ` +
        `in its cluster`,
    );
  }
  return await HighWaterMark.open(path, { fs: options.fs, clock: options.clock });
}

/**
 * Makes `files` (`fdatasync`) and `folders` durable as they are: what a
 * process killed before its syncs wrote reads back from the page cache but
 * may not be on the disk yet.
 */
export async function syncAsFound(
  fs: SegmentFs,
  found: { files: string[]; folders: string[] },
): Promise<void> {
  for (const path of found.files) {
    const file = await fs.open(path, { read: true });
    try {
      await file.syncData();
    } finally {
      file.close();
    }
  }
  for (const folder of found.folders) await fs.syncFolder(folder);
}

/**
 * Makes durable everything a segment log's first load read, before Raft
 * acts on it. After a process crash (kill -9) the page cache keeps the dead
 * process's writes whose `fdatasync` had not returned: they read back, so
 * Raft may re-grant the vote they hold or acknowledge the entries without a
 * save of its own, and a power loss after that would take them away (two
 * votes in a term, a committed entry lost). As PostgreSQL's
 * SyncDataDirectory after a crash: every segment read, the spare, the
 * snapshot's data, the folder and its parent (the mark syncs itself when
 * opened).
 */
export async function syncLoaded(
  fs: SegmentFs,
  dir: string,
  found: { segments: Segment[]; spare: number | undefined; snapshot: SnapshotFile | null },
): Promise<void> {
  const files = found.segments.map((s) => `${dir}/${segmentName(s.sequence)}`);
  if (found.spare !== undefined) files.push(`${dir}/${segmentName(found.spare)}`);
  if (found.snapshot) files.push(`${dir}/${found.snapshot.file}`);
  await syncAsFound(fs, { files, folders: [dir, parentOf(dir)] });
}
