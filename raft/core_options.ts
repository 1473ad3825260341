/**
 * Tuning of the Raft core, and its defaults.
 *
 * @module
 */
import { invariant, type RaftObserver } from "./invariant.ts";

/**
 * Tuning of the Raft core. Times are in ticks; the driver decides how long a
 * tick is.
 *
 * @example
 * ```ts
 * import type { CoreOptions } from "@distkit/distkit/raft";
 *
 * const options: CoreOptions = { electionTicks: 10, heartbeatTicks: 2, preVote: true, checkQuorum: true };
 * ```
 */
export interface CoreOptions {
  /** A follower waits a random [electionTicks, 2·electionTicks) ticks without a leader before campaigning. Default 10. */
  electionTicks?: number;
  /** The leader sends heartbeats every this many ticks. Default 1. */
  heartbeatTicks?: number;
  /** Ask for PreVotes before a real election, so a rejoining node cannot disrupt a leader. Default true. */
  preVote?: boolean;
  /** A leader that has not heard from a quorum for an election timeout steps down. Default true. */
  checkQuorum?: boolean;
  /** Append messages in flight per follower while replicating. Default 16. */
  maxInflight?: number;
  /**
   * Bytes of entries (estimated) in flight per follower while replicating;
   * one append is always allowed. Bounds what a follower receives and must
   * write in one turn. Default 4 MiB.
   */
  maxInflightBytes?: number;
  /** Largest total command size (bytes, estimated) in one append message. Default 1 MiB. */
  maxAppendBytes?: number;
  /**
   * Most entries in one append message. A follower decodes and writes an
   * append in one turn of its event loop: 1 MiB of small entries (≈10,000)
   * held a catching-up follower deaf for 100–300 ms. Default 512.
   */
  maxAppendEntries?: number;
  /** Snapshot chunk size in bytes. Default 512 KiB. */
  snapshotChunkBytes?: number;
  /**
   * A follower hands the chunks of a snapshot out in its ready
   * (`Ready.streamed`), to be written into the service's store as they
   * arrive, instead of gathering them in memory. `RaftNode` sets it when it
   * has a `snapshotSink`. Default false.
   */
  streamSnapshots?: boolean;
  /** Append a no-op entry on election, so the new leader can commit and serve reads. Default true. */
  leaderNoop?: boolean;
  /**
   * Told of leaders, applies and log truncations, for checks across a whole
   * simulated run (`AppliedLedger`). Default: none.
   */
  observer?: RaftObserver;
  /**
   * A log index the cluster is known to have committed: the node does not
   * campaign while its log ends below it. A service that learns from its
   * peers of a committed membership change this node's log lacks (a node
   * removed, then added back on a new data folder: see `rsm/identity.ts`)
   * passes it, so that a node still on the older membership never wins an
   * election with the votes of the re-added node's new folder, counted in
   * the removed folder's place. Any majority holds the committed entry, so
   * some node of it may still campaign. Default: none.
   */
  campaignAfter?: () => number;
  /**
   * The incarnation of this node's data folder (random, made with the
   * folder: see `rsm/identity.ts`). With it, every message says which folder
   * sent it; a leader binds each voter to the folder it heard from (when
   * the voter is promoted; founding voters as soon as it has heard from
   * them), and a node counts a bound voter's votes and acknowledgements only
   * from that folder. A voter whose folder was lost or replaced is then not
   * counted in its old folder's place, whatever else trusts it. Default:
   * none (nothing is bound: tests and services without data folders).
   */
  incarnation?: string;
  /**
   * The folder joined an existing cluster (`kv serve --join`) rather than
   * founding one. Its messages say so, and a node counts its votes and
   * acknowledgements as a voter's only where a membership binds the voter to
   * it, never in the place of a founding voter not bound yet; it campaigns
   * only once its own log binds it. Default false.
   */
  joined?: boolean;
}

/** {@linkcode CoreOptions} with every default filled in. */
export type ResolvedCoreOptions =
  & Required<Omit<CoreOptions, "observer" | "campaignAfter" | "incarnation">>
  & {
    observer: RaftObserver | undefined;
    campaignAfter: (() => number) | undefined;
    incarnation: string | undefined;
  };

/**
 * Fills in the defaults of {@linkcode CoreOptions} and checks the result.
 *
 * @example
 * ```ts
 * import { resolveCoreOptions } from "./core_options.ts";
 *
 * resolveCoreOptions({ electionTicks: 20 }).heartbeatTicks; // 1
 * ```
 */
export function resolveCoreOptions(options: CoreOptions): ResolvedCoreOptions {
  const resolved: ResolvedCoreOptions = {
    electionTicks: options.electionTicks ?? 10,
    heartbeatTicks: options.heartbeatTicks ?? 1,
    preVote: options.preVote ?? true,
    checkQuorum: options.checkQuorum ?? true,
    maxInflight: options.maxInflight ?? 16,
    maxInflightBytes: options.maxInflightBytes ?? 4 * 1024 * 1024,
    maxAppendBytes: options.maxAppendBytes ?? 1024 * 1024,
    maxAppendEntries: options.maxAppendEntries ?? 512,
    snapshotChunkBytes: options.snapshotChunkBytes ?? 512 * 1024,
    leaderNoop: options.leaderNoop ?? true,
    streamSnapshots: options.streamSnapshots ?? false,
    observer: options.observer,
    campaignAfter: options.campaignAfter,
    incarnation: options.incarnation,
    joined: options.joined ?? false,
  };
  invariant(
    resolved.heartbeatTicks < resolved.electionTicks,
    "heartbeatTicks must be below electionTicks",
  );
  invariant(
    resolved.maxAppendEntries >= 1 && resolved.maxInflightBytes >= 1,
    "maxAppendEntries and maxInflightBytes must be at least 1",
  );
  return resolved;
}
