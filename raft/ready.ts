/**
 * What the core hands its driver: the ready (what to persist, send, apply
 * and release) and the state a core restarts from.
 *
 * @module
 */
import type { ReadState } from "./read_only.ts";
import type { Entry, HardState, Message, Snapshot } from "./types.ts";
import type { StreamedChunk } from "./snapshot_receive.ts";

/**
 * An answer to a request that was stepped with a `requestId`: it rides back
 * on that request's RPC.
 *
 * @example
 * ```ts
 * import type { Reply } from "@distkit/distkit/raft";
 *
 * const reply: Reply = {
 *   requestId: 7,
 *   message: { type: "heartbeatResp", from: "b", to: "a", term: 4, context: 0 },
 * };
 * ```
 */
export interface Reply {
  /** The `requestId` the request was stepped with. */
  requestId: number;
  /** The answer. */
  message: Message;
}

/**
 * What the driver must do next, in this order: persist `hardState`,
 * `entries` (replacing any stored entries from `entries[0].index` on) and
 * `snapshot`, then report it with {@linkcode RaftCore.persisted}; send
 * `messages`; then apply `committed` (and `installSnapshot` first when set)
 * to the service; then release `reads`. Messages must wait for the write,
 * except a leader's when the ready changes neither term nor vote: a leader
 * may replicate while it writes its own log (Raft thesis §10.2.1), because
 * it counts its own entries toward a commit only once they are persisted.
 *
 * @example
 * ```ts
 * import type { Ready } from "@distkit/distkit/raft";
 *
 * function summary(rd: Ready): string {
 *   return `${rd.entries.length} to persist, ${rd.messages.length} to send, ${rd.committed.length} to apply`;
 * }
 * ```
 */
export interface Ready {
  /** The new hard state, when it changed. */
  hardState?: HardState;
  /** Entries to append to stable storage. */
  entries: Entry[];
  /** A snapshot to persist (the log up to its index is dropped). */
  snapshot?: Snapshot;
  /**
   * With `CoreOptions.streamSnapshots`: the snapshot chunks accepted, to
   * write (in order) before anything else of this ready; the last one's
   * `snapshot` is data-less, its state being what they wrote.
   */
  streamed?: StreamedChunk[];
  /** Whether `snapshot` came from the leader and must be applied to the service. */
  installSnapshot: boolean;
  /**
   * Whether every stored entry must be dropped before `entries` are written:
   * an installed snapshot did not match the log, which it replaced whole.
   */
  resetLog: boolean;
  /** Messages to send once the above is persisted. */
  messages: Message[];
  /**
   * Answers to requests stepped with a `requestId`, to carry back on their
   * RPCs, under the same rule as `messages`. (Answers to requests stepped
   * without one are in `messages`.)
   */
  replies: Reply[];
  /** Committed entries to apply, in order. */
  committed: Entry[];
  /** Confirmed linearizable reads. */
  reads: ReadState[];
  /**
   * The log's last index and its term when this ready was taken: once the
   * ready is written, call {@linkcode RaftCore.persisted} with them.
   */
  lastIndex: number;
  /** The term of the entry at `lastIndex`. */
  lastTerm: number;
}

/**
 * What a node restarts from: its stored hard state, snapshot and entries.
 *
 * @example
 * ```ts
 * import type { InitialState } from "@distkit/distkit/raft";
 *
 * const fresh: InitialState = {
 *   hardState: { term: 0, vote: null, commit: 0 },
 *   entries: [],
 * };
 * ```
 */
export interface InitialState {
  /** The stored hard state. */
  hardState: HardState;
  /** The stored snapshot, if any. */
  snapshot?: Snapshot;
  /** The stored entries after the snapshot. */
  entries: Entry[];
  /**
   * The index the service's durable state already reflects (a service that
   * stores its state: see `RaftNodeOptions.applied`): committed entries at or
   * below it are not handed out again. Default: the snapshot's index.
   */
  applied?: number;
}
