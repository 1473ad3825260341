/**
 * Receiving a snapshot in chunks: a follower collects them in order and
 * has the whole snapshot once the last one arrives.
 *
 * @module
 */
import type { Snapshot, SnapshotMessage, SnapshotResponse } from "./types.ts";

/**
 * The `size` of a snapshot chunk that is not the last of a stream whose
 * total is not known yet (a service's stored state, read page by page):
 * the last chunk carries the true size, its offset plus its length.
 */
export const UNKNOWN_SIZE: number = Number.MAX_SAFE_INTEGER;

/** The fields of a {@linkcode SnapshotResponse} the receiver decides. */
export type ChunkAnswer = Pick<SnapshotResponse, "index" | "offset" | "done">;

/**
 * The chunks of the snapshot a follower is receiving.
 *
 * @example
 * ```ts
 * import { SnapshotReceiver } from "./snapshot_receive.ts";
 *
 * const receiver = new SnapshotReceiver();
 * const meta = { index: 5, term: 1, membership: { voters: ["a"], learners: [] } };
 * const base = { type: "snapshot", from: "a", to: "b", term: 1, meta, size: 2 } as const;
 * receiver.receive({ ...base, offset: 0, chunk: new Uint8Array([1]) });
 * const { snapshot } = receiver.receive({ ...base, offset: 1, chunk: new Uint8Array([2]) });
 * snapshot?.data; // Uint8Array [1, 2]
 * ```
 */
export class SnapshotReceiver {
  #incoming:
    | { meta: Snapshot["meta"]; size: number; chunks: Uint8Array[]; received: number }
    | undefined;

  /** Forgets the snapshot being received (the follower has its entries already). */
  reset(): void {
    this.#incoming = undefined;
  }

  /**
   * Takes a chunk: returns the answer for the leader and, with the last
   * chunk, the whole snapshot. A chunk out of order is answered with the
   * offset wanted instead (0 for a snapshot not being received).
   */
  receive(m: SnapshotMessage): { answer: ChunkAnswer; snapshot?: Snapshot } {
    let inc = this.#incoming;
    if (m.offset === 0) {
      inc = this.#incoming = { meta: m.meta, size: m.size, chunks: [], received: 0 };
    }
    if (
      inc === undefined || inc.meta.index !== m.meta.index || inc.meta.term !== m.meta.term ||
      m.offset !== inc.received
    ) {
      const offset = inc?.meta.index === m.meta.index ? inc.received : 0;
      return { answer: { index: m.meta.index, offset, done: false } };
    }
    inc.chunks.push(m.chunk);
    inc.received += m.chunk.length;
    // A streamed snapshot's size is known only with its last chunk (see `UNKNOWN_SIZE`).
    inc.size = m.size;
    if (inc.received < inc.size) {
      return { answer: { index: m.meta.index, offset: inc.received, done: false } };
    }
    this.#incoming = undefined;
    return {
      answer: { index: inc.meta.index, offset: inc.size, done: true },
      snapshot: { meta: inc.meta, data: joinChunks(inc.chunks, inc.size) },
    };
  }
}

/** The chunks as one array (the one chunk itself when there is only one). */
function joinChunks(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const data = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    data.set(chunk, at);
    at += chunk.length;
  }
  return data;
}
