/**
 * Reading single records and snapshot data of a {@linkcode SegmentLogStorage}
 * outside the replay: a located entry's record (what a state row that keeps
 * its value in the log points at) and a snapshot's data file, each checked
 * on its own. Not published.
 *
 * @module
 */
import type { Codec } from "../net/codec.ts";
import { crc32 } from "../net/bytes.ts";
import type { LogLocation } from "../store/log_location.ts";
import { StorageCorruptionError } from "../store/storage_errors.ts";
import type { SegmentFs } from "./segment_fs.ts";
import { KIND_ENTRY, readRecord, RECORD_HEADER_BYTES, segmentName } from "./segment_format.ts";
import type { Entry } from "./types.ts";

/**
 * The entry whose record lies at `at` in the folder `dir`, checked alone:
 * its CRC against the seed the location carries, its kind, and its index.
 *
 * @throws {StorageCorruptionError} when the segment is missing or the record
 * fails a check (never other bytes than those written).
 */
export async function readLocated(
  dir: string,
  at: LogLocation,
  options: { fs: SegmentFs; codec: Codec },
): Promise<Entry> {
  const name = segmentName(at.segment);
  const corrupt = (problem: string) =>
    new StorageCorruptionError(dir, `the record of entry ${at.index} in ${name} ${problem}`);
  const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
  if (!(at.length >= RECORD_HEADER_BYTES) || !(at.offset >= 0) || !u32(at.seed)) {
    throw corrupt(`is located at an impossible place (offset ${at.offset}, ${at.length} bytes)`);
  }
  const bytes = new Uint8Array(at.length);
  let read: number;
  try {
    const file = await options.fs.open(`${dir}/${name}`, { read: true });
    try {
      read = await file.read(bytes, at.offset);
    } finally {
      file.close();
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw corrupt("cannot be read: the segment is gone");
    throw err;
  }
  if (read !== at.length) throw corrupt(`is cut short (${read} of ${at.length} bytes)`);
  const r = readRecord(bytes, 0, at.seed);
  if (typeof r !== "object" || r.length !== at.length) throw corrupt("fails its checksum");
  if (r.kind !== KIND_ENTRY || r.index !== at.index) {
    throw corrupt(`holds a record of kind ${r.kind} for index ${r.index}`);
  }
  let entry: Entry;
  try {
    entry = options.codec.decode(r.payload) as Entry;
  } catch {
    throw corrupt("cannot be decoded");
  }
  if (entry?.index !== at.index) throw corrupt(`holds entry ${entry?.index}`);
  return entry;
}

/**
 * A snapshot's data file, checked against its size and CRC.
 *
 * @throws {StorageCorruptionError} when it cannot be read or fails its check.
 */
export async function readSnapshotData(
  dir: string,
  snapshot: { file: string; size: number; crc: number },
  fs: SegmentFs,
): Promise<Uint8Array> {
  let data: Uint8Array;
  try {
    data = await fs.readFile(`${dir}/${snapshot.file}`);
  } catch (err) {
    throw new StorageCorruptionError(
      dir,
      `the snapshot's data ${snapshot.file} cannot be read (${(err as Error).message})`,
    );
  }
  if (data.length !== snapshot.size || crc32(data) !== snapshot.crc) {
    throw new StorageCorruptionError(
      dir,
      `the snapshot's data ${snapshot.file} fails its checksum`,
    );
  }
  return data;
}
