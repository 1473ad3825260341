/**
 * The options a `SegmentLogStorage` is opened with, and what it reports of
 * its segments (in a file of their own: `segment_storage.ts` is at the size
 * the layout allows).
 *
 * @module
 */
import type { Codec } from "../net/codec.ts";
import type { Clock } from "../net/clock.ts";
import type { Random } from "../net/random.ts";
import type { SegmentFs } from "./segment_fs.ts";

/**
 * Options for `SegmentLogStorage.open`.
 *
 * @example
 * ```ts
 * import type { SegmentLogStorageOptions } from "@distkit/distkit/raft";
 *
 * const options: SegmentLogStorageOptions = { segmentBytes: 16 * 1024 * 1024 };
 * ```
 */
export interface SegmentLogStorageOptions {
  /** Bytes of one segment file (a larger save grows its segment). Default 64 MiB. */
  segmentBytes?: number;
  /** Codec for entries and state. Default: the shared 64 MiB codec. */
  codec?: Codec;
  /** The high-water mark file; `null`: none (losses go undetected). Default `<folder>/mark`. */
  mark?: string | null;
  /**
   * The caller knows the store has held state (its node has met its peers):
   * a missing mark is then a loss even when the folder is empty too.
   * Default false.
   */
  expectState?: boolean;
  /** The file system the folder is on. Default: the real disk (`realSegmentFs`). */
  fs?: SegmentFs;
  /** The clock the mark's background fsync waits on. Default: the real one. */
  clock?: Clock;
  /**
   * Where a new folder's random id comes from: a simulation's seeded source,
   * so that a seed replays exactly. Default: the system's (`crypto`).
   */
  random?: Random;
}

/**
 * The segments a `SegmentLogStorage` holds (`SegmentLogStorage.segments`).
 *
 * @example
 * ```ts
 * import type { SegmentsKept } from "@distkit/distkit/raft";
 *
 * const kept: SegmentsKept = {
 *   sequences: [4, 5],
 *   bytes: [64 << 20, 64 << 20],
 *   keptForValues: 1,
 *   segmentBytes: 64 << 20,
 *   snapshotIndex: 90,
 * };
 * ```
 */
export interface SegmentsKept {
  /** The segments with records, oldest first. */
  sequences: number[];
  /**
   * Bytes of each one's file, as `sequences`: `segmentBytes`, or more for
   * one a record larger than a segment grew (what the disk holds, for a budget).
   */
  bytes: number[];
  /** How many of the oldest are kept only for a state's values (the snapshot covers their entries). */
  keptForValues: number;
  /** Bytes of a segment. */
  segmentBytes: number;
  /** The index the snapshot covers (0: none). */
  snapshotIndex: number;
}
