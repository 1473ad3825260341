/**
 * Receiving a snapshot in chunks. A follower collects them in order and
 * has the whole snapshot once the last one arrives; or, for a service that
 * installs a stored state as it streams in (`RaftNodeOptions.snapshotSink`),
 * it keeps no bytes at all: each chunk in order is handed out to be written
 * before it is acknowledged, and the last one yields a data-less snapshot.
 *
 * @module
 */
import type { Snapshot, SnapshotMessage, SnapshotMeta, SnapshotResponse } from "./types.ts";

/**
 * The `size` of a snapshot chunk that is not the last of a stream whose
 * total is not known yet (a service's stored state, read page by page):
 * the last chunk carries the true size, its offset plus its length.
 */
export const UNKNOWN_SIZE: number = Number.MAX_SAFE_INTEGER;

/** The fields of a {@linkcode SnapshotResponse} the receiver decides. */
export type ChunkAnswer = Pick<SnapshotResponse, "index" | "offset" | "done">;

/**
 * What a follower that streams snapshots into its service's store must do
 * with a chunk it accepted (in order, before answering it): write it (a new
 * stream when `offset` is 0), and switch to the whole state when `last`;
 * or drop the stream being received (`abandon`).
 *
 * @example
 * ```ts
 * import type { StreamedChunk } from "@distkit/distkit/raft";
 *
 * const meta = { index: 5, term: 1, membership: { voters: ["a"], learners: [] } };
 * const op: StreamedChunk = { meta, offset: 0, chunk: new Uint8Array([1]), last: true };
 * ```
 */
export type StreamedChunk =
  | { meta: SnapshotMeta; offset: number; chunk: Uint8Array; last: boolean }
  | { abandon: true };

/** The snapshot being received: whose stream (see `SnapshotMessage.stream`), and how far. */
interface Incoming {
  meta: Snapshot["meta"];
  /** The leader's term and stream (undefined: a snapshot without streams). */
  term: number;
  stream: number | undefined;
  size: number;
  chunks: Uint8Array[];
  received: number;
}

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
  /** Chunks are handed out (`take`) instead of gathered. */
  readonly #streamed: boolean;
  #incoming: Incoming | undefined;
  #ops: StreamedChunk[] = [];

  /**
   * Creates a receiver.
   *
   * @param options `streamed`: hand chunks out to be written rather than
   * gather them (default false).
   */
  constructor(options: { streamed?: boolean } = {}) {
    this.#streamed = options.streamed ?? false;
  }

  /** Whether chunks wait to be taken. */
  get hasChunks(): boolean {
    return this.#ops.length > 0;
  }

  /** Forgets the snapshot being received (the follower has its entries already). */
  reset(): void {
    if (this.#streamed && this.#incoming !== undefined) this.#ops.push({ abandon: true });
    this.#incoming = undefined;
  }

  /** The chunks accepted since the last call, in order (streamed receivers only). */
  take(): StreamedChunk[] {
    return this.#ops.splice(0);
  }

  /**
   * Takes a chunk: returns the answer for the leader and, with the last
   * chunk, the whole snapshot (data-less when streamed). A chunk out of
   * order is answered with the offset wanted instead (0 for a snapshot not
   * being received).
   */
  receive(m: SnapshotMessage): { answer: ChunkAnswer; snapshot?: Snapshot } {
    let inc = this.#incoming;
    // A chunk of a stream with an id (chunks sent again: `snapshot_resend.ts`) at offset 0 is a
    // new stream only when it is not the one being received (then it was sent again, or arrived
    // twice) nor an older one of the same leader (it arrived late): it is never written twice.
    const again = m.stream !== undefined && inc?.stream !== undefined && inc.term === m.term &&
      (m.stream < inc.stream ||
        (m.stream === inc.stream && sameSnapshot(inc.meta, m.meta)));
    if (m.offset === 0 && !again) {
      // A new stream, or the sender started again: what was received is dropped.
      inc = this.#incoming = {
        meta: m.meta,
        term: m.term,
        stream: m.stream,
        size: m.size,
        chunks: [],
        received: 0,
      };
      // So are the chunks of a stream it supersedes not written yet (the new stream's begin
      // abandons what was): while the service's disk stalls, a sender that tries again adds
      // no more than one stream's window. A stream that completed is kept: Raft has it.
      if (this.#streamed && !this.#ops.some((op) => "last" in op && op.last)) this.#ops.length = 0;
    }
    // Taken: the next chunk of the stream being received. Any other (ahead of it, a duplicate, of
    // another stream) is answered with the offset wanted, and neither written nor kept.
    if (
      inc === undefined || !sameSnapshot(inc.meta, m.meta) || inc.stream !== m.stream ||
      (m.stream !== undefined && inc.term !== m.term) || m.offset !== inc.received
    ) {
      // A chunk of a newer stream (or another leader's) is told to begin at 0: what the stream
      // being received got is no progress of its (review32g: taken for it, the sender freed a
      // chunk it then could not send again, and the stream failed).
      const newer = m.stream !== undefined &&
        (inc?.term !== m.term || (inc?.stream ?? 0) < m.stream);
      const offset = inc?.meta.index === m.meta.index && !newer ? inc.received : 0;
      return { answer: { index: m.meta.index, offset, done: false } };
    }
    if (!this.#streamed) inc.chunks.push(m.chunk);
    inc.received += m.chunk.length;
    // A streamed snapshot's size is known only with its last chunk (see `UNKNOWN_SIZE`).
    inc.size = m.size;
    const last = inc.received >= inc.size;
    if (this.#streamed) {
      this.#ops.push({ meta: inc.meta, offset: m.offset, chunk: m.chunk, last });
    }
    if (!last) return { answer: { index: m.meta.index, offset: inc.received, done: false } };
    this.#incoming = undefined;
    const data = this.#streamed ? new Uint8Array() : joinChunks(inc.chunks, inc.size);
    return {
      answer: { index: inc.meta.index, offset: inc.size, done: true },
      snapshot: { meta: inc.meta, data },
    };
  }
}

/** Whether two snapshots are the same: through the same entry. */
function sameSnapshot(a: Snapshot["meta"], b: Snapshot["meta"]): boolean {
  return a.index === b.index && a.term === b.term;
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
