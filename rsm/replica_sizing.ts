/**
 * When a replica snapshots (staggered across the voters) and how big a
 * write is for admission: the arithmetic of {@linkcode Replica}'s limits.
 *
 * @module
 */
import type { ReplicaOptions } from "./replica_types.ts";

/** Default of {@linkcode ReplicaOptions.maxPendingWrites}. */
export const DEFAULT_MAX_PENDING_WRITES = 1024;
/** Default of {@linkcode ReplicaOptions.maxPendingWriteBytes}. */
export const DEFAULT_MAX_PENDING_WRITE_BYTES = 8 * 1024 * 1024;
/**
 * Entries applied in a row before the applier yields to the event loop, so
 * a long backlog (a follower catching up) does not hold up heartbeats,
 * votes and status requests.
 */
export const APPLY_SLICE = 64;

/**
 * The Raft state size that triggers a snapshot, given the size of the
 * replica's last snapshot: `maxRaftState`, or `snapshotLogRatio` times the
 * last snapshot when that is larger. With a ratio r > 0, the state is
 * encoded again only after at least r × its own size of log, so the bytes
 * snapshotted stay within about 1/r of the bytes applied however large the
 * state grows (issue 16: at a fixed threshold a 70 MiB state was encoded
 * every 4 MiB of writes). Negative: never (no `maxRaftState`).
 */
export function snapshotThreshold(options: ReplicaOptions, lastSnapshotBytes: number): number {
  const max = options.maxRaftState ?? -1;
  if (max < 0) return max;
  const ratio = options.snapshotLogRatio ?? 0;
  return Math.max(max, ratio * lastSnapshotBytes);
}

/** Where a replica's turn to snapshot falls: see {@linkcode nextSnapshotAfterInstall}. */
export interface SnapshotTurn {
  /** The current leader's id, or null when none is known. */
  leader: string | null;
  /** The size of the snapshot just installed, bytes. */
  snapshotBytes: number;
}

/**
 * The Raft state size at which a replica that installed the leader's
 * snapshot snapshots next: where its own turn falls after the leader's (the
 * k-th of n voters snapshots at (n - k) / n of the threshold past each
 * multiple of it, see {@linkcode firstSnapshotAt}), so an install does not
 * leave it snapshotting in step with the leader.
 */
export function nextSnapshotAfterInstall(options: ReplicaOptions, turn: SnapshotTurn): number {
  const max = snapshotThreshold(options, turn.snapshotBytes);
  const voters = [...options.peers].sort();
  const k = voters.indexOf(options.id);
  const l = turn.leader === null ? -1 : voters.indexOf(turn.leader);
  if (max < 0 || k < 0 || l < 0) return max;
  const n = voters.length;
  return max * (((l - k) % n + n) % n || n) / n;
}

/**
 * The Raft state size of a replica's first snapshot since it started: the
 * threshold (given the snapshot it starts from), but (n - k) / n of it on
 * the k-th of n initial voters (by id). Replicas have alike logs, so with
 * one threshold they all snapshot at about the same index, each encoding
 * and writing the whole state at the same moment (a burst of CPU and disk
 * the cluster's writes wait behind); staggered once, they stay staggered,
 * as their logs then grow alike.
 */
export function firstSnapshotAt(options: ReplicaOptions, lastSnapshotBytes: number): number {
  const max = snapshotThreshold(options, lastSnapshotBytes);
  const voters = [...options.peers].sort();
  const k = voters.indexOf(options.id);
  if (max < 0 || k < 0) return max;
  return max * (voters.length - k) / voters.length;
}

/** The writes a leader has in progress, and its limits on them. */
export interface WritesInProgress {
  writes: number;
  writeBytes: number;
  /** How long the oldest of them has waited (0: none). */
  oldestWaitMs: number;
  maxWrites: number;
  maxWriteBytes: number;
  maxQueueDelayMs: number;
}

/**
 * Writes of at most this many bytes are small: large writes leave
 * {@linkcode smallWriteReserve} of the byte limit to them, so that a few
 * bytes (a heartbeat key, a lock) still get in while large values fill the
 * limit (issue 16: a canary's puts were refused behind 1 MiB values).
 */
export const SMALL_WRITE_BYTES = 64 * 1024;

/** The part of a byte limit only small writes may use: an eighth of it. */
export function smallWriteReserve(maxBytes: number): number {
  return Math.floor(maxBytes / 8);
}

/**
 * How long the oldest write in progress of the class a write of `bytes`
 * joins has waited (0: none): the oldest small write for a small one, the
 * oldest of all for a large one. A small write is not refused because large
 * ones wait (issue 16: a canary's puts were refused behind stalled 1 MiB
 * values); small writes that wait themselves are, as large ones are.
 * `admitted` is in the order the writes were admitted.
 */
export function oldestWaitMs(
  admitted: Iterable<{ at: number; bytes: number }>,
  bytes: number,
  now: number,
): number {
  const small = bytes <= SMALL_WRITE_BYTES;
  for (const w of admitted) if (!small || w.bytes <= SMALL_WRITE_BYTES) return now - w.at;
  return 0;
}

/** Which limit a write of `bytes` would pass, given the writes in progress; undefined: none. */
export function limitReached(bytes: number, now: WritesInProgress): string | undefined {
  if (now.writes >= now.maxWrites) return `${now.writes} writes are in progress, the limit`;
  const reserve = bytes > SMALL_WRITE_BYTES ? smallWriteReserve(now.maxWriteBytes) : 0;
  if (now.writes > 0 && now.writeBytes + bytes > now.maxWriteBytes - reserve) {
    return `${now.writeBytes} bytes of writes are in progress and this one has ${bytes}; ` +
      `the limit is ${now.maxWriteBytes}` +
      (reserve > 0
        ? `, less ${reserve} kept for writes of ${SMALL_WRITE_BYTES} bytes or less`
        : "");
  }
  if (now.writes > 0 && now.oldestWaitMs > now.maxQueueDelayMs) {
    return `the oldest write in progress has waited ${Math.round(now.oldestWaitMs)} ms, over the ` +
      `limit of ${Math.round(now.maxQueueDelayMs)} ms`;
  }
  return undefined;
}
