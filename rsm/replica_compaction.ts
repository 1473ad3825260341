/**
 * When a replica snapshots (a machine in memory) or compacts its log (a
 * stored machine), and how far.
 *
 * - In memory: once the persisted Raft state reaches the threshold
 *   (`snapshotThreshold`: `maxRaftState`, or `snapshotLogRatio` × the last
 *   snapshot's size when larger), the whole state is encoded and Raft
 *   compacts its log through the applied index.
 * - Stored (issue 19): compacting encodes nothing, so it costs only the log
 *   it drops. Once the log has grown by `maxRaftState` bytes since the last
 *   compaction, it is compacted through the durable applied index, keeping
 *   a tail of the most recent entries for slightly lagging followers
 *   ({@linkcode LOG_TAIL_ENTRIES}, as etcd keeps 5,000, and at most
 *   `maxRaftState` bytes of them): the log held (in memory and on disk)
 *   stays within about 2 × `maxRaftState` whatever the state's size.
 *   Entries not yet stored (staged in batches, or not yet applied) may hold
 *   a compaction back: it is then tried again as they are stored, and
 *   staged ones are stored at once rather than at their batch's bound.
 *   Followers further behind are streamed the stored state.
 *   `snapshotLogRatio` has no effect (a compaction writes no state).
 * - Stored, while a follower catches up from a stream (the leader's
 *   `RaftStatus.catchUpIndex`): the log is not compacted past what it needs
 *   (the stream's index, then the entries after it), else it would be
 *   streamed a newer state, and under steady writes with a state that takes
 *   long to stream, for ever. Bounded: held so, the log may grow to
 *   {@linkcode CATCH_UP_LOG_FACTOR} × `maxRaftState`; past that it is
 *   compacted as usual (logged), and the follower's stream starts again.
 *
 * @module
 */
import type { Clock } from "../net/clock.ts";
import type { Logger } from "../net/logger.ts";
import { type RaftNode, RaftStoppedError } from "../raft/mod.ts";
import type { ExactlyOnce } from "./exactly_once.ts";
import { encodeSnapshot } from "./replica_snapshot.ts";
import { firstSnapshotAt, nextSnapshotAfterInstall, snapshotThreshold } from "./replica_sizing.ts";
import type { ReplicaMachine, ReplicaOptions } from "./replica_types.ts";

/**
 * The compaction host's parts for a stored machine's applier: its durable
 * index, and storing what it staged now.
 *
 * @example
 * ```ts ignore
 * const policy = new CompactionPolicy({ ...host, ...storedHost(applier) });
 * ```
 */
export function storedHost(
  applier: { readonly durableIndex: number; storeSoon(): void },
): Pick<CompactionHost<unknown>, "durableIndex" | "storeSoon"> {
  return { durableIndex: () => applier.durableIndex, storeSoon: () => applier.storeSoon() };
}

/** Entries a stored replica keeps after compacting, at most (etcd's `SnapshotCatchUpEntries`). */
export const LOG_TAIL_ENTRIES = 5000;

/**
 * Where a stored replica compacts: through the durable index, but not into
 * the kept tail; undefined when that drops nothing.
 *
 * @param log The log's bounds (`snapshotIndex`, `lastIndex`) and its persisted bytes.
 * @param options The durable applied index, the byte budget of the tail, and its entry bound.
 *
 * @example
 * ```ts
 * import { storedCompactionIndex } from "./replica_compaction.ts";
 *
 * // 10,000 entries of 100 bytes; the tail keeps 4 MiB or 5,000 entries: 5,000.
 * storedCompactionIndex(
 *   { snapshotIndex: 0, lastIndex: 10_000, bytes: 1_000_000 },
 *   { durable: 10_000, tailBytes: 4 << 20 },
 * ); // 5000
 * ```
 */
export function storedCompactionIndex(
  log: { snapshotIndex: number; lastIndex: number; bytes: number },
  options: { durable: number; tailBytes: number; tailEntries?: number },
): number | undefined {
  const entries = log.lastIndex - log.snapshotIndex;
  if (entries <= 0) return undefined;
  const average = Math.max(1, log.bytes / entries);
  const tail = Math.min(
    options.tailEntries ?? LOG_TAIL_ENTRIES,
    Math.floor(Math.max(0, options.tailBytes) / average),
  );
  const index = Math.min(options.durable, log.lastIndex - tail);
  return index > log.snapshotIndex ? index : undefined;
}

/**
 * How many times `maxRaftState` of log a leader may hold for a follower
 * catching up from a stream (twice what it holds otherwise, at most).
 */
export const CATCH_UP_LOG_FACTOR = 4;

/**
 * Where a stored replica compacts, given the index its log must keep for a
 * follower catching up from a stream (`catchUp.index`, from
 * `RaftStatus.catchUpIndex`): not past it while the log holds at most
 * `catchUp.maxBytes`; past that, where it would otherwise (`passes`: the
 * follower's stream starts again from a newer state).
 *
 * @param index Where it would compact otherwise ({@linkcode storedCompactionIndex}).
 * @param log The log's start (`snapshotIndex`) and its persisted bytes.
 * @param catchUp The index kept for catch-up, if any, and the log's bound while it is kept.
 *
 * @example
 * ```ts
 * import { catchUpCompactionIndex } from "./replica_compaction.ts";
 *
 * const log = { snapshotIndex: 100, bytes: 9_000 };
 * catchUpCompactionIndex(500, log, { index: 300, maxBytes: 16_000 }); // { index: 300, passes: false }
 * catchUpCompactionIndex(500, log, { index: 300, maxBytes: 8_000 }); // { index: 500, passes: true }
 * ```
 */
export function catchUpCompactionIndex(
  index: number | undefined,
  log: { snapshotIndex: number; bytes: number },
  catchUp: { index: number | undefined; maxBytes: number },
): { index: number | undefined; passes: boolean } {
  const kept = catchUp.index;
  if (index === undefined || kept === undefined || index <= kept) return { index, passes: false };
  if (log.bytes > catchUp.maxBytes) return { index, passes: true };
  return { index: kept > log.snapshotIndex ? kept : undefined, passes: false };
}

/** What the policy needs of its replica. */
export interface CompactionHost<R> {
  options: ReplicaOptions;
  raft: RaftNode;
  machine: ReplicaMachine<R>;
  once: ExactlyOnce<R> | undefined;
  clock: Clock;
  logger: Logger;
  /** The replica's applied index (the machine's state is as of it). */
  applied: () => number;
  /** For a stored machine: the index its stored state reflects. */
  durableIndex?: () => number;
  /** For a stored machine: store the entries applied so far now, not at their batch's bound. */
  storeSoon?: () => void;
  /** Whether the replica stopped (a failure then is no news). */
  stopped: () => boolean;
  /** Counts a snapshot (or compaction) begun. */
  counted: () => void;
}

/**
 * A replica's snapshot and compaction policy (see the module doc).
 *
 * @example
 * ```ts ignore
 * const policy = new CompactionPolicy(host);
 * policy.maybe(appliedIndex); // after each item applied
 * ```
 */
export class CompactionPolicy<R> {
  readonly #host: CompactionHost<R>;
  /** The Raft state size that triggers the next snapshot or compaction (negative: never). */
  #at: number;
  #running = false;

  /**
   * Creates the policy, with its first threshold.
   *
   * @param host The replica's parts.
   */
  constructor(host: CompactionHost<R>) {
    this.#host = host;
    const { options } = host;
    this.#at = host.durableIndex
      ? snapshotThreshold(options, 0)
      : firstSnapshotAt(options, options.storage.snapshotSize());
  }

  /** The leader's snapshot replaced the log: the next turn is this replica's own. */
  installed(snapshotBytes: number): void {
    const { options, raft } = this.#host;
    this.#at = this.#host.durableIndex
      ? options.storage.raftStateSize() + snapshotThreshold(options, 0)
      : nextSnapshotAfterInstall(options, { leader: raft.status().leader, snapshotBytes });
  }

  /** Snapshots or compacts if the log has reached the threshold (after an entry is applied or stored). */
  maybe(): void {
    const { options, raft } = this.#host;
    if (this.#at < 0 || this.#running) return;
    if (options.storage.raftStateSize() < this.#at) return;
    const applied = this.#host.applied();
    if (applied <= raft.status().snapshotIndex) return;
    if (this.#host.durableIndex) this.#compact();
    else this.#snapshot(applied);
  }

  #compact(): void {
    const { options, raft } = this.#host;
    const status = raft.status();
    const log = {
      snapshotIndex: status.snapshotIndex,
      lastIndex: status.lastIndex,
      bytes: options.storage.raftStateSize(),
    };
    const tailBytes = snapshotThreshold(options, 0);
    const durable = this.#host.durableIndex!();
    const catchUp = { index: status.catchUpIndex, maxBytes: CATCH_UP_LOG_FACTOR * tailBytes };
    /** Where it compacts were the state stored through `stored`. */
    const through = (stored: number) =>
      catchUpCompactionIndex(
        storedCompactionIndex(log, { durable: stored, tailBytes }),
        log,
        catchUp,
      );
    const { index, passes } = through(durable);
    if (passes) {
      this.#host.logger.log(
        "warn",
        `compaction passes the index ${catchUp.index} a follower catching up from a stream ` +
          `needs: the log holds ${log.bytes} bytes, over ${CATCH_UP_LOG_FACTOR} × maxRaftState; ` +
          "its stream starts again from a newer state",
        { node: raft.id },
      );
    }
    // What is not stored yet (entries staged, or not yet applied), or a follower catching up, may
    // hold the log back: the threshold then stays where it is, so that the log is compacted again
    // as they are stored (which calls `maybe`) or as it catches up (asked at each entry applied),
    // not only once it has grown by another threshold. Entries staged are stored now, not at their
    // batch's bound (250 ms), when that lets the log be compacted further. So a log fed in a burst,
    // or slowly, stays within its bound.
    const heldBack =
      (storedCompactionIndex(log, { durable: log.lastIndex, tailBytes }) ?? 0) > (index ?? 0);
    const applied = this.#host.applied();
    if (durable < applied && (through(applied).index ?? 0) > (index ?? 0)) {
      this.#host.storeSoon?.();
    }
    // Nothing to drop yet (the state is being stored, or the tail is all): tried again as
    // entries are applied or stored.
    if (index === undefined) return;
    const at = this.#at;
    this.#run(
      raft.compact(index).then(() =>
        heldBack ? at : options.storage.raftStateSize() + snapshotThreshold(options, 0)
      ),
    );
  }

  #snapshot(index: number): void {
    const { options, raft, machine, once, clock } = this.#host;
    this.#run(
      encodeSnapshot(machine, { once, clock }).then(async (bytes) => {
        await raft.snapshot(index, bytes);
        return snapshotThreshold(options, bytes.byteLength);
      }),
    );
  }

  /** Runs one snapshot or compaction; `next` is the threshold after it. */
  #run(work: Promise<number>): void {
    const host = this.#host;
    const { options } = host;
    this.#running = true;
    host.counted();
    work.then((next) => void (this.#at = next))
      // Stopped: the next start snapshots if needed. Failed (a state over the codec's limit): tried
      // a threshold of log later; at once, it was encoded again without end (issue 16).
      .catch((err) => {
        if (host.stopped() || err instanceof RaftStoppedError) return;
        this.#at = options.storage.raftStateSize() +
          snapshotThreshold(options, options.storage.snapshotSize());
        host.logger.log("error", "snapshot failed", { node: host.raft.id, error: `${err}` });
      })
      .finally(() => {
        this.#running = false;
        // Entries applied meanwhile found a snapshot in progress: an idle log applies no more.
        if (!host.stopped()) this.maybe();
      });
  }
}
