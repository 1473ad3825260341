/**
 * Small pieces of `RaftNode` kept apart (node.ts is at its length limit):
 * the errors its refusals become, the check of a stored service's applied
 * index at start, and the host its snapshot streamer runs on.
 *
 * @module
 */
import type { Logger } from "../net/logger.ts";
import { ArgumentsError } from "../net/errors.ts";
import type { RaftCore } from "./core.ts";
import { MembershipBusyError, NotLeaderError, RaftRequestError, type Refusal } from "./errors.ts";
import type { SnapshotSource, StreamHost } from "./snapshot_stream.ts";
import { StorageCorruptionError, StorageLossError } from "../store/storage_errors.ts";
import type { Entry, HardState, Message, NodeId, Snapshot, SnapshotMessage } from "./types.ts";
import type { RaftNodeOptions } from "./node_options.ts";
import type { StoredState } from "./storage.ts";
import { parseMessage } from "./messages.ts";
import { installedState, recordInstalled } from "./snapshot_install.ts";

/**
 * The error a refusal of the core becomes for the caller.
 *
 * @example
 * ```ts
 * import { refusalError } from "./node_helpers.ts";
 *
 * refusalError("a", { reason: "not-leader", leader: "b" }).name; // "NotLeaderError"
 * ```
 */
export function refusalError(id: NodeId, refusal: Refusal): Error {
  switch (refusal.reason) {
    case "not-leader":
      return new NotLeaderError(id, refusal.leader);
    case "transferring":
      return new NotLeaderError(id, refusal.leader, "is handing leadership over");
    case "membership-pending":
    case "term-not-committed":
    case "folder-unheard":
      return new MembershipBusyError(id, refusal.reason);
    case "invalid":
      return new RaftRequestError("invalid", `request refused: ${refusal.detail}`);
  }
}

/**
 * The index a service's durable state reflects (`RaftNodeOptions.applied`),
 * checked against what Raft stored: the service applied only entries Raft
 * had made durable, and Raft compacts a stored state's log (a data-less
 * snapshot) only through what the state had made durable. A state beyond
 * the stored log, or behind such a compaction, means one of the two lost
 * what it had made durable.
 *
 * @example
 * ```ts
 * import { checkApplied } from "./node_helpers.ts";
 *
 * const meta = { index: 4, term: 1, membership: { voters: ["a"], learners: [] } };
 * checkApplied(4, { snapshot: { meta, data: new Uint8Array() }, entries: [] }); // 4
 * ```
 */
export function checkApplied(
  applied: number | undefined,
  stored: { snapshot: Snapshot; entries: Entry[] },
): number {
  if (applied === undefined) return 0;
  if (!Number.isSafeInteger(applied) || applied < 0) {
    throw new ArgumentsError(`applied must be a non-negative integer, not ${applied}`);
  }
  const { snapshot, entries } = stored;
  const lastIndex = entries.at(-1)?.index ?? snapshot.meta.index;
  if (snapshot.meta.index > applied && snapshot.data.length === 0) {
    throw new StorageLossError(
      `of node state (the service's)`,
      `the service's stored state reflects the log up to ${applied}, but the log was compacted ` +
        `through ${snapshot.meta.index} on the word that the state was durable that far`,
    );
  }
  if (applied > lastIndex) {
    throw new StorageLossError(
      `of node log`,
      `the service's stored state reflects the log up to ${applied}, but the stored log ends at ` +
        `${lastIndex}: the service applied only entries the log had made durable`,
    );
  }
  return applied;
}

/**
 * What a node starts from: its stored state (with a snapshot its service
 * switched to recorded, see `recordInstalled`), its snapshot (a new node's
 * initial membership, stored as an empty snapshot at index 0 so that it
 * survives a restart before any entry arrives), and the service's applied
 * index, checked (see {@linkcode checkApplied}). The checks run on what the
 * storage read before it repairs anything (`LoadOptions.accept`): a store
 * refused is left as it was found, and a second start refuses it alike.
 *
 * @example
 * ```ts ignore
 * const { stored, snapshot, applied } = await loadStored(options);
 * ```
 */
export async function loadStored(
  options: RaftNodeOptions,
): Promise<{ stored: StoredState; snapshot: Snapshot; applied: number }> {
  checkPeers(options.peers);
  const { storage } = options;
  const meta = options.snapshotSink?.installed();
  const accept = (loaded: StoredState) => {
    const state = installedState(loaded, meta);
    const snapshot = state.snapshot ?? initialSnapshot(options.peers);
    checkApplied(options.applied, { snapshot, entries: state.entries });
  };
  const stored = await recordInstalled(storage, { stored: await storage.load({ accept }), meta });
  let snapshot = stored.snapshot;
  if (snapshot === undefined) {
    snapshot = initialSnapshot(options.peers);
    await storage.save({ snapshot, entries: [], resetLog: false });
  }
  // Checked again on what the node starts from (a storage wrapper may not pass `accept` on).
  const applied = checkApplied(options.applied, { snapshot, entries: stored.entries });
  return { stored, snapshot, applied };
}

/** A new node's snapshot: its initial membership at index 0, no data. */
function initialSnapshot(peers: NodeId[]): Snapshot {
  return {
    meta: { index: 0, term: 0, membership: { voters: [...peers], learners: [] } },
    data: new Uint8Array(),
  };
}

/**
 * A peer's answers, parsed; a malformed one is as good as lost.
 *
 * @example
 * ```ts
 * import { parseReplies } from "./node_helpers.ts";
 *
 * parseReplies([{ nonsense: true }]).length; // 0
 * ```
 */
export function parseReplies(replies: unknown): Message[] {
  const parsed: Message[] = [];
  for (const reply of Array.isArray(replies) ? replies : []) {
    try {
      parsed.push(parseMessage(reply));
    } catch {
      continue;
    }
  }
  return parsed;
}

/**
 * Whether two hard states are the same (`b` undefined: nothing saved yet).
 *
 * @example
 * ```ts
 * import { sameHardState } from "./node_helpers.ts";
 *
 * sameHardState({ term: 1, vote: null, commit: 0 }, undefined); // false
 * ```
 */
export function sameHardState(a: HardState, b: HardState | undefined): boolean {
  return b !== undefined && a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** What {@linkcode streamHost} needs of the node beside its id and source. */
export interface StreamHostParts {
  /** The largest chunk (`snapshotChunkBytes`); default 512 KiB. */
  chunkBytes: number | undefined;
  /** The most bytes of chunks in flight (`snapshotWindowBytes`); default four chunks. */
  windowBytes: number | undefined;
  /** The node's core. */
  core: RaftCore;
  /** Whether the node still runs. */
  live(): boolean;
  /**
   * Sends a message and resolves with its parsed answers; `queued`: the
   * calls ahead of it the peer answers first (its timeout is that many
   * times longer).
   */
  call(m: Message, options?: { queued: number }): Promise<Message[]>;
  /** Steps a message into the core. */
  step(m: Message): void;
  /** Has the node take what the core has ready. */
  kick(): void;
  /** Where a stream that fails reading this node's state is told (default: nowhere). */
  logger?: Logger;
  /** Stops the node for `err` (its own state is damaged); default: the stream is only retried. */
  fail?(err: Error): void;
}

/**
 * The host a node's snapshot streamer runs on: it reads metas from the
 * core while the node leads in the stream's term, and hands the core the
 * answers it must see.
 *
 * @example
 * ```ts ignore
 * const streamer = new SnapshotStreamer(streamHost("a", source, parts));
 * ```
 */
export function streamHost(id: NodeId, source: SnapshotSource, parts: StreamHostParts): StreamHost {
  const { core, live } = parts;
  return {
    id,
    source,
    chunkBytes: parts.chunkBytes ?? 512 * 1024,
    ...(parts.windowBytes === undefined ? {} : { windowBytes: parts.windowBytes }),
    // Undefined too for a state outside the log's reach: a snapshot this node received and has
    // not handed its service yet is beyond it (the stream is tried again later).
    meta: (index, term) =>
      live() && core.role === "leader" && core.term === term &&
        index >= core.snapshotIndex && index <= core.appliedIndex
        ? core.snapshotMeta(index)
        : undefined,
    call: (m: SnapshotMessage, options) => parts.call(m, options).catch(() => []),
    log: {
      get snapshotIndex() {
        return core.snapshotIndex;
      },
      get lastIndex() {
        return core.lastIndex;
      },
      match: (peer) => core.role === "leader" ? core.matchIndexes().get(peer) : undefined,
    },
    step: (m) => {
      if (!live()) return;
      parts.step(m);
      parts.kick();
    },
    failed: (peer, err) => {
      if (!live()) return;
      // A damaged store is not read again and again while this node leads on it: the node stops,
      // as it does when an apply meets damage, so that a member with an intact state leads.
      if (err instanceof StorageCorruptionError && parts.fail) {
        parts.logger?.log(
          "error",
          `Raft node ${id}: the snapshot stream to ${peer} could not read this node's state`,
          { node: id, peer },
        );
        parts.fail(err);
        return;
      }
      // Not only a peer gone: a state this node cannot read is retried for good, so it is said
      // each time (cfsim31 found it silent).
      if (err !== undefined) {
        parts.logger?.log(
          "error",
          `Raft node ${id}: the snapshot stream to ${peer} failed: ${
            (err as Error)?.message ?? err
          }; ` +
            "it starts again later",
          { node: id, peer },
        );
      }
      core.reportUnreachable(peer, "snapshot");
      parts.kick();
    },
  };
}

/** Someone waiting for the entry at an index (`RaftNode.waitApplied`); term -1: any entry. */
export interface IndexWaiter {
  /** The term the entry must have, or -1. */
  term: number;
  /** Called when the entry is applied. */
  resolve: () => void;
  /** Called when another entry took the index, or a snapshot covered it unseen. */
  reject: (err: Error) => void;
}

/**
 * Settles a waiter for `index`; `term` undefined means the outcome is covered by a snapshot.
 *
 * @example
 * ```ts
 * import { settleIndexWaiter } from "./node_helpers.ts";
 *
 * settleIndexWaiter({ term: 2, resolve: () => {}, reject: (e) => console.log(e.message) }, 5, 3);
 * ```
 */
export function settleIndexWaiter(w: IndexWaiter, index: number, term: number | undefined): void {
  if (w.term === -1 || w.term === term) w.resolve();
  else if (term === undefined) {
    w.reject(
      new RaftRequestError(
        "compacted",
        `entry ${index} was compacted into a snapshot before this node saw it; its outcome is unknown here`,
      ),
    );
  } else {
    w.reject(
      new RaftRequestError(
        "overwritten",
        `entry ${index} was overwritten by a new leader (term ${term}); propose it again`,
      ),
    );
  }
}

/**
 * Refuses initial voters that list one twice: its vote and its log would
 * count twice (with `[a, a, b]`, `a` alone is a majority and commits what
 * no other node has).
 *
 * @throws {RangeError} naming the voter listed twice.
 */
export function checkPeers(peers: readonly string[]): void {
  const twice = peers.find((p, i) => peers.indexOf(p) !== i);
  if (twice !== undefined) {
    throw new RangeError(
      `peers lists ${JSON.stringify(twice)} twice; each voter must be listed once`,
    );
  }
}
