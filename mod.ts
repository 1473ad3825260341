/**
 * distkit: build, run and test fault-tolerant distributed systems in Deno,
 * the systems of MIT 6.824 (Raft, a replicated key/value service, the shard
 * controller and sharded KV, MapReduce, primary/backup) to production grade.
 *
 * The root exports what a user starts from: the simulation (`simulate`, the
 * simulated network, the virtual clock and seeded random source), RPC and
 * TCP, a Raft node and its storages, the replication toolkit (`Replica`,
 * `ReplicaClient`, `hostNode`), each service's server, client and node
 * process, the MapReduce runner and the linearizability checker, and the
 * types in their signatures. Everything else (the pure Raft core, protocol
 * parsers, the view service, the other checker models...) is in the
 * sub-paths, one per folder: `@distkit/distkit/net`, `/raft`, `/rsm`, `/kv`,
 * `/shard`, `/mapreduce`, `/checker`, `/pb`, and `/cli` for the command line.
 *
 * @example
 * ```ts
 * import { RpcServer, simulate } from "@distkit/distkit";
 *
 * await simulate(async ({ net }) => {
 *   const server = new RpcServer();
 *   server.addService("Hello", { Greet: (name: string) => `hello, ${name}` });
 *   net.addServer("s", server);
 *   const end = net.makeEnd("c");
 *   net.connect("c", "s");
 *   net.enable("c", true);
 *   console.log(await end.call("Hello.Greet", "world"));
 * }, { seed: 1 });
 * ```
 *
 * @module
 */
// net: simulation, RPC, TCP, addresses, logging.
export {
  Random,
  realClock,
  RpcError,
  RpcServer,
  serveTcp,
  SimEnd,
  SimNetwork,
  simulate,
  TcpClient,
  TcpTransport,
  VirtualClock,
} from "./net/mod.ts";
export type {
  CallContext,
  CallOptions,
  ClientEnd,
  Clock,
  ClusterOptions,
  EndOptions,
  LinkRule,
  LogFields,
  Logger,
  LogLevel,
  MemberHello,
  MemberOptions,
  RpcErrorCode,
  RunOptions,
  ServeTcpOptions,
  ServiceMethods,
  SimEvent,
  SimulateOptions,
  Simulation,
  TcpAddr,
  TcpServer,
  Timer,
  Transport,
} from "./net/mod.ts";
// raft: the Raft node and its storages.
export { DenoKvStorage, MemoryStorage, RaftNode } from "./raft/mod.ts";
export type { KvAtomicLike, KvLike, KvListIteratorLike } from "./raft/mod.ts";
export type {
  Applied,
  Entry,
  EntryKind,
  HardState,
  LoadOptions,
  Membership,
  MembershipChange,
  NodeId,
  RaftLogKind,
  RaftStatus,
  RaftStorage,
  Role,
  Snapshot,
  SnapshotMeta,
  StorageBatch,
  StoredState,
} from "./raft/mod.ts";
// rsm: the replicated-state-machine toolkit every service is built on.
export {
  AttemptLog,
  hostNode,
  IdentityConflictError,
  mayHaveApplied,
  NodeIdentity,
  OutcomeUnknownError,
  Replica,
  ReplicaClient,
  ServiceError,
} from "./rsm/mod.ts";
export type {
  AppliedOptions,
  FinalReply,
  HostNodeOptions,
  IdentityGossip,
  NodeHost,
  ReplicaCallOptions,
  ReplicaClientOptions,
  ReplicaMachine,
  ReplicaReply,
  ReplicaServeOptions,
  ReplicaStats,
  Retirement,
  ServerAttempt,
  Session,
  StartMode,
  ValuesInLogOptions,
  WriteAttempts,
} from "./rsm/mod.ts";
// kvstate: the key/value data model (values and limits).
export type { KvLimits, KvReply, KvResult, KvValue } from "./kvstate/mod.ts";
// kv: the replicated key/value service (6.824's kvraft).
export { connectKv, KvClerk, KvServer, startKvNode, StateKindError } from "./kv/mod.ts";
export type {
  CasOutcome,
  ConnectKvOptions,
  KvCallOptions,
  KvClerkOptions,
  KvNode,
  KvNodeOptions,
  KvServerStats,
  KvServeWriteOptions,
  KvWriteOptions,
  StateKind,
} from "./kv/mod.ts";
// shard: the shard controller (6.824's shardctrler) and the sharded key/value service (shardkv).
export {
  connectShard,
  ShardClerk,
  ShardController,
  ShardControllerClerk,
  startShardNode,
} from "./shard/mod.ts";
export type {
  ConnectShardOptions,
  ControllerResult,
  ShardCallOptions,
  ShardClerkOptions,
  ShardConfig,
  ShardNode,
  ShardNodeOptions,
} from "./shard/mod.ts";
// mapreduce: applications and the sequential runner (coordinator and workers: `/mapreduce`).
export { loadApp, runSequential } from "./mapreduce/mod.ts";
export type { KeyValue, MapReduceApp } from "./mapreduce/mod.ts";
// checker: linearizability checking (porcupine's search) and its HTML report.
export { checkOperations, kvModel, renderHtml } from "./checker/mod.ts";
export type {
  CheckOptions,
  CheckResult,
  GaveUp,
  KvInput,
  Model,
  NondeterministicModel,
  Operation,
  PartitionResult,
  RenderHtmlOptions,
  Verdict,
} from "./checker/mod.ts";
// pb: the primary/backup clients (their servers and the view service: `/pb`).
export { LockClerk, PrimaryBackupClerk } from "./pb/mod.ts";
export type { LockCallOptions, PrimaryBackupCallOptions, View } from "./pb/mod.ts";
export type { HandshakeThrottleOptions, TcpServerStats } from "./net/mod.ts";
export type { ReplicaStatus, ReplicaSubmitOptions, WriteOutcome } from "./rsm/mod.ts";
