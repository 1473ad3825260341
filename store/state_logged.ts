/**
 * Values kept in the Raft log instead of in the state (issue 16 §1, "the
 * value written once per node"): a data row whose value a log entry carries
 * (a put's) may hold, instead of the value, where the entry's record lies in
 * a segment log and the value's size and CRC-32. Reads go through the
 * {@linkcode LoggedValues} the store is given; the value read back is
 * checked against the row's size and CRC (a record that fails is a
 * `StorageCorruptionError`, never other bytes).
 *
 * A table `[gen, "l", segment, key]` lists the keys whose rows point into
 * each segment, kept in the same commit as the row, so the store knows the
 * lowest segment still in use (the log keeps it and every later one) and
 * can copy a segment's values forward into ordinary rows to let it go.
 *
 * @module
 */
import { crc32, utf8Length } from "../net/bytes.ts";
import type { LogLocation } from "./log_location.ts";
import type { StateValue } from "./state_value.ts";
import { StorageCorruptionError } from "./storage_errors.ts";

/**
 * Where a state store reads the values its rows keep in a Raft log: the
 * value the entry whose record lies at `at` carries (as the service's
 * command holds it), read from the log (`SegmentLogStorage.readRecord`).
 *
 * @example
 * ```ts
 * import type { LoggedValues } from "@distkit/distkit/store";
 *
 * const values: LoggedValues = { read: () => Promise.resolve("the value") };
 * ```
 */
export interface LoggedValues {
  /**
   * The value the entry at `at` carries.
   *
   * @throws {StorageCorruptionError} when the record is gone or fails its checks.
   */
  read(at: LogLocation): Promise<StateValue>;
}

/** What a row that keeps its value in the log holds. */
export interface LoggedPointer {
  at: LogLocation;
  /** The value's bytes (UTF-8 for text). */
  size: number;
  crc: number;
  text: boolean;
}

/** Bytes of a logged row's body. */
export const LOGGED_BODY = 40;

/**
 * The body of a row whose value `value` is carried by the entry at `at`.
 *
 * @example
 * ```ts
 * import { encodeLogged, LOGGED_BODY } from "./state_logged.ts";
 *
 * const at = { segment: 1, offset: 0, length: 60, seed: 7, index: 3 };
 * encodeLogged("v", at).length === LOGGED_BODY; // true
 * ```
 */
export function encodeLogged(value: StateValue, at: LogLocation): Uint8Array {
  const body = new Uint8Array(LOGGED_BODY);
  const view = new DataView(body.buffer);
  view.setFloat64(0, at.segment);
  view.setFloat64(8, at.offset);
  view.setUint32(16, at.length);
  view.setUint32(20, at.seed);
  view.setFloat64(24, at.index);
  // Measured and summed without a copy of the value (the CRC of a string is of its UTF-8).
  view.setUint32(32, typeof value === "string" ? utf8Length(value) : value.length);
  view.setUint32(36, crc32(value));
  return body;
}

/**
 * The pointer a logged row's body holds.
 *
 * @example
 * ```ts
 * import { decodeLogged, encodeLogged } from "./state_logged.ts";
 *
 * const at = { segment: 1, offset: 0, length: 60, seed: 7, index: 3 };
 * decodeLogged(encodeLogged("v", at), true).size; // 1
 * ```
 */
export function decodeLogged(body: Uint8Array, text: boolean): LoggedPointer {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return {
    at: {
      segment: view.getFloat64(0),
      offset: view.getFloat64(8),
      length: view.getUint32(16),
      seed: view.getUint32(20),
      index: view.getFloat64(24),
    },
    size: view.getUint32(32),
    crc: view.getUint32(36),
    text,
  };
}

/**
 * The value a logged row points at, read through `values` and checked
 * against the row's kind, size and CRC.
 *
 * @throws {StorageCorruptionError} when there is no log to read, the record
 * fails its checks, or it carries another value.
 */
export async function readLogged(
  pointer: LoggedPointer,
  values: LoggedValues | undefined,
  where: { where: string; what: string },
): Promise<StateValue> {
  const { at } = pointer;
  const corrupt = (problem: string) =>
    new StorageCorruptionError(
      where.where,
      `${where.what} keeps its value in entry ${at.index} of the Raft log (segment ${at.segment}), ` +
        `but ${problem}`,
    );
  if (values === undefined) {
    throw corrupt(
      "this node's Raft log is not one it can read it from (start it with --log segments)",
    );
  }
  let value: StateValue;
  try {
    value = await values.read(at);
  } catch (err) {
    if (err instanceof StorageCorruptionError) throw corrupt(err.message);
    throw err;
  }
  const text = typeof value === "string";
  const size = typeof value === "string"
    ? utf8Length(value)
    : value instanceof Uint8Array
    ? value.length
    : -1;
  if (text !== pointer.text || size !== pointer.size) {
    throw corrupt(`the entry carries another value (${size} bytes, not ${pointer.size})`);
  }
  if (crc32(value) !== pointer.crc) throw corrupt("the value the entry carries fails its checksum");
  return value;
}
