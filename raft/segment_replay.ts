/**
 * Reading a {@linkcode SegmentLogStorage}'s folder back: its segments in
 * order, each record checked against the chain and applied to the log's
 * window, the state they hold and where a torn end lies. What may be cut and
 * what is refused is the storage's to decide (it holds the mark). Not
 * published.
 *
 * @module
 */
import type { Codec } from "../net/codec.ts";
import type { SegmentFs } from "./segment_fs.ts";
import {
  type BasePayload,
  type HeadPayload,
  isZero,
  KIND_BASE,
  KIND_ENTRY,
  KIND_HEAD,
  nonZeroEnd,
  readRecord,
  RECORD_HEADER_BYTES,
  segmentName,
  segmentSeed,
  segmentSequence,
  type SnapshotFile,
  validRecordFollows,
} from "./segment_format.ts";
import { LogWindow } from "./segment_window.ts";
import { StorageCorruptionError } from "../store/storage_errors.ts";
import type { Entry, HardState } from "./types.ts";

/** A segment with records: its number, and the log's last index when the next one began. */
export interface Segment {
  sequence: number;
  lastAtClose: number | undefined;
  /** Bytes of its file: `segmentBytes`, or more when a record larger than a segment grew it. */
  bytes: number;
}

/** A torn end: the segment, the bytes from `from` to `to`, and why it may be damage instead. */
export interface Cut {
  sequence: number;
  from: number;
  to: number;
  /** Set when valid records follow the bad one: damage, unless the mark says nothing was acknowledged. */
  damaged?: string;
}

/** An entry read back: the entry, its record's bytes and where the record lies. */
export interface ReplayedEntry {
  entry: Entry;
  size: number;
  segment: number;
  offset: number;
  /** The CRC its record is chained to. */
  seed: number;
}

/** What a folder's segments hold. */
export interface Replayed {
  /** Every name in the folder. */
  names: string[];
  window: LogWindow<ReplayedEntry>;
  hardState: HardState;
  snapshot: SnapshotFile | null;
  /** The segments with records, oldest first. */
  segments: Segment[];
  /** The last record's CRC, where the next record goes and where the last segment's base ends. */
  chain: number;
  offset: number;
  baseEnd: number;
  /** Segments after the log (zero-filled ahead, or a first write torn before its header). */
  spares: number[];
  cut: Cut | undefined;
}

/**
 * Reads the segments of `dir` in order, one at a time; their chains are
 * seeded with `options.folder`, the folder's id.
 *
 * @throws {StorageCorruptionError} for damage that cannot be a torn end:
 * anywhere but the end of the last segment, a missing segment, a chain or
 * base record that does not join, a record that does not apply, entries
 * no segment holds.
 */
export async function readSegments(
  dir: string,
  codec: Codec,
  options: { folder: string | undefined; fs: SegmentFs },
): Promise<Replayed> {
  const fs = options.fs;
  const names = (await listNames(dir, fs)) ?? [];
  const sequences = names.map(segmentSequence).filter((s) => s !== undefined).sort((a, b) => a - b);
  const corrupt = (problem: string) => new StorageCorruptionError(dir, problem);
  const window = new LogWindow<ReplayedEntry>();
  let hardState: HardState = { term: 0, vote: null, commit: 0 };
  let snapshot: SnapshotFile | null = null;
  const segments: Segment[] = [];
  let chain = 0;
  let offset = 0;
  let baseEnd = 0;
  /** A torn end to zero: the segment, from where, to where. */
  let cut: { sequence: number; from: number; to: number; damaged?: string } | undefined;
  // Segments after the last one whose first header holds anything are
  // spares (zero-filled ahead), not part of the log; each segment of the
  // log is read, checked and dropped in turn.
  const heads: Uint8Array[] = [];
  for (const sequence of sequences) {
    heads.push(await readHead(`${dir}/${segmentName(sequence)}`, RECORD_HEADER_BYTES, fs));
  }
  const lastUsed = heads.findLastIndex((head) => !isZero(head, 0, head.length));
  const spares = sequences.slice(lastUsed + 1);
  for (const [k, sequence] of sequences.slice(0, lastUsed + 1).entries()) {
    const isLast = k === lastUsed;
    const bytes = await fs.readFile(`${dir}/${segmentName(sequence)}`);
    const name = segmentName(sequence);
    if (k > 0 && sequence !== sequences[k - 1] + 1) {
      throw corrupt(`segment ${segmentName(sequences[k - 1] + 1)} is missing`);
    }
    let seed = segmentSeed(sequence, options.folder);
    let at = 0;
    while (true) {
      const r = readRecord(bytes, at, seed);
      if (r === "zero") {
        const end = nonZeroEnd(bytes, at);
        if (end > at) {
          // Zeros, then data: a record zeroed in place, or a torn write.
          if (!isLast) throw corrupt(`${name} has zeros at offset ${at} with data after them`);
          cut = { sequence, from: at, to: end };
        }
        break;
      }
      if (r === "bad") {
        if (!isLast) throw corrupt(`${name} has a damaged record at offset ${at}`);
        // Valid records after a damaged one: damage inside the log, unless
        // the whole region is a torn write's (its pages reached the disk
        // out of order), which only the mark can tell.
        const damaged = validRecordFollows(bytes, at, seed)
          ? `${name} has a damaged record at offset ${at}, with valid records after it`
          : undefined;
        cut = { sequence, from: at, to: nonZeroEnd(bytes, at), damaged };
        break;
      }
      try {
        if (at === 0) {
          if (r.kind !== KIND_BASE) throw corrupt(`${name} does not start with a base record`);
          const base = codec.decode(r.payload) as BasePayload;
          if (k === 0) {
            hardState = base.hardState;
            snapshot = base.snapshot;
            window.setBounds(base.first, base.last);
          } else {
            const joins = base.previous === chain && base.first === window.first &&
              base.last === window.last && base.snapshot?.file === snapshot?.file &&
              base.hardState.term === hardState.term && base.hardState.vote === hardState.vote;
            if (!joins) {
              throw corrupt(
                `${name}'s base record does not continue ${segmentName(sequence - 1)}`,
              );
            }
            segments[segments.length - 1].lastAtClose = base.last;
          }
          baseEnd = r.length;
        } else if (r.kind === KIND_HEAD) {
          const head = codec.decode(r.payload) as HeadPayload;
          window.apply({
            reset: head.reset,
            snapshotIndex: head.snapshot?.meta.index ?? null,
            truncate: head.truncate,
          });
          if (head.snapshot) snapshot = head.snapshot;
          if (head.hardState) hardState = head.hardState;
        } else if (r.kind === KIND_ENTRY) {
          const entry = codec.decode(r.payload) as Entry;
          if (entry.index !== r.index || entry.term !== r.term) {
            throw corrupt(
              `${name}'s record at ${at} says entry ${r.index}, holds ${entry.index}`,
            );
          }
          window.append(r.index, { entry, size: r.length, segment: sequence, offset: at, seed });
        } else {
          throw corrupt(`${name} has a base record at offset ${at}, not at its start`);
        }
      } catch (err) {
        if (err instanceof StorageCorruptionError) throw err;
        throw corrupt(
          `${name}'s record at offset ${at} cannot be applied: ${(err as Error).message}`,
        );
      }
      seed = r.crc;
      at += r.length;
    }
    if (at === 0) {
      // No records: its first write was torn (it is zeroed below, and becomes the spare).
      if (!isLast) throw corrupt(`${name} holds no records, though later segments do`);
      spares.unshift(sequence);
      continue;
    }
    segments.push({ sequence, lastAtClose: undefined, bytes: bytes.length });
    chain = seed;
    offset = at;
  }
  // Every entry must have been read (a deleted segment held only what the snapshot covers).
  const missing = window.items.findIndex((item) => item === undefined);
  if (missing >= 0) {
    throw corrupt(
      `entries from ${window.first + missing} on are missing (the segment that held them is gone)`,
    );
  }
  return { names, window, hardState, snapshot, segments, chain, offset, baseEnd, spares, cut };
}

/** The names in a folder, or undefined when it does not exist. */
export async function listNames(dir: string, fs: SegmentFs): Promise<string[] | undefined> {
  try {
    return await fs.readDir(dir);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** The first `n` bytes of a file (fewer when it is shorter). */
export async function readHead(path: string, n: number, fs: SegmentFs): Promise<Uint8Array> {
  const file = await fs.open(path, { read: true });
  try {
    const out = new Uint8Array(n);
    return out.subarray(0, await file.read(out, 0));
  } finally {
    file.close();
  }
}
