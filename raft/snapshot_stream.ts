/**
 * Sending a stored state as a snapshot: a service whose state is durable
 * (it tells the node so with `RaftNodeOptions.applied`) compacts the log
 * without handing Raft its bytes, and gives the node a
 * {@linkcode SnapshotSource} instead. When a follower needs the snapshot,
 * the leader opens a point-in-time read of the state and sends it page by
 * page, several chunks in flight up to a byte bound (the window), reading
 * the next page while they travel. The follower answers a chunk once it is
 * written, and the window moves only with its answers: that is the
 * back-pressure, so neither side ever holds more than the window of the
 * state. A chunk the follower did not take (lost, or overtaken by a later
 * one) is sent again from where the follower is, from the bytes the
 * leader holds (`snapshot_resend.ts`): the stream starts over from a new
 * read only when the follower wants what it no longer holds.
 *
 * @module
 */
import { invariant } from "./invariant.ts";
import { type CatchUpLog, CatchUps } from "./snapshot_catch_up.ts";
import { UNKNOWN_SIZE } from "./snapshot_receive.ts";
import { type HeldChunk, Resender, type SentChunk } from "./snapshot_resend.ts";
import type { Message, NodeId, SnapshotMessage, SnapshotMeta } from "./types.ts";

/**
 * A point-in-time read of a service's stored state.
 *
 * @example
 * ```ts
 * import type { SnapshotStream } from "@distkit/distkit/raft";
 *
 * const stream: SnapshotStream = {
 *   index: 7,
 *   async *pages() {
 *     yield new Uint8Array([1, 2, 3]);
 *   },
 *   close() {},
 * };
 * ```
 */
export interface SnapshotStream {
  /** The log index the state reflects: at or after the node's last compaction. */
  readonly index: number;
  /**
   * The state's bytes, page by page. Their concatenation is what the
   * follower's service receives as the snapshot's data. Streams once.
   */
  pages(): AsyncIterable<Uint8Array>;
  /** Ends the read (it may hold copies of rows written since it began). */
  close(): void;
}

/**
 * Where a leader reads a stored state to send as a snapshot.
 *
 * @example
 * ```ts
 * import type { SnapshotSource } from "@distkit/distkit/raft";
 *
 * const state = new Uint8Array([4, 2]);
 * const source: SnapshotSource = {
 *   open: () =>
 *     Promise.resolve({
 *       index: 3,
 *       async *pages() {
 *         yield state;
 *       },
 *       close() {},
 *     }),
 * };
 * ```
 */
export interface SnapshotSource {
  /** Opens a read of the durable state as of now. */
  open(): Promise<SnapshotStream>;
}

/** What a {@linkcode SnapshotStreamer} needs of its node. */
export interface StreamHost {
  /** This node's id. */
  id: NodeId;
  /** Where the state is read. */
  source: SnapshotSource;
  /** The most bytes one chunk carries. */
  chunkBytes: number;
  /**
   * The most bytes of chunks sent and not yet answered (at least one chunk
   * goes out). Default: four chunks.
   */
  windowBytes?: number;
  /** The meta of a snapshot through `index`, while this node still leads in `term`; else undefined. */
  meta(index: number, term: number): SnapshotMeta | undefined;
  /**
   * Sends `m` and resolves with the answers (none when it was lost).
   * `queued`: chunks sent before it and not answered yet, which the follower
   * writes first (its answer may take that many times longer), and those
   * whose answers were lost since it last took one (they may be ahead too).
   */
  call(m: SnapshotMessage, options?: { queued: number }): Promise<Message[]>;
  /** Hands the core an answer it must see: the last chunk's, or a higher term's. */
  step(m: Message): void;
  /**
   * The stream to `peer` failed (`err`: why, when this node could not read
   * or send its own state): the core sends its first chunk again later.
   */
  failed(peer: NodeId, err?: unknown): void;
  /**
   * The leader's log, for what it must keep for followers catching up (see
   * {@linkcode SnapshotStreamer.catchUpIndex}). Default: nothing is kept.
   */
  log?: CatchUpLog;
}

/**
 * Runs one stream per follower that needs the snapshot.
 *
 * @example
 * ```ts
 * import { SnapshotStreamer } from "./snapshot_stream.ts";
 *
 * const streamer = new SnapshotStreamer({
 *   id: "a",
 *   source: { open: () => Promise.reject(new Error("no state")) },
 *   chunkBytes: 1024,
 *   meta: () => undefined,
 *   call: () => Promise.resolve([]),
 *   step: () => {},
 *   failed: () => {},
 * });
 * await streamer.stop();
 * ```
 */
export class SnapshotStreamer {
  readonly #host: StreamHost;
  readonly #running = new Map<NodeId, Promise<void>>();
  readonly #catchUps = new CatchUps();
  /** The streams begun: each one's id (`SnapshotMessage.stream`), in order. */
  #streams = 0;
  #stopped = false;

  /**
   * Creates a streamer (the node does).
   *
   * @param host What it needs of the node.
   */
  constructor(host: StreamHost) {
    this.#host = host;
  }

  /** Followers a stream is going to. */
  get streaming(): number {
    return this.#running.size;
  }

  /**
   * The lowest index this leader's log must keep for a follower catching
   * up from a stream (see `snapshot_catch_up.ts`), or undefined.
   */
  catchUpIndex(): number | undefined {
    return this.#host.log === undefined ? undefined : this.#catchUps.floor(this.#host.log);
  }

  /**
   * The core wants to send the first chunk (or a chunk again) of its
   * data-less snapshot to `first.to`: starts a stream unless one runs.
   */
  offer(first: SnapshotMessage): void {
    if (this.#stopped || this.#running.has(first.to)) return;
    const fail = (err?: unknown) => {
      this.#catchUps.failed(first.to);
      if (!this.#stopped) this.#host.failed(first.to, err);
    };
    const run = this.#stream(first).then((ok) => ok ? undefined : fail(), fail)
      .finally(() => this.#running.delete(first.to));
    this.#running.set(first.to, run);
  }

  /** Stops starting streams; resolves once those running have ended (each at its next answer). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#running.values());
  }

  /** Sends the state to `first.to`; resolves whether the follower took it all. */
  async #stream(first: SnapshotMessage): Promise<boolean> {
    const host = this.#host;
    const stream = await host.source.open();
    let chunks: AsyncGenerator<{ chunk: Uint8Array; last: boolean }> | undefined;
    let next: Promise<IteratorResult<{ chunk: Uint8Array; last: boolean }>> | undefined;
    /** Chunks sent and not answered yet, oldest first: each one as sent, and its answers. */
    const inflight: { sent: SentChunk; length: number; answers: Promise<Message[]> }[] = [];
    try {
      const meta = host.meta(stream.index, first.term);
      if (meta === undefined) return false;
      invariant(
        stream.index >= first.meta.index,
        `the stored state at ${stream.index} is behind the log's compaction at ${first.meta.index}`,
      );
      this.#catchUps.opened(first.to, stream.index);
      const windowBytes = Math.max(host.windowBytes ?? 4 * host.chunkBytes, host.chunkBytes);
      // What a chunk not taken is sent again from (`snapshot_resend.ts`): the state is read once.
      const resender = new Resender(windowBytes);
      const id = ++this.#streams;
      let inflightBytes = 0;
      const send = (chunk: HeldChunk): boolean => {
        if (this.#stopped || host.meta(stream.index, first.term) === undefined) return false;
        const message: SnapshotMessage = {
          type: "snapshot",
          from: host.id,
          to: first.to,
          term: first.term,
          meta,
          offset: chunk.offset,
          // Only the last chunk carries the true size (see `UNKNOWN_SIZE`).
          size: chunk.last ? chunk.offset + chunk.chunk.length : UNKNOWN_SIZE,
          chunk: chunk.chunk,
          stream: id,
        };
        inflightBytes += chunk.chunk.length;
        const answers = host.call(message, { queued: inflight.length + resender.lost });
        inflight.push({ sent: resender.sent(chunk), length: chunk.chunk.length, answers });
        return true;
      };
      // Answers are taken in the order the chunks were sent: the oldest one's moves the window on.
      const settle = async (): Promise<"more" | "done" | "failed"> => {
        const head = inflight.shift()!;
        inflightBytes -= head.length;
        const answers = await head.answers;
        if (this.#stopped) return "failed";
        const answer = answers.find((a) => a.type === "snapshotResp");
        for (const a of answers) if (a.term > first.term) host.step(a);
        if (
          answer !== undefined && (answer.type !== "snapshotResp" || answer.term !== first.term)
        ) {
          return "failed";
        }
        if (answer?.done) {
          host.step(answer);
          // It has the state through the stream's index: the log keeps what it needs next.
          if (host.log) this.#catchUps.installed(first.to, host.log.lastIndex);
          return "done";
        }
        // The follower is receiving another snapshot: this stream cannot go on.
        if (answer !== undefined && answer.index !== meta.index) return "failed";
        // No answer is a chunk lost (or its answer): it is sent again, as one not taken.
        return resender.answered(head.sent, answer?.offset);
      };
      chunks = chunksOf(stream.pages(), host.chunkBytes);
      const pending = chunks;
      // Read ahead: the next chunk is read while those sent travel and are written. A read that
      // fails while an answer is awaited is seen when it is awaited, or not at all (the stream
      // ended first): it is no unhandled rejection meanwhile, which stops the process.
      const readAhead = () => {
        const read = pending.next();
        read.catch(() => {});
        return read;
      };
      next = readAhead();
      for (;;) {
        for (
          let chunk = resender.next();
          chunk !== undefined &&
          (inflight.length === 0 || inflightBytes + host.chunkBytes <= windowBytes);
          chunk = resender.next()
        ) {
          if (chunk === "read") {
            const read = await next;
            invariant(!read.done, "a snapshot stream's chunks ended before the last one");
            if (!read.value.last) next = readAhead();
            resender.read(read.value.chunk, read.value.last);
            continue;
          }
          if (!send(chunk)) return false;
        }
        invariant(inflightBytes <= windowBytes, "a snapshot stream went over its window");
        if (inflight.length === 0) return false; // the follower has every byte, yet not done
        const outcome = await settle();
        if (outcome !== "more") return outcome === "done";
      }
    } finally {
      // A read ahead that the close cuts short is of no interest any more.
      chunks?.return(undefined).catch(() => {});
      stream.close();
      // The window holds across streams: the next starts once this one's chunks are answered
      // (or lost: calls end with their timeout).
      await Promise.all(inflight.map((c) => c.answers.catch(() => {})));
    }
  }
}

/**
 * The pages cut into chunks of at most `chunkBytes`, each marked whether it
 * is the last (one chunk is looked ahead for that); an empty stream is one
 * empty last chunk.
 */
async function* chunksOf(
  pages: AsyncIterable<Uint8Array>,
  chunkBytes: number,
): AsyncGenerator<{ chunk: Uint8Array; last: boolean }> {
  let held: Uint8Array | undefined;
  for await (const page of pages) {
    for (let at = 0; at < page.length; at += chunkBytes) {
      if (held !== undefined) yield { chunk: held, last: false };
      held = page.subarray(at, at + chunkBytes);
    }
  }
  yield { chunk: held ?? new Uint8Array(), last: true };
}
