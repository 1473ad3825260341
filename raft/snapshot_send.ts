/**
 * Sending a snapshot to a follower in chunks: one chunk in flight at a
 * time, each answered with the offset the follower wants next.
 *
 * @module
 */
import type { Progress } from "./progress.ts";
import type { NodeId, Snapshot, SnapshotMessage } from "./types.ts";

/**
 * The next chunk of `snapshot` for the follower `pr` tracks, or undefined
 * while a chunk is in flight. Restarts from the first byte when a newer
 * snapshot replaced the one being sent; marks the chunk in flight.
 *
 * @example
 * ```ts
 * import { nextSnapshotChunk } from "./snapshot_send.ts";
 * import { Progress } from "./progress.ts";
 *
 * const pr = new Progress({ match: 0, next: 1, maxInflight: 1, maxInflightBytes: 1 });
 * const snapshot = {
 *   meta: { index: 5, term: 1, membership: { voters: ["a", "b"], learners: [] } },
 *   data: new Uint8Array(10),
 * };
 * pr.becomeSnapshot(5);
 * const chunk = nextSnapshotChunk(snapshot, pr, { to: "b", chunkBytes: 4 });
 * chunk?.chunk.length; // 4
 * ```
 */
export function nextSnapshotChunk(
  snapshot: Snapshot,
  pr: Progress,
  options: { to: NodeId; chunkBytes: number },
): Omit<SnapshotMessage, "from" | "term"> | undefined {
  if (pr.snapshotInflight) return undefined;
  if (pr.snapshotIndex !== snapshot.meta.index) {
    pr.snapshotIndex = snapshot.meta.index; // a newer snapshot replaced the one being sent
    pr.snapshotOffset = 0;
  }
  const offset = pr.snapshotOffset;
  pr.snapshotInflight = true;
  pr.snapshotWaits = 0;
  return {
    type: "snapshot",
    to: options.to,
    meta: snapshot.meta,
    offset,
    size: snapshot.data.length,
    chunk: snapshot.data.subarray(offset, offset + options.chunkBytes),
  };
}
