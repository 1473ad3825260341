/**
 * Raft consensus (6.824's labs 3A to 3D): a replicated log a service puts
 * its commands on.
 *
 * - {@linkcode RaftCore} is the algorithm as a pure state machine (messages
 *   and ticks in; entries to persist, messages to send and committed entries
 *   out), in the style of etcd's raft. It implements elections with PreVote
 *   and CheckQuorum, log replication with fast back-off and pipelining,
 *   snapshots sent in chunks, ReadIndex reads, leadership transfer and
 *   one-server membership changes with learners.
 * - {@linkcode RaftNode} drives a core over any transport (a
 *   {@linkcode RaftTransport}: `net`'s `Transport` is one) with any
 *   {@linkcode RaftStorage}: nothing it says depends on state that is not
 *   yet durable. It is the course's `Make`/`Start`/`applyCh` peer.
 * - The core's parts live in their own files, as in etcd's raft: the log
 *   (`log.ts`), per-follower progress with its in-flight ring buffer
 *   (`progress.ts`, `inflights.ts`), ReadIndex state (`read_only.ts`),
 *   membership changes (`confchange.ts`) and snapshots sent in chunks
 *   (`snapshot_send.ts`, `snapshot_receive.ts`).
 * - {@linkcode MemoryStorage} keeps state in memory with crash semantics for
 *   tests (6.824's Persister); {@linkcode SimStorage} adds, for simulations,
 *   writes that take virtual time, saves split into commits, crashes part
 *   way through a save, and damage found at start-up (bit flips, lost
 *   saves); {@linkcode DenoKvStorage} is the durable one.
 *
 * What it is not: a service. It orders opaque commands and knows nothing of
 * what they mean, of clients, sessions or duplicate requests; that is the
 * replication toolkit's job (`/rsm`).
 *
 * @example
 * ```ts
 * import { MemoryStorage, RaftNode } from "@distkit/distkit/raft";
 * import { delay, RpcServer, simulate } from "@distkit/distkit/net";
 *
 * await simulate(async ({ net, clock, random }) => {
 *   const server = new RpcServer();
 *   net.addServer("solo", server);
 *   const node = await RaftNode.start({
 *     id: "solo", peers: ["solo"], server, transport: net.transportFor("solo"),
 *     storage: new MemoryStorage(), clock, random,
 *   });
 *   while (node.status().role !== "leader") await delay(50, { clock });
 *   const { index } = await node.propose({ op: "put", key: "x", value: 1 });
 *   await node.waitApplied(index);
 *   await node.stop();
 * }, { seed: 1 });
 * ```
 *
 * @module
 */
export * from "./types.ts";
export * from "./core.ts";
export type { CoreOptions } from "./core_options.ts";
export type { InitialState, Ready, Reply } from "./ready.ts";
export type { MembershipChange } from "./confchange.ts";
export type { ReadState } from "./read_only.ts";
export * from "./node.ts";
export * from "./node_options.ts";
export * from "./storage.ts";
export * from "./errors.ts";
export { AppliedLedger, RaftInvariantError, type RaftObserver } from "./invariant.ts";
// Types from the net layer that appear in this module's signatures.
export type { Clock, Timer } from "../net/clock.ts";
export type { Codec } from "../net/codec.ts";
export type { Random } from "../net/random.ts";
export type { LogFields, Logger, LogLevel } from "../net/logger.ts";
export * from "./kv_storage.ts";
export * from "./segment_storage.ts";
export * from "./segment_choice.ts";
export {
  realSegmentFs,
  type SegmentFile,
  type SegmentFs,
  type SegmentOpenOptions,
} from "./segment_fs.ts";
// The database a DenoKvStorage is in (`DenoKvStorage.database`), shared by a node's state store.
export type { KvAtomicLike, KvLike, KvListIteratorLike } from "../store/kv_like.ts";
export * from "../store/storage_errors.ts";
// Where a segment log locates an entry's record (`SegmentLogStorage.locate`).
export type { LogLocation } from "../store/log_location.ts";
export type { SnapshotSource, SnapshotStream } from "./snapshot_stream.ts";
export { type StreamedChunk, UNKNOWN_SIZE } from "./snapshot_receive.ts";
export type { SnapshotSink } from "./snapshot_install.ts";
export { SimStorage, type SimStorageOptions, type StorageDamage } from "./sim_storage.ts";
export {
  SECTOR_BYTES,
  SimFs,
  type SimFsCrashOptions,
  type SimFsDamage,
  type SimFsDamageOptions,
  type SimFsOptions,
  type SimFsStats,
} from "./sim_fs.ts";
export {
  EMPTY_FLOOR,
  type Floor,
  HighWaterMark,
  type HighWaterMarkOptions,
  MarkCorruptionError,
  SLOT_BYTES,
} from "./high_water_mark.ts";
