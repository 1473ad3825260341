/**
 * What a leader's log must keep for followers catching up from a streamed
 * state. A follower streamed the stored state as of index S installs it,
 * then needs the entries S+1… from the leader's log: had the log been
 * compacted past S meanwhile, it is streamed a newer state, and under
 * steady writes with a state that takes long to stream, that is forever
 * (etcd, likewise, pauses compaction while a snapshot is in flight).
 *
 * The invariant: from the moment a stream at S is opened to a peer until
 * that peer's log matches the leader's through the last index the leader
 * had when the stream ended, the lowest index a compaction may reach is S,
 * then the peer's match: {@linkcode CatchUps.floor}. The compaction policy
 * (the service's: `rsm/replica_compaction.ts`) keeps to it while the log
 * is within its byte bound; past that, it compacts anyway and the stream
 * starts again from a newer state, as before.
 *
 * @module
 */
import type { NodeId } from "./types.ts";

/** What {@linkcode CatchUps.floor} reads of the leader's log. */
export interface CatchUpLog {
  /** The index the log starts after. */
  readonly snapshotIndex: number;
  /** The last index in the log. */
  readonly lastIndex: number;
  /** How far `peer`'s log is known to match; undefined when this node does not lead, or `peer` is no member. */
  match(peer: NodeId): number | undefined;
}

/**
 * The followers catching up from a stream, and the index each needs the
 * log to keep.
 *
 * @example
 * ```ts
 * import { CatchUps } from "./snapshot_catch_up.ts";
 *
 * const catchUps = new CatchUps();
 * const log = { snapshotIndex: 90, lastIndex: 140, match: () => 100 };
 * catchUps.opened("c", 100); // streaming c the state as of 100
 * catchUps.floor(log); // 100
 * catchUps.installed("c", 140); // c has it: it needs the entries 101..140 next
 * catchUps.floor({ ...log, match: () => 140 }); // undefined: c caught up
 * ```
 */
export class CatchUps {
  /** By peer: the stream's index, and (once installed) the last index the peer needs to catch up. */
  readonly #peers = new Map<NodeId, { point: number; until: number | undefined }>();

  /** A stream of the state as of `point` to `peer` was opened. */
  opened(peer: NodeId, point: number): void {
    this.#peers.set(peer, { point, until: undefined });
  }

  /** `peer` installed its stream; it needs the entries after it through `lastIndex` (the leader's now). */
  installed(peer: NodeId, lastIndex: number): void {
    const entry = this.#peers.get(peer);
    if (entry) entry.until = lastIndex;
  }

  /** The stream to `peer` failed: nothing is held for it (a new stream opens at a newer state). */
  failed(peer: NodeId): void {
    this.#peers.delete(peer);
  }

  /**
   * The lowest index the log must keep for a follower catching up, or
   * undefined when none is. Drops those that caught up, that the log no
   * longer serves (a compaction passed them: they need a new stream), that
   * are no longer members (removed while streamed: nothing waits for them),
   * and any once this node no longer leads.
   */
  floor(log: CatchUpLog): number | undefined {
    let floor: number | undefined;
    for (const [peer, { point, until }] of this.#peers) {
      const match = log.match(peer);
      const at = until === undefined ? point : match;
      if (
        match === undefined || at === undefined || at < log.snapshotIndex ||
        (until !== undefined && at >= Math.min(until, log.lastIndex))
      ) {
        this.#peers.delete(peer);
        continue;
      }
      floor = Math.min(floor ?? at, at);
    }
    return floor;
  }
}
