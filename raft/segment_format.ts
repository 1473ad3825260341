/**
 * The on-disk form of a {@linkcode SegmentLogStorage}'s segments: records
 * with a header (CRC, length, kind, index, term) and a payload, each CRC
 * chained to the previous record's, so a record read out of place or after a
 * gap fails its check. Not published: the storage is the only reader and
 * writer.
 *
 * A record:
 *
 * | offset | bytes | field                                                      |
 * | -----: | ----: | ---------------------------------------------------------- |
 * |      0 |     4 | CRC-32 of bytes 4.. of the record, seeded with the previous |
 * |      4 |     4 | length of the whole record (header and payload)             |
 * |      8 |     1 | kind: 1 base, 2 head, 3 entry                               |
 * |      9 |     8 | index (float64: exact for every integer Raft uses)          |
 * |     17 |     8 | term                                                        |
 * |     25 |     … | payload (the codec's bytes)                                 |
 *
 * A segment starts with a base record (the whole state but the entries,
 * and the last CRC of the segment before it), then the saves' records; its
 * unused end is zeros (segments are zero-filled ahead of need).
 *
 * @module
 */
import type { Random } from "../net/random.ts";
import { crc32 } from "../net/bytes.ts";
import type { HardState, SnapshotMeta } from "./types.ts";

/** Bytes of a record's header. */
export const RECORD_HEADER_BYTES = 25;
/** The first record of every segment: the state before it (see {@linkcode BasePayload}). */
export const KIND_BASE = 1;
/** A save's hard state, snapshot switch, log reset or truncation (see {@linkcode HeadPayload}). */
export const KIND_HEAD = 2;
/** One log entry; its payload is the encoded entry. */
export const KIND_ENTRY = 3;

/**
 * The format record's content: what a segment folder holds, and its version;
 * the record also holds the folder's `id` (see {@linkcode segmentSeed}).
 */
export const FORMAT = { format: "distkit-raft-segments", version: 1 } as const;
/** The format record's file name in the folder. */
export const FORMAT_FILE = "format.json";

/** Where a snapshot's data is stored (a file in the folder) and what it holds. */
export interface SnapshotFile {
  /** The snapshot's metadata. */
  meta: SnapshotMeta;
  /** The data file's name in the folder. */
  file: string;
  /** Bytes of data. */
  size: number;
  /** CRC-32 of the data. */
  crc: number;
}

/** A base record's payload: the state at the start of its segment, but the entries. */
export interface BasePayload {
  hardState: HardState;
  snapshot: SnapshotFile | null;
  /** The log's bounds: entries [first, last] are stored, in this segment or earlier ones. */
  first: number;
  last: number;
  /** The last CRC of the segment before (its chain's end); 0 for the first segment. */
  previous: number;
}

/**
 * A head record's payload: the non-entry part of one save, applied in this
 * order: `reset` (drop every entry), `snapshot` (switch, dropping the entries
 * it covers), `truncate` (entries from this index on are void), `hardState`.
 */
export interface HeadPayload {
  hardState: HardState | null;
  snapshot: SnapshotFile | null;
  reset: boolean;
  truncate: number | null;
}

/** One record read back. */
export interface ReadRecord {
  kind: number;
  index: number;
  term: number;
  payload: Uint8Array;
  /** Its offset in the segment, and its CRC (the next record's seed). */
  offset: number;
  crc: number;
  length: number;
}

/**
 * The CRC a segment's chain starts from: a segment read under another number,
 * or in another folder (`folder`: the folder's id in its format record), fails.
 * Folders made before ids were recorded have none.
 */
export function segmentSeed(sequence: number, folder?: string): number {
  return crc32(
    folder === undefined ? `distkit-segment:${sequence}` : `distkit-segment:${folder}:${sequence}`,
  );
}

/**
 * A new folder's id: 128 random bits in hex, from `random` when given (a
 * simulation's seeded source, so a run replays), else the system's.
 */
export function newFolderId(random?: Random): string {
  const bytes = new Uint8Array(16);
  if (random === undefined) crypto.getRandomValues(bytes);
  else for (let k = 0; k < bytes.length; k++) bytes[k] = random.int(256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The segment file name of `sequence` (fixed width, so names sort as numbers). */
export function segmentName(sequence: number): string {
  return `${String(sequence).padStart(16, "0")}.seg`;
}

/** The sequence number of a segment file name, or undefined when it is not one. */
export function segmentSequence(name: string): number | undefined {
  const m = /^(\d{16})\.seg$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Writes a record into `out` at `at`, chained to `seed`; returns its CRC.
 * `out` must have room for the header and `payload`.
 */
export function writeRecord(
  out: Uint8Array,
  at: number,
  record: { kind: number; index: number; term: number; payload: Uint8Array; seed: number },
): number {
  const length = RECORD_HEADER_BYTES + record.payload.length;
  const view = new DataView(out.buffer, out.byteOffset + at, length);
  view.setUint32(4, length);
  view.setUint8(8, record.kind);
  view.setFloat64(9, record.index);
  view.setFloat64(17, record.term);
  out.set(record.payload, at + RECORD_HEADER_BYTES);
  const crc = crc32(out.subarray(at + 4, at + length), record.seed);
  view.setUint32(0, crc);
  return crc;
}

/**
 * What is at `at` in `bytes`: a record chained to `seed`, `"zero"` (the
 * header is all zeros: the segment's unused end), or `"bad"` (anything
 * else: a torn or damaged record).
 */
export function readRecord(
  bytes: Uint8Array,
  at: number,
  seed: number,
): ReadRecord | "zero" | "bad" {
  if (at + RECORD_HEADER_BYTES > bytes.length) {
    return isZero(bytes, at, bytes.length) ? "zero" : "bad";
  }
  if (isZero(bytes, at, at + RECORD_HEADER_BYTES)) return "zero";
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, RECORD_HEADER_BYTES);
  const length = view.getUint32(4);
  const kind = view.getUint8(8);
  if (length < RECORD_HEADER_BYTES || at + length > bytes.length) return "bad";
  if (kind < KIND_BASE || kind > KIND_ENTRY) return "bad";
  const crc = view.getUint32(0);
  if (crc32(bytes.subarray(at + 4, at + length), seed) !== crc) return "bad";
  return {
    kind,
    index: view.getFloat64(9),
    term: view.getFloat64(17),
    payload: bytes.subarray(at + RECORD_HEADER_BYTES, at + length),
    offset: at,
    crc,
    length,
  };
}

/**
 * Whether the bad record at `at` (chained to `seed`) is damage inside the
 * log rather than a torn end: its header still names a plausible length, and
 * a valid record follows it, chained to the CRC it claims (its body was
 * damaged) or to the CRC its bytes have (its CRC field was).
 */
export function validRecordFollows(bytes: Uint8Array, at: number, seed: number): boolean {
  if (at + RECORD_HEADER_BYTES > bytes.length) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, RECORD_HEADER_BYTES);
  const length = view.getUint32(4);
  if (length < RECORD_HEADER_BYTES || at + length >= bytes.length) return false;
  const actual = crc32(bytes.subarray(at + 4, at + length), seed);
  return [view.getUint32(0), actual].some((chain) =>
    typeof readRecord(bytes, at + length, chain) === "object"
  );
}

/** Whether `bytes[from, to)` are all zero (a word at a time: segments are tens of MiB). */
export function isZero(bytes: Uint8Array, from: number, to: number): boolean {
  let i = from;
  for (; i < to && (bytes.byteOffset + i) % 4 !== 0; i++) if (bytes[i] !== 0) return false;
  const words = Math.max(0, Math.floor((to - i) / 4));
  if (words > 0) {
    const view = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
    for (let w = 0; w < words; w++) if (view[w] !== 0) return false;
    i += words * 4;
  }
  for (; i < to; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** The end of the last non-zero byte of `bytes` at or after `from` (`from` when none). */
export function nonZeroEnd(bytes: Uint8Array, from: number): number {
  // Skip the zero tail a word at a time, then find the byte.
  let end = bytes.length;
  const aligned = (n: number) => (bytes.byteOffset + n) % 4 === 0;
  while (end > from && !aligned(end)) {
    if (bytes[end - 1] !== 0) return end;
    end--;
  }
  const first = Math.ceil((bytes.byteOffset + from) / 4) * 4 - bytes.byteOffset;
  if (end - first >= 4) {
    const view = new Uint32Array(bytes.buffer, bytes.byteOffset + first, (end - first) / 4);
    let w = view.length;
    while (w > 0 && view[w - 1] === 0) w--;
    end = first + w * 4;
  }
  for (; end > from; end--) if (bytes[end - 1] !== 0) return end;
  return from;
}
