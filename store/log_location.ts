/**
 * Where a record of a Raft log lies, as a segment log locates it: the type
 * a state store's rows point with when a value is kept in the log instead
 * of in the state (see `state_logged.ts`). Here, below the log, so that the
 * store names it without importing the log.
 *
 * @module
 */

/**
 * Where one log entry's record lies in a segment log, and what checks it
 * alone: the CRC its record's chain was seeded with (the record before it).
 *
 * @example
 * ```ts
 * import type { LogLocation } from "@distkit/distkit/store";
 *
 * const at: LogLocation = { segment: 3, offset: 4096, length: 1_048_640, seed: 0x1234, index: 17 };
 * ```
 */
export interface LogLocation {
  /** The segment's sequence number. */
  segment: number;
  /** The record's offset in the segment. */
  offset: number;
  /** The record's bytes (header and payload). */
  length: number;
  /** The CRC the record's own CRC is chained to (its predecessor's). */
  seed: number;
  /** The entry's index. */
  index: number;
}
