/**
 * Sending a stored state as a snapshot: a service whose state is durable
 * (it tells the node so with `RaftNodeOptions.applied`) compacts the log
 * without handing Raft its bytes, and gives the node a
 * {@linkcode SnapshotSource} instead. When a follower needs the snapshot,
 * the leader opens a point-in-time read of the state and sends it page by
 * page, one chunk in flight (the follower's answer is the back-pressure),
 * so the sender never holds the whole state.
 *
 * @module
 */
import { invariant } from "./invariant.ts";
import { UNKNOWN_SIZE } from "./snapshot_receive.ts";
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
  /** The meta of a snapshot through `index`, while this node still leads in `term`; else undefined. */
  meta(index: number, term: number): SnapshotMeta | undefined;
  /** Sends `m` and resolves with the answers (none when it was lost). */
  call(m: SnapshotMessage): Promise<Message[]>;
  /** Hands the core an answer it must see: the last chunk's, or a higher term's. */
  step(m: Message): void;
  /** The stream to `peer` failed: the core sends its first chunk again later. */
  failed(peer: NodeId): void;
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
   * The core wants to send the first chunk (or a chunk again) of its
   * data-less snapshot to `first.to`: starts a stream unless one runs.
   */
  offer(first: SnapshotMessage): void {
    if (this.#stopped || this.#running.has(first.to)) return;
    const fail = () => {
      if (!this.#stopped) this.#host.failed(first.to);
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
    try {
      const meta = host.meta(stream.index, first.term);
      if (meta === undefined) return false;
      invariant(
        stream.index >= first.meta.index,
        `the stored state at ${stream.index} is behind the log's compaction at ${first.meta.index}`,
      );
      let offset = 0;
      let held: Uint8Array | undefined;
      const send = async (chunk: Uint8Array, size: number): Promise<"more" | "done" | "failed"> => {
        if (this.#stopped || host.meta(stream.index, first.term) === undefined) return "failed";
        const message: SnapshotMessage = {
          type: "snapshot",
          from: host.id,
          to: first.to,
          term: first.term,
          meta,
          offset,
          size,
          chunk,
        };
        const answers = await host.call(message);
        if (this.#stopped) return "failed";
        const answer = answers.find((a) => a.type === "snapshotResp");
        for (const a of answers) if (a.term > first.term) host.step(a);
        if (answer === undefined || answer.type !== "snapshotResp" || answer.term !== first.term) {
          return "failed";
        }
        if (answer.done) {
          host.step(answer);
          return "done";
        }
        offset += chunk.length;
        return answer.index === meta.index && answer.offset === offset ? "more" : "failed";
      };
      // One chunk is held back so that the last one goes out with the true size.
      for await (const page of stream.pages()) {
        for (let at = 0; at < page.length; at += host.chunkBytes) {
          if (held !== undefined) {
            const outcome = await send(held, UNKNOWN_SIZE);
            if (outcome !== "more") return outcome === "done";
          }
          held = page.subarray(at, at + host.chunkBytes);
        }
      }
      const last = held ?? new Uint8Array();
      return await send(last, offset + last.length) === "done";
    } finally {
      stream.close();
    }
  }
}
