/**
 * The shard controller and the sharded key/value service with live
 * migration: 6.824's lab 5 (shardctrler and shardkv).
 *
 * - {@linkcode ShardController} / {@linkcode ShardControllerClerk}: the shard
 *   controller (6.824's shardctrler), a replicated configuration service
 *   (join, leave, move, query) with deterministic, balanced and minimal
 *   rebalancing ({@linkcode rebalance}); every configuration is kept.
 * - {@linkcode ShardGroupServer}: a server of one replica group (6.824's
 *   shardkv server); serves the shards its group owns and migrates shards,
 *   one configuration at a time.
 * - {@linkcode ShardClerk}: the client; routes keys to groups by shard
 *   ({@linkcode keyToShard}).
 * - {@linkcode startShardNode} / {@linkcode connectShard}: node processes
 *   over TCP with Deno KV storage.
 *
 * What it is not: a second replication layer. Both the controller and the
 * groups are `Replica`s of the replication toolkit (`/rsm`), and the groups
 * keep the key/value data model of `/kv`; this module adds configurations,
 * routing and migration. Transactions across shards are not offered.
 *
 * @example
 * ```ts
 * import { initialConfig, joinGroups, leaveGroups } from "@distkit/distkit/shard";
 *
 * const c1 = joinGroups(initialConfig(), { 100: ["a", "b", "c"], 101: ["d", "e", "f"] });
 * c1.shards; // [100, 100, 100, 100, 100, 101, 101, 101, 101, 101]
 * const c2 = leaveGroups(c1, [100]);
 * c2.shards.every((gid) => gid === 101); // true
 * ```
 *
 * @module
 */
export * from "./config.ts";
export * from "./controller.ts";
// The controller's state machine and its command parser are internal (ShardGroupServer exposes its state).
export type { ControllerResult } from "./controller_state.ts";
export * from "./group.ts";
export * from "./group_probe.ts";
export * from "./group_state.ts";
export * from "./stored_group_state.ts";
export * from "./clerk.ts";
export * from "./errors.ts";
export * from "./node.ts";
// A group server's state kind (`ShardNodeOptions.state`), and its refusal.
export { type StateKind, StateKindError } from "../rsm/mod.ts";
// The request error family ShardGroupTimeoutError belongs to.
export {
  RequestAbortedError,
  type RequestAbortedErrorOptions,
  RequestTimeoutError,
  type RequestTimeoutErrorOptions,
  type ServerAttempt,
  ServiceError,
} from "../rsm/mod.ts";
// Types from the kv, net and raft layers that appear in this module's signatures.
export type {
  KvCommand,
  KvLimits,
  KvPage,
  KvResult,
  KvStateMachine,
  KvValue,
  KvWrite,
} from "../kvstate/mod.ts";
export type {
  Replica,
  ReplicaClientOptions,
  ReplicaOptions,
  ReplicaReply,
  ReplicaServeOptions,
  ReplicaStats,
  ReplicaStatus,
  ValuesInLogOptions,
  WriteOutcome,
} from "../rsm/mod.ts";
export type {
  Clock,
  Codec,
  LogFields,
  Logger,
  LogLevel,
  MemberHello,
  MemberOptions,
  Random,
  TcpClient,
  TcpClientOptions,
  Transport,
} from "../net/mod.ts";
export type { RaftNode } from "../raft/mod.ts";
// The storage a group's state may live in (`ShardGroupOptions.stateStore`).
export type {
  AppliedPoint,
  EndEntryOptions,
  KvAtomicLike,
  KvLike,
  KvListIteratorLike,
  LoggedValues,
  LogLocation,
  StateBatch,
  StateInstall,
  StateListOptions,
  StatePage,
  StatePagesOptions,
  StateReader,
  StateRow,
  StateStore,
  StateStoreOptions,
  StateValue,
  StateView,
  StoredMachine,
  ValueInLog,
} from "../rsm/mod.ts";
// What RaftNodeOptions takes from the network and for logging.
export type { RaftPeerEnd, RaftRpcHost, RaftTransport } from "../raft/mod.ts";

// Types of other modules in this module's signatures (deno doc --lint of this entry point alone).
export type {
  BackoffOptions,
  CallContext,
  CallOptions,
  ClientEnd,
  ClusterOptions,
  RpcServer,
  ServiceMethods,
  Timer,
} from "../net/mod.ts";
export type {
  Applied,
  CoreOptions,
  Entry,
  EntryKind,
  HardState,
  LoadOptions,
  Membership,
  MembershipChange,
  NodeId,
  RaftNodeOptions,
  RaftObserver,
  RaftStatus,
  RaftStorage,
  Role,
  Snapshot,
  SnapshotMeta,
  SnapshotSink,
  SnapshotSource,
  SnapshotStream,
  StorageBatch,
  StoredState,
} from "../raft/mod.ts";
